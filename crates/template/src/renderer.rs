//! The renderer: the whole-tag and in-text rules, applied by one core that every entry point
//! shares, with the per-tag hooks the engine uses to encode and record secrets, and a
//! [`Budget`] charged as it goes (see `budget`).
//!
//! Entry points without a budget use an unlimited one, which can never run out.

use std::borrow::Cow;
use std::convert::Infallible;

use serde_json::{Map, Value};

use crate::ast::{RawPart, Tag, TemplateString};
use crate::budget::{Budget, Limited, TooLarge};
use crate::render::{to_text, NotFound, RenderError, Resolve};
use crate::template::{push_token, Node, Template};

/// Looks values up in place: they are measured against the budget before being copied.
fn strict<'a, R: Resolve + ?Sized>(ctx: &'a R) -> impl FnMut(&Tag) -> Result<Cow<'a, Value>, NotFound> + 'a {
    move |tag| tag.lookup(ctx).ok_or_else(|| NotFound { tag: tag.clone() })
}

fn lenient<'a, R: Resolve + ?Sized>(
    ctx: &'a R,
) -> impl FnMut(&Tag) -> Result<Cow<'a, Value>, Infallible> + 'a {
    move |tag| Ok(tag.lookup(ctx).unwrap_or(Cow::Owned(Value::Null)))
}

/// For hooks that return owned values.
fn owned<E>(
    mut f: impl FnMut(&Tag) -> Result<Value, E>,
) -> impl FnMut(&Tag) -> Result<Cow<'static, Value>, E> {
    move |tag| f(tag).map(Cow::Owned)
}

/// Drops the budget case from an unlimited rendering's error.
fn unlimited<E>(e: RenderError<Limited<E>>) -> RenderError<E> {
    RenderError {
        location: e.location,
        offset: e.offset,
        error: match e.error {
            Limited::Hook(e) => e,
            Limited::TooLarge(_) => unreachable!("an unlimited budget cannot be exceeded"),
        },
    }
}

/// The value of a lenient rendering under an unlimited budget, which cannot fail.
fn never_over(result: Result<Value, RenderError<TooLarge>>) -> Value {
    match result {
        Ok(value) => value,
        Err(_) => unreachable!("an unlimited budget cannot be exceeded"),
    }
}

/// Drops the hook case from a lenient rendering's error.
fn lenient_error(e: RenderError<Limited<Infallible>>) -> RenderError<TooLarge> {
    RenderError {
        location: e.location,
        offset: e.offset,
        error: match e.error {
            Limited::Hook(never) => match never {},
            Limited::TooLarge(t) => t,
        },
    }
}

impl TemplateString {
    /// Renders against `ctx`: a whole tag keeps its JSON type, anything else
    /// is a JSON string. A missing value is an error naming the tag.
    pub fn render<R: Resolve + ?Sized>(&self, ctx: &R) -> Result<Value, RenderError> {
        self.render_located(&mut strict(ctx), &mut Budget::unlimited(), "")
            .map_err(unlimited)
    }

    /// Like [`render`](Self::render), but a missing value is `null` (for
    /// `condition.field`); it cannot fail.
    pub fn render_lenient<R: Resolve + ?Sized>(&self, ctx: &R) -> Value {
        never_over(self.render_lenient_budgeted(ctx, &mut Budget::unlimited()))
    }

    /// [`render_lenient`](Self::render_lenient) charging `budget`.
    pub fn render_lenient_budgeted<R: Resolve + ?Sized>(
        &self,
        ctx: &R,
        budget: &mut Budget,
    ) -> Result<Value, RenderError<TooLarge>> {
        self.render_located(&mut lenient(ctx), budget, "")
            .map_err(lenient_error)
    }

    /// Renders with `f` deciding each tag's value; the whole-tag and in-text
    /// rules are applied to what it returns ([`to_text`] in text).
    pub fn render_value_with<E>(&self, f: impl FnMut(&Tag) -> Result<Value, E>) -> Result<Value, E> {
        self.render_located(&mut owned(f), &mut Budget::unlimited(), "")
            .map_err(|e| unlimited(e).error)
    }

    /// Renders to text with `f` deciding each tag's text (e.g. URL-encoding
    /// a secret in a URL, refusing CR/LF in a header). Borrows instead of
    /// allocating when the string has no tags or is one whole tag.
    pub fn render_string_with<'a, E>(
        &'a self,
        f: impl FnMut(&Tag) -> Result<Cow<'a, str>, E>,
    ) -> Result<Cow<'a, str>, E> {
        self.render_string_with_budget(&mut Budget::unlimited(), f)
            .map_err(|e| match e {
                Limited::Hook(e) => e,
                Limited::TooLarge(_) => unreachable!("an unlimited budget cannot be exceeded"),
            })
    }

    /// [`render_string_with`](Self::render_string_with), charging `budget` the bytes of text
    /// produced; stops before appending a piece that does not fit.
    pub fn render_string_with_budget<'a, E>(
        &'a self,
        budget: &mut Budget,
        mut f: impl FnMut(&Tag) -> Result<Cow<'a, str>, E>,
    ) -> Result<Cow<'a, str>, Limited<E>> {
        if let Some(tag) = self.whole_tag() {
            let text = f(tag).map_err(Limited::Hook)?;
            budget.charge(text.len()).map_err(Limited::TooLarge)?;
            return Ok(text);
        }
        if self.is_literal() {
            budget.charge(self.as_str().len()).map_err(Limited::TooLarge)?;
            return Ok(Cow::Borrowed(self.as_str()));
        }
        let mut out = String::with_capacity(self.as_str().len());
        for part in self.raw_parts() {
            let piece = match part {
                RawPart::Text(range) => Cow::Borrowed(&self.as_str()[range.clone()]),
                RawPart::Tag { tag, .. } => f(tag).map_err(Limited::Hook)?,
            };
            budget.charge(piece.len()).map_err(Limited::TooLarge)?;
            out.push_str(&piece);
        }
        Ok(Cow::Owned(out))
    }

    /// The shared rendering core; errors carry `location` and the tag offset.
    fn render_located<'v, E, F>(
        &self,
        f: &mut F,
        budget: &mut Budget,
        location: &str,
    ) -> Result<Value, RenderError<Limited<E>>>
    where
        F: FnMut(&Tag) -> Result<Cow<'v, Value>, E>,
    {
        let fail = |offset: usize| {
            move |error| RenderError {
                location: location.to_owned(),
                offset,
                error,
            }
        };
        let over = |offset: usize| move |e: TooLarge| fail(offset)(Limited::TooLarge(e));
        if let Some(tag) = self.whole_tag() {
            let value = f(tag).map_err(|e| fail(0)(Limited::Hook(e)))?;
            // Measured where it lies; copied only once it is known to fit.
            budget.charge_value(&value).map_err(over(0))?;
            return Ok(value.into_owned());
        }
        budget.charge(2).map_err(over(0))?;
        if self.is_literal() {
            budget.charge_string_content(self.as_str()).map_err(over(0))?;
            return Ok(Value::String(self.as_str().to_owned()));
        }
        let mut out = String::with_capacity(self.as_str().len());
        for part in self.raw_parts() {
            match part {
                RawPart::Text(range) => {
                    let text = &self.as_str()[range.clone()];
                    budget.charge_string_content(text).map_err(over(0))?;
                    out.push_str(text);
                }
                RawPart::Tag { tag, offset } => {
                    let value = f(tag).map_err(|e| fail(*offset)(Limited::Hook(e)))?;
                    if !value.is_string() {
                        // Its text is at least as long as its JSON: refuse before writing it.
                        budget.check_fits(&value).map_err(over(*offset))?;
                    }
                    let text = to_text(&value);
                    budget.charge_string_content(&text).map_err(over(*offset))?;
                    out.push_str(&text);
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
        self.render_budgeted(ctx, &mut Budget::unlimited())
            .map_err(unlimited)
    }

    /// [`render`](Self::render) charging `budget`: fails with [`Limited::TooLarge`] before the
    /// output would pass it, having built no more than the budget allows.
    pub fn render_budgeted<R: Resolve + ?Sized>(
        &self,
        ctx: &R,
        budget: &mut Budget,
    ) -> Result<Value, RenderError<Limited>> {
        render_node(self.root(), &mut strict(ctx), budget, &mut String::new())
    }

    /// Like [`render`](Self::render), but a missing value is `null` (for
    /// `condition.field`); it cannot fail.
    pub fn render_lenient<R: Resolve + ?Sized>(&self, ctx: &R) -> Value {
        never_over(self.render_lenient_budgeted(ctx, &mut Budget::unlimited()))
    }

    /// [`render_lenient`](Self::render_lenient) charging `budget`.
    pub fn render_lenient_budgeted<R: Resolve + ?Sized>(
        &self,
        ctx: &R,
        budget: &mut Budget,
    ) -> Result<Value, RenderError<TooLarge>> {
        render_node(self.root(), &mut lenient(ctx), budget, &mut String::new()).map_err(lenient_error)
    }

    /// Renders with `f` deciding each tag's value; the whole-tag and in-text
    /// rules are applied to what it returns. The first error stops rendering
    /// and is returned with the location of the tag.
    pub fn render_with<E>(&self, f: impl FnMut(&Tag) -> Result<Value, E>) -> Result<Value, RenderError<E>> {
        render_node(
            self.root(),
            &mut owned(f),
            &mut Budget::unlimited(),
            &mut String::new(),
        )
        .map_err(unlimited)
    }

    /// [`render_with`](Self::render_with) charging `budget`; `f` may lend values
    /// (`Cow::Borrowed`) so that they are measured before being copied.
    pub fn render_with_budget<'v, E>(
        &self,
        budget: &mut Budget,
        mut f: impl FnMut(&Tag) -> Result<Cow<'v, Value>, E>,
    ) -> Result<Value, RenderError<Limited<E>>> {
        render_node(self.root(), &mut f, budget, &mut String::new())
    }
}

fn render_node<'v, E, F>(
    node: &Node,
    f: &mut F,
    budget: &mut Budget,
    pointer: &mut String,
) -> Result<Value, RenderError<Limited<E>>>
where
    F: FnMut(&Tag) -> Result<Cow<'v, Value>, E>,
{
    let over = |pointer: &str| {
        let location = pointer.to_owned();
        move |e| RenderError {
            location,
            offset: 0,
            error: Limited::TooLarge(e),
        }
    };
    Ok(match node {
        Node::Null => {
            budget.charge(4).map_err(over(pointer))?;
            Value::Null
        }
        Node::Bool(b) => {
            budget.charge(if *b { 4 } else { 5 }).map_err(over(pointer))?;
            Value::Bool(*b)
        }
        Node::Number(n) => {
            budget.charge(n.to_string().len()).map_err(over(pointer))?;
            Value::Number(n.clone())
        }
        Node::String(s) => s.render_located(f, budget, pointer)?,
        Node::Array(items) => {
            budget
                .charge(2 + items.len().saturating_sub(1))
                .map_err(over(pointer))?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = push_token(pointer, &i.to_string());
                out.push(render_node(item, f, budget, pointer)?);
                pointer.truncate(len);
            }
            Value::Array(out)
        }
        Node::Object(entries) => {
            budget
                .charge(2 + entries.len().saturating_sub(1))
                .map_err(over(pointer))?;
            let mut out = Map::new();
            for (key, item) in entries {
                budget
                    .charge(3 + crate::budget::escaped_len(key))
                    .map_err(over(pointer))?;
                let len = push_token(pointer, key);
                out.insert(key.clone(), render_node(item, f, budget, pointer)?);
                pointer.truncate(len);
            }
            Value::Object(out)
        }
    })
}
