//! The interactions (read, search, create, update, their conditional forms) over one connection, so
//! that a route runs one in its own transaction and a transaction Bundle runs many in one. Each
//! records its audit record in the same transaction.

use actix_web::http::StatusCode;
use diesel_async::AsyncPgConnection;
use serde_json::Value;
use uuid::Uuid;

use super::client::{Access, IntegrationClient, audit};
use super::outcome::FhirError;
use super::resources::{self, Found, Kind, Search};
use super::specimen::patient_of;
use super::store::{Expect, Stored};

/// What an interaction did.
#[derive(Debug)]
pub struct Done {
    /// 200 or 201.
    pub status: StatusCode,
    /// The resource as stored now.
    pub stored: Stored,
    /// Its type.
    pub kind: Kind,
}

impl Done {
    /// `Type/id/_history/version`.
    pub fn location(&self) -> String {
        let id = self
            .stored
            .resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        format!("{}/{id}/_history/{}", self.kind.name(), self.stored.version)
    }
    /// The weak ETag of its version.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.stored.version)
    }
}

/// Who calls, and the request id their audit records carry.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub client: &'a IntegrationClient,
    pub request_id: &'a str,
}

fn patient_in(kind: Kind, stored: &Stored) -> Option<Uuid> {
    if kind == Kind::Patient {
        Some(stored.id)
    } else {
        patient_of(&stored.resource).or_else(|| {
            // An Appointment names its patient among its participants.
            stored.resource.get("participant")?.as_array()?.iter().find_map(|p| {
                let reference = p.get("actor")?.get("reference")?.as_str()?;
                Uuid::parse_str(reference.strip_prefix("Patient/")?).ok()
            })
        })
    }
}

/// Reads one resource (404 when absent).
pub async fn read(conn: &mut AsyncPgConnection, caller: Caller<'_>, kind: Kind, id: &str) -> Result<Done, FhirError> {
    caller.client.require(kind, Access::Read)?;
    let stored = resources::read(conn, kind, id)
        .await?
        .ok_or_else(|| FhirError::not_found(format!("{}/{}", kind.name(), super::json::printable(id))))?;
    let resource = format!("{}/{}", kind.name(), super::json::printable(id));
    audit(
        conn,
        caller.client,
        "fhir.read",
        &resource,
        patient_in(kind, &stored),
        caller.request_id,
    )
    .await?;
    Ok(Done {
        status: StatusCode::OK,
        stored,
        kind,
    })
}

/// Searches; one audit record per patient whose data the answer holds (who saw this patient stays
/// answerable), or one for the search when it holds none.
pub async fn search(
    conn: &mut AsyncPgConnection,
    caller: Caller<'_>,
    kind: Kind,
    query: &str,
) -> Result<Found, FhirError> {
    caller.client.require(kind, Access::Read)?;
    let search = Search::parse(kind, query)?;
    let found = resources::search(conn, kind, &search).await?;
    let mut patients: Vec<Uuid> = found.resources.iter().filter_map(|s| patient_in(kind, s)).collect();
    patients.sort_unstable();
    patients.dedup();
    let resource = format!("{}?search", kind.name());
    if patients.is_empty() {
        audit(conn, caller.client, "fhir.search", &resource, None, caller.request_id).await?;
    }
    for patient in patients {
        audit(
            conn,
            caller.client,
            "fhir.search",
            &resource,
            Some(patient),
            caller.request_id,
        )
        .await?;
    }
    Ok(found)
}

/// The one resource a conditional request's criteria match, if any (412 when several do).
async fn matching(conn: &mut AsyncPgConnection, kind: Kind, criteria: &str) -> Result<Option<Uuid>, FhirError> {
    let search = Search::parse(kind, criteria)?;
    let Some(token) = &search.identifier else {
        return Err(
            FhirError::bad_request("conditional requests match by identifier=system|value").code("not-supported"),
        );
    };
    let mut found = resources::by_identifier(conn, kind, token).await?;
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(FhirError::precondition(format!("the criteria match {n} resources"))),
    }
}

/// Creates a resource under a new id, or, with `If-None-Exist` criteria that match one, answers it
/// unchanged (200).
pub async fn create(
    conn: &mut AsyncPgConnection,
    caller: Caller<'_>,
    kind: Kind,
    body: &Value,
    if_none_exist: Option<&str>,
    id: Option<Uuid>,
) -> Result<Done, FhirError> {
    caller.client.require(kind, Access::Write)?;
    let (parsed, identifiers) = resources::parse(kind, body)?;
    if let Some(criteria) = if_none_exist
        && let Some(existing) = matching(conn, kind, criteria).await?
    {
        let mut done = read(conn, caller, kind, &existing.to_string()).await?;
        done.status = StatusCode::OK;
        return Ok(done);
    }
    let id = id.unwrap_or_else(Uuid::now_v7);
    resources::write(conn, kind, id, caller.client.id, &parsed, &identifiers, Expect::New).await?;
    finish(conn, caller, kind, id, "fhir.create", StatusCode::CREATED).await
}

/// Creates or replaces the resource `id` (`If-Match` checked when given).
pub async fn update(
    conn: &mut AsyncPgConnection,
    caller: Caller<'_>,
    kind: Kind,
    id: Uuid,
    body: &Value,
    if_match: Option<i64>,
) -> Result<Done, FhirError> {
    caller.client.require(kind, Access::Write)?;
    if let Some(given) = body.get("id").and_then(Value::as_str)
        && Uuid::parse_str(given).ok() != Some(id)
    {
        return Err(
            FhirError::at(format!("{}.id", kind.name()), "differs from the id in the URL")
                .status(StatusCode::BAD_REQUEST),
        );
    }
    let (parsed, identifiers) = resources::parse(kind, body)?;
    let expect = if_match.map_or(Expect::Any, Expect::Version);
    let written = resources::write(conn, kind, id, caller.client.id, &parsed, &identifiers, expect).await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    finish(conn, caller, kind, id, "fhir.update", status).await
}

/// Conditional update: the one resource the criteria match is replaced; none: created (under the
/// body's id when it has one).
pub async fn conditional_update(
    conn: &mut AsyncPgConnection,
    caller: Caller<'_>,
    kind: Kind,
    criteria: &str,
    body: &Value,
    if_match: Option<i64>,
) -> Result<Done, FhirError> {
    caller.client.require(kind, Access::Write)?;
    let body_id = body
        .get("id")
        .and_then(Value::as_str)
        .and_then(|i| Uuid::parse_str(i).ok());
    match matching(conn, kind, criteria).await? {
        Some(id) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(FhirError::at(
                    format!("{}.id", kind.name()),
                    "differs from the id of the resource the criteria match",
                )
                .status(StatusCode::BAD_REQUEST));
            }
            update(conn, caller, kind, id, body, if_match).await
        }
        None => update(conn, caller, kind, body_id.unwrap_or_else(Uuid::now_v7), body, None).await,
    }
}

async fn finish(
    conn: &mut AsyncPgConnection,
    caller: Caller<'_>,
    kind: Kind,
    id: Uuid,
    action: &str,
    status: StatusCode,
) -> Result<Done, FhirError> {
    let stored = resources::read(conn, kind, &id.to_string())
        .await?
        .ok_or_else(|| FhirError::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", "written but not found"))?;
    let resource = format!("{}/{id}", kind.name());
    audit(
        conn,
        caller.client,
        action,
        &resource,
        patient_in(kind, &stored),
        caller.request_id,
    )
    .await?;
    Ok(Done { status, stored, kind })
}
