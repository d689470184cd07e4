#!/usr/bin/env bash
# Runs the gateway locally with everything it needs, on loopback only: installs missing packages,
# builds (Release), starts a private PostgreSQL and Redis and a demo upstream (Debian's nginx
# serving the ISO country and currency lists) under .run/demo/, migrates, prints ready-to-paste
# curl lines and runs `datahub serve` in the foreground. Ctrl-C stops all of it.
#
#   scripts/run.sh              start the demo
#   scripts/run.sh --print-env  print the demo's settings as export lines, for running
#                               build/datahub by hand beside a running demo:
#                               eval "$(scripts/run.sh --print-env)"
#
# Environment: PORT (default 3000), LOG_LEVEL (info), LOG_FORMAT (json; pretty for a terminal),
# DEMO_PG_PORT (54329), DEMO_REDIS_PORT (63799), DEMO_UPSTREAM_PORT (8081); any other setting
# of the gateway (see deploy/datahub.env.example) passes through.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$DATAHUB_ROOT"

demo_dir="$RUN_ROOT/demo"

case "${1:-}" in
  --print-env)
    [[ -f "$demo_dir/env" ]] || die "no demo settings yet: start scripts/run.sh first"
    cat "$demo_dir/env"
    exit 0
    ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  "") ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

mkdir -p "$demo_dir"
# One demo at a time: the lock is held for as long as this script runs, and is not passed on
# to the processes it starts (each is started with descriptor 9 closed).
exec 9>"$demo_dir/lock"
flock -n 9 || die "another scripts/run.sh is already running the demo in $demo_dir"

install_cleanup_traps
ensure_packages
build Release datahub

gateway_port="${PORT:-3000}"
if port_in_use "$gateway_port"; then
  die "port $gateway_port is taken; choose another one, for example: PORT=3001 scripts/run.sh"
fi

# The demo keeps its keys across restarts, so its database is written durably.
DATAHUB_PG_DURABLE=1 start_on_free_port postgres "$demo_dir" "${DEMO_PG_PORT:-54329}"
pg_port="$STARTED_PORT"
start_on_free_port redis "$demo_dir" "${DEMO_REDIS_PORT:-63799}"
redis_port="$STARTED_PORT"
upstream_port="$(pick_free_port "${DEMO_UPSTREAM_PORT:-8081}")"
start_demo_upstream "$demo_dir" "$upstream_port"

cat >"$demo_dir/routes.yaml" <<EOF
# Written by scripts/run.sh for the demo; see deploy/routes.example.yaml for every field.
routes:
  - name: data
    path_prefix: /api/v1/data/
    upstream: http://127.0.0.1:$upstream_port
    strip_prefix: false
    scopes: [data:read]
    methods: [GET]
    timeout_ms: 30000
EOF

# The salt and the admin key are kept, so keys made in an earlier run still work.
umask 077
if [[ ! -s "$demo_dir/api_key_salt" ]]; then
  head -c 64 /dev/urandom | base64 -w0 | tr -d '/+=' | head -c 48 >"$demo_dir/api_key_salt"
fi
if [[ ! -s "$demo_dir/admin_key" ]]; then
  secret="$("$BUILD_DIR/datahub" keys generate | grep -oE 'dh_(live|test)_[0-9A-Za-z]+' | head -n1)" ||
    true
  [[ -n "$secret" ]] || die "\`datahub keys generate\` printed no secret"
  printf '%s\n' "$secret" >"$demo_dir/admin_key"
fi
umask 022

export DATAHUB_ENV=development
export PORT="$gateway_port"
export BIND_ADDRESS=127.0.0.1
export DATABASE_URL="postgresql://postgres@127.0.0.1:$pg_port/datahub"
export REDIS_URL="redis://127.0.0.1:$redis_port"
export LOG_LEVEL="${LOG_LEVEL:-info}"
export LOG_FORMAT="${LOG_FORMAT:-json}"
API_KEY_SALT="$(cat "$demo_dir/api_key_salt")"
export API_KEY_SALT
ADMIN_API_KEY="$(head -n1 "$demo_dir/admin_key")"
export ADMIN_API_KEY
export ROUTES_FILE="$demo_dir/routes.yaml"
# A webhook receiver started on this machine is a fine target for a demo.
export WEBHOOK_ALLOW_PRIVATE_TARGETS="${WEBHOOK_ALLOW_PRIVATE_TARGETS:-true}"

(
  umask 077
  for name in DATAHUB_ENV PORT BIND_ADDRESS DATABASE_URL REDIS_URL LOG_LEVEL LOG_FORMAT \
    API_KEY_SALT ADMIN_API_KEY ROUTES_FILE WEBHOOK_ALLOW_PRIVATE_TARGETS; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done >"$demo_dir/env"
)

log "applying migrations"
"$BUILD_DIR/datahub" migrate 9>&-

base="http://127.0.0.1:$gateway_port"
cat <<EOF

DataHub is starting on $base (demo upstream: http://127.0.0.1:$upstream_port, settings:
scripts/run.sh --print-env). In another terminal, paste:

ADMIN='$ADMIN_API_KEY'

# Create a key with the data:read scope, 5 requests a minute; its secret is shown only once:
curl -s -X POST $base/api/v1/keys -H "Authorization: Bearer \$ADMIN" -H 'Content-Type: application/json' -d '{"name":"demo","scopes":["data:read"],"rate_limit":{"per_minute":5,"per_hour":100}}'

# The same, keeping the new secret in \$KEY:
KEY=\$(curl -s -X POST $base/api/v1/keys -H "Authorization: Bearer \$ADMIN" -H 'Content-Type: application/json' -d '{"name":"demo","scopes":["data:read"],"rate_limit":{"per_minute":5,"per_hour":100}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'); echo "\$KEY"

# List keys:
curl -s "$base/api/v1/keys?limit=10" -H "Authorization: Bearer \$ADMIN"

# Countries and currencies through the gateway, with the key's secret from the create answer:
curl -s -i $base/api/v1/data/countries -H "X-API-Key: \$KEY"
curl -s $base/api/v1/data/currencies -H "X-API-Key: \$KEY"

# The sixth request in a minute is refused with 429 and Retry-After:
for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code}\n' $base/api/v1/data/countries -H "X-API-Key: \$KEY"; done

# Readiness and metrics:
curl -s $base/health/ready
curl -s $base/metrics | grep '^datahub_'

EOF

log "starting datahub serve (Ctrl-C stops it and everything this script started)"
"$BUILD_DIR/datahub" serve 9>&- &
serve_pid=$!
on_exit stop_pid "$serve_pid" datahub 40
# Ctrl-C or a TERM sent to this script becomes a TERM for the gateway, its graceful shutdown;
# the other processes are stopped once it has exited.
trap 'kill -TERM "$serve_pid" 2>/dev/null || true' INT TERM
status=0
while :; do
  wait "$serve_pid" && status=0 || status=$?
  pid_is "$serve_pid" datahub || break
done
log "datahub exited with status $status"
exit "$status"
