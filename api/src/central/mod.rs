//! The central IT team's view of every lab's gateway, and the reports it is made of.
//!
//! # Routes
//!
//! | route | who | answer |
//! |---|---|---|
//! | `POST /v1/labs/{lab}/status` | the lab's gateway (mutual TLS, see [`crate::feed::credential`]) | stores a [`GatewayReport`]; [`ReportReceipt`] |
//! | `GET /central/v1/gateways` | central IT (`Authorization: Bearer …`) | [`Overview`]: every lab's gateway |
//! | `GET /central` | anyone who can reach the API | the page that shows it (no data of its own) |
//!
//! # Access to `/central`
//!
//! The tokens of the central IT team are configured as their SHA-256 (hex) in
//! `central.tokens_sha256`; the API never holds a token itself. With no token configured, the whole
//! `/central` tree answers 404, as if it did not exist. A missing or unknown token answers 401
//! `invalid_token` (a problem document with `WWW-Authenticate: Bearer`) and is a security event
//! (`event.action = "central_refused"`). The page is a static shell: it asks for the token in a
//! form, keeps it in the browser tab's `sessionStorage`, and fetches the JSON with it every 15 s.
//!
//! # What a lab's state means
//!
//! The gateway reports its upstream mode (`online`, `failover`, `degraded`), its outbox backlog, the
//! age of its oldest unsent write and its feed lag at most once a minute. A gateway that cannot reach
//! any upstream cannot report either, so the view does not wait for it to say so: a gateway not heard
//! from for [`SILENT_AFTER_S`] seconds is shown `degraded` with `silent: true`, whatever it said last.
//! A lab whose gateway never made contact is `unknown`.

mod store;

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, post, web};
use base64::Engine as _;
use labedge_protocol::status::{GatewayReport, GatewayState, ReportReceipt};
use labedge_service::http::ProblemError;
use mobile_contracts::problem::{ErrorCode, Problem};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use validator::Validate;

use crate::ApiError;
use crate::config::CentralConfig;
use crate::feed::credential::authorized_body;
use crate::state::AppState;

/// Seconds without contact after which a gateway is shown degraded (three missed reports).
pub const SILENT_AFTER_S: i64 = 180;

/// Largest report body (a report is about a hundred bytes).
const MAX_REPORT_BYTES: usize = 4 * 1024;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/central").route(web::get().to(page)))
        .service(web::resource("/central/v1/gateways").route(web::get().to(gateways)))
        .service(report_status);
}

/// A lab's state as the view shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShownState {
    /// Reported online and heard from lately.
    Online,
    /// Reported on its fallback upstream and heard from lately.
    Failover,
    /// Reported degraded, or silent for [`SILENT_AFTER_S`] seconds.
    Degraded,
    /// Never heard from (or no valid credential).
    Unknown,
}

/// The state to show for a gateway that reported `reported` and was last heard from `age_s` ago.
pub fn shown_state(reported: Option<GatewayState>, age_s: Option<i64>) -> (ShownState, bool) {
    let Some(age) = age_s else {
        return (ShownState::Unknown, false);
    };
    if age > SILENT_AFTER_S {
        return (ShownState::Degraded, true);
    }
    let state = match reported {
        // In contact without a report yet (a report follows the first sync step): it reached the cloud.
        None | Some(GatewayState::Online) => ShownState::Online,
        Some(GatewayState::Failover) => ShownState::Failover,
        Some(GatewayState::Degraded) => ShownState::Degraded,
    };
    (state, false)
}

/// `GET /central/v1/gateways`.
#[derive(Clone, Debug, Serialize)]
pub struct Overview {
    /// When the figures were read (the database's clock).
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// Seconds without contact after which a gateway is shown degraded.
    pub silent_after_s: i64,
    /// Every lab's gateway, by lab code.
    pub gateways: Vec<GatewayView>,
}

/// One lab's gateway.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayView {
    /// The lab's code.
    pub lab: String,
    /// The lab's name.
    pub lab_name: String,
    /// What to show: see [`shown_state`].
    pub state: ShownState,
    /// What the gateway last said.
    pub reported_state: Option<GatewayState>,
    /// Not heard from for [`SILENT_AFTER_S`] seconds.
    pub silent: bool,
    /// Its last contact with the cloud.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_contact_at: Option<OffsetDateTime>,
    /// Seconds since then.
    pub last_contact_age_s: Option<i64>,
    /// Seconds since its last successful pull of the change feed, as reported.
    pub feed_lag_s: Option<i64>,
    /// Writes waiting in its outbox, as reported.
    pub backlog: Option<i64>,
    /// Age of the oldest of them in seconds, as reported.
    pub oldest_unsent_s: Option<i64>,
    /// The end of its credential's validity.
    #[serde(with = "time::serde::rfc3339::option")]
    pub cert_not_after: Option<OffsetDateTime>,
}

impl From<store::GatewayRow> for GatewayView {
    fn from(row: store::GatewayRow) -> Self {
        let reported = row.reported_state.as_deref().and_then(GatewayState::parse);
        let age = row.last_contact_age_s.map(|s| s.max(0.0).round() as i64);
        let (state, silent) = shown_state(reported, age);
        Self {
            lab: row.lab,
            lab_name: row.lab_name,
            state,
            reported_state: reported,
            silent,
            last_contact_at: row.last_contact_at,
            last_contact_age_s: age,
            feed_lag_s: row.reported_feed_lag_s,
            backlog: row.reported_backlog,
            oldest_unsent_s: row.reported_oldest_unsent_s,
            cert_not_after: row.cert_not_after,
        }
    }
}

/// Why a request to `/central` was refused (a fixed word, logged and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// A token whose hash is not configured.
    UnknownToken,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::UnknownToken => "unknown_token",
        }
    }
}

/// Whether `presented` (the header's value) carries one of the configured tokens. Every configured
/// hash is compared, in constant time.
fn token_accepted(config: &CentralConfig, presented: Option<&str>) -> Result<(), Refusal> {
    let token = presented
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or(Refusal::MissingToken)?;
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let mut found = subtle::Choice::from(0);
    for configured in &config.tokens_sha256 {
        found |= configured
            .trim()
            .to_ascii_lowercase()
            .as_bytes()
            .ct_eq(digest.as_bytes());
    }
    if bool::from(found) {
        Ok(())
    } else {
        Err(Refusal::UnknownToken)
    }
}

/// 404 when the view is not configured, 401 (and a security event) without a valid token.
fn check_access(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let config = &state.config.central;
    if config.tokens_sha256.is_empty() {
        return Err(ApiError::not_found());
    }
    let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    token_accepted(config, presented).map_err(|refusal| {
        crate::security::refused(req, "authentication", "central_refused", refusal.as_str());
        let challenge = match refusal {
            Refusal::MissingToken => "Bearer realm=\"labedge-central\"",
            Refusal::UnknownToken => "Bearer realm=\"labedge-central\", error=\"invalid_token\"",
        };
        ProblemError::new(ErrorCode::InvalidToken)
            .detail("a central IT token is required")
            .header(header::WWW_AUTHENTICATE, challenge)
            .into()
    })
}

/// Every lab's gateway, for central IT.
async fn gateways(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    check_access(&state, &req)?;
    let mut conn = state.pool.get().await?;
    let rows = store::overview(&mut conn).await?;
    let generated_at = rows.first().map_or_else(OffsetDateTime::now_utc, |row| row.now);
    let body = Overview {
        generated_at,
        silent_after_s: SILENT_AFTER_S,
        gateways: rows.into_iter().map(GatewayView::from).collect(),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

const PAGE_TEMPLATE: &str = include_str!("page.html");
const PAGE_STYLE: &str = include_str!("page.css");
const PAGE_SCRIPT: &str = include_str!("page.js");

/// The page, with its style and script inline, and the Content-Security-Policy that allows exactly
/// those two (by hash) and requests to this origin only.
fn page_parts() -> &'static (String, String) {
    static PAGE: OnceLock<(String, String)> = OnceLock::new();
    PAGE.get_or_init(|| {
        let hash = |text: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()));
        let html = PAGE_TEMPLATE
            .replace("/*STYLE*/", PAGE_STYLE)
            .replace("/*SCRIPT*/", PAGE_SCRIPT);
        let csp = format!(
            "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; connect-src 'self'; \
             img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
            hash(PAGE_STYLE),
            hash(PAGE_SCRIPT)
        );
        (html, csp)
    })
}

/// The central view's page: a static shell (it holds no data; it fetches the JSON with the token).
async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.config.central.tokens_sha256.is_empty() {
        return Err(ApiError::not_found());
    }
    let (html, csp) = page_parts();
    let mut response = HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(html.clone());
    if let Ok(value) = HeaderValue::from_str(csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Ok(response)
}

/// A gateway reports its state, backlog and lags; the cloud keeps the last report. The gateway is
/// authenticated before its body is read.
#[post("/v1/labs/{lab}/status")]
async fn report_status(
    state: web::Data<AppState>,
    lab: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (credential, report): (_, GatewayReport) =
        authorized_body(&state.pool, &req, &lab, payload, MAX_REPORT_BYTES).await?;
    report
        .validate()
        .map_err(|e| ProblemError::from(Problem::from_validation(&e)))?;
    let mut conn = state.pool.get().await?;
    let (recorded_at, previous) = store::record_report(&mut conn, credential.gateway_id, &report).await?;
    let state_name = report.state.as_str();
    metrics::counter!("labedge_gateway_reports_total", "state" => state_name).increment(1);
    if previous.as_deref() != Some(state_name) {
        tracing::info!(
            lab = %credential.lab_code,
            gateway.id = %credential.gateway_id,
            gateway.state = state_name,
            gateway.previous_state = previous.as_deref().unwrap_or(""),
            "gateway state changed"
        );
    }
    tracing::debug!(
        lab = %credential.lab_code,
        gateway.state = state_name,
        gateway.backlog = report.backlog,
        gateway.oldest_unsent_s = report.oldest_unsent_s,
        gateway.feed_lag_s = report.feed_lag_s,
        "gateway status recorded"
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ReportReceipt { recorded_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tokens: &[&str]) -> CentralConfig {
        CentralConfig {
            tokens_sha256: tokens
                .iter()
                .map(|t| hex::encode(Sha256::digest(t.as_bytes())).to_uppercase())
                .collect(),
        }
    }

    #[test]
    fn tokens_are_checked_by_their_hash() {
        let config = config(&["first-token", "second-token"]);
        assert_eq!(token_accepted(&config, Some("Bearer second-token")), Ok(()));
        assert_eq!(token_accepted(&config, Some("bearer first-token")), Ok(()));
        assert_eq!(
            token_accepted(&config, Some("Bearer other")),
            Err(Refusal::UnknownToken)
        );
        assert_eq!(
            token_accepted(&config, Some("Basic Zmlyc3QtdG9rZW4=")),
            Err(Refusal::MissingToken)
        );
        assert_eq!(token_accepted(&config, Some("Bearer ")), Err(Refusal::MissingToken));
        assert_eq!(token_accepted(&config, None), Err(Refusal::MissingToken));
    }

    #[test]
    fn silence_turns_any_report_into_degraded() {
        assert_eq!(shown_state(None, None), (ShownState::Unknown, false));
        assert_eq!(shown_state(None, Some(5)), (ShownState::Online, false));
        assert_eq!(
            shown_state(Some(GatewayState::Failover), Some(SILENT_AFTER_S)),
            (ShownState::Failover, false)
        );
        assert_eq!(
            shown_state(Some(GatewayState::Online), Some(SILENT_AFTER_S + 1)),
            (ShownState::Degraded, true)
        );
        assert_eq!(
            shown_state(Some(GatewayState::Degraded), Some(1)),
            (ShownState::Degraded, false)
        );
    }

    #[test]
    fn the_page_allows_exactly_its_own_style_and_script() {
        let (html, csp) = page_parts();
        assert!(html.contains(PAGE_SCRIPT) && html.contains(PAGE_STYLE));
        assert!(!html.contains("/*SCRIPT*/") && !html.contains("http://") && !html.contains("https://"));
        assert!(csp.contains("script-src 'sha256-") && !csp.contains("unsafe-inline"));
    }
}
