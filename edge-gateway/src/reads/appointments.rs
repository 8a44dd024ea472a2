//! `GET /v1/appointments?date=`: the lab's appointments of a day (in the lab's time zone), by time;
//! a home sampler gets only the appointments assigned to them.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::appointments;
use labedge_schema::sync::AppointmentRow;
use labedge_service::error::ApiError;
use mobile_contracts::AppointmentList;
use time::Date;

use super::render;
use super::{Audited, Caller};
use crate::state::AppState;
use crate::store::reads::{self as store, APPOINTMENT_COLUMNS};

/// The appointments of a local day in `timezone` the caller may list, by time.
pub async fn of_day_rows(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    timezone: &str,
    day: Date,
) -> QueryResult<Vec<AppointmentRow>> {
    let (from, to) = store::local_period(day, 1);
    // One query text for every role (a home sampler's own appointments, everyone's for the
    // others), so that it stays one cached prepared statement.
    let everyone = !caller.is_home_sampler();
    appointments::table
        .filter(appointments::lab_id.eq(caller.lab_id))
        .filter(appointments::scheduled_at.ge(store::local_to_instant(timezone, from)))
        .filter(appointments::scheduled_at.lt(store::local_to_instant(timezone, to)))
        .filter(
            appointments::assigned_staff_id
                .eq(caller.staff_id)
                .nullable()
                .or(everyone.into_sql::<diesel::sql_types::Bool>().nullable()),
        )
        .order((appointments::scheduled_at, appointments::id))
        .select(APPOINTMENT_COLUMNS)
        .load(conn)
        .await
}

/// `GET /v1/appointments?date=`: one audit entry per appointment (each names a patient).
pub async fn of_day(state: &AppState, caller: &Caller, date: Date) -> Result<Audited<AppointmentList>, ApiError> {
    let mut conn = state.pool.get().await?;
    let rows = of_day_rows(&mut conn, caller, &state.config.timezone, date).await?;
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
