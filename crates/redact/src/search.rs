//! Finding what to mask: occurrences of patterns (also across line breaks),
//! and the start of a pattern left at the end of a cut text.
//!
//! Spans are byte ranges `[start, end)`. Every pattern is valid UTF-8 and so
//! is every searched text, so each match starts on a character's first byte
//! and ends after a character's last; widening and line-break removal only
//! step over ASCII bytes. Spans therefore lie on char boundaries.

use aho_corasick::AhoCorasick;
use zeroize::Zeroizing;

use crate::redactor::Pattern;
use crate::MARKER;

/// A byte range to mask.
pub(crate) type Span = (usize, usize);

/// Every occurrence of every pattern in `text`, merged and sorted; `None` if
/// the search failed.
///
/// Base64 is often wrapped into lines (MIME at 76 columns with CRLF, PEM at
/// 64 with LF, or either JSON-escaped), which splits a secret's encoding at
/// a place that depends on where it sits in the blob. So the text is also
/// searched with every line break between two base64 characters taken out,
/// and those matches are mapped back over the breaks.
pub(crate) fn find(automaton: &AhoCorasick, patterns: &[Pattern], text: &str) -> Option<Vec<Span>> {
    let mut spans = matches(automaton, patterns, text)?;
    if let Some(view) = Unbroken::of(text) {
        let more = matches(automaton, patterns, &view.text)?;
        spans.extend(more.into_iter().map(|span| view.original(span)));
    }
    Some(merge(spans))
}

fn matches(automaton: &AhoCorasick, patterns: &[Pattern], text: &str) -> Option<Vec<Span>> {
    // Overlapping search reports every occurrence of every pattern, so taking
    // the union masks what leftmost-longest matching would, and also
    // occurrences that overlap one another.
    let found = automaton.try_find_overlapping_iter(text).ok()?;
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for m in found {
        let (mut start, mut end) = (m.start(), m.end());
        let widen = patterns
            .get(m.pattern().as_usize())
            .map(|p| p.widen)
            .unwrap_or_default();
        if widen.before {
            if let Some(before) = start
                .checked_sub(1)
                .filter(|&i| bytes.get(i).is_some_and(is_base64))
            {
                start = before;
            }
        }
        if widen.after && bytes.get(end).is_some_and(is_base64) {
            end += 1;
            // Padding only tells the length mod 3, but a lone `=` after a
            // marker reads like a leftover.
            for _ in 0..2 {
                if bytes.get(end) == Some(&b'=') {
                    end += 1;
                }
            }
        }
        spans.push((start, end));
    }
    Some(spans)
}

/// Sorts and merges spans; adjacent ones merge too (one marker per run).
pub(crate) fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// `text` with each span replaced by [`MARKER`], and where the markers are in
/// the result.
pub(crate) fn mask(text: &str, spans: &[Span]) -> (String, Vec<Span>) {
    let mut out = String::with_capacity(text.len());
    let mut markers = Vec::with_capacity(spans.len());
    let mut last = 0;
    for &(start, end) in spans {
        // Spans lie on character boundaries (see the module docs); were one
        // not to, dropping that piece errs on the side of hiding.
        out.push_str(text.get(last..start).unwrap_or_default());
        markers.push((out.len(), out.len() + MARKER.len()));
        out.push_str(MARKER);
        last = end;
    }
    out.push_str(text.get(last..).unwrap_or_default());
    (out, markers)
}

/// Where the longest end of `text` that is a proper prefix of some pattern
/// starts (also across line breaks, as [`find`] searches), widened like a
/// match; `None` when no pattern starts in the text's last bytes.
///
/// A text cut at an arbitrary byte may end inside a secret; this is the part
/// to hide. Each pattern is run as a KMP automaton over the text's last
/// `len - 1` bytes: linear in the patterns' total length, whatever the text.
pub(crate) fn tail_start(patterns: &[Pattern], text: &str) -> Option<usize> {
    let direct = tail_in(patterns, text);
    let unbroken = Unbroken::of(text)
        .and_then(|view| tail_in(patterns, &view.text).map(|start| view.original((start, start + 1)).0));
    match (direct, unbroken) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn tail_in(patterns: &[Pattern], text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut best: Option<usize> = None;
    for pattern in patterns {
        let k = longest_prefix_at_end(pattern.text.as_bytes(), bytes);
        if k == 0 {
            continue;
        }
        let mut start = bytes.len() - k;
        if pattern.widen.before && start > 0 && bytes.get(start - 1).is_some_and(is_base64) {
            start -= 1;
        }
        best = Some(best.map_or(start, |b| b.min(start)));
    }
    best
}

/// The largest `k < pattern.len()` such that `text` ends with the first `k`
/// bytes of `pattern`, ignoring ASCII case.
fn longest_prefix_at_end(pattern: &[u8], text: &[u8]) -> usize {
    let Some(prefix) = pattern.len().checked_sub(1).and_then(|n| pattern.get(..n)) else {
        return 0;
    };
    if prefix.is_empty() {
        return 0;
    }
    let same = |a: u8, b: u8| a.eq_ignore_ascii_case(&b);
    // fail[i]: length of the longest proper border of prefix[..=i].
    let mut fail = vec![0usize; prefix.len()];
    let mut k = 0;
    for i in 1..prefix.len() {
        while k > 0 && !same(prefix[i], prefix[k]) {
            k = fail[k - 1];
        }
        if same(prefix[i], prefix[k]) {
            k += 1;
        }
        fail[i] = k;
    }
    let window = &text[text.len().saturating_sub(prefix.len())..];
    let mut k = 0;
    for &b in window {
        while k > 0 && (k == prefix.len() || !same(b, prefix[k])) {
            k = fail[k - 1];
        }
        if k < prefix.len() && same(b, prefix[k]) {
            k += 1;
        }
    }
    k
}

/// Either base64 alphabet (standard or URL-safe), padding excluded.
pub(crate) fn is_base64(byte: &u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'-' | b'_')
}

/// A text with its line breaks between base64 characters taken out.
struct Unbroken {
    text: Zeroizing<String>,
    /// `(at, removed)`: before byte `at` of `text`, `removed` bytes in total
    /// had been taken out of the original. Sorted by `at`.
    cuts: Vec<(usize, usize)>,
}

impl Unbroken {
    /// `None` when `text` has no such break (the common case: one pass).
    fn of(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut out: Option<Unbroken> = None;
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            let end = break_end(bytes, i);
            if end == i {
                i += 1;
                continue;
            }
            let joins = i > 0
                && bytes.get(i - 1).is_some_and(is_base64)
                && bytes.get(end).is_some_and(|b| is_base64(b) || *b == b'=');
            if joins {
                let view = out.get_or_insert_with(|| Unbroken {
                    text: Zeroizing::new(String::with_capacity(text.len())),
                    cuts: Vec::new(),
                });
                view.text.push_str(text.get(copied..i).unwrap_or_default());
                let removed = view.cuts.last().map_or(0, |c| c.1) + (end - i);
                view.cuts.push((view.text.len(), removed));
                copied = end;
            }
            i = end;
        }
        let mut view = out?;
        view.text.push_str(text.get(copied..).unwrap_or_default());
        Some(view)
    }

    /// The original range of a span of the view.
    fn original(&self, (start, end): Span) -> Span {
        let shift = |at: usize| {
            let i = self.cuts.partition_point(|c| c.0 <= at);
            i.checked_sub(1).and_then(|i| self.cuts.get(i)).map_or(0, |c| c.1)
        };
        let last = end.saturating_sub(1);
        (start + shift(start), last + shift(last) + 1)
    }
}

/// The end of the run of line breaks (`\r`, `\n`, or their two-character
/// JSON escapes) starting at `i`; `i` itself when none starts there.
fn break_end(bytes: &[u8], mut i: usize) -> usize {
    loop {
        match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'\r' | b'\n'), _) => i += 1,
            (Some(b'\\'), Some(b'r' | b'n')) => i += 2,
            _ => return i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious quadratic definition the KMP version must agree with.
    fn naive(pattern: &[u8], text: &[u8]) -> usize {
        (1..pattern.len())
            .rev()
            .find(|&k| k <= text.len() && text[text.len() - k..].eq_ignore_ascii_case(&pattern[..k]))
            .unwrap_or(0)
    }

    #[test]
    fn the_longest_pattern_start_at_the_end_is_found() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b"abcd", b"xxabc"),
            (b"abcd", b"xxABC"),
            (b"abcd", b"abcd"),
            (b"aaab", b"aaaaaaa"),
            (b"abab", b"xabababa"),
            (b"abcabd", b"abcabcab"),
            (b"a", b"aaaa"),
            (b"abcd", b""),
            (b"abcd", b"xyz"),
        ];
        for (pattern, text) in cases {
            assert_eq!(
                longest_prefix_at_end(pattern, text),
                naive(pattern, text),
                "{:?} at the end of {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn line_breaks_between_base64_characters_are_taken_out_and_mapped_back() {
        let text = "ab\r\ncd\\r\\nef\n}\ngh";
        let view = Unbroken::of(text).expect("a break joins base64 characters");
        assert_eq!(view.text.as_str(), "abcdef\n}\ngh", "breaks next to a brace stay");
        // "bcde" in the view is "b\r\ncd\r\ne" (escaped) in the original.
        let start = view.text.find("bcde").unwrap();
        let (s, e) = view.original((start, start + 4));
        assert_eq!(&text[s..e], "b\r\ncd\\r\\ne");
        assert!(Unbroken::of("plain text, no breaks").is_none());
        assert!(
            Unbroken::of("{\n  \"a\": 1\n}").is_none(),
            "pretty JSON needs no second pass"
        );
    }
}
