//! The central IT team's view of every gateway (to be written).

use actix_web::web;

/// Registers the routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
