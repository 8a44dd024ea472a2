//! `GET /v1/appointments?date=`: the lab's appointments of a day (in the lab's time zone), by time;
//! a home sampler gets only the appointments assigned to them.

use labedge_service::error::ApiError;
use mobile_contracts::AppointmentList;
use time::Date;

use super::render;
use super::{Audited, Caller};
use crate::state::AppState;
use crate::store::reads as store;

/// `GET /v1/appointments?date=`: one audit entry per appointment (each names a patient).
pub async fn of_day(state: &AppState, caller: &Caller, date: Date) -> Result<Audited<AppointmentList>, ApiError> {
    let mut conn = state.pool.get().await?;
    // A home sampler lists their own appointments; the others, everyone's.
    let everyone = !caller.is_home_sampler();
    let rows = store::appointments_in_period(
        &mut conn,
        caller.lab_id,
        (caller.staff_id, everyone),
        &state.config.timezone,
        (date, 1),
    )
    .await?;
    drop(conn);
    let items = rows
        .iter()
        .map(render::render_appointment)
        .collect::<Result<Vec<_>, _>>()?;
    let audit = rows
        .iter()
        .map(|row| {
            caller.audit(
                "appointments.read",
                Some(row.patient_id),
                Some(format!("appointment:{}", row.id)),
            )
        })
        .collect();
    Ok(Audited {
        body: AppointmentList { date, items },
        audit,
    })
}
