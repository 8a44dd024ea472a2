//! What the revocation checks read when Redis cannot answer, and what is copied to Redis: revoked
//! devices, staff members (inactive, or revoked here) and sessions, across their tables.

use diesel::QueryableByName;
use diesel::result::QueryResult;
use diesel::sql_types::{Bool, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The standing of a device, a staff member and a session, each `None` when there is no such row.
#[derive(Debug, QueryableByName)]
pub struct StandingRow {
    /// The device is not active.
    #[diesel(sql_type = Nullable<Bool>)]
    pub device_revoked: Option<bool>,
    /// The staff member is inactive or revoked here.
    #[diesel(sql_type = Nullable<Bool>)]
    pub staff_revoked: Option<bool>,
    /// The session was ended or its grace is over.
    #[diesel(sql_type = Nullable<Bool>)]
    pub session_revoked: Option<bool>,
    /// The device's certificate binding (SHA-256, hex), read in the same round trip.
    #[diesel(sql_type = Nullable<Text>)]
    pub device_cert: Option<String>,
}

/// The standing of `device`, `staff` and `session`, in one query.
pub async fn standing(
    conn: &mut AsyncPgConnection,
    device: Uuid,
    staff: Uuid,
    session: Uuid,
) -> QueryResult<StandingRow> {
    diesel::sql_query(
        "SELECT (SELECT status <> 'active' FROM devices WHERE id = $1) AS device_revoked, \
                (SELECT NOT s.active OR EXISTS (SELECT 1 FROM staff_revocations r WHERE r.staff_id = s.id) \
                   FROM staff s WHERE s.id = $2) AS staff_revoked, \
                (SELECT revoked_at IS NOT NULL OR expires_at < now() FROM auth_sessions WHERE id = $3) AS session_revoked, \
                (SELECT cert_sha256 FROM devices WHERE id = $1) AS device_cert",
    )
    .bind::<SqlUuid, _>(device)
    .bind::<SqlUuid, _>(staff)
    .bind::<SqlUuid, _>(session)
    .get_result(conn)
    .await
}

/// One revoked thing.
#[derive(Debug, QueryableByName)]
pub struct Revoked {
    /// `device`, `staff` or `session`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Its id.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
}

/// Every revoked device and staff member, and every ended session whose grace is not over.
pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Revoked>> {
    diesel::sql_query(
        "SELECT 'device' AS kind, id FROM devices WHERE status <> 'active' \
         UNION ALL SELECT 'staff', id FROM staff WHERE NOT active \
         UNION ALL SELECT 'staff', staff_id FROM staff_revocations \
         UNION ALL SELECT 'session', id FROM auth_sessions WHERE revoked_at IS NOT NULL AND expires_at > now()",
    )
    .load(conn)
    .await
}
