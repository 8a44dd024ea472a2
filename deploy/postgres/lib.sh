# Shared by the replication scripts. Sourced.
set -euo pipefail
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
# PostgreSQL refuses to run as root: run its tools as the postgres user when called by root.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
