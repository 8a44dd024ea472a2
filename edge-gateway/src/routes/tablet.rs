//! Tablet reads and the delta pull (to be written).

use actix_web::web;

/// Registers the routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
