//! Audit checkpoints uploaded by the gateways (completed with the audit chain work).

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use labedge_schema::relay::{AckOutcome, MutationAck, RelayedMutation};
use uuid::Uuid;

/// Records a gateway's audit checkpoint.
pub async fn apply(
    _conn: &mut AsyncPgConnection,
    _lab_id: Uuid,
    mutation: &RelayedMutation,
) -> QueryResult<MutationAck> {
    Ok(MutationAck {
        mutation_id: mutation.mutation_id,
        outcome: AckOutcome::Rejected,
        current_version: None,
        current: None,
        reason: Some("unsupported: audit checkpoints are not accepted yet".into()),
    })
}
