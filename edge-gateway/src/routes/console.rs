//! The lab admin's web console: the page at `/admin` (HTML, CSS and plain JS embedded in the binary,
//! no CDN, no build step) and the JSON routes only it needs. The page logs in and calls the JSON
//! admin routes with the session cookie and the CSRF token, as any console client would.
//!
//! The page and its assets are public (they hold no data: the login form is part of the page); every
//! JSON route takes [`AdminSession`] and answers problem+json on errors.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use labedge_service::error::ApiError;
use labedge_service::http::{RequestId, ValidatedQuery};
use serde::Deserialize;
use uuid::Uuid;
use validator::Validate;

use crate::audit::AuditEntry;
use crate::auth::admin::AdminSession;
use crate::state::AppState;
use crate::store::console as queries;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(["/admin", "/admin/"]).route(web::get().to(page)))
        .service(web::resource("/admin/assets/{name}").route(web::get().to(asset_file)))
        .service(web::resource("/admin/v1/history").route(web::get().to(history_route)))
        .service(web::resource("/admin/v1/devices/pending-pushes").route(web::get().to(pending_pushes)))
        .service(web::resource("/admin/v1/patients/{id}/access").route(web::get().to(patient_access)))
        .service(web::resource("/admin/v1/reconciliations").route(web::get().to(reconciliations)));
}

/// What the page may load and talk to: itself only. Data URIs for images are the QR codes.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An embedded file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: &str = include_str!("../../assets/admin/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../assets/admin/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/admin/console.js"),
    },
    Asset {
        name: "i18n.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/admin/i18n.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/admin/charts.js"),
    },
    Asset {
        name: "logo.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../assets/admin/logo.svg"),
    },
];

/// The response headers every console file carries.
fn console_file(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Small files on the lab's network: always revalidated, so an upgrade shows at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The console page (the login form when there is no session).
async fn page() -> HttpResponse {
    console_file("text/html; charset=utf-8", INDEX)
}

/// The page's scripts, style sheet and logo.
async fn asset_file(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name.as_str())
        .ok_or_else(ApiError::not_found)?;
    Ok(console_file(asset.content_type, asset.body))
}

/// The samples the charts draw: tablet requests, backlog and sync lag of the last hours.
async fn history_route(state: web::Data<AppState>, _session: AdminSession) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(state.history.view())
}

/// Writes of each tablet still waiting for the cloud.
async fn pending_pushes(state: web::Data<AppState>, _session: AdminSession) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(queries::pending_pushes(&mut conn).await?))
}

/// How many access records a page shows.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
struct AccessQuery {
    /// At most this many, newest first (default 200).
    #[validate(range(min = 1, max = 1000))]
    limit: Option<i64>,
}

/// Who accessed a patient's data, newest first. Reading this is itself an access to the patient's
/// record, so it is audited too (`patient.access_log.read`), committed before the answer.
async fn patient_access(
    state: web::Data<AppState>,
    session: AdminSession,
    id: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // After authentication: a caller without a session learns nothing from validation errors.
    let query = ValidatedQuery::<AccessQuery>::extract(&req).await?.0;
    let patient = id.into_inner();
    let lab = state.lab().await?;
    let mut conn = state.pool.get().await?;
    let records = queries::patient_access(&mut conn, lab.id, patient, query.limit.unwrap_or(200)).await?;
    drop(conn);
    state
        .audit
        .record(vec![AuditEntry {
            lab_id: lab.id,
            staff_id: Some(session.staff_id),
            device_id: None,
            action: "patient.access_log.read",
            patient_id: Some(patient),
            resource: None,
            request_id: Some(RequestId::of(&req)),
        }])
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(records))
}

/// The last ten reconciliations with the cloud (the nightly one and any run by hand).
async fn reconciliations(state: web::Data<AppState>, _session: AdminSession) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(queries::recent_reconciliations(&mut conn, 10).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_files() {
        for asset in ASSETS {
            assert!(
                INDEX.contains(&format!("/admin/assets/{}", asset.name)),
                "{} is not referenced by the page",
                asset.name
            );
        }
        for text in std::iter::once(INDEX).chain(ASSETS.iter().map(|a| a.body)) {
            // The SVG namespace is a name, not a download.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "no external resource"
            );
            assert!(!text.contains("innerHTML"), "data never goes through innerHTML");
        }
    }
}
