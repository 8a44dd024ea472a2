//! Mutation intake: `POST /v1/labs/{lab}/mutations` applies a gateway's batch, each mutation at most
//! once whichever route it came by, and answers per item.
//!
//! - A mutation id already in `applied_mutations` for the same lab answers with its first outcome
//!   (`duplicate` when it was applied: "already applied" is success for the relay). Mutation ids are
//!   a lab's own: another lab's use of the same id is neither answered nor blocked by it.
//! - Every reference must be of the lab the credential names (issue 12): a collection's
//!   prescription, appointment and staff member are the lab's, its patient is the prescription's (and
//!   the appointment's), and no mutation names a staff member of another lab or a device the cloud
//!   knows as another lab's. The intake checks this set-wise before writing and rejects the item
//!   with a stable reason code (see [`Reason`]); the database enforces the same rules (composite
//!   foreign keys, a trigger for devices) in case the code is ever wrong, and its refusals are mapped
//!   to the same codes by constraint name. An unknown row and another lab's row get the same answer,
//!   so that a gateway learns nothing of other labs.
//! - Collections are append-only and never conflict. They are inserted in bulk; if the bulk insert
//!   fails (a barcode already recorded in the lab, a reference refused by the database), the batch
//!   falls back to one savepoint per collection, so that one bad collection is rejected alone. Tube
//!   barcodes are unique per lab, so one lab can never take another lab's labels.
//! - Appointment changes are checked against the version they were made on (`conflict` with the
//!   current version and state otherwise) and against the status transitions (`rejected`).
//! - A batch that carries collections commits with `synchronous_commit = on` (waits for a synchronous
//!   standby when one is configured: a collection is a clinical fact); other batches commit with
//!   `local` (asynchronous replication).
//! - Staff changes (a new PIN hash, a deactivation) name a staff member of the lab, checked like
//!   every other reference (`staff_changes`).
//! - Each applied mutation gets a cloud audit record.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_protocol::relay::{AckOutcome, MutationAck, RelayedMutation, RelayedOp};
use labedge_schema::cloud::schema::{
    applied_mutations, appointments, audit_log, collection_tubes, collections, devices, patients, prescriptions, staff,
};
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
        let batch = follow_merges(conn, batch).await?;
        set_commit_level(conn, &batch).await?;
        let known = known_outcomes(conn, lab_id, &batch).await?;
        let acks = verdicts(conn, lab_id, &batch, &known).await?;
        record_outcomes(conn, lab_id, &actor, &batch, &known, &acks).await?;
        Ok(acks_in_order(&batch, &acks))
    })
    .await
}

/// Writes made at a gateway before it heard of a merge name the old patient: they are applied to the
/// survivor, as the merge moved the old patient's records (its prescriptions and appointments, which
/// the writes' other references are checked against).
async fn follow_merges(
    conn: &mut AsyncPgConnection,
    mut batch: Vec<RelayedMutation>,
) -> QueryResult<Vec<RelayedMutation>> {
    let named: HashSet<Uuid> = batch
        .iter()
        .filter_map(|m| match &m.op {
            RelayedOp::CollectionCreate { collection } => Some(collection.patient_id),
            RelayedOp::AppointmentCreate { appointment } => Some(appointment.patient_id),
            _ => None,
        })
        .collect();
    if named.is_empty() {
        return Ok(batch);
    }
    let merged: HashMap<Uuid, Uuid> = patients::table
        .filter(patients::id.eq_any(named))
        .filter(patients::merged_into.is_not_null())
        .select((patients::id, patients::merged_into.assume_not_null()))
        .load::<(Uuid, Uuid)>(conn)
        .await?
        .into_iter()
        .collect();
    if merged.is_empty() {
        return Ok(batch);
    }
    for mutation in &mut batch {
        let patient = match &mut mutation.op {
            RelayedOp::CollectionCreate { collection } => &mut collection.patient_id,
            RelayedOp::AppointmentCreate { appointment } => &mut appointment.patient_id,
            _ => continue,
        };
        if let Some(survivor) = merged.get(patient) {
            *patient = *survivor;
        }
    }
    Ok(batch)
}

/// A batch holding a collection commits only once the synchronous standby has it (critical data);
/// appointment changes and checkpoints may replicate asynchronously.
async fn set_commit_level(conn: &mut AsyncPgConnection, batch: &[RelayedMutation]) -> QueryResult<()> {
    let critical = batch.iter().any(|m| matches!(m.op, RelayedOp::CollectionCreate { .. }));
    conn.batch_execute(if critical {
        "SET LOCAL synchronous_commit TO on"
    } else {
        "SET LOCAL synchronous_commit TO local"
    })
    .await
}

type Known = HashMap<Uuid, (String, Option<serde_json::Value>)>;

/// The first outcome of each mutation of the batch this lab already sent.
async fn known_outcomes(conn: &mut AsyncPgConnection, lab_id: Uuid, batch: &[RelayedMutation]) -> QueryResult<Known> {
    let ids: Vec<Uuid> = batch.iter().map(|m| m.mutation_id).collect();
    let known: Vec<(Uuid, String, Option<serde_json::Value>)> = applied_mutations::table
        .filter(applied_mutations::lab_id.eq(lab_id))
        .filter(applied_mutations::mutation_id.eq_any(&ids))
        .select((
            applied_mutations::mutation_id,
            applied_mutations::outcome,
            applied_mutations::detail,
        ))
        .load(conn)
        .await?;
    Ok(known
        .into_iter()
        .map(|(id, outcome, detail)| (id, (outcome, detail)))
        .collect())
}

/// Each mutation's verdict: a replay of its first outcome, a refusal of its references, or the
/// result of applying it (collections together, at the end).
async fn verdicts(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    batch: &[RelayedMutation],
    known: &Known,
) -> QueryResult<HashMap<Uuid, MutationAck>> {
    let references = References::load(conn, lab_id, batch).await?;
    let mut acks: HashMap<Uuid, MutationAck> = HashMap::new();
    let mut seen_in_batch: HashSet<Uuid> = HashSet::new();
    let mut new_collections: Vec<&RelayedMutation> = Vec::new();
    let mut voids: Vec<&RelayedMutation> = Vec::new();
    for mutation in batch {
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
        if let Some(reason) = references.refusal(lab_id, mutation) {
            acks.insert(mutation.mutation_id, rejected(mutation.mutation_id, reason.text()));
            continue;
        }
        match &mutation.op {
            RelayedOp::CollectionCreate { .. } => new_collections.push(mutation),
            // After the collections: a void names a collection that may be in this very batch.
            RelayedOp::CollectionVoid { .. } => voids.push(mutation),
            RelayedOp::AppointmentUpdate {
                appointment_id,
                if_version,
                patch,
            } => {
                let ack =
                    update_appointment(conn, lab_id, mutation.mutation_id, *appointment_id, *if_version, patch).await?;
                acks.insert(mutation.mutation_id, ack);
            }
            RelayedOp::AuditCheckpoint { .. } => {
                acks.insert(
                    mutation.mutation_id,
                    crate::intake::checkpoint::apply(conn, lab_id, mutation).await?,
                );
            }
            RelayedOp::StaffPin { member_id, pin_hash } => {
                let ack = staff_changes::set_pin(conn, lab_id, mutation.mutation_id, *member_id, pin_hash).await?;
                acks.insert(mutation.mutation_id, ack);
            }
            RelayedOp::StaffActive { member_id, active } => {
                let ack = staff_changes::set_active(conn, lab_id, mutation.mutation_id, *member_id, *active).await?;
                acks.insert(mutation.mutation_id, ack);
            }
            op => {
                acks.insert(mutation.mutation_id, desk_verdict(conn, lab_id, mutation, op).await?);
            }
        }
    }
    for ack in insert_collections(conn, lab_id, &new_collections).await? {
        acks.insert(ack.mutation_id, ack);
    }
    for mutation in voids {
        acks.insert(
            mutation.mutation_id,
            desk_verdict(conn, lab_id, mutation, &mutation.op).await?,
        );
    }
    Ok(acks)
}

/// The verdict on a write of the lab's desk (booking, reschedule, walk-in, void, paper prescription).
async fn desk_verdict(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    op: &RelayedOp,
) -> QueryResult<MutationAck> {
    match op {
        RelayedOp::AppointmentCreate { appointment } => {
            desk::create_appointment(conn, lab_id, mutation, appointment).await
        }
        RelayedOp::AppointmentReschedule {
            appointment_id,
            if_version,
            scheduled_at,
            assigned_staff_id,
        } => {
            let change = (*appointment_id, *if_version, *scheduled_at, *assigned_staff_id);
            desk::reschedule_appointment(conn, lab_id, mutation, change).await
        }
        RelayedOp::PatientCreate { patient } => desk::create_patient(conn, lab_id, mutation, patient).await,
        RelayedOp::CollectionVoid {
            collection_id,
            reason,
            voided_at,
        } => desk::void_collection(conn, lab_id, mutation, (*collection_id, reason, *voided_at)).await,
        RelayedOp::PaperPrescriptionCreate { prescription } => {
            paper::create(conn, lab_id, mutation, prescription).await
        }
        RelayedOp::DocumentChunk {
            prescription_id,
            document_id,
            index,
            data,
        } => {
            paper::chunk(
                conn,
                lab_id,
                mutation,
                (*prescription_id, *document_id, *index, &data.0),
            )
            .await
        }
        RelayedOp::CollectionCreate { .. }
        | RelayedOp::AppointmentUpdate { .. }
        | RelayedOp::AuditCheckpoint { .. }
        | RelayedOp::StaffPin { .. }
        | RelayedOp::StaffActive { .. } => Ok(rejected(mutation.mutation_id, "invalid: not a desk write")),
    }
}

/// Records every first outcome (so that a replay answers the same), and audits what was applied.
async fn record_outcomes(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    actor: &str,
    batch: &[RelayedMutation],
    known: &Known,
    acks: &HashMap<Uuid, MutationAck>,
) -> QueryResult<()> {
    let now = OffsetDateTime::now_utc();
    let mut records = Vec::new();
    let mut audits = Vec::new();
    let mut recorded: HashSet<Uuid> = HashSet::new();
    for mutation in batch {
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
            // A document's chunks are audited as their prescription's creation, not one by one.
            let (patient, resource) = match &mutation.op {
                RelayedOp::DocumentChunk { .. } => continue,
                RelayedOp::PaperPrescriptionCreate { prescription } => (
                    Some(prescription.patient_id),
                    format!("prescription:{}", prescription.id),
                ),
                RelayedOp::CollectionCreate { collection } => {
                    (Some(collection.patient_id), format!("collection:{}", collection.id))
                }
                RelayedOp::AppointmentUpdate { appointment_id, .. } => (None, format!("appointment:{appointment_id}")),
                RelayedOp::AuditCheckpoint { chain_seq, .. } => (None, format!("audit-checkpoint:{chain_seq}")),
                RelayedOp::AppointmentCreate { appointment } => {
                    (Some(appointment.patient_id), format!("appointment:{}", appointment.id))
                }
                RelayedOp::AppointmentReschedule { appointment_id, .. } => {
                    (None, format!("appointment:{appointment_id}"))
                }
                RelayedOp::PatientCreate { patient } => (Some(patient.id), format!("patient:{}", patient.id)),
                RelayedOp::CollectionVoid { collection_id, .. } => (None, format!("collection:{collection_id}")),
                RelayedOp::StaffPin { member_id, .. } | RelayedOp::StaffActive { member_id, .. } => {
                    (None, format!("staff:{member_id}"))
                }
            };
            audits.push((
                audit_log::at.eq(now),
                audit_log::lab_id.eq(Some(lab_id)),
                audit_log::actor.eq(actor.to_owned()),
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
    Ok(())
}

/// One ack per mutation in the batch's order; a repeat of an id within the batch is a duplicate.
fn acks_in_order(batch: &[RelayedMutation], acks: &HashMap<Uuid, MutationAck>) -> Vec<MutationAck> {
    let mut seen = HashSet::new();
    batch
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
        .collect()
}

/// A collection already in the cloud under another mutation id is a duplicate that still needs its
/// own `applied_mutations` row (so that this id is known from now on).
fn is_new_duplicate(ack: &MutationAck) -> bool {
    matches!(
        ack.reason.as_deref(),
        Some(
            "collection_already_recorded"
                | "appointment_already_recorded"
                | "patient_already_recorded"
                | "collection_already_voided"
        )
    )
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

/// Why a mutation naming rows outside its lab is rejected: the code (before the colon) is stable,
/// the sentence says which reference. Never says whether the row exists elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `foreign_lab_reference`: the prescription is not one of the lab's (or does not exist).
    ForeignPrescription,
    /// `foreign_lab_reference`: the appointment is not one of the lab's (or does not exist).
    ForeignAppointment,
    /// `foreign_lab_reference`: the staff member is not one of the lab's (or does not exist).
    ForeignStaff,
    /// `foreign_lab_reference`: the device is known as another lab's.
    ForeignDevice,
    /// `patient_out_of_scope`: the patient is not the prescription's.
    PatientNotThePrescriptions,
    /// `patient_out_of_scope`: the patient is not the appointment's.
    PatientNotTheAppointments,
    /// `collection_id_taken`: another lab recorded a collection under this id.
    CollectionIdTaken,
    /// `duplicate_barcode`: a tube barcode is already recorded in the lab.
    DuplicateBarcode,
}

impl Reason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::ForeignPrescription | Reason::ForeignAppointment | Reason::ForeignStaff | Reason::ForeignDevice => {
                "foreign_lab_reference"
            }
            Reason::PatientNotThePrescriptions | Reason::PatientNotTheAppointments => "patient_out_of_scope",
            Reason::CollectionIdTaken => "collection_id_taken",
            Reason::DuplicateBarcode => "duplicate_barcode",
        }
    }

    /// `code: sentence`, as the ack's `reason`.
    pub fn text(self) -> String {
        let sentence = match self {
            Reason::ForeignPrescription => "the prescription is not one of this lab's",
            Reason::ForeignAppointment => "the appointment is not one of this lab's",
            Reason::ForeignStaff => "the staff member is not one of this lab's",
            Reason::ForeignDevice => "the device is not one of this lab's",
            Reason::PatientNotThePrescriptions => "the patient is not the prescription's",
            Reason::PatientNotTheAppointments => "the patient is not the appointment's",
            Reason::CollectionIdTaken => "the collection id is already used",
            Reason::DuplicateBarcode => "a tube barcode is already recorded for another collection of this lab",
        };
        format!("{}: {sentence}", self.code())
    }

    /// The rule a database constraint enforces, by its name (migration `2026-12-05-120002`).
    pub fn of_constraint(name: &str) -> Option<Self> {
        Some(match name {
            "collections_prescription_lab_fkey" | "collections_prescription_id_fkey" => Reason::ForeignPrescription,
            "collections_appointment_lab_fkey" | "collections_appointment_id_fkey" => Reason::ForeignAppointment,
            "collections_collected_by_lab_fkey" | "collections_collected_by_fkey" => Reason::ForeignStaff,
            "collections_device_lab" => Reason::ForeignDevice,
            "collections_prescription_patient_fkey" | "collections_patient_id_fkey" => {
                Reason::PatientNotThePrescriptions
            }
            "collections_appointment_patient_fkey" => Reason::PatientNotTheAppointments,
            "collections_pkey" | "collections_id_lab_key" => Reason::CollectionIdTaken,
            "collection_tubes_lab_barcode_key" | "collection_tubes_pkey" => Reason::DuplicateBarcode,
            _ => return None,
        })
    }
}

/// What the cloud knows of the rows a batch names, read set-wise (one query per kind).
struct References {
    /// Staff named by the batch that are the lab's.
    lab_staff: HashSet<Uuid>,
    /// Devices named by the batch that the cloud knows as another lab's.
    foreign_devices: HashSet<Uuid>,
    /// Prescriptions named by the batch's collections: lab and patient.
    prescriptions: HashMap<Uuid, (Uuid, Uuid)>,
    /// Appointments named by the batch's collections: lab and patient.
    appointments: HashMap<Uuid, (Uuid, Uuid)>,
}

impl References {
    async fn load(conn: &mut AsyncPgConnection, lab_id: Uuid, batch: &[RelayedMutation]) -> QueryResult<Self> {
        let staff_ids: HashSet<Uuid> = batch
            .iter()
            .flat_map(|m| [m.staff_id, staff_changed(m)])
            .flatten()
            .collect();
        let device_ids: HashSet<Uuid> = batch.iter().filter_map(|m| m.device_id).collect();
        let collections: Vec<&NewCollection> = batch.iter().filter_map(collection_of).collect();
        let prescription_ids: HashSet<Uuid> = collections.iter().map(|c| c.prescription_id).collect();
        let appointment_ids: HashSet<Uuid> = collections.iter().filter_map(|c| c.appointment_id).collect();
        let lab_staff: Vec<Uuid> = staff::table
            .filter(staff::lab_id.eq(lab_id))
            .filter(staff::id.eq_any(staff_ids))
            .select(staff::id)
            .load(conn)
            .await?;
        let foreign_devices: Vec<Uuid> = devices::table
            .filter(devices::lab_id.ne(lab_id))
            .filter(devices::id.eq_any(device_ids))
            .select(devices::id)
            .load(conn)
            .await?;
        let prescriptions: Vec<(Uuid, Uuid, Uuid)> = prescriptions::table
            .filter(prescriptions::id.eq_any(prescription_ids))
            .select((prescriptions::id, prescriptions::lab_id, prescriptions::patient_id))
            .load(conn)
            .await?;
        let appointments: Vec<(Uuid, Uuid, Uuid)> = appointments::table
            .filter(appointments::id.eq_any(appointment_ids))
            .select((appointments::id, appointments::lab_id, appointments::patient_id))
            .load(conn)
            .await?;
        Ok(Self {
            lab_staff: lab_staff.into_iter().collect(),
            foreign_devices: foreign_devices.into_iter().collect(),
            prescriptions: prescriptions
                .into_iter()
                .map(|(id, lab, patient)| (id, (lab, patient)))
                .collect(),
            appointments: appointments
                .into_iter()
                .map(|(id, lab, patient)| (id, (lab, patient)))
                .collect(),
        })
    }

    /// Why `mutation` names something outside lab `lab_id`, if it does. The lab's own references
    /// are checked before the patient, so that a patient check never runs against another lab's row.
    fn refusal(&self, lab_id: Uuid, mutation: &RelayedMutation) -> Option<Reason> {
        if [mutation.staff_id, staff_changed(mutation)]
            .into_iter()
            .flatten()
            .any(|s| !self.lab_staff.contains(&s))
        {
            return Some(Reason::ForeignStaff);
        }
        if mutation.device_id.is_some_and(|d| self.foreign_devices.contains(&d)) {
            return Some(Reason::ForeignDevice);
        }
        let collection = collection_of(mutation)?;
        let prescription = self
            .prescriptions
            .get(&collection.prescription_id)
            .filter(|(lab, _)| *lab == lab_id);
        let Some((_, prescription_patient)) = prescription else {
            return Some(Reason::ForeignPrescription);
        };
        let appointment_patient = match collection.appointment_id {
            None => None,
            Some(id) => match self.appointments.get(&id).filter(|(lab, _)| *lab == lab_id) {
                Some((_, patient)) => Some(*patient),
                None => return Some(Reason::ForeignAppointment),
            },
        };
        if *prescription_patient != collection.patient_id {
            return Some(Reason::PatientNotThePrescriptions);
        }
        if appointment_patient.is_some_and(|p| p != collection.patient_id) {
            return Some(Reason::PatientNotTheAppointments);
        }
        None
    }
}

pub(super) fn rejected(mutation_id: Uuid, reason: impl Into<String>) -> MutationAck {
    MutationAck {
        mutation_id,
        outcome: AckOutcome::Rejected,
        current_version: None,
        current: None,
        reason: Some(reason.into()),
    }
}

pub(super) fn applied(mutation_id: Uuid) -> MutationAck {
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

pub(super) fn status_name(status: AppointmentStatus) -> &'static str {
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

/// The staff member a staff change is about (beside the one who made it, `staff_id`).
fn staff_changed(mutation: &RelayedMutation) -> Option<Uuid> {
    match &mutation.op {
        RelayedOp::StaffPin { member_id, .. } | RelayedOp::StaffActive { member_id, .. } => Some(*member_id),
        _ => None,
    }
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
    if let Some(reason) = constraint.and_then(Reason::of_constraint) {
        return reason.text();
    }
    match (kind, constraint) {
        (DatabaseErrorKind::ForeignKeyViolation, Some(c)) => format!("unknown_reference: {c}"),
        (DatabaseErrorKind::CheckViolation, Some(c)) => format!("invalid: {c}"),
        (_, Some(c)) => format!("refused: {c}"),
        _ => "refused".into(),
    }
}

/// The collections of `mutations` not inserted that are already in the cloud as this lab's: a
/// duplicate when it is this lab's, else another lab's id (never answered as that lab's duplicate).
async fn own_duplicates(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutations: &[&RelayedMutation],
    inserted: &HashSet<Uuid>,
) -> QueryResult<HashSet<Uuid>> {
    let absent: Vec<Uuid> = mutations
        .iter()
        .filter_map(|m| collection_of(m))
        .map(|c| c.id)
        .filter(|id| !inserted.contains(id))
        .collect();
    Ok(if absent.is_empty() {
        HashSet::new()
    } else {
        collections::table
            .filter(collections::id.eq_any(&absent))
            .filter(collections::lab_id.eq(lab_id))
            .select(collections::id)
            .load::<Uuid>(conn)
            .await?
            .into_iter()
            .collect()
    })
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
    let own_duplicates = own_duplicates(conn, lab_id, mutations, &inserted).await?;
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
                    collection_tubes::lab_id.eq(lab_id),
                    collection_tubes::barcode.eq(tube.barcode.as_str().to_owned()),
                    collection_tubes::tube_type.eq(tube.tube_type.clone()),
                ));
            }
            acks.push(applied(mutation.mutation_id));
        } else if !own_duplicates.contains(&collection.id) {
            acks.push(rejected(mutation.mutation_id, Reason::CollectionIdTaken.text()));
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
mod desk;
mod paper;
pub mod routes;
mod staff_changes;
