//! The queries of booking: the lab's booking rules and the visits that hold places (the slots
//! themselves are computed in the process, `crate::writes::slot_grid`), the slot lock that makes "the
//! last place" go to exactly one tablet, the home sampler a home visit goes to, and the appointment
//! rows. The rules and the places are read with diesel's DSL, so that those queries, asked at every
//! screen of the desk, are prepared once per connection.

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{appointments, labs, staff};
use labedge_schema::sync::AppointmentRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// A lab's booking rules, as its row holds them (fed from the cloud with the lab).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = labs)]
pub struct BookingRules {
    /// Length of a lab slot, minutes.
    pub slot_minutes: i16,
    /// Patients a lab slot takes.
    pub lab_places: i16,
    /// The lab's hours by weekday.
    pub opening_hours: serde_json::Value,
    /// Length of a home visit's slot, minutes.
    pub home_slot_minutes: i16,
    /// The home samplers' hours by weekday.
    pub home_hours: serde_json::Value,
}

/// The booking rules of `lab`, if its row has come from the cloud.
pub async fn rules(conn: &mut AsyncPgConnection, lab: Uuid) -> QueryResult<Option<BookingRules>> {
    labs::table
        .find(lab)
        .select(BookingRules::as_select())
        .first(conn)
        .await
        .optional()
}

/// The visits of `kind` at `lab` that hold a place between `from` and `to`: their start and their
/// sampler. A home visit holds a place only with an active home sampler (the samplers are the home
/// slots' places).
pub async fn booked(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    kind: &str,
    (from, to): (OffsetDateTime, OffsetDateTime),
) -> QueryResult<Vec<(OffsetDateTime, Option<Uuid>)>> {
    let visits = appointments::table
        .filter(appointments::lab_id.eq(lab))
        .filter(appointments::kind.eq(kind))
        .filter(appointments::status.ne("cancelled"))
        .filter(appointments::scheduled_at.ge(from))
        .filter(appointments::scheduled_at.lt(to))
        .select((appointments::scheduled_at, appointments::assigned_staff_id));
    if kind == "lab" {
        return visits.load(conn).await;
    }
    let samplers = active_samplers(lab).select(staff::id.nullable());
    visits
        .filter(appointments::assigned_staff_id.eq_any(samplers))
        .load(conn)
        .await
}

/// The active home samplers of `lab`: the places of a home slot.
#[diesel::dsl::auto_type]
fn active_samplers(lab: Uuid) -> _ {
    staff::table
        .filter(staff::lab_id.eq(lab))
        .filter(staff::role.eq("home_sampler"))
        .filter(staff::active.eq(true))
}

/// How many active home samplers `lab` has.
pub async fn samplers(conn: &mut AsyncPgConnection, lab: Uuid) -> QueryResult<i64> {
    active_samplers(lab).count().get_result(conn).await
}

/// Takes the lock of one slot until the transaction ends: two bookings of the same slot are
/// counted one after the other, so that the last place goes to exactly one. Blocking, not `try`: the
/// second booking waits a few milliseconds and then sees the place taken. The two-key form keeps
/// these locks apart from the idempotency keys' one-key locks.
pub async fn lock_slot(conn: &mut AsyncPgConnection, lab: Uuid, kind: &str, start: OffsetDateTime) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(1515, hashtext($1 || '/' || $2 || '/' || $3::text))")
        .bind::<SqlUuid, _>(lab)
        .bind::<Text, _>(kind)
        .bind::<Timestamptz, _>(start)
        .execute(conn)
        .await
        .map(|_| ())
}

#[derive(QueryableByName)]
struct Sampler {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// An active home sampler of `lab` with no visit in `[start, end)`, other than `except`'s: the one
/// with the fewest visits on that local day (rounds stay balanced), `prefer` first when free.
pub async fn free_sampler(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    (start, end): (OffsetDateTime, OffsetDateTime),
    (timezone, prefer, except): (&str, Option<Uuid>, Option<Uuid>),
) -> QueryResult<Option<Uuid>> {
    let found: Option<Sampler> = diesel::sql_query(
        "SELECT s.id FROM staff s
         WHERE s.lab_id = $1 AND s.role = 'home_sampler' AND s.active
           AND NOT EXISTS (SELECT 1 FROM appointments a
                           WHERE a.assigned_staff_id = s.id AND a.kind = 'home' AND a.status <> 'cancelled'
                             AND a.scheduled_at >= $2 AND a.scheduled_at < $3
                             AND a.id IS DISTINCT FROM $6)
         ORDER BY s.id IS DISTINCT FROM $5,
                  (SELECT count(*) FROM appointments d
                   WHERE d.assigned_staff_id = s.id AND d.kind = 'home' AND d.status <> 'cancelled'
                     AND d.scheduled_at >= date_trunc('day', $2 AT TIME ZONE $4) AT TIME ZONE $4
                     AND d.scheduled_at < (date_trunc('day', $2 AT TIME ZONE $4) + interval '1 day') AT TIME ZONE $4),
                  s.id
         LIMIT 1",
    )
    .bind::<SqlUuid, _>(lab)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .bind::<Text, _>(timezone)
    .bind::<Nullable<SqlUuid>, _>(prefer)
    .bind::<Nullable<SqlUuid>, _>(except)
    .get_result(conn)
    .await
    .optional()?;
    Ok(found.map(|s| s.id))
}

/// Appointment `id`, if any.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<AppointmentRow>> {
    appointments::table
        .find(id)
        .select(AppointmentRow::EDGE_COLUMNS)
        .first(conn)
        .await
        .optional()
}

/// Stores a booked appointment.
pub async fn insert(conn: &mut AsyncPgConnection, row: &AppointmentRow) -> QueryResult<()> {
    diesel::insert_into(appointments::table)
        .values(row)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Moves appointment `id` to `start` (and `sampler`, for a home visit) at `version`.
pub async fn move_to(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    start: OffsetDateTime,
    sampler: Option<Uuid>,
    version: i64,
) -> QueryResult<AppointmentRow> {
    diesel::update(appointments::table.find(id))
        .set((
            appointments::scheduled_at.eq(start),
            appointments::assigned_staff_id.eq(sampler),
            appointments::round_position.eq(None::<i16>),
            appointments::version.eq(version),
        ))
        .returning(AppointmentRow::EDGE_COLUMNS)
        .get_result(conn)
        .await
}
