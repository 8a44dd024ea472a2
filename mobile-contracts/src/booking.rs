//! Booking at the lab's desk or by phone: free slots (`GET /v1/slots?date=&kind=`), a new
//! appointment (`POST /v1/appointments`) and a reschedule (`POST /v1/appointments/{id}/reschedule`,
//! with `If-Match`). A cancellation is a status change (`PATCH /v1/appointments/{id}`).
//!
//! Slots come from the lab's booking rules, fed from the cloud with the lab: opening hours and slot
//! length for lab visits, each slot taking `lab_places` patients; home-visit hours and slot length,
//! each home slot taking one visit per active home sampler (the visit joins that sampler's round).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;
use validator::Validate;

use crate::common::AppointmentKind;
use crate::personal::{Address, redact_option};
use crate::rules;

/// Longest `access_notes` of a booked home visit, in characters.
pub const MAX_ACCESS_NOTES_LEN: usize = 500;

/// `GET /v1/slots?date=YYYY-MM-DD&kind=lab|home`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SlotQuery {
    /// The day, in the lab's time zone (`YYYY-MM-DD`).
    #[serde(with = "crate::serde_date")]
    #[cfg_attr(feature = "openapi", param(value_type = String, format = Date, example = "2025-03-14"))]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: Date,
    /// Lab visits or home visits.
    pub kind: AppointmentKind,
}

/// One slot of a day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Slot {
    /// Start (RFC 3339): the `scheduled_at` of a booking in this slot.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// End (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    /// Patients the slot takes.
    pub capacity: u16,
    /// Places still free.
    pub free: u16,
}

/// `GET /v1/slots`: the day's slots that have not started yet, by time, full ones included (the
/// desk shows them greyed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlotList {
    /// The day.
    #[serde(with = "crate::serde_date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: Date,
    /// Lab or home visits.
    pub kind: AppointmentKind,
    /// Length of one slot, in minutes.
    pub slot_minutes: u16,
    /// The slots.
    pub items: Vec<Slot>,
}

/// `POST /v1/appointments`: a booking, its id made by the tablet (a retry is recognised by it and by
/// the `Idempotency-Key`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAppointment {
    /// Appointment id (UUID, made by the tablet).
    #[validate(custom(function = rules::not_nil))]
    pub id: Uuid,
    /// The patient (one of the lab's, or a walk-in registered at the gateway).
    pub patient_id: Uuid,
    /// The prescription to sample, when known.
    #[serde(default)]
    pub prescription_id: Option<Uuid>,
    /// At the lab or at home.
    pub kind: AppointmentKind,
    /// The start of a free slot from `GET /v1/slots`.
    #[serde(with = "time::serde::rfc3339")]
    pub scheduled_at: OffsetDateTime,
    /// Where a home visit takes place; the patient's address when absent.
    #[serde(default)]
    #[validate(custom(function = valid_address))]
    pub address: Option<Address>,
    /// Door code, floor, pets… for a home visit, up to 500 characters.
    #[serde(default)]
    #[validate(
        length(max = 500, message = "must be at most 500 characters"),
        custom(function = rules::free_text)
    )]
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub access_notes: Option<String>,
}

impl fmt::Debug for NewAppointment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAppointment")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("prescription_id", &self.prescription_id)
            .field("kind", &self.kind)
            .field("scheduled_at", &self.scheduled_at)
            .field("address", &self.address)
            .field("access_notes", &redact_option(&self.access_notes))
            .finish()
    }
}

/// An address of a home visit: three non-empty one-line fields, a five-character postal code.
pub(crate) fn valid_address(address: &Address) -> Result<(), validator::ValidationError> {
    rules::label(&address.line, 1, 200)?;
    rules::label(&address.city, 1, 100)?;
    rules::ensure(
        address.postal_code.len() == 5 && address.postal_code.bytes().all(|b| b.is_ascii_alphanumeric()),
        "postal_code",
        "the postal code has 5 characters",
    )
}

/// `POST /v1/appointments/{id}/reschedule`, with `If-Match: "<version>"`: the appointment moves to
/// another free slot of its kind (a home visit may change sampler).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reschedule {
    /// The start of a free slot from `GET /v1/slots`.
    #[serde(with = "time::serde::rfc3339")]
    pub scheduled_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_is_checked_and_hides_notes() {
        let body = serde_json::json!({
            "id": Uuid::nil(),
            "patient_id": Uuid::from_u128(1),
            "kind": "home",
            "scheduled_at": "2026-12-07T08:00:00+01:00",
            "address": {"line": "", "postal_code": "13090", "city": "Aix"},
            "access_notes": "digicode 1234\u{7}",
        });
        let booking: NewAppointment = serde_json::from_value(body).expect("parses");
        let errors = booking.validate().expect_err("three rules fail");
        let fields = errors.field_errors();
        for field in ["id", "address", "access_notes"] {
            assert!(fields.contains_key(field), "{field}: {errors:?}");
        }
        assert!(!format!("{booking:?}").contains("digicode"));
        let extra = serde_json::json!({"id": Uuid::from_u128(2), "patient_id": Uuid::from_u128(1),
            "kind": "lab", "scheduled_at": "2026-12-07T08:00:00Z", "lab_id": Uuid::from_u128(3)});
        assert!(
            serde_json::from_value::<NewAppointment>(extra).is_err(),
            "the lab comes from the token"
        );
    }

    #[test]
    fn slot_queries_need_a_kind() {
        assert!(serde_json::from_str::<SlotQuery>(r#"{"date":"2026-12-07"}"#).is_err());
        let query: SlotQuery = serde_json::from_str(r#"{"date":"2026-12-07","kind":"lab"}"#).expect("query");
        assert_eq!(query.kind, AppointmentKind::Lab);
    }
}
