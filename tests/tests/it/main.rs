//! The integration tests of LabEdge, in one binary: one link of the harness, the API and the
//! gateway for all of them instead of one per file (see docs/testing.md for the figures). Each module
//! is one area; nextest still runs each test in a process of its own, so that a test's globals (the
//! metrics recorder, the log bridge) stay its own.
//!
//! One area: `cargo nextest run -p labedge-tests -E 'test(/^crash::/)'`.

mod attacks;
mod audit;
mod audit_roles;
mod auth;
mod backup;
mod bad_input;
mod central;
mod console;
mod continuity;
mod crash;
mod deploy_files;
mod desk;
mod faults;
mod feed;
mod fhir;
mod fhir_loop;
mod fuzz;
mod gate;
mod hardening;
mod i18n;
mod intake;
mod intake_scope;
mod load_balancer;
mod lockouts;
mod logs;
mod metrics;
mod monitoring;
mod network;
mod ops;
mod paper_rx;
mod reads;
mod relay;
mod schema;
mod seed_demo;
mod services;
mod signing_keys;
mod staff;
mod sync;
mod time;
mod writes;
