//! What a lab admin does to tablets and staff: list devices, revoke a device or a staff member.
//! Revocations commit in PostgreSQL first, then reach the revocation list, so they hold from the
//! very next request.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use labedge_schema::edge::schema::{auth_sessions, devices, staff, staff_revocations};
use labedge_service::error::ApiError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::revocation::RevokedKind;
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;

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
pub async fn list_devices(state: &AppState) -> Result<Vec<DeviceView>, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(devices::table
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
        .load(&mut conn)
        .await?)
}

/// Revokes a device and ends its sessions; 404 for an unknown device.
pub async fn revoke_device(state: &AppState, admin: Uuid, device: Uuid) -> Result<DeviceView, ApiError> {
    let mut conn = state.pool.get().await?;
    let found = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            let now = OffsetDateTime::now_utc();
            let updated = diesel::update(devices::table.find(device))
                .set((
                    devices::status.eq("revoked"),
                    devices::revoked_at.eq(now),
                    devices::revoked_by.eq(admin),
                ))
                .execute(conn)
                .await?;
            diesel::update(
                auth_sessions::table
                    .filter(auth_sessions::device_id.eq(device))
                    .filter(auth_sessions::revoked_at.is_null()),
            )
            .set((
                auth_sessions::revoked_at.eq(now),
                auth_sessions::revoked_reason.eq("device_revoked"),
            ))
            .execute(conn)
            .await?;
            Ok(updated > 0)
        })
        .await?;
    if !found {
        return Err(ApiError::not_found());
    }
    state.revocations.revoked(RevokedKind::Device, device).await;
    state
        .security
        .emit(SecurityEvent::success(Action::Revoke).device(device).staff(admin));
    list_devices(state)
        .await?
        .into_iter()
        .find(|d| d.id == device)
        .ok_or_else(ApiError::not_found)
}

/// Revokes a staff member of this lab at this gateway (their sessions end at once); 404 for an
/// unknown staff member.
pub async fn revoke_staff(state: &AppState, admin: Uuid, member: Uuid, reason: Option<String>) -> Result<(), ApiError> {
    let lab = state.lab().await?;
    let mut conn = state.pool.get().await?;
    let found = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            let exists: bool = diesel::select(diesel::dsl::exists(
                staff::table
                    .filter(staff::id.eq(member))
                    .filter(staff::lab_id.eq(lab.id)),
            ))
            .get_result(conn)
            .await?;
            if !exists {
                return Ok(false);
            }
            diesel::insert_into(staff_revocations::table)
                .values((
                    staff_revocations::staff_id.eq(member),
                    staff_revocations::revoked_by.eq(admin),
                    staff_revocations::reason.eq(reason),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            diesel::update(
                auth_sessions::table
                    .filter(auth_sessions::staff_id.eq(member))
                    .filter(auth_sessions::revoked_at.is_null()),
            )
            .set((
                auth_sessions::revoked_at.eq(OffsetDateTime::now_utc()),
                auth_sessions::revoked_reason.eq("staff_revoked"),
            ))
            .execute(conn)
            .await?;
            Ok(true)
        })
        .await?;
    if !found {
        return Err(ApiError::not_found());
    }
    state.revocations.revoked(RevokedKind::Staff, member).await;
    state
        .security
        .emit(SecurityEvent::success(Action::Revoke).staff(member));
    Ok(())
}
