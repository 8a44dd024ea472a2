//! What a gateway tells the cloud about itself, at most once a minute
//! (`POST /v1/labs/{lab}/status`, under the gateway's mutual-TLS credential), and what the cloud
//! answers. The cloud keeps the last report in the lab's `gateways` row (`reported_*`,
//! `last_contact_at`) for the central IT team's view of every lab. Shared by both services, like
//! [`crate::relay`].
//!
//! A report carries figures only: no patient, staff member, device or token.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use validator::Validate;

/// The gateway's link to its upstreams, as `gateways.reported_state` stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayState {
    /// Talking to the first upstream (the cloud).
    Online,
    /// Talking to a fallback (the central lab's standby API).
    Failover,
    /// No upstream answered lately: writes wait in the outbox.
    Degraded,
}

impl GatewayState {
    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayState::Online => "online",
            GatewayState::Failover => "failover",
            GatewayState::Degraded => "degraded",
        }
    }

    /// The state named `name` (as stored), if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "online" => Some(GatewayState::Online),
            "failover" => Some(GatewayState::Failover),
            "degraded" => Some(GatewayState::Degraded),
            _ => None,
        }
    }
}

/// The body of `POST /v1/labs/{lab}/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct GatewayReport {
    /// The upstream mode when the report was made.
    pub state: GatewayState,
    /// Outbox entries not yet acknowledged by an upstream.
    #[validate(range(min = 0, message = "must be 0 or more"))]
    pub backlog: i64,
    /// Age of the oldest of them, in seconds (`None` when the outbox is empty).
    #[validate(range(min = 0, message = "must be 0 or more"))]
    pub oldest_unsent_s: Option<i64>,
    /// Seconds since the gateway last pulled the change feed successfully (`None` before its first
    /// pull).
    #[validate(range(min = 0, message = "must be 0 or more"))]
    pub feed_lag_s: Option<i64>,
}

/// The cloud's answer: the report is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportReceipt {
    /// When the cloud recorded it (its `last_contact_at`).
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_reports_refuse_negative_figures() {
        for state in [GatewayState::Online, GatewayState::Failover, GatewayState::Degraded] {
            assert_eq!(GatewayState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(serde_json::Value::String(state.as_str().into()))
            );
        }
        assert_eq!(GatewayState::parse("offline"), None);
        let report = GatewayReport {
            state: GatewayState::Online,
            backlog: 3,
            oldest_unsent_s: Some(12),
            feed_lag_s: None,
        };
        assert!(report.validate().is_ok());
        let negative = GatewayReport {
            backlog: -1,
            ..report.clone()
        };
        assert!(negative.validate().is_err());
        let unknown = serde_json::from_str::<GatewayReport>(
            r#"{"state":"online","backlog":0,"oldest_unsent_s":null,"feed_lag_s":null,"patient":"x"}"#,
        );
        assert!(unknown.is_err(), "unknown fields are refused");
    }
}
