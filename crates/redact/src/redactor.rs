//! [`Redactor`]: holds a run's secret patterns and masks them in text and JSON.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, MatchKind};
use zeroize::Zeroizing;

use crate::encode::{self, Widen};
use crate::search::{self, Span};
use crate::{json, parts, MARKER, MIN_FREE_TEXT_LEN};

/// Masks every value of a run's secrets, raw or encoded (see the crate docs
/// for the forms and limits), in text and JSON.
///
/// Values are added a handful of times per run and searched for many times:
/// the search automaton is built on the first search after an
/// [`add`](Self::add) and reused until the next one. Building costs time
/// linear in the total length of the patterns (a few hundred per value);
/// cloning a built redactor shares its patterns and automaton (the patterns
/// are copied only when a clone adds a value), so a built redactor can be
/// kept and handed to many runs cheaply.
///
/// `Debug` prints only how many values and patterns it holds.
#[derive(Clone, Default)]
pub struct Redactor {
    patterns: Arc<Vec<Pattern>>,
    values: usize,
    /// `None` inside when the automaton could not be built (too many or too
    /// large patterns): searches then fail closed.
    searcher: OnceLock<Option<Searcher>>,
}

#[derive(Clone)]
pub(crate) struct Pattern {
    pub(crate) text: Zeroizing<String>,
    /// See [`encode::Form::widen`].
    pub(crate) widen: Widen,
}

#[derive(Clone)]
struct Searcher {
    automaton: AhoCorasick,
    /// Whether some pattern could occur inside a JSON number's text.
    numeric: bool,
}

impl Redactor {
    /// An empty redactor: masks nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one secret value: it and its common encodings become patterns;
    /// so do the parts of a value that is a URL (see the crate docs).
    ///
    /// Values shorter than [`MIN_FREE_TEXT_LEN`] bytes are ignored (see the
    /// crate docs). Adding a value twice changes nothing.
    pub fn add(&mut self, value: &str) {
        if value.len() < MIN_FREE_TEXT_LEN {
            return;
        }
        let mut added = self.add_forms(value);
        for part in parts::url_parts(value) {
            added |= self.add_forms(&part);
        }
        if added {
            self.values += 1;
            self.searcher = OnceLock::new();
        }
    }

    /// Adds `text`'s forms; returns whether any was new.
    fn add_forms(&mut self, text: &str) -> bool {
        if text.len() < MIN_FREE_TEXT_LEN {
            return false;
        }
        let mut added = false;
        for form in encode::forms(text) {
            // Linear, but runs a handful of times per run over a few hundred
            // patterns; a map would need the secrets hashed or ordered too.
            // Forms differing only in ASCII case are one pattern: matching
            // ignores ASCII case.
            match Arc::make_mut(&mut self.patterns)
                .iter_mut()
                .find(|p| p.text.eq_ignore_ascii_case(&form.text))
            {
                Some(existing) => existing.widen = existing.widen.union(form.widen),
                None => {
                    Arc::make_mut(&mut self.patterns).push(Pattern {
                        text: form.text,
                        widen: form.widen,
                    });
                    added = true;
                }
            }
        }
        added
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

    /// The length in bytes of the longest pattern: how far past a cut a
    /// reader must look to see every secret that starts before it whole.
    pub fn max_pattern_len(&self) -> usize {
        self.patterns.iter().map(|p| p.text.len()).max().unwrap_or(0)
    }

    /// Builds the search automaton now instead of on the first search (clones
    /// made afterwards share it).
    pub fn prepare(&self) {
        if !self.patterns.is_empty() {
            let _ = self.searcher();
        }
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
        match self.spans(text) {
            None => Cow::Owned(MARKER.to_owned()),
            Some(spans) if spans.is_empty() => Cow::Borrowed(text),
            Some(spans) => Cow::Owned(search::mask(text, &spans).0),
        }
    }

    /// Masks every string inside a JSON value (object keys too), and every
    /// number whose text holds a secret (it becomes the [`MARKER`] string),
    /// in place; returns whether anything changed.
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

    /// The merged, sorted byte ranges to mask in `text`, or `None` when
    /// searching is impossible (fail closed).
    pub(crate) fn spans(&self, text: &str) -> Option<Vec<Span>> {
        if self.patterns.is_empty() {
            return Some(Vec::new());
        }
        let searcher = self.searcher()?;
        search::find(&searcher.automaton, &self.patterns, text)
    }

    /// Where the longest end of `text` that is the start of some pattern
    /// begins (see [`search::tail_start`]).
    pub(crate) fn tail_start(&self, text: &str) -> Option<usize> {
        search::tail_start(&self.patterns, text)
    }

    /// Whether a JSON number's text could hold a pattern.
    pub(crate) fn masks_numbers(&self) -> bool {
        self.searcher().is_none_or(|s| s.numeric)
    }

    fn searcher(&self) -> Option<&Searcher> {
        self.searcher.get_or_init(|| self.build()).as_ref()
    }

    fn build(&self) -> Option<Searcher> {
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            // Hosts are lowercased by URL parsers, hex and percent-encoders
            // differ in digit case, and echoes upper-case values: one
            // case-blind search covers them all.
            .ascii_case_insensitive(true)
            .build(self.patterns.iter().map(|p| p.text.as_bytes()))
            .ok()?;
        let numeric = self.patterns.iter().any(|p| {
            p.text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        });
        Some(Searcher { automaton, numeric })
    }
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
