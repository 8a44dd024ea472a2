//! HTTP header names of the contract, and the `If-Match` / `ETag` version format.

/// Sent by the tablet on `POST /v1/collections`: the same key and body replay the first answer.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Sent by the tablet on `PATCH /v1/appointments/{id}`: `"<version>"` it last saw.
pub const IF_MATCH: &str = "If-Match";
/// Sent by the gateway with a versioned resource: `"<version>"`.
pub const ETAG: &str = "ETag";
/// Echoed by the gateway on every answer (and `request_id` of problems), to quote to the support.
pub const REQUEST_ID: &str = "X-Request-Id";
/// Sent by the gateway with 429 and 503: seconds to wait before retrying.
pub const RETRY_AFTER: &str = "Retry-After";

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// The entity tag of a version: `"7"` (quotes included, as HTTP wants).
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The version in an `If-Match` value: `"7"`, or `7` as a courtesy to hand-written clients.
///
/// Weak tags (`W/"7"`), lists and `*` are refused: an update must name the one version it read.
pub fn parse_if_match(value: &str) -> Option<i64> {
    let value = value.trim();
    let digits = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether an `Idempotency-Key` is acceptable: 1 to 128 visible ASCII characters (a UUID is ideal).
pub fn is_valid_idempotency_key(value: &str) -> bool {
    (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_round_trips_with_etag() {
        assert_eq!(etag(7), "\"7\"");
        assert_eq!(parse_if_match(&etag(7)), Some(7));
        assert_eq!(parse_if_match(" 12 "), Some(12));
        for bad in [
            "",
            "\"\"",
            "W/\"7\"",
            "*",
            "\"7\", \"8\"",
            "\"-1\"",
            "\"7",
            "99999999999999999999",
        ] {
            assert_eq!(parse_if_match(bad), None, "{bad}");
        }
    }

    #[test]
    fn idempotency_keys() {
        assert!(is_valid_idempotency_key("0195a3c2-7e4b-7c1d-9a55-3f0e8b7d6c21"));
        assert!(!is_valid_idempotency_key(""));
        assert!(!is_valid_idempotency_key("with space"));
        assert!(!is_valid_idempotency_key(&"k".repeat(129)));
    }
}
