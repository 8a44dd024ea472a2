//! Service plumbing shared by `api` and `edge-gateway`.

pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pki;
pub mod secrets;
pub mod server;
pub mod telemetry;
pub mod tls;
