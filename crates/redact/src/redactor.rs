//! [`Redactor`]: holds a run's secret patterns and masks them in text and JSON.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use zeroize::Zeroizing;

use crate::encode::{self, Widen};
use crate::{json, MARKER, MIN_FREE_TEXT_LEN};

/// Masks every value of a run's secrets, raw or encoded (see the crate docs
/// for the forms and limits), in text and JSON.
///
/// Values are added a handful of times per run and searched for many times:
/// the search automaton is built on the first search after an
/// [`add`](Self::add) and reused until the next one.
///
/// `Debug` prints only how many values and patterns it holds.
#[derive(Clone, Default)]
pub struct Redactor {
    patterns: Vec<Pattern>,
    values: usize,
    /// `None` inside when the automaton could not be built (too many or too
    /// large patterns): searches then fail closed.
    searcher: OnceLock<Option<AhoCorasick>>,
}

#[derive(Clone)]
struct Pattern {
    text: Zeroizing<String>,
    /// See [`encode::Form::widen`].
    widen: Widen,
}

impl Redactor {
    /// An empty redactor: masks nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one secret value: it and its common encodings become patterns.
    ///
    /// Values shorter than [`MIN_FREE_TEXT_LEN`] bytes are ignored (see the
    /// crate docs). Adding a value twice changes nothing.
    pub fn add(&mut self, value: &str) {
        if value.len() < MIN_FREE_TEXT_LEN {
            return;
        }
        let mut added = false;
        for form in encode::forms(value) {
            // Linear, but runs a handful of times per run over a few hundred
            // patterns; a map would need the secrets hashed or ordered too.
            match self.patterns.iter_mut().find(|p| *p.text == *form.text) {
                Some(existing) => existing.widen = existing.widen.union(form.widen),
                None => {
                    self.patterns.push(Pattern {
                        text: form.text,
                        widen: form.widen,
                    });
                    added = true;
                }
            }
        }
        if added {
            self.values += 1;
            self.searcher = OnceLock::new();
        }
    }

    /// Adds the credentials of an HTTP Basic `Authorization` header: the
    /// password, and `user:password` so the header's base64 is masked even
    /// when the password is too short to be found inside it.
    pub fn add_basic_auth(&mut self, user: &str, password: &str) {
        self.add(password);
        let mut joined = Zeroizing::new(String::with_capacity(
            user.len().saturating_add(password.len()).saturating_add(1),
        ));
        joined.push_str(user);
        joined.push(':');
        joined.push_str(password);
        self.add(&joined);
    }

    /// Whether no value has been added (every search then returns its input).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// How many distinct values have been added (those too short are not counted).
    pub fn value_count(&self) -> usize {
        self.values
    }

    /// How many patterns (distinct forms of all values) are searched for.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Replaces every occurrence of any pattern with [`MARKER`].
    ///
    /// Overlapping and adjacent occurrences become a single marker, so no part
    /// of a secret survives between two. Returns the input borrowed when
    /// nothing matched. If the automaton could not be built, any non-empty
    /// text is replaced whole by the marker (fail closed).
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.patterns.is_empty() || text.is_empty() {
            return Cow::Borrowed(text);
        }
        let Some(spans) = self.find_spans(text) else {
            return Cow::Owned(MARKER.to_owned());
        };
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (start, end) in spans {
            // Spans start and end on character boundaries (see `find_spans`);
            // were one not to, dropping that piece errs on the side of hiding.
            out.push_str(text.get(last..start).unwrap_or_default());
            out.push_str(MARKER);
            last = end;
        }
        out.push_str(text.get(last..).unwrap_or_default());
        Cow::Owned(out)
    }

    /// Masks every string inside a JSON value (object keys too), in place;
    /// returns whether anything changed.
    ///
    /// Replaced strings are wiped before being freed. If two keys of one
    /// object mask to the same text, the later ones get a `#2`, `#3`… suffix
    /// so no entry is lost; masked keys move after the others.
    pub fn redact_json(&self, value: &mut serde_json::Value) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        json::redact(self, value)
    }

    /// The merged, sorted byte ranges to mask, or `None` when searching is
    /// impossible.
    ///
    /// Every pattern is valid UTF-8 and so is `text`, so each match starts on
    /// a character's first byte and ends after a character's last; widening
    /// only steps over ASCII bytes. Ranges therefore lie on char boundaries.
    fn find_spans(&self, text: &str) -> Option<Vec<(usize, usize)>> {
        let searcher = self.searcher.get_or_init(|| self.build()).as_ref()?;
        // Overlapping search reports every occurrence of every pattern, so
        // taking the union masks what leftmost-longest matching would, and
        // also occurrences that overlap one another.
        let matches = searcher.try_find_overlapping_iter(text).ok()?;
        let bytes = text.as_bytes();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for found in matches {
            let (mut start, mut end) = (found.start(), found.end());
            let widen = self
                .patterns
                .get(found.pattern().as_usize())
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
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                // Adjacent spans merge too: one marker per contiguous run.
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Some(merged)
    }

    fn build(&self) -> Option<AhoCorasick> {
        AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(self.patterns.iter().map(|p| p.text.as_bytes()))
            .ok()
    }
}

/// Either base64 alphabet (standard or URL-safe), padding excluded.
fn is_base64(byte: &u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'-' | b'_')
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.values)
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
