//! Group commit of collections: the writes waiting at one moment share one transaction, one
//! statement per look-up and per table, and one commit (one `fdatasync`).
//!
//! Why: a collection alone was about 16 statements, each a round trip costing both processes CPU,
//! and one commit; the machine's CPU, not the disk, bounded the write rate (`docs/performance.md`).
//! A group of n costs about 11 statements whatever n.
//!
//! How, and what stays as it was:
//! - Handlers (a `POST /v1/collections`, or the collections of a push, in order) hand their items to
//!   the writer as one batch and wait for its verdicts. The writer takes what is queued, up to
//!   [`MAX_GROUP`] items (a batch is never split), and runs [`GROUPS_IN_FLIGHT`] groups at once, so
//!   that the next group gathers while one commits.
//! - An item refused by the rules (another lab's patient, an unknown tube type, a key in flight…) is
//!   answered its problem and nothing of it is written; its neighbours go on.
//! - Items that would collide inside the group (the same key, collection id or barcode) are not
//!   grouped: the later one is written alone after the group's commit. A barcode already recorded
//!   is refused by the group's look-ups, not by the unique index.
//! - A statement that fails (a concurrent group got the same barcode first, the database gone)
//!   rolls the whole group back; it is tried once more, then each of its items is written alone, in
//!   order, in its own transaction: it gets the answer it would have had without the group.
//! - An item is answered only after the commit of its group (or of its own transaction) returned,
//!   with `synchronous_commit = on`: the guarantees of `crate::writes` are unchanged. A request
//!   dropped by its client still has its group committed; its retry finds the stored answer.

use std::collections::HashSet;
use std::sync::Arc;

use diesel::QueryResult;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};
use labedge_schema::db::PgPool;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use mobile_contracts::{CollectionReceipt, NewCollection};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::Answered;
use crate::audit::AuditEntry;
use crate::auth::Principal;

/// The most items a group takes (a batch larger than this, a big push, is still taken whole).
pub const MAX_GROUP: usize = 256;

/// Groups being written at once: one commits while the next gathers and runs its statements.
pub const GROUPS_IN_FLIGHT: usize = 2;

/// Batches waiting for the writer. A full queue makes handlers wait, as a full pool did.
const QUEUE_CAPACITY: usize = 1_024;

/// One collection to write, checked against the contract already.
#[derive(Debug)]
pub struct Item {
    /// The gateway's lab.
    pub lab_id: Uuid,
    /// Who writes it.
    pub principal: Principal,
    /// Its idempotency key.
    pub key: String,
    /// Its request hash.
    pub hash: Vec<u8>,
    /// The collection.
    pub body: NewCollection,
    /// When the gateway received it (its `recorded_at`).
    pub now: OffsetDateTime,
    /// Its audit record.
    pub audit: AuditEntry,
}

/// A write's verdict from the group.
pub type Verdict = Result<Answered<CollectionReceipt>, ApiError>;

/// An item's verdict inside a transaction: refused by a rule, or written (or found written).
pub(super) type ItemVerdict = Result<Answered<CollectionReceipt>, ProblemError>;

struct Batch {
    items: Vec<Item>,
    reply: oneshot::Sender<Vec<Verdict>>,
}

/// The handle handlers write through.
#[derive(Debug)]
pub struct CollectionWriter {
    queue: mpsc::Sender<Batch>,
}

impl CollectionWriter {
    /// Starts the writer on `pool`.
    pub fn start(pool: PgPool) -> Arc<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(writer_loop(pool, receiver));
        Arc::new(Self { queue })
    }

    /// Writes `items` (in their order, in one group) and returns their verdicts, in the same order,
    /// once they are committed or refused.
    pub async fn write(&self, items: Vec<Item>) -> Vec<Verdict> {
        let count = items.len();
        let (reply, verdicts) = oneshot::channel();
        if self.queue.send(Batch { items, reply }).await.is_err() {
            return gone(count);
        }
        verdicts.await.unwrap_or_else(|_| gone(count))
    }
}

/// The writer stopped (the gateway is shutting down): nothing was written.
fn gone(count: usize) -> Vec<Verdict> {
    (0..count)
        .map(|_| Err(ApiError::Unavailable("the collection writer stopped".into())))
        .collect()
}

async fn writer_loop(pool: PgPool, mut receiver: mpsc::Receiver<Batch>) {
    let in_flight = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = receiver.recv().await else {
            return;
        };
        let mut taken = first.items.len();
        let mut batches = vec![first];
        while taken < MAX_GROUP {
            let Ok(batch) = receiver.try_recv() else { break };
            taken += batch.items.len();
            batches.push(batch);
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            commit_group(&pool, batches).await;
            drop(permit);
        });
    }
}

/// Writes the batches' items as one group and answers each batch.
async fn commit_group(pool: &PgPool, batches: Vec<Batch>) {
    let items: Vec<&Item> = batches.iter().flat_map(|b| b.items.iter()).collect();
    metrics::histogram!("labedge_write_group_items").record(items.len() as f64);
    let mut verdicts = match pool.get().await {
        Ok(mut conn) => write(&mut conn, &items).await,
        Err(e) => {
            let reason = e.to_string();
            items
                .iter()
                .map(|_| Err(ApiError::Unavailable(reason.clone())))
                .collect()
        }
    }
    .into_iter();
    drop(items);
    for batch in batches {
        let answers: Vec<Verdict> = verdicts.by_ref().take(batch.items.len()).collect();
        // A handler that gave up (client gone) no longer listens: its items are written anyway.
        let _ = batch.reply.send(answers);
    }
}

/// The verdicts of `items`, in order: as one group when it can, else each alone.
async fn write(conn: &mut AsyncPgConnection, items: &[&Item]) -> Vec<Verdict> {
    // A key twice in one group would find its own lock re-entrant instead of in flight, and a
    // collection id or barcode twice would fail the group's insert: the later item waits for the
    // group's commit and is then written alone (it finds the first one's answer, or is refused).
    let mut seen = Seen::default();
    let (group, repeats): (Vec<Numbered<'_>>, Vec<Numbered<'_>>) = items
        .iter()
        .copied()
        .enumerate()
        .partition(|(_, item)| seen.first(item));
    let mut verdicts: Vec<Option<Verdict>> = items.iter().map(|_| None).collect();
    let grouped: Vec<&Item> = group.iter().map(|(_, item)| *item).collect();
    // A group that fails a statement is tried once more: a unique index waits for the concurrent
    // transaction it collides with and fails only once that one committed, so the second try's
    // look-ups see what got in the way and refuse just that item. Failing again (the database
    // gone), each item is written alone and answered its own error.
    let mut outcome = None;
    if grouped.len() > 1 {
        for _ in 0..2 {
            if let Ok(group_verdicts) = in_transaction(conn, &grouped).await {
                outcome = Some(group_verdicts);
                break;
            }
        }
    }
    match outcome {
        Some(group_verdicts) => {
            for ((i, _), verdict) in group.iter().zip(group_verdicts) {
                verdicts[*i] = Some(verdict.map_err(ApiError::Problem));
            }
        }
        None => {
            for (i, item) in &group {
                verdicts[*i] = Some(alone(conn, item).await);
            }
        }
    }
    for (i, item) in &repeats {
        verdicts[*i] = Some(alone(conn, item).await);
    }
    verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Err(ProblemError::new(ErrorCode::Internal).into())))
        .collect()
}

/// An item and its place in the group.
type Numbered<'a> = (usize, &'a Item);

/// The keys, collection ids and barcodes of the items looked at so far.
#[derive(Default)]
struct Seen<'a> {
    keys: HashSet<(Uuid, Uuid, &'a str)>,
    ids: HashSet<Uuid>,
    barcodes: HashSet<&'a str>,
}

impl<'a> Seen<'a> {
    /// Whether `item` shares nothing with the items before it (it is recorded either way, so that
    /// an item colliding with a deferred one is deferred too, and the order of colliding items
    /// is kept).
    fn first(&mut self, item: &'a Item) -> bool {
        let principal = &item.principal;
        let mut first = self
            .keys
            .insert((principal.device_id, principal.staff_id, item.key.as_str()));
        first &= self.ids.insert(item.body.id);
        for tube in &item.body.tubes {
            first &= self.barcodes.insert(tube.barcode.as_str());
        }
        first
    }
}

/// One item in its own transaction: a statement's failure is its own verdict.
async fn alone(conn: &mut AsyncPgConnection, item: &Item) -> Verdict {
    match in_transaction(conn, &[item]).await {
        Ok(mut verdicts) => verdicts
            .pop()
            .unwrap_or_else(|| Err(ProblemError::new(ErrorCode::Internal)))
            .map_err(ApiError::Problem),
        Err(e) => Err(ApiError::Database(e)),
    }
}

/// `items` written in one transaction, committed before this returns `Ok`.
///
/// The transaction manager's own calls rather than `AsyncConnection::transaction`: the writer runs
/// on spawned tasks, and the closure form's higher-ranked `Send` bound is not met by this future.
async fn in_transaction(conn: &mut AsyncPgConnection, items: &[&Item]) -> QueryResult<Vec<ItemVerdict>> {
    AnsiTransactionManager::begin_transaction(conn).await?;
    match super::collections::write_group(conn, items).await {
        Ok(verdicts) => {
            AnsiTransactionManager::commit_transaction(conn).await?;
            Ok(verdicts)
        }
        Err(e) => {
            // A failed rollback leaves the connection broken; the pool drops it on its return.
            let _ = AnsiTransactionManager::rollback_transaction(conn).await;
            Err(e)
        }
    }
}
