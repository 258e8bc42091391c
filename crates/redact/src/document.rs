//! Masking a response body before it becomes a JSON value, and masking then
//! cutting a body too large to keep.
//!
//! Numbers are the reason to mask before parsing: once parsed, a numeric
//! secret echoed as a JSON number is a `Number` (or, past 2^64, a float that
//! keeps 17 significant digits), no longer text to match. So the raw text is
//! searched first: a number token holding a match becomes the string
//! [`MARKER`], strings are masked after parsing (where their escapes are
//! decoded, whatever encoder wrote them), and a match that crosses the
//! document's structure (a secret holding `","` echoed unescaped) keeps the
//! body as masked text. serde_json's `arbitrary_precision` feature would keep
//! number texts too, but it changes `Number` for every crate of the build
//! (and breaks `#[serde(flatten)]` and untagged enums over numbers); masking
//! the tokens needs nothing global.

use serde_json::Value;
use zeroize::Zeroizing;

use crate::search::{self, Span};
use crate::{Redactor, MARKER};

impl Redactor {
    /// Parses `text` as JSON with every secret masked (see the module docs);
    /// `None` when it is not JSON or a match crosses its structure: keep
    /// [`redact_str`](Self::redact_str) of it as a string then.
    pub fn redact_document(&self, text: &str) -> Option<Value> {
        let Some(spans) = self.spans(text) else {
            return Some(Value::String(MARKER.to_owned()));
        };
        if spans.is_empty() {
            let mut value: Value = serde_json::from_str(text).ok()?;
            self.redact_json(&mut value);
            return Some(value);
        }
        let layout = Layout::scan(text);
        let mut numbers: Vec<Span> = Vec::new();
        for &span in &spans {
            if within(&layout.strings, span).is_some() {
                continue;
            }
            match within(&layout.numbers, span) {
                Some(number) if numbers.last() != Some(&number) => numbers.push(number),
                Some(_) => {}
                None => return None,
            }
        }
        let extra = numbers.len() * (MARKER.len() + 2);
        let mut rewritten = Zeroizing::new(String::with_capacity(text.len() + extra));
        let mut last = 0;
        for &(start, end) in &numbers {
            rewritten.push_str(text.get(last..start).unwrap_or_default());
            rewritten.push('"');
            rewritten.push_str(MARKER);
            rewritten.push('"');
            last = end;
        }
        rewritten.push_str(text.get(last..).unwrap_or_default());
        let mut value: Value = serde_json::from_str(&rewritten).ok()?;
        self.redact_json(&mut value);
        // Decoding and re-encoding can join what the search saw apart (an
        // escape next to a match); the record is checked as it will be written.
        let written = Zeroizing::new(value.to_string());
        if self.spans(&written).is_none_or(|s| !s.is_empty()) {
            return Some(Value::String(MARKER.to_owned()));
        }
        Some(value)
    }

    /// Masks `text`, then cuts the result to at most `cap` bytes.
    ///
    /// Masking comes first, so a secret that straddles the cut is masked
    /// whole. Where the cut falls inside a possible secret (the kept text
    /// ends with the start of any pattern, or inside a marker) that end is
    /// dropped and one [`MARKER`] closes the text. `complete` tells whether
    /// `text` is the whole document; when a reader stopped early its end is
    /// treated the same way before masking.
    pub fn redact_capped(&self, text: &str, complete: bool, cap: usize) -> String {
        let Some(mut spans) = self.spans(text) else {
            return MARKER.to_owned();
        };
        if !complete {
            if let Some(start) = self.tail_start(text) {
                spans.push((start, text.len()));
                spans = search::merge(spans);
            }
        }
        let (mut masked, markers) = search::mask(text, &spans);
        if masked.len() <= cap {
            return masked;
        }
        let mut end = cap.saturating_sub(MARKER.len());
        while !masked.is_char_boundary(end) {
            end -= 1;
        }
        let mut hidden = false;
        if let Some(&(start, _)) = markers.iter().find(|m| m.0 < end && end < m.1) {
            end = start;
            hidden = true;
        }
        if let Some(start) = masked.get(..end).and_then(|kept| self.tail_start(kept)) {
            end = start;
            hidden = true;
        }
        masked.truncate(end);
        if hidden {
            masked.push_str(MARKER);
        }
        masked
    }
}

/// The range of sorted, disjoint `ranges` that holds `span` whole.
fn within(ranges: &[Span], span: Span) -> Option<Span> {
    let i = ranges.partition_point(|r| r.0 <= span.0);
    let range = *ranges.get(i.checked_sub(1)?)?;
    (span.1 <= range.1).then_some(range)
}

/// Where the string contents and number tokens of a JSON text are. A text
/// that is not JSON gets some layout; parsing decides later.
struct Layout {
    /// Inside the quotes.
    strings: Vec<Span>,
    numbers: Vec<Span>,
}

impl Layout {
    fn scan(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut layout = Layout {
            strings: Vec::new(),
            numbers: Vec::new(),
        };
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'"' {
                let start = i + 1;
                let mut j = start;
                while let Some(&c) = bytes.get(j) {
                    match c {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                let end = j.min(bytes.len());
                layout.strings.push((start, end));
                i = end + 1;
            } else if b == b'-' || b.is_ascii_digit() {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    i += 1;
                }
                layout.numbers.push((start, i));
            } else {
                i += 1;
            }
        }
        layout
    }
}
