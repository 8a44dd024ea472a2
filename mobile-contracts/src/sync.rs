//! Offline work: `POST /v1/sync/push` (queued mutations) and `GET /v1/sync/pull?cursor=` (delta).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use validator::{Validate, ValidationError, ValidationErrors};

use crate::appointments::{Appointment, AppointmentPatch};
use crate::collections::NewCollection;
use crate::patients::Patient;
use crate::prescriptions::Prescription;
use crate::problem::Problem;
use crate::rules::{self, Checks};

/// Most mutations in one push.
pub const MAX_MUTATIONS: u64 = 500;
/// Longest pull cursor.
pub const MAX_CURSOR_LEN: u64 = 128;

/// A batch of mutations queued while offline, applied in order, each at most once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = mutation_ids_are_unique, skip_on_field_errors = false))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncPushRequest {
    /// 1 to 500 mutations, oldest first.
    #[validate(length(min = 1, max = 500, message = "must hold 1 to 500 mutations"), nested)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 500))]
    pub mutations: Vec<Mutation>,
}

fn mutation_ids_are_unique(request: &SyncPushRequest) -> Result<(), ValidationError> {
    for (index, mutation) in request.mutations.iter().enumerate() {
        if request.mutations[..index]
            .iter()
            .any(|earlier| earlier.mutation_id == mutation.mutation_id)
        {
            let mut error = rules::fail(
                "duplicate_mutation_id",
                "is already used by an earlier mutation of this batch",
            );
            error.add_param(
                std::borrow::Cow::Borrowed("pointer"),
                &format!("/mutations/{index}/mutation_id"),
            );
            return Err(error);
        }
    }
    Ok(())
}

/// One queued change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mutation {
    /// Made by the tablet when the change was queued (UUID v7 recommended); a replay is answered `duplicate`.
    #[validate(custom(function = rules::not_nil))]
    pub mutation_id: Uuid,
    /// When the change was queued, tablet clock (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    /// The change.
    #[validate(nested)]
    pub op: MutationOp,
}

/// What a mutation does, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MutationOp {
    /// The same as `POST /v1/collections`.
    #[serde(rename = "collection.create")]
    CollectionCreate {
        /// The collection.
        collection: NewCollection,
    },
    /// The same as `PATCH /v1/appointments/{id}` with `If-Match: "<if_version>"`.
    #[serde(rename = "appointment.update")]
    AppointmentUpdate {
        /// The appointment.
        appointment_id: Uuid,
        /// The version the tablet saw; a different current version gives `conflict`.
        #[cfg_attr(feature = "openapi", schema(minimum = 0))]
        if_version: i64,
        /// The change.
        patch: AppointmentPatch,
    },
    /// The same as `POST /v1/collections/{collection_id}/void`: a home sampler on the road voids
    /// their own collection recorded by mistake before they are back in coverage.
    #[serde(rename = "collection.void")]
    CollectionVoid {
        /// The collection.
        collection_id: Uuid,
        /// Why.
        void: crate::collections::CollectionVoid,
    },
}

impl MutationOp {
    /// The wire `kind`, e.g. `collection.create` (also the outbox kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CollectionCreate { .. } => "collection.create",
            Self::AppointmentUpdate { .. } => "appointment.update",
            Self::CollectionVoid { .. } => "collection.void",
        }
    }
}

// validator cannot derive on enums; the nested errors keep the wire field names so pointers read
// `/mutations/2/op/collection/tubes/0/barcode`.
impl Validate for MutationOp {
    fn validate(&self) -> Result<(), ValidationErrors> {
        match self {
            Self::CollectionCreate { collection } => {
                let mut errors = ValidationErrors::new();
                errors.merge_self("collection", collection.validate());
                if errors.is_empty() { Ok(()) } else { Err(errors) }
            }
            Self::AppointmentUpdate {
                appointment_id,
                if_version,
                patch,
            } => {
                let mut checks = Checks::default();
                checks.field("appointment_id", rules::not_nil(appointment_id)).field(
                    "if_version",
                    rules::ensure(*if_version >= 0, "range", "must be at least 0"),
                );
                let mut errors = checks.finish().err().unwrap_or_default();
                errors.merge_self("patch", patch.validate());
                if errors.is_empty() { Ok(()) } else { Err(errors) }
            }
            Self::CollectionVoid { collection_id, void } => {
                let mut checks = Checks::default();
                checks.field("collection_id", rules::not_nil(collection_id));
                let mut errors = checks.finish().err().unwrap_or_default();
                errors.merge_self("void", void.validate());
                if errors.is_empty() { Ok(()) } else { Err(errors) }
            }
        }
    }
}

/// What became of a mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MutationOutcome {
    /// Applied now.
    Applied,
    /// Already applied by an earlier push: success, drop it from the queue.
    Duplicate,
    /// The target changed since the tablet saw it; `current_version` says to what. Kept for the lab admin.
    Conflict,
    /// Refused for good (`problem` says why); retrying will not help. Kept for the lab admin.
    Rejected,
}

impl MutationOutcome {
    /// Whether the tablet may drop the mutation from its queue (every outcome is final; only a
    /// failed request as a whole, 5xx or network error, means "push again").
    pub fn is_success(self) -> bool {
        matches!(self, Self::Applied | Self::Duplicate)
    }
}

/// The answer for one mutation, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MutationResult {
    /// The mutation.
    pub mutation_id: Uuid,
    /// What became of it.
    pub outcome: MutationOutcome,
    /// The HTTP status the same change would have had on its own route (201, 200, 409, 422…).
    pub status: u16,
    /// Why, for `conflict` and `rejected`.
    pub problem: Option<Problem>,
    /// Current version of the target, for `conflict` (and after an applied update).
    pub current_version: Option<i64>,
}

/// One result per mutation, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncPushResponse {
    /// The results.
    pub results: Vec<MutationResult>,
}

/// Query of `GET /v1/sync/pull`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SyncPullQuery {
    /// The `cursor` of the previous page; absent for a first, full pull.
    #[serde(default)]
    #[validate(length(max = 128, message = "must be at most 128 characters"))]
    #[cfg_attr(feature = "openapi", param(max_length = 128))]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub cursor: Option<String>,
}

/// Kinds of entity a pull carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SyncEntity {
    /// An appointment.
    Appointment,
    /// A patient.
    Patient,
    /// A prescription.
    Prescription,
}

/// An entity that left the caller's scope (deleted, reassigned, out of the date window): delete it locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Removal {
    /// Kind of entity.
    pub entity: SyncEntity,
    /// Its id.
    pub id: Uuid,
}

/// A page of changes in the caller's scope since the cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncPullResponse {
    /// Opaque position to send as `cursor` next time; store it only after applying this page.
    pub cursor: String,
    /// When true, drop every local copy first: this page starts a full resync (unknown or too old cursor).
    pub reset: bool,
    /// Whether to pull again at once with the new cursor.
    pub has_more: bool,
    /// Appointments created or changed (upsert by id).
    pub appointments: Vec<Appointment>,
    /// Patients created or changed (upsert by id).
    pub patients: Vec<Patient>,
    /// Prescriptions created or changed (upsert by id).
    pub prescriptions: Vec<Prescription>,
    /// Entities to delete locally.
    pub removals: Vec<Removal>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::AppointmentStatus;
    use serde_json::json;

    fn push() -> SyncPushRequest {
        SyncPushRequest {
            mutations: vec![
                Mutation {
                    mutation_id: Uuid::from_u128(0x0195_9f00_0000_7000_8000_0000_0000_0001),
                    queued_at: time::macros::datetime!(2025-03-14 09:02:11 +01:00),
                    op: MutationOp::CollectionCreate {
                        collection: crate::fixtures::collection(),
                    },
                },
                Mutation {
                    mutation_id: Uuid::from_u128(0x0195_9f00_0000_7000_8000_0000_0000_0002),
                    queued_at: time::macros::datetime!(2025-03-14 09:05:00 +01:00),
                    op: MutationOp::AppointmentUpdate {
                        appointment_id: Uuid::from_u128(0x51),
                        if_version: 4,
                        patch: AppointmentPatch {
                            status: AppointmentStatus::Collected,
                            reason: None,
                        },
                    },
                },
            ],
        }
    }

    #[test]
    fn push_round_trips_with_both_kinds() {
        let request = push();
        request.validate().expect("valid");
        let value = serde_json::to_value(&request).expect("json");
        assert_eq!(value["mutations"][0]["op"]["kind"], "collection.create");
        assert_eq!(value["mutations"][1]["op"]["kind"], "appointment.update");
        assert_eq!(value["mutations"][1]["op"]["if_version"], 4);
        assert_eq!(value["mutations"][0]["queued_at"], "2025-03-14T09:02:11+01:00");
        let text = serde_json::to_string(&request).expect("text");
        let back: SyncPushRequest = serde_json::from_str(&text).expect("back");
        assert_eq!(back, request);
        assert_eq!(back.mutations[0].op.kind(), "collection.create");
    }

    #[test]
    fn nested_errors_point_through_the_op() {
        let mut request = push();
        if let MutationOp::CollectionCreate { collection } = &mut request.mutations[0].op {
            collection.tubes[1].tube_type = "x".into();
        }
        if let MutationOp::AppointmentUpdate { if_version, patch, .. } = &mut request.mutations[1].op {
            *if_version = -1;
            patch.reason = Some("r".repeat(501));
        }
        let problem = Problem::from_validation(&request.validate().expect_err("invalid"));
        let pointers: Vec<_> = problem.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/mutations/0/op/collection/tubes/1/tube_type",
                "/mutations/1/op/if_version",
                "/mutations/1/op/patch/reason",
            ]
        );
    }

    #[test]
    fn batch_limits_and_duplicate_ids() {
        let empty = SyncPushRequest { mutations: Vec::new() };
        assert!(empty.validate().is_err());
        let mut request = push();
        request.mutations[1].mutation_id = request.mutations[0].mutation_id;
        let problem = Problem::from_validation(&request.validate().expect_err("duplicate"));
        assert_eq!(problem.errors[0].pointer, "/mutations/1/mutation_id");
        let mut big = push();
        big.mutations = (0..501u128)
            .map(|n| Mutation {
                mutation_id: Uuid::from_u128(n + 1),
                ..push().mutations[1].clone()
            })
            .collect();
        let problem = Problem::from_validation(&big.validate().expect_err("too many"));
        assert_eq!(problem.errors[0].pointer, "/mutations");
    }

    #[test]
    fn unknown_kind_and_unknown_op_fields_are_refused() {
        let mut value = serde_json::to_value(push()).expect("json");
        value["mutations"][1]["op"]["kind"] = json!("patient.delete");
        assert!(serde_json::from_value::<SyncPushRequest>(value.clone()).is_err());
        value["mutations"][1]["op"]["kind"] = json!("appointment.update");
        value["mutations"][1]["op"]["lab_id"] = json!("x");
        assert!(serde_json::from_value::<SyncPushRequest>(value.clone()).is_err());
        value["mutations"][1]["op"]
            .as_object_mut()
            .expect("object")
            .remove("lab_id");
        value["mutations"][0]["op"]["collection"]["collected_by"] = json!("x");
        assert!(serde_json::from_value::<SyncPushRequest>(value).is_err());
    }

    #[test]
    fn pull_query_and_outcomes() {
        SyncPullQuery::default().validate().expect("no cursor");
        let long = SyncPullQuery {
            cursor: Some("c".repeat(129)),
        };
        assert!(long.validate().is_err());
        assert!(MutationOutcome::Duplicate.is_success());
        assert!(!MutationOutcome::Conflict.is_success());
        let result = MutationResult {
            mutation_id: Uuid::from_u128(1),
            outcome: MutationOutcome::Conflict,
            status: 409,
            problem: Some(Problem::new(crate::problem::ErrorCode::VersionMismatch).with_status(409)),
            current_version: Some(6),
        };
        let value = serde_json::to_value(&result).expect("json");
        assert_eq!(value["outcome"], "conflict");
        assert_eq!(value["problem"]["code"], "version_mismatch");
    }
}
