//! Lockouts of PIN and console logins.
//!
//! - **Keyed by who tries from where**: a PIN login by (login, authenticated device), a console login
//!   by (login, address). Failures never lock a login lab-wide: a stolen tablet or a machine on the
//!   lab's network can lock only its own attempts, not a colleague's tablet or the admin's desk.
//! - **Reserved before verifying**: an attempt is counted (as a failure until proven otherwise) in one
//!   locked row update *before* the argon2 verification, and the attempt that reaches the threshold
//!   sets the lockout right away. Twenty concurrent guesses are therefore at most `max_failures`
//!   verifications; the others are refused without one. A success deletes the row.
//! - **Growing lockouts**: the n-th lockout in a row lasts `lockout_minutes × 2ⁿ⁻¹`, at most
//!   `max_lockout_minutes`; failures older than `lockout_minutes` are forgotten, and the escalation
//!   after a quiet day.
//! - **Undone by a lab admin**: the console lists the rows and unlocks one at once (a security event).

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::login_failures;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::config::AuthConfig;

/// Who tries, and from where.
#[derive(Clone, Debug)]
pub enum Subject<'a> {
    /// A staff PIN on an enrolled device whose credentials were checked.
    Pin {
        /// The login as typed (lower-cased).
        login: &'a str,
        /// The authenticated device.
        device: Uuid,
    },
    /// A console password from an address.
    Admin {
        /// The login as typed (lower-cased).
        login: &'a str,
        /// The client address (or `unknown`).
        source: String,
    },
}

impl Subject<'_> {
    fn scope(&self) -> String {
        match self {
            Subject::Pin { login, device } => format!("pin:{device}:{login}"),
            Subject::Admin { login, source } => format!("admin:{source}:{login}"),
        }
    }
}

/// The rule, from `[auth]`.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Attempts allowed before a lockout.
    pub max_failures: u32,
    /// Length of the first lockout, and how long failures are remembered.
    pub lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
}

impl Policy {
    /// The policy of `[auth]`.
    pub fn of(auth: &AuthConfig) -> Self {
        let minutes = |m: u64| Duration::minutes(i64::try_from(m).unwrap_or(i64::MAX / 120));
        Self {
            max_failures: auth.max_failures_per_device,
            lockout: minutes(auth.lockout_minutes),
            max_lockout: minutes(auth.max_lockout_minutes),
        }
    }

    /// The length of the lockout after `previous` lockouts in a row.
    fn lockout_after(&self, previous: i32) -> Duration {
        let factor = 1_i64 << previous.clamp(0, 20);
        self.lockout
            .checked_mul(i32::try_from(factor).unwrap_or(i32::MAX))
            .unwrap_or(self.max_lockout)
            .min(self.max_lockout)
    }
}

/// After this long without an attempt, the escalation starts again from the first lockout.
const ESCALATION_MEMORY: Duration = Duration::hours(24);

/// An attempt that may go on to be verified.
#[derive(Debug)]
pub struct Reserved {
    scope: String,
    /// This attempt was the last one allowed: it started a lockout, which a success lifts.
    pub locks: bool,
}

#[derive(Queryable)]
struct Row {
    failures: i32,
    locked_until: Option<OffsetDateTime>,
    lockouts: i32,
    updated_at: OffsetDateTime,
}

/// Counts one attempt of `subject` before it is verified. `Err(until)` while a lockout is in force:
/// the attempt must be refused without verifying anything.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    subject: &Subject<'_>,
    policy: Policy,
) -> QueryResult<Result<Reserved, OffsetDateTime>> {
    let scope = subject.scope();
    let (kind, login, device, source) = match subject {
        Subject::Pin { login, device } => ("pin", *login, Some(*device), None),
        Subject::Admin { login, source } => ("admin", *login, None, Some(source.clone())),
    };
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::scope.eq(&scope),
                login_failures::kind.eq(kind),
                login_failures::login.eq(login),
                login_failures::device_id.eq(device),
                login_failures::source.eq(&source),
                login_failures::failures.eq(0),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        // The row lock serialises concurrent attempts on the same subject.
        let row: Row = login_failures::table
            .find(&scope)
            .select((
                login_failures::failures,
                login_failures::locked_until,
                login_failures::lockouts,
                login_failures::updated_at,
            ))
            .for_update()
            .first(conn)
            .await?;
        let now = OffsetDateTime::now_utc();
        if let Some(until) = row.locked_until.filter(|until| *until > now) {
            return Ok(Err(until));
        }
        let mut failures = row.failures;
        let mut lockouts = row.lockouts;
        if row.locked_until.is_some() || row.updated_at < now - policy.lockout {
            failures = 0;
        }
        if row.updated_at < now - ESCALATION_MEMORY {
            lockouts = 0;
        }
        failures += 1;
        let max = i32::try_from(policy.max_failures).unwrap_or(i32::MAX);
        let locked_until = (failures >= max).then(|| now + policy.lockout_after(lockouts));
        if locked_until.is_some() {
            lockouts += 1;
        }
        diesel::update(login_failures::table.find(&scope))
            .set((
                login_failures::failures.eq(failures),
                login_failures::locked_until.eq(locked_until),
                login_failures::lockouts.eq(lockouts),
                login_failures::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        Ok(Ok(Reserved {
            scope,
            locks: locked_until.is_some(),
        }))
    })
    .await
}

/// The attempt was right: its subject starts afresh (lockout lifted, escalation forgotten).
pub async fn succeeded(conn: &mut AsyncPgConnection, attempt: Reserved) -> QueryResult<()> {
    diesel::delete(login_failures::table.find(attempt.scope))
        .execute(conn)
        .await?;
    Ok(())
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

/// Lockouts in force, then counters with failures, newest first (at most 200).
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<LockoutView>> {
    let now = OffsetDateTime::now_utc();
    let mut rows: Vec<LockoutView> = login_failures::table
        .filter(login_failures::locked_until.gt(now).or(login_failures::failures.gt(0)))
        .order(login_failures::updated_at.desc())
        .limit(200)
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
        .await?;
    for row in &mut rows {
        row.locked_until = row.locked_until.filter(|until| *until > now);
    }
    rows.sort_by_key(|row| row.locked_until.is_none());
    Ok(rows)
}

/// Lifts a lockout and forgets its failures; whether there was one.
pub async fn unlock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    let deleted = diesel::delete(login_failures::table.filter(login_failures::id.eq(id)))
        .execute(conn)
        .await?;
    Ok(deleted > 0)
}

/// Forgets counters idle for longer than the escalation memory (the retention of this table).
pub async fn purge(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    let now = OffsetDateTime::now_utc();
    diesel::delete(
        login_failures::table
            .filter(login_failures::updated_at.lt(now - ESCALATION_MEMORY))
            .filter(
                login_failures::locked_until
                    .is_null()
                    .or(login_failures::locked_until.lt(now)),
            ),
    )
    .execute(conn)
    .await
}
