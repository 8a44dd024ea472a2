//! The HTTP side of `/fhir/R4`: authentication, media types, bodies, `ETag`/`If-Match`, and one
//! transaction per interaction.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use labedge_service::http::{RequestId, read_body};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc2822;
use uuid::Uuid;

use super::FHIR_JSON;
use super::client::{self, IntegrationClient};
use super::document;
use super::interactions::{self, Caller, Done};
use super::outcome::FhirError;
use super::resources::{Found, Kind};
use crate::state::AppState;

/// The largest single resource.
pub const MAX_RESOURCE_BYTES: usize = 1024 * 1024;
/// The largest Bundle body.
pub const MAX_BUNDLE_BYTES: usize = 16 * 1024 * 1024;

/// Registers `/fhir/R4`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/fhir/R4")
            .route("/metadata", web::get().to(metadata))
            .route("", web::post().to(bundle))
            .route("/", web::post().to(bundle))
            .route("/{kind}", web::get().to(search))
            .route("/{kind}", web::post().to(create))
            .route("/{kind}", web::put().to(conditional_update))
            .route("/{kind}/{id}", web::get().to(read))
            .route("/{kind}/{id}", web::put().to(update))
            .route("/{kind}/{id}", web::delete().to(delete))
            .route("/{kind}/{id}/_history", web::get().to(history)),
    );
}

async fn metadata() -> HttpResponse {
    fhir_json(StatusCode::OK).body(super::capability::statement().to_string())
}

fn fhir_json(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON)));
    response
}

/// The answer of a read, create or update: the resource, its ETag, Location and Last-Modified.
pub fn answer(done: &Done) -> HttpResponse {
    let mut response = fhir_json(done.status);
    response.insert_header((header::ETAG, done.etag()));
    if let Ok(modified) = done.stored.last_updated.format(&Rfc2822) {
        response.insert_header((header::LAST_MODIFIED, modified));
    }
    if done.status == StatusCode::CREATED || done.status == StatusCode::OK && done.kind.writable() {
        response.insert_header((header::LOCATION, format!("/fhir/R4/{}", done.location())));
    }
    response.body(done.stored.resource.to_string())
}

fn kind_of(name: &str) -> Result<Kind, FhirError> {
    Kind::parse(name).ok_or_else(|| {
        FhirError::new(
            StatusCode::NOT_FOUND,
            "not-supported",
            format!(
                "resource type `{}` is not supported here (see /fhir/R4/metadata)",
                super::json::printable(name)
            ),
        )
    })
}

async fn authenticated(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(deadpool_conn::Conn, IntegrationClient), FhirError> {
    let mut conn = state.pool.get().await?;
    let client = client::authenticate(req, &mut conn).await?;
    Ok((conn, client))
}

mod deadpool_conn {
    /// A pooled connection of the cloud database.
    pub type Conn = diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>;
}

/// Reads a resource body: a FHIR or plain JSON media type, at most `limit` bytes, valid JSON.
pub async fn json_body(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<Value, FhirError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/fhir+json" && essence != "application/json" {
        return Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "the body must be application/fhir+json",
        ));
    }
    let body = read_body(payload.into_inner(), limit).await.map_err(|p| {
        let problem = p.problem;
        FhirError::new(
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST),
            "too-costly",
            problem.detail.clone().unwrap_or_else(|| problem.title.clone()),
        )
    })?;
    // serde_json refuses nesting deeper than 128 levels, so deep JSON is a 400 like any malformed body.
    serde_json::from_slice(&body).map_err(|e| FhirError::bad_request(format!("the body is not valid JSON: {e}")))
}

fn if_match(req: &HttpRequest) -> Result<Option<i64>, FhirError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    parse_etag(value.to_str().unwrap_or("")).map(Some)
}

/// `W/"3"` or `"3"` to 3.
pub fn parse_etag(text: &str) -> Result<i64, FhirError> {
    text.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map_err(|_| FhirError::bad_request("If-Match: a version ETag such as W/\"3\"").code("value"))
}

async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, FhirError> {
    let (kind, id) = path.into_inner();
    let kind = kind_of(&kind)?;
    let (mut conn, client) = authenticated(&state, &req).await?;
    let request_id = RequestId::of(&req);
    let caller = Caller {
        client: &client,
        request_id: &request_id,
    };
    let done = conn
        .transaction::<_, FhirError, _>(async |conn| interactions::read(conn, caller, kind, &id).await)
        .await?;
    if kind == Kind::Binary {
        let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
        if !document::wants_fhir_json(accept, req.query_string()) {
            return Ok(raw_binary(&done));
        }
    }
    Ok(answer(&done))
}

/// A Binary's bytes as they are, with their content type; never sniffed or shown inline by a
/// browser (a PDF or an image is personal data, and no page of this API should render one).
fn raw_binary(done: &Done) -> HttpResponse {
    let Some((content_type, bytes)) = document::raw(&done.stored.resource) else {
        return answer(done);
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::ETAG, done.etag()))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header((header::CONTENT_DISPOSITION, "attachment"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if let Ok(modified) = done.stored.last_updated.format(&Rfc2822) {
        response.insert_header((header::LAST_MODIFIED, modified));
    }
    response.body(bytes)
}

async fn search(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: web::Path<String>,
) -> Result<HttpResponse, FhirError> {
    let kind = kind_of(&kind)?;
    let (mut conn, client) = authenticated(&state, &req).await?;
    let request_id = RequestId::of(&req);
    let caller = Caller {
        client: &client,
        request_id: &request_id,
    };
    let query = req.query_string().to_owned();
    let found = conn
        .transaction::<_, FhirError, _>(async |conn| interactions::search(conn, caller, kind, &query).await)
        .await?;
    Ok(fhir_json(StatusCode::OK).body(searchset(kind, &query, &found).to_string()))
}

/// A `searchset` Bundle; feed searches (`_cursor`) carry a `next` link at the cursor they reached,
/// which a LIS follows until a page comes back empty.
fn searchset(kind: Kind, query: &str, found: &Found) -> Value {
    let mut links = vec![json!({"relation": "self", "url": format!("/fhir/R4/{}?{query}", kind.name())})];
    if let Some(next) = found.next_cursor {
        let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k != "_cursor")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        serializer.extend_pairs(kept);
        serializer.append_pair("_cursor", &next.to_string());
        links.push(json!({"relation": "next", "url": format!("/fhir/R4/{}?{}", kind.name(), serializer.finish())}));
    }
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": found.resources.len(),
        "link": links,
        "entry": found.resources.iter().map(|s| {
            let id = s.resource.get("id").and_then(Value::as_str).unwrap_or_default();
            json!({
                "fullUrl": format!("/fhir/R4/{}/{id}", kind.name()),
                "resource": s.resource,
                "search": {"mode": "match"},
            })
        }).collect::<Vec<_>>(),
    })
}

async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, FhirError> {
    let kind = kind_of(&kind)?;
    let (mut conn, client) = authenticated(&state, &req).await?;
    let body = json_body(&req, payload, MAX_RESOURCE_BYTES).await?;
    let if_none_exist = req
        .headers()
        .get("If-None-Exist")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let request_id = RequestId::of(&req);
    let caller = Caller {
        client: &client,
        request_id: &request_id,
    };
    let done = conn
        .transaction::<_, FhirError, _>(async |conn| {
            interactions::create(conn, caller, kind, &body, if_none_exist.as_deref(), None).await
        })
        .await?;
    Ok(answer(&done))
}

async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, FhirError> {
    let (kind, id) = path.into_inner();
    let kind = kind_of(&kind)?;
    let id = Uuid::parse_str(&id).map_err(|_| FhirError::bad_request("ids of this server are UUIDs").code("value"))?;
    let (mut conn, client) = authenticated(&state, &req).await?;
    let body = json_body(&req, payload, MAX_RESOURCE_BYTES).await?;
    let if_match = if_match(&req)?;
    let request_id = RequestId::of(&req);
    let caller = Caller {
        client: &client,
        request_id: &request_id,
    };
    let done = conn
        .transaction::<_, FhirError, _>(async |conn| {
            interactions::update(conn, caller, kind, id, &body, if_match).await
        })
        .await?;
    Ok(answer(&done))
}

async fn conditional_update(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, FhirError> {
    let kind = kind_of(&kind)?;
    let (mut conn, client) = authenticated(&state, &req).await?;
    let body = json_body(&req, payload, MAX_RESOURCE_BYTES).await?;
    let if_match = if_match(&req)?;
    let criteria = req.query_string().to_owned();
    let request_id = RequestId::of(&req);
    let caller = Caller {
        client: &client,
        request_id: &request_id,
    };
    let done = conn
        .transaction::<_, FhirError, _>(async |conn| {
            interactions::conditional_update(conn, caller, kind, &criteria, &body, if_match).await
        })
        .await?;
    Ok(answer(&done))
}

async fn delete() -> Result<HttpResponse, FhirError> {
    Err(FhirError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        "delete is not supported: clinical records are corrected, never deleted (ServiceRequest status revoked, Appointment status cancelled, PractitionerRole active false)",
    ))
}

async fn history() -> Result<HttpResponse, FhirError> {
    Err(FhirError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        "history is not kept: read the current version; outbound changes are read with _cursor",
    ))
}

async fn bundle(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, FhirError> {
    let (mut conn, client) = authenticated(&state, &req).await?;
    let body = json_body(&req, payload, MAX_BUNDLE_BYTES).await?;
    let request_id = RequestId::of(&req);
    let caller = Caller {
        client: &client,
        request_id: &request_id,
    };
    let response = super::bundle::run(&mut conn, caller, &body).await?;
    Ok(fhir_json(StatusCode::OK).body(response.to_string()))
}
