//! Security events: one JSON log line each, tagged so a SIEM can route them (`event.category`,
//! `event.action`, `event.outcome`, `event.reason`), a Prometheus counter, and the most recent ones
//! in memory for the admin console. No login, name or token ever appears in them: staff and devices
//! are named by their ids.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A staff PIN login on a tablet.
    Login,
    /// A login locked out after repeated failures.
    Lockout,
    /// A refresh token exchanged.
    Refresh,
    /// A spent refresh token presented again: its whole session is revoked.
    RefreshReuse,
    /// A session ended by its user.
    Logout,
    /// A tablet enrolled with a one-time code.
    Enroll,
    /// An enrollment code created by a lab admin.
    EnrollmentCode,
    /// A device or staff member revoked.
    Revoke,
    /// A request from outside the allowed networks.
    PeerRefused,
    /// An access token refused.
    TokenRefused,
    /// Too many attempts from one device or address.
    RateLimited,
    /// A lab admin's console login.
    AdminLogin,
    /// An admin request without a valid session or CSRF token.
    AdminRefused,
    /// A lockout lifted by a lab admin.
    Unlock,
    /// A PIN reset code made by a lab admin for a staff member.
    PinResetCode,
    /// A new PIN set with a reset code, on a tablet.
    PinReset,
    /// A staff member's own PIN change.
    PinChange,
    /// A staff member deactivated by a lab admin: refused from their next request.
    StaffDeactivate,
    /// A staff member reactivated by a lab admin.
    StaffReactivate,
}

impl Action {
    fn category(self) -> &'static str {
        match self {
            Action::Enroll
            | Action::EnrollmentCode
            | Action::Revoke
            | Action::Unlock
            | Action::PinResetCode
            | Action::StaffDeactivate
            | Action::StaffReactivate => "iam",
            Action::PeerRefused | Action::RateLimited => "network",
            _ => "authentication",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Lockout => "lockout",
            Action::Refresh => "refresh",
            Action::RefreshReuse => "refresh_reuse",
            Action::Logout => "logout",
            Action::Enroll => "enroll",
            Action::EnrollmentCode => "enrollment_code",
            Action::Revoke => "revoke",
            Action::PeerRefused => "peer_refused",
            Action::TokenRefused => "token_refused",
            Action::RateLimited => "rate_limited",
            Action::AdminLogin => "admin_login",
            Action::AdminRefused => "admin_refused",
            Action::Unlock => "unlock",
            Action::PinResetCode => "pin_reset_code",
            Action::PinReset => "pin_reset",
            Action::PinChange => "pin_change",
            Action::StaffDeactivate => "staff_deactivate",
            Action::StaffReactivate => "staff_reactivate",
        }
    }
}

/// One event.
#[derive(Clone, Debug, Serialize)]
pub struct SecurityEvent {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What.
    pub action: Action,
    /// Whether it succeeded.
    pub success: bool,
    /// Why it failed (a fixed word: `bad_pin`, `expired`, `revoked`, …).
    pub reason: Option<&'static str>,
    /// The staff member concerned, when known.
    pub staff_id: Option<Uuid>,
    /// The device concerned, when known.
    pub device_id: Option<Uuid>,
    /// The peer address.
    pub source_ip: Option<IpAddr>,
}

impl SecurityEvent {
    /// A successful event.
    pub fn success(action: Action) -> Self {
        Self {
            at: OffsetDateTime::now_utc(),
            action,
            success: true,
            reason: None,
            staff_id: None,
            device_id: None,
            source_ip: None,
        }
    }
    /// A failed event, with its reason.
    pub fn failure(action: Action, reason: &'static str) -> Self {
        Self {
            success: false,
            reason: Some(reason),
            ..Self::success(action)
        }
    }
    /// Names the staff member.
    pub fn staff(mut self, id: Uuid) -> Self {
        self.staff_id = Some(id);
        self
    }
    /// Names the device.
    pub fn device(mut self, id: Uuid) -> Self {
        self.device_id = Some(id);
        self
    }
    /// Names the peer.
    pub fn source(mut self, ip: Option<IpAddr>) -> Self {
        self.source_ip = ip;
        self
    }
}

const RECENT: usize = 500;

/// Where events go.
#[derive(Debug, Default)]
pub struct SecurityLog {
    recent: Mutex<VecDeque<SecurityEvent>>,
}

impl SecurityLog {
    /// Logs, counts and remembers an event.
    pub fn emit(&self, event: SecurityEvent) {
        let outcome = if event.success { "success" } else { "failure" };
        let reason = event.reason.unwrap_or("");
        let staff = event.staff_id.map(|id| id.to_string()).unwrap_or_default();
        let device = event.device_id.map(|id| id.to_string()).unwrap_or_default();
        let source = event.source_ip.map(|ip| ip.to_string()).unwrap_or_default();
        if event.success {
            tracing::event!(
                target: "security",
                tracing::Level::INFO,
                event.kind = "security",
                event.category = event.action.category(),
                event.action = event.action.as_str(),
                event.outcome = outcome,
                staff.id = %staff,
                device.id = %device,
                source.ip = %source,
                "security event"
            );
        } else {
            tracing::event!(
                target: "security",
                tracing::Level::WARN,
                event.kind = "security",
                event.category = event.action.category(),
                event.action = event.action.as_str(),
                event.outcome = outcome,
                event.reason = reason,
                staff.id = %staff,
                device.id = %device,
                source.ip = %source,
                "security event"
            );
        }
        metrics::counter!(
            "labedge_security_events_total",
            "action" => event.action.as_str(),
            "outcome" => outcome,
            "reason" => reason
        )
        .increment(1);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event);
        }
    }

    /// The most recent events, newest first.
    pub fn recent(&self, limit: usize) -> Vec<SecurityEvent> {
        self.recent
            .lock()
            .map(|r| r.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default()
    }
}
