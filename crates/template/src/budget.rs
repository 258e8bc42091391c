//! A cap on how much a rendering may produce, charged while it renders.
//!
//! Templates can amplify: `{"a": "{{steps.x.output}}", "b": "{{steps.x.output}}", …}` copies an
//! earlier output ten times, and a chain of such steps grows by ten per step. Checking the size
//! of the finished value would be too late (building it is what exhausts memory), so the
//! renderer charges a [`Budget`] for every piece *before* it copies it, and stops at the first
//! piece that does not fit. A value taken from the context is measured in place (without
//! copying it) first.
//!
//! The unit is the byte of compact JSON (what `serde_json::to_vec` would write), so for a value
//! rendered with a fresh budget, [`Budget::used`] is exactly its serialized size. Text rendered as
//! text (`render_string_with_budget`, for URLs and headers) is charged its length in bytes.

use std::fmt;

use serde_json::Value;

/// How many bytes a rendering may still produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    limit: usize,
    used: usize,
}

/// A rendering went over its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rendered value would exceed {limit} bytes")]
pub struct TooLarge {
    /// The budget's limit.
    pub limit: usize,
}

/// A failure of a budgeted rendering: the tag hook's error, or the budget ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limited<E = crate::NotFound> {
    /// What the hook returned (for strict rendering: a missing value).
    Hook(E),
    /// The output would have exceeded the budget.
    TooLarge(TooLarge),
}

impl<E: fmt::Display> fmt::Display for Limited<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limited::Hook(e) => e.fmt(f),
            Limited::TooLarge(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Limited<E> {}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Budget { limit, used: 0 }
    }

    /// A budget that never runs out (`usize::MAX` bytes).
    pub fn unlimited() -> Self {
        Budget::new(usize::MAX)
    }

    /// The limit it was made with.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Bytes that may still be charged.
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.used)
    }

    /// Charges `bytes`; fails (and stays over) when that passes the limit.
    pub fn charge(&mut self, bytes: usize) -> Result<(), TooLarge> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            Err(TooLarge { limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// Charges the compact-JSON size of `value`, measuring no further than what remains.
    pub fn charge_value(&mut self, value: &Value) -> Result<(), TooLarge> {
        let size = json_size(value, self.remaining()).ok_or(TooLarge { limit: self.limit })?;
        self.charge(size)
    }

    /// Charges `text` as the inside of a JSON string (escapes counted).
    pub(crate) fn charge_string_content(&mut self, text: &str) -> Result<(), TooLarge> {
        self.charge(escaped_len(text))
    }

    /// Fails, without charging, unless `value` could still fit.
    pub(crate) fn check_fits(&self, value: &Value) -> Result<(), TooLarge> {
        json_size(value, self.remaining())
            .map(|_| ())
            .ok_or(TooLarge { limit: self.limit })
    }
}

/// The length of `value` as compact JSON, or `None` as soon as it is known to pass `max`.
pub fn json_size(value: &Value, max: usize) -> Option<usize> {
    let mut size = Sizer { max, total: 0 };
    size.value(value)?;
    Some(size.total)
}

struct Sizer {
    max: usize,
    total: usize,
}

impl Sizer {
    fn add(&mut self, n: usize) -> Option<()> {
        self.total = self.total.saturating_add(n);
        (self.total <= self.max).then_some(())
    }

    fn value(&mut self, value: &Value) -> Option<()> {
        match value {
            Value::Null | Value::Bool(true) => self.add(4),
            Value::Bool(false) => self.add(5),
            Value::Number(n) => self.add(n.to_string().len()),
            Value::String(s) => self.add(2 + escaped_len(s)),
            Value::Array(items) => {
                self.add(2 + items.len().saturating_sub(1))?;
                items.iter().try_for_each(|item| self.value(item))
            }
            Value::Object(map) => {
                self.add(2 + map.len().saturating_sub(1))?;
                map.iter().try_for_each(|(key, item)| {
                    self.add(3 + escaped_len(key))?;
                    self.value(item)
                })
            }
        }
    }
}

/// Bytes of `text` inside a JSON string as serde_json writes it: `"` and `\` and the short
/// control escapes take two bytes, other control characters six (`\u001f`).
pub fn escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_are_those_of_compact_json() {
        for v in [
            json!(null),
            json!(false),
            json!(-1.5e300),
            json!("a\"\\\n\u{1}é"),
            json!([]),
            json!({}),
            json!({"k\"": [1, true, {"x": null}], "": ""}),
        ] {
            assert_eq!(
                json_size(&v, usize::MAX),
                Some(serde_json::to_vec(&v).unwrap().len()),
                "{v}"
            );
        }
        assert_eq!(json_size(&json!("abcd"), 5), None);
        assert_eq!(json_size(&json!("abcd"), 6), Some(6));
    }

    #[test]
    fn a_budget_fails_once_passed() {
        let mut b = Budget::new(10);
        assert!(b.charge(10).is_ok());
        assert_eq!(b.remaining(), 0);
        assert_eq!(b.charge(1), Err(TooLarge { limit: 10 }));
        assert!(Budget::unlimited().charge(usize::MAX).is_ok());
    }
}
