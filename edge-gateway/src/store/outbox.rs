//! The outbox: what the relay takes to the cloud, written in the transaction of the change it
//! carries (a tablet write, a conflict resolution, an audit checkpoint).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_protocol::relay::RelayedMutation;
use labedge_schema::edge::schema::outbox;

/// Queues `mutation` for the relay, in the caller's transaction.
pub async fn enqueue(conn: &mut AsyncPgConnection, mutation: &RelayedMutation) -> QueryResult<()> {
    let payload = serde_json::to_value(mutation).map_err(super::serde_failure)?;
    diesel::insert_into(outbox::table)
        .values((
            outbox::mutation_id.eq(mutation.mutation_id),
            outbox::lane.eq(mutation.op.lane()),
            outbox::kind.eq(mutation.op.kind()),
            outbox::entity_key.eq(mutation.op.entity_key()),
            outbox::payload.eq(payload),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
