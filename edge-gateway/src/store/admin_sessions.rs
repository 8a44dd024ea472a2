//! The lab admin's console sessions (`admin_sessions`, keyed by the SHA-256 of the cookie).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{admin_sessions, staff};
use time::OffsetDateTime;
use uuid::Uuid;

/// Opens a console session of `staff_id` under this cookie hash.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    id_hash: &[u8],
    staff_id: Uuid,
    csrf_token: &str,
    expires_at: OffsetDateTime,
) -> QueryResult<()> {
    diesel::insert_into(admin_sessions::table)
        .values((
            admin_sessions::id_sha256.eq(id_hash),
            admin_sessions::staff_id.eq(staff_id),
            admin_sessions::csrf_token.eq(csrf_token),
            admin_sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A live console session with its staff member.
#[derive(Queryable)]
pub struct LiveSession {
    /// The staff member.
    pub staff_id: Uuid,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When it ends.
    pub expires_at: OffsetDateTime,
    /// The staff member's role.
    pub role: String,
    /// Whether the cloud says they may work.
    pub active: bool,
    /// Their name.
    pub display_name: String,
}

/// The session of this cookie hash, if it is neither revoked nor over at `now`.
pub async fn live(
    conn: &mut AsyncPgConnection,
    id_hash: &[u8],
    now: OffsetDateTime,
) -> QueryResult<Option<LiveSession>> {
    admin_sessions::table
        .inner_join(staff::table.on(staff::id.eq(admin_sessions::staff_id)))
        .filter(admin_sessions::id_sha256.eq(id_hash))
        .filter(admin_sessions::revoked_at.is_null())
        .filter(admin_sessions::expires_at.gt(now))
        .select((
            staff::id,
            admin_sessions::csrf_token,
            admin_sessions::expires_at,
            staff::role,
            staff::active,
            staff::display_name,
        ))
        .first(conn)
        .await
        .optional()
}

/// Ends the session of this cookie hash.
pub async fn revoke(conn: &mut AsyncPgConnection, id_hash: &[u8], now: OffsetDateTime) -> QueryResult<()> {
    diesel::update(admin_sessions::table.find(id_hash))
        .set(admin_sessions::revoked_at.eq(now))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Removes the sessions ended (over or revoked) before `before`.
pub async fn purge(conn: &mut AsyncPgConnection, before: OffsetDateTime) -> QueryResult<usize> {
    diesel::delete(
        admin_sessions::table.filter(
            admin_sessions::expires_at
                .lt(before)
                .or(admin_sessions::revoked_at.lt(before)),
        ),
    )
    .execute(conn)
    .await
}

// The CSRF token stays out of logs.
impl std::fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSession")
            .field("staff_id", &self.staff_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
