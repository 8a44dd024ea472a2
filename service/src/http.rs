//! The actix pieces both services share: every error as an RFC 9457 problem document, the
//! validating extractors, and the per-request telemetry (request id, span, duration histogram).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use mobile_contracts::i18n::Lang;
use mobile_contracts::problem::{ErrorCode, FieldError, PROBLEM_JSON, Problem};
use serde::de::DeserializeOwned;
use tracing::Instrument;
use validator::Validate;

/// Response header carrying the request id (also accepted from the client when well formed).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Builds the HTTP response of a problem document, in English. The problem rides along in the
/// response's extensions so that [`localize_problems`] can write it again in the language the
/// request asked for, wherever in the stack the answer was made.
pub fn problem_response(problem: &Problem) -> HttpResponse {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_LANGUAGE, Lang::En.tag()))
        .json(problem);
    response.extensions_mut().insert(problem.clone());
    response
}

/// The language a request's `Accept-Language` asks for (English when absent or unsupported).
pub fn request_lang(req: &HttpRequest) -> Lang {
    Lang::negotiate(req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

/// Every problem answer in the language of the request's `Accept-Language` (French or English),
/// as an `App::wrap(from_fn(localize_problems))` middleware placed just inside
/// [`request_telemetry`], so that it also sees the refusals of the middlewares (VPN gate, 405)
/// and not only the handlers'. Its `title`, `detail` and field messages change
/// ([`Problem::localized`]); its `type`, `code`, `status` and pointers never do. The answer says
/// `Content-Language` and `Vary: Accept-Language`.
///
/// Done here, once, rather than by each handler: an error is turned into its response where no
/// request is at hand (`ResponseError::error_response`), and a handler that forgot would answer
/// in English.
pub async fn localize_problems(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let lang = request_lang(req.request());
    match next.call(req).await {
        Ok(res) => {
            let problem = res.response().extensions().get::<Problem>().cloned();
            Ok(res.map_body(|head, body| localize_body(head, body, problem, lang)))
        }
        Err(error) => {
            // Kept an error, so that the layers outside see it as they did; only its answer changes.
            let response = error.error_response();
            let problem = response.extensions().get::<Problem>().cloned();
            let response = response.map_body(|head, body| localize_body(head, body, problem, lang));
            Err(actix_web::error::InternalError::from_response(LocalizedRefusal(error.to_string()), response).into())
        }
    }
}

/// The body of a response in `lang`: a problem's written again, anything else untouched.
fn localize_body(
    head: &mut actix_http::ResponseHead,
    body: impl MessageBody + 'static,
    problem: Option<Problem>,
    lang: Lang,
) -> BoxBody {
    let Some(problem) = problem else {
        return body.boxed();
    };
    head.headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept-language"));
    if lang == Lang::En {
        return body.boxed();
    }
    let Ok(json) = serde_json::to_vec(&problem.localized(lang)) else {
        return body.boxed();
    };
    head.headers_mut()
        .insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
    // The English body may have been compressed on the way out; this one is not.
    head.headers_mut().remove(header::CONTENT_ENCODING);
    BoxBody::new(json)
}

/// A middleware's refusal, answered in the request's language by [`localize_problems`].
#[derive(Debug)]
struct LocalizedRefusal(String);

impl fmt::Display for LocalizedRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An error that is already a problem document, with the headers its answer needs
/// (`WWW-Authenticate`, `Retry-After`, `Clear-Site-Data`): what the shared extractors, the
/// authentication layer and the handlers return.
#[derive(Clone)]
pub struct ProblemError {
    /// The problem.
    pub problem: Box<Problem>,
    /// Extra response headers.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ProblemError {
    /// A problem with this code and its default status and title.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            problem: Box::new(Problem::new(code)),
            headers: Vec::new(),
        }
    }
    /// Adds a detail sentence (never personal data).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.problem.detail = Some(detail.into());
        self
    }
    /// Adds field errors.
    pub fn errors(mut self, errors: Vec<FieldError>) -> Self {
        self.problem.errors = errors;
        self
    }
    /// Adds a response header.
    pub fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }
    /// Adds `Retry-After: seconds`.
    pub fn retry_after(self, seconds: u64) -> Self {
        self.header(header::RETRY_AFTER, &seconds.max(1).to_string())
    }
}

impl From<Problem> for ProblemError {
    fn from(problem: Problem) -> Self {
        Self {
            problem: Box::new(problem),
            headers: Vec::new(),
        }
    }
}

impl fmt::Debug for ProblemError {
    // Only the code and detail: the detail is written by us and never holds submitted values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProblemError({:?}, {:?})", self.problem.code, self.problem.detail)
    }
}

impl fmt::Display for ProblemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.problem.title)
    }
}

impl ResponseError for ProblemError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = problem_response(&self.problem);
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }
}

/// Largest JSON body a route accepts (app data; the default is the listener's `max_body_bytes`).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// A JSON body, deserialised and validated: 415 for another content type, 413 for an oversized body
/// (refused from its `Content-Length` before reading it), 400 for malformed JSON, 422 for values that
/// break the contract, each naming the field by JSON pointer and never echoing a submitted value.
#[derive(Debug)]
pub struct ValidatedJson<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for ValidatedJson<T> {
    type Error = ProblemError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ProblemError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        if let Err(problem) = check_json_headers(req, limit) {
            return Box::pin(async move { Err(problem) });
        }
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body(payload, limit).await?;
            let value: T = parse_json(&body)?;
            value
                .validate()
                .map_err(|e| ProblemError::from(Problem::from_validation(&e)))?;
            Ok(ValidatedJson(value))
        })
    }
}

/// Grace a body has before it must keep up [`BODY_MIN_BYTES_PER_S`] (issue 9: slow clients).
pub const BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// The slowest average rate a body may arrive at once [`BODY_GRACE`] is spent: 1 KiB/s, which any
/// real network beats, where a client trickling one byte every few seconds falls far behind.
pub const BODY_MIN_BYTES_PER_S: usize = 1024;

/// Reads a whole body, refusing it (413) as soon as it grows past `limit`, and (400, connection
/// closed) when it arrives slower than [`BODY_MIN_BYTES_PER_S`] after [`BODY_GRACE`].
///
/// Fix (issue 9): actix's `client_request_timeout` bounds only the request head; without this
/// deadline a client sending its body one byte every few seconds held a connection and a worker's
/// handler open indefinitely.
pub async fn read_body(mut payload: Payload, limit: usize) -> Result<web::Bytes, ProblemError> {
    let started = std::time::Instant::now();
    let mut body = web::BytesMut::new();
    loop {
        let allowed = BODY_GRACE + std::time::Duration::from_secs((body.len() / BODY_MIN_BYTES_PER_S) as u64);
        let left = allowed.saturating_sub(started.elapsed());
        let Ok(next) = actix_web::rt::time::timeout(left, payload.next()).await else {
            return Err(ProblemError::new(ErrorCode::BadRequest)
                .detail("the request body arrived too slowly")
                .header(header::CONNECTION, "close"));
        };
        let Some(chunk) = next else { break };
        let chunk =
            chunk.map_err(|_| ProblemError::new(ErrorCode::BadRequest).detail("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Checks a JSON body's headers: its content type, and its declared length against `limit`.
pub fn check_json_headers(req: &HttpRequest, limit: usize) -> Result<(), ProblemError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(ProblemError::new(ErrorCode::UnsupportedMediaType).detail("the body must be application/json"));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(limit));
    }
    Ok(())
}

fn too_large(limit: usize) -> ProblemError {
    ProblemError::new(ErrorCode::PayloadTooLarge).detail(format!("the body is larger than {limit} bytes"))
}

/// Parses JSON into `T`, turning serde's error into a problem naming the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProblemError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let pointer = pointer_of(e.path());
        json_problem(e.inner(), pointer)
    })?;
    deserializer.end().map_err(|e| json_problem(&e, String::new()))?;
    Ok(value)
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => pointer.push_str(variant),
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

fn json_problem(error: &serde_json::Error, mut pointer: String) -> ProblemError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ProblemError::new(ErrorCode::MalformedJson).detail(format!(
            "the body is not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        )),
        Category::Data => {
            let message = error.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            // serde_path_to_error puts an unknown field in the path but not a missing one.
            let code = if backticked_after(message, "unknown field `").is_some() {
                "unknown_field"
            } else if let Some(name) = backticked_after(message, "missing field `") {
                pointer.push('/');
                pointer.push_str(&name);
                "required"
            } else {
                "invalid"
            };
            let field = FieldError {
                pointer: if pointer.is_empty() { "/".into() } else { pointer },
                code: code.into(),
                message: redact_quoted(message),
            };
            ProblemError::new(ErrorCode::ValidationFailed)
                .detail("the body does not match the contract")
                .errors(vec![field])
        }
    }
}

fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next().map(str::to_owned)
}

/// serde quotes the offending value (`invalid type: string "Dupont", expected …`): drop it, it
/// may be personal data.
///
/// Fix: an unknown enum variant is quoted in backticks instead (``unknown variant `Dupont`,
/// expected one of `nurse`, …``), and went back to the client as sent; it is dropped too. The
/// backticks of field names (``unknown field `lab_id` ``) stay: they name the contract's fields.
fn redact_quoted(message: &str) -> String {
    const VARIANT: &str = "unknown variant `";
    // The value may hold backticks and commas itself; what follows it is serde's own words, with
    // the contract's variant names.
    if let Some(rest) = message.strip_prefix(VARIANT)
        && let Some(end) = rest
            .rfind("`, expected ")
            .or_else(|| rest.rfind("`, there are no variants"))
    {
        return format!("unknown variant (value){}", &rest[end + 1..]);
    }
    let mut out = String::with_capacity(message.len());
    let mut in_quotes = false;
    for c in message.chars() {
        if c == '"' {
            if !in_quotes {
                out.push_str("(value)");
            }
            in_quotes = !in_quotes;
        } else if !in_quotes {
            out.push(c);
        }
    }
    out
}

/// An optional JSON body: `None` when the request has no body at all; a body that is sent must be
/// valid JSON of the contract, exactly as for [`ValidatedJson`] (never silently ignored).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for OptionalJson<T> {
    type Error = ProblemError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ProblemError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
            && !req.headers().contains_key(header::TRANSFER_ENCODING);
        if empty {
            return Box::pin(async { Ok(OptionalJson(None)) });
        }
        let inner = ValidatedJson::<T>::from_request(req, payload);
        Box::pin(async move { inner.await.map(|body| OptionalJson(Some(body.0))) })
    }
}

/// Query parameters, deserialised and validated like [`ValidatedJson`]: 400 for a malformed query,
/// 422 for values out of the contract.
#[derive(Debug)]
pub struct ValidatedQuery<T>(pub T);

impl<T: DeserializeOwned + Validate> FromRequest for ValidatedQuery<T> {
    type Error = ProblemError;
    type Future = std::future::Ready<Result<Self, ProblemError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(ValidatedQuery))
    }
}

/// Parses and validates a query string.
pub fn parse_query<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ProblemError> {
    let value: T = serde_urlencoded_lite(query)?;
    value
        .validate()
        .map_err(|e| ProblemError::from(Problem::from_validation(&e)))?;
    Ok(value)
}

fn serde_urlencoded_lite<T: DeserializeOwned>(query: &str) -> Result<T, ProblemError> {
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| {
            let message = redact_quoted(&e.to_string());
            let (pointer, code) = match backticked_after(
                message.trim_start_matches("Query deserialize error: "),
                "missing field `",
            ) {
                Some(name) => (format!("/{name}"), "required"),
                None => (
                    culprit::<T>(query).map_or_else(|| "/".to_owned(), |name| format!("/{name}")),
                    "invalid",
                ),
            };
            ProblemError::new(ErrorCode::ValidationFailed)
                .detail("the query string does not match the contract")
                .errors(vec![FieldError {
                    pointer,
                    code: code.into(),
                    message,
                }])
        })
}

/// The parameter that makes `query` fail to deserialise, found by leaving each out in turn.
///
/// Fix (issue 9): serde_urlencoded's errors ("invalid digit found in string") do not say which
/// parameter was wrong, so the problem pointed at `/`. Only a plain parameter name is returned,
/// never anything else the client sent.
fn culprit<T: DeserializeOwned>(query: &str) -> Option<String> {
    let parts: Vec<&str> = query.split('&').collect();
    (0..parts.len()).find_map(|i| {
        let rest: Vec<&str> = parts
            .iter()
            .enumerate()
            .filter_map(|(j, part)| (j != i).then_some(*part))
            .collect();
        let fixed = match web::Query::<T>::from_query(&rest.join("&")) {
            Ok(_) => true,
            Err(e) => e.to_string().contains("missing field `"),
        };
        let name = parts[i].split('=').next().unwrap_or("");
        (fixed && !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .then(|| name.to_owned())
    })
}

/// Path segments that do not parse (a malformed id) answer 404: no such resource.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ProblemError::new(ErrorCode::NotFound).into())
}

/// The answer to a route nobody serves.
pub async fn not_found() -> Result<HttpResponse, ProblemError> {
    Err(ProblemError::new(ErrorCode::NotFound))
}

/// Turns actix's bare `405 Method Not Allowed` (a known path, a method it has no route for) into a
/// `method_not_allowed` problem document, keeping the `Allow` header actix computed from the
/// resource's routes. Register routes as `web::resource(path).route(web::get().to(handler))`, not
/// with the `#[get]` macros: a macro route guards the whole resource on its method, so another
/// method falls through to [`not_found`] (404) instead of reaching the resource's 405.
pub async fn method_not_allowed_problem(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let already_a_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if res.status() != StatusCode::METHOD_NOT_ALLOWED || already_a_problem {
        return Ok(res.map_into_boxed_body());
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut response = problem_response(&Problem::new(ErrorCode::MethodNotAllowed));
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(ServiceResponse::new(req, response).map_into_boxed_body())
}

/// The request id of the current request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id of `req` (set by [`request_telemetry`]); empty outside of it.
    pub fn of(req: &HttpRequest) -> String {
        req.extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default()
    }
}

/// A client's request id, kept only when it is a UUID (written back in its canonical form). It goes
/// into logs and audit records: free text there could carry a patient's name or NIR, or mimic another
/// request's id; a UUID can do neither.
fn incoming_request_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let id = uuid::Uuid::try_parse(value).ok().filter(|id| !id.is_nil())?;
    Some(id.hyphenated().to_string())
}

/// The method as a metric label and log field: a client may send any token as a method, and each
/// new one would be a new series; those outside the standard set are all `OTHER`.
fn method_label(method: &actix_web::http::Method) -> String {
    use actix_web::http::Method;
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(method) {
        method.as_str().to_owned()
    } else {
        "OTHER".to_owned()
    }
}

/// Per-request telemetry, as an `App::wrap(from_fn(request_telemetry))` middleware: a request id
/// (the client's when well formed, else a new UUID v7), a `request` span that every log line of the
/// request carries, the `labedge_http_request_duration_seconds` histogram by route pattern (never the
/// raw path: no ids in labels), method and status, and one log line per request.
pub async fn request_telemetry(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = incoming_request_id(&req).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = method_label(req.method());
    let span = tracing::info_span!("request", request_id = %request_id);
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let (status, route) = match &result {
        Ok(res) => (res.status(), res.request().match_pattern()),
        Err(e) => (e.as_response_error().status_code(), None),
    };
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    metrics::histogram!(
        "labedge_http_request_duration_seconds",
        "route" => route.clone(),
        "method" => method.clone(),
        "status" => status.as_u16().to_string()
    )
    .record(elapsed.as_secs_f64());
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(http.method = %method, http.route = %route, http.status = status.as_u16(), duration_ms, "request failed");
        } else if status.is_client_error() {
            tracing::info!(http.method = %method, http.route = %route, http.status = status.as_u16(), duration_ms, "request refused");
        } else {
            tracing::debug!(http.method = %method, http.route = %route, http.status = status.as_u16(), duration_ms, "request served");
        }
    });
    result.map(|mut res| {
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            res.headers_mut()
                .insert(header::HeaderName::from_static(REQUEST_ID_HEADER), value);
        }
        res
    })
}

/// The `GET /metrics` answer: the Prometheus text of the process's recorder.
pub fn metrics_response(handle: &metrics_exporter_prometheus::PrometheusHandle) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[expect(dead_code, reason = "only its deserialisation is tested")]
        name: String,
        #[expect(dead_code, reason = "only its deserialisation is tested")]
        items: Vec<u32>,
    }

    #[test]
    fn unknown_fields_are_named_and_values_never_echoed() {
        let err = parse_json::<Body>(br#"{"name":"Dupont","items":[],"lab_id":"x"}"#).expect_err("unknown field");
        assert_eq!(err.problem.errors[0].pointer, "/lab_id");
        assert_eq!(err.problem.errors[0].code, "unknown_field");
        let err = parse_json::<Body>(br#"{"name":"Dupont","items":[1,"Martin"]}"#).expect_err("bad type");
        assert_eq!(err.problem.errors[0].pointer, "/items/1");
        assert!(!format!("{:?}", err.problem).contains("Martin"), "{:?}", err.problem);
        let err = parse_json::<Body>(br#"{"items":[]}"#).expect_err("missing");
        assert_eq!(err.problem.errors[0].pointer, "/name");
        assert_eq!(err.problem.status, 422);
    }

    #[test]
    fn an_unknown_variant_is_not_echoed() {
        #[derive(Debug, serde::Deserialize, Validate)]
        #[serde(deny_unknown_fields)]
        struct Pick {
            #[expect(dead_code, reason = "only its deserialisation is tested")]
            role: Role,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Role {
            Nurse,
            LabAdmin,
        }
        let err = parse_json::<Pick>(br#"{"role":"Dupont`, 1"}"#).expect_err("unknown variant");
        let message = &err.problem.errors[0].message;
        assert!(!message.contains("Dupont"), "{message}");
        assert_eq!(message, "unknown variant (value), expected `nurse` or `lab_admin`");
        assert_eq!(err.problem.errors[0].pointer, "/role");
        let err = parse_json::<Pick>(br#"{"role":"Martin"}"#).expect_err("unknown variant");
        assert!(!err.problem.errors[0].message.contains("Martin"));
    }

    #[test]
    fn malformed_and_deep_json_is_a_400() {
        let err = parse_json::<Body>(b"{\"name\":").expect_err("eof");
        assert_eq!(err.problem.status, 400);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse_json::<serde_json::Value>(deep.as_bytes()).expect_err("deep");
        assert_eq!(err.problem.status, 400);
        let err = parse_json::<Body>(deep.as_bytes()).expect_err("deep");
        assert!((400..500).contains(&err.problem.status));
        let err = parse_json::<Body>(b"{\"name\":\"\xff\xfe\",\"items\":[]}").expect_err("utf8");
        assert_eq!(err.problem.status, 400);
    }
}
