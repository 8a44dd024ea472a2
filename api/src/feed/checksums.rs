//! Counts and checksums of a lab's scope, for the nightly reconciliation.

use diesel_async::AsyncPgConnection;
use labedge_schema::sync::{Checksums, Entity, TableChecksum, digest};

use super::changes;
use super::scope::Scope;

/// The digests of `entities` over the lab's scope (per bucket too with `buckets`), computed by the
/// same [`digest`] the gateway runs over its own tables, and the head position they were taken at.
/// Run it in one `REPEATABLE READ` transaction, as [`crate::feed::read_checksums`] does.
pub async fn compute(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    lab_code: &str,
    entities: &[Entity],
    buckets: bool,
) -> diesel::QueryResult<Checksums> {
    let position = changes::head(conn).await?;
    let mut tables = Vec::with_capacity(entities.len());
    for &entity in entities {
        let (whole, per_bucket) = digest(conn, entity, &scope.from_where(entity), buckets).await?;
        tables.push(TableChecksum {
            entity,
            digest: whole,
            buckets: per_bucket,
        });
    }
    Ok(Checksums {
        lab: lab_code.to_owned(),
        position,
        tables,
    })
}
