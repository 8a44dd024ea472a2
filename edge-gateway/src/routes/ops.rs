//! Operations routes: health, readiness, metrics, the OpenAPI document.

use actix_web::{HttpResponse, web};
use labedge_service::http::metrics_response;
use mobile_contracts::ops::{Health, Readiness, ReadinessCheck};
use mobile_contracts::routes;

use crate::state::AppState;

/// Registers liveness and readiness (every listener has them).
pub fn configure_health(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(routes::HEALTHZ).route(web::get().to(healthz)))
        .service(web::resource(routes::READYZ).route(web::get().to(readyz)));
}

/// Registers `/metrics`.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(routes::METRICS).route(web::get().to(metrics)));
}

/// Registers the tablet contract's OpenAPI document.
pub fn configure_openapi(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(routes::OPENAPI_JSON).route(web::get().to(openapi)));
}

/// Liveness: the process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        service: "edge-gateway".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the lab's database answers and will not lose a committed write (a gateway whose
/// PostgreSQL runs with `fsync` or `synchronous_commit` off could acknowledge a collection and lose
/// it in a power cut, so it reports itself not ready). Redis is reported but optional.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let durability = async {
        let mut conn = state.pool.get().await.map_err(|e| e.to_string())?;
        crate::store::database::durability(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let mut checks = Vec::new();
    match durability {
        Ok(d) => {
            checks.push(ReadinessCheck {
                name: "database".into(),
                ok: true,
                detail: None,
            });
            let durable = d.fsync == "on" && d.synchronous_commit != "off";
            checks.push(ReadinessCheck {
                name: "durability".into(),
                ok: durable,
                detail: (!durable).then(|| {
                    format!(
                        "fsync={} synchronous_commit={}: acknowledged writes could be lost",
                        d.fsync, d.synchronous_commit
                    )
                }),
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            checks.push(ReadinessCheck {
                name: "database".into(),
                ok: false,
                detail: Some("unreachable".into()),
            });
        }
    }
    // Stopping (SIGTERM): not ready, whatever the database says, so that traffic goes elsewhere
    // before the listener closes.
    if std::sync::atomic::AtomicBool::load(&state.shutting_down, std::sync::atomic::Ordering::Acquire) {
        checks.push(ReadinessCheck {
            name: "shutdown".into(),
            ok: false,
            detail: Some("stopping: draining before the listener closes".into()),
        });
    }
    let ready = checks.iter().all(|c| c.ok);
    // Redis is optional: reported, never a reason to be unready.
    let redis_ok = state.redis.ping().await;
    checks.push(ReadinessCheck {
        name: "redis".into(),
        ok: redis_ok,
        detail: (!redis_ok).then(|| "unreachable: serving from PostgreSQL".into()),
    });
    let body = Readiness {
        ready,
        role: None,
        checks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics_response(&state.metrics)
}

/// The tablet API's OpenAPI 3.1 document (the committed `mobile-contracts/openapi.json`).
async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.to_string())
}
