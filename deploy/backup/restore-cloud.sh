#!/usr/bin/env bash
# Restores the cloud's database cluster from a base backup and the archived WAL into a new data
# directory, replaying to the end of the archive (or to TARGET_TIME), then starts it as a primary on
# PORT. The data directory must not exist.
#
#   restore-cloud.sh BASE_BACKUP_DIR WAL_ARCHIVE_DIR DATA_DIR PORT [TARGET_TIME]
. "$(dirname "$0")/../postgres/lib.sh"
base=${1:?BASE_BACKUP_DIR}; archive=${2:?WAL_ARCHIVE_DIR}; data=${3:?DATA_DIR}; port=${4:?PORT}; target=${5:-}
[ ! -e "$data" ] || { echo "restore-cloud: $data exists" >&2; exit 1; }
(cd "$base" && sha256sum -c --quiet SHA256SUMS)
mkdir -p "$data"
tar -xzf "$base/base.tar.gz" -C "$data"
mkdir -p "$data/pg_wal"
tar -xzf "$base/pg_wal.tar.gz" -C "$data/pg_wal"
chmod 0700 "$data"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$data"
{
  echo "restore_command = 'cp $archive/%f %p'"
  echo "recovery_target_action = 'promote'"
  [ -n "$target" ] && echo "recovery_target_time = '$target'"
  # A restored cluster must not archive into the production archive.
  echo "archive_mode = off"
} | as_pg tee -a "$data/postgresql.auto.conf" >/dev/null
as_pg touch "$data/recovery.signal"
as_pg "$PGBIN/pg_ctl" -D "$data" -o "-p $port" -l "$data/restore.log" -w -t 300 start
log "restored into $data, listening on $port"
