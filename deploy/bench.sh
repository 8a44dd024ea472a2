#!/usr/bin/env bash
# The benchmark (issue 8): LabEdge measured against the limits of this machine — nginx serving the
# same bytes as a static file, a bulk COPY of the same rows into the same database — and against a
# real sync server, pouchdb-server, every benchmark several times with a bounded duration, on
# 127.0.0.1 only. Installs what it needs when absent (PostgreSQL, Redis, nginx and wrk from Debian's
# packages; pouchdb-server and PouchDB from npm into tests/bench/node_modules, pinned by the committed
# package-lock.json), builds, runs, and writes target/bench/report.md and target/bench/report.json
# (the smoke: target/bench/smoke/). The figures and what limits them: docs/performance.md.
#
#   deploy/bench.sh                       # the full benchmark (release build; ~25 min on 2 cores after it)
#   deploy/bench.sh --smoke               # a few seconds each, small sizes, no target checked (CI)
#   deploy/bench.sh --out DIR             # write the report to DIR instead of target/bench
#   deploy/bench.sh --only read,write     # some of read, rounds, drain, pouch, write (the bootstrap
#                                         # always runs: it makes the gateway the others measure)
#   deploy/bench.sh --runs N --duration S --patients N   # other repetitions and sizes
#   deploy/bench.sh --smoke --release     # the smoke on the release build
#
# Profiling (docs/performance.md): LABEDGE_BENCH_PERF=<dir> records `perf record -e cpu-clock` of the
# gateway and of the whole machine during the first run of each benchmark that loads the gateway;
# LABEDGE_BENCH_GATEWAY_WRAP="valgrind --tool=callgrind …" starts the measured gateway under a tool.
#
# The full benchmark uses the release build. The smoke uses the debug build: CI builds it anyway for
# the tests just before, whereas a release build costs 10 to 20 minutes more on 2 cores (see
# ../shared/STACK.md: keep release builds out of CI); the smoke checks no target, only that every
# benchmark still runs end to end and writes its report.
#
# Note: on a machine with systemd, installing Debian's nginx package also starts its default site on
# port 80; the benchmark does not use it (it runs its own nginx on 127.0.0.1 with its own config).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. deploy/lib/services.sh

PROFILE=release
SMOKE=0
FORCE_RELEASE=0
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1; ARGS+=("$arg") ;;
    --release) FORCE_RELEASE=1 ;;
    *) ARGS+=("$arg") ;;
  esac
done
if [ "$SMOKE" = 1 ] && [ "$FORCE_RELEASE" = 0 ]; then PROFILE=debug; fi

ensure_rust
ensure_postgres
ensure_redis
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
if [ ! -f tests/bench/node_modules/pouchdb-server/package.json ] || [ ! -f tests/bench/node_modules/pouchdb/package.json ]; then
  log "installing pouchdb-server and PouchDB (npm ci in tests/bench)"
  # --omit=optional: without the SQLite adapter, which would compile for minutes; LevelDB is used.
  npm ci --prefix tests/bench --omit=optional --no-audit --no-fund --loglevel=error >/dev/null
fi

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "$PROFILE" = release ]; then
  log "building in release mode (the first build takes 10 to 20 minutes on 2 cores)"
  cargo build --release --workspace --bins --quiet
else
  log "building (debug)"
  cargo build --workspace --bins --quiet
fi

export LABEDGE_BENCH_ROOT="$ROOT"
export LABEDGE_BENCH_COMMAND="deploy/bench.sh${*:+ $*}"
export LABEDGE_TEST_REDIS="${LABEDGE_TEST_REDIS:-redis://127.0.0.1:6379}"
log "running the benchmark ($PROFILE build)"
exec "$TARGET/$PROFILE/labedge-bench" ${ARGS[@]+"${ARGS[@]}"}
