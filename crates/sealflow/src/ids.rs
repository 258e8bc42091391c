//! Prefixed random identifiers and the timestamp conventions shared by every layer.
//!
//! Ids are `<prefix>_` + 22 base62 characters (~131 bits from the OS CSPRNG): URL-safe, opaque to
//! clients, and unguessable. Run ids put their creation time first ([`new_ordered_id`]), for the
//! indexes they key. Timestamps are stored as epoch milliseconds and shown as RFC 3339 UTC.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::{rngs::OsRng, RngCore};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters from the OS CSPRNG, from one draw of random bytes per 32
/// characters (a system call per character showed up in profiles). Bytes of 248 and above are
/// rejected so that `byte % 62` stays uniform (248 = 4 × 62); a short draw is topped up.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 48];
    while out.len() < len {
        OsRng.fill_bytes(&mut buf);
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[usize::from(b % 62)] as char);
        }
    }
    out
}

/// A new id such as `ws_3kT9…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(22))
}

/// A new id whose first nine characters after the prefix are `at_ms` in fixed-width base62, then
/// the 22 random characters of [`new_id`]: ids made later sort later (base62's digits are in
/// ASCII order), within a millisecond at random. Used for runs: their id keys the runs table's
/// primary index and, through it, the steps' and the audit trail's run index, and a random key
/// puts every new run on another leaf page of each. With ids in time order a batch of runs
/// lands on the same few pages, so a group commit writes (and SQLite fsyncs) fewer of them, and
/// a large history keeps the pages it writes in cache. It tells nothing `created_at` does not.
pub fn new_ordered_id(prefix: &str, at_ms: i64) -> String {
    let mut time = [b'0'; 9];
    let mut rest = at_ms.max(0) as u64;
    for digit in time.iter_mut().rev() {
        *digit = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    let time = std::str::from_utf8(&time).expect("base62 is ASCII");
    format!("{prefix}_{time}{}", random_base62(22))
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
    fn random_base62_has_the_asked_length_and_uses_the_whole_alphabet() {
        for len in [0, 1, 22, 47, 48, 100] {
            assert_eq!(random_base62(len).len(), len);
        }
        let many: String = (0..200).map(|_| random_base62(22)).collect();
        for c in BASE62 {
            assert!(many.contains(*c as char), "{} never drawn", *c as char);
        }
        assert!(many.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn ordered_ids_sort_by_their_time_and_keep_the_random_part() {
        let early = new_ordered_id("run", 1_780_308_000_000);
        let later = new_ordered_id("run", 1_780_308_000_001);
        let much_later = new_ordered_id("run", 4_102_444_800_000); // 2100
        assert!(
            early < later && later < much_later,
            "{early} {later} {much_later}"
        );
        assert_eq!(early.len(), "run_".len() + 9 + 22, "{early}");
        assert!(early[4..].chars().all(|c| c.is_ascii_alphanumeric()), "{early}");
        // The same millisecond twice: the same time part, different ids.
        let twin = new_ordered_id("run", 1_780_308_000_000);
        assert_eq!(early[..13], twin[..13]);
        assert_ne!(early, twin);
        assert_eq!(new_ordered_id("run", 0)[..13], *"run_000000000");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_z() {
        assert_eq!(rfc3339(1_780_308_000_000), "2026-06-01T10:00:00Z");
    }
}
