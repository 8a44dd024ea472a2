//! Idempotent writes: every write carries a key (the `Idempotency-Key` header, or a mutation id in
//! an offline batch), scoped to the device *and* the staff member logged in on it: on a shared tablet
//! one member's key is never answered to another. A replay with the same body gets the stored answer
//! (after the write's scope and role checks, run again as for a first request: the caller may have
//! lost the patient since); the same key with another body gets 422; a replay while the first is
//! still being written gets 409.
//!
//! [`idempotent`] wraps a write: it claims the key, re-runs the scope check on a replay and answers
//! the stored body, or runs the write and stores its answer, all in the caller's transaction.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Jsonb, SmallInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::idempotency_keys;
use labedge_schema::prepared::KeepPrepared;
use labedge_service::http::ProblemError;
use mobile_contracts::problem::ErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

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
        .prepared()
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
    verdict(stored, hash)
}

/// What a key's stored answer (if any) means for a write with request hash `hash`.
fn verdict(stored: Option<(Vec<u8>, i16, serde_json::Value)>, hash: &[u8]) -> Result<Claim, ClaimError> {
    match stored {
        None => Ok(Claim::Fresh),
        Some((stored_hash, status, body)) if stored_hash == hash => Ok(Claim::Replay {
            status: u16::try_from(status).unwrap_or(200),
            body,
        }),
        Some(_) => Err(ClaimError::Reused),
    }
}

#[derive(QueryableByName)]
struct StoredAnswer {
    #[diesel(sql_type = BigInt)]
    i: i64,
    #[diesel(sql_type = Bytea)]
    request_sha256: Vec<u8>,
    #[diesel(sql_type = SmallInt)]
    response_status: i16,
    #[diesel(sql_type = Jsonb)]
    response_body: serde_json::Value,
}

/// [`claim`] for a group of writes, with two statements whatever their number: each key's verdict,
/// in order. The keys must be distinct: a session's advisory locks are re-entrant, so a key claimed
/// twice in one group would not be seen in flight.
///
/// The locks are taken by one statement and the answers read by the next, as [`claim`] does: a
/// statement's snapshot predates the locks it takes, and would miss the answer of a write that
/// committed (releasing its lock) while the statement waited to run.
pub async fn claim_many(
    conn: &mut AsyncPgConnection,
    keys: &[(KeyScope, &str, &[u8])],
) -> QueryResult<Vec<Result<Claim, ClaimError>>> {
    let locked: Vec<Locked> = diesel::sql_query(
        "SELECT pg_try_advisory_xact_lock(t.k) AS locked FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, i) \
         ORDER BY t.i",
    )
    .bind::<Array<BigInt>, _>(
        keys.iter()
            .map(|(scope, key, _)| lock_key(*scope, key))
            .collect::<Vec<_>>(),
    )
    .prepared()
    .load(conn)
    .await?;
    let stored: Vec<StoredAnswer> = diesel::sql_query(
        "SELECT t.i, k.request_sha256, k.response_status, k.response_body \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY AS t(device, staff, key, i) \
         JOIN idempotency_keys k \
           ON (k.device_id, k.staff_id, k.idempotency_key) = (t.device, t.staff, t.key)",
    )
    .bind::<Array<SqlUuid>, _>(keys.iter().map(|(scope, _, _)| scope.device).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(keys.iter().map(|(scope, _, _)| scope.staff).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(keys.iter().map(|(_, key, _)| *key).collect::<Vec<_>>())
    .load(conn)
    .await?;
    let mut answers: Vec<Option<(Vec<u8>, i16, serde_json::Value)>> = keys.iter().map(|_| None).collect();
    for row in stored {
        if let Some(slot) = usize::try_from(row.i - 1).ok().and_then(|i| answers.get_mut(i)) {
            *slot = Some((row.request_sha256, row.response_status, row.response_body));
        }
    }
    Ok(keys
        .iter()
        .zip(locked)
        .zip(answers)
        .map(|(((_, _, hash), locked), answer)| {
            if locked.locked {
                verdict(answer, hash)
            } else {
                Err(ClaimError::InFlight)
            }
        })
        .collect())
}

/// One write's answer to store: [`store`]'s arguments.
#[derive(Clone, Copy, Debug)]
pub struct ToStore<'a> {
    /// The write's key.
    pub keyed: Keyed<'a>,
    /// Its answer.
    pub body: &'a serde_json::Value,
}

/// [`store`] for a group of writes, with one statement whatever their number.
pub async fn store_many(conn: &mut AsyncPgConnection, answers: &[ToStore<'_>]) -> QueryResult<()> {
    let status = |a: &ToStore<'_>| i16::try_from(a.keyed.status).unwrap_or(200);
    diesel::sql_query(
        "INSERT INTO idempotency_keys (device_id, staff_id, idempotency_key, request_sha256, response_status, \
                                       response_body) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[], $5::smallint[], $6::jsonb[])",
    )
    .bind::<Array<SqlUuid>, _>(answers.iter().map(|a| a.keyed.scope.device).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(answers.iter().map(|a| a.keyed.scope.staff).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(answers.iter().map(|a| a.keyed.key).collect::<Vec<_>>())
    .bind::<Array<Bytea>, _>(answers.iter().map(|a| a.keyed.hash).collect::<Vec<_>>())
    .bind::<Array<SmallInt>, _>(answers.iter().map(status).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(answers.iter().map(|a| a.body).collect::<Vec<_>>())
    .prepared()
    .execute(conn)
    .await
    .map(|_| ())
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

/// Removes the keys of writes made before `before` (a retry that late is a new write).
pub async fn purge(conn: &mut AsyncPgConnection, before: time::OffsetDateTime) -> QueryResult<usize> {
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(before)))
        .execute(conn)
        .await
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

/// A write under an idempotency key.
#[derive(Clone, Copy, Debug)]
pub struct Keyed<'a> {
    /// Whose key.
    pub scope: KeyScope,
    /// The key.
    pub key: &'a str,
    /// [`request_hash`] of the write.
    pub hash: &'a [u8],
    /// The HTTP status its answer is stored with.
    pub status: u16,
}

/// A write's answer, and whether it is the answer of an earlier identical write.
#[derive(Debug)]
pub struct Answered<T> {
    /// The answer.
    pub value: T,
    /// Whether nothing was written this time.
    pub replayed: bool,
}

impl<T> Answered<T> {
    /// A write done now.
    pub fn fresh(value: T) -> Self {
        Self { value, replayed: false }
    }

    /// A write found already done.
    pub fn replayed(value: T) -> Self {
        Self { value, replayed: true }
    }
}

/// Runs `write` once per key, inside the caller's transaction (which must be open: the claim's lock
/// and the stored answer live and die with it). A replay runs `recheck` (the write's scope check)
/// and returns the stored answer; a fresh write runs `write` and stores its answer as JSON, unless
/// `write` itself found the work already done (`Answered::replayed`: nothing is stored then).
pub async fn idempotent<T, E>(
    conn: &mut AsyncPgConnection,
    keyed: Keyed<'_>,
    recheck: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<(), E>,
    write: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<Answered<T>, E>,
) -> Result<Answered<T>, E>
where
    T: Serialize + DeserializeOwned,
    E: From<ClaimError> + From<diesel::result::Error>,
{
    if let Claim::Replay { body, .. } = claim(conn, keyed.scope, keyed.key, keyed.hash).await? {
        recheck(conn).await?;
        let value =
            serde_json::from_value(body).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
        return Ok(Answered::replayed(value));
    }
    let answered = write(conn).await?;
    if !answered.replayed {
        let body = serde_json::to_value(&answered.value).map_err(super::serde_failure)?;
        store(conn, keyed.scope, keyed.key, keyed.hash, keyed.status, &body).await?;
    }
    Ok(answered)
}
