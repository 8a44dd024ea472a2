//! The VPN gate: every request is checked against the networks allowed for its kind of route, by the
//! socket's peer address (`X-Forwarded-For` only when the peer is a configured trusted proxy).

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};
use ipnet::IpNet;
use labedge_schema::runtime::http::ProblemError;
use mobile_contracts::problem::ErrorCode;

use crate::config::AccessConfig;
use crate::security::{Action, SecurityEvent};
use crate::state::AppState;

/// Which networks a route is open to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    /// `/v1/…`, `/openapi.json`: the tablets' VPN.
    Tablet,
    /// `/admin…`: the lab's network.
    Admin,
    /// `/metrics`: supervision.
    Metrics,
    /// `/healthz`, `/readyz`: any of the above.
    Health,
}

impl RouteClass {
    /// The class of a request path.
    pub fn of(path: &str) -> Self {
        match path {
            "/healthz" | "/readyz" => RouteClass::Health,
            "/metrics" => RouteClass::Metrics,
            p if p == "/admin" || p.starts_with("/admin/") => RouteClass::Admin,
            _ => RouteClass::Tablet,
        }
    }
}

/// Whether `ip` may reach a route of `class`.
pub fn allowed(config: &AccessConfig, class: RouteClass, ip: IpAddr) -> bool {
    let within = |ranges: &[IpNet]| ranges.iter().any(|net| net.contains(&ip));
    match class {
        RouteClass::Tablet => within(&config.tablet_ranges),
        RouteClass::Admin => within(&config.admin_ranges),
        RouteClass::Metrics => within(&config.monitoring_ranges) || within(&config.admin_ranges),
        RouteClass::Health => {
            within(&config.monitoring_ranges) || within(&config.admin_ranges) || within(&config.tablet_ranges)
        }
    }
}

/// The address a request comes from: the socket's peer, or, when that peer is a trusted proxy, the
/// nearest address of `X-Forwarded-For` that is not one.
pub fn client_ip(config: &AccessConfig, req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = |ip: &IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let hops: Vec<IpAddr> = forwarded.split(',').filter_map(|hop| hop.trim().parse().ok()).collect();
    Some(hops.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer))
}

/// The gate, as an `App::wrap(from_fn(vpn_gate))` middleware.
pub async fn vpn_gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        let class = RouteClass::of(req.path());
        let ip = client_ip(&state.config.access, req.request());
        if !ip.is_some_and(|ip| allowed(&state.config.access, class, ip)) {
            state
                .security
                .emit(SecurityEvent::failure(Action::PeerRefused, "outside_allowed_networks").source(ip));
            return Err(ProblemError::new(ErrorCode::PeerNotAllowed)
                .detail("this address may not reach this route")
                .into());
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classed_and_gated() {
        let config = AccessConfig {
            tablet_ranges: vec!["10.8.0.0/16".parse().expect("net")],
            admin_ranges: vec!["192.168.10.0/24".parse().expect("net")],
            monitoring_ranges: vec!["172.16.5.0/24".parse().expect("net")],
            trusted_proxies: vec![],
        };
        let tablet: IpAddr = "10.8.1.2".parse().expect("ip");
        let admin: IpAddr = "192.168.10.7".parse().expect("ip");
        let monitor: IpAddr = "172.16.5.9".parse().expect("ip");
        let outsider: IpAddr = "203.0.113.9".parse().expect("ip");
        assert!(allowed(&config, RouteClass::of("/v1/patients"), tablet));
        assert!(!allowed(&config, RouteClass::of("/v1/patients"), admin));
        assert!(!allowed(&config, RouteClass::of("/admin/v1/devices"), tablet));
        assert!(allowed(&config, RouteClass::of("/admin"), admin));
        assert!(allowed(&config, RouteClass::of("/metrics"), monitor));
        assert!(!allowed(&config, RouteClass::of("/metrics"), tablet));
        assert!(allowed(&config, RouteClass::of("/healthz"), tablet));
        assert!(!allowed(&config, RouteClass::of("/healthz"), outsider));
        assert_eq!(RouteClass::of("/administrator"), RouteClass::Tablet);
    }
}
