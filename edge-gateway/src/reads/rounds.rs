//! `GET /v1/rounds?date=`: the caller's home visits of a day (in the lab's time zone), in driving
//! order (`round_position`, then time), each with its patient, address, phone, the prescriptions to
//! sample (the appointment's own, else the patient's open prescriptions at this lab) and the
//! visit's tube plan: everything a sampler needs offline.
//!
//! Five queries whatever the number of visits, all prepared-statement cacheable, in three round
//! trips (the visits, then two pipelined pairs), while the audit of the visits commits beside the
//! last two.

use std::collections::HashMap;

use diesel_async::AsyncPgConnection;
use labedge_schema::sync::{AppointmentRow, PatientRow};
use labedge_service::error::ApiError;
use mobile_contracts::{Round, RoundVisit, tube_plan};
use time::Date;
use uuid::Uuid;

use super::render;
use super::{Audited, Caller};
use crate::state::AppState;
use crate::store::reads::{self as store, LoadedPrescription};

/// `GET /v1/rounds?date=`: one audit entry per visit. The audit is committed while the visits'
/// patients and prescriptions load (it needs only the visits), so the answer waits for the longer
/// of the two rather than their sum; the returned [`Audited`] carries no more entries. Should the
/// loading fail after the commit, the audit names a read that was not answered: an audit may say
/// too much, never too little.
pub async fn round(state: &AppState, caller: &Caller, date: Date) -> Result<Audited<Round>, ApiError> {
    let mut conn = state.pool.get().await?;
    let visits = store::home_visits(&mut conn, caller.lab_id, caller.staff_id, &state.config.timezone, date).await?;
    let audit: Vec<_> = visits
        .iter()
        .map(|visit| {
            caller.audit(
                "round.read",
                Some(visit.patient_id),
                Some(format!("appointment:{}", visit.id)),
            )
        })
        .collect();
    let (committed, loaded) = tokio::join!(state.audit.record(audit), load_visits(&mut conn, caller, &visits));
    drop(conn);
    committed?;
    let (patients, open, prescriptions) = loaded?;

    let patients: HashMap<Uuid, _> = patients.into_iter().map(|p| (p.id, p)).collect();
    let prescriptions: HashMap<Uuid, _> = prescriptions
        .into_iter()
        .filter(|p| p.lab_id == caller.lab_id)
        .map(|p| (p.prescription.id, p))
        .collect();
    let mut out = Vec::with_capacity(visits.len());
    for visit in &visits {
        // No foreign keys at the edge: a feed page may bring a visit before its patient. Such a
        // visit is left out until the patient arrives.
        let Some(patient) = patients.get(&visit.patient_id) else {
            tracing::warn!(appointment_id = %visit.id, "round visit without its patient yet; left out");
            continue;
        };
        let visit_prescriptions: Vec<_> = store::visit_prescriptions(visit, &open)
            .iter()
            .filter_map(|id| prescriptions.get(id))
            .collect();
        let tubes: Vec<_> = visit_prescriptions
            .iter()
            .flat_map(|p| p.tubes.iter().cloned())
            .collect();
        out.push(RoundVisit {
            position: u16::try_from(out.len() + 1).unwrap_or(u16::MAX),
            appointment: render::render_appointment(visit)?,
            patient: render::render_patient(patient, caller.role)?,
            prescriptions: visit_prescriptions.iter().map(|p| p.prescription.clone()).collect(),
            tube_plan: tube_plan(&tubes),
        });
    }
    Ok(Audited {
        body: Round {
            date,
            staff_id: caller.staff_id,
            visits: out,
        },
        audit: Vec::new(),
    })
}

/// What the visits need: their patients, the open prescriptions of the patients booked without
/// one, and the prescriptions to sample (with exams and tubes). Four queries in two round trips.
async fn load_visits(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    visits: &[AppointmentRow],
) -> Result<(Vec<PatientRow>, Vec<(Uuid, Uuid)>, Vec<LoadedPrescription>), ApiError> {
    let patient_ids: Vec<Uuid> = visits.iter().map(|v| v.patient_id).collect();
    let without_prescription: Vec<Uuid> = visits
        .iter()
        .filter(|v| v.prescription_id.is_none())
        .map(|v| v.patient_id)
        .collect();
    // Pipelined on the connection: both need only the visits.
    let (patients, open) = tokio::try_join!(
        store::load_patients(conn, &patient_ids),
        store::open_prescriptions_of(conn, caller.lab_id, &without_prescription)
    )?;
    let mut wanted: Vec<Uuid> = visits
        .iter()
        .flat_map(|v| store::visit_prescriptions(v, &open))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let prescriptions = store::load_prescriptions(conn, &wanted).await?;
    Ok((patients, open, prescriptions))
}
