//! Revocation takes effect on the very next request, not at token expiry: every authenticated request
//! checks its device, staff member and session.
//!
//! The list is held in the process's memory, so that a check costs no round trip: a task LISTENs
//! on PostgreSQL's `labedge_revocations` channel, loads the list, and applies each change as it is
//! committed (triggers notify every change of standing, whoever makes it: this process, the sync,
//! a command line). Notifications arrive in commit order; a revocation made here waits, before it
//! returns, for a barrier sent behind it on the same channel, so the next request already sees it.
//! While the listening connection is down (or a barrier was not seen in time), the memory does not
//! answer: Redis does, then PostgreSQL, which is the source of truth; when neither can, the request
//! fails closed (503). A PostgreSQL that is down cannot commit a revocation either, so the memory is
//! never behind a committed one while its connection lives.
//!
//! Redis holds one key per revoked device, staff member and session, plus a marker saying which
//! "generation" of the revocation list it holds. Every revocation made by this process bumps the
//! generation, so a Redis that missed a revocation (it was down, or restarted empty) no longer matches
//! and is not trusted until it has been reloaded from PostgreSQL. This relies on one gateway process
//! per lab, which is how gateways are deployed.
//!
//! Beside the revocations, the device records' certificate bindings: whether a device was enrolled
//! with a certificate, and which. A binding is fixed at enrollment (the database refuses to change
//! it), so it is kept in memory once read: one PostgreSQL query per device and process, none per
//! request after that.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use diesel_async::SimpleAsyncConnection;
use futures_util::StreamExt;
use labedge_schema::db::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::cache::Redis;
use crate::store;
use crate::store::channels;

/// A week: longer than any offline grace bound.
const SESSION_KEY_TTL_S: u64 = 7 * 24 * 3600;

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Nothing revoked.
    Good,
    /// The device is revoked (or unknown): the tablet must wipe its data.
    DeviceRevoked,
    /// The staff member is revoked or inactive.
    StaffRevoked,
    /// The session was ended (logout, refresh token reuse, offline grace over).
    SessionRevoked,
}

/// What the device record says about a device's client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Enrolled without a certificate.
    Unbound,
    /// Enrolled with the certificate of this SHA-256 (hex): its tokens must come over mutual TLS with
    /// it, and carry its `cnf`.
    Bound(String),
    /// No such device.
    Unknown,
}

/// Neither Redis nor PostgreSQL could answer.
#[derive(Clone, Copy, Debug)]
pub struct Unavailable;

/// The PostgreSQL channel of the revocation list's changes (see the migration
/// `2026-12-06-000600_revocation_notify`).
const CHANNEL: &str = "labedge_revocations";

/// How long the listener waits for a notification before it checks its connection.
const PROBE_INTERVAL: Duration = Duration::from_secs(15);

/// How long a check of the listening connection, or a barrier, may take.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the list is loaded afresh (ended sessions whose grace is over leave it then).
const RENEW_INTERVAL: Duration = Duration::from_secs(600);

/// The revocation checks, the list in memory and the Redis copy of it.
pub struct Revocations {
    redis: Redis,
    pool: PgPool,
    generation: AtomicU64,
    reloading: Arc<AtomicBool>,
    /// Device id → SHA-256 of the certificate it was enrolled with, if any.
    bindings: RwLock<HashMap<Uuid, Option<String>>>,
    /// The list as the listener last applied it.
    held: RwLock<Held>,
    /// Whether `held` may answer: loaded, and its connection listening.
    live: AtomicBool,
    /// This process's barriers: the last number the listener saw come back.
    barriers_seen: watch::Sender<u64>,
    next_barrier: AtomicU64,
    /// Tells this process's barriers from another's on the same channel.
    barrier_token: Uuid,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// Checks against `redis`, falling back to `pool`.
    pub fn new(redis: Redis, pool: PgPool) -> Self {
        // A new process starts a new generation: whatever Redis holds is reloaded before it is trusted.
        let start = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or(1);
        Self {
            redis,
            pool,
            generation: AtomicU64::new(start),
            reloading: Arc::new(AtomicBool::new(false)),
            bindings: RwLock::new(HashMap::new()),
            held: RwLock::new(Held::default()),
            live: AtomicBool::new(false),
            barriers_seen: watch::Sender::new(0),
            next_barrier: AtomicU64::new(0),
            barrier_token: Uuid::new_v4(),
        }
    }

    /// The certificate binding of `device` from its record: from memory after the first time.
    pub async fn binding(&self, device: Uuid) -> Result<Binding, Unavailable> {
        let known = self.bindings.read().ok().and_then(|b| b.get(&device).cloned());
        let cert = match known {
            Some(cert) => cert,
            None => {
                let mut conn = self.pool.get().await.map_err(|_| Unavailable)?;
                let row = store::devices::certificate(&mut conn, device)
                    .await
                    .map_err(|_| Unavailable)?;
                let Some(cert) = row else {
                    return Ok(Binding::Unknown);
                };
                self.remember_binding(device, cert.clone());
                cert
            }
        };
        Ok(cert.map_or(Binding::Unbound, Binding::Bound))
    }

    fn remember_binding(&self, device: Uuid, cert: Option<String>) {
        if let Ok(mut bindings) = self.bindings.write() {
            bindings.insert(device, cert);
        }
    }

    fn marker_key(&self) -> String {
        self.redis.key("rev:generation")
    }

    /// The standing of a device, staff member and session.
    pub async fn check(&self, device: Uuid, staff: Uuid, session: Uuid) -> Result<Standing, Unavailable> {
        if self.live.load(Ordering::Acquire)
            && let Ok(held) = self.held.read()
        {
            return Ok(held.standing(device, staff, session));
        }
        if let Some(standing) = self.check_redis(device, staff, session).await {
            return Ok(standing);
        }
        self.check_database(device, staff, session).await
    }

    async fn check_redis(&self, device: Uuid, staff: Uuid, session: Uuid) -> Option<Standing> {
        let mut conn = self.redis.connection()?;
        let keys = [
            self.marker_key(),
            self.redis.key(&format!("rev:device:{device}")),
            self.redis.key(&format!("rev:staff:{staff}")),
            self.redis.key(&format!("rev:session:{session}")),
        ];
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.ok()?;
        if values.first().copied().flatten() != Some(self.generation.load(Ordering::Acquire)) {
            self.spawn_reload();
            return None;
        }
        Some(match (values.get(1), values.get(2), values.get(3)) {
            (Some(Some(_)), _, _) => Standing::DeviceRevoked,
            (_, Some(Some(_)), _) => Standing::StaffRevoked,
            (_, _, Some(Some(_))) => Standing::SessionRevoked,
            _ => Standing::Good,
        })
    }

    async fn check_database(&self, device: Uuid, staff: Uuid, session: Uuid) -> Result<Standing, Unavailable> {
        let mut conn = self.pool.get().await.map_err(|_| Unavailable)?;
        let row = store::revocations::standing(&mut conn, device, staff, session)
            .await
            .map_err(|_| Unavailable)?;
        // The binding comes with the row: the check that follows needs no query of its own.
        if row.device_revoked.is_some() {
            self.remember_binding(device, row.device_cert.clone());
        }
        // A device, staff member or session that is not there at all counts as revoked.
        Ok(match (row.device_revoked, row.staff_revoked, row.session_revoked) {
            (None | Some(true), _, _) => Standing::DeviceRevoked,
            (_, None | Some(true), _) => Standing::StaffRevoked,
            (_, _, None | Some(true)) => Standing::SessionRevoked,
            _ => Standing::Good,
        })
    }

    /// Records a revocation made in PostgreSQL (after its commit): Redis learns it at once when it
    /// answers; otherwise the new generation keeps Redis out of the checks until it is reloaded.
    pub async fn revoked(&self, kind: RevokedKind, id: Uuid) {
        self.settle().await;
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let Some(mut conn) = self.redis.connection() else {
            return;
        };
        let key = self.redis.key(&format!("rev:{}:{id}", kind.as_str()));
        // The marker moves only if the key was written, in one atomic step.
        let mut pipe = redis::pipe();
        pipe.atomic();
        match kind {
            // Sessions end on their own within the offline grace bound: their keys need not outlive it.
            RevokedKind::Session => pipe.set_ex(&key, 1, SESSION_KEY_TTL_S).ignore(),
            _ => pipe.set(&key, 1).ignore(),
        };
        let _: redis::RedisResult<()> = pipe
            .set(self.marker_key(), generation)
            .ignore()
            .query_async(&mut conn)
            .await;
    }

    /// Records that a staff member (or device) is no longer revoked, after PostgreSQL says so (a staff
    /// member reactivated in the cloud). If Redis cannot be told, it stays out of the checks until
    /// reloaded; a reload never clears a stale key, which errs on the side of refusing.
    pub async fn restored(&self, kind: RevokedKind, id: Uuid) {
        self.settle().await;
        let key = self.redis.key(&format!("rev:{}:{id}", kind.as_str()));
        let Some(mut conn) = self.redis.connection() else {
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        };
        // Nothing to do when Redis holds no revocation for it (the usual case).
        if let Ok(0) = redis::cmd("EXISTS").arg(&key).query_async::<i64>(&mut conn).await {
            return;
        }
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let _: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .del(&key)
            .ignore()
            .set(self.marker_key(), generation)
            .ignore()
            .query_async(&mut conn)
            .await;
    }

    /// Returns once the listener has applied every change committed before this call: a barrier is
    /// sent on the channel and awaited (notifications arrive in commit order). Not seen in time, the
    /// memory stops answering until the listener has loaded the list again.
    async fn settle(&self) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let number = self.next_barrier.fetch_add(1, Ordering::AcqRel) + 1;
        let mut seen = self.barriers_seen.subscribe();
        let sent = async {
            let mut conn = self.pool.get().await.ok()?;
            channels::notify(&mut conn, CHANNEL, &self.barrier(number)).await.ok()
        };
        let confirmed = sent.await.is_some()
            && tokio::time::timeout(CONFIRM_TIMEOUT, seen.wait_for(|&last| last >= number))
                .await
                .is_ok_and(|waited| waited.is_ok());
        if !confirmed {
            self.set_live(false);
            tracing::warn!(
                "revocation list in memory not confirmed; checks use Redis and PostgreSQL until it is reloaded"
            );
        }
    }

    /// Whether the checks are answered from memory now (the listener has the list and listens).
    pub fn in_memory(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
        metrics::gauge!("labedge_revocation_list_in_memory").set(if live { 1.0 } else { 0.0 });
    }

    fn barrier(&self, number: u64) -> String {
        format!("barrier:{}:{number}", self.barrier_token)
    }

    /// Applies one notification of the channel.
    fn apply(&self, held: &mut Held, payload: &str) {
        match Notice::parse(payload) {
            Some(Notice::Change { kind, id, revoked }) => held.set(kind, id, revoked),
            Some(Notice::Barrier { token, number }) if token == self.barrier_token => {
                self.barriers_seen.send_modify(|last| *last = (*last).max(number));
            }
            _ => {}
        }
    }

    /// Keeps the list in memory for as long as the process runs: listens, loads, applies each
    /// change; after a lost connection, starts again (0.5 s doubling to 30 s apart).
    pub async fn listen(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let started = Instant::now();
            let outcome = self.listen_once().await;
            self.set_live(false);
            match outcome {
                Ok(()) => continue,
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "revocation listener stopped; checks use Redis and PostgreSQL"
                ),
            }
            if started.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_millis(500);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// One listening connection's life: returns `Ok` when it is time to load the list afresh.
    async fn listen_once(&self) -> anyhow::Result<()> {
        let mut conn = channels::listening(&self.pool, CHANNEL).await?;
        let mut held = Held::default();
        for row in store::revocations::all(&mut conn).await? {
            if let Some(kind) = RevokedKind::parse(&row.kind) {
                held.set(kind, row.id, true);
            }
        }
        // Changes committed between the LISTEN and the load are applied, in order, up to a barrier
        // sent behind them, before the memory answers.
        let number = self.next_barrier.fetch_add(1, Ordering::AcqRel) + 1;
        channels::notify(&mut conn, CHANNEL, &self.barrier(number)).await?;
        loop {
            let mut notifications = std::pin::pin!(conn.notifications_stream());
            let note = tokio::time::timeout(CONFIRM_TIMEOUT, notifications.next())
                .await
                .context("the listener's own barrier did not come back")?
                .ok_or_else(|| anyhow!("the listening connection closed"))??;
            self.apply(&mut held, &note.payload);
            if *self.barriers_seen.borrow() >= number {
                break;
            }
        }
        *self
            .held
            .write()
            .map_err(|_| anyhow!("revocation list lock poisoned"))? = held;
        self.set_live(true);
        tracing::info!("revocation list held in memory");
        let renew_at = Instant::now() + RENEW_INTERVAL;
        loop {
            let next = {
                let mut notifications = std::pin::pin!(conn.notifications_stream());
                tokio::time::timeout(PROBE_INTERVAL, notifications.next()).await
            };
            match next {
                Ok(Some(note)) => {
                    let note = note?;
                    let mut held = self
                        .held
                        .write()
                        .map_err(|_| anyhow!("revocation list lock poisoned"))?;
                    self.apply(&mut held, &note.payload);
                }
                Ok(None) => anyhow::bail!("the listening connection closed"),
                Err(_quiet) => {
                    tokio::time::timeout(CONFIRM_TIMEOUT, conn.batch_execute("SELECT 1"))
                        .await
                        .context("the listening connection did not answer")??;
                    if Instant::now() >= renew_at {
                        return Ok(());
                    }
                }
            }
            if !self.live.load(Ordering::Acquire) {
                anyhow::bail!("a revocation was not confirmed in time");
            }
        }
    }

    fn spawn_reload(&self) {
        if self.reloading.swap(true, Ordering::AcqRel) {
            return;
        }
        let redis = self.redis.clone();
        let pool = self.pool.clone();
        let reloading = Arc::clone(&self.reloading);
        let generation = self.generation.load(Ordering::Acquire);
        let marker = self.marker_key();
        tokio::spawn(async move {
            if let Err(e) = reload(&redis, &pool, &marker, generation).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "revocation list not copied to redis; checks use PostgreSQL"
                );
            }
            reloading.store(false, Ordering::Release);
        });
    }

    /// Copies the revocation list from PostgreSQL to Redis now (at start-up, and when Redis is found
    /// stale).
    pub async fn reload_now(&self) -> anyhow::Result<()> {
        reload(
            &self.redis,
            &self.pool,
            &self.marker_key(),
            self.generation.load(Ordering::Acquire),
        )
        .await
    }
}

/// What was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokedKind {
    /// A device.
    Device,
    /// A staff member.
    Staff,
    /// A session.
    Session,
}

impl RevokedKind {
    fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "device" => RevokedKind::Device,
            "staff" => RevokedKind::Staff,
            "session" => RevokedKind::Session,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            RevokedKind::Device => "device",
            RevokedKind::Staff => "staff",
            RevokedKind::Session => "session",
        }
    }
}

/// The revocation list in memory: who is revoked (anyone else is in good standing, as in Redis).
#[derive(Debug, Default)]
struct Held {
    devices: HashSet<Uuid>,
    staff: HashSet<Uuid>,
    sessions: HashSet<Uuid>,
}

impl Held {
    fn set(&mut self, kind: RevokedKind, id: Uuid, revoked: bool) {
        let set = match kind {
            RevokedKind::Device => &mut self.devices,
            RevokedKind::Staff => &mut self.staff,
            RevokedKind::Session => &mut self.sessions,
        };
        if revoked {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    fn standing(&self, device: Uuid, staff: Uuid, session: Uuid) -> Standing {
        if self.devices.contains(&device) {
            Standing::DeviceRevoked
        } else if self.staff.contains(&staff) {
            Standing::StaffRevoked
        } else if self.sessions.contains(&session) {
            Standing::SessionRevoked
        } else {
            Standing::Good
        }
    }
}

/// A notification of the channel: `kind:id:0|1` from the triggers, `barrier:token:number` from a
/// gateway.
#[derive(Debug, PartialEq, Eq)]
enum Notice {
    Change { kind: RevokedKind, id: Uuid, revoked: bool },
    Barrier { token: Uuid, number: u64 },
}

impl Notice {
    fn parse(payload: &str) -> Option<Self> {
        let mut parts = payload.splitn(3, ':');
        let (kind, id, last) = (parts.next()?, parts.next()?, parts.next()?);
        let id = Uuid::parse_str(id).ok()?;
        if kind == "barrier" {
            return Some(Notice::Barrier {
                token: id,
                number: last.parse().ok()?,
            });
        }
        Some(Notice::Change {
            kind: RevokedKind::parse(kind)?,
            id,
            revoked: match last {
                "1" => true,
                "0" => false,
                _ => return None,
            },
        })
    }
}

async fn reload(redis: &Redis, pool: &PgPool, marker: &str, generation: u64) -> anyhow::Result<()> {
    let Some(mut conn) = redis.connection() else {
        anyhow::bail!("redis is not connected")
    };
    let mut db = pool.get().await?;
    let rows = store::revocations::all(&mut db).await?;
    let mut pipe = redis::pipe();
    pipe.atomic();
    for row in &rows {
        let key = redis.key(&format!("rev:{}:{}", row.kind, row.id));
        if row.kind == "session" {
            pipe.set_ex(key, 1, SESSION_KEY_TTL_S).ignore();
        } else {
            pipe.set(key, 1).ignore();
        }
    }
    pipe.set(marker, generation).ignore();
    pipe.query_async::<()>(&mut conn).await?;
    tracing::info!(revoked = rows.len(), "revocation list copied to redis");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_read_as_the_triggers_and_barriers_write_them() {
        let id = Uuid::now_v7();
        assert_eq!(
            Notice::parse(&format!("staff:{id}:1")),
            Some(Notice::Change {
                kind: RevokedKind::Staff,
                id,
                revoked: true
            })
        );
        assert_eq!(
            Notice::parse(&format!("device:{id}:0")),
            Some(Notice::Change {
                kind: RevokedKind::Device,
                id,
                revoked: false
            })
        );
        assert_eq!(
            Notice::parse(&format!("barrier:{id}:42")),
            Some(Notice::Barrier { token: id, number: 42 })
        );
        for bad in [
            "",
            "staff",
            &format!("staff:{id}"),
            &format!("staff:{id}:2"),
            "staff:x:1",
            &format!("key:{id}:1"),
        ] {
            assert_eq!(Notice::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_list_in_memory_answers_like_redis_device_first() {
        let (device, staff, session) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut held = Held::default();
        assert_eq!(held.standing(device, staff, session), Standing::Good);
        held.set(RevokedKind::Session, session, true);
        assert_eq!(held.standing(device, staff, session), Standing::SessionRevoked);
        held.set(RevokedKind::Staff, staff, true);
        assert_eq!(held.standing(device, staff, session), Standing::StaffRevoked);
        held.set(RevokedKind::Device, device, true);
        assert_eq!(held.standing(device, staff, session), Standing::DeviceRevoked);
        held.set(RevokedKind::Device, device, false);
        held.set(RevokedKind::Staff, staff, false);
        assert_eq!(held.standing(device, staff, session), Standing::SessionRevoked);
    }
}
