//! What every FHIR resource type shares in the database: versions and preconditions, the identifiers
//! a LIS gives its resources, and the `meta` of a rendered resource.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::cloud::schema::fhir_identifiers;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::outcome::FhirError;

/// A resource as read from the database, rendered.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Its id.
    pub id: Uuid,
    /// Its version (`meta.versionId`, the ETag).
    pub version: i64,
    /// When it last changed.
    pub last_updated: OffsetDateTime,
    /// The resource.
    pub resource: Value,
}

/// What a write expects of the resource's current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Create or replace, whatever is there (`PUT` without `If-Match`).
    Any,
    /// It must not exist yet (`POST`: the server chose the id).
    New,
    /// It must exist at this version (`If-Match: W/"n"`).
    Version(i64),
}

/// The version a write left, and whether it created the resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionedWrite {
    /// The new version.
    pub version: i64,
    /// Created (201) rather than updated (200).
    pub created: bool,
}

/// Inserts the row `id` at version 1, or updates it to the next version: the two statements every
/// versioned table of the interface (`id`, `version`, `updated_at`) takes, as a [`VersionedWrite`].
/// `insert_only` values are written on insert and never changed by an update (a role's PIN).
macro_rules! insert_or_bump {
    ($conn:expr, $table:ident, $id:expr, $current:expr, $values:expr) => {{
        let current: Option<i64> = $current;
        let version = match current {
            None => {
                diesel::insert_into($table::table)
                    .values(($table::id.eq($id), $values))
                    .execute($conn)
                    .await?;
                1
            }
            Some(v) => $crate::fhir::store::insert_or_bump!(@bump $conn, $table, $id, v, $values),
        };
        $crate::fhir::store::VersionedWrite {
            version,
            created: current.is_none(),
        }
    }};
    ($conn:expr, $table:ident, $id:expr, $current:expr, $values:expr, insert_only: $extra:expr) => {{
        let current: Option<i64> = $current;
        let version = match current {
            None => {
                diesel::insert_into($table::table)
                    .values(($table::id.eq($id), $extra, $values))
                    .execute($conn)
                    .await?;
                1
            }
            Some(v) => $crate::fhir::store::insert_or_bump!(@bump $conn, $table, $id, v, $values),
        };
        $crate::fhir::store::VersionedWrite {
            version,
            created: current.is_none(),
        }
    }};
    (@bump $conn:expr, $table:ident, $id:expr, $v:expr, $values:expr) => {{
        diesel::update($table::table.find($id))
            .set(($values, $table::version.eq($v + 1), $table::updated_at.eq(diesel::dsl::now)))
            .execute($conn)
            .await?;
        $v + 1
    }};
}
pub(crate) use insert_or_bump;

/// The `identifier` elements of the identifiers stored for a resource (`None` when it has none).
pub async fn identifier_elements(conn: &mut AsyncPgConnection, kind: &str, id: Uuid) -> QueryResult<Option<Value>> {
    let stored = identifiers(conn, kind, id).await?;
    Ok((!stored.is_empty()).then(|| {
        stored
            .into_iter()
            .map(|(system, value)| json!({"system": system, "value": value}))
            .collect()
    }))
}

/// Checks `expect` against the current version (`None`: absent).
pub fn precondition(current: Option<i64>, expect: Expect, kind: &str, id: Uuid) -> Result<(), FhirError> {
    match (expect, current) {
        (Expect::Any, _) | (Expect::New, None) => Ok(()),
        (Expect::New, Some(_)) => Err(FhirError::conflict(format!("{kind}/{id} exists already")).code("duplicate")),
        (Expect::Version(_), None) => Err(FhirError::not_found(format!("{kind}/{id}"))),
        (Expect::Version(wanted), Some(v)) if wanted == v => Ok(()),
        (Expect::Version(wanted), Some(v)) => Err(FhirError::precondition(format!(
            "If-Match names version {wanted}, {kind}/{id} is at version {v}"
        ))),
    }
}

/// `meta` of a rendered resource.
pub fn meta(version: i64, last_updated: OffsetDateTime) -> Value {
    json!({
        "versionId": version.to_string(),
        "lastUpdated": last_updated.format(&Rfc3339).unwrap_or_default(),
    })
}

/// Refuses a reference to a row that does not exist: `what` names it (`Patient`, `Organization
/// (lab)`) and `expression` the element that refers to it.
pub async fn require_target(
    conn: &mut AsyncPgConnection,
    table: Target,
    id: Uuid,
    expression: &str,
    what: &str,
) -> Result<(), FhirError> {
    let found: Option<Uuid> = match table {
        Target::Patient => {
            use labedge_schema::cloud::schema::patients;
            patients::table
                .find(id)
                .select(patients::id)
                .first(conn)
                .await
                .optional()?
        }
        Target::Lab => {
            use labedge_schema::cloud::schema::labs;
            labs::table.find(id).select(labs::id).first(conn).await.optional()?
        }
    };
    match found {
        Some(_) => Ok(()),
        None => Err(FhirError::at(expression, format!("names no {what} of this server")).code("not-found")),
    }
}

/// What a reference checked by [`require_target`] points at.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Patient,
    Lab,
}

/// The identifiers stored for a resource, in a stable order.
pub async fn identifiers(conn: &mut AsyncPgConnection, kind: &str, id: Uuid) -> QueryResult<Vec<(String, String)>> {
    fhir_identifiers::table
        .filter(fhir_identifiers::resource_type.eq(kind))
        .filter(fhir_identifiers::resource_id.eq(id))
        .select((fhir_identifiers::system, fhir_identifiers::value))
        .order((fhir_identifiers::system, fhir_identifiers::value))
        .load(conn)
        .await
}

/// Replaces a resource's identifiers. Another resource of the type holding one is a conflict that
/// names the element.
pub async fn set_identifiers(
    conn: &mut AsyncPgConnection,
    kind: &'static str,
    id: Uuid,
    wanted: &[(String, String)],
) -> Result<(), FhirError> {
    for (i, (system, value)) in wanted.iter().enumerate() {
        if let Some(holder) = find_by_identifier(conn, kind, system, value).await?
            && holder != id
        {
            return Err(FhirError::at(
                format!("{kind}.identifier[{i}]"),
                format!("another {kind} already has this identifier"),
            )
            .code("duplicate")
            .status(actix_web::http::StatusCode::CONFLICT));
        }
    }
    diesel::delete(
        fhir_identifiers::table
            .filter(fhir_identifiers::resource_type.eq(kind))
            .filter(fhir_identifiers::resource_id.eq(id)),
    )
    .execute(conn)
    .await?;
    let rows: Vec<_> = wanted
        .iter()
        .map(|(system, value)| {
            (
                fhir_identifiers::resource_type.eq(kind),
                fhir_identifiers::system.eq(system),
                fhir_identifiers::value.eq(value),
                fhir_identifiers::resource_id.eq(id),
            )
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(fhir_identifiers::table)
            .values(rows)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The resource of this type with this identifier.
pub async fn find_by_identifier(
    conn: &mut AsyncPgConnection,
    kind: &str,
    system: &str,
    value: &str,
) -> QueryResult<Option<Uuid>> {
    fhir_identifiers::table
        .filter(fhir_identifiers::resource_type.eq(kind))
        .filter(fhir_identifiers::system.eq(system))
        .filter(fhir_identifiers::value.eq(value))
        .select(fhir_identifiers::resource_id)
        .first(conn)
        .await
        .optional()
}
