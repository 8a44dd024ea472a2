//! What a lab admin does to tablets and staff: list devices, revoke a device or a staff member.
//! Revocations commit in PostgreSQL first, then reach the revocation list, so they hold from the
//! very next request.

use diesel_async::AsyncConnection;
use labedge_service::error::ApiError;
use time::OffsetDateTime;
use uuid::Uuid;

use super::revocation::RevokedKind;
use crate::security_events::{Action, SecurityEvent};
use crate::state::AppState;
pub use crate::store::devices::DeviceView;
use crate::store::sessions::{self, Owner};
use crate::store::{devices, staff};

/// Every enrolled device, newest first.
pub async fn list_devices(state: &AppState) -> Result<Vec<DeviceView>, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(devices::list(&mut conn).await?)
}

/// Revokes a device and ends its sessions; 404 for an unknown device.
pub async fn revoke_device(state: &AppState, admin: Uuid, device: Uuid) -> Result<DeviceView, ApiError> {
    let mut conn = state.pool.get().await?;
    let found = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            let now = OffsetDateTime::now_utc();
            let found = devices::revoke(conn, device, admin, now).await?;
            sessions::revoke_all_of(conn, Owner::Device(device), "device_revoked", now).await?;
            Ok(found)
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
            if !staff::is_of_lab(conn, lab.id, member).await? {
                return Ok(false);
            }
            staff::revoke(conn, member, admin, reason.as_deref()).await?;
            sessions::revoke_all_of(conn, Owner::Staff(member), "staff_revoked", OffsetDateTime::now_utc()).await?;
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
