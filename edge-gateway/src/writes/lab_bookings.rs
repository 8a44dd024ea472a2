//! Lab visits booked many to a transaction ([`super::group`]): the desk's bookings waiting at one
//! moment are checked with one statement, take their slots' locks with another, and are stored with
//! one statement per table and one commit.
//!
//! The rules are `super::booking`'s, in the same order, with the same answers; what changes is that
//! the places of a slot are counted once for the group, and the group's own bookings fill them in
//! the order they came: of two bookings of a slot's last place, in one group or in two, exactly one
//! gets it and the other gets 409 `slot_unavailable` with the next free slots, looked up after the
//! group's commit (so they count its bookings, and do not hold it). Like a booking alone, it stays within the lab's appointment window
//! (`super::booking::AppointmentWindow`). Home visits pick a home sampler under the slot's lock and are rarer; they
//! are booked one by one as before.

use std::collections::HashMap;
use std::future::Future;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use labedge_protocol::relay::RelayedOp;
use labedge_schema::sync::AppointmentRow;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{Appointment, NewAppointment};
use time::{Date, OffsetDateTime};

use super::booking::{
    Site, beyond_window, in_the_past, lab_visit_checked, not_a_slot, offer_next, patient_checked, prescription_checked,
    same_booking, slot_full,
};
use super::group::{GroupWriter, Grouped, ItemVerdict, Mark};
use super::slot_grid;
use super::{WriteError, claim_group, durable, entry, keyed, mutation, store_group_answers, wake_relay};
use crate::auth::Principal;
use crate::reads::render::render_appointment;
use crate::state::AppState;
use crate::store::booking::{self as stored, Asked, BookingRules, Facts};
use crate::store::idempotency::{Answered, Claim};
use crate::store::{audit, outbox};

/// The group writer of lab-visit bookings.
pub type BookingWriter = GroupWriter<LabBooking>;

/// A lab visit to book, checked against the contract and the caller's role already.
#[derive(Debug)]
pub struct LabBooking {
    pub(super) site: Site,
    pub(super) principal: Principal,
    pub(super) key: String,
    pub(super) hash: Vec<u8>,
    pub(super) body: NewAppointment,
    pub(super) request_id: String,
}

impl Grouped for LabBooking {
    type Answer = Appointment;

    const NAME: &'static str = "booking";

    fn marks(&self) -> Vec<Mark<'_>> {
        let principal = &self.principal;
        vec![
            Mark::Key(principal.device_id, principal.staff_id, self.key.as_str()),
            Mark::Id(self.body.id),
        ]
    }

    fn write_group<'a>(
        conn: &'a mut AsyncPgConnection,
        items: &'a [&'a Self],
    ) -> impl Future<Output = QueryResult<Vec<ItemVerdict<Appointment>>>> + Send + 'a {
        write_group(conn, items)
    }
}

/// Books `booking` through the group writer. A refusal for a full slot gets its next free slots
/// here, after the group's commit: looking them up (up to 14 days, two queries a day) inside the
/// group's transaction held every booking of the group until it was done.
pub(super) async fn book(state: &AppState, booking: LabBooking) -> Result<Answered<Appointment>, ApiError> {
    let (site, start) = (booking.site.clone(), booking.body.scheduled_at);
    let verdict = state
        .bookings
        .write(vec![booking])
        .await
        .pop()
        .unwrap_or_else(|| Err(ProblemError::new(ErrorCode::Internal).into()));
    let answered = match verdict {
        Err(ApiError::Problem(full)) if full.problem.code == ErrorCode::SlotUnavailable => {
            return Err(offer_next(state, &site, start, full).await);
        }
        verdict => verdict?,
    };
    wake_relay(state, &answered);
    Ok(answered)
}

/// Where an item stands once its look-ups are in.
#[expect(
    clippy::large_enum_variant,
    reason = "one per item of a group, for the group's time: an allocation per item would cost more"
)]
enum Step {
    /// Answered.
    Done(ItemVerdict<Appointment>),
    /// Its slot has no place left.
    Full,
    /// Booked: its row and its answer.
    Booked(AppointmentRow, Appointment),
}

async fn write_group(
    conn: &mut AsyncPgConnection,
    items: &[&LabBooking],
) -> QueryResult<Vec<ItemVerdict<Appointment>>> {
    let Some(first) = items.first() else {
        return Ok(Vec::new());
    };
    let site = &first.site;
    durable(conn).await?;
    let keys: Vec<_> = items
        .iter()
        .map(|i| keyed(&i.principal, &i.key, &i.hash, 201))
        .collect();
    let claims = claim_group(conn, &keys).await?;
    let now = OffsetDateTime::now_utc();
    let rules = stored::rules(conn, site.lab).await?;
    let mut grids = Grids::default();
    let slots: Vec<_> = items
        .iter()
        .map(|i| {
            let start = i.body.scheduled_at;
            grids
                .slot(rules.as_ref(), site, start)
                .filter(|_| start >= now && start < i.site.window_ends)
        })
        .collect();
    let starts: Vec<OffsetDateTime> = slots.iter().flatten().map(|(start, _)| *start).collect();
    stored::lock_slots(conn, site.lab, "lab", &starts).await?;
    let asked: Vec<Asked> = items
        .iter()
        .zip(&slots)
        .map(|(i, slot)| Asked {
            id: i.body.id,
            patient: i.body.patient_id,
            prescription: i.body.prescription_id,
            slot: *slot,
        })
        .collect();
    let facts = stored::facts(conn, site.lab, "lab", &asked).await?;
    let places = i64::from(rules.as_ref().map_or(0, |r| r.lab_places));
    // Places taken by this group's bookings so far, by slot.
    let mut taken: HashMap<OffsetDateTime, i64> = HashMap::new();
    let mut steps = Vec::with_capacity(items.len());
    for (((item, claim), facts), slot) in items.iter().zip(claims).zip(&facts).zip(&slots) {
        let step = match claim {
            Err(refused) => Step::Done(Err(refused
                .problem()
                .unwrap_or_else(|| ProblemError::new(ErrorCode::Internal)))),
            // A replay is answered its stored answer after the scope check, run again.
            Ok(Claim::Replay { body, .. }) => Step::Done(patient_checked(facts.patient_known).and_then(|()| {
                serde_json::from_value(body)
                    .map(Answered::replayed)
                    .map_err(|_| ProblemError::new(ErrorCode::Internal))
            })),
            Ok(Claim::Fresh) if facts.recorded => Step::Done(recorded(conn, &item.body).await?),
            Ok(Claim::Fresh) => match checked(item, facts, *slot, now) {
                Err(refused) => Step::Done(Err(refused)),
                Ok((start, end)) => {
                    let here = taken.entry(start).or_default();
                    let row = row(item, (start, end));
                    if facts.booked + *here >= places {
                        Step::Full
                    } else {
                        match render_appointment(&row) {
                            Ok(appointment) => {
                                *here += 1;
                                Step::Booked(row, appointment)
                            }
                            Err(_) => Step::Done(Err(ProblemError::new(ErrorCode::Internal))),
                        }
                    }
                }
            },
        };
        steps.push(step);
    }
    let booked: Vec<Booked<'_>> = items
        .iter()
        .zip(&steps)
        .filter_map(|(item, step)| match step {
            Step::Booked(row, appointment) => Some((*item, row, appointment)),
            _ => None,
        })
        .collect();
    insert(conn, &booked).await?;
    let mut verdicts = Vec::with_capacity(items.len());
    for step in steps {
        verdicts.push(match step {
            Step::Done(verdict) => verdict,
            Step::Booked(_, appointment) => Ok(Answered::fresh(appointment)),
            // Its next free slots are added by `book`, after the commit.
            Step::Full => Err(slot_full()),
        });
    }
    Ok(verdicts)
}

/// An appointment id already stored: the same booking again (answered as it is now) or a conflict.
async fn recorded(conn: &mut AsyncPgConnection, body: &NewAppointment) -> QueryResult<ItemVerdict<Appointment>> {
    Ok(match stored::find(conn, body.id).await? {
        Some(existing) => same_booking(&existing, body)
            .map(Answered::replayed)
            .map_err(|e| match e {
                WriteError::Problem(problem) => problem,
                WriteError::Database(_) => ProblemError::new(ErrorCode::Internal),
            }),
        // Nothing deletes appointments: it was there when the group looked.
        None => Err(ProblemError::new(ErrorCode::Internal)),
    })
}

/// The rules of a booking, in `super::booking`'s order, on the facts the group looked up: its slot.
fn checked(
    item: &LabBooking,
    facts: &Facts,
    slot: Option<(OffsetDateTime, OffsetDateTime)>,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), ProblemError> {
    let body = &item.body;
    patient_checked(facts.patient_known)?;
    prescription_checked(
        facts.prescription_patient.zip(facts.prescription_lab),
        item.site.lab,
        body,
    )?;
    lab_visit_checked(body)?;
    if body.scheduled_at < now {
        return Err(in_the_past());
    }
    if body.scheduled_at >= item.site.window_ends {
        return Err(beyond_window());
    }
    slot.ok_or_else(not_a_slot)
}

/// The appointment row of a booking in `slot`.
fn row(item: &LabBooking, (start, end): (OffsetDateTime, OffsetDateTime)) -> AppointmentRow {
    let body = &item.body;
    AppointmentRow {
        id: body.id,
        lab_id: item.site.lab,
        patient_id: body.patient_id,
        prescription_id: body.prescription_id,
        kind: "lab".to_owned(),
        scheduled_at: start,
        duration_min: i16::try_from((end - start).whole_minutes()).unwrap_or(15),
        address_line: None,
        postal_code: None,
        city: None,
        access_notes: None,
        assigned_staff_id: None,
        round_position: None,
        status: "scheduled".into(),
        status_reason: None,
        version: 1,
    }
}

/// A booked item, its row and its answer.
type Booked<'a> = (&'a LabBooking, &'a AppointmentRow, &'a Appointment);

/// The rows of the booked items: appointments, outbox entries, audit records, stored answers.
async fn insert(conn: &mut AsyncPgConnection, booked: &[Booked<'_>]) -> QueryResult<()> {
    if booked.is_empty() {
        return Ok(());
    }
    let rows: Vec<AppointmentRow> = booked.iter().map(|(_, row, _)| (*row).clone()).collect();
    stored::insert_many(conn, &rows).await?;
    let now = OffsetDateTime::now_utc();
    let mutations: Vec<_> = booked
        .iter()
        .map(|(item, _, appointment)| {
            let op = RelayedOp::AppointmentCreate {
                appointment: (*appointment).clone(),
            };
            mutation(&item.principal, now, op)
        })
        .collect();
    outbox::enqueue_many(conn, &mutations).await?;
    let audits: Vec<_> = booked
        .iter()
        .map(|(item, row, _)| {
            entry(
                &item.principal,
                row.lab_id,
                "appointment.create",
                row.patient_id,
                format!("appointment:{}", row.id),
                &item.request_id,
            )
        })
        .collect();
    audit::insert(conn, &audits).await?;
    let answers = booked
        .iter()
        .map(|(item, _, appointment)| (keyed(&item.principal, &item.key, &item.hash, 201), *appointment));
    store_group_answers(conn, answers).await
}

/// The slots of the days a group books, each day's laid out once.
#[derive(Default)]
struct Grids {
    days: HashMap<Date, Vec<(OffsetDateTime, OffsetDateTime)>>,
}

impl Grids {
    /// The slot of the rules starting at `start`, if there is one.
    fn slot(
        &mut self,
        rules: Option<&BookingRules>,
        site: &Site,
        start: OffsetDateTime,
    ) -> Option<(OffsetDateTime, OffsetDateTime)> {
        let rules = rules?;
        let day = slot_grid::local_day(start, &site.zone)?;
        let grid = self
            .days
            .entry(day)
            .or_insert_with(|| slot_grid::day_grid(&rules.opening_hours, rules.slot_minutes, day, &site.zone));
        grid.iter().find(|(s, _)| *s == start).copied()
    }
}
