//! Purges of the authentication, idempotency and relay tables, hourly. Each rule keeps a row as long
//! as it can still matter, and not much longer (a database dump holds less, and a lab's disk lasts):
//!
//! | table | kept until | why that long |
//! |---|---|---|
//! | `login_failures` | idle 24 h and not locked | the escalation of repeated lockouts remembers a day |
//! | `idempotency_keys` | 7 days after the write | a tablet may retry a write after two days offline (the grace bound) |
//! | `refresh_tokens` | 1 day after expiry | a spent token presented again before its expiry revokes its session |
//! | `auth_sessions` | 30 days after its end (grace bound or revocation) | investigations; a missing session counts as revoked |
//! | `admin_sessions` | 1 day after its end | the console session is 8 h at most |
//! | `enrollment_codes` | 7 days after expiry or use | which admin made which code, for a week |
//! | `pin_reset_codes` | 7 days after expiry or use | the same, for PIN reset codes (the audit log keeps it for good) |
//! | `outbox`, applied entries | 30 days after they were sent | the check of what a restored cloud lost looks 7 days back (`sync::lost`); the rest for investigations. Pending, conflicting and quarantined entries stay |
//! | `change_log` | 3 days | a tablet's cursor is good for the day it was issued only; a day more for time zones |
//! | `collections`, with their tubes and void | 30 days after the sample was taken, once the cloud holds it (no outbox entry of it pending, in conflict or rejected) | a mistake is voided within days; the LIS keeps the record; a void later goes through the central lab |

use std::time::Duration as StdDuration;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use labedge_schema::db::PgPool;
use labedge_service::workers::Stop;
use time::{Duration, OffsetDateTime};

use crate::store::{admin_sessions, changes, collections, enrollment_codes, idempotency, outbox, pin_resets, sessions};

/// How long an idempotency key is kept after its write.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::days(7);
/// How long a refresh token is kept after it expired.
pub const REFRESH_TOKEN_RETENTION: Duration = Duration::days(1);
/// How long a session is kept after it ended.
pub const SESSION_RETENTION: Duration = Duration::days(30);
/// How long a console session is kept after it ended.
pub const ADMIN_SESSION_RETENTION: Duration = Duration::days(1);
/// How long an enrollment code is kept after it expired or was used.
pub const ENROLLMENT_CODE_RETENTION: Duration = Duration::days(7);
/// How long a PIN reset code is kept after it expired or was used.
pub const PIN_RESET_CODE_RETENTION: Duration = Duration::days(7);

/// How long an outbox entry the cloud applied is kept after it was sent.
pub const SENT_OUTBOX_RETENTION: Duration = Duration::days(30);
/// How long a change-log entry is kept.
pub const CHANGE_LOG_RETENTION: Duration = Duration::days(3);
/// How long a collection the cloud holds is kept after its sample was taken.
pub const COLLECTION_RETENTION: Duration = Duration::days(30);

const INTERVAL: StdDuration = StdDuration::from_secs(3600);

/// Rows removed by one pass, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// `login_failures`.
    pub login_failures: usize,
    /// `idempotency_keys`.
    pub idempotency_keys: usize,
    /// `refresh_tokens`.
    pub refresh_tokens: usize,
    /// `auth_sessions`.
    pub auth_sessions: usize,
    /// `admin_sessions`.
    pub admin_sessions: usize,
    /// `enrollment_codes`.
    pub enrollment_codes: usize,
    /// `pin_reset_codes`.
    pub pin_reset_codes: usize,
    /// `outbox` entries applied by the cloud.
    pub outbox_sent: usize,
    /// `change_log` entries.
    pub change_log: usize,
    /// `collections` the cloud holds (their tubes and voids with them).
    pub collections: usize,
}

/// One pass of every rule, as of `now`.
pub async fn purge(conn: &mut AsyncPgConnection, now: OffsetDateTime) -> QueryResult<Purged> {
    let login_failures = crate::auth::lockout::purge(conn).await?;
    let idempotency_keys = idempotency::purge(conn, now - IDEMPOTENCY_RETENTION).await?;
    let ended = sessions::purge(conn, now - SESSION_RETENTION, now - REFRESH_TOKEN_RETENTION).await?;
    let admin_sessions = admin_sessions::purge(conn, now - ADMIN_SESSION_RETENTION).await?;
    let enrollment_codes = enrollment_codes::purge(conn, now - ENROLLMENT_CODE_RETENTION).await?;
    let pin_reset_codes = pin_resets::purge(conn, now - PIN_RESET_CODE_RETENTION).await?;
    let outbox_sent = outbox::purge_sent(conn, now - SENT_OUTBOX_RETENTION).await?;
    let change_log = changes::purge(conn, now - CHANGE_LOG_RETENTION).await?;
    let collections = collections::purge(conn, now - COLLECTION_RETENTION).await?;
    Ok(Purged {
        login_failures,
        idempotency_keys,
        refresh_tokens: ended.refresh_tokens,
        auth_sessions: ended.auth_sessions,
        admin_sessions,
        enrollment_codes,
        pin_reset_codes,
        outbox_sent,
        change_log,
        collections,
    })
}

/// Runs [`purge`] every hour, the first time a minute after the start, until the service stops.
pub async fn run(pool: PgPool, stop: Stop) {
    if !stop.sleep(StdDuration::from_secs(60)).await {
        return;
    }
    loop {
        let outcome = match pool.get().await {
            Ok(mut conn) => {
                // Sampled after the purge, so that the growth is what the purges leave.
                let purged = purge(&mut conn, OffsetDateTime::now_utc()).await;
                match (purged, crate::storage::sample(&mut conn).await) {
                    (Ok(purged), Ok(())) => Ok(purged),
                    (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(purged) if purged != Purged::default() => tracing::info!(
                login_failures = purged.login_failures,
                idempotency_keys = purged.idempotency_keys,
                refresh_tokens = purged.refresh_tokens,
                auth_sessions = purged.auth_sessions,
                admin_sessions = purged.admin_sessions,
                enrollment_codes = purged.enrollment_codes,
                pin_reset_codes = purged.pin_reset_codes,
                outbox_sent = purged.outbox_sent,
                change_log = purged.change_log,
                collections = purged.collections,
                "expired authentication, idempotency and relay rows purged"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping pass failed; next in an hour"),
        }
        if !stop.sleep(INTERVAL).await {
            return;
        }
    }
}
