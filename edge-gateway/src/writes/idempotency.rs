//! Idempotent writes: every write carries a key (the `Idempotency-Key` header, or a mutation id in
//! an offline batch), scoped to the device *and* the staff member logged in on it: on a shared tablet
//! one member's key is never answered to another. A replay with the same body gets the stored answer
//! (after the write's scope and role checks, run again as for a first request: the caller may have
//! lost the patient since); the same key with another body gets 422; a replay while the first is
//! still being written gets 409.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::idempotency_keys;
use labedge_service::http::ProblemError;
use mobile_contracts::headers::{IDEMPOTENCY_KEY, is_valid_idempotency_key};
use mobile_contracts::problem::ErrorCode;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `Idempotency-Key` header of a write: required.
#[derive(Clone, Debug)]
pub struct IdempotencyKey(pub String);

impl FromRequest for IdempotencyKey {
    type Error = ProblemError;
    type Future = std::future::Ready<Result<Self, ProblemError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = req
            .headers()
            .get(IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        std::future::ready(match key {
            None | Some("") => Err(ProblemError::new(ErrorCode::IdempotencyKeyMissing)
                .detail("every write carries an Idempotency-Key header (a UUID the tablet makes per write)")),
            Some(key) if !is_valid_idempotency_key(key) => {
                Err(ProblemError::new(ErrorCode::BadRequest).detail("the Idempotency-Key header is malformed"))
            }
            Some(key) => Ok(IdempotencyKey(key.to_owned())),
        })
    }
}

/// What a key found.
#[derive(Debug)]
pub enum Claim {
    /// A new write: go on, and store the answer in the same transaction.
    Fresh,
    /// The same write again: here is its answer.
    Replay {
        /// Status of the first answer.
        status: u16,
        /// Its body.
        body: serde_json::Value,
    },
}

/// SHA-256 of a write's canonical form (its parsed body serialised again).
pub fn request_hash(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

/// Whose keys: a staff member on a device.
#[derive(Clone, Copy, Debug)]
pub struct KeyScope {
    /// The device.
    pub device: Uuid,
    /// The staff member logged in on it.
    pub staff: Uuid,
}

fn lock_key(scope: KeyScope, key: &str) -> i64 {
    let digest = Sha256::digest(
        [
            scope.device.as_bytes().as_slice(),
            scope.staff.as_bytes().as_slice(),
            key.as_bytes(),
        ]
        .concat(),
    );
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Claims `key` for `scope` inside the caller's transaction. The transaction-scoped advisory lock is
/// held until it commits, so a concurrent replay finds it taken and answers 409 at once instead of
/// waiting or writing twice.
pub async fn claim(conn: &mut AsyncPgConnection, scope: KeyScope, key: &str, hash: &[u8]) -> Result<Claim, ClaimError> {
    let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind::<BigInt, _>(lock_key(scope, key))
        .get_result(conn)
        .await?;
    if !locked.locked {
        return Err(ClaimError::InFlight);
    }
    let stored: Option<(Vec<u8>, i16, serde_json::Value)> = idempotency_keys::table
        .find((scope.device, scope.staff, key))
        .select((
            idempotency_keys::request_sha256,
            idempotency_keys::response_status,
            idempotency_keys::response_body,
        ))
        .first(conn)
        .await
        .optional()?;
    match stored {
        None => Ok(Claim::Fresh),
        Some((stored_hash, status, body)) if stored_hash == hash => Ok(Claim::Replay {
            status: u16::try_from(status).unwrap_or(200),
            body,
        }),
        Some(_) => Err(ClaimError::Reused),
    }
}

/// Stores a write's answer with the write.
pub async fn store(
    conn: &mut AsyncPgConnection,
    scope: KeyScope,
    key: &str,
    hash: &[u8],
    status: u16,
    body: &serde_json::Value,
) -> QueryResult<()> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::device_id.eq(scope.device),
            idempotency_keys::staff_id.eq(scope.staff),
            idempotency_keys::idempotency_key.eq(key),
            idempotency_keys::request_sha256.eq(hash),
            idempotency_keys::response_status.eq(i16::try_from(status).unwrap_or(200)),
            idempotency_keys::response_body.eq(body),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A key that cannot be used now.
#[derive(Debug)]
pub enum ClaimError {
    /// The first write with this key is still being written.
    InFlight,
    /// The key was used for another write.
    Reused,
    /// The database failed.
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for ClaimError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(e)
    }
}

impl ClaimError {
    /// The problem this answers with.
    pub fn problem(&self) -> Option<ProblemError> {
        match self {
            ClaimError::InFlight => Some(
                ProblemError::new(ErrorCode::IdempotencyInFlight)
                    .detail("a write with this Idempotency-Key is being recorded: retry in a moment")
                    .retry_after(1),
            ),
            ClaimError::Reused => Some(
                ProblemError::new(ErrorCode::IdempotencyKeyReused)
                    .detail("this Idempotency-Key was used for another request: make a new key per write"),
            ),
            ClaimError::Database(_) => None,
        }
    }
}
