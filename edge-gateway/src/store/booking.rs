//! The queries of booking: a day's slots with their free places, the slot lock that makes "the last
//! place" go to exactly one tablet, the home sampler a home visit goes to, and the appointment rows.
//!
//! Slots are computed from the lab's booking rules (its `labs` row, fed from the cloud) by
//! PostgreSQL, which also does the time-zone arithmetic (a slot at 07:00 in Europe/Paris is 06:00 or
//! 05:00 UTC depending on the date). Hours that are not `HH:MM` pairs are skipped rather than failing
//! the query: a bad rule in the cloud must not make the desk answer 500.

use diesel::prelude::*;
use diesel::sql_types::{Date as SqlDate, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::appointments;
use labedge_schema::sync::AppointmentRow;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// One slot as computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, QueryableByName)]
pub struct SlotRow {
    /// Start.
    #[diesel(sql_type = Timestamptz)]
    pub start_at: OffsetDateTime,
    /// End (exclusive).
    #[diesel(sql_type = Timestamptz)]
    pub end_at: OffsetDateTime,
    /// Patients it takes.
    #[diesel(sql_type = Int4)]
    pub capacity: i32,
    /// Patients booked.
    #[diesel(sql_type = Int4)]
    pub taken: i32,
    /// Slot length, minutes.
    #[diesel(sql_type = Int4)]
    pub minutes: i32,
}

impl SlotRow {
    /// Places left.
    pub fn free(&self) -> i32 {
        (self.capacity - self.taken).max(0)
    }
}

/// The weekday key of the booking rules.
pub fn weekday_key(day: Date) -> &'static str {
    match day.weekday() {
        time::Weekday::Monday => "mon",
        time::Weekday::Tuesday => "tue",
        time::Weekday::Wednesday => "wed",
        time::Weekday::Thursday => "thu",
        time::Weekday::Friday => "fri",
        time::Weekday::Saturday => "sat",
        time::Weekday::Sunday => "sun",
    }
}

const SLOTS: &str = "\
WITH rules AS (
    SELECT CASE WHEN $2 = 'lab' THEN slot_minutes ELSE home_slot_minutes END::int AS minutes,
           CASE WHEN $2 = 'lab' THEN opening_hours ELSE home_hours END -> $4 AS ranges,
           lab_places::int AS lab_places
    FROM labs WHERE id = $1
), hours AS (
    SELECT r.minutes, r.lab_places, h ->> 0 AS opens, h ->> 1 AS closes
    FROM rules r,
         jsonb_array_elements(CASE WHEN jsonb_typeof(r.ranges) = 'array' THEN r.ranges ELSE '[]' END) h
    WHERE jsonb_typeof(h) = 'array'
      AND h ->> 0 ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' AND h ->> 1 ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
), starts AS (
    SELECT s.start_at, s.start_at + make_interval(mins => h.minutes) AS end_at, h.minutes, h.lab_places
    FROM hours h,
         LATERAL generate_series(
             ($3::date + h.opens::time) AT TIME ZONE $5,
             (($3::date + h.closes::time) AT TIME ZONE $5) - make_interval(mins => h.minutes),
             make_interval(mins => h.minutes)) AS s(start_at)
)
SELECT st.start_at, st.end_at, st.minutes,
       CASE WHEN $2 = 'lab' THEN st.lab_places
            ELSE (SELECT count(*) FROM staff s
                  WHERE s.lab_id = $1 AND s.role = 'home_sampler' AND s.active)::int END AS capacity,
       CASE WHEN $2 = 'lab' THEN
                (SELECT count(*) FROM appointments a
                 WHERE a.lab_id = $1 AND a.kind = 'lab' AND a.status <> 'cancelled'
                   AND a.scheduled_at >= st.start_at AND a.scheduled_at < st.end_at)::int
            ELSE (SELECT count(DISTINCT a.assigned_staff_id) FROM appointments a
                  JOIN staff s ON s.id = a.assigned_staff_id AND s.role = 'home_sampler' AND s.active
                  WHERE a.lab_id = $1 AND a.kind = 'home' AND a.status <> 'cancelled'
                    AND a.scheduled_at >= st.start_at AND a.scheduled_at < st.end_at)::int END AS taken
FROM starts st
WHERE st.start_at >= coalesce($6, '-infinity'::timestamptz)
  AND ($7::timestamptz IS NULL OR st.start_at = $7)
ORDER BY st.start_at";

/// Which slots of a day.
#[derive(Clone, Copy, Debug)]
pub struct SlotFilter {
    /// Slots starting at or after this instant only (the ones not started yet).
    pub from: Option<OffsetDateTime>,
    /// Only the slot starting exactly then.
    pub exactly: Option<OffsetDateTime>,
}

/// The slots of `kind` (`lab` or `home`) on the local day `day` of `timezone` at lab `lab`.
pub async fn slots(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    kind: &str,
    (day, timezone): (Date, &str),
    filter: SlotFilter,
) -> QueryResult<Vec<SlotRow>> {
    diesel::sql_query(SLOTS)
        .bind::<SqlUuid, _>(lab)
        .bind::<Text, _>(kind)
        .bind::<SqlDate, _>(day)
        .bind::<Text, _>(weekday_key(day))
        .bind::<Text, _>(timezone)
        .bind::<Nullable<Timestamptz>, _>(filter.from)
        .bind::<Nullable<Timestamptz>, _>(filter.exactly)
        .load(conn)
        .await
}

#[derive(QueryableByName)]
struct LocalDay {
    #[diesel(sql_type = SqlDate)]
    day: Date,
}

/// The local day of `at` in `timezone`.
pub async fn local_day(conn: &mut AsyncPgConnection, at: OffsetDateTime, timezone: &str) -> QueryResult<Date> {
    let row: LocalDay = diesel::sql_query("SELECT ($1 AT TIME ZONE $2)::date AS day")
        .bind::<Timestamptz, _>(at)
        .bind::<Text, _>(timezone)
        .get_result(conn)
        .await?;
    Ok(row.day)
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
