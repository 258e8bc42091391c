//! A webhook URL template read as a URL: which component every tag stands in, and rendering that
//! encodes each value for that component, so no value can change the URL's structure.
//!
//! The literal text around the tags is the URL's *skeleton*. [`UrlTemplate::parse`] walks it
//! (RFC 3986: `scheme://userinfo@host:port/path?query#fragment`) and gives every tag a
//! [`UrlPart`]; [`UrlTemplate::render_into`] then places each value by its part:
//!
//! | part | a value becomes |
//! |---|---|
//! | userinfo, path segment, query name or value, fragment | percent-encoded: everything but `A-Z a-z 0-9 - . _ ~` (so `/ ? # & = @ : % +`, spaces, CR/LF and non-ASCII are escaped, UTF-8) |
//! | host | itself, if it is only ASCII letters, digits and `-` (a secret may also hold dots); else the step fails |
//! | port | itself, if it is 1 to 5 digits |
//! | the whole URL, or the start of it (see below) | itself (it *is* the destination) |
//!
//! Decisions, and why:
//!
//! - **Host labels get no dots and no Unicode.** A value may fill a label
//!   (`https://{{input.tenant}}.example.com/`) but not add labels, so it picks a name *under* the
//!   domain the author wrote. IDNA is not applied to values: its mapping turns some code points
//!   (U+3002, U+FF0E, …) into dots, so Unicode is refused; punycode (`xn--…`) is ASCII and works.
//!   A tag may not stand in the last label (`https://api.{{input.tld}}/`) nor be the whole host,
//!   since that would let the value choose the domain; secrets (the operator's own values) are
//!   trusted with dots and may stand anywhere in the host.
//! - **Dot segments and empty segments are refused.** `..` (or `.%2e`) would be removed by the URL
//!   parser together with the segment before it (`/users/{{input.id}}/keys` with `..` → `/keys`);
//!   percent-encoding does not help, because `%2e` counts as a dot there. An empty value making a
//!   whole segment empty (`/users/` instead of `/users/42`) is refused as well.
//! - **Destination tags.** A tag that is the whole URL, or that starts it and is followed by
//!   `/`, `?` or `#` (`{{secrets.API_BASE}}/v1/events`), supplies scheme and host itself; that
//!   is allowed for secrets, and for other tags only in steps that use no secret (the validator
//!   checks this: such a tag lets whoever supplies the value choose where the request goes).
//! - **Ambiguous positions are refused when the definition is saved**, so a running workflow
//!   never meets them: a tag inside an IPv6 literal, a tag right after the start tag, a literal
//!   `%` that does not begin a `%XX` escape (it would combine with the value), literal
//!   backslashes, whitespace or control characters.
//!
//! After rendering, the URL is parsed (WHATWG, as the HTTP client does) and its host must be the
//! host the skeleton put together, and userinfo may appear only where the skeleton has one: a
//! second line of defence should an encoding rule above ever be wrong.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sealflow_template::{Part, Tag, TemplateString};

/// Everything but RFC 3986 unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// Where in a URL a tag (or a piece of literal text) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlPart {
    /// The tag is the whole URL.
    Whole,
    /// The tag starts the URL (scheme, host, maybe a path) and literal `/`, `?` or `#` follows.
    Start,
    /// `http://` or `https://`.
    Scheme,
    /// Before the `@` of the authority.
    Userinfo,
    /// Between `//` (or `@`) and the port or path.
    Host,
    /// After the host's `:`.
    Port,
    /// A path segment.
    Path,
    /// A query parameter name (before `=`).
    QueryName,
    /// A query parameter value (after `=`).
    QueryValue,
    /// After `#`.
    Fragment,
}

impl UrlPart {
    fn describe(self) -> &'static str {
        match self {
            UrlPart::Whole => "the whole URL",
            UrlPart::Start => "the start of the URL",
            UrlPart::Scheme => "the scheme",
            UrlPart::Userinfo => "the userinfo",
            UrlPart::Host => "the host",
            UrlPart::Port => "the port",
            UrlPart::Path => "a path segment",
            UrlPart::QueryName => "a query parameter name",
            UrlPart::QueryValue => "a query parameter value",
            UrlPart::Fragment => "the fragment",
        }
    }
}

impl fmt::Display for UrlPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text { text: String, part: UrlPart },
    Tag { tag: Tag, part: UrlPart, offset: usize },
}

/// A URL template whose every tag knows its component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    pieces: Vec<Piece>,
    has_userinfo: bool,
}

/// Why a URL template cannot be used (found when the definition is saved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlProblem {
    /// Byte offset in the URL string.
    pub offset: usize,
    /// What is wrong, to follow `config.url` in a sentence (e.g. `has {{input.h}} (byte 8) …`).
    pub message: String,
}

/// Why a URL could not be rendered (found when the step runs). Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlRenderError<E> {
    /// The caller's hook failed for a tag (a missing value, an unknown secret…).
    Tag(E),
    /// A value cannot stand where its tag is.
    Value {
        tag: Tag,
        part: UrlPart,
        reason: &'static str,
    },
    /// The rendered URL does not parse, or parses to another host than the skeleton built.
    Invalid(&'static str),
    /// The URL grew past the caller's limit.
    TooLong { limit: usize },
}

impl<E: fmt::Display> fmt::Display for UrlRenderError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlRenderError::Tag(e) => e.fmt(f),
            UrlRenderError::Value { tag, part, reason } => {
                write!(f, "{{{{{tag}}}}} cannot be placed in {part}: {reason}")
            }
            UrlRenderError::Invalid(reason) => f.write_str(reason),
            UrlRenderError::TooLong { limit } => {
                write!(f, "the rendered URL would exceed {limit} bytes")
            }
        }
    }
}

/// One character of literal text, or a tag, with its byte offset.
#[derive(Clone, Copy)]
enum Tok<'a> {
    Char(usize, char),
    Tag(usize, &'a Tag),
}

impl Tok<'_> {
    fn is(&self, set: &[char]) -> bool {
        matches!(self, Tok::Char(_, c) if set.contains(c))
    }
}

fn problem(offset: usize, message: String) -> UrlProblem {
    UrlProblem { offset, message }
}

fn tag_problem(offset: usize, tag: &Tag, rest: &str) -> UrlProblem {
    problem(offset, format!("has {{{{{tag}}}}} (byte {offset}) {rest}"))
}

impl UrlTemplate {
    /// Reads the skeleton of `url` (a template string). The messages follow `config.url`.
    pub fn parse(url: &str) -> Result<Self, UrlProblem> {
        let template = TemplateString::parse(url).map_err(|e| {
            problem(
                e.offset(),
                format!("has an invalid template at byte {}: {}", e.offset(), e.kind()),
            )
        })?;
        let source = template.as_str().as_ptr() as usize;
        let mut toks = Vec::new();
        for part in template.parts() {
            match part {
                Part::Text(text) => {
                    // Text parts are slices of the template's source: their offset is the distance.
                    let base = text.as_ptr() as usize - source;
                    toks.extend(text.char_indices().map(|(i, c)| Tok::Char(base + i, c)));
                }
                Part::Tag { tag, offset } => toks.push(Tok::Tag(offset, tag)),
            }
        }
        check_literals(&toks)?;
        let mut out = Builder::default();
        if let Some(tag) = template.whole_tag() {
            out.tag(0, tag, UrlPart::Whole);
            return Ok(out.finish(false));
        }
        let rest = match toks.first() {
            Some(Tok::Tag(offset, tag)) => {
                if !toks.get(1).is_some_and(|t| t.is(&['/', '?', '#'])) {
                    return Err(tag_problem(
                        *offset,
                        tag,
                        "at its start, followed by something other than \"/\", \"?\" or \"#\"; a tag that \
                         starts the URL supplies its scheme and host, so literal text may only go on with \
                         a path, a query or a fragment",
                    ));
                }
                out.tag(*offset, tag, UrlPart::Start);
                &toks[1..]
            }
            _ => {
                let scheme = scheme_len(&toks).ok_or_else(|| {
                    problem(
                        0,
                        format!(
                            "must start with http://, https:// or a template tag, got {}",
                            crate::validate::show(url)
                        ),
                    )
                })?;
                for t in &toks[..scheme] {
                    out.tok(*t, UrlPart::Scheme);
                }
                let rest = &toks[scheme..];
                let end = rest
                    .iter()
                    .position(|t| t.is(&['/', '?', '#']))
                    .unwrap_or(rest.len());
                out.authority(&rest[..end], url)?;
                &rest[end..]
            }
        };
        out.after_authority(rest);
        let has_userinfo = out.pieces_have(UrlPart::Userinfo);
        Ok(out.finish(has_userinfo))
    }

    /// Every tag with its byte offset and part, in order.
    pub fn tags(&self) -> impl Iterator<Item = (usize, &Tag, UrlPart)> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Tag { tag, part, offset } => Some((*offset, tag, *part)),
            Piece::Text { .. } => None,
        })
    }

    /// The tag that supplies the destination (the whole URL, or its start), if any.
    pub fn destination_tag(&self) -> Option<&Tag> {
        match self.pieces.first() {
            Some(Piece::Tag {
                tag,
                part: UrlPart::Whole | UrlPart::Start,
                ..
            }) => Some(tag),
            _ => None,
        }
    }

    /// Renders into `out` (for a caller that keeps the URL in zeroizing memory), with `value`
    /// giving each tag's raw text; each is placed by its part (see the module docs). Secrets
    /// (`{{secrets.*}}`) are trusted with dots in the host. Fails once `out` would pass
    /// `max_len` bytes.
    pub fn render_into<'v, E>(
        &self,
        out: &mut String,
        max_len: usize,
        mut value: impl FnMut(&Tag) -> Result<Cow<'v, str>, E>,
    ) -> Result<(), UrlRenderError<E>> {
        out.clear();
        let mut host: Option<(usize, usize)> = None;
        let mut placed: Vec<(usize, usize, &Tag, UrlPart)> = Vec::new();
        for piece in &self.pieces {
            let start = out.len();
            let part = match piece {
                Piece::Text { text, part } => {
                    out.push_str(text);
                    *part
                }
                Piece::Tag { tag, part, .. } => {
                    let text = value(tag).map_err(UrlRenderError::Tag)?;
                    if text.len() > max_len {
                        return Err(UrlRenderError::TooLong { limit: max_len });
                    }
                    place(out, tag, *part, &text)?;
                    placed.push((start, out.len(), tag, *part));
                    *part
                }
            };
            if out.len() > max_len {
                return Err(UrlRenderError::TooLong { limit: max_len });
            }
            if part == UrlPart::Host {
                host = Some((host.map_or(start, |h| h.0), out.len()));
            }
        }
        for &(start, end, tag, part) in &placed {
            let fail = |reason| UrlRenderError::Value {
                tag: tag.clone(),
                part,
                reason,
            };
            match part {
                UrlPart::Host if tag.secret_name().is_none() => {
                    let label = enclosing(out, start, end, &['.', '/', '@', ':']);
                    if label.is_empty() {
                        return Err(fail("it renders an empty host label"));
                    }
                    if label.len() > MAX_LABEL {
                        return Err(fail("it renders a host label longer than 63 characters"));
                    }
                    if label.starts_with('-') || label.ends_with('-') {
                        return Err(fail("a host label may not start or end with \"-\""));
                    }
                }
                UrlPart::Path => {
                    let segment = enclosing(out, start, end, &['/', '?', '#']);
                    if segment.is_empty() {
                        return Err(fail("it renders an empty path segment"));
                    }
                    if is_dot_segment(segment) {
                        return Err(fail(
                            "it renders the path segment \".\" or \"..\", which would change the path",
                        ));
                    }
                }
                _ => {}
            }
        }
        self.check_parsed(out, host)
    }

    /// The second line of defence: parse as the HTTP client will, compare with the skeleton.
    fn check_parsed<E>(&self, out: &str, host: Option<(usize, usize)>) -> Result<(), UrlRenderError<E>> {
        let parsed = url::Url::parse(out)
            .map_err(|_| UrlRenderError::Invalid("config.url does not render to a valid URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(UrlRenderError::Invalid(
                "config.url must render to an http:// or https:// URL",
            ));
        }
        if self.destination_tag().is_some() {
            return Ok(());
        }
        let Some((start, end)) = host else {
            return Err(UrlRenderError::Invalid("config.url renders no host"));
        };
        let expected = url::Host::parse(&out[start..end])
            .map_err(|_| UrlRenderError::Invalid("config.url renders an invalid host"))?;
        if parsed.host_str() != Some(expected.to_string().as_str()) {
            return Err(UrlRenderError::Invalid(
                "config.url renders to another host than the one its text names",
            ));
        }
        if !self.has_userinfo && (!parsed.username().is_empty() || parsed.password().is_some()) {
            return Err(UrlRenderError::Invalid(
                "config.url renders userinfo it does not have",
            ));
        }
        Ok(())
    }
}

/// Appends one value, encoded (or checked) for `part`.
fn place<E>(out: &mut String, tag: &Tag, part: UrlPart, text: &str) -> Result<(), UrlRenderError<E>> {
    let fail = |reason| UrlRenderError::Value {
        tag: tag.clone(),
        part,
        reason,
    };
    match part {
        UrlPart::Whole => out.push_str(text),
        UrlPart::Start => {
            if scheme_prefix(text).is_none() {
                return Err(fail("it must render an absolute http:// or https:// URL"));
            }
            out.push_str(text);
        }
        UrlPart::Host => {
            let trusted = tag.secret_name().is_some();
            let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || (trusted && b == b'.');
            if !text.bytes().all(ok) {
                return Err(fail(if trusted {
                    "a secret in the host may hold only ASCII letters, digits, \"-\" and \".\""
                } else {
                    "a host label may hold only ASCII letters, digits and \"-\""
                }));
            }
            out.push_str(text);
        }
        UrlPart::Port => {
            if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail("a port is 1 to 5 digits"));
            }
            out.push_str(text);
        }
        UrlPart::Scheme => return Err(fail("a tag may not produce the scheme")),
        UrlPart::Userinfo | UrlPart::Path | UrlPart::QueryName | UrlPart::QueryValue | UrlPart::Fragment => {
            out.extend(utf8_percent_encode(text, COMPONENT));
        }
    }
    Ok(())
}

/// The run of `out` around `start..end` up to the nearest delimiter on each side.
fn enclosing<'a>(out: &'a str, start: usize, end: usize, delimiters: &[char]) -> &'a str {
    let from = out[..start].rfind(delimiters).map_or(0, |i| i + 1);
    let to = out[end..].find(delimiters).map_or(out.len(), |i| end + i);
    &out[from..to]
}

/// `.` or `..`, also spelt with `%2e` (WHATWG URL treats both the same).
fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

/// Length of a leading `http://` or `https://` (any case).
fn scheme_prefix(text: &str) -> Option<usize> {
    ["http://", "https://"]
        .into_iter()
        .find(|s| text.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)))
        .map(str::len)
}

/// Tokens of a leading literal `http://` or `https://`.
fn scheme_len(toks: &[Tok<'_>]) -> Option<usize> {
    let literal: String = toks
        .iter()
        .take(8)
        .map_while(|t| match t {
            Tok::Char(_, c) => Some(*c),
            Tok::Tag(..) => None,
        })
        .collect();
    scheme_prefix(&literal)
}

/// Literal text that would be read differently by a URL parser than by this skeleton.
fn check_literals(toks: &[Tok<'_>]) -> Result<(), UrlProblem> {
    for (i, t) in toks.iter().enumerate() {
        let Tok::Char(at, c) = *t else { continue };
        if c.is_whitespace() || c.is_control() {
            return Err(problem(
                at,
                format!("has whitespace or a control character at byte {at}"),
            ));
        }
        if c == '\\' {
            return Err(problem(
                at,
                format!("has a backslash at byte {at}; URL parsers read it as \"/\", write %5C"),
            ));
        }
        let hex = |j: usize| matches!(toks.get(j), Some(Tok::Char(_, h)) if h.is_ascii_hexdigit());
        if c == '%' && !(hex(i + 1) && hex(i + 2)) {
            return Err(problem(
                at,
                format!(
                    "has a \"%\" at byte {at} that does not begin a %XX escape (a value after it would \
                     complete one); write %25 for a percent sign"
                ),
            ));
        }
    }
    Ok(())
}

/// Collects pieces, merging neighbouring text of the same part.
#[derive(Default)]
struct Builder {
    pieces: Vec<Piece>,
}

impl Builder {
    fn tag(&mut self, offset: usize, tag: &Tag, part: UrlPart) {
        self.pieces.push(Piece::Tag {
            tag: tag.clone(),
            part,
            offset,
        });
    }

    fn tok(&mut self, tok: Tok<'_>, part: UrlPart) {
        match tok {
            Tok::Tag(offset, tag) => self.tag(offset, tag, part),
            Tok::Char(_, c) => match self.pieces.last_mut() {
                Some(Piece::Text { text, part: p }) if *p == part => text.push(c),
                _ => self.pieces.push(Piece::Text {
                    text: c.to_string(),
                    part,
                }),
            },
        }
    }

    fn pieces_have(&self, part: UrlPart) -> bool {
        self.pieces.iter().any(|p| match p {
            Piece::Text { part: q, .. } | Piece::Tag { part: q, .. } => *q == part,
        })
    }

    /// `userinfo@host:port`, or `[v6]:port`.
    fn authority(&mut self, toks: &[Tok<'_>], url: &str) -> Result<(), UrlProblem> {
        let no_host = || {
            problem(
                0,
                format!(
                    "must be an absolute http:// or https:// URL with a host, got {}",
                    crate::validate::show(url)
                ),
            )
        };
        let host_from = match toks.iter().rposition(|t| t.is(&['@'])) {
            Some(at) => {
                for t in &toks[..=at] {
                    self.tok(*t, UrlPart::Userinfo);
                }
                at + 1
            }
            None => 0,
        };
        let host_port = &toks[host_from..];
        let host_len = if host_port.first().is_some_and(|t| t.is(&['['])) {
            let close = host_port.iter().position(|t| t.is(&[']'])).ok_or_else(no_host)?;
            if let Some(Tok::Tag(offset, tag)) = host_port[..close].iter().find(|t| matches!(t, Tok::Tag(..)))
            {
                return Err(tag_problem(
                    *offset,
                    tag,
                    "inside an IPv6 address; a tag may not stand there",
                ));
            }
            close + 1
        } else {
            host_port
                .iter()
                .position(|t| t.is(&[':']))
                .unwrap_or(host_port.len())
        };
        let (host, port) = host_port.split_at(host_len);
        if host.is_empty() {
            return Err(no_host());
        }
        check_host_tags(host)?;
        for t in host {
            self.tok(*t, UrlPart::Host);
        }
        // `port` starts with its `:`; after it only digits and tags.
        for (i, t) in port.iter().enumerate() {
            if let Tok::Char(at, c) = *t {
                if i > 0 && !c.is_ascii_digit() {
                    return Err(problem(
                        at,
                        format!("has a port that is not a number (byte {at})"),
                    ));
                }
            }
            self.tok(*t, UrlPart::Port);
        }
        Ok(())
    }

    /// Path, query (names and values) and fragment.
    fn after_authority(&mut self, toks: &[Tok<'_>]) {
        let mut part = UrlPart::Path;
        for t in toks {
            if let Tok::Char(_, c) = t {
                part = match (part, c) {
                    (UrlPart::Path, '?') => UrlPart::QueryName,
                    (UrlPart::Path | UrlPart::QueryName | UrlPart::QueryValue, '#') => UrlPart::Fragment,
                    (UrlPart::QueryName | UrlPart::QueryValue, '&') => UrlPart::QueryName,
                    (UrlPart::QueryName, '=') => UrlPart::QueryValue,
                    (p, _) => p,
                };
            }
            self.tok(*t, part);
        }
    }

    fn finish(self, has_userinfo: bool) -> UrlTemplate {
        UrlTemplate {
            pieces: self.pieces,
            has_userinfo,
        }
    }
}

/// Tags in the host may fill labels but not the last one, unless they are secrets.
fn check_host_tags(host: &[Tok<'_>]) -> Result<(), UrlProblem> {
    // A trailing dot (`example.com.`) does not start another label.
    let host = match host.last() {
        Some(t) if t.is(&['.']) => &host[..host.len() - 1],
        _ => host,
    };
    let last_label = host
        .iter()
        .rposition(|t| t.is(&['.']))
        .map_or(host, |dot| &host[dot + 1..]);
    for t in last_label {
        if let Tok::Tag(offset, tag) = t {
            if tag.secret_name().is_none() {
                return Err(tag_problem(
                    *offset,
                    tag,
                    "in the last label of the host, where its value would choose the domain; a tag may \
                     fill a label under a domain the URL names (https://{{input.tenant}}.example.com/), \
                     and a value that must choose the whole destination can be the whole URL (only in \
                     steps that use no secret)",
                ));
            }
        }
    }
    Ok(())
}
