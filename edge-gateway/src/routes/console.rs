//! The lab admin's web console at `/admin` (to be written).

use actix_web::web;

/// Registers the routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
