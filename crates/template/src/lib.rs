//! The `{{ ... }}` template language used in sealflow workflow step configs.
//!
//! A step config is a JSON value. [`Template::parse`] parses it once into a
//! tree in which every string *value* (object keys stay literal) is a
//! [`TemplateString`]: a sequence of literal text and [`Tag`]s. The parsed
//! form is cheap to clone (reference counted) and is rendered against a
//! context with [`Template::render`], or with [`Template::render_with`] when
//! the caller must decide how each tag becomes a value (secrets).
//!
//! ```
//! use sealflow_template::{Context, Template};
//! use serde_json::json;
//!
//! let template = Template::parse(&json!({
//!     "count": "{{ input.items.0.qty }}",
//!     "text": "order {{run.id}}: {{input.items.0.qty}} items",
//! }))?;
//! let ctx = Context {
//!     input: json!({"items": [{"qty": 3}]}),
//!     run_id: Some("r1".into()),
//!     ..Context::default()
//! };
//! assert_eq!(
//!     template.render(&ctx)?,
//!     json!({"count": 3, "text": "order r1: 3 items"})
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Grammar
//!
//! | tag | meaning |
//! | --- | --- |
//! | `{{input}}`, `{{input.PATH}}` | the run input, or a value inside it |
//! | `{{steps.ID.output}}`, `{{steps.ID.output.PATH}}` | the output of an earlier step, or a value inside it |
//! | `{{secrets.NAME}}` | a secret, by name |
//! | `{{run.id}}`, `{{workflow.id}}` | the run id, the workflow id |
//!
//! - `PATH` is dot-separated segments. A segment is a key (`[A-Za-z0-9_-]+`)
//!   or, when it is all digits, an array index (`items.0.name`). An index
//!   applied to an object looks up the key spelled the same way (so
//!   `{"200": ...}` is reachable as `.200`); indexes with a leading zero
//!   (`01`) are rejected so that this spelling is unambiguous.
//! - `ID` (step id) is `[A-Za-z0-9_-]{1,64}`; `NAME` (secret) is
//!   `[A-Za-z_][A-Za-z0-9_]{0,127}` and is a single segment.
//! - ASCII whitespace is allowed right after `{{` and right before `}}`
//!   (`{{ input.user.email }}`), not between segments.
//! - A tag ends at the first `}}` after its `{{`. A lone `}}`, and single
//!   `{` or `}`, are literal text.
//!
//! Malformed tags are [`ParseError`]s carrying the byte offset of the problem
//! in the string and, for a whole JSON value, the JSON pointer of the string
//! (e.g. `/headers/Authorization`).
//!
//! # Decisions
//!
//! - **No escape for a literal `{{`.** Every `{{` opens a tag. Config values
//!   that need a literal `{{` (rare for the HTTP/JSON calls steps make) are
//!   not expressible yet. Every candidate escape (`{{{{`, `{{{`, a tag whose
//!   body starts with `{` or `"`) is a parse error today, so one can be added
//!   later without changing the meaning of any template that parses now.
//! - **Whole tag keeps its type.** A string that is exactly one tag, with
//!   nothing outside the braces (not even whitespace), renders to the
//!   resolved JSON value itself (object, number, bool, null, ...).
//! - **Tag inside text becomes text.** Strings are inserted raw; any other
//!   value as its compact JSON text, including `null`, which becomes `null`
//!   (not the empty string: an empty string would silently hide a missing
//!   or null value in URLs and messages).
//! - **Missing vs null.** A path whose value is JSON `null` is found (and is
//!   `null`); a path that does not exist (absent key, index out of range,
//!   indexing into a string or number, unknown step, unset secret) is
//!   missing: [`Template::render`] fails with `<tag path> not found`, while
//!   [`Template::render_lenient`] (used for `condition.field`) renders it as
//!   `null`.
//! - **Secrets are raw in [`Template::render`].** That convenience inserts a
//!   secret as plain text; an engine that must encode secrets per placement
//!   and remember them for masking uses [`Template::render_with`] /
//!   [`TemplateString::render_string_with`] and decides per [`Tag`].
//! - **Output is capped while rendering.** The `*_budgeted` / `*_with_budget`
//!   forms charge a [`Budget`] (in bytes of compact JSON) for every piece
//!   before copying it, so a template that multiplies a large value fails
//!   with [`TooLarge`] having built at most its budget.

#![forbid(unsafe_code)]

mod ast;
mod budget;
mod parse;
mod path;
mod render;
mod renderer;
mod template;

pub use ast::{Part, Tag, TemplateString};
pub use budget::{escaped_len, json_size, Budget, Limited, TooLarge};
pub use parse::{ParseError, ParseErrorKind, MAX_ECHO_CHARS, MAX_PATH_SEGMENTS, MAX_SEGMENT_BYTES, ROOTS};
pub use path::{Path, Segment};
pub use render::{to_text, Context, NotFound, RenderError, Resolve};
pub use template::{TagRef, Template};
