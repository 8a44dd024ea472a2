//! The access token signing keys (`signing_keys`): sealed material, retirement, and the
//! notifications that tell a running gateway to reload its ring. Sealing itself is
//! [`crate::auth::keys`]'s.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::signing_keys;
use time::OffsetDateTime;

/// A key not retired.
#[derive(Queryable)]
pub struct ActiveKey {
    /// Its id (the tokens' `kid`).
    pub kid: String,
    /// Its sealed secret (`None` only for a row damaged by hand).
    pub sealed_secret: Option<Vec<u8>>,
    /// When it was made: the newest signs.
    pub created_at: OffsetDateTime,
}

/// The keys not retired.
pub async fn active(conn: &mut AsyncPgConnection) -> QueryResult<Vec<ActiveKey>> {
    signing_keys::table
        .filter(signing_keys::retired_at.is_null())
        .select((signing_keys::kid, signing_keys::sealed_secret, signing_keys::created_at))
        .load(conn)
        .await
}

/// A key still stored in plaintext (written before keys were sealed).
#[derive(Queryable)]
pub struct PlaintextKey {
    /// Its id.
    pub kid: String,
    /// Its plaintext secret.
    pub secret: Option<Vec<u8>>,
    /// When it was retired, if it was.
    pub retired_at: Option<OffsetDateTime>,
}

/// The keys still in plaintext.
pub async fn plaintext(conn: &mut AsyncPgConnection) -> QueryResult<Vec<PlaintextKey>> {
    signing_keys::table
        .filter(signing_keys::secret.is_not_null())
        .select((signing_keys::kid, signing_keys::secret, signing_keys::retired_at))
        .load(conn)
        .await
}

/// Replaces `kid`'s plaintext by `sealed` (nothing, for a retired key), in one statement guarded on
/// the plaintext: two processes doing it at once cannot seal a key twice.
pub async fn replace_plaintext(conn: &mut AsyncPgConnection, kid: &str, sealed: Option<Vec<u8>>) -> QueryResult<()> {
    diesel::update(signing_keys::table.find(kid).filter(signing_keys::secret.is_not_null()))
        .set((
            signing_keys::secret.eq(None::<Vec<u8>>),
            signing_keys::sealed_secret.eq(sealed),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Stores a new key, sealed.
pub async fn insert(conn: &mut AsyncPgConnection, kid: &str, sealed: Vec<u8>) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values((signing_keys::kid.eq(kid), signing_keys::sealed_secret.eq(sealed)))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Retires `kid` at `now`, erasing its material; whether it was retired (false when unknown or
/// already retired).
pub async fn retire(conn: &mut AsyncPgConnection, kid: &str, now: OffsetDateTime) -> QueryResult<bool> {
    let n = diesel::update(signing_keys::table.find(kid).filter(signing_keys::retired_at.is_null()))
        .set((
            signing_keys::retired_at.eq(now),
            signing_keys::secret.eq(None::<Vec<u8>>),
            signing_keys::sealed_secret.eq(None::<Vec<u8>>),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Takes the table's lock for the rest of the transaction: one retirement at a time.
pub async fn lock_for_retirement(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
        .execute(conn)
        .await
        .map(|_| ())
}

// Key material stays out of logs.
impl std::fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

// Key material stays out of logs.
impl std::fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaintextKey")
            .field("kid", &self.kid)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}
