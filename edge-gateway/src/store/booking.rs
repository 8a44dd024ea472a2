//! The queries of booking: the lab's booking rules and the visits that hold places (the slots
//! themselves are computed in the process, `crate::writes::slot_grid`), the slot lock that makes "the
//! last place" go to exactly one tablet, the home sampler a home visit goes to, and the appointment
//! rows. The rules and the places are read with diesel's DSL, so that those queries, asked at every
//! screen of the desk, are prepared once per connection.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::{appointments, labs, staff};
use labedge_schema::prepared::KeepPrepared;
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
        .prepared()
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

/// Stores a group's booked appointments with one statement.
pub async fn insert_many(conn: &mut AsyncPgConnection, rows: &[AppointmentRow]) -> QueryResult<()> {
    diesel::insert_into(appointments::table)
        .values(rows)
        .execute(conn)
        .await
        .map(|_| ())
}

/// [`lock_slot`] for the slots of a group, with one statement, in the order of the locks' keys:
/// two groups sharing slots take them in the same order and cannot deadlock.
pub async fn lock_slots(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    kind: &str,
    starts: &[OffsetDateTime],
) -> QueryResult<()> {
    if starts.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(1515, h) \
         FROM (SELECT DISTINCT hashtext($1 || '/' || $2 || '/' || s::text) AS h \
               FROM unnest($3::timestamptz[]) AS s ORDER BY h) AS locks",
    )
    .bind::<SqlUuid, _>(lab)
    .bind::<Text, _>(kind)
    .bind::<Array<Timestamptz>, _>(starts)
    .prepared()
    .execute(conn)
    .await
    .map(|_| ())
}

/// One booking of a group, as its look-ups need it.
#[derive(Debug)]
pub struct Asked {
    /// The appointment's id.
    pub id: Uuid,
    /// Its patient.
    pub patient: Uuid,
    /// Its prescription, if named.
    pub prescription: Option<Uuid>,
    /// Its slot, when it is one of the rules' (its places are counted).
    pub slot: Option<(OffsetDateTime, OffsetDateTime)>,
}

/// What the database holds about one booking of a group.
#[derive(Debug, QueryableByName)]
pub struct Facts {
    /// The patient is known here.
    #[diesel(sql_type = Bool)]
    pub patient_known: bool,
    /// The named prescription's patient.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub prescription_patient: Option<Uuid>,
    /// The named prescription's lab.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub prescription_lab: Option<Uuid>,
    /// An appointment with this id is stored already.
    #[diesel(sql_type = Bool)]
    pub recorded: bool,
    /// Visits holding a place in the slot (none when it has no slot).
    #[diesel(sql_type = BigInt)]
    pub booked: i64,
}

/// The facts of each of `asked`, in order, with one statement. Taken after [`lock_slots`], so
/// that the places counted stay counted until the group commits.
pub async fn facts(conn: &mut AsyncPgConnection, lab: Uuid, kind: &str, asked: &[Asked]) -> QueryResult<Vec<Facts>> {
    let slots = |pick: fn(&(OffsetDateTime, OffsetDateTime)) -> OffsetDateTime| {
        asked.iter().map(|a| a.slot.as_ref().map(pick)).collect::<Vec<_>>()
    };
    diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM patients p WHERE p.id = t.patient) AS patient_known, \
                pr.patient_id AS prescription_patient, pr.lab_id AS prescription_lab, \
                EXISTS (SELECT 1 FROM appointments x WHERE x.id = t.id) AS recorded, \
                (SELECT count(*) FROM appointments a \
                 WHERE a.lab_id = $1 AND a.kind = $2 AND a.status <> 'cancelled' \
                   AND a.scheduled_at >= t.slot_start AND a.scheduled_at < t.slot_end) AS booked \
         FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[], $7::timestamptz[]) \
              WITH ORDINALITY AS t(id, patient, prescription, slot_start, slot_end, i) \
         LEFT JOIN prescriptions pr ON pr.id = t.prescription \
         ORDER BY t.i",
    )
    .bind::<SqlUuid, _>(lab)
    .bind::<Text, _>(kind)
    .bind::<Array<SqlUuid>, _>(asked.iter().map(|a| a.id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(asked.iter().map(|a| a.patient).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(asked.iter().map(|a| a.prescription).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(slots(|s| s.0))
    .bind::<Array<Nullable<Timestamptz>>, _>(slots(|s| s.1))
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct FreeSlot {
    #[diesel(sql_type = Timestamptz)]
    slot_start: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    slot_end: OffsetDateTime,
    #[diesel(sql_type = BigInt)]
    booked: i64,
}

/// The first `limit` of `slots`, in their order, where fewer than `places` lab visits hold a place,
/// with how many do. One statement: the slots are counted one after the other and the counting stops
/// at the `limit`-th free one, so that a full day costs one statement, not its whole list of visits.
pub async fn free_lab_slots(
    conn: &mut AsyncPgConnection,
    lab: Uuid,
    slots: &[(OffsetDateTime, OffsetDateTime)],
    places: i64,
    limit: usize,
) -> QueryResult<Vec<(OffsetDateTime, OffsetDateTime, i64)>> {
    if slots.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let found: Vec<FreeSlot> = diesel::sql_query(
        "SELECT g.slot_start, g.slot_end, n.booked \
         FROM unnest($2::timestamptz[], $3::timestamptz[]) AS g(slot_start, slot_end) \
         CROSS JOIN LATERAL (SELECT count(*) AS booked FROM appointments a \
                             WHERE a.lab_id = $1 AND a.kind = 'lab' AND a.status <> 'cancelled' \
                               AND a.scheduled_at >= g.slot_start AND a.scheduled_at < g.slot_end) AS n \
         WHERE n.booked < $4 \
         LIMIT $5",
    )
    .bind::<SqlUuid, _>(lab)
    .bind::<Array<Timestamptz>, _>(slots.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(slots.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind::<BigInt, _>(places)
    .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX))
    .load(conn)
    .await?;
    Ok(found
        .into_iter()
        .map(|f| (f.slot_start, f.slot_end, f.booked))
        .collect())
}

/// The end of the lab's appointment window as the feed last gave it, if it has.
pub async fn window_ends(conn: &mut AsyncPgConnection) -> QueryResult<Option<OffsetDateTime>> {
    #[derive(QueryableByName)]
    struct Ends {
        #[diesel(sql_type = Timestamptz)]
        ends_at: OffsetDateTime,
    }
    let found: Option<Ends> = diesel::sql_query("SELECT ends_at FROM appointment_window")
        .prepared()
        .get_result(conn)
        .await
        .optional()?;
    Ok(found.map(|e| e.ends_at))
}

/// Records the end of the lab's appointment window (in the transaction of the feed page that gave it).
pub async fn set_window_ends(conn: &mut AsyncPgConnection, ends: OffsetDateTime) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO appointment_window (only_row, ends_at) VALUES (true, $1) \
         ON CONFLICT (only_row) DO UPDATE SET ends_at = excluded.ends_at, updated_at = now()",
    )
    .bind::<Timestamptz, _>(ends)
    .prepared()
    .execute(conn)
    .await
    .map(|_| ())
}
