//! Prefixed random identifiers and the timestamp conventions shared by every layer.
//!
//! Ids are `<prefix>_` + 22 base62 characters (~131 bits from the OS CSPRNG): URL-safe, opaque to
//! clients, and unguessable. Timestamps are stored as epoch milliseconds and shown as RFC 3339 UTC.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::{rngs::OsRng, Rng};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters from the OS CSPRNG.
pub fn random_base62(len: usize) -> String {
    let mut rng = OsRng;
    (0..len)
        .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
        .collect()
}

/// A new id such as `ws_3kT9…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(22))
}

/// Now, in epoch milliseconds (the storage representation).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Epoch milliseconds as RFC 3339 UTC with a `Z`, to the second (the wire representation).
pub fn rfc3339(ms: i64) -> String {
    let dt: DateTime<Utc> = Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    dt.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_are_distinct() {
        let a = new_id("ws");
        let b = new_id("ws");
        assert!(a.starts_with("ws_") && a.len() == 25, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_z() {
        assert_eq!(rfc3339(1_780_308_000_000), "2026-06-01T10:00:00Z");
    }
}
