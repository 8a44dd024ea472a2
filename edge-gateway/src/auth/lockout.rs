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

use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::config::AuthConfig;
pub use crate::store::lockouts::LockoutView;
use crate::store::lockouts::{self as store, Counter, CounterKey};

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

/// Counts one attempt of `subject` before it is verified. `Err(until)` while a lockout is in force:
/// the attempt must be refused without verifying anything.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    subject: &Subject<'_>,
    policy: Policy,
) -> QueryResult<Result<Reserved, OffsetDateTime>> {
    let scope = subject.scope();
    let key = match subject {
        Subject::Pin { login, device } => CounterKey {
            scope: &scope,
            kind: "pin",
            login,
            device: Some(*device),
            source: None,
        },
        Subject::Admin { login, source } => CounterKey {
            scope: &scope,
            kind: "admin",
            login,
            device: None,
            source: Some(source),
        },
    };
    let counted = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            store::ensure(conn, &key).await?;
            // The row lock serialises concurrent attempts on the same subject.
            let row = store::lock(conn, &scope).await?;
            let now = OffsetDateTime::now_utc();
            if let Some(until) = row.locked_until.filter(|until| *until > now) {
                return Ok(Err(until));
            }
            let counter = count_attempt(row, policy, now);
            store::set(conn, &scope, counter).await?;
            Ok(Ok(counter.locked_until.is_some()))
        })
        .await?;
    Ok(counted.map(|locks| Reserved { scope, locks }))
}

/// The counter after one more attempt at `now`: failures older than the lockout and escalations
/// older than [`ESCALATION_MEMORY`] forgotten, a lockout started when the attempt reaches the limit.
fn count_attempt(row: Counter, policy: Policy, now: OffsetDateTime) -> Counter {
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
    Counter {
        failures,
        locked_until,
        lockouts,
        updated_at: now,
    }
}

/// The attempt was right: its subject starts afresh (lockout lifted, escalation forgotten).
pub async fn succeeded(conn: &mut AsyncPgConnection, attempt: Reserved) -> QueryResult<()> {
    store::delete(conn, &attempt.scope).await
}

/// Lockouts in force, then counters with failures, newest first (at most 200).
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<LockoutView>> {
    let now = OffsetDateTime::now_utc();
    let mut rows = store::list(conn, now, 200).await?;
    for row in &mut rows {
        row.locked_until = row.locked_until.filter(|until| *until > now);
    }
    rows.sort_by_key(|row| row.locked_until.is_none());
    Ok(rows)
}

/// Lifts a lockout and forgets its failures; whether there was one.
pub async fn unlock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    store::delete_by_id(conn, id).await
}

/// Forgets counters idle for longer than the escalation memory (the retention of this table).
pub async fn purge(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    let now = OffsetDateTime::now_utc();
    store::purge(conn, now - ESCALATION_MEMORY, now).await
}
