//! # labedge-schema
//!
//! The data model both LabEdge services stand on, and nothing else:
//!
//! - [`cloud`] and [`edge`]: the diesel schema of each database and its embedded migrations
//!   (`schema/migrations/cloud`, `schema/migrations/edge`). Each `schema.rs` is exactly what
//!   [`introspect::print_schema`] prints for a freshly migrated database; a test fails on drift, and
//!   `UPDATE_SCHEMA=1 cargo nextest run -p labedge-tests -E 'test(schema_rs)'` rewrites them.
//! - [`db`]: the connection pool and the migration runner.
//! - [`sync`]: the entities a gateway follows from the cloud, and the rows both databases share.
//!
//! No HTTP server, client, Redis or configuration loading here: the service plumbing is in
//! `labedge-service`, and the gateway-to-cloud wire types are in `labedge-protocol`. The pool takes
//! its settings ([`db::PoolSettings`]) from whoever loaded the configuration.

pub mod cloud;
pub mod db;
pub mod edge;
pub mod introspect;
pub mod prepared;
pub mod sync;
