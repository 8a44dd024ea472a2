//! Group commit of writes: the writes of one kind waiting at one moment share one transaction, one
//! statement per look-up and per table, and one commit (one `fdatasync`). Collections
//! (`super::collections`) and lab-visit bookings (`super::lab_bookings`) each have their writer.
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
//! - Items that would collide inside the group (the same key, or the same id or barcode: each kind
//!   says what with [`Grouped::marks`]) are not grouped: the later one is written alone after the
//!   group's commit. A barcode already recorded is refused by the group's look-ups, not by the
//!   unique index.
//! - A statement that fails (a concurrent group got the same barcode first, the database gone)
//!   rolls the whole group back; it is tried once more, then each of its items is written alone, in
//!   order, in its own transaction: it gets the answer it would have had without the group.
//! - An item is answered only after the commit of its group (or of its own transaction) returned,
//!   with `synchronous_commit = on`: the guarantees of `crate::writes` are unchanged. A request
//!   dropped by its client still has its group committed; its retry finds the stored answer.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use diesel::QueryResult;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};
use labedge_schema::db::PgPool;
use labedge_service::error::ApiError;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::Answered;

/// The most items a group takes (a batch larger than this, a big push, is still taken whole).
pub const MAX_GROUP: usize = 256;

/// Groups being written at once: one commits while the next gathers and runs its statements.
pub const GROUPS_IN_FLIGHT: usize = 2;

/// Batches waiting for the writer. A full queue makes handlers wait, as a full pool did.
const QUEUE_CAPACITY: usize = 1_024;

/// A kind of write the group writer takes.
pub trait Grouped: Send + Sync + Sized + 'static {
    /// What a written item answers.
    type Answer: Send + 'static;

    /// The writer's name, in its metric's label and its error.
    const NAME: &'static str;

    /// What this item could collide on with another of its group (its idempotency key, the ids it
    /// creates, its unique values).
    fn marks(&self) -> Vec<Mark<'_>>;

    /// The verdicts of `items`, in order, within one open transaction (set `synchronous_commit`
    /// there). An `Err` is a statement that failed: the writer rolls back and retries.
    fn write_group<'a>(
        conn: &'a mut AsyncPgConnection,
        items: &'a [&'a Self],
    ) -> impl Future<Output = QueryResult<Vec<ItemVerdict<Self::Answer>>>> + Send + 'a;
}

/// Something two items of one group must not share.
#[derive(Debug, PartialEq, Eq, Hash)]
pub enum Mark<'a> {
    /// An idempotency key: device, staff member, key.
    Key(Uuid, Uuid, &'a str),
    /// The id of a row the item creates.
    Id(Uuid),
    /// A unique value (a barcode).
    Unique(&'a str),
}

/// A write's verdict from the group.
pub type Verdict<T> = Result<Answered<T>, ApiError>;

/// An item's verdict inside a transaction: refused by a rule, or written (or found written).
pub type ItemVerdict<T> = Result<Answered<T>, ProblemError>;

struct Batch<I: Grouped> {
    items: Vec<I>,
    reply: oneshot::Sender<Vec<Verdict<I::Answer>>>,
}

/// The handle handlers write through.
#[derive(Debug)]
pub struct GroupWriter<I: Grouped> {
    queue: mpsc::Sender<Batch<I>>,
}

impl<I: Grouped> GroupWriter<I> {
    /// Starts the writer on `pool`.
    pub fn start(pool: PgPool) -> Arc<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(writer_loop(pool, receiver));
        Arc::new(Self { queue })
    }

    /// Writes `items` (in their order, in one group) and returns their verdicts, in the same order,
    /// once they are committed or refused.
    pub async fn write(&self, items: Vec<I>) -> Vec<Verdict<I::Answer>> {
        let count = items.len();
        let (reply, verdicts) = oneshot::channel();
        if self.queue.send(Batch { items, reply }).await.is_err() {
            return gone::<I>(count);
        }
        verdicts.await.unwrap_or_else(|_| gone::<I>(count))
    }
}

/// The writer stopped (the gateway is shutting down): nothing was written.
fn gone<I: Grouped>(count: usize) -> Vec<Verdict<I::Answer>> {
    (0..count)
        .map(|_| Err(ApiError::Unavailable(format!("the {} writer stopped", I::NAME))))
        .collect()
}

async fn writer_loop<I: Grouped>(pool: PgPool, mut receiver: mpsc::Receiver<Batch<I>>) {
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
async fn commit_group<I: Grouped>(pool: &PgPool, batches: Vec<Batch<I>>) {
    let items: Vec<&I> = batches.iter().flat_map(|b| b.items.iter()).collect();
    metrics::histogram!("labedge_write_group_items", "write" => I::NAME).record(items.len() as f64);
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
        let answers: Vec<Verdict<I::Answer>> = verdicts.by_ref().take(batch.items.len()).collect();
        // A handler that gave up (client gone) no longer listens: its items are written anyway.
        let _ = batch.reply.send(answers);
    }
}

/// The verdicts of `items`, in order: as one group when it can, else each alone.
async fn write<I: Grouped>(conn: &mut AsyncPgConnection, items: &[&I]) -> Vec<Verdict<I::Answer>> {
    // A key twice in one group would find its own lock re-entrant instead of in flight, and an id
    // or barcode twice would fail the group's insert: the later item waits for the group's commit
    // and is then written alone (it finds the first one's answer, or is refused).
    let mut seen = Seen::default();
    let (group, repeats): (Vec<Numbered<'_, I>>, Vec<Numbered<'_, I>>) = items
        .iter()
        .copied()
        .enumerate()
        .partition(|(_, item)| seen.first(*item));
    let mut verdicts: Vec<Option<Verdict<I::Answer>>> = items.iter().map(|_| None).collect();
    let grouped: Vec<&I> = group.iter().map(|(_, item)| *item).collect();
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
                verdicts[*i] = Some(alone(conn, *item).await);
            }
        }
    }
    for (i, item) in &repeats {
        verdicts[*i] = Some(alone(conn, *item).await);
    }
    verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Err(ProblemError::new(ErrorCode::Internal).into())))
        .collect()
}

/// An item and its place in the group.
type Numbered<'a, I> = (usize, &'a I);

/// What the items looked at so far hold.
#[derive(Default)]
struct Seen<'a> {
    marks: HashSet<Mark<'a>>,
}

impl<'a> Seen<'a> {
    /// Whether `item` shares nothing with the items before it (its marks are recorded either way,
    /// so that an item colliding with a deferred one is deferred too, and the order of colliding
    /// items is kept).
    fn first<I: Grouped>(&mut self, item: &'a I) -> bool {
        let mut first = true;
        for mark in item.marks() {
            first &= self.marks.insert(mark);
        }
        first
    }
}

/// One item in its own transaction: a statement's failure is its own verdict.
async fn alone<I: Grouped>(conn: &mut AsyncPgConnection, item: &I) -> Verdict<I::Answer> {
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
async fn in_transaction<I: Grouped>(
    conn: &mut AsyncPgConnection,
    items: &[&I],
) -> QueryResult<Vec<ItemVerdict<I::Answer>>> {
    AnsiTransactionManager::begin_transaction(conn).await?;
    match I::write_group(conn, items).await {
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
