//! Workflow definitions for sealflow: typed steps and triggers, their
//! validation (spec §4 and §7), and the built-in templates catalogue (§6).
//!
//! The server calls [`validate`] (or [`validate_trigger`] / [`validate_steps`]
//! when a `PUT` sends only one of them) and maps an [`Invalid`] to HTTP 422
//! with `message` and `details: {"step", "field"}`. The engine loads stored
//! definitions through the same functions, so everything it runs has passed
//! the same rules, and uses [`Step::template`] (parsed once) to render
//! configs and [`Trigger::next_after`] to schedule.
//!
//! ```
//! use serde_json::json;
//! use sealflow_workflow::{validate, Method, StepConfig};
//!
//! let def = validate(
//!     Some(&json!({"type": "schedule", "config": {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"}})),
//!     Some(&json!([{"id": "notify", "type": "webhook",
//!                   "config": {"url": "{{secrets.SLACK_WEBHOOK_URL}}"}}])),
//! )?;
//! let StepConfig::Webhook(hook) = &def.steps[0].config else { unreachable!() };
//! assert_eq!((hook.method, hook.timeout_ms, hook.retries), (Method::Post, 10_000, 3));
//!
//! let err = validate(None, Some(&json!([{"id": "x", "type": "email_lookup"}]))).unwrap_err();
//! assert_eq!(
//!     err.message,
//!     r#"step "x": type "email_lookup" is not supported; supported types: webhook, condition, delay, transform"#
//! );
//! # Ok::<(), sealflow_workflow::Invalid>(())
//! ```
//!
//! # Rules
//!
//! - `steps`: an array of at most 50 objects with exactly the keys `id`,
//!   `type`, `config` (`config` may be omitted; every type has a required
//!   field, so the message then names it). Ids unique, `^[A-Za-z0-9_-]{1,64}$`.
//! - Configs: per-type schemas in [`model`]; unknown keys and wrong JSON
//!   types are errors naming the field; every string is a template
//!   (`sealflow-template`); `{{secrets.*}}` only in webhook configs;
//!   `{{steps.ID.output…}}` only for earlier steps; condition branches only
//!   jump forward (so every run terminates).
//! - Webhook URLs: a templated URL is read as a URL ([`url_template`]): each
//!   tag's component is known, and positions where a value could choose the
//!   domain or be read two ways are refused; a destination taken from a
//!   non-secret tag is refused in a step that uses secrets.
//! - Webhook headers: framing/hop-by-hop headers and `X-Sealflow-Delivery`
//!   are refused, routing headers (`Host`, `X-Forwarded-*`, …) too in steps
//!   that use secrets ([`headers`]).
//! - Trigger: `manual` (default), `webhook` (optional `signed: true`: calls
//!   carry an HMAC made with a server-generated key) or `schedule` (5-field
//!   cron, IANA zone); see [`trigger`].
//! - Sizes: [`check_definition_size`] and the render/record limits in
//!   [`limits`] (the server configures and applies them).
//! - Not here: the workflow name (1–200 chars) is the server's check.
//!
//! # Messages
//!
//! The first problem in document order, as one sentence: inside a step
//! `step "<id>": <field> <what is wrong>` with fields written as dotted paths
//! (`config.headers.Authorization`, `config.body.items.0`); before a step's id
//! is known `steps[<index>]: ...`; for the trigger `trigger.config.cron ...`.
//! User text is quoted JSON-style and cut to 64 characters.

#![forbid(unsafe_code)]

pub mod catalogue;
pub mod duration;
pub mod headers;
pub mod limits;
pub mod model;
pub mod steps;
pub mod trigger;
pub mod url_template;
pub mod validate;

pub use catalogue::{catalogue, find, WorkflowTemplate};
pub use duration::{parse_duration, DurationError, MAX_DELAY_SECONDS, MIN_DELAY_SECONDS};
pub use limits::{check_definition_size, Limits};
pub use model::{
    Branch, ConditionConfig, Definition, DelayConfig, Method, Operator, Step, StepConfig, StepType,
    TransformConfig, WebhookConfig,
};
pub use trigger::{validate_trigger, Trigger, DEFAULT_TIMEZONE, TRIGGER_KINDS};
pub use url_template::{UrlPart, UrlProblem, UrlRenderError, UrlTemplate};
pub use validate::{is_secret_name, is_step_id, validate, validate_steps, Invalid, MAX_STEPS};
