//! Conflicts and dead letters: the writes the cloud did not take, as the lab admin lists and
//! handles them (the relay files them).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{conflicts, dead_letters};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A conflict as the console lists it. The payloads stay the stored documents: the tablet's write
/// as it was queued, and the cloud's record of whatever kind, shown to the admin as they are.
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

/// A dead letter as the console lists it (its payload: the write as it was queued).
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

/// Conflicts, open ones first, newest first, at most `limit`.
pub async fn list_conflicts(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<ConflictView>> {
    conflicts::table
        .order((conflicts::resolved_at.is_not_null(), conflicts::detected_at.desc()))
        .limit(limit)
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
        .load(conn)
        .await
}

/// Dead letters, open ones first, newest first, at most `limit`.
pub async fn list_dead_letters(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<DeadLetterView>> {
    dead_letters::table
        .order((
            (dead_letters::replayed_at
                .is_not_null()
                .or(dead_letters::discarded_at.is_not_null())),
            dead_letters::quarantined_at.desc(),
        ))
        .limit(limit)
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
        .load(conn)
        .await
}

/// A conflict or a dead letter being handled, locked until the transaction ends.
#[derive(Debug)]
pub struct Locked {
    /// The write as it was queued.
    pub payload: serde_json::Value,
    /// The cloud's version (conflicts).
    pub server_version: Option<i64>,
    /// Whether it was handled already (resolved; replayed or discarded).
    pub handled: bool,
}

/// Conflict `id`, locked (`FOR UPDATE`).
pub async fn lock_conflict(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Locked>> {
    let row: Option<(serde_json::Value, Option<i64>, Option<OffsetDateTime>)> = conflicts::table
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
    Ok(row.map(|(payload, server_version, resolved)| Locked {
        payload,
        server_version,
        handled: resolved.is_some(),
    }))
}

/// Marks conflict `id` resolved by `admin` (`keep_server` or `reapply_local`).
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    admin: Uuid,
    resolution: &str,
    now: OffsetDateTime,
) -> QueryResult<()> {
    diesel::update(conflicts::table.find(id))
        .set((
            conflicts::resolved_at.eq(now),
            conflicts::resolved_by.eq(admin),
            conflicts::resolution.eq(resolution),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Dead letter `id`, locked (`FOR UPDATE`).
pub async fn lock_dead_letter(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Locked>> {
    let row: Option<(serde_json::Value, Option<OffsetDateTime>, Option<OffsetDateTime>)> = dead_letters::table
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
    Ok(row.map(|(payload, replayed, discarded)| Locked {
        payload,
        server_version: None,
        handled: replayed.is_some() || discarded.is_some(),
    }))
}

/// Marks dead letter `id` replayed (`replayed = true`) or discarded by `admin`.
pub async fn close_dead_letter(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    admin: Uuid,
    replayed: bool,
    now: OffsetDateTime,
) -> QueryResult<()> {
    let row = dead_letters::table.find(id);
    if replayed {
        diesel::update(row)
            .set((dead_letters::replayed_at.eq(now), dead_letters::handled_by.eq(admin)))
            .execute(conn)
            .await?;
    } else {
        diesel::update(row)
            .set((dead_letters::discarded_at.eq(now), dead_letters::handled_by.eq(admin)))
            .execute(conn)
            .await?;
    }
    Ok(())
}
