//! `GET /v1/prescriptions/{id}`: a prescription with its exams and its tube plan (exams grouped by
//! tube type, in order of draw: `mobile_contracts::tube_plan` over the catalog and tube types).

use labedge_service::error::ApiError;
use mobile_contracts::Prescription;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::patients::ensure_in_scope;
use super::{Audited, Caller, cached};
use crate::cache::keys;
use crate::state::AppState;
use crate::store::reads as store;

/// What Redis keeps under [`keys::prescription`]: the prescription as every role sees it, and its
/// lab (a prescription of another lab is a 404).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedPrescription {
    /// The prescription's lab.
    pub lab_id: Uuid,
    /// The prescription, exams and tube plan.
    pub prescription: Prescription,
}

/// `GET /v1/prescriptions/{id}`: Redis, else PostgreSQL (two queries) filling Redis.
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<Audited<Prescription>, ApiError> {
    let cached = cached::get::<CachedPrescription>(&state.redis, keys::prescription(id))
        .await
        .filter(|c| c.prescription.id == id);
    let entry = match cached {
        Some(entry) => entry,
        None => {
            let mut conn = state.pool.get().await?;
            let loaded = store::load_prescriptions(&mut conn, &[id])
                .await?
                .pop()
                .ok_or_else(ApiError::not_found)?;
            drop(conn);
            let entry = CachedPrescription {
                lab_id: loaded.lab_id,
                prescription: loaded.prescription,
            };
            cached::put(&state.redis, &keys::prescription(id), &entry).await;
            entry
        }
    };
    if entry.lab_id != caller.lab_id {
        return Err(ApiError::not_found());
    }
    let patient = entry.prescription.patient_id;
    ensure_in_scope(state, caller, patient).await?;
    Ok(Audited {
        body: entry.prescription,
        audit: vec![caller.audit("prescription.read", Some(patient), Some(format!("prescription:{id}")))],
    })
}
