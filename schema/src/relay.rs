//! The relay protocol: what a gateway sends to `POST /v1/labs/{lab}/mutations` and what the cloud
//! answers for each mutation. Shared by both services, like [`crate::sync`].
//!
//! A mutation is what a tablet asked for (the contract's `MutationOp`), stamped by the gateway with
//! its id, who asked, from which device, and when the gateway committed it. The cloud applies each
//! mutation at most once, whichever route it came by (the cloud or the central lab's standby), and
//! answers per item: applied, duplicate (already applied: counts as success), conflict (with the
//! current version) or rejected (with the reason).

use mobile_contracts::{AppointmentPatch, NewCollection};
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
    /// A signed checkpoint of the gateway's audit chain (low-priority lane).
    #[serde(rename = "audit.checkpoint")]
    AuditCheckpoint {
        /// Position in the gateway's chain.
        chain_seq: i64,
        /// Hash of the record at that position (hex).
        chain_hash: String,
        /// Records in the chain up to it.
        record_count: i64,
        /// When the gateway signed it.
        #[serde(with = "time::serde::rfc3339")]
        signed_at: OffsetDateTime,
        /// The signature (hex).
        signature: String,
    },
}

impl RelayedOp {
    /// The outbox `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            RelayedOp::CollectionCreate { .. } => "collection.create",
            RelayedOp::AppointmentUpdate { .. } => "appointment.update",
            RelayedOp::AuditCheckpoint { .. } => "audit.checkpoint",
        }
    }

    /// The record the mutation concerns: mutations of one record are applied in order.
    pub fn entity_key(&self) -> String {
        match self {
            RelayedOp::CollectionCreate { collection } => format!("collection:{}", collection.id),
            RelayedOp::AppointmentUpdate { appointment_id, .. } => format!("appointment:{appointment_id}"),
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
