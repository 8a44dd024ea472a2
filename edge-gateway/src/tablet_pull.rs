//! `GET /v1/sync/pull?cursor=`: a tablet's delta pull.
//!
//! ## Scope
//!
//! A device pulls its staff member's scope: the appointments of this lab assigned to them for today
//! and tomorrow (local days of the lab's time zone, any kind and status, so a cancellation reaches
//! the tablet as a status), the patients those appointments name, and the prescriptions they sample
//! (the appointment's own, else the patient's open prescriptions at this lab, as in a round).
//! Patients are rendered for the caller's role (masked NIR for home samplers).
//!
//! ## Cursor
//!
//! The cursor is opaque to the tablet: `2` followed by the unpadded base64url of its mark in the
//! gateway's `change_log` (writing transaction id and position, i64 each), the local day it was
//! issued for (i32 Julian day) and the staff member (16 bytes), all big-endian. The log is read in
//! (transaction, position) order and only below the oldest transaction still in progress (see
//! [`changes`]), so a mark the tablet holds never has a change committed below it later.
//!
//! - No cursor, or a cursor of another day or of another staff member, or beyond the log's horizon
//!   (a restored database), or of the first encoding (`1`, a bare position, from before the log
//!   kept transaction ids): the whole scope, with `reset: true` and a cursor at the horizon read
//!   *before* the scope, so a change committed meanwhile comes again next time (at least once).
//! - A cursor that does not decode: 422 on `/cursor`.
//! - Otherwise the changes after the cursor, [`PAGE_CHANGES`] log entries at a time (`has_more`):
//!   each changed entity in scope comes whole (an appointment with its patient and prescriptions,
//!   since it may just have entered the scope); each changed entity out of scope comes as a
//!   removal, and so do the patient and the prescriptions of an appointment that left the scope
//!   when no appointment still in scope needs them. The gateway keeps no per-device state, so a
//!   removal may name an id the tablet never had: the tablet ignores it. An appointment deleted
//!   outright is removed, but its patient is then unknown and stays on the tablet until the next
//!   reset (the next day at the latest).
//!
//! Every patient, prescription and appointment sent is audited (`sync.pull`); a pull that sends
//! nothing costs no audit commit.

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use labedge_schema::sync::AppointmentRow;
use labedge_service::error::ApiError;
use mobile_contracts::problem::{ErrorCode, FieldError, Problem};
use mobile_contracts::{Removal, SyncEntity, SyncPullResponse};
use time::Date;
use uuid::Uuid;

use crate::reads::render;
use crate::reads::{Audited, Caller};
use crate::state::AppState;
use crate::store::changes::{self, Change, Mark};
use crate::store::reads as store;

/// `change_log` entries one page covers.
pub const PAGE_CHANGES: i64 = 500;

/// First character of every cursor: the version of its encoding.
const CURSOR_VERSION: char = '2';

/// The first encoding's version: a bare position, read back as a cursor beyond any horizon, so
/// that a tablet holding one starts over once.
const CURSOR_VERSION_POSITION: char = '1';

/// Where a tablet stands: a mark in `change_log`, for one local day and one staff member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The last `change_log` entry the tablet has.
    pub at: Mark,
    /// The local day the scope was computed for.
    pub day: Date,
    /// The staff member whose scope it is.
    pub staff: Uuid,
}

impl Cursor {
    /// The opaque text the tablet sends back.
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; 36];
        bytes[..8].copy_from_slice(&self.at.xid.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.at.position.to_be_bytes());
        bytes[16..20].copy_from_slice(&self.day.to_julian_day().to_be_bytes());
        bytes[20..].copy_from_slice(self.staff.as_bytes());
        let mut text = String::with_capacity(49);
        text.push(CURSOR_VERSION);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
        text
    }

    /// Reads [`Cursor::encode`]'s text, or the first encoding's; `None` when it is neither.
    pub fn decode(text: &str) -> Option<Self> {
        if let Some(body) = text.strip_prefix(CURSOR_VERSION_POSITION) {
            let bytes: [u8; 28] = URL_SAFE_NO_PAD.decode(body).ok()?.try_into().ok()?;
            let position = i64::from_be_bytes(bytes[..8].try_into().ok()?);
            let (day, staff) = day_and_staff(&bytes[8..])?;
            let at = Mark {
                xid: i64::MAX,
                position,
            };
            return (position >= 0).then_some(Self { at, day, staff });
        }
        let body = text.strip_prefix(CURSOR_VERSION)?;
        let bytes: [u8; 36] = URL_SAFE_NO_PAD.decode(body).ok()?.try_into().ok()?;
        let xid = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let position = i64::from_be_bytes(bytes[8..16].try_into().ok()?);
        let (day, staff) = day_and_staff(&bytes[16..])?;
        (xid >= 0 && position >= 0).then_some(Self {
            at: Mark { xid, position },
            day,
            staff,
        })
    }
}

/// The day (Julian, i32) and the staff member (16 bytes) that end both encodings.
fn day_and_staff(bytes: &[u8]) -> Option<(Date, Uuid)> {
    let day = Date::from_julian_day(i32::from_be_bytes(bytes.get(..4)?.try_into().ok()?)).ok()?;
    Some((day, Uuid::from_slice(bytes.get(4..)?).ok()?))
}

fn malformed_cursor() -> ApiError {
    Problem::new(ErrorCode::ValidationFailed)
        .with_detail("the cursor was not issued by this gateway; pull without a cursor to start again")
        .with_errors(vec![FieldError::new(
            "/cursor",
            "cursor",
            "is not a cursor issued by this gateway",
        )])
        .into()
}

/// A staff member's scope now.
#[derive(Debug, Default)]
pub struct Scope {
    /// Their appointments of the window, by time.
    pub appointments: Vec<AppointmentRow>,
    /// The patients those name.
    pub patients: BTreeSet<Uuid>,
    /// The prescriptions they sample.
    pub prescriptions: BTreeSet<Uuid>,
    /// Open prescriptions of the patients whose appointment names none: (prescription, patient).
    open: Vec<(Uuid, Uuid)>,
}

impl Scope {
    fn prescriptions_of(&self, appointment: &AppointmentRow) -> Vec<Uuid> {
        store::visit_prescriptions(appointment, &self.open)
    }
}

/// Local days a scope covers: today and tomorrow.
pub const SCOPE_DAYS: i64 = 2;

/// The scope of `caller` from the local day `today` in `timezone` (two queries).
pub async fn scope(conn: &mut AsyncPgConnection, caller: &Caller, timezone: &str, today: Date) -> QueryResult<Scope> {
    let (mine, days) = ((caller.staff_id, false), (today, SCOPE_DAYS));
    let appointments = store::appointments_in_period(conn, caller.lab_id, mine, timezone, days).await?;
    let without: Vec<Uuid> = appointments
        .iter()
        .filter(|a| a.prescription_id.is_none())
        .map(|a| a.patient_id)
        .collect();
    let open = store::open_prescriptions_of(conn, caller.lab_id, &without).await?;
    let mut scope = Scope {
        patients: appointments.iter().map(|a| a.patient_id).collect(),
        open,
        ..Scope::default()
    };
    scope.prescriptions = appointments.iter().flat_map(|a| scope.prescriptions_of(a)).collect();
    scope.appointments = appointments;
    Ok(scope)
}

/// What a page sends: ids to upsert, removals.
#[derive(Debug, Default)]
struct Delta {
    appointments: BTreeSet<Uuid>,
    patients: BTreeSet<Uuid>,
    prescriptions: BTreeSet<Uuid>,
    removals: BTreeSet<(u8, Uuid)>,
}

const APPOINTMENT: u8 = 0;
const PATIENT: u8 = 1;
const PRESCRIPTION: u8 = 2;

/// `GET /v1/sync/pull?cursor=`.
pub async fn pull(
    state: &AppState,
    caller: &Caller,
    cursor: Option<&str>,
) -> Result<Audited<SyncPullResponse>, ApiError> {
    let cursor = match cursor {
        None => None,
        Some(text) => Some(Cursor::decode(text).ok_or_else(malformed_cursor)?),
    };
    let mut conn = state.pool.get().await?;
    let timezone = state.config.timezone.as_str();
    // The horizon is read before the scope, so a change committed meanwhile comes again.
    let today = store::local_today(&conn, timezone).await?;
    let horizon = changes::settled_horizon(&mut conn).await?;
    let current = cursor.filter(|c| c.staff == caller.staff_id && c.day == today && c.at.xid <= horizon);
    let Some(cursor) = current else {
        let scope = scope(&mut conn, caller, timezone, today).await?;
        let delta = Delta {
            appointments: scope.appointments.iter().map(|a| a.id).collect(),
            patients: scope.patients.clone(),
            prescriptions: scope.prescriptions.clone(),
            removals: BTreeSet::new(),
        };
        let next = Cursor {
            at: Mark::below(horizon),
            day: today,
            staff: caller.staff_id,
        };
        return render(&mut conn, caller, &scope, delta, next, true, false).await;
    };

    let (changes, has_more) = changes_since(&mut conn, cursor.at, horizon).await?;
    let Some(last) = changes.last().map(|change| change.0) else {
        // Nothing new: the same cursor, nothing to audit.
        return Ok(Audited {
            body: empty_page(cursor),
            audit: Vec::new(),
        });
    };
    let next = Cursor { at: last, ..cursor };
    let scope = scope(&mut conn, caller, timezone, today).await?;
    let (mut delta, left) = delta_of(&scope, &changes);
    if !left.is_empty() {
        remove_orphans(&mut conn, caller, &scope, &left, &mut delta).await?;
    }
    render(&mut conn, caller, &scope, delta, next, false, has_more).await
}

/// The changes after `after` and below `horizon`, at most a page, and whether more follow.
async fn changes_since(conn: &mut AsyncPgConnection, after: Mark, horizon: i64) -> QueryResult<(Vec<Change>, bool)> {
    let mut changes = changes::since(conn, after, horizon, PAGE_CHANGES + 1).await?;
    let has_more = changes.len() as i64 > PAGE_CHANGES;
    changes.truncate(PAGE_CHANGES as usize);
    Ok((changes, has_more))
}

/// What `changes` mean for the caller's scope: what to send again, what to remove, and the
/// appointments that left the scope (whose patients may have to go too).
fn delta_of(scope: &Scope, changes: &[Change]) -> (Delta, Vec<Uuid>) {
    let by_id: HashMap<Uuid, &AppointmentRow> = scope.appointments.iter().map(|a| (a.id, a)).collect();
    let mut delta = Delta::default();
    let mut left = Vec::new();
    for (_, entity, id) in changes {
        match entity.as_str() {
            "appointment" => match by_id.get(id) {
                Some(appointment) => {
                    delta.appointments.insert(*id);
                    delta.patients.insert(appointment.patient_id);
                    delta.prescriptions.extend(scope.prescriptions_of(appointment));
                }
                None => {
                    delta.removals.insert((APPOINTMENT, *id));
                    left.push(*id);
                }
            },
            "patient" if scope.patients.contains(id) => {
                delta.patients.insert(*id);
            }
            "patient" => {
                delta.removals.insert((PATIENT, *id));
            }
            "prescription" if scope.prescriptions.contains(id) => {
                delta.prescriptions.insert(*id);
            }
            "prescription" => {
                delta.removals.insert((PRESCRIPTION, *id));
            }
            _ => {}
        }
    }
    (delta, left)
}

/// Removes what the appointments that left the scope named, and nothing in scope still needs.
async fn remove_orphans(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    scope: &Scope,
    left: &[Uuid],
    delta: &mut Delta,
) -> QueryResult<()> {
    let patients = store::patients_of_appointments(conn, left).await?;
    let orphans: Vec<Uuid> = patients.into_iter().filter(|p| !scope.patients.contains(p)).collect();
    let their_prescriptions = store::prescription_ids_of(conn, caller.lab_id, &orphans).await?;
    delta.removals.extend(orphans.into_iter().map(|p| (PATIENT, p)));
    delta.removals.extend(
        their_prescriptions
            .into_iter()
            .filter(|p| !scope.prescriptions.contains(p))
            .map(|p| (PRESCRIPTION, p)),
    );
    Ok(())
}

fn empty_page(cursor: Cursor) -> SyncPullResponse {
    SyncPullResponse {
        cursor: cursor.encode(),
        reset: false,
        has_more: false,
        appointments: Vec::new(),
        patients: Vec::new(),
        prescriptions: Vec::new(),
        removals: Vec::new(),
    }
}

/// Loads and renders what `delta` names, with its audit.
async fn render(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    scope: &Scope,
    delta: Delta,
    next: Cursor,
    reset: bool,
    has_more: bool,
) -> Result<Audited<SyncPullResponse>, ApiError> {
    let patient_ids: Vec<Uuid> = delta.patients.iter().copied().collect();
    let prescription_ids: Vec<Uuid> = delta.prescriptions.iter().copied().collect();
    let mut patients = store::load_patients(conn, &patient_ids).await?;
    patients.sort_by_key(|p| p.id);
    let mut prescriptions: Vec<_> = store::load_prescriptions(conn, &prescription_ids)
        .await?
        .into_iter()
        .filter(|p| p.lab_id == caller.lab_id)
        .map(|p| p.prescription)
        .collect();
    prescriptions.sort_by_key(|p| p.id);
    let appointments: Vec<&AppointmentRow> = scope
        .appointments
        .iter()
        .filter(|a| delta.appointments.contains(&a.id))
        .collect();

    let mut audit = Vec::new();
    for a in &appointments {
        audit.push(caller.audit("sync.pull", Some(a.patient_id), Some(format!("appointment:{}", a.id))));
    }
    for p in &patients {
        audit.push(caller.audit("sync.pull", Some(p.id), Some(format!("patient:{}", p.id))));
    }
    for p in &prescriptions {
        audit.push(caller.audit("sync.pull", Some(p.patient_id), Some(format!("prescription:{}", p.id))));
    }
    let body = SyncPullResponse {
        cursor: next.encode(),
        reset,
        has_more,
        appointments: appointments
            .into_iter()
            .map(render::render_appointment)
            .collect::<Result<_, _>>()?,
        patients: patients
            .iter()
            .map(|p| render::render_patient(p, caller.role))
            .collect::<Result<_, _>>()?,
        prescriptions,
        removals: delta
            .removals
            .into_iter()
            .map(|(kind, id)| Removal {
                entity: match kind {
                    APPOINTMENT => SyncEntity::Appointment,
                    PATIENT => SyncEntity::Patient,
                    _ => SyncEntity::Prescription,
                },
                id,
            })
            .collect(),
    };
    Ok(Audited { body, audit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = Cursor {
            at: Mark {
                xid: 7_000_123,
                position: 42,
            },
            day: time::macros::date!(2026 - 03 - 14),
            staff: Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0001),
        };
        let text = cursor.encode();
        assert!(text.len() <= 128 && text.starts_with('2'), "{text}");
        assert_eq!(Cursor::decode(&text), Some(cursor));
        for bad in [
            "",
            "2",
            "3AAAA",
            "not a cursor",
            &text[..text.len() - 1],
            &format!("{text}A"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        for negative in [Mark { xid: -1, position: 42 }, Mark { xid: 1, position: -1 }] {
            assert_eq!(Cursor::decode(&Cursor { at: negative, ..cursor }.encode()), None);
        }
    }

    #[test]
    fn a_cursor_of_the_first_encoding_reads_as_beyond_any_horizon() {
        let staff = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0002);
        let day = time::macros::date!(2026 - 03 - 14);
        let mut bytes = [0u8; 28];
        bytes[..8].copy_from_slice(&42_i64.to_be_bytes());
        bytes[8..12].copy_from_slice(&day.to_julian_day().to_be_bytes());
        bytes[12..].copy_from_slice(staff.as_bytes());
        let old = format!("1{}", URL_SAFE_NO_PAD.encode(bytes));
        let cursor = Cursor::decode(&old).expect("a first-encoding cursor");
        assert_eq!((cursor.day, cursor.staff), (day, staff));
        assert_eq!(cursor.at.xid, i64::MAX, "beyond the horizon: the tablet starts over");
        assert_eq!(Cursor::decode(&old[..old.len() - 2]), None);
    }
}
