//! Validation of a whole definition: the steps array (shape, ids, types),
//! every config's templates (syntax, secrets only in webhooks, references only
//! to earlier steps), and the error type the server maps to HTTP 422.
//!
//! Checks run in document order and stop at the first problem: the trigger,
//! then each step in turn. Within a step the order is: the step object (`id`,
//! `type`, unknown keys), the config's unknown keys, template syntax of every
//! string, the typed fields in schema order (see [`crate::steps`]), then what
//! the tags refer to, in document order.

use std::collections::HashMap;

use sealflow_template::{Tag, Template};
use serde_json::{Map, Value};

use crate::model::{Definition, Step, StepType};
use crate::steps::{parse_config, StepCtx};
use crate::trigger::validate_trigger;

/// Most steps a workflow may have.
pub const MAX_STEPS: usize = 50;
/// Longest step id.
pub const MAX_STEP_ID_LEN: usize = 64;

/// A well-formed but invalid definition (HTTP 422).
///
/// `message` is a complete sentence naming the step and field. `step` is the
/// step id when the problem is inside a step with a usable id; `field` is
/// then relative to that step (`config.method`, `config.headers.Authorization`,
/// `type`). Otherwise `step` is `None` and `field` is a path from the
/// definition (`steps`, `steps[3].id`, `trigger.config.cron`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Human-readable description, e.g. `step "notify": config.method must be one of GET, POST, PUT, PATCH, DELETE`.
    pub message: String,
    /// Id of the offending step.
    pub step: Option<String>,
    /// Dotted path of the offending field.
    pub field: Option<String>,
}

impl Invalid {
    /// A problem outside any identified step.
    pub(crate) fn root(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            step: None,
            field: Some(field.into()),
        }
    }

    /// The `details` object of the 422 response: `{"step": .., "field": ..}`
    /// (`null` where unknown).
    pub fn details(&self) -> Value {
        serde_json::json!({ "step": self.step, "field": self.field })
    }
}

/// Validates a whole definition. `trigger` absent or `null` is manual;
/// `steps` absent or `null` is an empty list. The trigger is checked first.
pub fn validate(trigger: Option<&Value>, steps: Option<&Value>) -> Result<Definition, Invalid> {
    let trigger = validate_trigger(trigger)?;
    let steps = validate_steps(steps)?;
    Ok(Definition { trigger, steps })
}

/// Validates a steps array on its own (a `PUT` may send only `steps`).
pub fn validate_steps(steps: Option<&Value>) -> Result<Vec<Step>, Invalid> {
    let items = match steps {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(Invalid::root("steps", "steps must be an array")),
    };
    if items.len() > MAX_STEPS {
        return Err(Invalid::root(
            "steps",
            format!(
                "steps has {} entries; at most {MAX_STEPS} are allowed",
                items.len()
            ),
        ));
    }
    // Where every id is, before any checks, so a reference can be told apart
    // as earlier, later or unknown. The first occurrence wins; a duplicate is
    // reported when the walk reaches it.
    let mut index = StepIndex::default();
    for (i, item) in items.iter().enumerate() {
        if let Some(Value::String(id)) = item.get("id") {
            index.positions.entry(id.as_str()).or_insert(i);
        }
    }
    let mut out: Vec<Step> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let step = validate_step(i, item, &index, &out)?;
        out.push(step);
    }
    Ok(out)
}

/// Where each step id first occurs.
#[derive(Debug, Default)]
pub(crate) struct StepIndex<'a> {
    positions: HashMap<&'a str, usize>,
}

/// Where a referenced step is, relative to the referring one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    Earlier,
    Itself,
    Later,
    Unknown,
}

impl StepIndex<'_> {
    pub(crate) fn position(&self, id: &str, current: usize) -> Position {
        match self.positions.get(id) {
            None => Position::Unknown,
            Some(&i) if i < current => Position::Earlier,
            Some(&i) if i == current => Position::Itself,
            Some(_) => Position::Later,
        }
    }
}

const STEP_KEYS: [&str; 3] = ["id", "type", "config"];

fn validate_step(i: usize, item: &Value, index: &StepIndex<'_>, earlier: &[Step]) -> Result<Step, Invalid> {
    let at = |field: &str, message: String| Invalid::root(format!("steps[{i}].{field}"), message);
    let Value::Object(step) = item else {
        return Err(Invalid::root(
            format!("steps[{i}]"),
            format!("steps[{i}] must be an object with id, type and config"),
        ));
    };
    let id = match step.get("id") {
        None | Some(Value::Null) => return Err(at("id", format!("steps[{i}]: id is required"))),
        Some(Value::String(id)) => id.as_str(),
        Some(_) => return Err(at("id", format!("steps[{i}]: id must be a string"))),
    };
    if !is_step_id(id) {
        return Err(at(
            "id",
            format!(
                "steps[{i}]: id {} must be 1 to {MAX_STEP_ID_LEN} letters, digits, \"_\" or \"-\"",
                show(id)
            ),
        ));
    }
    if earlier.iter().any(|s| s.id == id) {
        return Err(at(
            "id",
            format!("steps[{i}]: id \"{id}\" is already used by an earlier step; step ids must be unique"),
        ));
    }
    let mut ctx = StepCtx {
        id,
        index: i,
        uses_secrets: false,
    };
    let step_type = match step.get("type") {
        None | Some(Value::Null) => return Err(ctx.invalid("type", "type is required")),
        Some(Value::String(name)) => StepType::from_name(name).ok_or_else(|| {
            ctx.invalid(
                "type",
                format!(
                    "type {} is not supported; supported types: {}",
                    show(name),
                    supported_types()
                ),
            )
        })?,
        Some(_) => return Err(ctx.invalid("type", "type must be a string")),
    };
    if let Some(key) = step.keys().find(|k| !STEP_KEYS.contains(&k.as_str())) {
        return Err(ctx.invalid(
            key,
            format!("unknown key {}; a step has id, type and config", show(key)),
        ));
    }
    let empty = Map::new();
    // An omitted config is `{}`; every type has a required field, so this
    // ends in a "config.X is required" message naming what is missing.
    let config = match step.get("config") {
        None => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ctx.invalid("config", "config must be an object")),
    };
    let allowed = crate::steps::config_keys(step_type);
    if let Some(key) = config.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ctx.invalid(
            format!("config.{key}"),
            format!(
                "config has unknown key {}; {step_type} config keys are {}",
                show(key),
                allowed.join(", ")
            ),
        ));
    }
    let raw_config = Value::Object(config.clone());
    let template = Template::parse(&raw_config).map_err(|e| {
        let field = config_path(e.location());
        ctx.invalid(
            &field,
            format!(
                "{field} has an invalid template at byte {}: {}",
                e.offset(),
                e.kind()
            ),
        )
    })?;
    ctx.uses_secrets = !template.secret_names().is_empty();
    let typed = parse_config(&ctx, step_type, config, index)?;
    check_tags(&ctx, step_type, &template, index)?;
    Ok(Step {
        id: id.to_owned(),
        step_type,
        config: typed,
        raw_config,
        template,
    })
}

/// Secrets only in webhook configs; step outputs only of earlier steps.
fn check_tags(
    ctx: &StepCtx<'_>,
    step_type: StepType,
    template: &Template,
    index: &StepIndex<'_>,
) -> Result<(), Invalid> {
    for found in template.tags() {
        let field = config_path(&found.location);
        match found.tag {
            Tag::Secret { .. } if step_type != StepType::Webhook => {
                return Err(ctx.invalid(
                    &field,
                    format!(
                        "{field} uses {{{{{}}}}} (byte {}); secrets may only be used in webhook steps",
                        found.tag, found.offset
                    ),
                ));
            }
            Tag::StepOutput { step_id, .. } => {
                let problem = match index.position(step_id, ctx.index) {
                    Position::Earlier => continue,
                    Position::Itself => "that is this step itself".to_owned(),
                    Position::Later => format!("step \"{step_id}\" comes after step \"{}\"", ctx.id),
                    Position::Unknown => format!("there is no step \"{step_id}\""),
                };
                return Err(ctx.invalid(
                    &field,
                    format!(
                        "{field} refers to {{{{{}}}}}, but {problem}; a step may only use the output of earlier steps",
                        found.tag
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `config.a.b.0` from the template's JSON pointer `/a/b/0`.
pub(crate) fn config_path(pointer: &str) -> String {
    let mut path = String::from("config");
    for token in pointer.split('/').skip(1) {
        path.push('.');
        path.push_str(&token.replace("~1", "/").replace("~0", "~"));
    }
    path
}

/// `webhook, condition, delay, transform`.
pub(crate) fn supported_types() -> String {
    StepType::SUPPORTED.map(StepType::as_str).join(", ")
}

/// `^[A-Za-z0-9_-]{1,64}$`.
pub fn is_step_id(id: &str) -> bool {
    (1..=MAX_STEP_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,127}$`, the secret name rule of spec §3.
pub fn is_secret_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && name.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Quotes user text for a message: JSON string syntax (so control
/// characters and quotes cannot garble it), cut to 64 characters.
pub(crate) fn show(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        None => Value::from(text).to_string(),
        Some((cut, _)) => {
            let quoted = Value::from(&text[..cut]).to_string();
            // Put the ellipsis inside the quotes: `"abc…"`.
            format!("{}…\"", &quoted[..quoted.len() - 1])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_to_path() {
        assert_eq!(config_path(""), "config");
        assert_eq!(
            config_path("/headers/Authorization"),
            "config.headers.Authorization"
        );
        assert_eq!(config_path("/body/items/0/a~1b~0c"), "config.body.items.0.a/b~c");
    }

    #[test]
    fn show_quotes_and_cuts() {
        assert_eq!(show("a\"b\n"), r#""a\"b\n""#);
        let long = "é".repeat(100);
        let shown = show(&long);
        assert_eq!(shown, format!("\"{}…\"", "é".repeat(64)));
    }

    #[test]
    fn names() {
        assert!(is_step_id("a"));
        assert!(is_step_id(&"a".repeat(64)));
        assert!(!is_step_id(&"a".repeat(65)));
        assert!(!is_step_id(""));
        assert!(!is_step_id("a.b"));
        assert!(is_secret_name("_X1"));
        assert!(is_secret_name(&"A".repeat(128)));
        assert!(!is_secret_name(&"A".repeat(129)));
        assert!(!is_secret_name("1A"));
        assert!(!is_secret_name("A-B"));
        assert!(!is_secret_name(""));
    }
}
