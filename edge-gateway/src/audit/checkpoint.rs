//! Signed checkpoints of the chain, uploaded to the cloud through the relay's low-priority lane.
//!
//! Every `audit.checkpoint_interval_minutes` (5 by default, at most 60), and as soon as an upstream
//! answers again after an outage, when the chain's head has moved since the last checkpoint, the
//! gateway signs its head — position, hash, records chained so far, and the
//! checkpoint it continues — with its credential key (`upstream.key`, ECDSA P-256, the key of the
//! client certificate the cloud knows it by), and queues it in the outbox, lane 1, behind the
//! clinical writes. The bytes signed are [`labedge_protocol::relay::checkpoint::signed_bytes`]. The
//! checkpoint is kept in `audit_checkpoints` with its outbox entry, in the same transaction.
//!
//! The checkpoint a new one continues is the latest one not rejected by the cloud. A checkpoint is
//! rejected for good (a forged signature, a fork) only when something is wrong with this gateway or
//! its chain: the dead letter it leaves holds back the later checkpoints (they share the record
//! `audit:chain`) until the lab admin has looked at it.

use std::path::Path;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use labedge_protocol::relay::checkpoint::{CheckpointRef, SignedHead, signed_bytes};
use labedge_protocol::relay::{RelayedMutation, RelayedOp};
use labedge_schema::edge::schema::{audit_checkpoints, outbox};
use labedge_service::tls::{load_certs, load_private_key, sha256_hex};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rustls_pki_types::PrivateKeyDer;
use time::OffsetDateTime;
use uuid::Uuid;

use super::chain_head;
use crate::state::AppState;

/// Advisory lock key of checkpoint creation (transaction scoped).
const CHECKPOINT_LOCK: i64 = 7_305_710_005;

/// How long after start the first checkpoint is taken (the journal chains what a restart left pending first).
const FIRST_CHECKPOINT_AFTER: Duration = Duration::from_secs(30);

/// After a failed attempt, the next one comes sooner than a full interval.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why a checkpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The credential's certificate or key could not be used.
    #[error("config key `upstream.{key}`: {reason}")]
    Credential {
        /// `cert` or `key`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Signing failed.
    #[error("the checkpoint could not be signed")]
    Signing,
    /// The database failed.
    #[error("audit checkpoint: {0}")]
    Database(#[from] diesel::result::Error),
}

/// The gateway's credential key, to sign checkpoints with.
pub struct Signer {
    key: EcdsaKeyPair,
    cert_sha256: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert_sha256", &self.cert_sha256)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads the credential: its certificate (the first of the PEM file) and its PKCS#8 key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, CheckpointError> {
        let certs = load_certs(cert).map_err(|e| CheckpointError::Credential {
            key: "cert",
            reason: e.to_string(),
        })?;
        let key_der = load_private_key(key).map_err(|e| CheckpointError::Credential {
            key: "key",
            reason: e.to_string(),
        })?;
        let PrivateKeyDer::Pkcs8(pkcs8) = key_der else {
            return Err(CheckpointError::Credential {
                key: "key",
                reason: "not a PKCS#8 key (`BEGIN PRIVATE KEY`), as `api provision-gateway` writes".into(),
            });
        };
        Self::from_der(certs[0].as_ref(), pkcs8.secret_pkcs8_der())
    }

    /// A signer from a certificate (DER) and its PKCS#8 ECDSA P-256 key (DER).
    pub fn from_der(cert_der: &[u8], pkcs8: &[u8]) -> Result<Self, CheckpointError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng).map_err(|e| {
            CheckpointError::Credential {
                key: "key",
                reason: format!("not an ECDSA P-256 key: {e}"),
            }
        })?;
        Ok(Self {
            key,
            cert_sha256: sha256_hex(cert_der),
            rng,
        })
    }

    /// SHA-256 (hex) of the certificate: names the key to the cloud.
    pub fn cert_sha256(&self) -> &str {
        &self.cert_sha256
    }

    /// The public key (uncompressed point).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// ECDSA P-256 SHA-256 signature of `message`, ASN.1 DER.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CheckpointError> {
        self.key
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CheckpointError::Signing)
    }

    /// The signed checkpoint op of `head`.
    pub fn checkpoint_op(&self, head: &SignedHead) -> Result<RelayedOp, CheckpointError> {
        let signature = self.sign(&signed_bytes(head))?;
        Ok(checkpoint_op(head, Some(self.cert_sha256.clone()), &signature))
    }
}

/// The checkpoint op of `head` with this signature, made by the key of the certificate whose
/// SHA-256 is `signer_cert_sha256`.
pub fn checkpoint_op(head: &SignedHead, signer_cert_sha256: Option<String>, signature: &[u8]) -> RelayedOp {
    RelayedOp::AuditCheckpoint {
        chain_seq: head.chain_seq,
        chain_hash: hex::encode(head.chain_hash),
        record_count: head.record_count,
        previous: head.previous.map(|(chain_seq, hash)| CheckpointRef {
            chain_seq,
            chain_hash: hex::encode(hash),
        }),
        signer_cert_sha256,
        signed_at: head.signed_at,
        signature: hex::encode(signature),
    }
}

/// A checkpoint queued for the cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Its outbox entry.
    pub mutation_id: Uuid,
    /// What was signed.
    pub head: SignedHead,
}

/// Signs the chain's head and queues it, unless the chain is empty or its head already has a
/// checkpoint. One transaction: the checkpoint row and its outbox entry.
pub async fn checkpoint_head(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    signer: &Signer,
) -> Result<Option<Queued>, CheckpointError> {
    conn.transaction::<_, CheckpointError, _>(async move |conn| {
        conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({CHECKPOINT_LOCK})"))
            .await?;
        let Some((chain_seq, chain_hash)) = chain_head(conn).await? else {
            return Ok(None);
        };
        let taken: i64 = audit_checkpoints::table
            .filter(audit_checkpoints::chain_seq.eq(chain_seq))
            .count()
            .get_result(conn)
            .await?;
        if taken > 0 {
            return Ok(None);
        }
        let previous: Option<(i64, Vec<u8>)> = audit_checkpoints::table
            .filter(diesel::dsl::not(diesel::dsl::exists(
                outbox::table
                    .filter(outbox::mutation_id.eq(audit_checkpoints::mutation_id))
                    .filter(outbox::outcome.eq("rejected")),
            )))
            .order(audit_checkpoints::chain_seq.desc())
            .select((audit_checkpoints::chain_seq, audit_checkpoints::chain_hash))
            .first(conn)
            .await
            .optional()?;
        let signed_at = OffsetDateTime::now_utc();
        let signed_at = signed_at
            .replace_nanosecond(signed_at.nanosecond() / 1_000 * 1_000)
            .unwrap_or(signed_at);
        let head = SignedHead {
            lab_id,
            chain_seq,
            chain_hash,
            // Positions run from 1 without gaps: the position is the count of records chained.
            record_count: chain_seq,
            previous: previous.map(|(seq, hash)| (seq, super::verify::to_hash(Some(&hash)))),
            signed_at,
        };
        let signature = signer.sign(&signed_bytes(&head))?;
        let mutation = RelayedMutation {
            mutation_id: Uuid::now_v7(),
            recorded_at: signed_at,
            staff_id: None,
            device_id: None,
            op: checkpoint_op(&head, Some(signer.cert_sha256().to_owned()), &signature),
        };
        diesel::insert_into(audit_checkpoints::table)
            .values((
                audit_checkpoints::chain_seq.eq(head.chain_seq),
                audit_checkpoints::chain_hash.eq(head.chain_hash.as_slice()),
                audit_checkpoints::record_count.eq(head.record_count),
                audit_checkpoints::prev_chain_seq.eq(head.previous.map(|p| p.0)),
                audit_checkpoints::prev_chain_hash.eq(head.previous.map(|p| p.1.to_vec())),
                audit_checkpoints::signed_at.eq(signed_at),
                audit_checkpoints::signature.eq(signature),
                audit_checkpoints::signer_cert_sha256.eq(signer.cert_sha256()),
                audit_checkpoints::mutation_id.eq(mutation.mutation_id),
            ))
            .execute(conn)
            .await?;
        crate::store::outbox::enqueue(conn, &mutation).await?;
        Ok(Some(Queued {
            mutation_id: mutation.mutation_id,
            head,
        }))
    })
    .await
}

/// Takes a checkpoint now with the gateway's credential (read again each time: a renewed
/// credential is used from the next checkpoint on) and wakes the relay.
pub async fn checkpoint_now(state: &AppState) -> anyhow::Result<Option<Queued>> {
    let lab = state
        .lab()
        .await
        .map_err(|e| anyhow::anyhow!("the lab is not known yet: {e}"))?;
    let upstream = &state.config.upstream;
    let signer = Signer::load(&upstream.cert, &upstream.key)?;
    let mut conn = state.pool.get().await?;
    let queued = checkpoint_head(&mut conn, lab.id, &signer).await?;
    if queued.is_some() {
        state.relay_wakeup.notify_one();
    }
    Ok(queued)
}

/// The checkpoint task of a serving gateway. Besides the interval, a checkpoint is taken as soon as
/// an upstream is back after an outage: the records chained while the cloud was out of reach are
/// the ones nobody outside the lab has seen yet, so they are anchored before anything else.
pub async fn run(state: AppState, stop: labedge_service::workers::Stop) {
    let interval = Duration::from_secs(state.config.audit.checkpoint_interval_minutes.clamp(1, 60) * 60);
    let mut wait = FIRST_CHECKPOINT_AFTER;
    loop {
        let next = stop.until(async {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = state.upstream_health.recovered() => {
                    tracing::info!("an upstream is back after an outage: audit checkpoint now");
                }
            }
        });
        if next.await.is_none() {
            return;
        }
        wait = interval;
        match checkpoint_now(&state).await {
            Ok(Some(queued)) => tracing::info!(
                audit.chain_seq = queued.head.chain_seq,
                audit.chain_hash = %hex::encode(queued.head.chain_hash),
                mutation.id = %queued.mutation_id,
                "audit checkpoint signed and queued for the cloud"
            ),
            Ok(None) => tracing::debug!("audit chain unchanged since the last checkpoint"),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "audit checkpoint not taken; retrying in a minute"
                );
                wait = RETRY_AFTER.min(interval);
            }
        }
    }
}
