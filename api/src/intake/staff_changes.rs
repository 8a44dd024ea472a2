//! Staff changes made at a lab's gateway (issue 15 item 4): a staff member's new PIN hash (their own
//! change, or a lab admin's reset code used on a tablet) and a lab admin's deactivation or
//! reactivation. The staff member must be of the sending lab, checked with the batch's other
//! references (`References::refusal`); the update names the lab too, so that a mistake there
//! cannot reach another lab's row. The row's version moves, so that the change feed carries the
//! change back to every gateway of the lab.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_protocol::relay::{MutationAck, PinHash};
use labedge_schema::cloud::schema::staff;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Reason, applied, rejected};

/// Longest PIN hash taken: an argon2id PHC string is about a hundred characters.
const MAX_PIN_HASH_LEN: usize = 512;

/// Whether `hash` is an argon2id PHC string, as the gateways make (and check) them. Anything else
/// would lock the staff member out of every gateway of the lab at the next sync.
fn is_pin_hash(hash: &str) -> bool {
    hash.len() <= MAX_PIN_HASH_LEN
        && hash.starts_with("$argon2id$")
        && hash.split('$').count() == 6
        && hash.bytes().all(|b| b.is_ascii_graphic())
}

/// Sets the PIN hash of staff member `staff_id` of lab `lab_id`.
pub(super) async fn set_pin(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation_id: Uuid,
    staff_id: Uuid,
    pin_hash: &PinHash,
) -> QueryResult<MutationAck> {
    if !is_pin_hash(&pin_hash.0) {
        return Ok(rejected(mutation_id, "invalid_pin_hash: not an argon2id hash"));
    }
    let updated = diesel::update(
        staff::table
            .filter(staff::id.eq(staff_id))
            .filter(staff::lab_id.eq(lab_id)),
    )
    .set((
        staff::pin_hash.eq(&pin_hash.0),
        staff::version.eq(staff::version + 1),
        staff::updated_at.eq(OffsetDateTime::now_utc()),
    ))
    .execute(conn)
    .await?;
    Ok(verdict(mutation_id, updated))
}

/// Activates or deactivates staff member `staff_id` of lab `lab_id`.
pub(super) async fn set_active(
    conn: &mut AsyncPgConnection,
    lab_id: Uuid,
    mutation_id: Uuid,
    staff_id: Uuid,
    active: bool,
) -> QueryResult<MutationAck> {
    let updated = diesel::update(
        staff::table
            .filter(staff::id.eq(staff_id))
            .filter(staff::lab_id.eq(lab_id)),
    )
    .set((
        staff::active.eq(active),
        staff::version.eq(staff::version + 1),
        staff::updated_at.eq(OffsetDateTime::now_utc()),
    ))
    .execute(conn)
    .await?;
    Ok(verdict(mutation_id, updated))
}

fn verdict(mutation_id: Uuid, updated: usize) -> MutationAck {
    if updated == 1 {
        applied(mutation_id)
    } else {
        rejected(mutation_id, Reason::ForeignStaff.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_argon2id_hashes_are_taken() {
        assert!(is_pin_hash(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"
        ));
        assert!(!is_pin_hash("1234"));
        assert!(!is_pin_hash("$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"));
        assert!(!is_pin_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA"));
        assert!(!is_pin_hash(&format!(
            "$argon2id$v=19$m=1,t=2,p=1$s$h{}",
            "a".repeat(600)
        )));
        assert!(!is_pin_hash("$argon2id$v=19$m=19456,t=2,p=1$c2Fs dA$aGFzaA"));
    }
}
