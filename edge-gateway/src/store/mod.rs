//! The gateway's queries. Every function here takes one `&mut AsyncPgConnection` (never the pool or
//! the app state), so that a caller composes several inside one transaction: a tablet write holds its
//! row, its outbox entry, its idempotency record and its audit record in the same commit. Rules (who
//! may do what, which dates are valid) stay in the services above; these functions only read and
//! write rows.

pub mod admin_sessions;
pub mod appointments;
pub mod audit;
pub mod booking;
pub mod changes;
pub mod channels;
pub mod collections;
pub mod conflicts;
pub mod console;
pub mod database;
pub mod devices;
pub mod enrollment_codes;
pub mod idempotency;
pub mod labs;
pub mod lockouts;
pub mod outbox;
pub mod paper_prescriptions;
pub mod pin_resets;
pub mod reads;
pub mod revocations;
pub mod sessions;
pub mod signing_keys;
pub mod staff;
pub mod walk_ins;

/// A JSON (de)serialisation failure inside a transaction, as the database error that rolls it back.
pub(crate) fn serde_failure(e: serde_json::Error) -> diesel::result::Error {
    diesel::result::Error::SerializationError(Box::new(e))
}
