//! Every route of the gateway, listed once in [`configure`]. Handlers are thin: extract, authorise,
//! call a domain function, answer with a contract type.

use actix_web::web;

mod admin;
mod auth;
mod console;
mod ops;
mod tablet;
mod writes;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    ops::configure(cfg);
    auth::configure(cfg);
    admin::configure(cfg);
    tablet::configure(cfg);
    writes::configure(cfg);
    console::configure(cfg);
}
