//! Every route of the gateway, listed once in [`configure`]. Handlers are thin: extract, authorise,
//! call a domain function, answer with a contract type.

use actix_web::web;

mod admin;

pub use admin::no_store as admin_no_store;
mod auth;
mod console;
mod extract;
mod ops;
mod paper_prescriptions;
mod tablet;
mod writes;

/// Which groups of routes a listener serves. Every listener has `/healthz` and `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Surface {
    /// The tablet contract (`/v1/…`, `/openapi.json`).
    pub tablet: bool,
    /// The admin console and its JSON routes (`/admin…`).
    pub admin: bool,
    /// `/metrics`.
    pub metrics: bool,
}

impl Surface {
    /// Everything on one listener (local tests and demos).
    pub const ALL: Self = Self {
        tablet: true,
        admin: true,
        metrics: true,
    };
    /// The console's own listener.
    pub const ADMIN: Self = Self {
        tablet: false,
        admin: true,
        metrics: false,
    };
    /// The supervision listener.
    pub const MONITORING: Self = Self {
        tablet: false,
        admin: false,
        metrics: true,
    };
}

/// Registers the routes of `surface`: a route a listener does not serve is not registered on it at
/// all, so that no spelling of its path can reach it there.
///
/// The router tries resources in the order they are registered: the tablet's come first, so that a
/// tablet request (the hot path) does not try the admin's dynamic patterns before its own (issue 16:
/// 5 % of the gateway's CPU on reads went to those tries). The two sets cannot overlap: every admin
/// path starts with `/admin`, no tablet path does.
pub fn configure(cfg: &mut web::ServiceConfig, surface: Surface) {
    ops::configure_health(cfg);
    if surface.tablet {
        ops::configure_openapi(cfg);
        auth::configure(cfg);
        tablet::configure(cfg);
        writes::configure(cfg);
    }
    if surface.metrics {
        ops::configure_metrics(cfg);
    }
    if surface.admin {
        admin::configure(cfg);
        console::configure(cfg);
    }
}
