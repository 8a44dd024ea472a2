#!/usr/bin/env bash
# Promotes the standby of DATA_DIR to primary (the cloud's primary is lost: the central lab takes
# over). The central lab's API then says `primary` in /readyz and the gateways fail over to it.
#
#   promote.sh DATA_DIR
. "$(dirname "$0")/lib.sh"
data=${1:?DATA_DIR}
as_pg "$PGBIN/pg_ctl" -D "$data" -w promote
log "promoted: $data is the primary"
