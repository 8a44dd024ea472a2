//! # labedge-tests
//!
//! End-to-end and fault tests of LabEdge against real PostgreSQL and Redis, and the harness they
//! share:
//!
//! - [`db::TestDb`]: a database of its own per test, cloned from a migrated template (made once per
//!   migration set, shared by every test process), dropped when the test ends;
//! - [`redis::TestRedis`]: a Redis key prefix of its own per test, cleaned when the test ends;
//! - [`app`]: in-process requests against the real actix apps;
//! - [`gateway::TestGateway`]: a gateway in process with a seeded lab, and tablet and admin helpers;
//! - [`spawn`]: the real binaries started on free ports, for end-to-end tests;
//! - [`stack::Stack`]: a provisioned gateway beside the cloud API, both as real binaries, set up by
//!   [`stack::StackBuilder`] (network size, gateway environment, databases of the test's own
//!   clusters, a second API for the central lab);
//! - [`real_gateway::RealGateway`]: the gateway binary on a seeded lab, over plain HTTP on 127.0.0.1;
//! - [`prometheus`]: the Prometheus text format parsed, and the metric names of the docs and the code.
//!
//! PostgreSQL is reached at `LABEDGE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`) and
//! Redis at `LABEDGE_TEST_REDIS` (default `redis://127.0.0.1:6379`).

pub mod app;
pub mod cloud;
pub mod cluster;
pub mod db;
pub mod edge_data;
pub mod fake_upstream;
pub mod fixtures;
pub mod gateway;
pub mod multipart;
pub mod prometheus;
pub mod real_gateway;
pub mod redis;
pub mod spawn;
pub mod stack;
pub mod tablet;

/// Whether the long runs of the fault suite are asked for (`deploy/test.sh --long`, which sets
/// `LABEDGE_LONG=1`): the same tests with more cycles, writes and examples than CI runs.
pub fn long_run() -> bool {
    std::env::var("LABEDGE_LONG").is_ok_and(|v| v == "1")
}
