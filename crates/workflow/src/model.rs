//! The typed, validated form of a workflow definition: steps with their
//! per-type configs and the trigger. Values of these types only come out of
//! [`crate::validate`], so code holding one may rely on every rule in the
//! crate docs.

use std::collections::BTreeMap;
use std::fmt;

use sealflow_template::Template;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::trigger::Trigger;

/// The step types sealflow runs.
///
/// The hosted service's lookup types (`email_lookup`, ...) are deliberately
/// absent: they depend on its data, not on the workflow engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepType {
    /// Calls an HTTP endpoint; the only type that may use secrets.
    Webhook,
    /// Compares a value and branches forward.
    Condition,
    /// Waits durably for a fixed time.
    Delay,
    /// Renders a JSON value from templates.
    Transform,
}

impl StepType {
    /// Every supported type, in the order messages list them.
    pub const SUPPORTED: [StepType; 4] = [
        StepType::Webhook,
        StepType::Condition,
        StepType::Delay,
        StepType::Transform,
    ];

    /// The wire name (`webhook`, `condition`, `delay`, `transform`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Webhook => "webhook",
            StepType::Condition => "condition",
            StepType::Delay => "delay",
            StepType::Transform => "transform",
        }
    }

    /// The type with this exact wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for StepType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StepType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// HTTP method of a webhook step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST` (the default)
    #[default]
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Method {
    /// Every accepted method, in the order messages list them.
    pub const ALL: [Method; 5] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
    ];

    /// The upper-case method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// The method with this name, ignoring ASCII case (`post` is accepted
    /// and normalised: it is not a typo, and clients differ here).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Comparison of a condition step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// String contains / array contains / object has key.
    Contains,
    /// The field is present and not `null`.
    Exists,
    /// The field is missing or `null`.
    NotExists,
    /// The field (as text) matches the regular expression in `value`.
    Matches,
}

impl Operator {
    /// Every operator, in the order messages list them.
    pub const ALL: [Operator; 10] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::Contains,
        Operator::Exists,
        Operator::NotExists,
        Operator::Matches,
    ];

    /// The wire name (`eq`, ..., `not_exists`, `matches`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Ne => "ne",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Contains => "contains",
            Operator::Exists => "exists",
            Operator::NotExists => "not_exists",
            Operator::Matches => "matches",
        }
    }

    /// The operator with this exact wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// Whether the operator compares against `value` (all but `exists` and
    /// `not_exists`).
    pub fn takes_value(self) -> bool {
        !matches!(self, Operator::Exists | Operator::NotExists)
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a condition goes when it is false.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Branch {
    /// Continue at this (later) step; the steps in between are skipped.
    Step(String),
    /// Finish the run; the remaining steps are skipped. Written `"end"`,
    /// which therefore always means this, even if a step is named `end`.
    #[default]
    End,
}

impl Serialize for Branch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Branch::Step(id) => s.serialize_str(id),
            Branch::End => s.serialize_str("end"),
        }
    }
}

/// Config of a `webhook` step, with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookConfig {
    /// Target URL (a template; may be a whole `{{secrets.NAME}}`).
    pub url: String,
    /// HTTP method, default `POST`.
    pub method: Method,
    /// Header name to value (values are templates).
    pub headers: BTreeMap<String, String>,
    /// Request body (sent as JSON; a string is sent as text); `None` sends
    /// no body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Per-attempt timeout, 1..=60000 ms, default 10000.
    pub timeout_ms: u64,
    /// Retries after the first attempt, 0..=10, default 3.
    pub retries: u32,
}

/// Config of a `condition` step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionConfig {
    /// The value to test (a template with at least one tag).
    pub field: String,
    /// The comparison.
    pub operator: Operator,
    /// What to compare with; `None` only for `exists` / `not_exists`. For
    /// `matches` a string: a regular expression (checked at save time when it
    /// has no tags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Step to continue at when true (a later step); `None` means the next
    /// step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
    /// Where to go when false; default [`Branch::End`].
    #[serde(rename = "else")]
    pub else_: Branch,
}

/// Config of a `delay` step, normalised to seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DelayConfig {
    /// How long to wait, 1..=604800 seconds, from `seconds` or `duration`.
    pub seconds: u64,
}

/// Config of a `transform` step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransformConfig {
    /// The JSON to render (its strings are templates).
    pub output: Value,
}

/// A step's typed config. Serialises as the inner config (the normalised
/// form, defaults filled in).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StepConfig {
    /// See [`WebhookConfig`].
    Webhook(WebhookConfig),
    /// See [`ConditionConfig`].
    Condition(ConditionConfig),
    /// See [`DelayConfig`].
    Delay(DelayConfig),
    /// See [`TransformConfig`].
    Transform(TransformConfig),
}

impl StepConfig {
    /// The step type this config belongs to.
    pub fn step_type(&self) -> StepType {
        match self {
            StepConfig::Webhook(_) => StepType::Webhook,
            StepConfig::Condition(_) => StepType::Condition,
            StepConfig::Delay(_) => StepType::Delay,
            StepConfig::Transform(_) => StepType::Transform,
        }
    }
}

/// One validated step.
///
/// Serialises in the API and storage shape `{"id","type","config"}` with
/// `config` exactly as the client sent it (`raw_config`), so a saved workflow
/// reads back unchanged; [`Step::config`] holds the normalised form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Unique within the workflow, `^[A-Za-z0-9_-]{1,64}$`.
    pub id: String,
    /// The step type.
    #[serde(rename = "type")]
    pub step_type: StepType,
    /// The typed config, defaults applied.
    #[serde(skip)]
    pub config: StepConfig,
    /// The config as sent (an object; `{}` when it was omitted).
    #[serde(rename = "config")]
    pub raw_config: Value,
    /// `raw_config` with every string parsed, ready to render per run
    /// (parsed once, at save time).
    #[serde(skip)]
    pub template: Template,
}

/// A validated workflow definition: its trigger and its steps in order.
///
/// There is intentionally no `Deserialize`: stored JSON is loaded by running
/// it through [`crate::validate`] again, so an unvalidated `Definition`
/// cannot exist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    /// What starts runs (serialised as `{"type","config"}`).
    pub trigger: Trigger,
    /// The steps, in execution order.
    pub steps: Vec<Step>,
}

impl Definition {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Canonical JSON `{"trigger": {...}, "steps": [...]}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "trigger": self.trigger.to_json(),
            "steps": self.steps_json(),
        })
    }

    /// The steps in the API shape (`[{"id","type","config"}]`, configs as
    /// sent).
    pub fn steps_json(&self) -> Value {
        Value::Array(
            self.steps
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "id": s.id,
                        "type": s.step_type.as_str(),
                        "config": s.raw_config,
                    })
                })
                .collect(),
        )
    }
}
