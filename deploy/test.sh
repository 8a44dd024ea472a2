#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL and Redis on 127.0.0.1 (started, or installed
# from Debian's packages, when absent). Extra arguments go to the test runner.
#
#   deploy/test.sh                 # everything
#   deploy/test.sh -E 'test(nir)'  # a filter (cargo-nextest syntax)
#   deploy/test.sh --long          # the fault suite's long runs too (more cycles, writes, examples)
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib/services.sh

if [ "${1:-}" = --long ]; then
  shift
  export LABEDGE_LONG=1
fi

ensure_rust
ensure_postgres
ensure_redis
ensure_test_tools
export LABEDGE_TEST_PG="$LABEDGE_PG"
export LABEDGE_TEST_REDIS="redis://127.0.0.1:6379"

# End-to-end tests start the real binaries: build them first.
log "building"
cargo build --workspace --bins --quiet
if cargo nextest --version >/dev/null 2>&1; then
  log "running the tests (cargo-nextest)"
  cargo nextest run --workspace --all-features --no-fail-fast "$@"
  # nextest does not run doctests.
  cargo test --workspace --all-features --doc --quiet
else
  log "running the tests (cargo test; install cargo-nextest for per-test processes)"
  cargo test --workspace --all-features --no-fail-fast "$@"
fi
