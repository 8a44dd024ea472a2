#!/usr/bin/env bash
# A base backup of the cloud's database cluster into BACKUP_ROOT/base/<time>/ (compressed tar, with
# the WAL needed to make it consistent, and a SHA256SUMS). With the archived WAL it restores to any
# point after it (restore-cloud.sh). Run daily.
#
#   base-backup.sh HOST PORT BACKUP_ROOT
set -euo pipefail
host=${1:?HOST}; port=${2:?PORT}; root=${3:?BACKUP_ROOT}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
dir="$root/base/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$dir"
"$PGBIN/pg_basebackup" -h "$host" -p "$port" -U "${BACKUP_USER:-postgres}" -D "$dir" -Ft -z -X stream -c fast --no-password
(cd "$dir" && sha256sum -- *.tar.gz > SHA256SUMS)
echo "$dir"
