# Shared by the replication scripts. Sourced.
set -euo pipefail
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
# PostgreSQL refuses to run as root: run its tools as the postgres user when called by root.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
# psql as the postgres user on the local server of a running DATA_DIR (its socket and port are in
# postmaster.pid): pg_local DATA_DIR SQL
pg_local() {
  local data=$1 sql=$2
  as_pg "$PGBIN/psql" -X -q -At -h "$(sed -n 5p "$data/postmaster.pid")" -p "$(sed -n 4p "$data/postmaster.pid")" \
    -d postgres -c "$sql"
}
