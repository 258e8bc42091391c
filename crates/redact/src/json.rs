//! Masking inside a `serde_json::Value`: every string and object key.
//!
//! The walk uses an explicit stack rather than recursion: a value built in
//! code (not parsed) has no depth limit, and recursion could overflow.

use std::borrow::Cow;

use serde_json::{Map, Value};
use zeroize::Zeroize;

use crate::Redactor;

/// Masks every string and key under `root`; returns whether anything changed.
pub(crate) fn redact(redactor: &Redactor, root: &mut Value) -> bool {
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
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    changed
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
