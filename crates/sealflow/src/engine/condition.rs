//! Condition operators (spec §4): comparisons on rendered JSON values.
//!
//! `gt`/`gte`/`lt`/`lte` compare numbers, or strings lexically when both sides are strings; any
//! other pair is false. `contains` works on strings (substring), arrays (an equal element) and
//! objects (a key). `matches` tests a string against a regular expression.

use sealflow_template::{Budget, Limited, Template, TemplateString};
use sealflow_workflow::{Branch, ConditionConfig, Definition, Operator, Step};
use serde_json::Value;

use super::context::RunContext;
use super::limits::step_too_large;

/// Renders a transform step's `output` under the step budget; the error names the template
/// path that failed, or the limit.
pub fn transform(step: &Step, ctx: &RunContext) -> Result<Value, String> {
    match step
        .template
        .render_budgeted(ctx, &mut Budget::new(ctx.step_bytes))
    {
        Ok(mut rendered) => Ok(rendered.get_mut("output").map_or(Value::Null, Value::take)),
        Err(e) => Err(match e.error {
            Limited::Hook(missing) => format!("{}: {missing}", e.location.trim_start_matches('/')),
            Limited::TooLarge(_) => step_too_large("output", ctx.step_bytes),
        }),
    }
}

/// Renders `field` and `value` (missing paths are `null`) under one step budget.
fn operands(c: &ConditionConfig, ctx: &RunContext) -> Result<(Value, Option<Value>), String> {
    let mut budget = Budget::new(ctx.step_bytes);
    let over = |_| step_too_large("condition (field and value)", ctx.step_bytes);
    // Both were parsed when the definition was validated.
    let field = match TemplateString::parse(&c.field) {
        Ok(t) => t.render_lenient_budgeted(ctx, &mut budget).map_err(over)?,
        Err(_) => Value::Null,
    };
    let value = match c.value.as_ref().map(Template::parse) {
        Some(Ok(t)) => Some(t.render_lenient_budgeted(ctx, &mut budget).map_err(over)?),
        Some(Err(_)) | None => None,
    };
    Ok((field, value))
}

/// Evaluates the condition step at `idx` and returns its result and the index of the step to
/// run next (`def.steps.len()` to end the run).
pub fn branch(
    def: &Definition,
    idx: usize,
    c: &ConditionConfig,
    ctx: &RunContext,
) -> Result<(bool, usize), String> {
    let (field, value) = operands(c, ctx)?;
    let result = evaluate(c.operator, &field, value.as_ref())?;
    let target = if result {
        c.then
            .as_deref()
            .map(|id| Branch::Step(id.to_owned()))
            .unwrap_or(Branch::Step(
                def.steps.get(idx + 1).map(|s| s.id.clone()).unwrap_or_default(),
            ))
    } else {
        c.else_.clone()
    };
    let next = match target {
        Branch::Step(id) => def
            .steps
            .iter()
            .position(|s| s.id == id)
            .unwrap_or(def.steps.len()),
        Branch::End => def.steps.len(),
    };
    Ok((result, next))
}

/// Evaluates `field <op> value`; an invalid regex (one built from a template at run time) is an
/// error, everything else is true or false.
pub fn evaluate(op: Operator, field: &Value, value: Option<&Value>) -> Result<bool, String> {
    let value = value.unwrap_or(&Value::Null);
    Ok(match op {
        Operator::Exists => !field.is_null(),
        Operator::NotExists => field.is_null(),
        Operator::Eq => loosely_equal(field, value),
        Operator::Ne => !loosely_equal(field, value),
        Operator::Gt => order(field, value).is_some_and(|o| o.is_gt()),
        Operator::Gte => order(field, value).is_some_and(|o| o.is_ge()),
        Operator::Lt => order(field, value).is_some_and(|o| o.is_lt()),
        Operator::Lte => order(field, value).is_some_and(|o| o.is_le()),
        Operator::Contains => match (field, value) {
            (Value::String(s), Value::String(v)) => s.contains(v.as_str()),
            (Value::Array(items), v) => items.iter().any(|i| loosely_equal(i, v)),
            (Value::Object(map), Value::String(k)) => map.contains_key(k),
            _ => false,
        },
        Operator::Matches => {
            let (Value::String(s), Value::String(pattern)) = (field, value) else {
                return Ok(false);
            };
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("value is not a valid regular expression: {e}"))?;
            re.is_match(s)
        }
    })
}

/// Equality where numbers compare by value (1 == 1.0).
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operators_follow_the_documented_rules() {
        let t = |op, f: Value, v: Value| evaluate(op, &f, Some(&v)).unwrap();
        assert!(t(Operator::Eq, json!(1), json!(1.0)));
        assert!(t(Operator::Ne, json!("a"), json!("b")));
        assert!(t(Operator::Gt, json!(3), json!(2)) && !t(Operator::Gt, json!(2), json!(2)));
        assert!(t(Operator::Gte, json!(2), json!(2)) && t(Operator::Lte, json!("a"), json!("b")));
        assert!(!t(Operator::Lt, json!("1"), json!(2)), "mixed types never order");
        assert!(t(Operator::Contains, json!("hello"), json!("ell")));
        assert!(t(Operator::Contains, json!([1, 2]), json!(2.0)));
        assert!(t(Operator::Contains, json!({"k": 1}), json!("k")));
        assert!(t(Operator::Matches, json!("ab12"), json!("^[a-z]+\\d+$")));
        assert!(evaluate(Operator::Exists, &json!(0), None).unwrap());
        assert!(evaluate(Operator::NotExists, &Value::Null, None).unwrap());
        assert!(evaluate(Operator::Matches, &json!("x"), Some(&json!("("))).is_err());
    }
}
