//! The gateway-facing sync API: each lab's gateway follows its lab's share of the cloud's data.
//!
//! # Routes
//!
//! All under mutual TLS: the gateway's client certificate (signed by the cloud CA, recorded in
//! `gateways` by `api provision-gateway`) names the lab. No certificate, or an unknown, revoked or
//! expired one, is a 401 `invalid_credentials`; a path naming another lab is a 403 `forbidden` (one
//! lab never reads another's data). See [`credential`].
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/labs/{lab}/changes/head` | [`FeedHead`]: the newest committed position |
//! | `GET /v1/labs/{lab}/changes?after=N&limit=M` | [`FeedPage`]: the lab's changes after `N` |
//! | `GET /v1/labs/{lab}/snapshot/{entity}?after=KEY&limit=M&bucket=xx` | [`SnapshotPage`]: one table of the scope, by key |
//! | `GET /v1/labs/{lab}/checksums?entity=E&buckets=true` | [`Checksums`]: counts and digests of the scope |
//!
//! # The scope of a lab
//!
//! What a lab's gateway keeps, at an instant `now` (the gateway prunes by the same rule):
//!
//! - its own `labs` row;
//! - all its `staff`, inactive ones too, so that a deactivation reaches the gateway as `active = false`
//!   and locks the staff member out offline;
//! - the whole catalog: `tube_types` and `exam_catalog`;
//! - its appointments with `scheduled_at` from `now − feed.window_back_days` (inclusive) to the end of
//!   the `feed.window_ahead_days`-th day after today in `feed.timezone` (exclusive) — see
//!   [`scope::Window`];
//! - prescriptions that are the lab's, `open` and issued on or after today − `window_back_days`, and
//!   prescriptions (of any lab) that an in-scope appointment refers to;
//! - patients that an in-scope appointment or prescription refers to, and walk-ins registered at the
//!   lab's gateway since `now − feed.window_back_days`.
//!
//! # Feed semantics
//!
//! Every change of a replicated row gets a position in `change_log` at commit time, commit-safely
//! (`docs/data-model.md`). A page reads, in one `REPEATABLE READ` read-only transaction, the entries
//! after `after` for the lab (`lab_id` = the lab, or `NULL` for catalog and patient changes, plus
//! changes of another lab's prescriptions an in-scope appointment refers to), by position, up to
//! `limit`. Each entry becomes the row's *current* state when it exists and is in scope, else a
//! removal (`record: None`): a row moved to another lab, cancelled out of the window or deleted
//! leaves. An appointment or prescription sent brings its patient (and an appointment its
//! prescription) at the same position, since they may just have entered the scope without a change
//! of their own. `has_more` says whether more entries wait; `next` is where to continue: the last
//! position read while more wait, else the head (nothing of the lab's can appear below it any more,
//! so a quiet lab does not look as if it lagged); `head` is the newest committed position. See
//! [`changes::page`].
//!
//! Rows are removed by the feed only when their own change takes them out. Rows that leave because
//! time passes (appointments older than the window, prescriptions issued too long ago) or because the
//! row that held them in left (the patient of a moved appointment) are pruned by the gateway by the
//! rule above; the nightly reconciliation ([`checksums`], and snapshots by bucket) repairs anything
//! else. Rows that *enter* because time passes are announced by the [`horizon`] job.

pub mod changes;
pub mod checksums;
pub mod credential;
pub mod horizon;
mod records;
pub mod routes;
pub mod scope;
pub mod snapshot;

use diesel_async::AsyncPgConnection;
use diesel_async::pg::TransactionBuilder;
#[cfg(doc)]
use labedge_schema::sync::FeedHead;
use labedge_schema::sync::{Checksums, Entity, FeedPage, SnapshotPage};
use time::OffsetDateTime;
use uuid::Uuid;

pub use self::credential::GatewayCredential;
pub use self::horizon::{HorizonRun, advance_horizon};
pub use self::routes::configure;
use self::scope::Scope;
pub use self::snapshot::SnapshotRequest;
use crate::config::FeedConfig;

/// A page of lab `lab_id`'s feed after `after`, at most `limit` entries, in one `REPEATABLE READ`
/// read-only transaction. The window is taken at `now`, or at the database's clock when `None` (what
/// the routes do).
pub async fn read_changes(
    conn: &mut AsyncPgConnection,
    feed: &FeedConfig,
    lab_id: Uuid,
    lab_code: &str,
    after: i64,
    limit: i64,
    now: Option<OffsetDateTime>,
) -> diesel::QueryResult<FeedPage> {
    snapshot_read(conn)
        .run(async move |conn| {
            let scope = Scope::at(conn, feed, lab_id, now).await?;
            changes::page(conn, &scope, lab_code, after, limit).await
        })
        .await
}

/// A snapshot page of one table of lab `lab_id`'s scope, in one `REPEATABLE READ` read-only
/// transaction, with the window at `now` (or the database's clock).
pub async fn read_snapshot(
    conn: &mut AsyncPgConnection,
    feed: &FeedConfig,
    lab_id: Uuid,
    entity: Entity,
    request: SnapshotRequest<'_>,
    now: Option<OffsetDateTime>,
) -> diesel::QueryResult<SnapshotPage> {
    snapshot_read(conn)
        .run(async move |conn| {
            let scope = Scope::at(conn, feed, lab_id, now).await?;
            snapshot::page(conn, &scope, entity, request).await
        })
        .await
}

/// The checksums of `entities` over lab `lab_id`'s scope (per bucket with `buckets`) and the head
/// position, in one `REPEATABLE READ` read-only transaction, with the window at `now` (or the
/// database's clock).
pub async fn read_checksums(
    conn: &mut AsyncPgConnection,
    feed: &FeedConfig,
    lab_id: Uuid,
    lab_code: &str,
    entities: &[Entity],
    buckets: bool,
    now: Option<OffsetDateTime>,
) -> diesel::QueryResult<Checksums> {
    snapshot_read(conn)
        .run(async move |conn| {
            let scope = Scope::at(conn, feed, lab_id, now).await?;
            checksums::compute(conn, &scope, lab_code, entities, buckets).await
        })
        .await
}

/// A `REPEATABLE READ` read-only transaction: every query of a page sees the same snapshot.
fn snapshot_read(conn: &mut AsyncPgConnection) -> TransactionBuilder<'_, AsyncPgConnection> {
    conn.build_transaction().repeatable_read().read_only()
}
