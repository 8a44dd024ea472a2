#!/usr/bin/env bash
# Promotes the standby of DATA_DIR to primary (the cloud's primary is lost: the central lab takes
# over). The central lab's API then says `primary` in /readyz and the gateways fail over to it.
#
#   promote.sh DATA_DIR
#
# The new primary runs alone until the old one rejoins (rejoin.sh): it must not wait for a
# synchronous standby that is gone, or every critical write (a specimen collection, committed with
# synchronous_commit = on) would hang. Synchronous replication is off until rejoin.sh names the
# rejoined node; until then a collection is durable on the central lab's disk only (docs/operations.md).
. "$(dirname "$0")/lib.sh"
data=${1:?DATA_DIR}
as_pg "$PGBIN/pg_ctl" -D "$data" -w promote
pg_local "$data" "ALTER SYSTEM SET synchronous_standby_names = ''"
pg_local "$data" "SELECT pg_reload_conf()" >/dev/null
log "promoted: $data is the primary (no synchronous standby until a node rejoins)"
