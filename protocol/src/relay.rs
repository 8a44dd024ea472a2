//! The relay protocol: what a gateway sends to `POST /v1/labs/{lab}/mutations` and what the cloud
//! answers for each mutation. Shared by both services, like the change feed of `labedge_schema::sync`.
//!
//! A mutation is what a tablet asked for (the contract's `MutationOp`), stamped by the gateway with
//! its id, who asked, from which device, and when the gateway committed it. The cloud applies each
//! mutation at most once, whichever route it came by (the cloud or the central lab's standby), and
//! answers per item: applied, duplicate (already applied: counts as success), conflict (with the
//! current version) or rejected (with the reason).

use std::fmt;

use mobile_contracts::{Appointment, AppointmentPatch, NewCollection};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// One mutation relayed upstream (also what the gateway keeps in its outbox).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelayedMutation {
    /// Applied at most once by this id.
    pub mutation_id: Uuid,
    /// When the gateway committed it (its acknowledgement to the tablet).
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The staff member who made it.
    pub staff_id: Option<Uuid>,
    /// The device it came from.
    pub device_id: Option<Uuid>,
    /// What to do.
    #[serde(flatten)]
    pub op: RelayedOp,
}

/// What a relayed mutation does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum RelayedOp {
    /// A specimen collection recorded on a tablet (append-only).
    #[serde(rename = "collection.create")]
    CollectionCreate {
        /// The collection, as the tablet sent it.
        collection: NewCollection,
    },
    /// An appointment's status change, made against the version the tablet saw.
    #[serde(rename = "appointment.update")]
    AppointmentUpdate {
        /// The appointment.
        appointment_id: Uuid,
        /// The version the change was made on.
        if_version: i64,
        /// The change.
        patch: AppointmentPatch,
    },
    /// An appointment booked at the gateway (its id made by the tablet), as the gateway stored it.
    #[serde(rename = "appointment.create")]
    AppointmentCreate {
        /// The appointment, version 1.
        appointment: Appointment,
    },
    /// An appointment moved to another slot, against the version the tablet saw.
    #[serde(rename = "appointment.reschedule")]
    AppointmentReschedule {
        /// The appointment.
        appointment_id: Uuid,
        /// The version the change was made on.
        if_version: i64,
        /// The new start.
        #[serde(with = "time::serde::rfc3339")]
        scheduled_at: OffsetDateTime,
        /// The home sampler the visit moved to (home visits).
        assigned_staff_id: Option<Uuid>,
    },
    /// A walk-in patient registered at the gateway.
    #[serde(rename = "patient.create")]
    PatientCreate {
        /// The patient as the gateway stored it.
        patient: RegisteredPatient,
    },
    /// A collection recorded by mistake, voided (never deleted).
    #[serde(rename = "collection.void")]
    CollectionVoid {
        /// The collection.
        collection_id: Uuid,
        /// Why (mandatory).
        reason: String,
        /// When the gateway stored the void.
        #[serde(with = "time::serde::rfc3339")]
        voided_at: OffsetDateTime,
    },
    /// A paper prescription recorded at the desk, with the document its chunks will make.
    #[serde(rename = "prescription.create")]
    PaperPrescriptionCreate {
        /// The prescription and its document's description.
        prescription: PaperPrescription,
    },
    /// One chunk of a paper prescription's document (under the prescription's record key, so after
    /// it and in order).
    #[serde(rename = "document.chunk")]
    DocumentChunk {
        /// The prescription the document is of.
        prescription_id: Uuid,
        /// The document.
        document_id: Uuid,
        /// Rank from 0.
        index: u32,
        /// The bytes, base64 (standard alphabet, padded).
        data: ChunkData,
    },
    /// A staff member's new PIN, set at the gateway (their own change, or with a reset code their
    /// lab admin made): the cloud's staff row takes its hash, and the change feed gives it back to
    /// every gateway of the lab. The PIN itself never leaves the gateway.
    #[serde(rename = "staff.pin")]
    StaffPin {
        /// The staff member whose PIN it is, of the sending gateway's lab (`member_id`, not
        /// `staff_id`: the mutation's own `staff_id` says who made the change).
        member_id: Uuid,
        /// The argon2id hash of the new PIN (PHC string).
        pin_hash: PinHash,
    },
    /// A staff member deactivated (they can no longer log in anywhere) or reactivated by their lab
    /// admin at the gateway.
    #[serde(rename = "staff.active")]
    StaffActive {
        /// The staff member, of the sending gateway's lab.
        member_id: Uuid,
        /// Whether they may work.
        active: bool,
    },
    /// A signed checkpoint of the gateway's audit chain (low-priority lane): see [`checkpoint`].
    #[serde(rename = "audit.checkpoint")]
    AuditCheckpoint {
        /// Position in the gateway's chain (its head when signed).
        chain_seq: i64,
        /// Hash of the record at that position (hex).
        chain_hash: String,
        /// Records chained since the start of the chain, up to it (purged ones included: it never goes
        /// back).
        record_count: i64,
        /// The checkpoint this one continues; none for the gateway's first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<checkpoint::CheckpointRef>,
        /// SHA-256 (hex) of the certificate of the credential whose key signed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer_cert_sha256: Option<String>,
        /// When the gateway signed it (whole microseconds).
        #[serde(with = "time::serde::rfc3339")]
        signed_at: OffsetDateTime,
        /// The signature (hex) of [`checkpoint::signed_bytes`].
        signature: String,
    },
}

/// A PIN hash on its way to the cloud: `Debug` does not show it, so that a logged mutation cannot
/// hand an offline guessing attack its target.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PinHash(pub String);

impl std::fmt::Debug for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinHash(<redacted>)")
    }
}

/// Signed audit checkpoints: what a gateway signs, so that the cloud verifies the same bytes.
///
/// A gateway signs, with the private key of its credential (`upstream.key`, ECDSA P-256), the
/// signature being ECDSA with SHA-256 in ASN.1 DER (as `openssl dgst -sha256 -sign` makes it), the
/// following bytes (integers big-endian):
///
/// | field | bytes |
/// |---|---|
/// | domain tag | the 27 ASCII bytes `labedge.audit.checkpoint.v1` |
/// | lab id | 16 bytes (UUID, RFC 9562 byte order) |
/// | `chain_seq` | i64 |
/// | `chain_hash` | 32 bytes |
/// | `record_count` | i64 |
/// | `previous` | `0x00` when none, else `0x01`, its `chain_seq` (i64) and `chain_hash` (32 bytes) |
/// | `signed_at` | i64: microseconds since 1970-01-01T00:00:00Z |
///
/// The domain tag keeps a checkpoint signature from ever being taken for anything else the same
/// key signs (TLS handshakes). `signer_cert_sha256` is not signed: it only says which key to verify
/// with, and a wrong one fails the verification.
pub mod checkpoint {
    use serde::{Deserialize, Serialize};
    use time::OffsetDateTime;
    use uuid::Uuid;

    /// The domain tag that starts the signed bytes (version 1).
    pub const SIGNING_TAG: &[u8; 27] = b"labedge.audit.checkpoint.v1";

    /// A checkpoint named by its position and hash.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CheckpointRef {
        /// Its position in the chain.
        pub chain_seq: i64,
        /// Hash of the record at that position (hex).
        pub chain_hash: String,
    }

    /// The head of a chain as signed, hashes decoded.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct SignedHead {
        /// The gateway's lab.
        pub lab_id: Uuid,
        /// Position of the head.
        pub chain_seq: i64,
        /// Hash of the head record.
        pub chain_hash: [u8; 32],
        /// Records chained up to the head.
        pub record_count: i64,
        /// The checkpoint it continues: position and hash.
        pub previous: Option<(i64, [u8; 32])>,
        /// When it was signed.
        pub signed_at: OffsetDateTime,
    }

    /// The bytes a checkpoint's signature covers (see the module docs).
    pub fn signed_bytes(head: &SignedHead) -> Vec<u8> {
        let mut out = Vec::with_capacity(27 + 16 + 8 + 32 + 8 + 41 + 8);
        out.extend_from_slice(SIGNING_TAG);
        out.extend_from_slice(head.lab_id.as_bytes());
        out.extend_from_slice(&head.chain_seq.to_be_bytes());
        out.extend_from_slice(&head.chain_hash);
        out.extend_from_slice(&head.record_count.to_be_bytes());
        match &head.previous {
            None => out.push(0),
            Some((seq, hash)) => {
                out.push(1);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(hash);
            }
        }
        let micros = i64::try_from(head.signed_at.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX);
        out.extend_from_slice(&micros.to_be_bytes());
        out
    }

    /// A 32-byte hash from its hex form; `None` when it is not one.
    pub fn parse_hash(hex_text: &str) -> Option<[u8; 32]> {
        let bytes = hex::decode(hex_text).ok()?;
        bytes.try_into().ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_signed_bytes_are_pinned() {
            let head = SignedHead {
                lab_id: Uuid::from_u128(7),
                chain_seq: 42,
                chain_hash: [0xab; 32],
                record_count: 42,
                previous: Some((40, [0xcd; 32])),
                signed_at: time::macros::datetime!(2026-11-30 10:00:00.000001 UTC),
            };
            let mut expected = b"labedge.audit.checkpoint.v1".to_vec();
            expected.extend_from_slice(Uuid::from_u128(7).as_bytes());
            expected.extend_from_slice(&42i64.to_be_bytes());
            expected.extend_from_slice(&[0xab; 32]);
            expected.extend_from_slice(&42i64.to_be_bytes());
            expected.push(1);
            expected.extend_from_slice(&40i64.to_be_bytes());
            expected.extend_from_slice(&[0xcd; 32]);
            expected.extend_from_slice(&1_796_032_800_000_001i64.to_be_bytes());
            assert_eq!(signed_bytes(&head), expected);
            let first = SignedHead { previous: None, ..head };
            assert_eq!(signed_bytes(&first)[27 + 16 + 8 + 32 + 8], 0);
        }

        #[test]
        fn hashes_parse_from_hex() {
            assert_eq!(parse_hash(&"ab".repeat(32)), Some([0xab; 32]));
            assert_eq!(parse_hash("ab"), None);
            assert_eq!(parse_hash(&"zz".repeat(32)), None);
        }
    }
}

impl RelayedOp {
    /// The outbox `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            RelayedOp::CollectionCreate { .. } => "collection.create",
            RelayedOp::AppointmentUpdate { .. } => "appointment.update",
            RelayedOp::AppointmentCreate { .. } => "appointment.create",
            RelayedOp::AppointmentReschedule { .. } => "appointment.reschedule",
            RelayedOp::PatientCreate { .. } => "patient.create",
            RelayedOp::CollectionVoid { .. } => "collection.void",
            RelayedOp::PaperPrescriptionCreate { .. } => "prescription.create",
            RelayedOp::DocumentChunk { .. } => "document.chunk",
            RelayedOp::StaffPin { .. } => "staff.pin",
            RelayedOp::StaffActive { .. } => "staff.active",
            RelayedOp::AuditCheckpoint { .. } => "audit.checkpoint",
        }
    }

    /// The record the mutation concerns: mutations of one record are applied in order.
    pub fn entity_key(&self) -> String {
        match self {
            RelayedOp::CollectionCreate { collection } => format!("collection:{}", collection.id),
            RelayedOp::AppointmentUpdate { appointment_id, .. } => format!("appointment:{appointment_id}"),
            RelayedOp::AppointmentCreate { appointment } => format!("appointment:{}", appointment.id),
            RelayedOp::AppointmentReschedule { appointment_id, .. } => format!("appointment:{appointment_id}"),
            RelayedOp::PatientCreate { patient } => format!("patient:{}", patient.id),
            RelayedOp::CollectionVoid { collection_id, .. } => format!("collection:{collection_id}"),
            RelayedOp::PaperPrescriptionCreate { prescription } => format!("prescription:{}", prescription.id),
            RelayedOp::DocumentChunk { prescription_id, .. } => format!("prescription:{prescription_id}"),
            // A staff member's PIN and activation share one key: applied in the order they were made.
            RelayedOp::StaffPin { member_id, .. } | RelayedOp::StaffActive { member_id, .. } => {
                format!("staff:{member_id}")
            }
            RelayedOp::AuditCheckpoint { .. } => "audit:chain".into(),
        }
    }

    /// The outbox lane: clinical writes (0) go before audit checkpoints (1).
    pub fn lane(&self) -> i16 {
        match self {
            RelayedOp::AuditCheckpoint { .. } => 1,
            _ => 0,
        }
    }
}

/// A walk-in patient as registered at a gateway: the INS traits and contact, the identity status
/// (`provisional`, or `validated` when a document was checked) and how it was collected (FR Core
/// codes). `Debug` shows the id only.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredPatient {
    /// Patient id (made by the tablet).
    pub id: Uuid,
    /// NIR, key-checked at the gateway.
    pub nir: Option<String>,
    /// `provisional` or `validated`.
    pub identity_status: String,
    /// Family name at birth.
    pub birth_family_name: String,
    /// Given names at birth.
    pub birth_given_names: String,
    /// First given name.
    pub first_given_name: String,
    /// Family name in use.
    pub used_family_name: Option<String>,
    /// Given name in use.
    pub used_given_name: Option<String>,
    /// Birth date.
    pub birth_date: time::Date,
    /// `F`, `M` or `I`.
    pub sex: String,
    /// INSEE code of the place of birth.
    pub birth_place_code: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Street line.
    pub address_line: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// FR Core identity collection method (`SM`: typed at the desk).
    pub identity_method: Option<String>,
    /// FR Core identity validation mode (the document checked), when validated.
    pub validation_mode: Option<String>,
}

impl fmt::Debug for RegisteredPatient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredPatient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The size of a document's chunks (the last may be shorter): a 10 MiB document is 40 chunks, and a
/// batch of the relay carries a few of them.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// A paper prescription as recorded at a gateway. `Debug` shows the ids only.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperPrescription {
    /// Prescription id (made by the tablet).
    pub id: Uuid,
    /// The patient.
    pub patient_id: Uuid,
    /// The prescriber's name, when readable.
    pub prescriber_name: Option<String>,
    /// The prescriber's RPPS number, when printed.
    pub prescriber_rpps: Option<String>,
    /// Date written on it (`YYYY-MM-DD`).
    #[serde(with = "mobile_contracts::serde_date")]
    pub issued_on: time::Date,
    /// The desk's notes.
    pub notes: Option<String>,
    /// The photo or scan the chunks carry.
    pub document: DocumentManifest,
}

impl fmt::Debug for PaperPrescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaperPrescription")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

/// What a document's chunks make once put together: the cloud checks the whole against it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentManifest {
    /// Document id (made by the gateway).
    pub id: Uuid,
    /// `image/jpeg`, `image/png` or `application/pdf`, read from the bytes.
    pub media_type: String,
    /// Size in bytes.
    pub size_bytes: u32,
    /// SHA-256 of the whole, lowercase hex.
    pub sha256: String,
    /// How many chunks carry it.
    pub chunk_count: u32,
}

/// A chunk's bytes in base64. `Debug` shows the length only: a prescription is personal data.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChunkData(pub String);

impl fmt::Debug for ChunkData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkData({} base64 characters)", self.0.len())
    }
}

/// `POST /v1/labs/{lab}/mutations` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MutationBatch {
    /// In the gateway's commit order.
    pub mutations: Vec<RelayedMutation>,
}

/// The cloud's verdict on one mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckOutcome {
    /// Applied now.
    Applied,
    /// Applied before (by this route or another): success.
    Duplicate,
    /// Made against a version that is no longer the current one.
    Conflict,
    /// Refused for good (the reason says why); the gateway quarantines it.
    Rejected,
}

/// One mutation's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MutationAck {
    /// The mutation.
    pub mutation_id: Uuid,
    /// The verdict.
    pub outcome: AckOutcome,
    /// For a conflict: the record's current version in the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// For a conflict: the record's current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<serde_json::Value>,
    /// For a rejection: a stable code and a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/labs/{lab}/mutations` answer: one ack per mutation of the batch, in its order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MutationAcks {
    /// The answers.
    pub results: Vec<MutationAck>,
}

/// Most ids one `POST /v1/labs/{lab}/mutations/known` asks about.
pub const MAX_KNOWN_IDS: usize = 1_000;

/// `POST /v1/labs/{lab}/mutations/known` body: mutation ids the gateway sent and was acknowledged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutationIds {
    /// At most [`MAX_KNOWN_IDS`].
    pub ids: Vec<Uuid>,
}

/// `POST /v1/labs/{lab}/mutations/known` answer: those of the ids the cloud holds for the lab (in
/// `applied_mutations`, whatever their outcome). The others it lost, to a restore of its database
/// to an earlier point or a failover that lost its last commits: the gateway sends them again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnownMutations {
    /// The ids held.
    pub known: Vec<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paper_prescription_and_its_chunks_share_one_record_key_and_show_no_content() {
        let (id, document) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let create = RelayedOp::PaperPrescriptionCreate {
            prescription: PaperPrescription {
                id,
                patient_id: Uuid::from_u128(3),
                prescriber_name: Some("Dr Morel".into()),
                prescriber_rpps: None,
                issued_on: time::macros::date!(2026 - 12 - 01),
                notes: Some("before 9".into()),
                document: DocumentManifest {
                    id: document,
                    media_type: "application/pdf".into(),
                    size_bytes: 300_000,
                    sha256: "ab".repeat(32),
                    chunk_count: 2,
                },
            },
        };
        let chunk = RelayedOp::DocumentChunk {
            prescription_id: id,
            document_id: document,
            index: 1,
            data: ChunkData("JVBERi0xLjcK".into()),
        };
        assert_eq!(create.entity_key(), chunk.entity_key());
        let wire = serde_json::to_value(&create).unwrap();
        assert_eq!(wire["kind"], "prescription.create");
        assert_eq!(wire["prescription"]["issued_on"], "2026-12-01");
        assert_eq!(serde_json::to_value(&chunk).unwrap()["data"], "JVBERi0xLjcK");
        let shown = format!("{create:?} {chunk:?}");
        for private in ["Morel", "before 9", "JVBERi0xLjcK"] {
            assert!(!shown.contains(private), "{shown}");
        }
    }

    #[test]
    fn staff_mutations_have_their_wire_kind_and_hide_the_hash() {
        let member_id = Uuid::now_v7();
        let pin = RelayedOp::StaffPin {
            member_id,
            pin_hash: PinHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        };
        let wire = serde_json::to_value(&pin).expect("json");
        assert_eq!(wire["kind"], "staff.pin");
        assert_eq!(wire["pin_hash"], "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
        assert_eq!(serde_json::from_value::<RelayedOp>(wire).expect("back"), pin);
        assert!(!format!("{pin:?}").contains("argon2"), "{pin:?}");
        let active = RelayedOp::StaffActive {
            member_id,
            active: false,
        };
        assert_eq!(serde_json::to_value(&active).expect("json")["kind"], "staff.active");
        assert_eq!(
            pin.entity_key(),
            active.entity_key(),
            "one staff member's changes in order"
        );
        assert_eq!((pin.kind(), pin.lane()), ("staff.pin", 0));
        // Flattened into a mutation beside its own `staff_id` (who made it), it reads back whole.
        let mutation = RelayedMutation {
            mutation_id: Uuid::now_v7(),
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            staff_id: Some(Uuid::now_v7()),
            device_id: None,
            op: active,
        };
        let back: RelayedMutation =
            serde_json::from_value(serde_json::to_value(&mutation).expect("json")).expect("back");
        assert_eq!(back, mutation);
    }
}
