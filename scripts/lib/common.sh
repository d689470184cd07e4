# Shared helpers for scripts/run.sh and scripts/test.sh: installing what the project needs,
# building, and running private PostgreSQL, Redis and nginx processes on loopback under .run/.
# Sourced, never executed. Every process started here is recorded by PID and stopped by PID;
# nothing is ever stopped by name, so system services and other people's processes are left alone.

# shellcheck shell=bash

DATAHUB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${DATAHUB_BUILD_DIR:-$DATAHUB_ROOT/build}"
RUN_ROOT="$DATAHUB_ROOT/.run"
export DEBIAN_FRONTEND=noninteractive

# Debian 12 packages; "a|b" means either one will do (the first is installed when neither is).
DATAHUB_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libcaf-dev libboost-dev libpqxx-dev libhiredis-dev prometheus-cpp-dev libspdlog-dev
  nlohmann-json3-dev libyaml-cpp-dev libgtest-dev libgmock-dev libssl-dev
  redis-server postgresql curl iso-codes "nginx-light|nginx" prometheus python3 nodejs npm
)

log() { printf '==> %s\n' "$*" >&2 || true; }
warn() { printf 'warning: %s\n' "$*" >&2 || true; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# Runs a command as root: directly when we are root, through sudo when it exists.
as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo env DEBIAN_FRONTEND=noninteractive "$@"
  else
    die "need root to run '$*' and sudo is not installed; run this script as root or install the packages listed in scripts/lib/common.sh"
  fi
}

package_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# A package counts as present when dpkg has it, or, for the few whose command may come from
# elsewhere (NodeSource's nodejs bundles npm and conflicts with Debian's npm), when its command
# is on the PATH.
package_present() {
  case "$1" in
    npm) package_installed npm || command -v npm >/dev/null 2>&1 ;;
    nodejs) package_installed nodejs || command -v node >/dev/null 2>&1 ;;
    nginx*) package_installed "$1" || [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 ;;
    *) package_installed "$1" ;;
  esac
}

# Installs the packages in DATAHUB_PACKAGES that are missing; does nothing (and needs no root)
# when all are there. DATAHUB_SKIP_PACKAGES=1 skips the check.
ensure_packages() {
  if [[ "${DATAHUB_SKIP_PACKAGES:-0}" == 1 ]]; then
    return 0
  fi
  command -v dpkg-query >/dev/null 2>&1 ||
    die "dpkg-query not found: these scripts expect Debian 12 (or a close relative); install the packages listed in scripts/lib/common.sh by hand and set DATAHUB_SKIP_PACKAGES=1"

  local missing=() spec alt found
  for spec in "${DATAHUB_PACKAGES[@]}"; do
    found=0
    IFS='|' read -r -a alts <<<"$spec"
    for alt in "${alts[@]}"; do
      if package_present "$alt"; then
        found=1
        break
      fi
    done
    if [[ $found == 0 ]]; then
      missing+=("${alts[0]}")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi

  log "installing missing packages: ${missing[*]}"
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Configures and builds into BUILD_DIR with Ninja. $1: CMAKE_BUILD_TYPE (Release by default);
# $2: one target to build (default: all). DATAHUB_SKIP_BUILD=1 uses what is already in BUILD_DIR.
build() {
  local type="${1:-Release}" target="${2:-all}" jobs cache="$BUILD_DIR/CMakeCache.txt"
  if [[ "${DATAHUB_SKIP_BUILD:-0}" == 1 ]]; then
    log "DATAHUB_SKIP_BUILD=1: using the build in $BUILD_DIR as it is"
    return 0
  fi
  jobs="${DATAHUB_JOBS:-$(nproc 2>/dev/null || echo 2)}"
  if [[ -f "$cache" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$cache"; then
    die "$BUILD_DIR was configured with another generator; remove it or set DATAHUB_BUILD_DIR to another folder"
  fi
  log "configuring ($type) in $BUILD_DIR"
  cmake -S "$DATAHUB_ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$type" >/dev/null
  log "building with $jobs jobs"
  cmake --build "$BUILD_DIR" -j"$jobs" --target "$target"
}

# ---------------------------------------------------------------------------------------------
# Cleanup: each start_* registers how to undo itself; the EXIT trap runs them newest first.

DATAHUB_CLEANUPS=()

on_exit() { DATAHUB_CLEANUPS+=("$*"); }

run_cleanups() {
  local i
  # The terminal's Ctrl-C may have ended a `| tee` reading our output: a write to it must not
  # kill this script half-way through its cleanup.
  trap '' PIPE
  for ((i = ${#DATAHUB_CLEANUPS[@]} - 1; i >= 0; i--)); do
    eval "${DATAHUB_CLEANUPS[$i]}" || true
  done
  DATAHUB_CLEANUPS=()
}

# Installs the traps: cleanups on any exit; INT and TERM turn into an exit with the usual status.
install_cleanup_traps() {
  trap run_cleanups EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# True when PID is alive and its command line contains WHAT (guards against a reused PID).
pid_is() {
  local pid="$1" what="$2"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$what"
}

# Stops one process we started: TERM, up to TIMEOUT seconds, then KILL.
stop_pid() {
  local pid="$1" what="$2" timeout="${3:-15}" i
  pid_is "$pid" "$what" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < timeout * 10; i++)); do
    pid_is "$pid" "$what" || return 0
    sleep 0.1
  done
  warn "$what (pid $pid) did not stop in ${timeout}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# Ports

# True when any TCP socket on this machine uses the port: a listener, or the local end of a
# connection (which would make a later bind fail just the same).
port_in_use() {
  local port="$1"
  if command -v ss >/dev/null 2>&1; then
    ss -Htan "sport = :$port" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

# Prints the first free loopback TCP port at or above $1.
pick_free_port() {
  local port="$1" limit=$(($1 + 200))
  while ((port < limit)); do
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
    port=$((port + 1))
  done
  die "no free port between $1 and $limit"
}

# A random starting point for ports, so parallel test runs rarely collide. It stays below the
# kernel's range for outgoing connections' ports, where a port free now may be taken a moment later.
random_port_base() {
  local low=32768 span
  if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  fi
  span=$((low - 20000 - 500))
  if ((span < 1000)); then
    span=1000
  fi
  echo $((20000 + (RANDOM * 32768 + RANDOM) % span))
}

# start_on_free_port KIND DIR BASE: runs start_KIND (postgres or redis) on the first free port at
# or above BASE, moving on when another process takes the port between the check and the start.
# Prints nothing; the port is left in STARTED_PORT.
start_on_free_port() {
  local kind="$1" dir="$2" base="$3" attempt port
  for attempt in 1 2 3 4 5; do
    port="$(pick_free_port "$base")"
    if "start_$kind" "$dir" "$port"; then
      STARTED_PORT="$port"
      return 0
    fi
    warn "$kind could not start on port $port (attempt $attempt of 5); trying another port"
    base=$((port + 1))
  done
  die "$kind could not be started; see the logs in $dir"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL: a private cluster, trust authentication, listening on 127.0.0.1 only.

pg_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null || true)"
    if [[ -x "$dir/initdb" ]]; then
      echo "$dir"
      return 0
    fi
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" ]]; then
      echo "$dir"
      return 0
    fi
  done
  die "PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql package"
}

# Runs a command as the cluster's owner: `postgres` when we are root (PostgreSQL refuses root).
as_pg_owner() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Where the cluster of DIR lives. Normally DIR/pg; when we are root and the postgres user cannot
# reach DIR (a checkout under /root, for instance), a private folder under /tmp recorded in
# DIR/pg.location.
pg_home() {
  local dir="$1"
  if [[ -f "$dir/pg.location" ]]; then
    cat "$dir/pg.location"
  else
    echo "$dir/pg"
  fi
}

# start_postgres DIR PORT: initialises the cluster on first use, starts it, waits until it
# answers and creates the `datahub` database. The postmaster's PID is in DIR/postgres.pid.
# Returns 1 when the server does not start (a taken port, typically); dies on other problems.
start_postgres() {
  local dir="$1" port="$2" bin home sockdir opts pid i
  bin="$(pg_bindir)"
  mkdir -p "$dir"

  home="$(pg_home "$dir")"
  if is_root && [[ ! -f "$dir/pg.location" ]]; then
    mkdir -p "$home"
    chown postgres: "$home"
    if ! runuser -u postgres -- test -w "$home"; then
      rmdir "$home" 2>/dev/null || true
      home="$(mktemp -d /tmp/datahub-pg.XXXXXX)"
      chown postgres: "$home"
      echo "$home" >"$dir/pg.location"
      log "the postgres user cannot reach $dir; the cluster lives in $home"
    fi
  fi
  mkdir -p "$home"
  is_root && chown postgres: "$home"

  # A Unix socket path is limited to about 107 bytes; a deep checkout goes TCP-only.
  sockdir="$home"
  if ((${#sockdir} > 90)); then
    sockdir=""
  fi

  if [[ ! -f "$home/data/PG_VERSION" ]]; then
    log "initialising PostgreSQL in $home/data"
    as_pg_owner "$bin/initdb" -D "$home/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
      >"$home/initdb.log" 2>&1 ||
      as_pg_owner "$bin/initdb" -D "$home/data" -A trust -U postgres -E UTF8 --no-locale \
        >"$home/initdb.log" 2>&1 ||
      die "initdb failed; see $home/initdb.log"
  fi

  # A postmaster left over from an earlier run of ours in this very folder (one that was killed
  # before it could clean up) would hold the data directory: stop it through the folder.
  if [[ -f "$home/data/postmaster.pid" ]]; then
    pid="$(head -n1 "$home/data/postmaster.pid")"
    if pid_is "$pid" postgres; then
      log "stopping a PostgreSQL left running in $home/data (pid $pid)"
      as_pg_owner "$bin/pg_ctl" stop -D "$home/data" -m fast -w -t 30 >/dev/null 2>&1 || true
    fi
  fi

  opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$sockdir'"
  opts+=" -c max_connections=200 -c shared_buffers=64MB"
  if [[ "${DATAHUB_PG_DURABLE:-0}" != 1 ]]; then
    # A throwaway cluster: durability only slows the tests down.
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi

  log "starting PostgreSQL on 127.0.0.1:$port"
  # pg_ctl detaches the postmaster into its own session, so Ctrl-C in the terminal reaches only
  # the gateway; the lock descriptor 9 (run.sh) is not passed on.
  if ! as_pg_owner "$bin/pg_ctl" start -D "$home/data" -l "$home/postgres.log" -o "$opts" -w \
    -t 60 >/dev/null 9>&-; then
    tail -n 5 "$home/postgres.log" >&2 || true
    warn "PostgreSQL did not start on port $port; see $home/postgres.log"
    return 1
  fi
  pid="$(head -n1 "$home/data/postmaster.pid")"
  echo "$pid" >"$dir/postgres.pid"
  on_exit stop_postgres "'$dir'"

  for ((i = 0; i < 300; i++)); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      break
    fi
    sleep 0.1
  done
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres ||
    die "PostgreSQL on port $port does not answer; see $home/postgres.log"

  if [[ -z "$(psql -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "SELECT 1 FROM pg_database WHERE datname = 'datahub'")" ]]; then
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'CREATE DATABASE datahub' >/dev/null ||
      die "could not create the datahub database"
  fi
  log "PostgreSQL ready (pid $pid): postgresql://postgres@127.0.0.1:$port/datahub"
}

# stop_postgres DIR: a fast shutdown through pg_ctl, then the recorded PID if it lingers.
stop_postgres() {
  local dir="$1" home pid bin
  [[ -f "$dir/postgres.pid" ]] || return 0
  pid="$(cat "$dir/postgres.pid")"
  home="$(pg_home "$dir")"
  if pid_is "$pid" postgres; then
    bin="$(pg_bindir)"
    as_pg_owner "$bin/pg_ctl" stop -D "$home/data" -m fast -w -t 30 >/dev/null 2>&1 ||
      stop_pid "$pid" postgres 30
    log "PostgreSQL stopped (pid $pid)"
  fi
  rm -f "$dir/postgres.pid"
}

# ---------------------------------------------------------------------------------------------
# Redis: in memory only, loopback only.

# start_redis DIR PORT: the PID is in DIR/redis.pid. Returns 1 when it does not start.
start_redis() {
  local dir="$1" port="$2" pid i
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found; install redis-server"
  mkdir -p "$dir"

  if [[ -f "$dir/redis.pid" ]]; then
    stop_pid "$(cat "$dir/redis.pid")" redis-server
  fi

  log "starting Redis on 127.0.0.1:$port"
  setsid redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis-server.pid" \
    </dev/null >/dev/null 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$dir/redis.pid"
  on_exit stop_redis "'$dir'"

  # Ready when the server on the port is ours (its process_id is our PID): another process on a
  # port taken a moment ago may answer too, or accept and never answer, hence the timeout.
  for ((i = 0; i < 100; i++)); do
    pid_is "$pid" redis-server || break
    if timeout 2 redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null |
      grep -q "^process_id:$pid"$'\r'"\?$"; then
      log "Redis ready (pid $pid): redis://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  tail -n 5 "$dir/redis.log" >&2 || true
  warn "Redis did not start on port $port; see $dir/redis.log"
  stop_redis "$dir"
  return 1
}

stop_redis() {
  local dir="$1" pid
  [[ -f "$dir/redis.pid" ]] || return 0
  pid="$(cat "$dir/redis.pid")"
  if pid_is "$pid" redis-server; then
    stop_pid "$pid" redis-server
    log "Redis stopped (pid $pid)"
  fi
  rm -f "$dir/redis.pid"
}

# ---------------------------------------------------------------------------------------------
# The demo upstream: Debian's nginx serving the ISO country and currency lists.

nginx_binary() {
  if command -v nginx >/dev/null 2>&1; then
    command -v nginx
  elif [[ -x /usr/sbin/nginx ]]; then
    echo /usr/sbin/nginx
  else
    die "nginx not found; install nginx-light"
  fi
}

# start_demo_upstream DIR PORT: writes DIR/nginx.conf from deploy/demo/upstream-nginx.conf and
# runs nginx in the foreground of a background job. The master's PID is in DIR/nginx.pid.
start_demo_upstream() {
  local dir="$1" port="$2" nginx iso_dir user_line="" temp_lines="" kind pid i
  local template="$DATAHUB_ROOT/deploy/demo/upstream-nginx.conf"
  nginx="$(nginx_binary)"
  iso_dir=/usr/share/iso-codes/json
  [[ -r "$iso_dir/iso_3166-1.json" && -r "$iso_dir/iso_4217.json" ]] ||
    die "$iso_dir/iso_3166-1.json or iso_4217.json missing; install iso-codes"
  mkdir -p "$dir/nginx-temp"

  if is_root; then
    # The master keeps root; the workers only read world-readable files.
    if id www-data >/dev/null 2>&1; then
      user_line="user www-data;"
    else
      user_line="user nobody;"
    fi
  fi
  # Each compiled-in module has a temporary folder under /var/lib/nginx by default, which a
  # normal user cannot create; point every one of them into DIR.
  for kind in client_body proxy fastcgi uwsgi scgi; do
    if [[ $kind == client_body ]] || ! "$nginx" -V 2>&1 | grep -q -- "--without-http_${kind}_module"; then
      temp_lines+="    ${kind}_temp_path $dir/nginx-temp/$kind;"$'\n'
    fi
  done

  python3 - "$template" "$dir/nginx.conf" "$dir" "$port" "$iso_dir" "$user_line" "$temp_lines" <<'EOF'
import sys
template, out, run_dir, port, iso_dir, user_line, temp_lines = sys.argv[1:]
text = open(template).read()
for name, value in (("@RUN_DIR@", run_dir), ("@PORT@", port), ("@ISO_JSON_DIR@", iso_dir),
                    ("@USER_DIRECTIVE@", user_line), ("@TEMP_PATHS@", temp_lines.rstrip("\n"))):
    text = text.replace(name, value)
open(out, "w").write(text)
EOF

  if [[ -f "$dir/nginx.pid" ]]; then
    stop_pid "$(cat "$dir/nginx.pid")" nginx
  fi
  "$nginx" -t -q -p "$dir" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" ||
    die "the demo nginx configuration $dir/nginx.conf is invalid"

  log "starting the demo upstream (nginx) on 127.0.0.1:$port"
  setsid "$nginx" -p "$dir" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" \
    </dev/null >>"$dir/nginx-stdout.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$dir/nginx.pid"
  on_exit stop_demo_upstream "'$dir'"

  for ((i = 0; i < 100; i++)); do
    pid_is "$pid" nginx || break
    if curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$port/api/v1/data/currencies" \
      2>/dev/null; then
      log "demo upstream ready (pid $pid): http://127.0.0.1:$port/api/v1/data/{countries,currencies}"
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$dir/nginx-error.log" >&2 || true
  die "the demo nginx did not start on port $port; see $dir/nginx-error.log"
}

stop_demo_upstream() {
  local dir="$1" pid
  [[ -f "$dir/nginx.pid" ]] || return 0
  pid="$(cat "$dir/nginx.pid")"
  if pid_is "$pid" nginx; then
    # TERM is nginx's fast shutdown; the master stops its workers itself.
    stop_pid "$pid" nginx
    log "demo upstream stopped (pid $pid)"
  fi
  rm -f "$dir/nginx.pid"
}
