//! Tablet and staff authentication at the gateway, and the admin console's sessions.
//!
//! A tablet is an enrolled, revocable identity (`enroll`); a staff member logs in on it with a PIN
//! (`sessions`), which works offline; every request carries a short-lived access token (`tokens`,
//! signed by the `keys` ring) checked by the `Principal` extractor, including revocation
//! (`revocation`) on every request.

pub mod admin;
pub mod enroll;
pub mod keys;
pub mod lockout;
pub mod manage;
pub mod principal;
pub mod revocation;
pub mod sessions;
pub mod tokens;

pub use principal::Principal;
