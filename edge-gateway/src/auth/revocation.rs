//! Revocation takes effect on the very next request, not at token expiry: every authenticated request
//! checks its device, staff member and session. Redis answers first; PostgreSQL, which is the source
//! of truth, answers when Redis cannot; when neither can, the request fails closed (503).
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use labedge_schema::db::PgPool;
use uuid::Uuid;

use crate::cache::Redis;
use crate::store;

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

/// The revocation checks and the Redis copy of the list.
pub struct Revocations {
    redis: Redis,
    pool: PgPool,
    generation: AtomicU64,
    reloading: Arc<AtomicBool>,
    /// Device id → SHA-256 of the certificate it was enrolled with, if any.
    bindings: RwLock<HashMap<Uuid, Option<String>>>,
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
#[derive(Clone, Copy, Debug)]
pub enum RevokedKind {
    /// A device.
    Device,
    /// A staff member.
    Staff,
    /// A session.
    Session,
}

impl RevokedKind {
    fn as_str(self) -> &'static str {
        match self {
            RevokedKind::Device => "device",
            RevokedKind::Staff => "staff",
            RevokedKind::Session => "session",
        }
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
