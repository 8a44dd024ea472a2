//! The failure counters of PIN and console logins (`login_failures`, one row per subject). The
//! rules (when a lockout starts, how long it lasts) are [`crate::auth::lockout`]'s.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::login_failures;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who a counter is of, as its row names them.
#[derive(Debug)]
pub struct CounterKey<'a> {
    /// The row's key (`pin:<device>:<login>`, `admin:<address>:<login>`).
    pub scope: &'a str,
    /// `pin` or `admin`.
    pub kind: &'a str,
    /// The login as typed (lower-cased).
    pub login: &'a str,
    /// The device (PIN logins).
    pub device: Option<Uuid>,
    /// The address (console logins).
    pub source: Option<&'a str>,
}

/// Creates the counter of `key` at zero unless it exists.
pub async fn ensure(conn: &mut AsyncPgConnection, key: &CounterKey<'_>) -> QueryResult<()> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::scope.eq(key.scope),
            login_failures::kind.eq(key.kind),
            login_failures::login.eq(key.login),
            login_failures::device_id.eq(key.device),
            login_failures::source.eq(key.source),
            login_failures::failures.eq(0),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(|_| ())
}

/// A counter's state.
#[derive(Clone, Copy, Debug, Queryable)]
pub struct Counter {
    /// Failures counted since the last lockout.
    pub failures: i32,
    /// Until when it is locked, if it was.
    pub locked_until: Option<OffsetDateTime>,
    /// Lockouts in a row.
    pub lockouts: i32,
    /// The last attempt.
    pub updated_at: OffsetDateTime,
}

/// The counter of `scope`, locked until the transaction ends (`FOR UPDATE`): concurrent attempts on
/// the same subject wait for each other.
pub async fn lock(conn: &mut AsyncPgConnection, scope: &str) -> QueryResult<Counter> {
    login_failures::table
        .find(scope)
        .select((
            login_failures::failures,
            login_failures::locked_until,
            login_failures::lockouts,
            login_failures::updated_at,
        ))
        .for_update()
        .first(conn)
        .await
}

/// Sets the counter of `scope`.
pub async fn set(conn: &mut AsyncPgConnection, scope: &str, counter: Counter) -> QueryResult<()> {
    diesel::update(login_failures::table.find(scope))
        .set((
            login_failures::failures.eq(counter.failures),
            login_failures::locked_until.eq(counter.locked_until),
            login_failures::lockouts.eq(counter.lockouts),
            login_failures::updated_at.eq(counter.updated_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Forgets the counter of `scope`.
pub async fn delete(conn: &mut AsyncPgConnection, scope: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(scope))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A row of the console's lockout list.
#[derive(Debug, Serialize, Queryable)]
pub struct LockoutView {
    /// What the console sends back to unlock it.
    pub id: Uuid,
    /// `pin` or `admin`.
    pub kind: String,
    /// The login as typed.
    pub login: String,
    /// The device (PIN logins).
    pub device_id: Option<Uuid>,
    /// The address (console logins).
    pub source: Option<String>,
    /// Failures counted since the last lockout.
    pub failures: i32,
    /// Lockouts in a row.
    pub lockouts: i32,
    /// Until when, if locked now.
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
}

/// Counters locked after `now` or with failures, newest first, at most `limit`.
pub async fn list(conn: &mut AsyncPgConnection, now: OffsetDateTime, limit: i64) -> QueryResult<Vec<LockoutView>> {
    login_failures::table
        .filter(login_failures::locked_until.gt(now).or(login_failures::failures.gt(0)))
        .order(login_failures::updated_at.desc())
        .limit(limit)
        .select((
            login_failures::id,
            login_failures::kind,
            login_failures::login,
            login_failures::device_id,
            login_failures::source,
            login_failures::failures,
            login_failures::lockouts,
            login_failures::locked_until,
        ))
        .load(conn)
        .await
}

/// Forgets the counter of this id; whether there was one.
pub async fn delete_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    let deleted = diesel::delete(login_failures::table.filter(login_failures::id.eq(id)))
        .execute(conn)
        .await?;
    Ok(deleted > 0)
}

/// Forgets the counters idle since before `idle_before` and not locked at `now`.
pub async fn purge(
    conn: &mut AsyncPgConnection,
    idle_before: OffsetDateTime,
    now: OffsetDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        login_failures::table
            .filter(login_failures::updated_at.lt(idle_before))
            .filter(
                login_failures::locked_until
                    .is_null()
                    .or(login_failures::locked_until.lt(now)),
            ),
    )
    .execute(conn)
    .await
}
