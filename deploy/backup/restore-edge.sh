#!/usr/bin/env bash
# Restores a lab gateway's database from its dump into an empty database (created beforehand).
#
#   restore-edge.sh DUMP_FILE DATABASE_URL
set -euo pipefail
dump=${1:?DUMP_FILE}; url=${2:?DATABASE_URL}
[ -f "$dump.sha256" ] && sha256sum -c --quiet "$dump.sha256"
pg_restore --exit-on-error --no-owner --dbname="$url" "$dump"
echo "restored $dump"
