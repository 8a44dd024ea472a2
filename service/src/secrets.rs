//! Secrets at rest: argon2id hashes of PINs, passwords and device secrets (the cloud hashes staff
//! PINs, the gateways verify them offline), and random tokens.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;

/// A secret could not be hashed (the system's random source failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the secret: {0}")]
pub struct HashError(String);

/// The argon2id PHC string of `secret`, with a fresh random salt (argon2's default parameters:
/// 19 MiB, two passes).
pub fn hash_secret(secret: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `secret` matches the PHC string `hash`. A malformed hash never matches.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    Argon2::default().verify_password(secret.as_bytes(), hash).is_ok()
}

/// `bytes` random bytes from the operating system, base64url without padding: device secrets,
/// refresh tokens, session ids.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) {
    // The OS random source failing is not something a service can work around.
    getrandom::fill(buf).expect("the operating system's random source failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_secret("1234").expect("hash");
        let b = hash_secret("1234").expect("hash");
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_secret("1234", &a));
        assert!(!verify_secret("1235", &a));
        assert!(!verify_secret("1234", "not a hash"));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let t = random_token(32);
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token(32));
    }
}
