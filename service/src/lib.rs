//! # labedge-service
//!
//! The skeleton both LabEdge binaries (`api`, `edge-gateway`) are built on; nothing here knows about
//! routes or business rules.
//!
//! - [`config`]: typed, layered configuration (defaults, file, environment) with its shared sections,
//!   validation that names every bad key, and rendering with secrets redacted.
//! - [`cli`]: what every command line does before and after its command (load the config, exit
//!   codes, `check-config`, the async runtime).
//! - [`startup`]: why a service did not start, and the pending-migrations check of `serve`.
//! - [`server`], [`tls`], [`pki`]: binding listeners with rustls, certificates and their authorities.
//! - [`error`], [`http`]: the one `ApiError` and the extractors that make every error an RFC 9457
//!   problem document.
//! - [`telemetry`], [`metrics`]: logs and Prometheus metrics.
//! - [`secrets`]: hashes of PINs and passwords, random tokens.
//! - [`workers`]: the background workers of a serving process, stopped and awaited after the HTTP
//!   drain.
//!
//! It depends on `labedge-schema` (the pool and migrations it checks) and never the other way
//! round: the database crate builds without a server.

pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pki;
pub mod secrets;
pub mod server;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod workers;
