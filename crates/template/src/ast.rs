//! The parsed form of one string: literal text and [`Tag`]s.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;

use crate::parse::{self, ParseError};
use crate::path::Path;

/// One `{{ ... }}` reference.
///
/// Displays as its canonical path without braces or whitespace
/// (`input.user.email`, `steps.fetch.output`, `secrets.API_KEY`, `run.id`),
/// which is also how render errors name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tag {
    /// `{{input}}` (empty path) or `{{input.PATH}}`.
    Input {
        /// Path inside the run input; empty for the whole input.
        path: Path,
    },
    /// `{{steps.ID.output}}` (empty path) or `{{steps.ID.output.PATH}}`.
    StepOutput {
        /// The referenced step (`[A-Za-z0-9_-]{1,64}`).
        step_id: String,
        /// Path inside that step's output; empty for the whole output.
        path: Path,
    },
    /// `{{secrets.NAME}}`.
    Secret {
        /// The secret name (`[A-Za-z_][A-Za-z0-9_]{0,127}`).
        name: String,
    },
    /// `{{run.id}}`.
    RunId,
    /// `{{workflow.id}}`.
    WorkflowId,
}

impl Tag {
    /// The referenced step id, for a `steps.ID.output...` tag.
    pub fn step_id(&self) -> Option<&str> {
        match self {
            Tag::StepOutput { step_id, .. } => Some(step_id),
            _ => None,
        }
    }

    /// The secret name, for a `secrets.NAME` tag.
    pub fn secret_name(&self) -> Option<&str> {
        match self {
            Tag::Secret { name } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tag::Input { path } if path.is_empty() => f.write_str("input"),
            Tag::Input { path } => write!(f, "input.{path}"),
            Tag::StepOutput { step_id, path } if path.is_empty() => {
                write!(f, "steps.{step_id}.output")
            }
            Tag::StepOutput { step_id, path } => write!(f, "steps.{step_id}.output.{path}"),
            Tag::Secret { name } => write!(f, "secrets.{name}"),
            Tag::RunId => f.write_str("run.id"),
            Tag::WorkflowId => f.write_str("workflow.id"),
        }
    }
}

/// Stored piece of a parsed string. Text is a range into the source so a
/// parsed string costs one copy of its text, not two.
#[derive(Debug)]
pub(crate) enum RawPart {
    Text(Range<usize>),
    Tag { tag: Tag, offset: usize },
}

/// A borrowed view of one piece of a [`TemplateString`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// Literal text, copied to the output as is.
    Text(&'a str),
    /// A tag, with the byte offset of its `{{` in the string.
    Tag {
        /// The parsed tag.
        tag: &'a Tag,
        /// Byte offset of the opening `{{`.
        offset: usize,
    },
}

struct Inner {
    source: String,
    parts: Vec<RawPart>,
}

/// A parsed string: literal text and tags, in order.
///
/// Cloning is a reference-count increment. Equality, hashing, `Display` and
/// `Debug` use the source text (parsing is deterministic, and the source
/// holds only tag names, never resolved values, so it is safe to log).
#[derive(Clone)]
pub struct TemplateString {
    inner: Arc<Inner>,
}

impl TemplateString {
    /// Parses a string. Errors carry the byte offset of the problem; their
    /// location is empty.
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        let parts = parse::parse_parts(source)
            .map_err(|(offset, kind)| ParseError::new(String::new(), offset, kind))?;
        Ok(TemplateString {
            inner: Arc::new(Inner {
                source: source.to_owned(),
                parts,
            }),
        })
    }

    /// The original text.
    pub fn as_str(&self) -> &str {
        &self.inner.source
    }

    /// The text and tags, in order. Empty text is never yielded.
    pub fn parts(&self) -> impl Iterator<Item = Part<'_>> + '_ {
        let source = self.inner.source.as_str();
        self.inner.parts.iter().map(move |part| match part {
            RawPart::Text(range) => Part::Text(&source[range.clone()]),
            RawPart::Tag { tag, offset } => Part::Tag { tag, offset: *offset },
        })
    }

    /// The tags with the byte offset of their `{{`, in order.
    pub fn tags(&self) -> impl Iterator<Item = (usize, &Tag)> + '_ {
        self.inner.parts.iter().filter_map(|part| match part {
            RawPart::Tag { tag, offset } => Some((*offset, tag)),
            RawPart::Text(_) => None,
        })
    }

    /// The tag, if the string is exactly one tag (nothing outside its
    /// braces). Such a string renders to the tag's value with its JSON type.
    pub fn whole_tag(&self) -> Option<&Tag> {
        // The parser emits no empty text, so a lone tag part means nothing
        // stands outside the braces.
        match self.inner.parts.as_slice() {
            [RawPart::Tag { tag, .. }] => Some(tag),
            _ => None,
        }
    }

    /// Whether the string has no tags (it renders to itself).
    pub fn is_literal(&self) -> bool {
        self.tags().next().is_none()
    }

    /// Names of the secrets referenced, sorted and deduplicated.
    pub fn secret_names(&self) -> BTreeSet<&str> {
        self.tags().filter_map(|(_, tag)| tag.secret_name()).collect()
    }

    pub(crate) fn raw_parts(&self) -> &[RawPart] {
        &self.inner.parts
    }
}

impl FromStr for TemplateString {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TemplateString::parse(s)
    }
}

impl fmt::Display for TemplateString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TemplateString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TemplateString").field(&self.as_str()).finish()
    }
}

impl PartialEq for TemplateString {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TemplateString {}

impl Hash for TemplateString {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}
