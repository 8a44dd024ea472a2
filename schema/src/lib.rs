//! # labedge-schema
//!
//! The ground both LabEdge services stand on:
//!
//! - [`cloud`] and [`edge`]: the diesel schema of each database and its embedded migrations
//!   (`schema/migrations/cloud`, `schema/migrations/edge`). Each `schema.rs` is exactly what
//!   [`introspect::print_schema`] prints for a freshly migrated database; a test fails on drift, and
//!   `UPDATE_SCHEMA=1 cargo nextest run -p labedge-tests -E 'test(schema_rs)'` rewrites them.
//! - [`db`]: the connection pool and the migration runner.
//! - [`runtime`]: the service plumbing both binaries share: layered configuration, telemetry,
//!   TLS and certificates, Prometheus metrics, and the actix pieces that make every error an RFC 9457
//!   problem document.
//!
//! The project's top-level layout is fixed (one crate per folder), and this is the one crate both
//! services already depend on, so the shared service plumbing lives here rather than in a crate of
//! its own. Nothing here knows about routes or business rules.

pub mod cloud;
pub mod db;
pub mod edge;
pub mod introspect;
pub mod relay;
pub mod runtime;
pub mod status;
pub mod sync;
