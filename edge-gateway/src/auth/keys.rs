//! The key ring that signs and verifies access tokens: HMAC-SHA256 keys in the gateway's database,
//! sealed under a key-encryption key (KEK) that is not.
//!
//! HMAC rather than a signature scheme: the gateway both issues and verifies its tokens, nobody else
//! needs to, and an HMAC check costs about a microsecond on every request. The newest key signs;
//! every key not retired verifies, so a rotation logs nobody out. A key is retired once the tokens it
//! signed have all expired, or at once when it leaked. `kid` is only ever looked up in this ring,
//! never fetched from anywhere.
//!
//! At rest a key is AES-256-GCM sealed under the KEK (`auth.key_encryption_key`, from the gateway's
//! environment file), with its `kid` as associated data: a dump of the database, or a backup, holds
//! nothing that signs a token. Retiring a key erases its sealed material too.
//!
//! Every change to the ring is announced with `NOTIFY labedge_signing_keys`; a running gateway
//! LISTENs and reloads at once, and also every 30 s in case a notification was missed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::StreamExt as _;
use jsonwebtoken::{DecodingKey, EncodingKey};
use labedge_schema::db::PgPool;
use labedge_service::config::{ConfigError, ConfigIssue};
use labedge_service::secrets::fill_random;
use ring::aead;
use time::OffsetDateTime;

use crate::config::AuthConfig;
use crate::store::channels;
use crate::store::signing_keys as store;

/// The configuration key of the KEK, named in every error about it.
pub const KEK_CONFIG_KEY: &str = "auth.key_encryption_key";
/// The PostgreSQL channel on which ring changes are announced (payload: the kid concerned).
pub const NOTIFY_CHANNEL: &str = "labedge_signing_keys";
/// Domain separation of the associated data: a sealed signing key is not any other sealed thing.
const AAD_PREFIX: &[u8] = b"labedge signing key v1:";
const NONCE_LEN: usize = 12;

/// The key-encryption key: 32 bytes that seal the signing keys at rest.
#[derive(Clone)]
pub struct Kek([u8; 32]);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

/// A sealed key that does not open: another KEK sealed it, or the row was altered.
#[derive(Debug, thiserror::Error)]
#[error(
    "signing key {0} cannot be unsealed with {KEK_CONFIG_KEY} (another key-encryption key sealed it, or it was altered)"
)]
pub struct SealError(String);

impl Kek {
    /// Parses 32 bytes written in base64 (`openssl rand -base64 32`).
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| "must be base64")?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must be exactly 32 bytes once decoded (openssl rand -base64 32)")?;
        if key.iter().all(|b| *b == key[0]) {
            return Err("must be random bytes (openssl rand -base64 32)");
        }
        Ok(Self(key))
    }

    /// The KEK of the configuration; a missing or malformed one is a configuration error naming
    /// its key.
    pub fn from_config(auth: &AuthConfig) -> Result<Self, ConfigError> {
        let Some(text) = &auth.key_encryption_key else {
            return Err(vec![ConfigIssue::new(KEK_CONFIG_KEY, missing_kek_message())].into());
        };
        Self::from_base64(text.expose_secret())
            .map_err(|message| vec![ConfigIssue::new(KEK_CONFIG_KEY, message)].into())
    }

    /// A new random KEK, in base64 (tests, `api provision-gateway`).
    pub fn generate_base64() -> String {
        let mut key = [0u8; 32];
        fill_random(&mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    fn key(&self) -> aead::LessSafeKey {
        // AES-256 takes any 32 bytes: this cannot fail.
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &self.0).expect("a 32-byte AES key"))
    }

    /// `nonce || ciphertext || tag` of `secret`, bound to `kid`. Nonces are random: a gateway seals a
    /// handful of keys in its life, far from the 2^32 messages where random 96-bit nonces get risky.
    pub fn seal(&self, kid: &str, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut in_out = secret.to_vec();
        // Sealing fails only for inputs beyond AES-GCM's length limit (64 GiB).
        self.key()
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from([AAD_PREFIX, kid.as_bytes()].concat()),
                &mut in_out,
            )
            .expect("a 32-byte key seals");
        [nonce.as_slice(), &in_out].concat()
    }

    /// The secret sealed by [`Kek::seal`] for `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let fail = || SealError(kid.to_owned());
        if sealed.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .key()
            .open_in_place(
                nonce,
                aead::Aad::from([AAD_PREFIX, kid.as_bytes()].concat()),
                &mut in_out,
            )
            .map_err(|_| fail())?;
        Ok(plain.to_vec())
    }
}

fn missing_kek_message() -> String {
    "required: 32 random bytes in base64 (openssl rand -base64 32) that seal the token signing keys; \
     set LABEDGE_GATEWAY_AUTH__KEY_ENCRYPTION_KEY in the environment file /etc/labedge-gateway/env"
        .into()
}

/// The configuration issue of a KEK that `serve` needs and the configuration lacks.
pub fn missing_kek(auth: &AuthConfig) -> Option<ConfigIssue> {
    auth.key_encryption_key
        .is_none()
        .then(|| ConfigIssue::new(KEK_CONFIG_KEY, missing_kek_message()))
}

struct Keys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
}

/// The ring, shared by every worker. Empty until the database has answered once.
pub struct KeyRing {
    keys: RwLock<Option<Keys>>,
    kek: Kek,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("kids", &self.kids()).finish()
    }
}

impl KeyRing {
    /// An empty ring that opens the keys with `kek`, filled by [`KeyRing::reload`].
    pub fn new(kek: Kek) -> Self {
        Self {
            keys: RwLock::new(None),
            kek,
        }
    }

    /// Loads the ring from the database: seals any key still in plaintext (written before keys were
    /// sealed), creates the first key on a new gateway, opens every key not retired. A key that does
    /// not open is left out (logged); when none opens, the ring is emptied and tokens get 503 (fail
    /// closed) until the right KEK is configured.
    pub async fn reload(&self, conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
        seal_plaintext_keys(conn, &self.kek).await?;
        if store::active(conn).await?.is_empty() {
            insert_key(conn, &self.kek).await?;
        }
        let rows = store::active(conn).await?;
        let mut opened = Vec::new();
        let mut failures = Vec::new();
        for row in rows {
            match row.sealed_secret.as_deref().map(|s| self.kek.open(&row.kid, s)) {
                Some(Ok(secret)) => opened.push((row.kid, secret, row.created_at)),
                Some(Err(e)) => failures.push(e.to_string()),
                None => failures.push(format!("signing key {} has no sealed material", row.kid)),
            }
        }
        let built = build(&opened)?;
        if let Ok(mut guard) = self.keys.write() {
            *guard = built;
        }
        if opened.is_empty() {
            anyhow::bail!(
                "no signing key can be used: {}",
                if failures.is_empty() {
                    "none in the database".to_owned()
                } else {
                    failures.join("; ")
                }
            );
        }
        for failure in failures {
            tracing::error!(error = failure, "signing key left out of the ring");
        }
        Ok(())
    }

    /// Reloads when a change is announced on [`NOTIFY_CHANNEL`] (a retirement reaches the running
    /// gateway within milliseconds), and every `period` regardless (every two seconds while the ring
    /// is still empty), for as long as the process runs. The listener holds one connection of its
    /// own, taken out of `pool`.
    pub fn spawn_reload(self: &Arc<Self>, pool: PgPool, period: Duration) {
        let ring = Arc::clone(self);
        tokio::spawn(async move {
            let mut listener: Option<AsyncPgConnection> = None;
            loop {
                // A listener (re)connected after a failure may have missed a notification: reload.
                let mut changed = false;
                if listener.is_none() {
                    listener = listen(&pool).await;
                    changed = listener.is_some();
                }
                let wait = if ring.is_loaded() {
                    period
                } else {
                    Duration::from_secs(2)
                };
                if !changed {
                    match listener.as_mut() {
                        Some(conn) => {
                            let next = {
                                let mut stream = std::pin::pin!(conn.notifications_stream());
                                tokio::time::timeout(wait, stream.next()).await
                            };
                            match next {
                                Ok(Some(Ok(notification))) => {
                                    tracing::info!(kid = notification.payload, "signing keys changed; reloading");
                                }
                                Ok(_) => {
                                    tracing::warn!("signing key notifications lost; listening again");
                                    listener = None;
                                }
                                Err(_) => {}
                            }
                        }
                        None => tokio::time::sleep(wait).await,
                    }
                }
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

    /// The ids of the keys in the ring.
    pub fn kids(&self) -> Vec<String> {
        self.keys
            .read()
            .ok()
            .and_then(|k| k.as_ref().map(|k| k.verifying.keys().cloned().collect()))
            .unwrap_or_default()
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

/// A connection of its own, out of the pool, that LISTENs on [`NOTIFY_CHANNEL`].
async fn listen(pool: &PgPool) -> Option<AsyncPgConnection> {
    channels::listening(pool, NOTIFY_CHANNEL)
        .await
        .map_err(|e| {
            tracing::warn!(
                error = format!("{e:#}"),
                "not listening for signing key changes; the ring reloads on its period"
            );
        })
        .ok()
}

/// The ring of the opened keys; `None` when there is none.
fn build(opened: &[(String, Vec<u8>, OffsetDateTime)]) -> anyhow::Result<Option<Keys>> {
    let Some(newest) = opened.iter().max_by_key(|(_, _, created_at)| *created_at) else {
        return Ok(None);
    };
    let signing = EncodingKey::from_secret(&newest.1)?;
    let mut verifying = HashMap::new();
    for (kid, secret, _) in opened {
        verifying.insert(kid.clone(), DecodingKey::from_secret(secret)?);
    }
    Ok(Some(Keys {
        signing_kid: newest.0.clone(),
        signing,
        verifying,
    }))
}

/// Keys written before sealing existed (plaintext `secret`): the active ones are sealed, the retired
/// ones erased.
async fn seal_plaintext_keys(conn: &mut AsyncPgConnection, kek: &Kek) -> QueryResult<()> {
    for key in store::plaintext(conn).await? {
        let sealed = match (key.secret, key.retired_at) {
            (Some(secret), None) => Some(kek.seal(&key.kid, &secret)),
            _ => None,
        };
        store::replace_plaintext(conn, &key.kid, sealed).await?;
        tracing::info!(
            kid = key.kid,
            "signing key sealed under the key-encryption key; plaintext erased"
        );
    }
    Ok(())
}

async fn insert_key(conn: &mut AsyncPgConnection, kek: &Kek) -> QueryResult<String> {
    let mut secret = [0u8; 32];
    fill_random(&mut secret);
    let kid = format!("k-{}", uuid::Uuid::now_v7().simple());
    store::insert(conn, &kid, kek.seal(&kid, &secret)).await?;
    Ok(kid)
}

/// Retires `kid` now: it stops verifying and its sealed material is erased. Whether it was retired
/// (false when unknown or already retired).
async fn retire_one(conn: &mut AsyncPgConnection, kid: &str) -> QueryResult<bool> {
    store::retire(conn, kid, OffsetDateTime::now_utc()).await
}

async fn notify(conn: &mut AsyncPgConnection, kid: &str) -> QueryResult<()> {
    channels::notify(conn, NOTIFY_CHANNEL, kid).await
}

/// `edge-gateway rotate-signing-key`: a new key signs from now on; keys superseded longer ago than
/// `token_lifetime` are retired (every token they signed has expired).
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    kek: &Kek,
    token_lifetime: Duration,
) -> anyhow::Result<(String, usize)> {
    let kid = insert_key(conn, kek).await?;
    let mut rows = store::active(conn).await?;
    rows.sort_by_key(|r| r.created_at);
    let now = OffsetDateTime::now_utc();
    let mut retired = 0;
    for pair in rows.windows(2) {
        let superseded_at = pair[1].created_at;
        if now - superseded_at > token_lifetime && retire_one(conn, &pair[0].kid).await? {
            retired += 1;
        }
    }
    notify(conn, &kid).await?;
    Ok((kid, retired))
}

/// What [`retire`] did.
#[derive(Debug)]
pub struct Retirement {
    /// The keys retired now.
    pub retired: Vec<String>,
    /// The new key that signs, when a retired key was the one signing.
    pub new_signer: Option<String>,
}

/// `edge-gateway retire-signing-key`: retires `kids` (every key not retired when `None`) at once, in
/// one transaction, erasing their material; when the signing key is among them, a new key signs from
/// now on. The running gateway is told by `NOTIFY` at commit: tokens signed by a retired key are
/// refused from its next request. Sessions are not ended: their refresh tokens are not JWTs, and a
/// refresh gets a token signed by the new key.
pub async fn retire(conn: &mut AsyncPgConnection, kek: &Kek, kids: Option<&[String]>) -> anyhow::Result<Retirement> {
    let kek = kek.clone();
    let kids = kids.map(<[String]>::to_vec);
    let outcome = conn
        .transaction::<_, anyhow::Error, _>(async move |conn| {
            // One retirement at a time: two concurrent ones must not both miss the new signer.
            store::lock_for_retirement(conn).await?;
            let active = store::active(conn).await?;
            let signer = active.iter().max_by_key(|r| r.created_at).map(|r| r.kid.clone());
            let targets: Vec<String> = match &kids {
                Some(kids) => kids.clone(),
                None => active.iter().map(|r| r.kid.clone()).collect(),
            };
            let mut retired = Vec::new();
            for kid in &targets {
                if retire_one(conn, kid).await? {
                    retired.push(kid.clone());
                }
            }
            let new_signer = match &signer {
                Some(signer) if retired.contains(signer) => Some(insert_key(conn, &kek).await?),
                _ => None,
            };
            for kid in &retired {
                notify(conn, kid).await?;
            }
            Ok(Retirement { retired, new_signer })
        })
        .await?;
    Ok(outcome)
}
