//! What the lab admin does with writes the cloud did not take: conflicts (a tablet changed a record
//! the cloud had changed meanwhile) and dead letters (writes the cloud refused, or that failed too
//! often). Nothing is dropped silently: each stays listed until resolved, replayed or discarded.
//!
//! - Resolving a conflict `keep_server` accepts the cloud's state (the feed brings it);
//!   `reapply_local` sends the tablet's change again against the cloud's current version, as a new
//!   mutation.
//! - Replaying a dead letter sends it again as a new mutation (the cloud remembers the old id's
//!   refusal); discarding it lets the later writes of its record go on.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;
use crate::store::conflicts::{self as store, Locked};
pub use crate::store::conflicts::{ConflictView, DeadLetterView};

/// How many conflicts or dead letters the console lists.
const LISTED: i64 = 500;

/// How a conflict is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The cloud's state stands.
    KeepServer,
    /// The tablet's change is sent again against the cloud's current version.
    ReapplyLocal,
}

impl Resolution {
    fn as_str(self) -> &'static str {
        match self {
            Resolution::KeepServer => "keep_server",
            Resolution::ReapplyLocal => "reapply_local",
        }
    }
}

/// Every conflict, open ones first, newest first.
pub async fn list_conflicts(state: &AppState) -> Result<Vec<ConflictView>, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(store::list_conflicts(&mut conn, LISTED).await?)
}

/// Every dead letter, open ones first, newest first.
pub async fn list_dead_letters(state: &AppState) -> Result<Vec<DeadLetterView>, ApiError> {
    let mut conn = state.pool.get().await?;
    let mut letters = store::list_dead_letters(&mut conn, LISTED).await?;
    // A PIN hash is a credential's stand-in: the console has no use for it (a replay reads the row).
    for letter in &mut letters {
        if let Some(hash) = letter.payload.get_mut("pin_hash") {
            *hash = serde_json::Value::from("<redacted>");
        }
    }
    Ok(letters)
}

/// What was found locked, if it is still open: 404 when there is none, 409 when it was handled.
fn still_open(found: Option<Locked>) -> Result<Locked, ApiError> {
    match found {
        None => Err(ApiError::not_found()),
        Some(locked) if locked.handled => Err(ProblemError::new(ErrorCode::Conflict)
            .detail("this was already handled")
            .into()),
        Some(locked) => Ok(locked),
    }
}

/// Re-enqueues `payload` as a new mutation (same operation, new id), with `if_version` replaced when
/// given. Returns the new mutation id.
async fn requeue(
    conn: &mut AsyncPgConnection,
    payload: &serde_json::Value,
    if_version: Option<i64>,
) -> Result<Uuid, ApiError> {
    let mut mutation: RelayedMutation =
        serde_json::from_value(payload.clone()).map_err(|e| anyhow::anyhow!("unreadable queued write: {e}"))?;
    if let (
        RelayedOp::AppointmentUpdate {
            if_version: version, ..
        },
        Some(new),
    ) = (&mut mutation.op, if_version)
    {
        *version = new;
    }
    mutation.mutation_id = Uuid::now_v7();
    mutation.recorded_at = OffsetDateTime::now_utc();
    crate::store::outbox::enqueue(conn, &mutation).await?;
    Ok(mutation.mutation_id)
}

/// Resolves an open conflict.
pub async fn resolve_conflict(state: &AppState, admin: Uuid, id: Uuid, resolution: Resolution) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let conflict = still_open(store::lock_conflict(conn, id).await?)?;
        if resolution == Resolution::ReapplyLocal {
            requeue(conn, &conflict.payload, conflict.server_version).await?;
        }
        store::resolve(conn, id, admin, resolution.as_str(), OffsetDateTime::now_utc()).await?;
        Ok(())
    })
    .await?;
    state.wrote();
    Ok(())
}

/// Replays (`replay = true`) or discards an open dead letter.
pub async fn handle_dead_letter(state: &AppState, admin: Uuid, id: Uuid, replay: bool) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let letter = still_open(store::lock_dead_letter(conn, id).await?)?;
        if replay {
            requeue(conn, &letter.payload, None).await?;
        }
        store::close_dead_letter(conn, id, admin, replay, OffsetDateTime::now_utc()).await?;
        Ok(())
    })
    .await?;
    state.wrote();
    Ok(())
}
