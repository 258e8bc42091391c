//! The parser: splits one string into literal text and tags, and reports a
//! malformed tag with the byte offset of the problem.

use std::fmt;

use crate::ast::{RawPart, Tag};
use crate::path::{Path, Segment};

/// The roots a tag may start with, in the order error messages list them.
pub const ROOTS: [&str; 5] = ["input", "steps", "secrets", "run", "workflow"];

/// Longest step id accepted (`[A-Za-z0-9_-]{1,64}`).
const MAX_STEP_ID: usize = 64;
/// Longest secret name accepted (`[A-Za-z_][A-Za-z0-9_]{0,127}`).
const MAX_SECRET_NAME: usize = 128;
/// Most segments a path may have after its root (`input.a.b` has two). Real data is rarely
/// nested deeper; the cap keeps a tag, and every message naming it, small.
pub const MAX_PATH_SEGMENTS: usize = 32;
/// Longest path segment, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 256;
/// Longest piece of template text an error message repeats; longer text is cut, ending in `…`.
pub const MAX_ECHO_CHARS: usize = 100;

/// `text`, cut to [`MAX_ECHO_CHARS`] characters for a message.
pub(crate) fn echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// A malformed template: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    location: String,
    offset: usize,
    kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(location: String, offset: usize, kind: ParseErrorKind) -> Self {
        ParseError {
            location,
            offset,
            kind,
        }
    }

    /// JSON pointer (RFC 6901) of the bad string inside the parsed value,
    /// e.g. `/headers/Authorization`; empty for the root or for a string
    /// parsed on its own.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Byte offset of the problem within the string.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What is wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            write!(f, "template error at byte {}: {}", self.offset, self.kind)
        } else {
            write!(
                f,
                "template error at {} byte {}: {}",
                self.location, self.offset, self.kind
            )
        }
    }
}

impl std::error::Error for ParseError {}

/// The kinds of malformed template. Messages name the offending text so they
/// read well on their own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// `{{` with no `}}` after it (offset: the `{{`).
    #[error("unterminated `{{{{`: no `}}}}` after it (a literal `{{{{` cannot be written)")]
    Unterminated,
    /// `{{}}` or `{{  }}` (offset: the `{{`).
    #[error("empty tag: expected e.g. `{{{{input.field}}}}`")]
    EmptyTag,
    /// The first segment is not a known root (offset: the root).
    #[error("unknown root `{root}`: expected one of input, steps, secrets, run, workflow")]
    UnknownRoot {
        /// The text found in place of a root.
        root: String,
    },
    /// Two dots in a row, or a dot at the start or end (offset: where the
    /// empty segment is).
    #[error("empty path segment: a path is segments separated by single dots")]
    EmptySegment,
    /// A segment with characters outside `[A-Za-z0-9_-]`, including
    /// whitespace between segments (offset: the segment).
    #[error("invalid path segment `{segment}`: use letters, digits, `_` and `-` only")]
    InvalidSegment {
        /// The offending segment.
        segment: String,
    },
    /// An all-digit segment with a leading zero or too large for `usize`
    /// (offset: the segment).
    #[error(
        "invalid array index `{segment}`: no leading zeros, and at most {}",
        usize::MAX
    )]
    InvalidIndex {
        /// The offending segment.
        segment: String,
    },
    /// More than [`MAX_PATH_SEGMENTS`] segments after the root (offset: the first one too many).
    #[error("path too deep: at most {MAX_PATH_SEGMENTS} segments after the root")]
    PathTooDeep,
    /// A segment over [`MAX_SEGMENT_BYTES`] bytes (offset: the segment).
    #[error("path segment too long: at most {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    /// `{{steps}}` (offset: end of the tag body).
    #[error("missing step id: expected `steps.ID.output`")]
    MissingStepId,
    /// A step id longer than 64 bytes (offset: the id).
    #[error("invalid step id `{step_id}`: at most 64 letters, digits, `_` or `-`")]
    InvalidStepId {
        /// The offending id.
        step_id: String,
    },
    /// `steps.ID` not followed by `.output` (offset: the segment after the
    /// id, or the end of the tag body when there is none).
    #[error("expected `steps.{step_id}.output`, found {}", found_text(.found))]
    ExpectedOutput {
        /// The step id.
        step_id: String,
        /// What followed the id instead of `output`, if anything.
        found: Option<String>,
    },
    /// `{{secrets}}` (offset: end of the tag body).
    #[error("missing secret name: expected `secrets.NAME`")]
    MissingSecretName,
    /// A secret name not matching `[A-Za-z_][A-Za-z0-9_]{0,127}` (offset:
    /// the name).
    #[error("invalid secret name `{name}`: a letter or `_`, then at most 127 letters, digits or `_`")]
    InvalidSecretName {
        /// The offending name.
        name: String,
    },
    /// `secrets.NAME.more` (offset: the first extra segment).
    #[error("`secrets.{name}` cannot have a path: a secret name is a single segment")]
    SecretPath {
        /// The secret name.
        name: String,
    },
    /// `{{run}}` or `{{workflow}}` (offset: end of the tag body).
    #[error("missing field: expected `{root}.id`")]
    MissingField {
        /// `run` or `workflow`.
        root: &'static str,
    },
    /// `run.X` or `workflow.X` with X other than `id` (offset: X).
    #[error("unknown field `{root}.{field}`: only `{root}.id` exists")]
    UnknownField {
        /// `run` or `workflow`.
        root: &'static str,
        /// The field asked for.
        field: String,
    },
    /// `run.id.more` or `workflow.id.more` (offset: the first extra segment).
    #[error("`{root}.id` cannot have a path: it is a string")]
    IdPath {
        /// `run` or `workflow`.
        root: &'static str,
    },
}

fn found_text(found: &Option<String>) -> String {
    match found {
        Some(segment) => format!("`{segment}`"),
        None => "nothing".to_owned(),
    }
}

type Result<T> = std::result::Result<T, (usize, ParseErrorKind)>;

/// Splits `source` into text and tags. Errors are `(byte offset, kind)`.
pub(crate) fn parse_parts(source: &str) -> Result<Vec<RawPart>> {
    let mut parts = Vec::new();
    let mut pos = 0;
    while let Some(found) = source[pos..].find("{{") {
        let open = pos + found;
        if open > pos {
            parts.push(RawPart::Text(pos..open));
        }
        let body_start = open + 2;
        // The first `}}` closes the tag: bodies never contain braces, so
        // there is nothing to balance.
        let Some(found_close) = source[body_start..].find("}}") else {
            return Err((open, ParseErrorKind::Unterminated));
        };
        let close = body_start + found_close;
        let tag = parse_tag(&source[body_start..close], body_start, open)?;
        parts.push(RawPart::Tag { tag, offset: open });
        pos = close + 2;
    }
    if pos < source.len() {
        parts.push(RawPart::Text(pos..source.len()));
    }
    Ok(parts)
}

fn is_space(c: char) -> bool {
    c.is_ascii_whitespace()
}

fn is_key_segment(segment: &str) -> bool {
    segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_secret_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok && name.len() <= MAX_SECRET_NAME && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses the text between `{{` and `}}`. `base` is the byte offset of
/// `body` in the whole string and `open` that of the `{{`.
fn parse_tag(body: &str, base: usize, open: usize) -> Result<Tag> {
    let content = body.trim_matches(is_space);
    if content.is_empty() {
        return Err((open, ParseErrorKind::EmptyTag));
    }
    let start = base + (body.len() - body.trim_start_matches(is_space).len());
    let end = start + content.len();

    // (offset, text) of each dot-separated segment.
    let mut segments = Vec::new();
    let mut offset = start;
    for segment in content.split('.') {
        segments.push((offset, segment));
        offset += segment.len() + 1;
    }

    let (root_offset, root) = segments[0];
    if root.is_empty() {
        return Err((root_offset, ParseErrorKind::EmptySegment));
    }
    if !ROOTS.contains(&root) {
        return Err((root_offset, ParseErrorKind::UnknownRoot { root: echo(root) }));
    }
    let rest = &segments[1..];
    if rest.len() > MAX_PATH_SEGMENTS {
        return Err((rest[MAX_PATH_SEGMENTS].0, ParseErrorKind::PathTooDeep));
    }
    for &(offset, segment) in rest {
        if segment.is_empty() {
            return Err((offset, ParseErrorKind::EmptySegment));
        }
        if segment.len() > MAX_SEGMENT_BYTES {
            return Err((offset, ParseErrorKind::SegmentTooLong));
        }
        if !is_key_segment(segment) {
            return Err((
                offset,
                ParseErrorKind::InvalidSegment {
                    segment: echo(segment),
                },
            ));
        }
    }

    match root {
        "input" => Ok(Tag::Input {
            path: parse_path(rest)?,
        }),
        "steps" => parse_steps(rest, end),
        "secrets" => parse_secret(rest, end),
        "run" => parse_id(rest, end, "run", Tag::RunId),
        _ => parse_id(rest, end, "workflow", Tag::WorkflowId),
    }
}

fn parse_steps(rest: &[(usize, &str)], end: usize) -> Result<Tag> {
    let Some(&(id_offset, step_id)) = rest.first() else {
        return Err((end, ParseErrorKind::MissingStepId));
    };
    if step_id.len() > MAX_STEP_ID {
        return Err((
            id_offset,
            ParseErrorKind::InvalidStepId {
                step_id: echo(step_id),
            },
        ));
    }
    match rest.get(1) {
        Some(&(_, "output")) => Ok(Tag::StepOutput {
            step_id: step_id.to_owned(),
            path: parse_path(&rest[2..])?,
        }),
        Some(&(offset, found)) => Err((
            offset,
            ParseErrorKind::ExpectedOutput {
                step_id: step_id.to_owned(),
                found: Some(echo(found)),
            },
        )),
        None => Err((
            end,
            ParseErrorKind::ExpectedOutput {
                step_id: step_id.to_owned(),
                found: None,
            },
        )),
    }
}

fn parse_secret(rest: &[(usize, &str)], end: usize) -> Result<Tag> {
    let Some(&(name_offset, name)) = rest.first() else {
        return Err((end, ParseErrorKind::MissingSecretName));
    };
    if !is_secret_name(name) {
        return Err((
            name_offset,
            ParseErrorKind::InvalidSecretName { name: echo(name) },
        ));
    }
    if let Some(&(offset, _)) = rest.get(1) {
        return Err((
            offset,
            ParseErrorKind::SecretPath {
                name: name.to_owned(),
            },
        ));
    }
    Ok(Tag::Secret {
        name: name.to_owned(),
    })
}

fn parse_id(rest: &[(usize, &str)], end: usize, root: &'static str, tag: Tag) -> Result<Tag> {
    match rest {
        [] => Err((end, ParseErrorKind::MissingField { root })),
        [(_, "id")] => Ok(tag),
        [(_, "id"), (offset, _), ..] => Err((*offset, ParseErrorKind::IdPath { root })),
        [(offset, field), ..] => Err((
            *offset,
            ParseErrorKind::UnknownField {
                root,
                field: echo(field),
            },
        )),
    }
}

/// Builds a path from segments already checked against `[A-Za-z0-9_-]+`.
fn parse_path(segments: &[(usize, &str)]) -> Result<Path> {
    segments
        .iter()
        .map(|&(offset, segment)| {
            if !segment.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(Segment::Key(segment.to_owned()));
            }
            let invalid = || {
                (
                    offset,
                    ParseErrorKind::InvalidIndex {
                        segment: echo(segment),
                    },
                )
            };
            // A leading zero would make `01` and `1` the same index while
            // naming different object keys.
            if segment.len() > 1 && segment.starts_with('0') {
                return Err(invalid());
            }
            segment.parse().map(Segment::Index).map_err(|_| invalid())
        })
        .collect::<Result<Vec<_>>>()
        .map(Path::new)
}
