//! The outbox: what the relay takes to the cloud, written in the transaction of the change it
//! carries (a tablet write, a conflict resolution, an audit checkpoint).

use diesel::prelude::*;
use diesel::sql_types::{Array, Jsonb, SmallInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_protocol::relay::RelayedMutation;
use labedge_schema::edge::schema::outbox;
use labedge_schema::prepared::KeepPrepared;

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

/// [`enqueue`] for a group of writes, with one statement whatever their number; the entries take
/// their sequence numbers in the order given.
pub async fn enqueue_many(conn: &mut AsyncPgConnection, mutations: &[RelayedMutation]) -> QueryResult<()> {
    let payloads = mutations
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(super::serde_failure)?;
    diesel::sql_query(
        "INSERT INTO outbox (mutation_id, lane, kind, entity_key, payload) \
         SELECT t.mutation_id, t.lane, t.kind, t.entity_key, t.payload \
         FROM unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY \
              AS t(mutation_id, lane, kind, entity_key, payload, i) \
         ORDER BY t.i",
    )
    .bind::<Array<SqlUuid>, _>(mutations.iter().map(|m| m.mutation_id).collect::<Vec<_>>())
    .bind::<Array<SmallInt>, _>(mutations.iter().map(|m| m.op.lane()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(mutations.iter().map(|m| m.op.kind()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(mutations.iter().map(|m| m.op.entity_key()).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(payloads)
    .prepared()
    .execute(conn)
    .await
    .map(|_| ())
}

/// Rows one purge statement removes: a short transaction each, so that a first purge of months of
/// entries neither holds a transaction id for long (the tablets' change log waits for the oldest,
/// `store::changes`) nor bloats one commit.
pub const PURGE_BATCH: i64 = 5_000;

/// Removes entries the cloud applied (`applied`, `duplicate`) and that were sent before `before`;
/// conflicts and quarantined entries stay (their tables keep their own copy, and the lab admin may
/// still want the entry). Answers how many.
pub async fn purge_sent(conn: &mut AsyncPgConnection, before: time::OffsetDateTime) -> QueryResult<usize> {
    let mut purged = 0;
    loop {
        let n = diesel::sql_query(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox \
             WHERE sent_at < $1 AND outcome IN ('applied', 'duplicate') ORDER BY seq LIMIT $2)",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(before)
        .bind::<diesel::sql_types::BigInt, _>(PURGE_BATCH)
        .execute(conn)
        .await?;
        purged += n;
        if (n as i64) < PURGE_BATCH {
            return Ok(purged);
        }
    }
}
