//! Mutation intake: `POST /v1/labs/{lab}/mutations` applies a gateway's batch, each mutation at most
//! once whichever route it came by, and answers per item.
//!
//! - A mutation id already in `applied_mutations` answers with its first outcome (`duplicate` when it
//!   was applied: "already applied" is success for the relay).
//! - Collections are append-only and never conflict. They are inserted in bulk; if the bulk insert
//!   fails (a barcode already recorded, a reference that does not exist), the batch falls back to one
//!   savepoint per collection, so that one bad collection is rejected alone.
//! - Appointment changes are checked against the version they were made on (`conflict` with the
//!   current version and state otherwise) and against the status transitions (`rejected`).
//! - A batch that carries collections commits with `synchronous_commit = on` (waits for a synchronous
//!   standby when one is configured: a collection is a clinical fact); other batches commit with
//!   `local` (asynchronous replication).
//! - Each applied mutation gets a cloud audit record.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_schema::cloud::schema::{applied_mutations, appointments, audit_log, collection_tubes, collections};
use labedge_schema::relay::{AckOutcome, MutationAck, RelayedMutation, RelayedOp};
use mobile_contracts::{AppointmentStatus, NewCollection};
use time::OffsetDateTime;
use uuid::Uuid;

/// The most mutations one batch may carry.
pub const MAX_BATCH: usize = 5_000;

/// Applies a batch for lab `lab_id` in one transaction; one ack per mutation, in the batch's order.
pub async fn apply_batch(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    lab_code: &str,
    batch: Vec<RelayedMutation>,
) -> QueryResult<Vec<MutationAck>> {
    let actor = format!("gateway:{lab_code}");
    conn.transaction::<_, DieselError, _>(async move |conn| {
        let critical = batch.iter().any(|m| matches!(m.op, RelayedOp::CollectionCreate { .. }));
        conn.batch_execute(if critical {
            "SET LOCAL synchronous_commit TO on"
        } else {
            "SET LOCAL synchronous_commit TO local"
        })
        .await?;

        let ids: Vec<Uuid> = batch.iter().map(|m| m.mutation_id).collect();
        let known: Vec<(Uuid, String, Option<serde_json::Value>)> = applied_mutations::table
            .filter(applied_mutations::mutation_id.eq_any(&ids))
            .select((
                applied_mutations::mutation_id,
                applied_mutations::outcome,
                applied_mutations::detail,
            ))
            .load(conn)
            .await?;
        let known: HashMap<Uuid, (String, Option<serde_json::Value>)> = known
            .into_iter()
            .map(|(id, outcome, detail)| (id, (outcome, detail)))
            .collect();

        let mut acks: HashMap<Uuid, MutationAck> = HashMap::new();
        let mut seen_in_batch: HashSet<Uuid> = HashSet::new();
        let mut new_collections: Vec<&RelayedMutation> = Vec::new();
        for mutation in &batch {
            // The same id twice in one batch: the second is a duplicate of the first.
            if !seen_in_batch.insert(mutation.mutation_id) {
                continue;
            }
            if let Some((outcome, detail)) = known.get(&mutation.mutation_id) {
                acks.insert(
                    mutation.mutation_id,
                    replay(mutation.mutation_id, outcome, detail.as_ref()),
                );
                continue;
            }
            match &mutation.op {
                RelayedOp::CollectionCreate { .. } => new_collections.push(mutation),
                RelayedOp::AppointmentUpdate {
                    appointment_id,
                    if_version,
                    patch,
                } => {
                    let ack =
                        update_appointment(conn, lab_id, mutation.mutation_id, *appointment_id, *if_version, patch)
                            .await?;
                    acks.insert(mutation.mutation_id, ack);
                }
                RelayedOp::AuditCheckpoint { .. } => {
                    acks.insert(
                        mutation.mutation_id,
                        crate::intake::checkpoint::apply(conn, lab_id, mutation).await?,
                    );
                }
            }
        }
        for ack in insert_collections(conn, lab_id, &new_collections).await? {
            acks.insert(ack.mutation_id, ack);
        }

        // Record every first outcome, and audit what was applied.
        let now = OffsetDateTime::now_utc();
        let mut records = Vec::new();
        let mut audits = Vec::new();
        let mut recorded: HashSet<Uuid> = HashSet::new();
        for mutation in &batch {
            let Some(ack) = acks.get(&mutation.mutation_id) else {
                continue;
            };
            let first_time = !known.contains_key(&mutation.mutation_id) && recorded.insert(mutation.mutation_id);
            if !first_time || ack.outcome == AckOutcome::Duplicate && !is_new_duplicate(ack) {
                continue;
            }
            let stored_outcome = match ack.outcome {
                AckOutcome::Applied | AckOutcome::Duplicate => "applied",
                AckOutcome::Conflict => "conflict",
                AckOutcome::Rejected => "rejected",
            };
            let detail = serde_json::json!({
                "current_version": ack.current_version,
                "current": ack.current,
                "reason": ack.reason,
            });
            records.push((
                applied_mutations::mutation_id.eq(mutation.mutation_id),
                applied_mutations::lab_id.eq(lab_id),
                applied_mutations::kind.eq(mutation.op.kind()),
                applied_mutations::outcome.eq(stored_outcome),
                applied_mutations::detail.eq(Some(detail)),
            ));
            if ack.outcome == AckOutcome::Applied {
                let (patient, resource) = match &mutation.op {
                    RelayedOp::CollectionCreate { collection } => {
                        (Some(collection.patient_id), format!("collection:{}", collection.id))
                    }
                    RelayedOp::AppointmentUpdate { appointment_id, .. } => {
                        (None, format!("appointment:{appointment_id}"))
                    }
                    RelayedOp::AuditCheckpoint { chain_seq, .. } => (None, format!("audit-checkpoint:{chain_seq}")),
                };
                audits.push((
                    audit_log::at.eq(now),
                    audit_log::lab_id.eq(Some(lab_id)),
                    audit_log::actor.eq(actor.clone()),
                    audit_log::staff_id.eq(mutation.staff_id),
                    audit_log::device_id.eq(mutation.device_id),
                    audit_log::action.eq(mutation.op.kind()),
                    audit_log::patient_id.eq(patient),
                    audit_log::resource.eq(Some(resource)),
                    audit_log::request_id.eq(Some(mutation.mutation_id.to_string())),
                ));
            }
        }
        for chunk in records.chunks(1_000) {
            diesel::insert_into(applied_mutations::table)
                .values(chunk)
                .execute(conn)
                .await?;
        }
        for chunk in audits.chunks(1_000) {
            diesel::insert_into(audit_log::table)
                .values(chunk)
                .execute(conn)
                .await?;
        }

        let mut seen = HashSet::new();
        Ok(batch
            .iter()
            .map(|m| {
                let first = seen.insert(m.mutation_id);
                match acks.get(&m.mutation_id) {
                    Some(ack) if first => ack.clone(),
                    _ => MutationAck {
                        mutation_id: m.mutation_id,
                        outcome: AckOutcome::Duplicate,
                        current_version: None,
                        current: None,
                        reason: None,
                    },
                }
            })
            .collect())
    })
    .await
}

/// A collection already in the cloud under another mutation id is a duplicate that still needs its
/// own `applied_mutations` row (so that this id is known from now on).
fn is_new_duplicate(ack: &MutationAck) -> bool {
    ack.reason.as_deref() == Some("collection_already_recorded")
}

fn replay(mutation_id: Uuid, outcome: &str, detail: Option<&serde_json::Value>) -> MutationAck {
    let field = |name: &str| detail.and_then(|d| d.get(name)).filter(|v| !v.is_null()).cloned();
    let outcome = match outcome {
        "conflict" => AckOutcome::Conflict,
        "rejected" => AckOutcome::Rejected,
        _ => AckOutcome::Duplicate,
    };
    MutationAck {
        mutation_id,
        outcome,
        current_version: field("current_version").and_then(|v| v.as_i64()),
        current: if outcome == AckOutcome::Conflict {
            field("current")
        } else {
            None
        },
        reason: field("reason").and_then(|v| v.as_str().map(str::to_owned)),
    }
}

fn rejected(mutation_id: Uuid, reason: impl Into<String>) -> MutationAck {
    MutationAck {
        mutation_id,
        outcome: AckOutcome::Rejected,
        current_version: None,
        current: None,
        reason: Some(reason.into()),
    }
}

fn applied(mutation_id: Uuid) -> MutationAck {
    MutationAck {
        mutation_id,
        outcome: AckOutcome::Applied,
        current_version: None,
        current: None,
        reason: None,
    }
}

#[derive(Queryable)]
struct CurrentAppointment {
    status: String,
    status_reason: Option<String>,
    version: i64,
}

async fn update_appointment(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation_id: Uuid,
    appointment_id: Uuid,
    if_version: i64,
    patch: &mobile_contracts::AppointmentPatch,
) -> QueryResult<MutationAck> {
    let current: Option<CurrentAppointment> = appointments::table
        .filter(appointments::id.eq(appointment_id))
        .filter(appointments::lab_id.eq(lab_id))
        .select((appointments::status, appointments::status_reason, appointments::version))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some(current) = current else {
        return Ok(rejected(mutation_id, "not_found: no such appointment at this lab"));
    };
    if current.version != if_version {
        return Ok(MutationAck {
            mutation_id,
            outcome: AckOutcome::Conflict,
            current_version: Some(current.version),
            current: Some(
                serde_json::json!({"status": current.status, "status_reason": current.status_reason, "version": current.version}),
            ),
            reason: Some("version_mismatch: the appointment changed in the cloud".into()),
        });
    }
    let from = parse_status(&current.status);
    if !from.is_some_and(|from| from.can_transition_to(patch.status)) {
        return Ok(rejected(
            mutation_id,
            format!(
                "invalid_transition: {} to {}",
                current.status,
                status_name(patch.status)
            ),
        ));
    }
    diesel::update(appointments::table.find(appointment_id))
        .set((
            appointments::status.eq(status_name(patch.status)),
            appointments::status_reason.eq(&patch.reason),
            appointments::version.eq(current.version + 1),
            appointments::updated_at.eq(OffsetDateTime::now_utc()),
        ))
        .execute(conn)
        .await?;
    Ok(applied(mutation_id))
}

fn status_name(status: AppointmentStatus) -> &'static str {
    match status {
        AppointmentStatus::Scheduled => "scheduled",
        AppointmentStatus::CheckedIn => "checked_in",
        AppointmentStatus::Collected => "collected",
        AppointmentStatus::NoShow => "no_show",
        AppointmentStatus::Cancelled => "cancelled",
    }
}

fn parse_status(status: &str) -> Option<AppointmentStatus> {
    AppointmentStatus::ALL.into_iter().find(|s| status_name(*s) == status)
}

type CollectionValues = (
    diesel::dsl::Eq<collections::id, Uuid>,
    diesel::dsl::Eq<collections::lab_id, Uuid>,
    diesel::dsl::Eq<collections::patient_id, Uuid>,
    diesel::dsl::Eq<collections::appointment_id, Option<Uuid>>,
    diesel::dsl::Eq<collections::prescription_id, Uuid>,
    diesel::dsl::Eq<collections::collected_at, OffsetDateTime>,
    diesel::dsl::Eq<collections::collected_by, Uuid>,
    diesel::dsl::Eq<collections::device_id, Uuid>,
    diesel::dsl::Eq<collections::identity_checked, bool>,
    diesel::dsl::Eq<collections::identity_check_method, Option<&'static str>>,
    diesel::dsl::Eq<collections::comments, Option<String>>,
    diesel::dsl::Eq<collections::recorded_at, OffsetDateTime>,
);

fn collection_values(lab_id: Uuid, mutation: &RelayedMutation, c: &NewCollection) -> Option<CollectionValues> {
    let method = c.identity_check_method.map(|m| match m {
        mobile_contracts::IdentityCheckMethod::IdDocument => "id_document",
        mobile_contracts::IdentityCheckMethod::HealthCard => "health_card",
        mobile_contracts::IdentityCheckMethod::KnownPatient => "known_patient",
        mobile_contracts::IdentityCheckMethod::ThirdParty => "third_party",
    });
    Some((
        collections::id.eq(c.id),
        collections::lab_id.eq(lab_id),
        collections::patient_id.eq(c.patient_id),
        collections::appointment_id.eq(c.appointment_id),
        collections::prescription_id.eq(c.prescription_id),
        collections::collected_at.eq(c.collected_at),
        collections::collected_by.eq(mutation.staff_id?),
        collections::device_id.eq(mutation.device_id?),
        collections::identity_checked.eq(c.identity_checked),
        collections::identity_check_method.eq(method),
        collections::comments.eq(c.comments.clone()),
        collections::recorded_at.eq(mutation.recorded_at),
    ))
}

fn collection_of(mutation: &RelayedMutation) -> Option<&NewCollection> {
    match &mutation.op {
        RelayedOp::CollectionCreate { collection } => Some(collection),
        _ => None,
    }
}

/// Inserts new collections in bulk, falling back to one savepoint each when the bulk insert fails.
async fn insert_collections(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutations: &[&RelayedMutation],
) -> QueryResult<Vec<MutationAck>> {
    if mutations.is_empty() {
        return Ok(Vec::new());
    }
    let bulk = conn
        .transaction::<_, DieselError, _>(async |conn| insert_collection_rows(conn, lab_id, mutations).await)
        .await;
    match bulk {
        Ok(acks) => Ok(acks),
        Err(DieselError::DatabaseError(..)) => {
            let mut acks = Vec::with_capacity(mutations.len());
            for mutation in mutations {
                let one = conn
                    .transaction::<_, DieselError, _>(async |conn| {
                        insert_collection_rows(conn, lab_id, &[*mutation]).await
                    })
                    .await;
                match one {
                    Ok(mut ack) => acks.append(&mut ack),
                    Err(DieselError::DatabaseError(kind, info)) => {
                        acks.push(rejected(
                            mutation.mutation_id,
                            rejection_reason(kind, info.constraint_name()),
                        ));
                    }
                    Err(other) => return Err(other),
                }
            }
            Ok(acks)
        }
        Err(other) => Err(other),
    }
}

fn rejection_reason(kind: DatabaseErrorKind, constraint: Option<&str>) -> String {
    match (kind, constraint) {
        (DatabaseErrorKind::UniqueViolation, Some("collection_tubes_barcode_key")) => {
            "duplicate_barcode: a tube barcode is already recorded for another collection".into()
        }
        (DatabaseErrorKind::ForeignKeyViolation, Some(c)) => format!("unknown_reference: {c}"),
        (DatabaseErrorKind::CheckViolation, Some(c)) => format!("invalid: {c}"),
        (_, Some(c)) => format!("refused: {c}"),
        _ => "refused".into(),
    }
}

async fn insert_collection_rows(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutations: &[&RelayedMutation],
) -> QueryResult<Vec<MutationAck>> {
    let mut acks = Vec::with_capacity(mutations.len());
    let mut rows = Vec::with_capacity(mutations.len());
    for mutation in mutations {
        match collection_of(mutation).and_then(|c| collection_values(lab_id, mutation, c)) {
            Some(values) => rows.push(values),
            None => acks.push(rejected(
                mutation.mutation_id,
                "invalid: a collection needs its staff member and device",
            )),
        }
    }
    let mut inserted: HashSet<Uuid> = HashSet::new();
    for chunk in rows.chunks(500) {
        let ids: Vec<Uuid> = diesel::insert_into(collections::table)
            .values(chunk)
            .on_conflict(collections::id)
            .do_nothing()
            .returning(collections::id)
            .get_results(conn)
            .await?;
        inserted.extend(ids);
    }
    let mut tubes = Vec::new();
    for mutation in mutations {
        let Some(collection) = collection_of(mutation) else {
            continue;
        };
        if acks.iter().any(|a| a.mutation_id == mutation.mutation_id) {
            continue;
        }
        if inserted.contains(&collection.id) {
            for tube in &collection.tubes {
                tubes.push((
                    collection_tubes::collection_id.eq(collection.id),
                    collection_tubes::barcode.eq(tube.barcode.as_str().to_owned()),
                    collection_tubes::tube_type.eq(tube.tube_type.clone()),
                ));
            }
            acks.push(applied(mutation.mutation_id));
        } else {
            // The collection is in the cloud already, relayed under another mutation id.
            acks.push(MutationAck {
                mutation_id: mutation.mutation_id,
                outcome: AckOutcome::Duplicate,
                current_version: None,
                current: None,
                reason: Some("collection_already_recorded".into()),
            });
        }
    }
    for chunk in tubes.chunks(1_000) {
        diesel::insert_into(collection_tubes::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok(acks)
}

pub mod checkpoint;
pub mod routes;
