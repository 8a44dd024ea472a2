//! PIN reset codes (`pin_reset_codes`): one per staff member, kept by the SHA-256 of the code.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::edge::schema::pin_reset_codes;
use time::OffsetDateTime;
use uuid::Uuid;

/// Stores the code of this hash for `staff`, replacing any earlier one (used or not).
pub async fn replace(
    conn: &mut AsyncPgConnection,
    staff: Uuid,
    hash: &[u8],
    created_by: Uuid,
    expires_at: OffsetDateTime,
) -> QueryResult<()> {
    let now = OffsetDateTime::now_utc();
    diesel::insert_into(pin_reset_codes::table)
        .values((
            pin_reset_codes::staff_id.eq(staff),
            pin_reset_codes::code_sha256.eq(hash),
            pin_reset_codes::created_by.eq(created_by),
            pin_reset_codes::created_at.eq(now),
            pin_reset_codes::expires_at.eq(expires_at),
        ))
        .on_conflict(pin_reset_codes::staff_id)
        .do_update()
        .set((
            pin_reset_codes::code_sha256.eq(hash),
            pin_reset_codes::created_by.eq(created_by),
            pin_reset_codes::created_at.eq(now),
            pin_reset_codes::expires_at.eq(expires_at),
            pin_reset_codes::used_at.eq(None::<OffsetDateTime>),
            pin_reset_codes::device_id.eq(None::<Uuid>),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Whether `staff`'s code is the code of this hash, unused and unexpired at `now`.
pub async fn is_live(conn: &mut AsyncPgConnection, staff: Uuid, hash: &[u8], now: OffsetDateTime) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        pin_reset_codes::table
            .find(staff)
            .filter(pin_reset_codes::code_sha256.eq(hash))
            .filter(pin_reset_codes::used_at.is_null())
            .filter(pin_reset_codes::expires_at.gt(now)),
    ))
    .get_result(conn)
    .await
}

/// Spends `staff`'s code on `device` if it is the code of this hash and still live at `now`, by the
/// statement that checks it (single use, whatever runs concurrently); whether it was.
pub async fn spend(
    conn: &mut AsyncPgConnection,
    staff: Uuid,
    hash: &[u8],
    device: Uuid,
    now: OffsetDateTime,
) -> QueryResult<bool> {
    diesel::update(
        pin_reset_codes::table
            .find(staff)
            .filter(pin_reset_codes::code_sha256.eq(hash))
            .filter(pin_reset_codes::used_at.is_null())
            .filter(pin_reset_codes::expires_at.gt(now)),
    )
    .set((pin_reset_codes::used_at.eq(now), pin_reset_codes::device_id.eq(device)))
    .execute(conn)
    .await
    .map(|updated| updated == 1)
}

/// Removes the codes expired or used before `before`.
pub async fn purge(conn: &mut AsyncPgConnection, before: OffsetDateTime) -> QueryResult<usize> {
    diesel::delete(
        pin_reset_codes::table.filter(
            pin_reset_codes::expires_at
                .lt(before)
                .or(pin_reset_codes::used_at.lt(before)),
        ),
    )
    .execute(conn)
    .await
}
