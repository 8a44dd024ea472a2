//! `GET /v1/rounds?date=`: a home sampler's day, with everything needed to work offline.

use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use crate::appointments::Appointment;
use crate::patients::Patient;
use crate::prescriptions::{Prescription, TubePlanEntry};

/// One stop of a round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoundVisit {
    /// Position in the round, from 1.
    pub position: u16,
    /// The home appointment.
    pub appointment: Appointment,
    /// The patient, in full (NIR masked for home samplers).
    pub patient: Patient,
    /// Prescriptions to sample at this visit.
    pub prescriptions: Vec<Prescription>,
    /// Tubes for the whole visit, all prescriptions together, in order of draw.
    pub tube_plan: Vec<TubePlanEntry>,
}

/// The caller's round of a day, visits in driving order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Round {
    /// The day.
    #[serde(with = "crate::serde_date")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: Date,
    /// The home sampler.
    pub staff_id: Uuid,
    /// The visits, by `position`.
    pub visits: Vec<RoundVisit>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_round_trips() {
        let prescription = crate::fixtures::prescription();
        let round = Round {
            date: time::macros::date!(2025 - 03 - 14),
            staff_id: Uuid::from_u128(7),
            visits: vec![RoundVisit {
                position: 1,
                appointment: crate::fixtures::appointment(),
                patient: crate::fixtures::patient(),
                tube_plan: prescription.tube_plan.clone(),
                prescriptions: vec![prescription],
            }],
        };
        let json = serde_json::to_string(&round).expect("json");
        assert_eq!(serde_json::from_str::<Round>(&json).expect("back"), round);
        assert!(json.contains(r#""date":"2025-03-14""#));
    }
}
