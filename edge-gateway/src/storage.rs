//! The lab database's disk: its size, the free space left beside it, how fast it grows, and so how
//! many days the lab can go on writing without the cloud (the outbox and the collections wait here
//! until it is back). Shown in the console's status.
//!
//! The growth is measured, not modelled: housekeeping samples the database's size every hour, and
//! the growth is the last day's samples' (or, in the first day, of at least an hour of them). During
//! an outage that is the outage's own rate, which is the one that matters.

use std::path::Path;

use diesel::sql_types::{BigInt, Nullable};
use diesel::{OptionalExtension, QueryResult};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

/// How long samples are kept.
const KEPT_DAYS: i32 = 8;

/// The lab database's disk, as `GET /admin/v1/status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Storage {
    /// The lab's database, bytes.
    pub database_bytes: i64,
    /// Free on the disk holding it (`console.database_disk`), bytes; null when that path cannot be
    /// read (another machine's database, a wrong path).
    pub free_bytes: Option<u64>,
    /// The database's growth a day, over the last day of hourly samples; null before an hour of
    /// them.
    pub growth_bytes_per_day: Option<i64>,
    /// Days the free space lasts at that growth; null when either is unknown or the database does
    /// not grow.
    pub autonomy_days: Option<f64>,
}

#[derive(diesel::QueryableByName)]
struct Size {
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

#[derive(diesel::QueryableByName)]
struct Growth {
    #[diesel(sql_type = Nullable<BigInt>)]
    per_day: Option<i64>,
}

/// Records the database's size now, and forgets samples older than eight days.
pub async fn sample(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO storage_samples (database_bytes) VALUES (pg_database_size(current_database())) \
         ON CONFLICT (at) DO NOTHING",
    )
    .execute(conn)
    .await?;
    diesel::sql_query("DELETE FROM storage_samples WHERE at < now() - make_interval(days => $1)")
        .bind::<diesel::sql_types::Integer, _>(KEPT_DAYS)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The daily growth from the samples: between the latest and the oldest of the day before it, when
/// they are at least an hour apart.
pub async fn growth(conn: &mut AsyncPgConnection) -> QueryResult<Option<i64>> {
    let found: Option<Growth> = diesel::sql_query(
        "WITH latest AS (SELECT at, database_bytes FROM storage_samples ORDER BY at DESC LIMIT 1), \
              base AS (SELECT s.at, s.database_bytes FROM storage_samples s, latest l \
                       WHERE s.at >= l.at - interval '24 hours' ORDER BY s.at LIMIT 1) \
         SELECT CASE WHEN l.at - b.at >= interval '1 hour' \
                     THEN round((l.database_bytes - b.database_bytes) * 86400.0 \
                                / extract(epoch FROM l.at - b.at))::bigint END AS per_day \
         FROM latest l, base b",
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(found.and_then(|g| g.per_day))
}

/// The size of the lab's database now.
pub async fn database_bytes(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    let size: Size = diesel::sql_query("SELECT pg_database_size(current_database()) AS bytes")
        .get_result(conn)
        .await?;
    Ok(size.bytes)
}

/// Bytes free for an unprivileged writer on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(path).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Days `free` bytes last at `growth` bytes a day.
pub fn autonomy_days(free: Option<u64>, growth: Option<i64>) -> Option<f64> {
    let (free, growth) = (free?, growth?);
    #[expect(
        clippy::cast_precision_loss,
        reason = "days to one decimal: bytes beyond 2^52 do not matter"
    )]
    (growth > 0).then(|| free as f64 / growth as f64)
}

/// The storage now: the database's size, the disk's free space at `disk`, the growth, the autonomy.
pub async fn storage(conn: &mut AsyncPgConnection, disk: &Path) -> QueryResult<Storage> {
    let database_bytes = database_bytes(conn).await?;
    let growth_bytes_per_day = growth(conn).await?;
    let free_bytes = free_bytes(disk);
    Ok(Storage {
        database_bytes,
        free_bytes,
        growth_bytes_per_day,
        autonomy_days: autonomy_days(free_bytes, growth_bytes_per_day),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_autonomy_is_the_free_space_over_the_daily_growth_and_unbounded_without_growth() {
        assert_eq!(autonomy_days(Some(10_000), Some(2_500)), Some(4.0));
        assert_eq!(autonomy_days(Some(10_000), Some(0)), None);
        assert_eq!(autonomy_days(Some(10_000), Some(-5)), None);
        assert_eq!(autonomy_days(None, Some(5)), None);
        assert_eq!(autonomy_days(Some(5), None), None);
    }

    #[test]
    fn the_free_space_of_an_existing_path_is_read_and_of_a_missing_one_is_unknown() {
        assert!(free_bytes(Path::new("/")).is_some_and(|b| b > 0));
        assert_eq!(free_bytes(Path::new("/no/such/path/for/labedge")), None);
    }
}
