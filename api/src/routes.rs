//! Every route of the API, listed once in [`configure`].

use actix_web::{HttpResponse, get, web};
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use labedge_service::http::{ProblemError, metrics_response};
use mobile_contracts::ops::{DatabaseRole, Health, Readiness, ReadinessCheck};
use mobile_contracts::problem::ErrorCode;

use crate::state::AppState;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
    crate::feed::configure(cfg);
    crate::intake::routes::configure(cfg);
    crate::central::configure(cfg);
    crate::fhir::configure(cfg);
}

/// Liveness: the process answers.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        service: "api".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[derive(diesel::QueryableByName)]
struct Recovery {
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
}

/// Readiness: the database answers, and whether it is the primary or a standby. The load balancer
/// sends writes only to an instance whose database is the primary; a gateway fails over only to an
/// upstream that says `primary`.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let role = async {
        let mut conn = state.pool.get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT pg_is_in_recovery() AS in_recovery")
            .get_result::<Recovery>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let (ready, role, check) = match role {
        Ok(r) => {
            let role = if r.in_recovery {
                DatabaseRole::Standby
            } else {
                DatabaseRole::Primary
            };
            (
                true,
                Some(role),
                ReadinessCheck {
                    name: "database".into(),
                    ok: true,
                    detail: None,
                },
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (
                false,
                None,
                ReadinessCheck {
                    name: "database".into(),
                    ok: false,
                    detail: Some("unreachable".into()),
                },
            )
        }
    };
    let body = Readiness {
        ready,
        role,
        checks: vec![check],
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics, to the supervision's networks only (`monitoring.ranges`).
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>, req: actix_web::HttpRequest) -> Result<HttpResponse, ProblemError> {
    let peer = req.peer_addr().map(|addr| addr.ip().to_canonical());
    let allowed = peer.is_some_and(|ip| state.config.monitoring.ranges.iter().any(|net| net.contains(&ip)));
    if !allowed {
        crate::security::refused(&req, "network", "peer_refused", "outside_allowed_networks");
        return Err(ProblemError::new(ErrorCode::PeerNotAllowed).detail("this address may not read the metrics"));
    }
    Ok(metrics_response(&state.metrics))
}
