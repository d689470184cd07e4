#!/usr/bin/env bash
# Where DataHub's instructions go on the hot path: runs the gateway under valgrind's callgrind for
# a fixed number of proxied requests and prints the cost grouped by area (HTTP parsing/Beast,
# hashing/OpenSSL, actor messaging/CAF, upstream and socket I/O, JSON, logging, metrics, memory).
# Callgrind counts instructions, not time, so other load on the machine does not change the result.
#
#   bench/profile.sh                 1,000 keys, 20,000 measured requests over 4 connections
#   REQUESTS=50000 bench/profile.sh
#
# Steps, on 127.0.0.1 only, in a fresh folder under .run/bench/: builds the Release binary (as
# bench/run.sh does; BENCH_SKIP_BUILD=1 skips it), starts a private PostgreSQL and the benchmark's
# upstream, creates the keys through the admin API with a normally running gateway, restarts the
# gateway under callgrind with instrumentation off, warms every key up (one request each), turns
# instrumentation on for exactly REQUESTS requests (bench/keys.lua in pass mode), stops the gateway
# and summarises callgrind's output with bench/profile_report.py. Every process it started is
# stopped by PID. Takes a few minutes: the gateway runs about 50 times slower under valgrind.
#
# Settings: KEYS_N=1000 REQUESTS=20000 CONNS=4 GW_LOG_LEVEL=info UP_PORT=18090 GW_PORT=18093
# PG_PORT (default: the first free port from 55449) BENCH_BUILD_DIR=build-bench
set -euo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$HERE/../scripts/lib/common.sh"
ROOT="$DATAHUB_ROOT"

case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

KEYS_N=${KEYS_N:-1000} REQUESTS=${REQUESTS:-20000} CONNS=${CONNS:-4}
GW_LOG_LEVEL=${GW_LOG_LEVEL:-info} UP_PORT=${UP_PORT:-18090} GW_PORT=${GW_PORT:-18093}
PG_PORT=${PG_PORT:-$(pick_free_port 55449)} BENCH_BUILD_DIR=${BENCH_BUILD_DIR:-$ROOT/build-bench}
GW_BIN="$BENCH_BUILD_DIR/datahub"
API_PATH=/api/v1/data/items

# shellcheck disable=SC2034  # read by ensure_packages in common.sh
DATAHUB_PACKAGES=(curl python3 wrk valgrind "nginx-light|nginx" procps postgresql
  build-essential cmake ninja-build ccache pkg-config libcaf-dev libboost-dev libpqxx-dev
  libhiredis-dev prometheus-cpp-dev libspdlog-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev)
ensure_packages

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building datahub (Release) in $BENCH_BUILD_DIR"
  cmake -S "$ROOT" -B "$BENCH_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDATAHUB_WERROR=OFF \
    >/dev/null || die "cmake configure failed"
  cmake --build "$BENCH_BUILD_DIR" --target datahub -j"$(nproc)" >/dev/null || die "the gateway does not build"
fi
[[ -x "$GW_BIN" ]] || die "$GW_BIN is missing"
for p in "$UP_PORT" "$GW_PORT"; do port_in_use "$p" && die "port $p is already in use"; done

RUN="$RUN_ROOT/bench/profile-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN/keys" "$RUN/tmp/up"
chmod 755 "$RUN" "$RUN/tmp" "$RUN/tmp/up"
install_cleanup_traps

UP_PID="" GW_PID=""
# Single quotes on purpose: the PIDs are read when the cleanups run.
# shellcheck disable=SC2016
on_exit 'stop_pid "$UP_PID" nginx'
# The throwaway cluster is deleted once stop_postgres (registered by start_postgres) has run.
# shellcheck disable=SC2016
on_exit '[[ -f "$RUN/pg/postgres.pid" ]] || rm -rf "$(pg_home "$RUN/pg")"'
start_postgres "$RUN/pg" "$PG_PORT"
# shellcheck disable=SC2016
on_exit 'stop_pid "$GW_PID" datahub 60'

sed -e "s|@RUN@|$RUN|g" -e "s|@WORKERS@|1|g" -e "s|@UP_PORT@|$UP_PORT|g" \
  "$HERE/conf/upstream.nginx.conf" >"$RUN/upstream.nginx.conf"
nginx -p "$RUN/" -c "$RUN/upstream.nginx.conf" >"$RUN/upstream.out" 2>&1 </dev/null &
# shellcheck disable=SC2034  # read by the cleanup registered above
UP_PID=$!

(
  umask 077
  head -c 64 /dev/urandom | base64 -w0 | tr -d '/+=' | head -c 48 >"$RUN/api_key_salt"
  "$GW_BIN" keys generate | grep -oE 'dh_(live|test)_[0-9A-Za-z]+' | head -n1 >"$RUN/admin_key"
)
cat >"$RUN/routes.yaml" <<EOF
# Written by bench/profile.sh: every data path goes to the benchmark's upstream.
routes:
  - name: data
    path_prefix: /api/v1/data/
    upstream: http://127.0.0.1:$UP_PORT
    timeout_ms: 30000
EOF
GW_ENV=(DATAHUB_ENV=production DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/datahub"
  API_KEY_SALT="$(cat "$RUN/api_key_salt")" ADMIN_API_KEY="$(cat "$RUN/admin_key")"
  PORT="$GW_PORT" BIND_ADDRESS=127.0.0.1 ROUTES_FILE="$RUN/routes.yaml" LOG_LEVEL="$GW_LOG_LEVEL"
  IO_THREADS=1 ACTOR_THREADS=1 SHUTDOWN_DRAIN_MS=0 SHUTDOWN_TIMEOUT_MS=10000)

wait_gateway() { # bounded: 180 s, valgrind starts slowly
  local i
  for ((i = 0; i < 1800; i++)); do
    curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$GW_PORT/health/ready" && return 0
    pid_is "$GW_PID" datahub || { tail -n 20 "$RUN/datahub.out" >&2; die "datahub exited during start-up"; }
    sleep 0.1
  done
  die "datahub not ready after 180 s"
}

log "creating $KEYS_N keys through the admin API"
env "${GW_ENV[@]}" "$GW_BIN" serve >>"$RUN/datahub.out" 2>&1 </dev/null &
GW_PID=$!
wait_gateway
python3 "$HERE/keys.py" create --url "http://127.0.0.1:$GW_PORT" --admin-key-file "$RUN/admin_key" \
  --dir "$RUN/keys" --set "hot:$KEYS_N:1000000000:1000000000" | sed 's/^/    /'
stop_pid "$GW_PID" datahub 30

log "starting datahub under callgrind (instrumentation off until the measured requests)"
env "${GW_ENV[@]}" valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$RUN/callgrind.out" "$GW_BIN" serve >>"$RUN/datahub.out" 2>&1 </dev/null &
GW_PID=$!
wait_gateway

# The measured requests: a key file of REQUESTS lines cycling over the keys, one answer a line.
awk -v n="$REQUESTS" '{k[NR] = $0} END {for (i = 0; i < n; i++) print k[i % NR + 1]}' \
  "$RUN/keys/hot.txt" >"$RUN/keys/measured.txt"
pass() { # keyfile -> the BENCH line
  BENCH_PASS=1 wrk -t1 -c"$CONNS" -d600s --timeout 30s -s "$HERE/keys.lua" \
    "http://127.0.0.1:$GW_PORT$API_PATH" -- "$1" | grep '^BENCH '
}
log "warm-up: one request for each of the $KEYS_N keys, not instrumented"
pass "$RUN/keys/hot.txt" | sed 's/^/    /'
callgrind_control -i on "$GW_PID" >/dev/null
log "measured: $REQUESTS requests over $CONNS connections, instrumented"
line=$(pass "$RUN/keys/measured.txt")
echo "    $line"
callgrind_control -i off "$GW_PID" >/dev/null
[[ "$line" == *"pass_2xx=$REQUESTS "* ]] || die "the measured pass did not get $REQUESTS answers of 200"
stop_pid "$GW_PID" datahub 120
GW_PID=""

out=$(find "$RUN" -maxdepth 1 -name 'callgrind.out*' | head -n1)
[[ -s "$out" ]] || die "callgrind wrote no profile"
callgrind_annotate --inclusive=yes --threshold=100 "$out" >"$RUN/inclusive.txt"
callgrind_annotate --inclusive=no --threshold=100 "$out" >"$RUN/exclusive.txt"
python3 "$HERE/profile_report.py" "$RUN/inclusive.txt" "$RUN/exclusive.txt" "$REQUESTS" |
  tee "$RUN/profile.md"
log "profile: $out (callgrind_annotate or kcachegrind read it); summary $RUN/profile.md"
