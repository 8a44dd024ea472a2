//! Enrolled tablets: their credentials, their certificate binding, the console's list, revocation,
//! and the counts the gauges export.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::devices;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a login or a refresh checks of its device.
#[derive(Queryable)]
pub struct DeviceCredentials {
    /// The label given at enrollment.
    pub label: String,
    /// `active` or `revoked`.
    pub status: String,
    /// The argon2 hash of the device secret.
    pub secret_hash: String,
    /// The SHA-256 (hex) of the certificate it was enrolled with, if any.
    pub cert_sha256: Option<String>,
}

/// Device `id`'s credentials.
pub async fn credentials(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<DeviceCredentials>> {
    devices::table
        .find(id)
        .select((
            devices::label,
            devices::status,
            devices::secret_hash,
            devices::cert_sha256,
        ))
        .first(conn)
        .await
        .optional()
}

/// Notes device `id` as seen (a login or a refresh) at `now`.
pub async fn touch(conn: &mut AsyncPgConnection, id: Uuid, now: OffsetDateTime) -> QueryResult<()> {
    diesel::update(devices::table.find(id))
        .set(devices::last_seen_at.eq(now))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Device `id`'s label.
pub async fn label(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<String> {
    devices::table.find(id).select(devices::label).first(conn).await
}

/// Device `id`'s certificate binding: `None` for an unknown device, `Some(None)` for one enrolled
/// without a certificate.
pub async fn certificate(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Option<String>>> {
    devices::table
        .find(id)
        .select(devices::cert_sha256)
        .first(conn)
        .await
        .optional()
}

/// A device as the console lists it.
#[derive(Debug, Serialize, Deserialize, Queryable)]
pub struct DeviceView {
    /// Id.
    pub id: Uuid,
    /// Label given at enrollment.
    pub label: String,
    /// `active` or `revoked`.
    pub status: String,
    /// Whether it authenticates with a client certificate (mutual TLS).
    pub certificate_bound: bool,
    /// When it enrolled.
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
    /// Last login or refresh.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    /// App version reported at enrollment.
    pub app_version: Option<String>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Every enrolled device, newest first.
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<DeviceView>> {
    devices::table
        .order(devices::enrolled_at.desc())
        .select((
            devices::id,
            devices::label,
            devices::status,
            devices::cert_sha256.is_not_null(),
            devices::enrolled_at,
            devices::last_seen_at,
            devices::app_version,
            devices::revoked_at,
        ))
        .load(conn)
        .await
}

/// Marks device `id` revoked by `admin` at `now`; whether it exists.
pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid, admin: Uuid, now: OffsetDateTime) -> QueryResult<bool> {
    let updated = diesel::update(devices::table.find(id))
        .set((
            devices::status.eq("revoked"),
            devices::revoked_at.eq(now),
            devices::revoked_by.eq(admin),
        ))
        .execute(conn)
        .await?;
    Ok(updated > 0)
}

/// The row of a device being enrolled.
#[derive(Debug)]
pub struct NewDevice {
    /// Its new id.
    pub id: Uuid,
    /// The label the tablet gave.
    pub label: String,
    /// The app version it reported.
    pub app_version: Option<String>,
    /// The argon2 hash of its secret.
    pub secret_hash: String,
    /// The SHA-256 (hex) of the certificate signed for it, if any.
    pub cert_sha256: Option<String>,
}

/// Registers `device`, active, enrolled with a code of `enrolled_by`.
pub async fn insert(conn: &mut AsyncPgConnection, device: &NewDevice, enrolled_by: Uuid) -> QueryResult<()> {
    diesel::insert_into(devices::table)
        .values((
            devices::id.eq(device.id),
            devices::label.eq(&device.label),
            devices::status.eq("active"),
            devices::secret_hash.eq(&device.secret_hash),
            devices::cert_sha256.eq(&device.cert_sha256),
            devices::enrolled_by.eq(enrolled_by),
            devices::app_version.eq(&device.app_version),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The lab's tablets, as the gauges count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, QueryableByName)]
pub struct TabletCounts {
    /// Enrolled and not revoked.
    #[diesel(sql_type = BigInt)]
    pub enrolled: i64,
    /// Of those, seen within the hours asked for.
    #[diesel(sql_type = BigInt)]
    pub active: i64,
}

/// Counts the tablets enrolled and not revoked, and those of them seen within `active_within_h`
/// hours.
pub async fn counts(conn: &mut AsyncPgConnection, active_within_h: i32) -> QueryResult<TabletCounts> {
    diesel::sql_query(
        "SELECT count(*) FILTER (WHERE status = 'active') AS enrolled, \
                count(*) FILTER (WHERE status = 'active' AND last_seen_at >= now() - make_interval(hours => $1)) AS active \
         FROM devices",
    )
    .bind::<Integer, _>(active_within_h)
    .get_result(conn)
    .await
}

// The secret's hash stays out of logs.
impl std::fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}
