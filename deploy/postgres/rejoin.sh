#!/usr/bin/env bash
# Turns the old primary of OLD_DATA_DIR into a standby of the new primary at HOST:PORT (failback
# starts here): pg_rewind when its history allows it, else a fresh base backup. Starts it on
# LISTEN_PORT under NAME, waits until it streams, then makes it the new primary's synchronous
# standby for critical writes again (promote.sh had turned synchronous replication off).
#
#   rejoin.sh OLD_DATA_DIR HOST PORT [NAME] [LISTEN_PORT]
. "$(dirname "$0")/lib.sh"
data=${1:?OLD_DATA_DIR}; host=${2:?HOST}; port=${3:?PORT}; name=${4:-cloud}; listen=${5:-5432}
user=${REPLICATION_USER:-postgres}
# psql on the new primary.
pg_remote() { as_pg "$PGBIN/psql" -X -q -At -h "$host" -p "$port" -U "$user" -d postgres --no-password -c "$1"; }
as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w stop 2>/dev/null || true
# Right after a promotion the new primary's control file still names the old timeline until its
# next checkpoint, and pg_rewind would then wrongly find "no rewind required".
pg_remote CHECKPOINT
if as_pg "$PGBIN/pg_rewind" --target-pgdata="$data" \
     --source-server="host=$host port=$port user=$user dbname=postgres" --write-recovery-conf --progress; then
  log "rewound $data onto $host:$port"
  # pg_rewind copied the new primary's postgresql.auto.conf, which still names the slot it used
  # as a standby (on the old primary, here): this node streams under its own name and slot.
  pg_remote "SELECT pg_create_physical_replication_slot('${name}_slot', true)
             WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '${name}_slot')" >/dev/null
  printf "primary_conninfo = 'host=%s port=%s user=%s application_name=%s'\nprimary_slot_name = '%s_slot'\n" \
    "$host" "$port" "$user" "$name" "$name" | as_pg tee -a "$data/postgresql.auto.conf" >/dev/null
else
  log "pg_rewind failed: rebuilding $data from a base backup"
  rm -rf "$data"
  pg_remote "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${name}_slot'" >/dev/null
  as_pg "$PGBIN/pg_basebackup" -d "host=$host port=$port user=$user application_name=$name" \
    -D "$data" -X stream -R -C -S "${name}_slot" -c fast --no-password
fi
# The log beside the data folder, not in it: pg_rewind would copy the other node's log over it.
as_pg "$PGBIN/pg_ctl" -D "$data" -o "-p $listen" -l "$data.log" -w -t 120 start || {
  tail -n 30 "$data.log" >&2
  exit 1
}
log "$data is a standby of $host:$port, listening on $listen"
pg_remote "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ($name)'"
pg_remote "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 120); do
  state=$(pg_remote "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'")
  [ "$state" = sync ] && { log "$name is the synchronous standby of $host:$port"; exit 0; }
  sleep 0.5
done
log "warning: $name does not stream synchronously yet (sync_state '${state:-none}'): critical writes wait for it"
exit 1
