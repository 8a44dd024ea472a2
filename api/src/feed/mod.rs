//! The gateway-facing sync API: change feed, snapshots, checksums (to be written).

use actix_web::web;

/// Registers the feed routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
