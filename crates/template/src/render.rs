//! What rendering works on and reports: the context trait, tag lookup, render errors, and the
//! text form of a value placed in a string. The renderer itself is in `renderer`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::ast::Tag;

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
/// `<tag path> not found`, e.g. `input.user.email not found`, the path cut
/// to [`MAX_ECHO_CHARS`](crate::parse::MAX_ECHO_CHARS) characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} not found", crate::parse::echo(&.tag.to_string()))]
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
