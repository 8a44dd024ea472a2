#!/usr/bin/env bash
# Builds a streaming standby of the primary at HOST:PORT into DATA_DIR, named NAME (the name the
# primary's synchronous_standby_names knows), with a replication slot, and starts it on LISTEN_PORT.
#
#   build-standby.sh HOST PORT DATA_DIR [NAME] [LISTEN_PORT]
. "$(dirname "$0")/lib.sh"
host=${1:?HOST}; port=${2:?PORT}; data=${3:?DATA_DIR}; name=${4:-central}; listen=${5:-5432}
user=${REPLICATION_USER:-postgres}
log "base backup of $host:$port into $data (standby $name)"
as_pg "$PGBIN/pg_basebackup" -d "host=$host port=$port user=$user application_name=$name" \
  -D "$data" -X stream -R -C -S "${name}_slot" -c fast --no-password
as_pg "$PGBIN/pg_ctl" -D "$data" -o "-p $listen" -l "$data.log" -w start
log "standby $name streaming from $host:$port, listening on $listen"
