//! Rendering: the context trait, the whole-tag/in-text rules, and the
//! per-tag hooks the engine uses to encode and record secrets.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;

use serde_json::{Map, Value};

use crate::ast::{RawPart, Tag, TemplateString};
use crate::template::{push_token, Node, Template};

/// What tags resolve against. Every method returns `None` for "missing".
///
/// Implement it over the engine's own run state, or use [`Context`].
pub trait Resolve {
    /// The run input (`{{input...}}`).
    fn input(&self) -> &Value;
    /// The output of step `step_id`, if that step has produced one.
    fn step_output(&self, step_id: &str) -> Option<&Value>;
    /// The run id, if there is a run.
    fn run_id(&self) -> Option<&str>;
    /// The workflow id, if known.
    fn workflow_id(&self) -> Option<&str>;
    /// The plaintext of secret `name`, if it exists.
    fn secret(&self, name: &str) -> Option<&str>;
}

impl<T: Resolve + ?Sized> Resolve for &T {
    fn input(&self) -> &Value {
        (**self).input()
    }
    fn step_output(&self, step_id: &str) -> Option<&Value> {
        (**self).step_output(step_id)
    }
    fn run_id(&self) -> Option<&str> {
        (**self).run_id()
    }
    fn workflow_id(&self) -> Option<&str> {
        (**self).workflow_id()
    }
    fn secret(&self, name: &str) -> Option<&str> {
        (**self).secret(name)
    }
}

/// A plain owned [`Resolve`] implementation. `Context::default()` is the
/// empty context: input `null`, nothing else present.
#[derive(Clone, Default)]
pub struct Context {
    /// The run input.
    pub input: Value,
    /// Step outputs by step id.
    pub steps: BTreeMap<String, Value>,
    /// The run id.
    pub run_id: Option<String>,
    /// The workflow id.
    pub workflow_id: Option<String>,
    /// Secret plaintexts by name.
    pub secrets: BTreeMap<String, String>,
}

impl fmt::Debug for Context {
    // Hand-written so secret values never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("input", &self.input)
            .field("steps", &self.steps)
            .field("run_id", &self.run_id)
            .field("workflow_id", &self.workflow_id)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Resolve for Context {
    fn input(&self) -> &Value {
        &self.input
    }
    fn step_output(&self, step_id: &str) -> Option<&Value> {
        self.steps.get(step_id)
    }
    fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }
    fn workflow_id(&self) -> Option<&str> {
        self.workflow_id.as_deref()
    }
    fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.get(name).map(String::as_str)
    }
}

impl Tag {
    /// The tag's value in `ctx` (cloned), or `None` if missing. Secrets come
    /// back as plain JSON strings; callers of the `*_with` hooks can use this
    /// for every non-secret tag.
    pub fn resolve<R: Resolve + ?Sized>(&self, ctx: &R) -> Option<Value> {
        match self {
            Tag::Input { path } => path.lookup(ctx.input()).cloned(),
            Tag::StepOutput { step_id, path } => {
                ctx.step_output(step_id).and_then(|v| path.lookup(v)).cloned()
            }
            Tag::Secret { name } => ctx.secret(name).map(|s| Value::String(s.to_owned())),
            Tag::RunId => ctx.run_id().map(|s| Value::String(s.to_owned())),
            Tag::WorkflowId => ctx.workflow_id().map(|s| Value::String(s.to_owned())),
        }
    }

    /// Like [`resolve`](Self::resolve), but borrows input and step outputs from `ctx` instead
    /// of cloning them, so a caller can measure a value before copying it.
    pub fn lookup<'a, R: Resolve + ?Sized>(&self, ctx: &'a R) -> Option<Cow<'a, Value>> {
        match self {
            Tag::Input { path } => path.lookup(ctx.input()).map(Cow::Borrowed),
            Tag::StepOutput { step_id, path } => ctx
                .step_output(step_id)
                .and_then(|v| path.lookup(v))
                .map(Cow::Borrowed),
            other => other.resolve(ctx).map(Cow::Owned),
        }
    }
}

/// A tag whose value is missing in strict rendering. Displays as
/// `<tag path> not found`, e.g. `input.user.email not found`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tag} not found")]
pub struct NotFound {
    /// The missing tag.
    pub tag: Tag,
}

/// A rendering failure: the hook's error `E` (for [`Template::render`],
/// [`NotFound`]) plus where the tag is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError<E = NotFound> {
    /// JSON pointer of the string holding the tag; empty for the root or a
    /// bare [`TemplateString`].
    pub location: String,
    /// Byte offset of the tag's `{{` within that string.
    pub offset: usize,
    /// What went wrong.
    pub error: E,
}

impl<E: fmt::Display> fmt::Display for RenderError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            write!(f, "render error at byte {}: {}", self.offset, self.error)
        } else {
            write!(
                f,
                "render error at {} byte {}: {}",
                self.location, self.offset, self.error
            )
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for RenderError<E> {}

/// The text of a value placed inside a longer string: strings raw, anything
/// else (including `null`) as compact JSON.
pub fn to_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

fn strict<R: Resolve + ?Sized>(ctx: &R) -> impl FnMut(&Tag) -> Result<Value, NotFound> + '_ {
    move |tag| tag.resolve(ctx).ok_or_else(|| NotFound { tag: tag.clone() })
}

fn lenient<R: Resolve + ?Sized>(ctx: &R) -> impl FnMut(&Tag) -> Result<Value, Infallible> + '_ {
    move |tag| Ok(tag.resolve(ctx).unwrap_or(Value::Null))
}

fn infallible<T>(result: Result<T, RenderError<Infallible>>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => match e.error {},
    }
}

impl TemplateString {
    /// Renders against `ctx`: a whole tag keeps its JSON type, anything else
    /// is a JSON string. A missing value is an error naming the tag.
    pub fn render<R: Resolve + ?Sized>(&self, ctx: &R) -> Result<Value, RenderError> {
        self.render_located(&mut strict(ctx), "")
    }

    /// Like [`render`](Self::render), but a missing value is `null` (for
    /// `condition.field`); it cannot fail.
    pub fn render_lenient<R: Resolve + ?Sized>(&self, ctx: &R) -> Value {
        infallible(self.render_located(&mut lenient(ctx), ""))
    }

    /// Renders with `f` deciding each tag's value; the whole-tag and in-text
    /// rules are applied to what it returns ([`to_text`] in text).
    pub fn render_value_with<E>(&self, mut f: impl FnMut(&Tag) -> Result<Value, E>) -> Result<Value, E> {
        self.render_located(&mut f, "").map_err(|e| e.error)
    }

    /// Renders to text with `f` deciding each tag's text (e.g. URL-encoding
    /// a secret in a URL, refusing CR/LF in a header). Borrows instead of
    /// allocating when the string has no tags or is one whole tag.
    pub fn render_string_with<'a, E>(
        &'a self,
        mut f: impl FnMut(&Tag) -> Result<Cow<'a, str>, E>,
    ) -> Result<Cow<'a, str>, E> {
        if let Some(tag) = self.whole_tag() {
            return f(tag);
        }
        if self.is_literal() {
            return Ok(Cow::Borrowed(self.as_str()));
        }
        let mut out = String::with_capacity(self.as_str().len());
        for part in self.raw_parts() {
            match part {
                RawPart::Text(range) => out.push_str(&self.as_str()[range.clone()]),
                RawPart::Tag { tag, .. } => out.push_str(&f(tag)?),
            }
        }
        Ok(Cow::Owned(out))
    }

    /// The shared rendering core; errors carry `location` and the tag offset.
    fn render_located<E, F>(&self, f: &mut F, location: &str) -> Result<Value, RenderError<E>>
    where
        F: FnMut(&Tag) -> Result<Value, E>,
    {
        let fail = |offset: usize| {
            move |error| RenderError {
                location: location.to_owned(),
                offset,
                error,
            }
        };
        if let Some(tag) = self.whole_tag() {
            return f(tag).map_err(fail(0));
        }
        if self.is_literal() {
            return Ok(Value::String(self.as_str().to_owned()));
        }
        let mut out = String::with_capacity(self.as_str().len());
        for part in self.raw_parts() {
            match part {
                RawPart::Text(range) => out.push_str(&self.as_str()[range.clone()]),
                RawPart::Tag { tag, offset } => {
                    let value = f(tag).map_err(fail(*offset))?;
                    out.push_str(&to_text(&value));
                }
            }
        }
        Ok(Value::String(out))
    }
}

impl Template {
    /// Renders against `ctx`. A missing value is an error naming the tag and
    /// where it is. Secrets are inserted as plain strings: an engine that
    /// encodes or records secrets uses [`render_with`](Self::render_with).
    pub fn render<R: Resolve + ?Sized>(&self, ctx: &R) -> Result<Value, RenderError> {
        self.render_with(strict(ctx))
    }

    /// Like [`render`](Self::render), but a missing value is `null` (for
    /// `condition.field`); it cannot fail.
    pub fn render_lenient<R: Resolve + ?Sized>(&self, ctx: &R) -> Value {
        infallible(self.render_with(lenient(ctx)))
    }

    /// Renders with `f` deciding each tag's value; the whole-tag and in-text
    /// rules are applied to what it returns. The first error stops rendering
    /// and is returned with the location of the tag.
    pub fn render_with<E>(
        &self,
        mut f: impl FnMut(&Tag) -> Result<Value, E>,
    ) -> Result<Value, RenderError<E>> {
        let mut pointer = String::new();
        render_node(self.root(), &mut f, &mut pointer)
    }
}

fn render_node<E, F>(node: &Node, f: &mut F, pointer: &mut String) -> Result<Value, RenderError<E>>
where
    F: FnMut(&Tag) -> Result<Value, E>,
{
    Ok(match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Number(n) => Value::Number(n.clone()),
        Node::String(s) => s.render_located(f, pointer)?,
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = push_token(pointer, &i.to_string());
                out.push(render_node(item, f, pointer)?);
                pointer.truncate(len);
            }
            Value::Array(out)
        }
        Node::Object(entries) => {
            let mut out = Map::new();
            for (key, item) in entries {
                let len = push_token(pointer, key);
                out.insert(key.clone(), render_node(item, f, pointer)?);
                pointer.truncate(len);
            }
            Value::Object(out)
        }
    })
}
