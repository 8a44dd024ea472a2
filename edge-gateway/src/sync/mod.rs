//! Following the cloud: the gateway keeps its lab's share of the data in its own database.
//!
//! - [`bootstrap`]: an empty (or replaced) gateway reads the head position, then the lab's whole
//!   scope table by table from the snapshot routes, then follows the feed from that head. A change
//!   committed while the snapshot is read has a position above the head, so it is applied again
//!   from the feed: nothing falls between the two.
//! - [`pull`]: feed pages after the checkpoint, each applied with its checkpoint in one transaction;
//!   afterwards the Redis entries of the touched rows are evicted and staff (de)activations reach the
//!   revocation list.
//! - [`reconcile`]: per-table counts and checksums of the lab's scope against the cloud's; differing
//!   tables are compared per bucket and the differing buckets pulled again (rows the cloud no longer
//!   has in scope are removed). Results go to `reconciliation_runs`, the status and the metrics.
//! - [`lost`]: when the cloud's database is on a new timeline (restored to an earlier point, or a
//!   standby promoted), what it lost is sent again and the tables reconciled at once.
//! - [`Worker`]: the loop that does all three, started by `serve`; between its steps it sends the
//!   gateway's [`report`] to the cloud, at most once a minute.

mod apply;
pub mod health;
pub mod lost;
pub mod report;
pub mod upstream;
mod worker;

pub use apply::{CLOUD_STREAM, Touched, checkpoint};
pub use worker::{
    BootstrapProgress, ReconcileReport, SyncError, SyncStatus, TableReport, Worker, bootstrap, pull, reconcile,
};
