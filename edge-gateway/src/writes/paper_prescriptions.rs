//! Paper prescriptions (`POST /v1/prescriptions`): the desk photographs or scans a prescription the
//! patient brought; it is stored here, `provisional`, with its document, and relayed to the cloud:
//! first `prescription.create` (the prescription and its document's size, type, SHA-256 and number
//! of chunks), then the document in chunks of [`CHUNK_BYTES`], each its own outbox entry under the
//! prescription's record key. The relay marks each chunk sent on its own acknowledgement, so a cut
//! in the middle resumes at the first chunk not acknowledged; the cloud keeps chunks by (document,
//! index), so a chunk sent twice is stored once.
//!
//! The document's bytes stay in `prescription_documents`, a table of the gateway's own that the
//! sync never sweeps; the outbox entries carry copies of the chunks (the relay reads nothing else).

use diesel_async::{AsyncConnection, AsyncPgConnection};
use labedge_protocol::relay::{CHUNK_BYTES, ChunkData, DocumentManifest, PaperPrescription, RelayedOp};
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, FieldError};
use mobile_contracts::{
    DocumentMediaType, DocumentReceipt, NewPaperPrescription, PaperPrescriptionReceipt, PaperPrescriptionStatus,
    RelayState, Role,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{WriteError, durable, entry, keyed, mutation, wake_relay};
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::idempotency::{Answered, idempotent, request_hash};
use crate::store::paper_prescriptions::{self as stored, DocumentRow, PaperRow};
use crate::store::{audit, outbox};

/// Who records paper prescriptions: the desk.
const DESK: [Role; 2] = [Role::Nurse, Role::LabAdmin];

/// A checked upload: the prescription part and the file, whose type was read from its bytes.
pub struct Upload {
    /// The `prescription` part.
    pub prescription: NewPaperPrescription,
    /// The file's bytes (1 byte to `MAX_DOCUMENT_BYTES`).
    pub bytes: Vec<u8>,
    /// The type its first bytes show.
    pub media_type: DocumentMediaType,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("prescription", &self.prescription)
            .field("size_bytes", &self.bytes.len())
            .field("media_type", &self.media_type)
            .finish()
    }
}

/// Refuses the caller unless they work at the desk: checked before the body is read.
pub fn authorise(principal: &Principal) -> Result<(), ProblemError> {
    principal.require(&DESK)
}

/// Records a paper prescription and its document.
pub async fn record(
    state: &AppState,
    principal: &Principal,
    key: &str,
    upload: Upload,
    request_id: &str,
) -> Result<Answered<PaperPrescriptionReceipt>, ApiError> {
    authorise(principal)?;
    let lab = state.lab().await?;
    let canonical = serde_json::to_vec(&upload.prescription).map_err(anyhow::Error::from)?;
    let sha256: [u8; 32] = Sha256::digest(&upload.bytes).into();
    // The same key with another file is another request: the file's hash is part of the request's.
    let hash = request_hash(&[b"prescription.create", &canonical, &sha256]);
    let mut conn = state.pool.get().await?;
    let answered = conn
        .transaction::<_, WriteError, _>(async move |conn| {
            durable(conn).await?;
            idempotent(
                conn,
                keyed(principal, key, &hash, 201),
                async |_| Ok(()),
                async move |conn| insert_paper(conn, lab.id, principal, (&upload, sha256), request_id).await,
            )
            .await
        })
        .await?;
    wake_relay(state, &answered);
    Ok(answered)
}

async fn insert_paper(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    principal: &Principal,
    (upload, sha256): (&Upload, [u8; 32]),
    request_id: &str,
) -> Result<Answered<PaperPrescriptionReceipt>, WriteError> {
    let body = &upload.prescription;
    if !stored::patient_held(conn, body.patient_id).await? {
        return Err(super::invalid("/patient_id", "not a patient of this lab").into());
    }
    let size = u32::try_from(upload.bytes.len()).map_err(|_| ProblemError::new(ErrorCode::PayloadTooLarge))?;
    let now = super::collections::stored_precision(OffsetDateTime::now_utc());
    let document_id = Uuid::now_v7();
    let row = PaperRow {
        id: body.id,
        patient_id: body.patient_id,
        lab_id,
        prescriber_name: trimmed(body.prescriber_name.as_deref()),
        prescriber_rpps: body.prescriber_rpps.as_deref(),
        issued_on: body.issued_on,
        notes: trimmed(body.notes.as_deref()),
        recorded_by: principal.staff_id,
        device_id: principal.device_id,
        recorded_at: now,
    };
    let document = DocumentRow {
        id: document_id,
        prescription_id: body.id,
        media_type: upload.media_type.as_str(),
        size_bytes: i32::try_from(size).map_err(|_| ProblemError::new(ErrorCode::PayloadTooLarge))?,
        sha256: &sha256,
        content: &upload.bytes,
    };
    if !stored::insert(conn, &row, &document).await? {
        return Err(ProblemError::new(ErrorCode::Conflict)
            .detail("another paper prescription already has this id")
            .errors(vec![FieldError::new("/id", "taken", "already used")])
            .into());
    }
    let chunks: Vec<&[u8]> = upload.bytes.chunks(CHUNK_BYTES).collect();
    let manifest = DocumentManifest {
        id: document_id,
        media_type: upload.media_type.as_str().to_owned(),
        size_bytes: size,
        sha256: hex::encode(sha256),
        chunk_count: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
    };
    let create = RelayedOp::PaperPrescriptionCreate {
        prescription: PaperPrescription {
            id: body.id,
            patient_id: body.patient_id,
            prescriber_name: row.prescriber_name.map(str::to_owned),
            prescriber_rpps: row.prescriber_rpps.map(str::to_owned),
            issued_on: body.issued_on,
            notes: row.notes.map(str::to_owned),
            document: manifest,
        },
    };
    outbox::enqueue(conn, &mutation(principal, now, create)).await?;
    for (index, chunk) in chunks.into_iter().enumerate() {
        let op = RelayedOp::DocumentChunk {
            prescription_id: body.id,
            document_id,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            data: ChunkData(base64_encode(chunk)),
        };
        outbox::enqueue(conn, &mutation(principal, now, op)).await?;
    }
    let audit_entry = entry(
        principal,
        lab_id,
        "prescription.paper_create",
        body.patient_id,
        format!("prescription:{}", body.id),
        request_id,
    );
    audit::insert(conn, &[audit_entry]).await?;
    Ok(Answered::fresh(PaperPrescriptionReceipt {
        id: body.id,
        patient_id: body.patient_id,
        status: PaperPrescriptionStatus::Provisional,
        document: DocumentReceipt {
            id: document_id,
            size_bytes: size,
            media_type: upload.media_type,
            sha256: hex::encode(sha256),
        },
        relay: RelayState::Queued,
    }))
}

/// A text without its surrounding blanks; none when nothing is left.
fn trimmed(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
