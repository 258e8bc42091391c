//! Masking inside a `serde_json::Value`: every string, object key and number.
//!
//! The walk uses an explicit stack rather than recursion: a value built in
//! code (not parsed) has no depth limit, and recursion could overflow.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};
use zeroize::Zeroize;

use crate::{Redactor, MARKER};

/// Masks every string, key and number under `root`; returns whether anything
/// changed.
pub(crate) fn redact(redactor: &Redactor, root: &mut Value) -> bool {
    let numbers = redactor.masks_numbers();
    let mut changed = false;
    let mut stack: Vec<&mut Value> = vec![root];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) => {
                if let Some(mut masked) = masked(redactor, text) {
                    // Wipe the secret-bearing original rather than just free it.
                    std::mem::swap(text, &mut masked);
                    masked.zeroize();
                    changed = true;
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => {
                changed |= redact_keys(redactor, map);
                stack.extend(map.values_mut());
            }
            Value::Number(n) => {
                if numbers && number_holds_secret(redactor, n) {
                    *value = Value::String(MARKER.to_owned());
                    changed = true;
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
    changed
}

/// Whether the number as serde_json writes it holds a pattern: a numeric
/// secret echoed as a JSON number, or a float whose shortest form happens to
/// spell one.
fn number_holds_secret(redactor: &Redactor, n: &Number) -> bool {
    // Without serde_json's `arbitrary_precision` a number prints in at most
    // 24 bytes (an f64's shortest round-trip form), so no allocation.
    let mut buf = NumberText::default();
    if write!(buf, "{n}").is_err() {
        return true;
    }
    match buf.as_str() {
        Some(text) => redactor.spans(text).is_none_or(|s| !s.is_empty()),
        None => true,
    }
}

/// A fixed buffer for one number's text.
#[derive(Default)]
struct NumberText {
    bytes: [u8; 32],
    len: usize,
}

impl NumberText {
    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.bytes.get(..self.len)?).ok()
    }
}

impl std::fmt::Write for NumberText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        self.bytes
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn masked(redactor: &Redactor, text: &str) -> Option<String> {
    match redactor.redact_str(text) {
        Cow::Owned(masked) => Some(masked),
        Cow::Borrowed(_) => None,
    }
}

/// Masks the keys of one object, keeping every entry even when two keys mask
/// to the same text.
fn redact_keys(redactor: &Redactor, map: &mut Map<String, Value>) -> bool {
    // Most objects have no secret in their keys: leave them untouched.
    if !map.keys().any(|key| masked(redactor, key).is_some()) {
        return false;
    }
    let mut renamed = Vec::new();
    for (mut key, value) in std::mem::take(map) {
        match masked(redactor, &key) {
            Some(new_key) => {
                key.zeroize();
                renamed.push((new_key, value));
            }
            None => {
                map.insert(key, value);
            }
        }
    }
    // Unchanged keys went in first, so a masked key never displaces one.
    for (new_key, value) in renamed {
        let mut unique = new_key.clone();
        let mut n = 2u64;
        while map.contains_key(&unique) {
            unique = format!("{new_key}#{n}");
            n = n.saturating_add(1);
        }
        map.insert(unique, value);
    }
    true
}
