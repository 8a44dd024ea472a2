//! `POST /fhir/R4` with a `transaction` Bundle (all entries or none, references between entries by
//! their `urn:uuid:` fullUrl) or a `batch` Bundle (each entry on its own).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::interactions::{self, Caller, Done};
use super::json::{Obj, printable};
use super::outcome::{FhirError, outcome_of};
use super::resources::Kind;
use super::routes::parse_etag;

/// The most entries a Bundle may have: beyond it, the LIS sends several (or uses `api import`).
pub const MAX_ENTRIES: usize = 1_000;

/// One entry's request.
#[derive(Debug)]
struct Entry {
    index: usize,
    method: Method,
    kind: Kind,
    /// `Type/id` (PUT, GET) or the criteria of a conditional PUT.
    target: Target,
    full_url: Option<String>,
    resource: Option<Value>,
    if_none_exist: Option<String>,
    if_match: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    // FHIR's processing order within a transaction: creates, then updates, then reads.
    Post,
    Put,
    Get,
}

#[derive(Debug)]
enum Target {
    None,
    Id(String),
    Criteria(String),
}

/// Runs a Bundle and answers its response Bundle.
pub async fn run(conn: &mut AsyncPgConnection, caller: Caller<'_>, body: &Value) -> Result<Value, FhirError> {
    let root = Obj::resource(body, "Bundle")?;
    root.allow_only(&["type", "entry", "identifier", "timestamp"], true)?;
    let kind = root.req_str("type")?;
    let entries = root.array("entry")?;
    if entries.len() > MAX_ENTRIES {
        return Err(FhirError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-costly",
            format!(
                "{} entries: at most {MAX_ENTRIES} per Bundle (api import loads files of any size)",
                entries.len()
            ),
        ));
    }
    let entries: Vec<Entry> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| entry(i, e))
        .collect::<Result<_, _>>()?;
    match kind {
        "transaction" => transaction(conn, caller, entries).await,
        "batch" => Ok(batch(conn, caller, entries).await),
        other => Err(FhirError::at(
            "Bundle.type",
            format!(
                "`{}`: this endpoint takes transaction or batch Bundles",
                printable(other)
            ),
        )
        .code("not-supported")),
    }
}

fn entry(index: usize, obj: &Obj<'_>) -> Result<Entry, FhirError> {
    obj.allow_only(&["fullUrl", "resource", "request"], false)?;
    let request = obj.req_obj("request")?;
    request.allow_only(
        &[
            "method",
            "url",
            "ifNoneExist",
            "ifMatch",
            "ifNoneMatch",
            "ifModifiedSince",
        ],
        false,
    )?;
    let method = match request.req_str("method")? {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "GET" => Method::Get,
        other => {
            return Err(FhirError::at(
                request.path_of("method"),
                format!("`{}`: supported are POST, PUT and GET", printable(other)),
            )
            .code("not-supported"));
        }
    };
    let url = request.req_str("url")?;
    let url = url.trim_start_matches("/fhir/R4/").trim_start_matches('/');
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let (type_name, id) = path.split_once('/').unwrap_or((path, ""));
    let kind = Kind::parse(type_name).ok_or_else(|| {
        FhirError::at(
            request.path_of("url"),
            format!("`{}` is not a supported type", printable(type_name)),
        )
        .code("not-supported")
    })?;
    let target = match (id.is_empty(), query.is_empty()) {
        (false, _) => Target::Id(id.to_owned()),
        (true, false) => Target::Criteria(query.to_owned()),
        (true, true) => Target::None,
    };
    let resource = obj.obj("resource")?.map(|_| ());
    let resource = resource.and_then(|()| body_of(obj));
    if method != Method::Get && resource.is_none() {
        return Err(FhirError::required(obj.path_of("resource")));
    }
    if let Some(r) = &resource
        && r.get("resourceType").and_then(Value::as_str) != Some(kind.name())
    {
        return Err(FhirError::at(
            format!("{}.resourceType", obj.path_of("resource")),
            format!("the request's url is for a {}", kind.name()),
        ));
    }
    if method == Method::Put && matches!(target, Target::None) {
        return Err(FhirError::at(
            request.path_of("url"),
            "PUT needs Type/id or Type?identifier=…",
        ));
    }
    let if_match = request.str("ifMatch")?.map(parse_etag).transpose()?;
    Ok(Entry {
        index,
        method,
        kind,
        target,
        full_url: obj.str("fullUrl")?.map(str::to_owned),
        resource,
        if_none_exist: request.str("ifNoneExist")?.map(str::to_owned),
        if_match,
    })
}

fn body_of(obj: &Obj<'_>) -> Option<Value> {
    obj.raw("resource").cloned()
}

/// All entries in one database transaction: the first failure rolls everything back and answers
/// the failure, naming the entry.
async fn transaction(
    conn: &mut AsyncPgConnection,
    caller: Caller<'_>,
    mut entries: Vec<Entry>,
) -> Result<Value, FhirError> {
    let results = conn
        .transaction::<_, FhirError, _>(async |conn| {
            {
                // Ids for the entries created here, so that references to their fullUrl can be rewritten
                // before anything is written.
                let mut ids: HashMap<String, (Kind, Uuid)> = HashMap::new();
                for entry in &entries {
                    if entry.method == Method::Post
                        && let Some(url) = &entry.full_url
                    {
                        let id = match &entry.if_none_exist {
                            Some(criteria) => existing(conn, caller, entry.kind, criteria)
                                .await
                                .map_err(|e| e.within(&format!("Bundle.entry[{}].request", entry.index)))?,
                            None => None,
                        };
                        ids.insert(url.clone(), (entry.kind, id.unwrap_or_else(Uuid::now_v7)));
                    }
                }
                for entry in &mut entries {
                    if let Some(resource) = &mut entry.resource {
                        rewrite_references(resource, &ids);
                    }
                }
                let mut order: Vec<usize> = (0..entries.len()).collect();
                order.sort_by_key(|&i| (entries[i].method, i));
                let mut done: Vec<Option<Done>> = (0..entries.len()).map(|_| None).collect();
                for i in order {
                    let entry = &entries[i];
                    let id = entry.full_url.as_ref().and_then(|u| ids.get(u)).map(|(_, id)| *id);
                    let result = perform(conn, caller, entry, id)
                        .await
                        .map_err(|e| e.within(&format!("Bundle.entry[{}].resource", entry.index)))?;
                    done[i] = Some(result);
                }
                Ok(done.into_iter().flatten().collect::<Vec<_>>())
            }
        })
        .await?;
    Ok(response("transaction-response", results.iter().map(Ok).collect()))
}

async fn existing(
    conn: &mut AsyncPgConnection,
    caller: Caller<'_>,
    kind: Kind,
    criteria: &str,
) -> Result<Option<Uuid>, FhirError> {
    caller.client.require(kind, super::client::Access::Write)?;
    let search = super::resources::Search::parse(kind, criteria)?;
    let Some(token) = &search.identifier else {
        return Ok(None);
    };
    let mut found = super::resources::by_identifier(conn, kind, token).await?;
    match found.len() {
        0 | 1 => Ok(found.pop()),
        n => Err(FhirError::precondition(format!("ifNoneExist matches {n} resources"))),
    }
}

/// Each entry on its own (its own transaction): one entry's failure is its response, not the Bundle's.
async fn batch(conn: &mut AsyncPgConnection, caller: Caller<'_>, entries: Vec<Entry>) -> Value {
    let mut results: Vec<Result<Done, FhirError>> = Vec::new();
    for entry in &entries {
        let result = conn
            .transaction::<_, FhirError, _>(async |conn| perform(conn, caller, entry, None).await)
            .await
            .map_err(|e| e.within(&format!("Bundle.entry[{}].resource", entry.index)));
        results.push(result);
    }
    response("batch-response", results.iter().map(|r| r.as_ref()).collect())
}

async fn perform(
    conn: &mut AsyncPgConnection,
    caller: Caller<'_>,
    entry: &Entry,
    id: Option<Uuid>,
) -> Result<Done, FhirError> {
    let empty = Value::Null;
    let resource = entry.resource.as_ref().unwrap_or(&empty);
    match (entry.method, &entry.target) {
        (Method::Post, _) => {
            // In a transaction, an ifNoneExist match was resolved into `id` already: the create then
            // finds it again and answers it unchanged.
            interactions::create(conn, caller, entry.kind, resource, entry.if_none_exist.as_deref(), id).await
        }
        (Method::Put, Target::Id(text)) => {
            let id = Uuid::parse_str(text).map_err(|_| FhirError::bad_request("ids of this server are UUIDs"))?;
            interactions::update(conn, caller, entry.kind, id, resource, entry.if_match).await
        }
        (Method::Put, Target::Criteria(criteria)) => {
            interactions::conditional_update(conn, caller, entry.kind, criteria, resource, entry.if_match).await
        }
        (Method::Get, Target::Id(text)) => interactions::read(conn, caller, entry.kind, text).await,
        _ => Err(FhirError::bad_request("this request of a Bundle entry is not supported").code("not-supported")),
    }
}

/// Replaces every `"reference": "urn:uuid:…"` naming an entry of the Bundle with `Type/id`.
fn rewrite_references(value: &mut Value, ids: &HashMap<String, (Kind, Uuid)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "reference"
                    && let Value::String(text) = child
                    && let Some((kind, id)) = ids.get(text.as_str())
                {
                    *text = format!("{}/{id}", kind.name());
                } else {
                    rewrite_references(child, ids);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_references(item, ids)),
        _ => {}
    }
}

fn response(kind: &str, results: Vec<Result<&Done, &FhirError>>) -> Value {
    let entries: Vec<Value> = results
        .into_iter()
        .map(|result| match result {
            Ok(done) => json!({
                "fullUrl": format!("/fhir/R4/{}/{}", done.kind.name(), done.stored.resource.get("id").and_then(Value::as_str).unwrap_or_default()),
                "resource": done.stored.resource,
                "response": {
                    "status": format!("{} {}", done.status.as_u16(), done.status.canonical_reason().unwrap_or("")),
                    "location": done.location(),
                    "etag": done.etag(),
                    "lastModified": done.stored.last_updated.format(&Rfc3339).unwrap_or_default(),
                },
            }),
            Err(error) => json!({
                "response": {
                    "status": format!("{} {}", error.status.as_u16(), error.status.canonical_reason().unwrap_or("")),
                    "outcome": outcome_of(error.status, &error.issues),
                },
            }),
        })
        .collect();
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}
