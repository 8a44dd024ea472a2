//! Booking at the desk: `book` (a new appointment in a free slot) and `reschedule` (an appointment
//! moved to another free slot, against the version the tablet saw), and the slots they offer.
//!
//! Rules:
//! - nurses and lab admins book; a home sampler works on the road from a round planned for them;
//! - the start is a slot of the lab's booking rules, not started yet, with a free place; the slot's
//!   lock is taken before its places are counted, so that of two tablets booking the last place at
//!   once exactly one wins and the other gets 409 `slot_unavailable` with the next free slots;
//! - a home visit goes to an active home sampler free in that slot (the one with the fewest visits
//!   that day), at the address given or else the patient's; it has no round position until the
//!   cloud's round planning gives it one (rounds list such visits by time after the planned ones);
//! - the prescription, when named, is one of the patient's at this lab.
//!
//! A slot taken both here and upstream (by the LIS through FHIR) while the cloud was out of reach is
//! kept on both sides: the patient was told. The cloud applies the booking and answers `conflict`
//! with reason `slot_overbooked`, so the lab admin's conflict queue shows it and the desk moves one
//! of the patients (docs/integration.md).

use diesel_async::{AsyncConnection, AsyncPgConnection};
use jiff::tz::TimeZone;
use labedge_protocol::relay::RelayedOp;
use labedge_schema::db::PgPool;
use labedge_schema::sync::AppointmentRow;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, FieldError};
use mobile_contracts::{
    Address, Appointment, AppointmentKind, AppointmentStatus, NewAppointment, Reschedule, Role, Slot, SlotList,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::appointments::{check_version, lock_in_scope};
use super::lab_bookings::LabBooking;
use super::slot_grid::{self, SlotRow};
use super::{WriteError, durable, entry, invalid, keyed, mutation, wake_relay};
use crate::auth::Principal;
use crate::reads::render::render_appointment;
use crate::state::AppState;
use crate::store::booking as stored;
use crate::store::collections as clinical;
use crate::store::idempotency::{Answered, idempotent, request_hash};
use crate::store::{audit, outbox};

/// Who books and reschedules.
const DESK: [Role; 2] = [Role::Nurse, Role::LabAdmin];

/// How many free slots a refusal offers.
const OFFERED: usize = 5;

/// How many days ahead a refusal looks for free slots.
const LOOK_AHEAD_DAYS: i64 = 14;

pub(super) fn kind_name(kind: AppointmentKind) -> &'static str {
    match kind {
        AppointmentKind::Lab => "lab",
        AppointmentKind::Home => "home",
    }
}

fn slot(row: &SlotRow) -> Slot {
    Slot {
        start: row.start_at,
        end: row.end_at,
        capacity: u16::try_from(row.capacity).unwrap_or(0),
        free: u16::try_from(row.free()).unwrap_or(0),
    }
}

/// How long a day's slot list is served from memory at most, counted from the start of the queries
/// it came from. A write made here drops the lists at once ([`AppState::wrote`]), so the desk always
/// sees its own bookings and cancellations, and so does each sync page that changed rows (a booking by
/// the LIS, a rule, a sampler); the second bounds what reaches the tables by any other way. Bookings
/// never read these lists: they count the slot's places in the database under the slot's lock.
const SLOT_LIST_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// From this age on, the first request to see a list has it computed again in the background while
/// it and the others are served the current one, so that a list busy enough to be asked for twice a
/// second never expires under its readers. Without it, every request arriving after the second's
/// end, and while the list was computed again, queried the database too: the slot search's p99 at
/// 16 connections was 22–785 ms, against 3.6–4.4 ms with it (`docs/performance.md`).
const SLOT_LIST_REFRESH: std::time::Duration = std::time::Duration::from_millis(500);

/// The slot lists of whole days, by (day, kind), as computed at most [`SLOT_LIST_TTL`] ago and since
/// the last write made here. Kept because the desk asks for the list at every screen and each list
/// costs two queries; the answer is filtered by the clock when served. One list is computed at a
/// time ([`Self::computing`]): requests that find none wait for it instead of all querying.
#[derive(Debug, Default)]
pub struct SlotLists {
    /// Bumped by every write; a list computed under an older one is never served.
    generation: AtomicU64,
    days: Mutex<HashMap<DayKey, CachedDay>>,
    computing: tokio::sync::Mutex<()>,
}

type DayKey = (Date, &'static str);

#[derive(Debug)]
struct CachedDay {
    generation: u64,
    /// When the queries it came from started.
    computed: std::time::Instant,
    rows: Arc<[SlotRow]>,
    /// A background computation of this day was started from this copy.
    refreshing: bool,
}

/// What the lists hold for a day.
enum Held {
    /// A list to serve.
    Current(Arc<[SlotRow]>),
    /// A list to serve, whose successor the caller is to compute in the background.
    Ageing(Arc<[SlotRow]>),
    /// Nothing to serve: compute it.
    Missing,
}

impl SlotLists {
    /// Drops every list computed so far.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn held(&self, key: DayKey) -> Held {
        let generation = self.generation();
        let Ok(mut days) = self.days.lock() else {
            return Held::Missing;
        };
        let Some(day) = days.get_mut(&key) else {
            return Held::Missing;
        };
        let age = day.computed.elapsed();
        if day.generation != generation || age >= SLOT_LIST_TTL {
            return Held::Missing;
        }
        let rows = Arc::clone(&day.rows);
        if age >= SLOT_LIST_REFRESH && !day.refreshing {
            day.refreshing = true;
            return Held::Ageing(rows);
        }
        Held::Current(rows)
    }

    /// Keeps `rows`, computed from what the database held at `computed`, when the generation was
    /// `generation`.
    fn put(&self, key: DayKey, generation: u64, computed: std::time::Instant, rows: Arc<[SlotRow]>) {
        let Ok(mut days) = self.days.lock() else {
            return;
        };
        // A desk looks at a few days; old entries go before the map grows.
        if days.len() >= 64 {
            days.retain(|_, day| day.computed.elapsed() < SLOT_LIST_TTL);
        }
        days.insert(
            key,
            CachedDay {
                generation,
                computed,
                rows,
                refreshing: false,
            },
        );
    }

    /// The day's list if one is current, whatever its age, without starting anything.
    fn current(&self, key: DayKey) -> Option<Arc<[SlotRow]>> {
        let generation = self.generation();
        let days = self.days.lock().ok()?;
        let day = days.get(&key)?;
        (day.generation == generation && day.computed.elapsed() < SLOT_LIST_TTL).then(|| Arc::clone(&day.rows))
    }

    /// The day's list, computed now; `reuse`: unless a computation that ran while this one waited
    /// for its turn left a current one.
    async fn compute(&self, pool: &PgPool, site: &Site, key: DayKey, reuse: bool) -> Result<Arc<[SlotRow]>, ApiError> {
        let _turn = self.computing.lock().await;
        if reuse && let Some(rows) = self.current(key) {
            return Ok(rows);
        }
        let generation = self.generation();
        let started = std::time::Instant::now();
        let mut conn = pool.get().await?;
        let rows: Arc<[SlotRow]> = day_slots(&mut conn, site, key.1, key.0, Starting::Any).await?.into();
        self.put(key, generation, started, Arc::clone(&rows));
        Ok(rows)
    }
}

/// The end of the lab's appointment window (`appointment_window`), in memory: the desk books, and
/// lists slots, only before it. The gateway holds every appointment of its lab scheduled before it
/// and none after (the cloud's feed scope): beyond it a slot's places cannot be counted, and a
/// booking made there would be removed by the feed once relayed, as out of the lab's scope. The
/// sync sets it after each page; a gateway restarted while the cloud is out of reach reads the
/// table. While the cloud stays out of reach the end stays where it was, so the days that enter the
/// cloud's window meanwhile (whose bookings by the LIS the gateway has not received) stay closed.
#[derive(Debug, Default)]
pub struct AppointmentWindow {
    /// Microseconds since the epoch; 0 while not known.
    ends: AtomicI64,
}

impl AppointmentWindow {
    /// The end the feed gave, once its page is committed.
    pub fn set(&self, ends: OffsetDateTime) {
        let micros = i64::try_from(ends.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX);
        self.ends.store(micros.max(1), Ordering::Release);
    }

    /// The window's end: from memory, else from the table; 503 when the feed never gave one.
    async fn ends(&self, pool: &PgPool) -> Result<OffsetDateTime, ApiError> {
        let micros = self.ends.load(Ordering::Acquire);
        if micros != 0 {
            return OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
                .map_err(|e| ApiError::Internal(e.into()));
        }
        let mut conn = pool.get().await?;
        match stored::window_ends(&mut conn).await? {
            Some(ends) => {
                self.set(ends);
                Ok(ends)
            }
            None => Err(ApiError::detail(
                ErrorCode::ServiceUnavailable,
                "this gateway has not received its lab's appointments from the cloud yet",
            )),
        }
    }
}

/// Where bookings are made: the lab, and its clock (the zone for the slots' grid, its name for the
/// queries that reckon a local day in PostgreSQL).
#[derive(Clone, Debug)]
pub(super) struct Site {
    pub(super) lab: Uuid,
    pub(super) zone: TimeZone,
    timezone: String,
    /// The end of the lab's appointment window ([`AppointmentWindow`]).
    pub(super) window_ends: OffsetDateTime,
}

impl Site {
    pub(super) async fn of(state: &AppState) -> Result<Self, ApiError> {
        Ok(Self {
            lab: state.lab().await?.id,
            zone: state.zone.clone(),
            timezone: state.config.timezone.clone(),
            window_ends: state.window.ends(&state.pool).await?,
        })
    }

    fn opens(&self, day: Date) -> bool {
        window_has(day, self.window_ends, &self.zone)
    }
}

/// Whether the local day `day` begins before `window_ends` (its slots before the end are bookable).
fn window_has(day: Date, window_ends: OffsetDateTime, zone: &TimeZone) -> bool {
    slot_grid::local_day(window_ends - Duration::microseconds(1), zone).is_some_and(|last| day <= last)
}

/// Which slots of a day.
#[derive(Clone, Copy, Debug)]
enum Starting {
    /// All of them.
    Any,
    /// At or after this instant (the ones not started yet).
    From(OffsetDateTime),
    /// At this instant only.
    At(OffsetDateTime),
}

/// The slots of `kind` on the local day `day` that `starting` picks, with their places.
async fn day_slots(
    conn: &mut AsyncPgConnection,
    site: &Site,
    kind: &str,
    day: Date,
    starting: Starting,
) -> diesel::QueryResult<Vec<SlotRow>> {
    let Some(rules) = stored::rules(conn, site.lab).await? else {
        return Ok(Vec::new());
    };
    let (hours, minutes) = if kind == "lab" {
        (&rules.opening_hours, rules.slot_minutes)
    } else {
        (&rules.home_hours, rules.home_slot_minutes)
    };
    let mut grid = slot_grid::day_grid(hours, minutes, day, &site.zone);
    grid.retain(|(start, _)| match starting {
        Starting::Any => true,
        Starting::From(from) => *start >= from,
        Starting::At(at) => *start == at,
    });
    let (Some((first, _)), Some((_, last))) = (grid.first().copied(), grid.last().copied()) else {
        return Ok(Vec::new());
    };
    let booked = stored::booked(conn, site.lab, kind, (first, last)).await?;
    let capacity = if kind == "lab" {
        i64::from(rules.lab_places)
    } else {
        stored::samplers(conn, site.lab).await?
    };
    let capacity = i32::try_from(capacity).unwrap_or(i32::MAX);
    Ok(slot_grid::with_places(&grid, &booked, capacity, kind != "lab"))
}

/// `GET /v1/slots?date=&kind=`: the day's slots not started yet.
pub async fn slots(state: &AppState, date: Date, kind: AppointmentKind) -> Result<SlotList, ApiError> {
    let key = (date, kind_name(kind));
    let lists = &state.slot_lists;
    let window_ends = state.window.ends(&state.pool).await?;
    if !window_has(date, window_ends, &state.zone) {
        return Err(invalid(
            "/date",
            "is beyond the days whose appointments this gateway holds: book it through the central lab",
        )
        .into());
    }
    let day = match lists.held(key) {
        Held::Current(day) => day,
        Held::Ageing(day) => {
            let (lists, pool, site) = (Arc::clone(lists), state.pool.clone(), Site::of(state).await?);
            tokio::spawn(async move {
                // A failure leaves the current list to expire; the next request computes it then.
                if let Err(e) = lists.compute(&pool, &site, key, false).await {
                    tracing::debug!(error = %e, "slot list not refreshed");
                }
            });
            day
        }
        Held::Missing => lists.compute(&state.pool, &Site::of(state).await?, key, true).await?,
    };
    let now = OffsetDateTime::now_utc();
    let rows: Vec<&SlotRow> = day
        .iter()
        .filter(|row| row.start_at >= now && row.start_at < window_ends)
        .collect();
    let slot_minutes = match rows.first() {
        Some(row) => u16::try_from(row.minutes).unwrap_or(0),
        None => 0,
    };
    Ok(SlotList {
        date,
        kind,
        slot_minutes,
        items: rows.into_iter().map(slot).collect(),
    })
}

/// The next free slots of `kind` from `after`, over the following days if need be.
async fn next_free(
    conn: &mut AsyncPgConnection,
    site: &Site,
    kind: &str,
    after: OffsetDateTime,
) -> Result<Vec<Slot>, WriteError> {
    let from = after.max(OffsetDateTime::now_utc());
    let first_day = slot_grid::local_day(from, &site.zone).unwrap_or(from.date());
    if kind == "lab" {
        return next_free_lab(conn, site, (after, from), first_day).await;
    }
    let mut offered = Vec::new();
    for offset in 0..LOOK_AHEAD_DAYS {
        let day = first_day + Duration::days(offset);
        if !site.opens(day) {
            break;
        }
        let rows = day_slots(conn, site, kind, day, Starting::From(from)).await?;
        offered.extend(
            rows.iter()
                .filter(|r| r.free() > 0 && r.start_at != after && r.start_at < site.window_ends)
                .map(slot),
        );
        if offered.len() >= OFFERED {
            break;
        }
    }
    offered.truncate(OFFERED);
    Ok(offered)
}

/// [`next_free`] for lab visits: the look-ahead's slots laid out in the process and their places
/// counted by one statement that stops at the [`OFFERED`]-th free one. A refusal comes when a day is
/// full, and walking the days one by one (the rules and every visit of each day, up to 28 queries)
/// made each refusal cost the desk benchmark's machine more than ten bookings (`docs/performance.md`).
async fn next_free_lab(
    conn: &mut AsyncPgConnection,
    site: &Site,
    (after, from): (OffsetDateTime, OffsetDateTime),
    first_day: Date,
) -> Result<Vec<Slot>, WriteError> {
    let Some(rules) = stored::rules(conn, site.lab).await? else {
        return Ok(Vec::new());
    };
    let mut grid = Vec::new();
    for offset in 0..LOOK_AHEAD_DAYS {
        let day = first_day + Duration::days(offset);
        if !site.opens(day) {
            break;
        }
        grid.extend(
            slot_grid::day_grid(&rules.opening_hours, rules.slot_minutes, day, &site.zone)
                .into_iter()
                .filter(|(start, _)| *start >= from && *start != after && *start < site.window_ends),
        );
    }
    let places = i64::from(rules.lab_places);
    let free = stored::free_lab_slots(conn, site.lab, &grid, places, OFFERED).await?;
    let minutes = i32::from(rules.slot_minutes);
    Ok(free
        .into_iter()
        .map(|(start_at, end_at, booked)| {
            slot(&SlotRow {
                start_at,
                end_at,
                capacity: i32::from(rules.lab_places),
                taken: i32::try_from(booked).unwrap_or(i32::MAX),
                minutes,
            })
        })
        .collect())
}

/// The slot starting at `start`, locked, if it is one of the rules' and has not started.
async fn locked_slot(
    conn: &mut AsyncPgConnection,
    site: &Site,
    kind: &str,
    start: OffsetDateTime,
) -> Result<SlotRow, WriteError> {
    if start < OffsetDateTime::now_utc() {
        return Err(in_the_past().into());
    }
    if start >= site.window_ends {
        return Err(beyond_window().into());
    }
    let not_a_slot = || WriteError::from(not_a_slot());
    let day = slot_grid::local_day(start, &site.zone).ok_or_else(not_a_slot)?;
    stored::lock_slot(conn, site.lab, kind, start).await?;
    let rows = day_slots(conn, site, kind, day, Starting::At(start)).await?;
    rows.into_iter().next().ok_or_else(not_a_slot)
}

pub(super) fn in_the_past() -> ProblemError {
    invalid("/scheduled_at", "is in the past")
}

/// A start at or after the end of the lab's appointment window ([`AppointmentWindow`]).
pub(super) fn beyond_window() -> ProblemError {
    invalid(
        "/scheduled_at",
        "is beyond the days whose appointments this gateway holds: book it through the central lab",
    )
}

pub(super) fn not_a_slot() -> ProblemError {
    invalid(
        "/scheduled_at",
        "is not the start of a slot of the lab's hours: take one from GET /v1/slots",
    )
}

/// 409 `slot_unavailable`, with the next free slots.
pub(super) async fn unavailable(
    conn: &mut AsyncPgConnection,
    site: &Site,
    kind: &str,
    start: OffsetDateTime,
) -> WriteError {
    let mut problem = slot_full();
    match next_free(conn, site, kind, start).await {
        Ok(slots) => problem.problem.next_slots = slots,
        Err(e) => return e,
    }
    problem.into()
}

/// 409 `slot_unavailable`, its next free slots still to be added ([`offer_next`]).
pub(super) fn slot_full() -> ProblemError {
    ProblemError::new(ErrorCode::SlotUnavailable)
        .detail("this slot has no free place left: choose one of next_slots")
        .errors(vec![FieldError::new(
            "/scheduled_at",
            "slot_full",
            "no free place in this slot",
        )])
}

/// Adds the next free slots after `start` to a [`slot_full`] answer, on a connection of its own.
pub(super) async fn offer_next(
    state: &AppState,
    site: &Site,
    start: OffsetDateTime,
    mut problem: ProblemError,
) -> ApiError {
    let mut conn = match state.pool.get().await {
        Ok(conn) => conn,
        Err(e) => return e.into(),
    };
    match next_free(&mut conn, site, "lab", start).await {
        Ok(slots) => {
            problem.problem.next_slots = slots;
            ApiError::Problem(problem)
        }
        Err(e) => e.into(),
    }
}

/// A free place in `slot` for a visit of `kind`: the home sampler it goes to (home visits), or
/// `slot_unavailable`.
async fn place_in(
    conn: &mut AsyncPgConnection,
    site: &Site,
    (kind, slot): (&str, &SlotRow),
    (prefer, except): (Option<Uuid>, Option<Uuid>),
) -> Result<Option<Uuid>, WriteError> {
    if kind == "lab" {
        if slot.free() == 0 {
            return Err(unavailable(conn, site, kind, slot.start_at).await);
        }
        return Ok(None);
    }
    let sampler = stored::free_sampler(
        conn,
        site.lab,
        (slot.start_at, slot.end_at),
        (&site.timezone, prefer, except),
    )
    .await?;
    match sampler {
        Some(id) => Ok(Some(id)),
        None => Err(unavailable(conn, site, kind, slot.start_at).await),
    }
}

/// Books an appointment (`POST /v1/appointments`).
pub async fn book(
    state: &AppState,
    principal: &Principal,
    key: &str,
    body: NewAppointment,
    request_id: &str,
) -> Result<Answered<Appointment>, ApiError> {
    principal.require(&DESK)?;
    let site = Site::of(state).await?;
    let canonical = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let hash = request_hash(&[b"appointment.create", &canonical]);
    if body.kind == AppointmentKind::Lab {
        let booking = LabBooking {
            site,
            principal: principal.clone(),
            key: key.to_owned(),
            hash,
            body,
            request_id: request_id.to_owned(),
        };
        return super::lab_bookings::book(state, booking).await;
    }
    let patient = body.patient_id;
    let mut conn = state.pool.get().await?;
    let answered = conn
        .transaction::<_, WriteError, _>(async move |conn| {
            durable(conn).await?;
            idempotent(
                conn,
                keyed(principal, key, &hash, 201),
                async |conn| patient_known(conn, patient).await,
                async move |conn| insert_booking(conn, &site, principal, body, request_id).await,
            )
            .await
        })
        .await?;
    wake_relay(state, &answered);
    Ok(answered)
}

async fn patient_known(conn: &mut AsyncPgConnection, patient: Uuid) -> Result<(), WriteError> {
    Ok(patient_checked(clinical::patient_exists(conn, patient).await?)?)
}

pub(super) fn patient_checked(known: bool) -> Result<(), ProblemError> {
    if known {
        Ok(())
    } else {
        Err(invalid("/patient_id", "no such patient at this lab"))
    }
}

/// The booking itself, once the key is claimed.
async fn insert_booking(
    conn: &mut AsyncPgConnection,
    site: &Site,
    principal: &Principal,
    body: NewAppointment,
    request_id: &str,
) -> Result<Answered<Appointment>, WriteError> {
    if let Some(existing) = stored::find(conn, body.id).await? {
        return same_booking(&existing, &body).map(Answered::replayed);
    }
    patient_known(conn, body.patient_id).await?;
    let lab_id = site.lab;
    check_prescription(conn, lab_id, &body).await?;
    let address = visit_address(conn, &body).await?;
    let kind = kind_name(body.kind);
    let slot = locked_slot(conn, site, kind, body.scheduled_at).await?;
    let sampler = place_in(conn, site, (kind, &slot), (None, None)).await?;
    let row = AppointmentRow {
        id: body.id,
        lab_id,
        patient_id: body.patient_id,
        prescription_id: body.prescription_id,
        kind: kind.to_owned(),
        scheduled_at: body.scheduled_at,
        duration_min: i16::try_from(slot.minutes).unwrap_or(15),
        address_line: address.as_ref().map(|a| a.line.clone()),
        postal_code: address.as_ref().map(|a| a.postal_code.clone()),
        city: address.as_ref().map(|a| a.city.clone()),
        access_notes: body.access_notes.clone(),
        assigned_staff_id: sampler,
        round_position: None,
        status: "scheduled".into(),
        status_reason: None,
        version: 1,
    };
    stored::insert(conn, &row).await?;
    let appointment = render_appointment(&row).map_err(|_| ProblemError::new(ErrorCode::Internal))?;
    let op = RelayedOp::AppointmentCreate {
        appointment: appointment.clone(),
    };
    outbox::enqueue(conn, &mutation(principal, OffsetDateTime::now_utc(), op)).await?;
    let audit_entry = entry(
        principal,
        lab_id,
        "appointment.create",
        row.patient_id,
        format!("appointment:{}", row.id),
        request_id,
    );
    audit::insert(conn, &[audit_entry]).await?;
    Ok(Answered::fresh(appointment))
}

/// A booking id already stored: the same booking (its first answer was lost and the tablet sent it
/// again under another key) is answered as it is now; another one under that id is a conflict.
pub(super) fn same_booking(existing: &AppointmentRow, body: &NewAppointment) -> Result<Appointment, WriteError> {
    let same = existing.patient_id == body.patient_id
        && existing.prescription_id == body.prescription_id
        && existing.kind == kind_name(body.kind)
        && existing.scheduled_at == body.scheduled_at;
    if !same {
        return Err(ProblemError::new(ErrorCode::Conflict)
            .detail("another appointment already has this id")
            .errors(vec![FieldError::new("/id", "taken", "already used")])
            .into());
    }
    render_appointment(existing).map_err(|_| ProblemError::new(ErrorCode::Internal).into())
}

async fn check_prescription(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    body: &NewAppointment,
) -> Result<(), WriteError> {
    let Some(id) = body.prescription_id else {
        return Ok(());
    };
    let found = clinical::prescription(conn, id).await?;
    prescription_checked(found.map(|(patient, lab, _)| (patient, lab)), lab_id, body).map_err(WriteError::from)
}

/// The named prescription, found as (patient, lab), is one of the patient's at this lab.
pub(super) fn prescription_checked(
    found: Option<(Uuid, Uuid)>,
    lab_id: Uuid,
    body: &NewAppointment,
) -> Result<(), ProblemError> {
    match found {
        Some((patient, lab)) if patient == body.patient_id && lab == lab_id => Ok(()),
        _ if body.prescription_id.is_none() => Ok(()),
        _ => Err(invalid(
            "/prescription_id",
            "not a prescription of this patient at this lab",
        )),
    }
}

/// A lab visit takes place at the lab.
pub(super) fn lab_visit_checked(body: &NewAppointment) -> Result<(), ProblemError> {
    if body.address.is_some() || body.access_notes.is_some() {
        return Err(invalid("/address", "a lab visit takes no address or access notes"));
    }
    Ok(())
}

/// Where a home visit takes place: the address sent, else the patient's; none for a lab visit.
async fn visit_address(conn: &mut AsyncPgConnection, body: &NewAppointment) -> Result<Option<Address>, WriteError> {
    if body.kind == AppointmentKind::Lab {
        lab_visit_checked(body)?;
        return Ok(None);
    }
    if let Some(address) = &body.address {
        return Ok(Some(address.clone()));
    }
    let patient = crate::store::reads::load_patient(conn, body.patient_id).await?;
    let on_record = patient.and_then(|p| match (p.address_line, p.postal_code, p.city) {
        (Some(line), Some(postal_code), Some(city)) => Some(Address::new(line, postal_code, city)),
        _ => None,
    });
    on_record.map(Some).ok_or_else(|| {
        invalid(
            "/address",
            "a home visit needs an address and the patient has none on record",
        )
        .into()
    })
}

/// Moves an appointment to another slot (`POST /v1/appointments/{id}/reschedule`, `If-Match`).
pub async fn reschedule(
    state: &AppState,
    principal: &Principal,
    key: &str,
    (id, if_version): (Uuid, i64),
    body: Reschedule,
    request_id: &str,
) -> Result<Answered<Appointment>, ApiError> {
    principal.require(&DESK)?;
    let site = Site::of(state).await?;
    let lab = site.lab;
    let canonical = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let hash = request_hash(&[
        b"appointment.reschedule",
        id.as_bytes(),
        &if_version.to_be_bytes(),
        &canonical,
    ]);
    let mut conn = state.pool.get().await?;
    let answered = conn
        .transaction::<_, WriteError, _>(async move |conn| {
            durable(conn).await?;
            idempotent(
                conn,
                keyed(principal, key, &hash, 200),
                async |conn| lock_in_scope(conn, lab, principal, id).await.map(|_| ()),
                async move |conn| move_booking(conn, &site, principal, (id, if_version), body, request_id).await,
            )
            .await
        })
        .await?;
    wake_relay(state, &answered);
    Ok(answered)
}

async fn move_booking(
    conn: &mut AsyncPgConnection,
    site: &Site,
    principal: &Principal,
    (id, if_version): (Uuid, i64),
    body: Reschedule,
    request_id: &str,
) -> Result<Answered<Appointment>, WriteError> {
    let lab_id = site.lab;
    let row = lock_in_scope(conn, lab_id, principal, id).await?;
    check_version(&row, if_version)?;
    if row.status != "scheduled" {
        return Err(ProblemError::new(ErrorCode::InvalidTransition)
            .detail("only a scheduled appointment can be moved to another slot")
            .into());
    }
    if row.scheduled_at == body.scheduled_at {
        return Err(invalid("/scheduled_at", "is the appointment's current start").into());
    }
    let slot = locked_slot(conn, site, &row.kind, body.scheduled_at).await?;
    let sampler = place_in(conn, site, (&row.kind, &slot), (row.assigned_staff_id, Some(id))).await?;
    let assigned = if row.kind == "home" {
        sampler
    } else {
        row.assigned_staff_id
    };
    let moved = stored::move_to(conn, id, body.scheduled_at, assigned, row.version + 1).await?;
    let op = RelayedOp::AppointmentReschedule {
        appointment_id: id,
        if_version,
        scheduled_at: body.scheduled_at,
        assigned_staff_id: assigned,
    };
    outbox::enqueue(conn, &mutation(principal, OffsetDateTime::now_utc(), op)).await?;
    let audit_entry = entry(
        principal,
        lab_id,
        "appointment.reschedule",
        row.patient_id,
        format!("appointment:{id}"),
        request_id,
    );
    audit::insert(conn, &[audit_entry]).await?;
    let rendered = render_appointment(&moved).map_err(|_| ProblemError::new(ErrorCode::Internal))?;
    debug_assert_eq!(rendered.status, AppointmentStatus::Scheduled);
    Ok(Answered::fresh(rendered))
}
