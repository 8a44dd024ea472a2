//! Staff sessions on tablets (`auth_sessions`) and their rotating refresh tokens (`refresh_tokens`,
//! stored as SHA-256 hashes).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{auth_sessions, refresh_tokens};
use time::OffsetDateTime;
use uuid::Uuid;

/// A session being opened.
#[derive(Debug)]
pub struct NewSession {
    /// Its id.
    pub id: Uuid,
    /// The device.
    pub device_id: Uuid,
    /// The staff member.
    pub staff_id: Uuid,
    /// The certificate (SHA-256, hex) the login came with, if any.
    pub cert_sha256: Option<String>,
    /// The end of its offline grace.
    pub expires_at: OffsetDateTime,
}

/// Opens `session`.
pub async fn insert(conn: &mut AsyncPgConnection, session: &NewSession) -> QueryResult<()> {
    diesel::insert_into(auth_sessions::table)
        .values((
            auth_sessions::id.eq(session.id),
            auth_sessions::device_id.eq(session.device_id),
            auth_sessions::staff_id.eq(session.staff_id),
            auth_sessions::cert_sha256.eq(&session.cert_sha256),
            auth_sessions::expires_at.eq(session.expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A session as a refresh checks it.
#[derive(Debug, Queryable)]
pub struct Session {
    /// The device it was opened on.
    pub device_id: Uuid,
    /// The staff member.
    pub staff_id: Uuid,
    /// The certificate it was opened with.
    pub cert_sha256: Option<String>,
    /// The end of its offline grace.
    pub expires_at: OffsetDateTime,
    /// When it was ended, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Session `id`.
pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Session> {
    auth_sessions::table
        .find(id)
        .select((
            auth_sessions::device_id,
            auth_sessions::staff_id,
            auth_sessions::cert_sha256,
            auth_sessions::expires_at,
            auth_sessions::revoked_at,
        ))
        .first(conn)
        .await
}

/// The end of session `id`'s offline grace.
pub async fn grace_until(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<OffsetDateTime> {
    auth_sessions::table
        .find(id)
        .select(auth_sessions::expires_at)
        .first(conn)
        .await
}

/// Ends session `id` (if it is not ended yet) for `reason`.
pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid, reason: &str, now: OffsetDateTime) -> QueryResult<()> {
    diesel::update(
        auth_sessions::table
            .find(id)
            .filter(auth_sessions::revoked_at.is_null()),
    )
    .set((
        auth_sessions::revoked_at.eq(now),
        auth_sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Whose live sessions [`revoke_all_of`] ends.
#[derive(Clone, Copy, Debug)]
pub enum Owner {
    /// Every session on a device.
    Device(Uuid),
    /// Every session of a staff member.
    Staff(Uuid),
}

/// Ends every live session of `owner` for `reason`; the ids of the sessions it ended.
pub async fn revoke_all_of(
    conn: &mut AsyncPgConnection,
    owner: Owner,
    reason: &str,
    now: OffsetDateTime,
) -> QueryResult<Vec<Uuid>> {
    let live = auth_sessions::table.filter(auth_sessions::revoked_at.is_null());
    let ended = (
        auth_sessions::revoked_at.eq(now),
        auth_sessions::revoked_reason.eq(reason),
    );
    match owner {
        Owner::Device(id) => {
            diesel::update(live.filter(auth_sessions::device_id.eq(id)))
                .set(ended)
                .returning(auth_sessions::id)
                .get_results(conn)
                .await
        }
        Owner::Staff(id) => {
            diesel::update(live.filter(auth_sessions::staff_id.eq(id)))
                .set(ended)
                .returning(auth_sessions::id)
                .get_results(conn)
                .await
        }
    }
}

/// Stores a refresh token of `session` by its hash.
pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    session: Uuid,
    hash: &[u8],
    expires_at: OffsetDateTime,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_sha256.eq(hash),
            refresh_tokens::session_id.eq(session),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A refresh token as stored.
#[derive(Debug, Queryable)]
pub struct RefreshToken {
    /// Its session.
    pub session_id: Uuid,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was spent, if it was.
    pub used_at: Option<OffsetDateTime>,
}

/// The refresh token of this hash.
pub async fn refresh_token(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .find(hash)
        .select((
            refresh_tokens::session_id,
            refresh_tokens::expires_at,
            refresh_tokens::used_at,
        ))
        .first(conn)
        .await
        .optional()
}

/// Spends the refresh token of this hash if it is unspent, in one statement: of two concurrent
/// uses, exactly one gets `true`.
pub async fn spend_refresh_token(conn: &mut AsyncPgConnection, hash: &[u8], now: OffsetDateTime) -> QueryResult<bool> {
    let spent = diesel::update(
        refresh_tokens::table
            .find(hash)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(now))
    .execute(conn)
    .await?;
    Ok(spent > 0)
}

/// Rows removed by [`purge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgedSessions {
    /// `refresh_tokens`.
    pub refresh_tokens: usize,
    /// `auth_sessions`.
    pub auth_sessions: usize,
}

/// Removes the sessions ended (grace over or revoked) before `sessions_before` with their refresh
/// tokens, and the refresh tokens expired before `tokens_before`.
pub async fn purge(
    conn: &mut AsyncPgConnection,
    sessions_before: OffsetDateTime,
    tokens_before: OffsetDateTime,
) -> QueryResult<PurgedSessions> {
    let ended = auth_sessions::expires_at
        .lt(sessions_before)
        .or(auth_sessions::revoked_at.lt(sessions_before));
    // A session's refresh tokens go with it (they reference it), whatever their own expiry.
    let refresh_tokens = diesel::delete(
        refresh_tokens::table.filter(
            refresh_tokens::expires_at
                .lt(tokens_before)
                .or(refresh_tokens::session_id.eq_any(auth_sessions::table.filter(ended).select(auth_sessions::id))),
        ),
    )
    .execute(conn)
    .await?;
    let auth_sessions = diesel::delete(auth_sessions::table.filter(ended)).execute(conn).await?;
    Ok(PurgedSessions {
        refresh_tokens,
        auth_sessions,
    })
}
