//! # labedge-edge-gateway
//!
//! The gateway of one proximity lab. Tablets reach it over the lab's VPN; it authenticates them,
//! serves patient, prescription and round data from its own PostgreSQL (and Redis, when up), commits
//! their writes locally and relays them to the cloud API, falling back to the central lab's standby
//! API, and keeps the lab working for days when neither answers.
//!
//! Subcommands: `serve`, `migrate`, `check-config`, `rotate-signing-key`, `sync [--full]`,
//! `audit verify|purge|checkpoint`.

pub mod audit;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod conflicts;
pub mod console;
pub mod gauges;
pub mod housekeeping;
pub mod ratelimit;
pub mod reads;
pub mod relay;
pub mod routes;
pub mod security_events;
pub mod startup;
pub mod state;
pub mod storage;
pub mod store;
pub mod sync;
pub mod tablet_pull;
pub mod vpn_gate;
pub mod writes;

/// The one error type of the handlers (shared with the API: see `labedge_service::error`).
pub use labedge_service::error::ApiError;
