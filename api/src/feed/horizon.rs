//! The horizon job: appointments enter a lab's window as days pass, without any change of their own,
//! so nothing would tell the gateway about them. At start and every `feed.horizon_interval_s`, the
//! job computes the window's end (the end of the `window_ahead_days`-th day after today) and appends a
//! change-log entry for every appointment scheduled between the end it reached last time (kept in
//! `feed_horizon`) and the new one. The feed then sends each as an upsert with its patient and
//! prescription. The end moves once a day, at local midnight, so most runs append nothing.
//!
//! Appointments leaving the window at its far end (older than `window_back_days`) get no entry: the
//! gateway drops them by the same rule, and the nightly reconciliation would remove them anyway.

use std::time::Duration;

use diesel::sql_types::{BigInt, Bool, Nullable, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use labedge_schema::db::PgPool;
use labedge_service::workers::Stop;
use time::OffsetDateTime;

use super::scope::Window;
use crate::config::FeedConfig;

/// What one run of the job did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HorizonRun {
    /// The end of the window reached by the previous run (`None` on the very first run).
    pub previous: Option<OffsetDateTime>,
    /// The end of the window now.
    pub horizon: OffsetDateTime,
    /// Change-log entries appended (appointments that entered the window).
    pub appended: i64,
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    horizon: Option<OffsetDateTime>,
}

#[derive(diesel::QueryableByName)]
struct Appended {
    #[diesel(sql_type = BigInt)]
    appended: i64,
}

/// Advances the horizon to the window's end at `now`, appending an `upsert` entry (with
/// `change_log_append`, for the appointment's lab) for each appointment scheduled from the previous
/// end — or from `now` on the very first run, or from the window's start if the previous end is
/// older — up to the new end. One transaction: concurrent runs (two API instances) queue on the
/// stored row, and the entries become visible with the new horizon or not at all.
pub async fn advance_horizon(
    conn: &mut AsyncPgConnection,
    feed: &FeedConfig,
    now: OffsetDateTime,
) -> diesel::QueryResult<HorizonRun> {
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        let window = Window::at(conn, feed, Some(now)).await?;
        // The first run finds no row: it announces the appointments from now on, which a
        // gateway that followed the feed before this job existed may have been told were out of
        // its window.
        let stored: Vec<Stored> = diesel::sql_query("SELECT horizon FROM feed_horizon WHERE singleton FOR UPDATE")
            .load(conn)
            .await?;
        let previous = stored.into_iter().next().and_then(|s| s.horizon);
        diesel::sql_query(
            "INSERT INTO feed_horizon (singleton, horizon, updated_at) VALUES (true, $1, now()) \
             ON CONFLICT (singleton) DO UPDATE SET horizon = excluded.horizon, updated_at = now()",
        )
        .bind::<Timestamptz, _>(window.to)
        .execute(conn)
        .await?;
        let start = previous.unwrap_or(window.now).max(window.from);
        let mut appended = 0;
        if start < window.to {
            // change_log_append takes the feed's commit lock: the entries are the last statement
            // of the transaction, so the lock is held only until the commit that follows.
            let row: Appended = diesel::sql_query(
                "WITH announced AS MATERIALIZED ( \
                   SELECT change_log_append('appointment', a.id::text, a.lab_id, 'upsert') \
                   FROM (SELECT id, lab_id FROM appointments \
                         WHERE scheduled_at >= $1 AND scheduled_at < $2 ORDER BY scheduled_at, id) a) \
                 SELECT count(*)::bigint AS appended FROM announced",
            )
            .bind::<Timestamptz, _>(start)
            .bind::<Timestamptz, _>(window.to)
            .get_result(conn)
            .await?;
            appended = row.appended;
        }
        Ok(HorizonRun {
            previous,
            horizon: window.to,
            appended,
        })
    })
    .await
}

#[derive(diesel::QueryableByName)]
struct Recovery {
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
}

/// Runs [`advance_horizon`] now and every `feed.horizon_interval_s` until the service stops, on the
/// primary only (a standby refuses writes, and the primary's job covers every lab). Failures are
/// logged and retried at the next tick.
pub async fn run(pool: PgPool, feed: FeedConfig, stop: Stop) {
    let mut ticks = tokio::time::interval(Duration::from_secs(feed.horizon_interval_s.max(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while stop.until(ticks.tick()).await.is_some() {
        if let Err(e) = run_once(&pool, &feed).await {
            tracing::warn!(error = format!("{e:#}"), timezone = %feed.timezone, "feed horizon job failed; retrying at the next tick");
        }
    }
}

async fn run_once(pool: &PgPool, feed: &FeedConfig) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut conn = pool.get().await.context("get a database connection")?;
    let recovery: Recovery = diesel::sql_query("SELECT pg_is_in_recovery() AS in_recovery")
        .get_result(&mut conn)
        .await
        .context("ask whether the database is a standby")?;
    if recovery.in_recovery {
        tracing::debug!("feed horizon job skipped: the database is a standby");
        return Ok(());
    }
    let run = advance_horizon(&mut conn, feed, OffsetDateTime::now_utc())
        .await
        .context("advance the feed horizon (check feed.timezone if PostgreSQL does not know it)")?;
    if run.appended > 0 || run.previous.is_none() {
        tracing::info!(
            feed.horizon = %run.horizon,
            feed.appended = run.appended,
            "feed horizon advanced: appointments entering the window announced"
        );
    }
    Ok(())
}
