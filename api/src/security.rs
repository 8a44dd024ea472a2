//! The API's refusals that are security events and name no more than the address that asked: one
//! JSON line with `target = "security"` for the SIEM, and `labedge_security_events_total`.

use actix_web::HttpRequest;

/// Records a refused request: `action` and `reason` are label values documented in `docs/metrics.md`.
pub fn refused(req: &HttpRequest, category: &'static str, action: &'static str, reason: &'static str) {
    // An IPv4 client on a dual-stack socket is logged as itself, not as `::ffff:a.b.c.d`.
    let source = req
        .peer_addr()
        .map(|a| a.ip().to_canonical().to_string())
        .unwrap_or_default();
    tracing::event!(
        target: "security",
        tracing::Level::WARN,
        event.kind = "security",
        event.category = category,
        event.action = action,
        event.outcome = "failure",
        event.reason = reason,
        source.ip = %source,
        "security event"
    );
    metrics::counter!(
        "labedge_security_events_total",
        "action" => action,
        "outcome" => "failure",
        "reason" => reason
    )
    .increment(1);
}
