//! The key ring that signs and verifies access tokens: HMAC-SHA256 keys in the gateway's database.
//!
//! HMAC rather than a signature scheme: the gateway both issues and verifies its tokens, nobody else
//! needs to, and an HMAC check costs about a microsecond on every request. The newest key signs;
//! every key not retired verifies, so a rotation logs nobody out. A key is retired once the tokens it
//! signed have all expired. `kid` is only ever looked up in this ring, never fetched from anywhere.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use jsonwebtoken::{DecodingKey, EncodingKey};
use labedge_schema::db::PgPool;
use labedge_schema::edge::schema::signing_keys;
use labedge_schema::runtime::secrets::fill_random;
use time::OffsetDateTime;

#[derive(Queryable)]
struct KeyRow {
    kid: String,
    secret: Vec<u8>,
    created_at: OffsetDateTime,
}

struct Keys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
}

/// The ring, shared by every worker. Empty until the database has answered once.
pub struct KeyRing {
    keys: RwLock<Option<Keys>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<String> = self
            .keys
            .read()
            .ok()
            .and_then(|k| k.as_ref().map(|k| k.verifying.keys().cloned().collect()))
            .unwrap_or_default();
        f.debug_struct("KeyRing").field("kids", &kids).finish()
    }
}

impl KeyRing {
    /// An empty ring, filled by [`KeyRing::reload`].
    pub fn empty() -> Self {
        Self {
            keys: RwLock::new(None),
        }
    }

    /// Loads the ring from the database, creating its first key on a new gateway (a rotation done
    /// by another process reaches this one at the next reload).
    pub async fn reload(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
        if active_keys(conn).await?.is_empty() {
            insert_key(conn).await?;
        }
        let keys = build(active_keys(conn).await?)?;
        if let Ok(mut guard) = self.keys.write() {
            *guard = Some(keys);
        }
        Ok(())
    }

    /// Reloads every `period` (every two seconds while the ring is still empty) for as long as the
    /// process runs.
    pub fn spawn_reload(self: &Arc<Self>, pool: PgPool, period: Duration) {
        let ring = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let wait = if ring.is_loaded() {
                    period
                } else {
                    Duration::from_secs(2)
                };
                tokio::time::sleep(wait).await;
                let result = match pool.get().await {
                    Ok(mut conn) => ring.reload(&mut conn).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = result {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "signing keys not reloaded; keeping the current ring"
                    );
                }
            }
        });
    }

    /// Whether the ring holds keys.
    pub fn is_loaded(&self) -> bool {
        self.keys.read().is_ok_and(|k| k.is_some())
    }

    /// The key that signs new tokens, and its id.
    pub fn signing(&self) -> Option<(String, EncodingKey)> {
        self.keys
            .read()
            .ok()
            .and_then(|k| k.as_ref().map(|k| (k.signing_kid.clone(), k.signing.clone())))
    }

    /// The key that verifies tokens of `kid`, if it is in the ring.
    pub fn verifying(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .ok()
            .and_then(|k| k.as_ref().and_then(|k| k.verifying.get(kid).cloned()))
    }
}

fn build(rows: Vec<KeyRow>) -> anyhow::Result<Keys> {
    let newest = rows
        .iter()
        .max_by_key(|r| r.created_at)
        .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
    let signing = EncodingKey::from_secret(&newest.secret)?;
    let mut verifying = HashMap::new();
    for row in &rows {
        verifying.insert(row.kid.clone(), DecodingKey::from_secret(&row.secret)?);
    }
    Ok(Keys {
        signing_kid: newest.kid.clone(),
        signing,
        verifying,
    })
}

async fn active_keys(conn: &mut AsyncPgConnection) -> QueryResult<Vec<KeyRow>> {
    signing_keys::table
        .filter(signing_keys::retired_at.is_null())
        .select((signing_keys::kid, signing_keys::secret, signing_keys::created_at))
        .load(conn)
        .await
}

async fn insert_key(conn: &mut AsyncPgConnection) -> QueryResult<String> {
    let mut secret = [0u8; 32];
    fill_random(&mut secret);
    let kid = format!("k-{}", uuid::Uuid::now_v7().simple());
    diesel::insert_into(signing_keys::table)
        .values((signing_keys::kid.eq(&kid), signing_keys::secret.eq(secret.to_vec())))
        .execute(conn)
        .await?;
    Ok(kid)
}

/// `edge-gateway rotate-signing-key`: a new key signs from now on; keys superseded longer ago than
/// `token_lifetime` are retired (every token they signed has expired).
pub async fn rotate(conn: &mut AsyncPgConnection, token_lifetime: Duration) -> anyhow::Result<(String, usize)> {
    let kid = insert_key(conn).await?;
    let mut rows = active_keys(conn).await?;
    rows.sort_by_key(|r| r.created_at);
    let now = OffsetDateTime::now_utc();
    let mut retired = 0;
    for pair in rows.windows(2) {
        let superseded_at = pair[1].created_at;
        if now - superseded_at > token_lifetime {
            retired += diesel::update(signing_keys::table.find(&pair[0].kid))
                .set(signing_keys::retired_at.eq(now))
                .execute(conn)
                .await?;
        }
    }
    Ok((kid, retired))
}
