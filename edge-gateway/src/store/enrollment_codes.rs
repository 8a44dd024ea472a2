//! One-time enrollment codes (`enrollment_codes`, keyed by the SHA-256 of the code).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::enrollment_codes;
use time::OffsetDateTime;
use uuid::Uuid;

/// Stores a code of `created_by` by its hash.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    created_by: Uuid,
    expires_at: OffsetDateTime,
) -> QueryResult<()> {
    diesel::insert_into(enrollment_codes::table)
        .values((
            enrollment_codes::code_sha256.eq(hash),
            enrollment_codes::created_by.eq(created_by),
            enrollment_codes::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Whether the code of this hash is unused and unexpired at `now`.
pub async fn is_live(conn: &mut AsyncPgConnection, hash: &[u8], now: OffsetDateTime) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        enrollment_codes::table
            .find(hash)
            .filter(enrollment_codes::used_at.is_null())
            .filter(enrollment_codes::expires_at.gt(now)),
    ))
    .get_result(conn)
    .await
}

/// Spends the code of this hash for `device` if it is still live at `now`, by the same statement
/// that checks it (single use); returns who created it, `None` when it was not live.
pub async fn spend(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
    device: Uuid,
    now: OffsetDateTime,
) -> QueryResult<Option<Uuid>> {
    diesel::update(
        enrollment_codes::table
            .find(hash)
            .filter(enrollment_codes::used_at.is_null())
            .filter(enrollment_codes::expires_at.gt(now)),
    )
    .set((
        enrollment_codes::used_at.eq(now),
        enrollment_codes::device_id.eq(device),
    ))
    .returning(enrollment_codes::created_by)
    .get_result(conn)
    .await
    .optional()
}

/// Removes the codes expired or used before `before`.
pub async fn purge(conn: &mut AsyncPgConnection, before: OffsetDateTime) -> QueryResult<usize> {
    diesel::delete(
        enrollment_codes::table.filter(
            enrollment_codes::expires_at
                .lt(before)
                .or(enrollment_codes::used_at.lt(before)),
        ),
    )
    .execute(conn)
    .await
}
