#!/usr/bin/env bash
# Runs the whole test suite, the way CI does: installs missing packages, checks formatting, builds
# (RelWithDebInfo), starts a private PostgreSQL and Redis on free loopback ports under
# .run/test-<pid>/, runs ctest against them and stops them again. Exits with ctest's status.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -L integration  extra arguments go to ctest
#   scripts/test.sh --services      only start PostgreSQL and Redis, print their URLs and wait
#                                   (Ctrl-C stops them), for running test binaries by hand
#
# Environment: DATAHUB_BUILD_DIR (default build/), DATAHUB_JOBS (default: all cores),
# DATAHUB_SKIP_PACKAGES=1, DATAHUB_SKIP_BUILD=1, DATAHUB_SKIP_FORMAT=1, CTEST_PARALLEL (default 2).
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$DATAHUB_ROOT"

services_only=0
if [[ "${1:-}" == "--services" ]]; then
  services_only=1
  shift
fi

# Prints the tracked C++ files that clang-format would change; fails when there are any.
check_format() {
  local files=() bad=() f
  if ! command -v clang-format >/dev/null 2>&1; then
    log "clang-format not installed; skipping the format check"
    return 0
  fi
  if git -C "$DATAHUB_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git -C "$DATAHUB_ROOT" ls-files -- '*.cpp' '*.hpp')
  else
    mapfile -t files < <(find . -path ./build -prune -o -path ./.run -prune -o \
      \( -name '*.cpp' -o -name '*.hpp' \) -print | sed 's|^\./||' | sort)
  fi
  for f in "${files[@]}"; do
    [[ -f "$f" ]] || continue
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
      bad+=("$f")
    fi
  done
  if [[ ${#bad[@]} -gt 0 ]]; then
    printf 'clang-format: %d file(s) not formatted (fix with: clang-format -i FILE):\n' \
      "${#bad[@]}" >&2
    printf '  %s\n' "${bad[@]}" >&2
    return 1
  fi
  log "clang-format: ${#files[@]} files checked, all formatted"
}

remove_run_dir() {
  local dir="$1" home
  home="$(pg_home "$dir")"
  if [[ "$home" != "$dir/pg" ]]; then
    rm -rf "$home"
  fi
  rm -rf "$dir"
}

install_cleanup_traps
ensure_packages

format_status=0
if [[ $services_only == 0 && "${DATAHUB_SKIP_FORMAT:-0}" != 1 ]]; then
  check_format || format_status=1
fi

if [[ $services_only == 0 ]]; then
  build RelWithDebInfo
fi

run_dir="$RUN_ROOT/test-$$"
mkdir -p "$run_dir"
# Registered first, so it runs last: after PostgreSQL and Redis have stopped.
on_exit remove_run_dir "'$run_dir'"

start_on_free_port postgres "$run_dir" "$(random_port_base)"
pg_port="$STARTED_PORT"
start_on_free_port redis "$run_dir" "$(random_port_base)"
redis_port="$STARTED_PORT"

export DATAHUB_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$pg_port/datahub"
export DATAHUB_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

if [[ $services_only == 1 ]]; then
  printf '\nexport DATAHUB_TEST_DATABASE_URL=%s\nexport DATAHUB_TEST_REDIS_URL=%s\n\n' \
    "$DATAHUB_TEST_DATABASE_URL" "$DATAHUB_TEST_REDIS_URL"
  log "PostgreSQL and Redis are running; Ctrl-C stops them"
  while true; do sleep 1; done
fi

log "running ctest"
ctest_status=0
ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j"${CTEST_PARALLEL:-2}" "$@" ||
  ctest_status=$?

if [[ $ctest_status -ne 0 ]]; then
  log "ctest failed (status $ctest_status)"
  exit "$ctest_status"
fi
if [[ $format_status -ne 0 ]]; then
  log "tests passed, but the format check failed (see above)"
  exit 1
fi
exit 0
