//! Staff members (synced from the cloud) as logins read them, and their revocations at this
//! gateway.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{staff, staff_revocations};
use uuid::Uuid;

/// What a PIN login or a refresh checks of a staff member.
#[derive(Queryable, Selectable)]
#[diesel(table_name = staff)]
pub struct Member {
    /// Id.
    pub id: Uuid,
    /// Login.
    pub login: String,
    /// Name.
    pub display_name: String,
    /// `nurse`, `home_sampler` or `lab_admin`.
    pub role: String,
    /// The argon2 hash of their PIN.
    pub pin_hash: String,
    /// Whether the cloud says they may work.
    pub active: bool,
}

/// The staff member of `lab` with this (lower-cased) login.
pub async fn by_login(conn: &mut AsyncPgConnection, lab: Uuid, login: &str) -> QueryResult<Option<Member>> {
    staff::table
        .filter(staff::lab_id.eq(lab))
        .filter(staff::login.eq(login))
        .select(Member::as_select())
        .first(conn)
        .await
        .optional()
}

/// Staff member `id`.
pub async fn by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Member> {
    staff::table.find(id).select(Member::as_select()).first(conn).await
}

/// What a console login checks of a staff member.
#[derive(Queryable)]
pub struct AdminCandidate {
    /// Id.
    pub id: Uuid,
    /// Role (only `lab_admin` may log in to the console).
    pub role: String,
    /// The argon2 hash of their console password, if they have one.
    pub password_hash: Option<String>,
    /// Whether the cloud says they may work.
    pub active: bool,
    /// Name.
    pub display_name: String,
}

/// The staff member of `lab` with this (lower-cased) login, as a console login reads them.
pub async fn admin_by_login(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    login: &str,
) -> QueryResult<Option<AdminCandidate>> {
    staff::table
        .filter(staff::lab_id.eq(lab))
        .filter(staff::login.eq(login))
        .select((
            staff::id,
            staff::role,
            staff::password_hash,
            staff::active,
            staff::display_name,
        ))
        .first(conn)
        .await
        .optional()
}

/// Staff member `id`'s login and name.
pub async fn names(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<(String, String)> {
    staff::table
        .find(id)
        .select((staff::login, staff::display_name))
        .first(conn)
        .await
}

/// Whether staff member `id` is of `lab`.
pub async fn is_of_lab(conn: &mut AsyncPgConnection, lab: Uuid, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        staff::table.filter(staff::id.eq(id)).filter(staff::lab_id.eq(lab)),
    ))
    .get_result(conn)
    .await
}

/// Whether a lab admin revoked staff member `id` at this gateway.
pub async fn revoked_here(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(staff_revocations::table.find(id)))
        .get_result(conn)
        .await
}

/// Records that `admin` revoked staff member `id` here (a second revocation keeps the first).
pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid, admin: Uuid, reason: Option<&str>) -> QueryResult<()> {
    diesel::insert_into(staff_revocations::table)
        .values((
            staff_revocations::staff_id.eq(id),
            staff_revocations::revoked_by.eq(admin),
            staff_revocations::reason.eq(reason),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(|_| ())
}

/// Sets staff member `id`'s PIN hash (until the cloud's row, which the relay updates, comes back the
/// same through the change feed).
pub async fn set_pin_hash(conn: &mut AsyncPgConnection, id: Uuid, pin_hash: &str) -> QueryResult<()> {
    diesel::update(staff::table.find(id))
        .set(staff::pin_hash.eq(pin_hash))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Activates or deactivates staff member `id` of `lab`; whether there is such a member.
pub async fn set_active(conn: &mut AsyncPgConnection, lab: Uuid, id: Uuid, active: bool) -> QueryResult<bool> {
    diesel::update(staff::table.filter(staff::id.eq(id)).filter(staff::lab_id.eq(lab)))
        .set(staff::active.eq(active))
        .execute(conn)
        .await
        .map(|updated| updated == 1)
}

/// Lifts a revocation of staff member `id` at this gateway; whether there was one.
pub async fn lift_revocation(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::delete(staff_revocations::table.find(id))
        .execute(conn)
        .await
        .map(|deleted| deleted == 1)
}

/// A staff member as the lab admin's console lists them.
#[derive(Queryable, serde::Serialize)]
pub struct StaffView {
    /// Id.
    pub id: Uuid,
    /// Login.
    pub login: String,
    /// Name.
    pub display_name: String,
    /// `nurse`, `home_sampler` or `lab_admin`.
    pub role: String,
    /// Whether they may work (the cloud's flag, which the console's deactivation changes).
    pub active: bool,
    /// Whether a lab admin revoked them at this gateway.
    pub revoked_here: bool,
    /// When their unused PIN reset code expires, if they have one.
    #[serde(with = "time::serde::rfc3339::option")]
    pub reset_code_expires_at: Option<time::OffsetDateTime>,
}

/// The staff of `lab`, by name.
pub async fn list(conn: &mut AsyncPgConnection, lab: Uuid) -> QueryResult<Vec<StaffView>> {
    use labedge_schema::edge::schema::pin_reset_codes;
    let now = time::OffsetDateTime::now_utc();
    staff::table
        .left_join(staff_revocations::table.on(staff_revocations::staff_id.eq(staff::id)))
        .left_join(
            pin_reset_codes::table.on(pin_reset_codes::staff_id
                .eq(staff::id)
                .and(pin_reset_codes::used_at.is_null())
                .and(pin_reset_codes::expires_at.gt(now))),
        )
        .filter(staff::lab_id.eq(lab))
        .order((staff::display_name, staff::login))
        .select((
            staff::id,
            staff::login,
            staff::display_name,
            staff::role,
            staff::active,
            staff_revocations::staff_id.nullable().is_not_null(),
            pin_reset_codes::expires_at.nullable(),
        ))
        .load(conn)
        .await
}

// Names stay out of logs.
impl std::fmt::Debug for StaffView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffView")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

// PIN hashes stay out of logs.
impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

// Password hashes stay out of logs.
impl std::fmt::Debug for AdminCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCandidate")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}
