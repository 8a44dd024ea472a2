//! `record_collection`: a specimen collection, checked, stored with its tubes, queued for the cloud,
//! written with the collections waiting at the same moment ([`super::group`]).

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use labedge_protocol::relay::RelayedOp;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, FieldError};
use mobile_contracts::{CollectionReceipt, NewCollection, RelayState, Role};
use std::future::Future;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::group::{GroupWriter, Grouped, ItemVerdict, Mark};
use super::{claim_group, durable, entry, invalid, keyed, mutation, store_group_answers, wake_relay};
use crate::audit::AuditEntry;
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::collections::{self as stored, Asked, Facts, Recording, method_name};
use crate::store::idempotency::{Answered, Claim, request_hash};
use crate::store::{audit, outbox};

/// How far ahead of the gateway's clock a collection may be dated.
pub const FUTURE_TOLERANCE: Duration = Duration::minutes(5);

/// How far before its prescription's issue date (midnight UTC) a collection may be dated: a sample
/// is never taken before it is prescribed, and two days cover a tablet clock a day off plus any time
/// zone. Without a bound, a collection dated 1900-01-01 was accepted.
pub const PAST_TOLERANCE: Duration = Duration::days(2);

/// The group writer of collections.
pub type CollectionWriter = GroupWriter<Item>;

/// One collection to write, checked against the contract already.
#[derive(Debug)]
pub struct Item {
    /// The gateway's lab.
    pub lab_id: Uuid,
    /// Who writes it.
    pub principal: Principal,
    /// Its idempotency key.
    pub key: String,
    /// Its request hash.
    pub hash: Vec<u8>,
    /// The collection.
    pub body: NewCollection,
    /// When the gateway received it (its `recorded_at`).
    pub now: OffsetDateTime,
    /// Its audit record.
    pub audit: AuditEntry,
}

impl Grouped for Item {
    type Answer = CollectionReceipt;

    const NAME: &'static str = "collection";

    fn marks(&self) -> Vec<Mark<'_>> {
        let principal = &self.principal;
        let mut marks = vec![
            Mark::Key(principal.device_id, principal.staff_id, self.key.as_str()),
            Mark::Id(self.body.id),
        ];
        marks.extend(self.body.tubes.iter().map(|t| Mark::Unique(t.barcode.as_str())));
        marks
    }

    fn write_group<'a>(
        conn: &'a mut AsyncPgConnection,
        items: &'a [&'a Self],
    ) -> impl Future<Output = QueryResult<Vec<ItemVerdict<CollectionReceipt>>>> + Send + 'a {
        write_group(conn, items)
    }
}

/// Records a specimen collection (`POST /v1/collections`), through the group writer.
pub async fn record_collection(
    state: &AppState,
    principal: &Principal,
    key: &str,
    body: NewCollection,
    request_id: &str,
) -> Result<Answered<CollectionReceipt>, ApiError> {
    let item = prepare(state, principal, key, body, request_id).await?;
    let answered = state
        .collections
        .write(vec![item])
        .await
        .pop()
        .unwrap_or_else(|| Err(ProblemError::new(ErrorCode::Internal).into()))?;
    wake_relay(state, &answered);
    Ok(answered)
}

/// A collection made ready for the group writer: its request hash, its time, its audit record.
pub async fn prepare(
    state: &AppState,
    principal: &Principal,
    key: &str,
    body: NewCollection,
    request_id: &str,
) -> Result<Item, ApiError> {
    let lab = state.lab().await?;
    let canonical = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let audit = entry(
        principal,
        lab.id,
        "collection.create",
        body.patient_id,
        format!("collection:{}", body.id),
        request_id,
    );
    Ok(Item {
        lab_id: lab.id,
        principal: principal.clone(),
        key: key.to_owned(),
        hash: request_hash(&[b"collection.create", &canonical]),
        body,
        now: stored_precision(OffsetDateTime::now_utc()),
        audit,
    })
}

/// The verdicts of a group of collections, in one transaction (open, `synchronous_commit` set
/// here): the keys claimed and every check's look-ups with one statement each, then the rows of
/// all the accepted ones with one statement per table. An `Err` is a statement that failed: the
/// caller rolls back (and writes the items alone).
async fn write_group(
    conn: &mut AsyncPgConnection,
    items: &[&Item],
) -> QueryResult<Vec<ItemVerdict<CollectionReceipt>>> {
    let Some(first) = items.first() else {
        return Ok(Vec::new());
    };
    durable(conn).await?;
    let keys: Vec<_> = items
        .iter()
        .map(|i| keyed(&i.principal, &i.key, &i.hash, 201))
        .collect();
    let claims = claim_group(conn, &keys).await?;
    let asked: Vec<Asked<'_>> = items
        .iter()
        .map(|i| Asked {
            body: &i.body,
            staff_id: i.principal.staff_id,
            home_sampler: i.principal.role == Role::HomeSampler,
        })
        .collect();
    let facts = stored::facts(conn, first.lab_id, &asked).await?;
    let mut verdicts = Vec::with_capacity(items.len());
    let mut accepted = Vec::new();
    for ((item, claim), facts) in items.iter().zip(claims).zip(facts) {
        let verdict = match claim {
            Err(refused) => Err(refused
                .problem()
                .unwrap_or_else(|| ProblemError::new(ErrorCode::Internal))),
            // A replay is answered its stored answer after the scope check, run again: the caller
            // may have lost the patient since.
            Ok(Claim::Replay { body, .. }) => in_scope(&facts, item).and_then(|()| {
                serde_json::from_value(body)
                    .map(Answered::replayed)
                    .map_err(|_| ProblemError::new(ErrorCode::Internal))
            }),
            Ok(Claim::Fresh) => match check_collection(&facts, item) {
                Err(refused) => Err(refused),
                // The same collection again under another key (its first answer was lost and the
                // tablet queued it anew): recorded once, answered as a replay. A different
                // collection under an id already used is a conflict.
                Ok(()) if facts.recorded => same_collection_recorded(conn, &item.principal, &item.body)
                    .await?
                    .map(|recorded_at| Answered::replayed(receipt(item.body.id, recorded_at))),
                // Checked here rather than left to the unique index, whose violation would roll
                // back the whole group.
                Ok(())
                    if item
                        .body
                        .tubes
                        .iter()
                        .any(|t| facts.taken_barcodes.iter().any(|b| b == t.barcode.as_str())) =>
                {
                    Err(barcode_taken())
                }
                Ok(()) => {
                    accepted.push(verdicts.len());
                    Ok(Answered::fresh(receipt(item.body.id, item.now)))
                }
            },
        };
        verdicts.push(verdict);
    }
    if !accepted.is_empty() {
        insert(conn, &accepted.iter().map(|&i| items[i]).collect::<Vec<_>>()).await?;
    }
    Ok(verdicts)
}

/// The rows of the accepted `items`: collections and tubes, outbox entries, audit records, stored
/// answers.
async fn insert(conn: &mut AsyncPgConnection, items: &[&Item]) -> QueryResult<()> {
    let rows: Vec<_> = items
        .iter()
        .map(|i| {
            let recording = Recording {
                lab_id: i.lab_id,
                staff_id: i.principal.staff_id,
                device_id: i.principal.device_id,
                recorded_at: i.now,
            };
            (&i.body, recording)
        })
        .collect();
    stored::insert_many(conn, &rows).await?;
    let mutations: Vec<_> = items
        .iter()
        .map(|i| {
            let op = RelayedOp::CollectionCreate {
                collection: i.body.clone(),
            };
            mutation(&i.principal, i.now, op)
        })
        .collect();
    outbox::enqueue_many(conn, &mutations).await?;
    let audits: Vec<AuditEntry> = items.iter().map(|i| i.audit.clone()).collect();
    audit::insert(conn, &audits).await?;
    let receipts: Vec<CollectionReceipt> = items.iter().map(|i| receipt(i.body.id, i.now)).collect();
    let answers = items
        .iter()
        .zip(&receipts)
        .map(|(i, receipt)| (keyed(&i.principal, &i.key, &i.hash, 201), receipt));
    store_group_answers(conn, answers).await
}

fn receipt(id: Uuid, recorded_at: OffsetDateTime) -> CollectionReceipt {
    CollectionReceipt {
        id,
        recorded_at,
        relay: RelayState::Queued,
    }
}

/// A time as PostgreSQL keeps it (microseconds), so that a receipt says what is stored.
pub(super) fn stored_precision(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

/// When `body`'s id is already recorded: its time if it is the same collection from the same device
/// (a retry under another key), a 409 if it is another one.
async fn same_collection_recorded(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    body: &NewCollection,
) -> QueryResult<Result<OffsetDateTime, ProblemError>> {
    let Some(recorded) = stored::find(conn, body.id).await? else {
        // Recorded when the group looked, gone now: nothing deletes collections, so this cannot
        // happen; answered as the conflict it would be.
        return Ok(Err(taken()));
    };
    let tubes = stored::tubes(conn, body.id).await?;
    let mut sent: Vec<(String, String)> = body
        .tubes
        .iter()
        .map(|t| (t.barcode.as_str().to_owned(), t.tube_type.clone()))
        .collect();
    sent.sort();
    let same = recorded.device_id == principal.device_id
        && recorded.patient_id == body.patient_id
        && recorded.appointment_id == body.appointment_id
        && recorded.prescription_id == body.prescription_id
        // PostgreSQL keeps microseconds; a tablet may send nanoseconds.
        && (recorded.collected_at - body.collected_at).abs() < Duration::microseconds(1)
        && recorded.identity_checked == body.identity_checked
        && recorded.identity_check_method.as_deref() == body.identity_check_method.map(method_name)
        && recorded.comments == body.comments
        && tubes == sent;
    Ok(if same { Ok(recorded.recorded_at) } else { Err(taken()) })
}

/// The answer of `collection_tubes_barcode_key`'s violation (see `labedge_service::error`).
fn barcode_taken() -> ProblemError {
    ProblemError::new(ErrorCode::Conflict)
        .detail("a tube barcode is already recorded")
        .errors(vec![FieldError::new(
            "/tubes",
            "taken",
            "a tube barcode is already recorded",
        )])
}

fn taken() -> ProblemError {
    ProblemError::new(ErrorCode::Conflict)
        .detail("a different collection with this id is already recorded")
        .errors(vec![FieldError::new("/id", "taken", "already recorded")])
}

/// The rules of a collection, on the facts the group looked up.
fn check_collection(facts: &Facts, item: &Item) -> Result<(), ProblemError> {
    let body = &item.body;
    if body.collected_at > item.now + FUTURE_TOLERANCE {
        return Err(invalid("/collected_at", "is in the future: check the tablet's clock"));
    }
    in_scope(facts, item)?;
    let prescription = (facts.prescription_patient, facts.prescription_lab, facts.issued_on);
    let (Some(patient), Some(lab), Some(issued_on)) = prescription else {
        return Err(invalid(
            "/prescription_id",
            "not a prescription of this patient at this lab",
        ));
    };
    if (patient, lab) != (body.patient_id, item.lab_id) {
        return Err(invalid(
            "/prescription_id",
            "not a prescription of this patient at this lab",
        ));
    }
    if body.collected_at < issued_on.midnight().assume_utc() - PAST_TOLERANCE {
        return Err(invalid(
            "/collected_at",
            "is before the prescription was issued: check the tablet's clock",
        ));
    }
    if body.appointment_id.is_some()
        && (facts.appointment_patient, facts.appointment_lab) != (Some(body.patient_id), Some(item.lab_id))
    {
        return Err(invalid(
            "/appointment_id",
            "not an appointment of this patient at this lab",
        ));
    }
    if let Some(index) = body
        .tubes
        .iter()
        .position(|t| !facts.known_types.contains(&t.tube_type))
    {
        return Err(invalid(
            &format!("/tubes/{index}/tube_type"),
            "not a tube type of the catalog",
        ));
    }
    Ok(())
}

/// The patient is one of the caller's: known at this gateway, and on a home sampler's own round.
fn in_scope(facts: &Facts, item: &Item) -> Result<(), ProblemError> {
    if facts.patient_known && (item.principal.role != Role::HomeSampler || facts.assigned) {
        Ok(())
    } else {
        Err(invalid("/patient_id", "no such patient among yours"))
    }
}
