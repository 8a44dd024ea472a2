//! Lab visits and home visits: `GET /v1/appointments?date=`, `PATCH /v1/appointments/{id}`.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;
use validator::Validate;

use crate::common::{AppointmentKind, AppointmentStatus};
use crate::personal::{Address, redact_option};

/// Largest `reason` of a status change, in characters.
pub const MAX_REASON_LEN: u64 = 500;

/// A `?date=YYYY-MM-DD` query (appointments, rounds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct DateQuery {
    /// The day, in the lab's time zone (`YYYY-MM-DD`).
    #[serde(with = "crate::serde_date")]
    #[cfg_attr(feature = "openapi", param(value_type = String, format = Date, example = "2025-03-14"))]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: Date,
}

/// An appointment at the lab or at the patient's home.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Appointment {
    /// Appointment id.
    pub id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// The prescription to sample, when known at booking.
    pub prescription_id: Option<Uuid>,
    /// At the lab or at home.
    pub kind: AppointmentKind,
    /// Start (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub scheduled_at: OffsetDateTime,
    /// Planned duration, in minutes.
    pub duration_min: u16,
    /// Where a home visit takes place.
    pub address: Option<Address>,
    /// Door code, floor, pets… for home visits.
    pub access_notes: Option<String>,
    /// Staff member in charge (the sampler of a round).
    pub assigned_staff_id: Option<Uuid>,
    /// Position in the assigned staff member's round of that day, from 1.
    pub round_position: Option<u16>,
    /// Current status.
    pub status: AppointmentStatus,
    /// Why the status was set (cancellation or no-show reason).
    pub status_reason: Option<String>,
    /// Row version; send it back in `If-Match` to change the appointment.
    pub version: i64,
}

impl fmt::Debug for Appointment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Appointment")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("prescription_id", &self.prescription_id)
            .field("kind", &self.kind)
            .field("scheduled_at", &self.scheduled_at)
            .field("duration_min", &self.duration_min)
            .field("address", &self.address)
            .field("access_notes", &redact_option(&self.access_notes))
            .field("assigned_staff_id", &self.assigned_staff_id)
            .field("round_position", &self.round_position)
            .field("status", &self.status)
            .field("status_reason", &redact_option(&self.status_reason))
            .field("version", &self.version)
            .finish()
    }
}

/// `GET /v1/appointments?date=`: the lab's appointments of a day, by time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppointmentList {
    /// The day.
    #[serde(with = "crate::serde_date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: Date,
    /// The appointments, by `scheduled_at`.
    pub items: Vec<Appointment>,
}

/// A status change, sent with `If-Match: "<version>"`.
///
/// Allowed moves (`AppointmentStatus::can_transition_to`): `scheduled` → `checked_in`,
/// `collected`, `no_show` or `cancelled`; `checked_in` → `collected` or `cancelled`. The other
/// statuses are final.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppointmentPatch {
    /// The new status.
    pub status: AppointmentStatus,
    /// Why (e.g. for `cancelled` or `no_show`), up to 500 characters; no control character but line
    /// breaks and tabs.
    #[serde(default)]
    #[validate(
        length(max = 500, message = "must be at most 500 characters"),
        custom(function = crate::rules::free_text)
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 500, pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$")
    )]
    pub reason: Option<String>,
}

impl fmt::Debug for AppointmentPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppointmentPatch")
            .field("status", &self.status)
            .field("reason", &redact_option(&self.reason))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_rules() {
        let patch = AppointmentPatch {
            status: AppointmentStatus::Cancelled,
            reason: Some("x".repeat(500)),
        };
        patch.validate().expect("500 is fine");
        let patch = AppointmentPatch {
            status: AppointmentStatus::Cancelled,
            reason: Some("é".repeat(501)),
        };
        let errors = patch.validate().expect_err("too long");
        assert!(errors.field_errors().contains_key("reason"));
        let body = r#"{"status":"checked_in","version":4}"#;
        assert!(
            serde_json::from_str::<AppointmentPatch>(body).is_err(),
            "version goes in If-Match"
        );
        let patch: AppointmentPatch = serde_json::from_str(r#"{"status":"no_show"}"#).expect("minimal");
        assert_eq!(patch.reason, None);
        assert!(
            !format!(
                "{:?}",
                AppointmentPatch {
                    reason: Some("chien méchant".into()),
                    ..patch
                }
            )
            .contains("chien")
        );
    }

    #[test]
    fn appointment_debug_hides_notes_and_address() {
        let appointment = crate::fixtures::appointment();
        let text = format!("{appointment:?}");
        for value in ["digicode", "Glycines"] {
            assert!(!text.contains(value), "{value}: {text}");
        }
        let json = serde_json::to_value(&appointment).expect("json");
        assert_eq!(json["scheduled_at"], "2025-03-14T08:30:00+01:00");
        assert_eq!(serde_json::from_value::<Appointment>(json).expect("back"), appointment);
    }

    #[test]
    fn date_query_parses_iso_dates_only() {
        let query: DateQuery = serde_json::from_str(r#"{"date":"2025-03-14"}"#).expect("date");
        assert_eq!(query.date, time::macros::date!(2025 - 03 - 14));
        assert!(serde_json::from_str::<DateQuery>(r#"{"date":"14/03/2025"}"#).is_err());
    }
}
