//! The intake of paper prescriptions (issue 15): `prescription.create` announces the prescription
//! and its document (type, size, SHA-256, number of chunks); `document.chunk`s bring the bytes, in
//! order under the same record key.
//!
//! - The patient must be in the lab's share of the data: registered at the lab, or named by one of
//!   its appointments or prescriptions (paper ones included). An unknown patient and another lab's
//!   get the same refusal.
//! - A chunk is stored once by (document, index): sent again after a cut, it answers `duplicate`.
//!   When the last one is in, the chunks are put together; the whole must have the announced size
//!   and SHA-256, then the document is complete (the LIS sees it from then on) and
//!   its chunks are dropped. A whole that does not match is refused: a dead letter for the lab admin,
//!   the document left incomplete.

use base64::Engine as _;
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_protocol::relay::{CHUNK_BYTES, DocumentManifest, MutationAck, PaperPrescription, RelayedMutation};
use labedge_schema::cloud::schema::{
    appointments, paper_prescriptions, patients, prescription_document_chunks, prescription_documents, prescriptions,
};
use mobile_contracts::{DocumentMediaType, MAX_DOCUMENT_BYTES};
use uuid::Uuid;

use super::desk::duplicate;
use super::{applied, rejected};

/// Whether patient `patient` is in lab `lab_id`'s share of the data (without the appointment window:
/// a paper prescription may come for a patient seen some time ago).
async fn lab_patient(conn: &mut AsyncPgConnection, lab_id: Uuid, patient: Uuid) -> QueryResult<bool> {
    let registered = patients::table
        .filter(patients::id.eq(patient))
        .filter(patients::registered_lab_id.eq(lab_id));
    let by_appointment = appointments::table
        .filter(appointments::patient_id.eq(patient))
        .filter(appointments::lab_id.eq(lab_id));
    let by_prescription = prescriptions::table
        .filter(prescriptions::patient_id.eq(patient))
        .filter(prescriptions::lab_id.eq(lab_id));
    let by_paper = paper_prescriptions::table
        .filter(paper_prescriptions::patient_id.eq(patient))
        .filter(paper_prescriptions::lab_id.eq(lab_id));
    diesel::select(
        diesel::dsl::exists(registered)
            .or(diesel::dsl::exists(by_appointment))
            .or(diesel::dsl::exists(by_prescription))
            .or(diesel::dsl::exists(by_paper)),
    )
    .get_result(conn)
    .await
}

/// Why a manifest cannot describe a document the gateway could have accepted, if it cannot.
fn manifest_refusal(document: &DocumentManifest) -> Option<&'static str> {
    let size = document.size_bytes as usize;
    if DocumentMediaType::parse(&document.media_type).is_none() {
        return Some("invalid: the document's type is not JPEG, PNG or PDF");
    }
    if size == 0 || size > MAX_DOCUMENT_BYTES {
        return Some("invalid: the document's size is out of bounds");
    }
    if document.chunk_count as usize != size.div_ceil(CHUNK_BYTES) {
        return Some("invalid: the number of chunks does not match the size");
    }
    if document.sha256.len() != 64 || hex::decode(&document.sha256).is_err() {
        return Some("invalid: the SHA-256 is not 64 hex digits");
    }
    None
}

/// `prescription.create`.
pub async fn create(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    prescription: &PaperPrescription,
) -> QueryResult<MutationAck> {
    if !lab_patient(conn, lab_id, prescription.patient_id).await? {
        return Ok(rejected(
            mutation.mutation_id,
            "patient_out_of_scope: the patient is not one of this lab's",
        ));
    }
    if let Some(reason) = manifest_refusal(&prescription.document) {
        return Ok(rejected(mutation.mutation_id, reason));
    }
    let rpps_ok = prescription
        .prescriber_rpps
        .as_deref()
        .is_none_or(|r| r.len() == 11 && r.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = prescription
        .prescriber_name
        .as_deref()
        .is_none_or(|n| (1..=200).contains(&n.chars().count()));
    let notes_ok = prescription.notes.as_deref().is_none_or(|n| n.chars().count() <= 2000);
    if !(rpps_ok && name_ok && notes_ok) {
        return Ok(rejected(
            mutation.mutation_id,
            "invalid: the prescriber or the notes are malformed",
        ));
    }
    let inserted = diesel::insert_into(paper_prescriptions::table)
        .values((
            paper_prescriptions::id.eq(prescription.id),
            paper_prescriptions::patient_id.eq(prescription.patient_id),
            paper_prescriptions::lab_id.eq(lab_id),
            paper_prescriptions::prescriber_name.eq(&prescription.prescriber_name),
            paper_prescriptions::prescriber_rpps.eq(&prescription.prescriber_rpps),
            paper_prescriptions::issued_on.eq(prescription.issued_on),
            paper_prescriptions::notes.eq(&prescription.notes),
            paper_prescriptions::recorded_by.eq(mutation.staff_id),
            paper_prescriptions::device_id.eq(mutation.device_id),
            paper_prescriptions::recorded_at.eq(mutation.recorded_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 0 {
        let lab: Option<Uuid> = paper_prescriptions::table
            .find(prescription.id)
            .select(paper_prescriptions::lab_id)
            .first(conn)
            .await
            .optional()?;
        return Ok(if lab == Some(lab_id) {
            duplicate(mutation.mutation_id, "prescription_already_recorded")
        } else {
            rejected(
                mutation.mutation_id,
                "prescription_id_taken: the id is already another prescription's",
            )
        });
    }
    let document = &prescription.document;
    let sha256 = hex::decode(&document.sha256).unwrap_or_default();
    let inserted = diesel::insert_into(prescription_documents::table)
        .values((
            prescription_documents::id.eq(document.id),
            prescription_documents::prescription_id.eq(prescription.id),
            prescription_documents::lab_id.eq(lab_id),
            prescription_documents::patient_id.eq(prescription.patient_id),
            prescription_documents::media_type.eq(&document.media_type),
            prescription_documents::size_bytes.eq(i32::try_from(document.size_bytes).unwrap_or(i32::MAX)),
            prescription_documents::sha256.eq(sha256),
            prescription_documents::chunk_count.eq(i32::try_from(document.chunk_count).unwrap_or(i32::MAX)),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 0 {
        // The prescription was new but its document id is taken: never attached to another's.
        return Ok(rejected(
            mutation.mutation_id,
            "document_id_taken: the document id is already another document's",
        ));
    }
    Ok(applied(mutation.mutation_id))
}

/// A document as announced, and whether it is complete.
#[derive(Queryable)]
struct Announced {
    lab_id: Uuid,
    prescription_id: Uuid,
    size_bytes: i32,
    chunk_count: i32,
    completed: bool,
}

/// `document.chunk`.
pub async fn chunk(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation: &RelayedMutation,
    (prescription_id, document_id, index, data): (Uuid, Uuid, u32, &str),
) -> QueryResult<MutationAck> {
    let announced: Option<Announced> = prescription_documents::table
        .find(document_id)
        .select((
            prescription_documents::lab_id,
            prescription_documents::prescription_id,
            prescription_documents::size_bytes,
            prescription_documents::chunk_count,
            prescription_documents::completed_at.is_not_null(),
        ))
        // Chunks of one document are applied one after the other, whichever route they came by.
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some(doc) = announced.filter(|d| d.lab_id == lab_id && d.prescription_id == prescription_id) else {
        return Ok(rejected(
            mutation.mutation_id,
            "foreign_lab_reference: the document is not one of this lab's",
        ));
    };
    let Ok(index) = i32::try_from(index) else {
        return Ok(rejected(
            mutation.mutation_id,
            "invalid: the chunk's index is out of range",
        ));
    };
    if index >= doc.chunk_count {
        return Ok(rejected(
            mutation.mutation_id,
            "invalid: the chunk's index is out of range",
        ));
    }
    if doc.completed {
        return Ok(duplicate(mutation.mutation_id, "document_already_complete"));
    }
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
        return Ok(rejected(mutation.mutation_id, "invalid: the chunk is not base64"));
    };
    let chunk = CHUNK_BYTES as i64;
    let expected = (i64::from(doc.size_bytes) - i64::from(index) * chunk).min(chunk);
    if bytes.len() as i64 != expected {
        return Ok(rejected(
            mutation.mutation_id,
            "invalid: the chunk's length does not match the document's size",
        ));
    }
    let inserted = diesel::insert_into(prescription_document_chunks::table)
        .values((
            prescription_document_chunks::document_id.eq(document_id),
            prescription_document_chunks::chunk_index.eq(index),
            prescription_document_chunks::data.eq(bytes),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 0 {
        return Ok(duplicate(mutation.mutation_id, "chunk_already_received"));
    }
    let received: i64 = prescription_document_chunks::table
        .filter(prescription_document_chunks::document_id.eq(document_id))
        .count()
        .get_result(conn)
        .await?;
    if received < i64::from(doc.chunk_count) {
        return Ok(applied(mutation.mutation_id));
    }
    if assemble(conn, document_id).await? {
        Ok(applied(mutation.mutation_id))
    } else {
        tracing::warn!(document = %document_id, "a relayed document does not match its size or SHA-256: refused");
        Ok(rejected(
            mutation.mutation_id,
            "document_mismatch: the document put together does not match its size or SHA-256",
        ))
    }
}

/// Puts the chunks together in the database, keeps the whole only if it has the announced size and
/// SHA-256 (with its SHA-1, FHIR R4's attachment hash), then drops the chunks. Answers whether it
/// matched.
async fn assemble(conn: &mut AsyncPgConnection, document_id: Uuid) -> QueryResult<bool> {
    let whole: Option<Vec<u8>> = diesel::sql_query(
        "SELECT string_agg(data, ''::bytea ORDER BY chunk_index) AS content \
           FROM prescription_document_chunks WHERE document_id = $1",
    )
    .bind::<SqlUuid, _>(document_id)
    .get_result::<Whole>(conn)
    .await?
    .content;
    let whole = whole.unwrap_or_default();
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &whole);
    let done = diesel::sql_query(
        "UPDATE prescription_documents SET content = $2, sha1 = $3, completed_at = now() \
          WHERE id = $1 AND octet_length($2) = size_bytes AND sha256($2) = sha256",
    )
    .bind::<SqlUuid, _>(document_id)
    .bind::<Bytea, _>(&whole)
    .bind::<Bytea, _>(sha1.as_ref())
    .execute(conn)
    .await?;
    if done == 1 {
        diesel::delete(
            prescription_document_chunks::table.filter(prescription_document_chunks::document_id.eq(document_id)),
        )
        .execute(conn)
        .await?;
    }
    Ok(done == 1)
}

#[derive(QueryableByName)]
struct Whole {
    #[diesel(sql_type = diesel::sql_types::Nullable<Bytea>)]
    content: Option<Vec<u8>>,
}
