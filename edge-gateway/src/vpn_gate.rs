//! The VPN gate: every request is checked against the networks allowed for its kind of route, by the
//! socket's peer address (`X-Forwarded-For` only when the peer is a configured trusted proxy).
//!
//! The kind of route is decided on the path exactly as the router will match it (percent-decoded
//! but for `%`, `/` and `+`), never on the raw path: `/%61dmin` routes to `/admin`, so it must be
//! gated as `/admin`. A raw path that percent-encodes an unreserved character (`%61` for `a`) is
//! refused outright: no client of ours writes one, and only a path trick needs it. A path of no known
//! kind gets the most restrictive class, the lab's own network. Where the production configs put the
//! console and `/metrics` on listeners of their own, the tablet listener has no such route at all
//! (see `startup`), and this gate is the second wall.

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};
use ipnet::IpNet;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;

use crate::config::AccessConfig;
use crate::security_events::{Action, SecurityEvent};
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
    /// Anything else: only the lab's network (`admin_ranges`), the most restrictive class, so that a
    /// path the prefixes above do not foresee cannot open a route to a wider network.
    Unknown,
}

impl RouteClass {
    /// The class of a path as the router matches it (see the module doc).
    pub fn of(path: &str) -> Self {
        match path {
            "/healthz" | "/readyz" => RouteClass::Health,
            "/metrics" => RouteClass::Metrics,
            "/openapi.json" => RouteClass::Tablet,
            p if p.starts_with("/v1/") => RouteClass::Tablet,
            p if p == "/admin" || p.starts_with("/admin/") => RouteClass::Admin,
            _ => RouteClass::Unknown,
        }
    }
}

/// Whether `ip` may reach a route of `class`.
pub fn allowed(config: &AccessConfig, class: RouteClass, ip: IpAddr) -> bool {
    let within = |ranges: &[IpNet]| ranges.iter().any(|net| net.contains(&ip));
    match class {
        RouteClass::Tablet => within(&config.tablet_ranges),
        RouteClass::Admin | RouteClass::Unknown => within(&config.admin_ranges),
        RouteClass::Metrics => within(&config.monitoring_ranges) || within(&config.admin_ranges),
        RouteClass::Health => {
            within(&config.monitoring_ranges) || within(&config.admin_ranges) || within(&config.tablet_ranges)
        }
    }
}

/// The address a request comes from: the socket's peer, or, when that peer is a trusted proxy, the
/// nearest address of `X-Forwarded-For` that is not one.
///
/// Addresses are canonicalised first: an IPv4 client on a dual-stack socket shows as
/// `::ffff:10.8.0.5`, which no IPv4 range contains, and must be checked as `10.8.0.5`.
pub fn client_ip(config: &AccessConfig, req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    let trusted = |ip: &IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let hops: Vec<IpAddr> = forwarded
        .split(',')
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    Some(hops.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer))
}

/// The gate, as an `App::wrap(from_fn(vpn_gate))` middleware.
pub async fn vpn_gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        if encodes_unreserved(req.path()) {
            state.security.emit(
                SecurityEvent::failure(Action::PeerRefused, "encoded_path")
                    .source(client_ip(&state.config.access, req.request())),
            );
            return Err(ProblemError::new(ErrorCode::BadRequest)
                .detail("the path percent-encodes a character that needs no encoding")
                .into());
        }
        let class = RouteClass::of(req.match_info().as_str());
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

/// Whether a raw path percent-encodes an unreserved character (RFC 3986 §2.3: letters, digits,
/// `-`, `.`, `_`, `~`), which a normalising router treats as the character itself.
pub fn encodes_unreserved(raw_path: &str) -> bool {
    let bytes = raw_path.as_bytes();
    bytes.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
    })
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
        assert_eq!(RouteClass::of("/administrator"), RouteClass::Unknown);
        assert!(!allowed(&config, RouteClass::of("/administrator"), tablet));
        assert!(!allowed(&config, RouteClass::of("//admin/v1/devices"), tablet));
        assert!(
            allowed(&config, RouteClass::of("/v1/../admin"), tablet),
            "the router does not resolve dots"
        );
    }

    #[test]
    fn encoded_unreserved_characters_are_spotted() {
        assert!(encodes_unreserved("/%61dmin"));
        assert!(encodes_unreserved("/v1/%2e%2e/admin"));
        assert!(encodes_unreserved("/%6Detrics"));
        assert!(encodes_unreserved("/x%7E"));
        assert!(!encodes_unreserved("/v1/patients/search"));
        assert!(!encodes_unreserved("/v1/a%20b"));
        assert!(!encodes_unreserved("/admin%2Fv1"));
        assert!(!encodes_unreserved("/trailing%"));
        assert!(!encodes_unreserved("/%zz"));
    }
}
