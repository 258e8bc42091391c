//! Parsing of the `delay` step's `duration` strings (`"90s"`, `"5m"`, `"2h"`,
//! `"1d"`) into whole seconds, and the range every delay must fall in.

use std::fmt;

/// Shortest delay, in seconds.
pub const MIN_DELAY_SECONDS: u64 = 1;
/// Longest delay, in seconds (7 days).
pub const MAX_DELAY_SECONDS: u64 = 604_800;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Not `<digits><unit>` with unit `s`, `m`, `h` or `d`.
    Syntax,
    /// Well formed, but outside 1 second ..= 7 days; carries the seconds
    /// (saturated at `u64::MAX` when the multiplication overflows).
    OutOfRange(u64),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Syntax => f.write_str(
                "must be a whole number followed by s, m, h or d (e.g. \"90s\", \"5m\", \"2h\", \"1d\")",
            ),
            DurationError::OutOfRange(_) => write!(
                f,
                "must be from {MIN_DELAY_SECONDS} second to 7 days ({MAX_DELAY_SECONDS} seconds)"
            ),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses `"<digits><unit>"` into seconds and checks the delay range.
///
/// Deliberately strict: one unit only (no `"1h30m"`), no sign, no spaces, no
/// fractions, lower-case units. A compound form can be added later without
/// changing the meaning of anything accepted now.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let Some(unit) = text.chars().last() else {
        return Err(DurationError::Syntax);
    };
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(DurationError::Syntax),
    };
    // The unit is ASCII, so slicing one byte off is on a char boundary.
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::Syntax);
    }
    // Many digits overflow u64: that is a range problem, not a syntax one.
    let seconds = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .unwrap_or(u64::MAX);
    check_delay_seconds(seconds)
}

/// Checks that `seconds` is within 1 ..= 604800.
pub fn check_delay_seconds(seconds: u64) -> Result<u64, DurationError> {
    if (MIN_DELAY_SECONDS..=MAX_DELAY_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(DurationError::OutOfRange(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_edges() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("2h"), Ok(7_200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert_eq!(parse_duration("1s"), Ok(1));
        assert_eq!(parse_duration("604800s"), Ok(604_800));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("168h"), Ok(604_800));
        assert_eq!(parse_duration("007s"), Ok(7));
    }

    #[test]
    fn out_of_range() {
        assert_eq!(parse_duration("0s"), Err(DurationError::OutOfRange(0)));
        assert_eq!(parse_duration("0d"), Err(DurationError::OutOfRange(0)));
        assert_eq!(parse_duration("604801s"), Err(DurationError::OutOfRange(604_801)));
        assert_eq!(parse_duration("8d"), Err(DurationError::OutOfRange(691_200)));
        assert_eq!(
            parse_duration("99999999999999999999999d"),
            Err(DurationError::OutOfRange(u64::MAX))
        );
        assert_eq!(
            parse_duration("300000000000000000d"),
            Err(DurationError::OutOfRange(u64::MAX))
        );
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "", "5x", "-1s", "+1s", "s", "5", "1.5h", " 5m", "5m ", "5 m", "5M", "1h30m", "٣s", "5ms", "é",
        ] {
            assert_eq!(parse_duration(bad), Err(DurationError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn messages_name_the_rule() {
        assert!(DurationError::Syntax.to_string().contains("s, m, h or d"));
        assert!(DurationError::OutOfRange(0)
            .to_string()
            .contains("604800 seconds"));
    }
}
