//! What the lab admin does with writes the cloud did not take: conflicts (a tablet changed a record
//! the cloud had changed meanwhile) and dead letters (writes the cloud refused, or that failed too
//! often). Nothing is dropped silently: each stays listed until resolved, replayed or discarded.
//!
//! - Resolving a conflict `keep_server` accepts the cloud's state (the feed brings it);
//!   `reapply_local` sends the tablet's change again against the cloud's current version, as a new
//!   mutation.
//! - Replaying a dead letter sends it again as a new mutation (the cloud remembers the old id's
//!   refusal); discarding it lets the later writes of its record go on.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use labedge_schema::edge::schema::{conflicts, dead_letters};
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::state::AppState;

/// A conflict as the console lists it.
#[derive(Debug, Serialize, Deserialize, Queryable)]
pub struct ConflictView {
    /// Id.
    pub id: Uuid,
    /// The record (`appointment:<id>`).
    pub entity_key: String,
    /// What the tablet sent.
    pub local_payload: serde_json::Value,
    /// The cloud's version when it refused.
    pub server_version: Option<i64>,
    /// The cloud's state then.
    pub server_state: Option<serde_json::Value>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
    /// When resolved.
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// How.
    pub resolution: Option<String>,
}

/// A dead letter as the console lists it.
#[derive(Debug, Serialize, Deserialize, Queryable)]
pub struct DeadLetterView {
    /// Id.
    pub id: Uuid,
    /// `collection.create`, `appointment.update`, …
    pub kind: String,
    /// The record.
    pub entity_key: String,
    /// Why it was quarantined.
    pub reason: String,
    /// Attempts made.
    pub attempts: i32,
    /// What it carries.
    pub payload: serde_json::Value,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub quarantined_at: OffsetDateTime,
    /// When replayed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub replayed_at: Option<OffsetDateTime>,
    /// When discarded.
    #[serde(with = "time::serde::rfc3339::option")]
    pub discarded_at: Option<OffsetDateTime>,
}

/// How a conflict is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The cloud's state stands.
    KeepServer,
    /// The tablet's change is sent again against the cloud's current version.
    ReapplyLocal,
}

/// Every conflict, open ones first, newest first.
pub async fn list_conflicts(state: &AppState) -> Result<Vec<ConflictView>, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(conflicts::table
        .order((conflicts::resolved_at.is_not_null(), conflicts::detected_at.desc()))
        .limit(500)
        .select((
            conflicts::id,
            conflicts::entity_key,
            conflicts::local_payload,
            conflicts::server_version,
            conflicts::server_state,
            conflicts::detected_at,
            conflicts::resolved_at,
            conflicts::resolution,
        ))
        .load(&mut conn)
        .await?)
}

/// Every dead letter, open ones first, newest first.
pub async fn list_dead_letters(state: &AppState) -> Result<Vec<DeadLetterView>, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(dead_letters::table
        .order((
            (dead_letters::replayed_at
                .is_not_null()
                .or(dead_letters::discarded_at.is_not_null())),
            dead_letters::quarantined_at.desc(),
        ))
        .limit(500)
        .select((
            dead_letters::id,
            dead_letters::kind,
            dead_letters::entity_key,
            dead_letters::reason,
            dead_letters::attempts,
            dead_letters::payload,
            dead_letters::quarantined_at,
            dead_letters::replayed_at,
            dead_letters::discarded_at,
        ))
        .load(&mut conn)
        .await?)
}

fn already_handled() -> ApiError {
    ProblemError::new(ErrorCode::Conflict)
        .detail("this was already handled")
        .into()
}

/// Re-enqueues `payload` as a new mutation (same operation, new id), with `if_version` replaced when
/// given. Returns the new mutation id.
async fn requeue(
    conn: &mut diesel_async::AsyncPgConnection,
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
        let found: Option<(serde_json::Value, Option<i64>, Option<OffsetDateTime>)> = conflicts::table
            .find(id)
            .select((
                conflicts::local_payload,
                conflicts::server_version,
                conflicts::resolved_at,
            ))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some((payload, server_version, resolved)) = found else {
            return Err(ApiError::not_found());
        };
        if resolved.is_some() {
            return Err(already_handled());
        }
        if resolution == Resolution::ReapplyLocal {
            requeue(conn, &payload, server_version).await?;
        }
        diesel::update(conflicts::table.find(id))
            .set((
                conflicts::resolved_at.eq(OffsetDateTime::now_utc()),
                conflicts::resolved_by.eq(admin),
                conflicts::resolution.eq(if resolution == Resolution::KeepServer {
                    "keep_server"
                } else {
                    "reapply_local"
                }),
            ))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await?;
    state.relay_wakeup.notify_one();
    Ok(())
}

/// Replays (`replay = true`) or discards an open dead letter.
pub async fn handle_dead_letter(state: &AppState, admin: Uuid, id: Uuid, replay: bool) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, ApiError, _>(async move |conn| {
        let found: Option<(serde_json::Value, Option<OffsetDateTime>, Option<OffsetDateTime>)> = dead_letters::table
            .find(id)
            .select((
                dead_letters::payload,
                dead_letters::replayed_at,
                dead_letters::discarded_at,
            ))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some((payload, replayed, discarded)) = found else {
            return Err(ApiError::not_found());
        };
        if replayed.is_some() || discarded.is_some() {
            return Err(already_handled());
        }
        let now = OffsetDateTime::now_utc();
        if replay {
            requeue(conn, &payload, None).await?;
            diesel::update(dead_letters::table.find(id))
                .set((dead_letters::replayed_at.eq(now), dead_letters::handled_by.eq(admin)))
                .execute(conn)
                .await?;
        } else {
            diesel::update(dead_letters::table.find(id))
                .set((dead_letters::discarded_at.eq(now), dead_letters::handled_by.eq(admin)))
                .execute(conn)
                .await?;
        }
        Ok(())
    })
    .await?;
    state.relay_wakeup.notify_one();
    Ok(())
}
