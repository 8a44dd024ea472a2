#!/usr/bin/env bash
# Turns the old primary of OLD_DATA_DIR into a standby of the new primary at HOST:PORT (failback
# starts here): pg_rewind when its history allows it, else a fresh base backup. Starts it on
# LISTEN_PORT under NAME.
#
#   rejoin.sh OLD_DATA_DIR HOST PORT [NAME] [LISTEN_PORT]
. "$(dirname "$0")/lib.sh"
data=${1:?OLD_DATA_DIR}; host=${2:?HOST}; port=${3:?PORT}; name=${4:-cloud}; listen=${5:-5432}
user=${REPLICATION_USER:-postgres}
as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w stop 2>/dev/null || true
if as_pg "$PGBIN/pg_rewind" --target-pgdata="$data" \
     --source-server="host=$host port=$port user=$user dbname=postgres" --write-recovery-conf --progress; then
  log "rewound $data onto $host:$port"
  # pg_rewind copied the new primary's settings: this node listens where it did before.
  echo "primary_conninfo = 'host=$host port=$port user=$user application_name=$name'" | as_pg tee -a "$data/postgresql.auto.conf" >/dev/null
else
  log "pg_rewind failed: rebuilding $data from a base backup"
  rm -rf "$data"
  as_pg "$PGBIN/pg_basebackup" -d "host=$host port=$port user=$user application_name=$name" \
    -D "$data" -X stream -R -c fast --no-password
fi
as_pg "$PGBIN/pg_ctl" -D "$data" -o "-p $listen" -l "$data/standby.log" -w start
log "$data is a standby of $host:$port, listening on $listen"
