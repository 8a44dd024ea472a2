//! # labedge-api
//!
//! The central cloud API: the source of truth for every lab. It provisions labs and their gateways
//! (a client certificate signed by the cloud CA it keeps), serves each gateway its lab's change feed,
//! takes in the mutations the gateways relay, and tells its load balancer whether its database is the
//! primary or a standby.
//!
//! Subcommands: `serve`, `migrate`, `check-config`, `init-pki`, `create-lab`, `create-staff`,
//! `provision-gateway`, `create-integration-client`. The demo's synthetic network is filled by a
//! binary of its own, `labedge-demo` ([`demo`]), which the production `api` does not contain.
//!
//! The lab information system talks to it over HL7 FHIR R4 at `/fhir/R4` ([`fhir`]).

pub mod central;
pub mod cli;
pub mod config;
pub mod demo;
pub mod feed;
pub mod fhir;
pub mod intake;
pub mod manage;
pub mod provision;
pub mod routes;
pub mod security;
pub mod startup;
pub mod state;

/// The one error type of the handlers (shared with the gateway: see `labedge_service::error`).
pub use labedge_service::error::ApiError;
