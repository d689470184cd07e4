#!/usr/bin/env bash
# shellcheck disable=SC2154,SC2317  # BENCH fields (rps=, ...) come from eval; cleanups run from on_exit
# DataHub's benchmark: measures the gateway beside two anchors doing the same job, HAProxy 2.6 and
# nginx 1.22 configured to check a hashed API key, apply per-key minute and hour limits and proxy,
# in one run, interleaved, on this machine, with the same upstream and the same keys.
#
#   bench/run.sh                      every scenario at full length (about 8 to 10 minutes)
#   bench/run.sh --quick              every scenario, 2 s per target and fewer keys (about 1.5 min)
#   bench/run.sh --scenarios hot,cold one or more of: hot limited cold idle-keys
#   bench/run.sh --check-only         start everything, print the behaviour checks, stop
#   bench/run.sh --no-gateway         the anchors alone, with keys made locally (no build, no DB)
#
# What a run does, on 127.0.0.1 only, in a fresh folder under .run/bench/:
#   1. installs missing tools (apt), builds a Release `datahub` into build-bench/;
#   2. starts a private PostgreSQL, the upstream (nginx, fixed JSON) and the gateway, and creates
#      every key through the gateway's admin API (bench/keys.py); derives the anchors' key files
#      from those secrets; restarts the gateway so it starts clean; starts HAProxy and nginx;
#   3. checks each gateway target's behaviour (401, 200 with the upstream's body, 429);
#   4. runs the scenarios with wrk and bench/keys.lua against upstream, datahub, haproxy, nginx
#      in rounds (A B C D A B C D ...), recording CPU (/proc/<pid>/stat) and peak RSS (VmHWM);
#   5. prints one table (bench/report.py), also written to bench/results/, and stops every
#      process it started, by PID.
#
# Settings (environment; --quick changes the defaults marked *):
#   DURATION=10s* ROUNDS=3* WARMUP=2s* CONNS=64 THREADS=1     wrk runs of hot and limited
#   HOT_KEYS=10000* LIMITED_KEYS=10000* IDLE_KEYS=100000*     key set sizes
#   PIN=1          1: servers (and PostgreSQL) on CPU SRV_CPU=0, wrk on CPU WRK_CPU=1 (taskset)
#   WORKERS=1      nginx workers, HAProxy threads, and the gateway's IO_THREADS and ACTOR_THREADS
#   GW_LOG_LEVEL=info   the gateway's LOG_LEVEL (its log goes to a file)
#   IDLE_TIMEOUT_MS=2000   the gateway's KEY_IDLE_TIMEOUT_MS in the idle-keys scenario
#   UP_PORT=18080 HA_PORT=18081 NG_PORT=18082 GW_PORT=18083 (a port in use stops the run)
#   PG_PORT        default: the first free port from 55439
#   BENCH_BUILD_DIR=build-bench   BENCH_SKIP_BUILD=1 uses the binary already there
#   KEEP_LOGS=1    keep the gateway's whole request log (by default only its last 200 lines) and
#                  the PostgreSQL cluster (deleted by default)
# Exit status: 0 when the run completed and every behaviour check passed (a MISS on a
# performance target is a measurement, not a failure); 1 otherwise.
set -euo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$HERE/../scripts/lib/common.sh"
ROOT="$DATAHUB_ROOT"

QUICK=0 CHECK_ONLY=0 GATEWAY=1 SCENARIOS="hot,limited,cold,idle-keys"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --check-only) CHECK_ONLY=1 ;;
    --no-gateway) GATEWAY=0 ;;
    --scenarios) SCENARIOS="${2:?--scenarios needs a list}"; shift ;;
    --scenarios=*) SCENARIOS="${1#*=}" ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
for s in ${SCENARIOS//,/ }; do
  case "$s" in hot | limited | cold | idle-keys) ;; *) die "unknown scenario '$s'" ;; esac
done
want() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

if [[ $QUICK == 1 ]]; then
  DURATION=${DURATION:-2s} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1s}
  HOT_KEYS=${HOT_KEYS:-2000} LIMITED_KEYS=${LIMITED_KEYS:-2000} IDLE_KEYS=${IDLE_KEYS:-5000}
else
  DURATION=${DURATION:-10s} ROUNDS=${ROUNDS:-3} WARMUP=${WARMUP:-2s}
  HOT_KEYS=${HOT_KEYS:-10000} LIMITED_KEYS=${LIMITED_KEYS:-10000} IDLE_KEYS=${IDLE_KEYS:-100000}
fi
CONNS=${CONNS:-64} THREADS=${THREADS:-1} PIN=${PIN:-1} SRV_CPU=${SRV_CPU:-0} WRK_CPU=${WRK_CPU:-1}
WORKERS=${WORKERS:-1} GW_LOG_LEVEL=${GW_LOG_LEVEL:-info} IDLE_TIMEOUT_MS=${IDLE_TIMEOUT_MS:-2000}
UP_PORT=${UP_PORT:-18080} HA_PORT=${HA_PORT:-18081} NG_PORT=${NG_PORT:-18082}
GW_PORT=${GW_PORT:-18083}
PG_PORT=${PG_PORT:-$(pick_free_port 55439)} # not a contract: the first free one from 55439
BENCH_BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build-bench} KEEP_LOGS=${KEEP_LOGS:-0}
API_PATH=/api/v1/data/items
GW_BIN="$BENCH_BUILD_DIR/datahub"

if [[ $PIN == 1 ]]; then
  SRV=(taskset -c "$SRV_CPU") WRK=(taskset -c "$WRK_CPU")
  PIN_DESC="servers and PostgreSQL on CPU $SRV_CPU, wrk on CPU $WRK_CPU (taskset)"
else
  SRV=() WRK=() PIN_DESC="none"
fi

# --- tools and build ---------------------------------------------------------------------------
# shellcheck disable=SC2034  # read by ensure_packages in common.sh
DATAHUB_PACKAGES=(curl python3 wrk haproxy "nginx-light|nginx" util-linux procps)
[[ $GATEWAY == 1 ]] && DATAHUB_PACKAGES+=(build-essential cmake ninja-build ccache pkg-config
  libcaf-dev libboost-dev libpqxx-dev libhiredis-dev prometheus-cpp-dev libspdlog-dev
  nlohmann-json3-dev libyaml-cpp-dev libssl-dev postgresql)
ensure_packages

if [[ $GATEWAY == 1 && "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building datahub (Release) in $BENCH_BUILD_DIR"
  cmake -S "$ROOT" -B "$BENCH_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDATAHUB_WERROR=OFF \
    >"${TMPDIR:-/tmp}/datahub-bench-configure.log" 2>&1 ||
    die "cmake configure failed: see ${TMPDIR:-/tmp}/datahub-bench-configure.log (or run with --no-gateway)"
  cmake --build "$BENCH_BUILD_DIR" --target datahub -j"$(nproc)" >"${TMPDIR:-/tmp}/datahub-bench-build.log" 2>&1 || {
    tail -n 30 "${TMPDIR:-/tmp}/datahub-bench-build.log" >&2
    die "the gateway does not build: see ${TMPDIR:-/tmp}/datahub-bench-build.log (or run with --no-gateway)"
  }
fi
[[ $GATEWAY == 0 || -x "$GW_BIN" ]] || die "$GW_BIN is missing (build it, or run with --no-gateway)"

# --- run folder and bookkeeping ------------------------------------------------------------------
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="$RUN_ROOT/bench/$STAMP"
mkdir -p "$RUN/keys" "$RUN/logs" "$RUN/wrk" "$RUN/tmp/up" "$RUN/tmp/ng"
chmod 755 "$RUN" "$RUN/tmp" "$RUN/tmp/up" "$RUN/tmp/ng" # nginx workers run as nobody under root
KEYS="$RUN/keys"
TSV="$RUN/results.tsv"
CHECKS="$RUN/checks.tsv"
IDLE="$RUN/idle.tsv"

install_cleanup_traps
declare -A T_PID=() T_WHAT=() T_URL=() T_EXTRA=()
TARGETS=(upstream)
[[ $GATEWAY == 1 ]] && TARGETS+=(datahub)
TARGETS+=(haproxy nginx)
T_URL[upstream]="http://127.0.0.1:$UP_PORT"
T_URL[datahub]="http://127.0.0.1:$GW_PORT"
T_URL[haproxy]="http://127.0.0.1:$HA_PORT"
T_URL[nginx]="http://127.0.0.1:$NG_PORT"

# A server that needs SIGKILL (no exit within 30 s of SIGTERM) is listed in the report.
stop_target() {
  local name="$1" started=$SECONDS
  [[ -n "${T_PID[$name]:-}" ]] || return 0
  stop_pid "${T_PID[$name]}" "${T_WHAT[$name]}" 30
  if ((SECONDS - started >= 30)); then echo "$name" >>"$RUN/killed.txt"; fi
  T_PID[$name]=""
}
stop_all_targets() {
  local name
  for name in datahub haproxy nginx upstream; do stop_target "$name"; done
}
# Cleanups run newest first: the servers stop before PostgreSQL (registered again after it
# starts), and the gateway's log is trimmed once the gateway has stopped.
on_exit trim_gateway_log
on_exit stop_all_targets

trim_gateway_log() {
  local f="$RUN/logs/datahub.out"
  if [[ $KEEP_LOGS != 1 && -f "$f" ]]; then
    tail -n 200 "$f" >"$f.tail" && rm -f "$f"
  fi
}

alive() { # pid -> true while it runs (a zombie, killed but not yet waited for, is not running)
  local state
  state=$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null || true)
  [[ -n "$state" && "$state" != Z ]]
}
tree() { # pid -> the pid and all its descendants
  local c
  echo "$1"
  for c in $(pgrep -P "$1" 2>/dev/null || true); do tree "$c"; done
}
cpu_ticks() { # pids -> utime + stime, summed
  local p t s=0
  for p in "$@"; do
    t=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || true)
    s=$((s + ${t:-0}))
  done
  echo "$s"
}
status_kib() { # field pids -> the /proc/<pid>/status field (VmHWM, VmRSS) summed, in KiB
  local field="$1" p t s=0
  shift
  for p in "$@"; do
    t=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || true)
    s=$((s + ${t:-0}))
  done
  echo "$s"
}
pg_pids() {
  if [[ -f "$RUN/pg/postgres.pid" ]]; then tree "$(cat "$RUN/pg/postgres.pid")"; fi
}

render() { # conf file -> $RUN/file with the placeholders filled
  sed -e "s|@RUN@|$RUN|g" -e "s|@KEYS@|$KEYS|g" -e "s|@WORKERS@|$WORKERS|g" \
    -e "s|@UP_PORT@|$UP_PORT|g" -e "s|@HA_PORT@|$HA_PORT|g" -e "s|@NG_PORT@|$NG_PORT|g" \
    "$HERE/conf/$1" >"$RUN/$1"
}

# --- starting the servers ------------------------------------------------------------------------
GW_ENV=()
gateway_env() {
  GW_ENV=(DATAHUB_ENV=production DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/datahub"
    API_KEY_SALT="$(cat "$RUN/api_key_salt")" ADMIN_API_KEY="$(cat "$RUN/admin_key")"
    PORT="$GW_PORT" BIND_ADDRESS=127.0.0.1 ROUTES_FILE="$RUN/routes.yaml"
    LOG_LEVEL="$GW_LOG_LEVEL" IO_THREADS="$WORKERS" ACTOR_THREADS="$WORKERS"
    SHUTDOWN_DRAIN_MS=0 SHUTDOWN_TIMEOUT_MS=5000)
}

start_target() { # name [extra environment for the gateway...]; UNPINNED=1: not pinned
  local name="$1" i pid url srv=("${SRV[@]}")
  shift
  [[ "${UNPINNED:-0}" == 1 ]] && srv=()
  T_EXTRA[$name]="$*"
  case "$name" in
    upstream) T_WHAT[$name]=nginx
      "${srv[@]}" nginx -p "$RUN/" -c "$RUN/upstream.nginx.conf" >>"$RUN/logs/upstream.out" 2>&1 </dev/null & ;;
    haproxy) T_WHAT[$name]=haproxy
      "${srv[@]}" haproxy -db -f "$RUN/haproxy.cfg" >>"$RUN/logs/haproxy.out" 2>&1 </dev/null & ;;
    nginx) T_WHAT[$name]=nginx
      "${srv[@]}" nginx -p "$RUN/" -c "$RUN/nginx.conf" >>"$RUN/logs/nginx.out" 2>&1 </dev/null & ;;
    datahub) T_WHAT[$name]=datahub
      "${srv[@]}" env "${GW_ENV[@]}" "$@" "$GW_BIN" serve >>"$RUN/logs/datahub.out" 2>&1 </dev/null & ;;
  esac
  pid=$!
  T_PID[$name]=$pid
  url="${T_URL[$name]}/"
  [[ $name == datahub ]] && url="${T_URL[$name]}/health/ready"
  for ((i = 0; i < 600; i++)); do
    if [[ $name == datahub ]]; then
      curl -fs -o /dev/null --max-time 1 "$url" && return 0
    else
      curl -s -o /dev/null --max-time 1 "$url" && return 0
    fi
    if ! alive "$pid"; then
      tail -n 30 "$RUN/logs/$name.out" >&2 || true
      die "$name exited during start-up; see $RUN/logs/$name.out"
    fi
    sleep 0.1
  done
  die "$name not ready at $url after 60 s"
}

PORTS="$UP_PORT $HA_PORT $NG_PORT"
[[ $GATEWAY == 1 ]] && PORTS+=" $GW_PORT"
for p in $PORTS; do port_in_use "$p" && die "port $p is already in use (see the *_PORT settings)"; done

log "run folder $RUN; CPU pinning: $PIN_DESC"
render upstream.nginx.conf
nginx -t -q -p "$RUN/" -c "$RUN/upstream.nginx.conf" || die "upstream config invalid"
start_target upstream
UP_BODY="$(curl -s --max-time 3 "${T_URL[upstream]}$API_PATH")"

# --- keys ------------------------------------------------------------------------------------------
KEY_SETS=("hot:$HOT_KEYS:1000000000:1000000000" "limited:$LIMITED_KEYS:1:1" "low:1:5:100" "hour:1:3:3")
want idle-keys && [[ $GATEWAY == 1 ]] && KEY_SETS+=("idle:$IDLE_KEYS:1000000000:1000000000")
SET_ARGS=()
for s in "${KEY_SETS[@]}"; do SET_ARGS+=(--set "$s"); done

# The throwaway cluster is deleted once stopped (this cleanup is registered first, so it runs
# after stop_postgres); KEEP_LOGS=1 keeps it, with its log.
remove_pg_cluster() {
  if [[ $KEEP_LOGS != 1 && -d "$RUN/pg" && ! -f "$RUN/pg/postgres.pid" ]]; then
    rm -rf "$(pg_home "$RUN/pg")"
  fi
}
if [[ $GATEWAY == 1 ]]; then
  on_exit remove_pg_cluster
  start_postgres "$RUN/pg" "$PG_PORT"
  on_exit stop_all_targets
  if [[ $PIN == 1 ]]; then # backends forked later inherit the postmaster's CPU
    for p in $(pg_pids); do taskset -a -p -c "$SRV_CPU" "$p" >/dev/null 2>&1 || true; done
  fi
  (
    umask 077
    head -c 64 /dev/urandom | base64 -w0 | tr -d '/+=' | head -c 48 >"$RUN/api_key_salt"
    "$GW_BIN" keys generate | grep -oE 'dh_(live|test)_[0-9A-Za-z]+' | head -n1 >"$RUN/admin_key"
  )
  [[ -s "$RUN/admin_key" ]] || die "\`datahub keys generate\` printed no secret"
  cat >"$RUN/routes.yaml" <<EOF
# Written by bench/run.sh: every data path goes to the benchmark's upstream.
routes:
  - name: data
    path_prefix: /api/v1/data/
    upstream: http://127.0.0.1:$UP_PORT
    timeout_ms: 30000
EOF
  gateway_env
  log "starting datahub to create the keys (migrations run at its start; not pinned, not measured)"
  UNPINNED=1 start_target datahub
  log "creating keys through the admin API: ${KEY_SETS[*]}"
  python3 "$HERE/keys.py" create --url "${T_URL[datahub]}" --admin-key-file "$RUN/admin_key" \
    --dir "$KEYS" --threads 4 "${SET_ARGS[@]}" | sed 's/^/    /'
  stop_target datahub # the measured instance starts clean, knowing no key yet
else
  python3 "$HERE/keys.py" local --dir "$KEYS" "${SET_ARGS[@]}" | sed 's/^/    /'
fi
python3 "$HERE/keys.py" anchors --dir "$KEYS" --tier hot:std --tier limited:lim --tier low:low \
  --tier hour:hourlow | sed 's/^/    /'
python3 "$HERE/keys.py" unknown >"$KEYS/unknown.txt"

render haproxy.cfg
render nginx.conf
haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy config invalid"
nginx -t -q -p "$RUN/" -c "$RUN/nginx.conf" || die "nginx config invalid"
[[ $GATEWAY == 1 ]] && start_target datahub
start_target haproxy
start_target nginx

# --- behaviour checks ------------------------------------------------------------------------------
code_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" || true; }
retry_after() { awk 'tolower($1) == "retry-after:" {gsub(/\r/, ""); print $2}' "$1"; }
FAILED_CHECKS=0
VALID="$(head -n1 "$KEYS/hot.txt")"
check_target() {
  local name="$1" url="${T_URL[$1]}$API_PATH" nokey bad flip out valid body codes="" hcodes="" i c
  local ra hra ok=PASS why=""
  nokey=$(code_of "$url")
  bad=$(code_of -H "X-API-Key: $(cat "$KEYS/unknown.txt")" "$url")
  flip=$(code_of -H "X-API-Key: $(printf %s "$VALID" | tr 'a-zA-Z' 'A-Za-z')" "$url")
  out=$(curl -s --max-time 3 -w '\n%{http_code}' -H "X-API-Key: $VALID" "$url" || true)
  valid=${out##*$'\n'} body=${out%$'\n'*}
  for i in 1 2 3 4 5 6; do
    c=$(code_of -D "$RUN/logs/$name.low$i.hdr" -H "X-API-Key: $(cat "$KEYS/low.txt")" "$url")
    codes+="${codes:+,}$c"
  done
  for i in 1 2 3 4; do
    c=$(code_of -D "$RUN/logs/$name.hour$i.hdr" -H "X-API-Key: $(cat "$KEYS/hour.txt")" "$url")
    hcodes+="${hcodes:+,}$c"
  done
  ra=$(retry_after "$RUN/logs/$name.low6.hdr")
  hra=$(retry_after "$RUN/logs/$name.hour4.hdr")
  [[ $nokey == 401 ]] || { ok=FAIL why+=" no-key=$nokey"; }
  [[ $bad == 401 ]] || { ok=FAIL why+=" unknown-key=$bad"; }
  [[ $flip == 401 ]] || { ok=FAIL why+=" case-flipped=$flip"; }
  [[ $valid == 200 ]] || { ok=FAIL why+=" valid=$valid"; }
  [[ "$body" == "$UP_BODY" ]] || { ok=FAIL why+=" body-differs"; }
  [[ $codes == 200,200,200,200,200,429 ]] || { ok=FAIL why+=" 5/min=$codes"; }
  [[ $hcodes == 200,200,200,429 ]] || { ok=FAIL why+=" 3/h=$hcodes"; }
  [[ -n "$ra" && -n "$hra" ]] || { ok=FAIL why+=" Retry-After-missing"; }
  [[ $ok == PASS ]] || FAILED_CHECKS=$((FAILED_CHECKS + 1))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$nokey" "$bad" "$flip" \
    "$valid$([[ "$body" == "$UP_BODY" ]] && echo ' (body ok)' || echo ' (body differs)')" \
    "$codes" "${ra:-absent}" "$hcodes" "${hra:-absent}" "$ok${why:+ ($why )}" >>"$CHECKS"
}
: >"$CHECKS"
for t in "${TARGETS[@]}"; do [[ $t != upstream ]] && check_target "$t"; done
log "behaviour checks: $(awk -F'\t' '{printf "%s %s; ", $1, $10}' "$CHECKS")"
if [[ $CHECK_ONLY == 1 ]]; then
  python3 "$HERE/report.py" --checks-only "$RUN" | tee "$RUN/summary.md"
  exit $((FAILED_CHECKS > 0))
fi

# --- measuring ---------------------------------------------------------------------------------------
printf 'scenario\tround\ttarget\tmode\trps\tp50_us\tp99_us\trequests\tduration_us\tnon2xx\tsockerr\tanswers\ta2xx\ta401\ta429\tsrv_ticks\tup_ticks\tpg_ticks\twall_s\thwm_kib\trss_kib\n' >"$TSV"

# measure SCENARIO ROUND TARGET MODE KEYFILE [DURATION]: one wrk run (MODE loop: for DURATION;
# pass: one request per key, ending by itself, DURATION only bounds it) with the target's CPU ticks, the upstream's and PostgreSQL's, and the
# target's VmHWM and VmRSS afterwards. With SCENARIO "-" nothing is recorded (a warm-up).
measure() {
  local sc="$1" rnd="$2" t="$3" mode="$4" keys="$5" dur="${6:-900s}" out pids up pg
  local s0 s1 u0 u1 g0 g1 w0 w1 line pass=0
  out="$RUN/wrk/$sc-$rnd-$t.txt"
  [[ $mode == pass ]] && pass=1
  if ! alive "${T_PID[$t]}"; then # it crashed after the last run: note it, start it again
    note_crash "$t" "${sc/#-/warm-up}" "$rnd" "before this run"
    # shellcheck disable=SC2086
    start_target "$t" ${T_EXTRA[$t]}
  fi
  # shellcheck disable=SC2046
  pids=$(tree "${T_PID[$t]}") up=$(tree "${T_PID[upstream]}") pg=$(pg_pids)
  # shellcheck disable=SC2086
  s0=$(cpu_ticks $pids) u0=$(cpu_ticks $up) g0=$(cpu_ticks $pg) w0=$(date +%s.%N)
  BENCH_PASS=$pass "${WRK[@]}" wrk -t"$([[ $pass == 1 ]] && echo 1 || echo "$THREADS")" -c"$CONNS" \
    -d"$dur" --timeout 5s -s "$HERE/keys.lua" "${T_URL[$t]}$API_PATH" -- "$keys" >"$out" 2>&1 || true
  # shellcheck disable=SC2086
  s1=$(cpu_ticks $pids) u1=$(cpu_ticks $up) g1=$(cpu_ticks $pg) w1=$(date +%s.%N)
  if ! alive "${T_PID[$t]}"; then
    note_crash "$t" "${sc/#-/warm-up}" "$rnd" "during this run"
    # shellcheck disable=SC2086
    start_target "$t" ${T_EXTRA[$t]}
  fi
  [[ $sc == - ]] && return 0
  line=$(grep '^BENCH ' "$out" || true)
  [[ -n "$line" ]] || { cat "$out" >&2; die "wrk gave no result for $t ($sc, round $rnd)"; }
  eval "${line#BENCH }"
  # shellcheck disable=SC2086
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$sc" "$rnd" "$t" "$mode" "$rps" "$p50_us" "$p99_us" "$requests" "$duration_us" "$non2xx" \
    "$sockerr" "$pass_answers" "$pass_2xx" "$pass_401" "$pass_429" $((s1 - s0)) $((u1 - u0)) \
    $((g1 - g0)) "$(awk -v a="$w1" -v b="$w0" 'BEGIN {printf "%.3f", a - b}')" \
    "$(status_kib VmHWM $pids)" "$(status_kib VmRSS $pids)" >>"$TSV"
  if [[ $mode == pass && "$pass_answers" != "$(grep -c . "$keys")" ]]; then
    warn "$sc round $rnd $t: the pass got $pass_answers answers for $(grep -c . "$keys") keys"
  fi
  if [[ $mode == pass ]]; then
    log "$sc round $rnd $t: one pass, $pass_answers answers in $((duration_us / 1000)) ms" \
      "(2xx $pass_2xx, 401 $pass_401, 429 $pass_429), p50 ${p50_us}us p99 ${p99_us}us"
  else
    log "$sc round $rnd $t: $rps req/s p50 ${p50_us}us p99 ${p99_us}us non-2xx $non2xx socket errors $sockerr"
  fi
}

# note_crash TARGET SCENARIO ROUND WHEN: a server under test exited on its own; the run goes on
# with a fresh instance, the report lists the crash and the run's exit status is 1.
CRASHES="$RUN/crashes.tsv"
: >"$CRASHES"
note_crash() {
  local t="$1" status=0
  wait "${T_PID[$t]}" 2>/dev/null || status=$?
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$2" "$3" "$4" "$status" >>"$CRASHES"
  warn "$t exited (status $status, $( ((status > 128)) && kill -l $((status - 128)))) $4 ($2, round $3); see $RUN/logs/$t.out; starting it again"
  T_PID[$t]=""
}

# Rounds of SCENARIO over every target, in order: A B C D A B C D ...
rounds() {
  local sc="$1" keys="$2" r t
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in "${TARGETS[@]}"; do measure "$sc" "$r" "$t" loop "$keys" "$DURATION"; done
  done
}

if want hot; then
  log "scenario hot: $HOT_KEYS keys with high limits, $CONNS connections"
  for t in "${TARGETS[@]}"; do measure - 0 "$t" loop "$KEYS/hot.txt" "$WARMUP"; done
  rounds hot "$KEYS/hot.txt"
fi

if want limited; then
  log "scenario limited: $LIMITED_KEYS keys, each already over its limit of 1 a minute and 1 an hour"
  for t in "${TARGETS[@]}"; do
    [[ $t == upstream ]] && continue
    measure - 0 "$t" pass "$KEYS/limited.txt" # each key's one allowed request
    measure - 0 "$t" loop "$KEYS/limited.txt" "$WARMUP"
  done
  rounds limited "$KEYS/limited.txt"
fi

if want cold; then
  log "scenario cold: a fresh instance, then one request for each of $HOT_KEYS keys it has never seen"
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in "${TARGETS[@]}"; do
      if [[ $t != upstream ]]; then
        stop_target "$t"
        start_target "$t"
      fi
      measure cold "$r" "$t" pass "$KEYS/hot.txt"
    done
  done
fi

if want idle-keys && [[ $GATEWAY == 1 ]]; then
  log "scenario idle-keys: $IDLE_KEYS keys used once each, then idle (KEY_IDLE_TIMEOUT_MS=$IDLE_TIMEOUT_MS)"
  actors() { curl -s --max-time 3 "${T_URL[datahub]}/metrics" | awk '$1 == "datahub_key_actors" {print int($2)}'; }
  wait_idle() { # until no key actor is alive (bounded), then one more idle period for the heap
    local i n
    for ((i = 0; i < 600; i++)); do
      n=$(actors)
      [[ "${n:-0}" == 0 ]] && break
      sleep 0.1
    done
    sleep "$(awk -v ms="$IDLE_TIMEOUT_MS" 'BEGIN {printf "%.1f", ms / 1000 + 1}')"
  }
  stop_target datahub
  start_target datahub KEY_IDLE_TIMEOUT_MS="$IDLE_TIMEOUT_MS"
  # Settle threads, pools and buffers with keys that are not part of the measurement, then let
  # their actors stop, so the baseline holds everything but per-key state.
  head -n 1000 "$KEYS/hot.txt" >"$RUN/keys/settle.txt"
  measure - 0 datahub pass "$RUN/keys/settle.txt"
  wait_idle
  pid="${T_PID[datahub]}"
  rss0=$(status_kib VmRSS "$pid")
  actors0=$(actors)
  measure idle-keys 1 datahub pass "$KEYS/idle.txt"
  actors_busy=$(actors)
  hwm=$(status_kib VmHWM "$pid")
  rss_busy=$(status_kib VmRSS "$pid")
  wait_idle
  rss1=$(status_kib VmRSS "$pid")
  actors1=$(actors)
  printf 'keys\trss0_kib\trss_busy_kib\trss1_kib\thwm_kib\tactors0\tactors_busy\tactors1\tidle_timeout_ms\n%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$IDLE_KEYS" "$rss0" "$rss_busy" "$rss1" "$hwm" "${actors0:-?}" "${actors_busy:-?}" "${actors1:-?}" \
    "$IDLE_TIMEOUT_MS" >"$IDLE"
  log "idle-keys: RSS $rss0 KiB before, $rss_busy KiB right after the pass (${actors_busy:-?} actors)," \
    "$rss1 KiB once idle (${actors1:-?} actors)"
fi

# --- report --------------------------------------------------------------------------------------------
MACHINE="$(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)),"
MACHINE+=" $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
{
  echo "machine=$MACHINE"
  echo "tools=$(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'), wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}')"
  echo "load=wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS round(s), warm-up $WARMUP; passes: -t1 -c$CONNS, one request per key"
  echo "pinning=$PIN_DESC"
  echo "workers=$WORKERS (nginx worker_processes, HAProxy nbthread, datahub IO_THREADS and ACTOR_THREADS)"
  echo "gateway=LOG_LEVEL=$GW_LOG_LEVEL to a file, DATAHUB_ENV=production, no Redis"
  echo "keys=hot $HOT_KEYS, limited $LIMITED_KEYS, idle $IDLE_KEYS"
  echo "mode=$([[ $QUICK == 1 ]] && echo quick || echo full)"
  echo "clk_tck=$(getconf CLK_TCK)"
} >"$RUN/meta.txt"
python3 "$HERE/report.py" "$RUN" | tee "$RUN/summary.md"
mkdir -p "$HERE/results"
cp "$RUN/summary.md" "$HERE/results/$STAMP.md"
cp "$TSV" "$HERE/results/$STAMP.tsv"
log "table saved as bench/results/$STAMP.md (raw rounds: bench/results/$STAMP.tsv)"
exit $((FAILED_CHECKS > 0 || $(wc -l <"$CRASHES") > 0))
