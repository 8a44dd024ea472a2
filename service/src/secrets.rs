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

/// The process's argon2 work, one hash or verification at a time (issue 16, item 6). Each takes 19
/// MiB for tens of milliseconds; a shift starting (thirty tablets logging in within a second) would
/// otherwise hold as many blocks at once, which glibc then keeps in its arenas. Queued instead, the
/// thirtieth waits well under a second, and the peak stays one block.
static ARGON2: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// [`hash_secret`] off the async workers, one argon2 computation at a time in the process.
pub async fn hash_secret_queued(secret: String) -> Result<String, HashError> {
    let _turn = ARGON2.acquire().await.map_err(|e| HashError(e.to_string()))?;
    tokio::task::spawn_blocking(move || hash_secret(&secret))
        .await
        .map_err(|e| HashError(e.to_string()))?
}

/// [`verify_secret`] off the async workers, one argon2 computation at a time in the process.
pub async fn verify_secret_queued(secret: String, hash: String) -> bool {
    let Ok(_turn) = ARGON2.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_secret(&secret, &hash))
        .await
        .unwrap_or(false)
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
