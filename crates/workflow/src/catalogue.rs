//! The built-in workflow templates served by `GET /api/workflows/templates`
//! (spec §6). Each is an ordinary trigger + steps pair that passes
//! [`crate::validate`]; secrets are referenced by conventional names the
//! user creates before activating the workflow.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{json, Value};

/// One catalogue entry, serialised as
/// `{"id","name","description","category","trigger","steps"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowTemplate {
    /// Stable id, `tpl_…`; `POST /api/workflows {"template_id"}` names it.
    pub id: &'static str,
    /// Short title.
    pub name: &'static str,
    /// One or two sentences, including which secrets to create.
    pub description: &'static str,
    /// Filter key for `?category=`.
    pub category: &'static str,
    /// `{"type","config"}`.
    pub trigger: Value,
    /// `[{"id","type","config"}]`.
    pub steps: Value,
}

static CATALOGUE: LazyLock<Vec<WorkflowTemplate>> = LazyLock::new(build);

/// Every built-in template, in display order.
pub fn catalogue() -> &'static [WorkflowTemplate] {
    &CATALOGUE
}

/// The template with this id.
pub fn find(id: &str) -> Option<&'static WorkflowTemplate> {
    catalogue().iter().find(|t| t.id == id)
}

fn build() -> Vec<WorkflowTemplate> {
    vec![
        WorkflowTemplate {
            id: "tpl_chat_notify",
            name: "Notify a chat channel",
            description: "Posts a message to a Slack-compatible incoming webhook. Create the secret \
                          SLACK_WEBHOOK_URL holding the webhook URL; send {\"message\": \"...\"} as input.",
            category: "notifications",
            trigger: json!({"type": "manual", "config": {}}),
            steps: json!([{
                "id": "notify",
                "type": "webhook",
                "config": {
                    "url": "{{secrets.SLACK_WEBHOOK_URL}}",
                    "method": "POST",
                    "body": {"text": "{{input.message}}"}
                }
            }]),
        },
        WorkflowTemplate {
            id: "tpl_forward_api",
            name: "Forward a payload to an API",
            description: "Forwards each incoming webhook payload to your API with a bearer token. \
                          Create the secret API_TOKEN and replace the example URL.",
            category: "integrations",
            trigger: json!({"type": "webhook", "config": {}}),
            steps: json!([{
                "id": "forward",
                "type": "webhook",
                "config": {
                    "url": "https://api.example.com/events",
                    "method": "POST",
                    "headers": {
                        "Authorization": "Bearer {{secrets.API_TOKEN}}",
                        "X-Sealflow-Run": "{{run.id}}"
                    },
                    "body": "{{input}}",
                    "timeout_ms": 10000,
                    "retries": 3
                }
            }]),
        },
        WorkflowTemplate {
            id: "tpl_delayed_followup",
            name: "Delayed follow-up",
            description: "Waits one day, then calls a follow-up webhook with the contact from the \
                          input. Create the secret FOLLOW_UP_WEBHOOK_URL.",
            category: "follow-ups",
            trigger: json!({"type": "manual", "config": {}}),
            steps: json!([
                {"id": "wait", "type": "delay", "config": {"duration": "1d"}},
                {
                    "id": "follow_up",
                    "type": "webhook",
                    "config": {
                        "url": "{{secrets.FOLLOW_UP_WEBHOOK_URL}}",
                        "body": {"email": "{{input.email}}", "name": "{{input.name}}", "run_id": "{{run.id}}"}
                    }
                }
            ]),
        },
        WorkflowTemplate {
            id: "tpl_route_urgent",
            name: "Page on urgent events",
            description: "Checks the input's priority; urgent events page the on-call webhook, \
                          everything else ends the run. Create the secret ONCALL_WEBHOOK_URL.",
            category: "routing",
            trigger: json!({"type": "webhook", "config": {}}),
            steps: json!([
                {
                    "id": "is_urgent",
                    "type": "condition",
                    "config": {"field": "{{input.priority}}", "operator": "eq", "value": "urgent", "else": "end"}
                },
                {
                    "id": "page",
                    "type": "webhook",
                    "config": {
                        "url": "{{secrets.ONCALL_WEBHOOK_URL}}",
                        "body": {"summary": "{{input.summary}}", "source": "sealflow {{workflow.id}}"}
                    }
                }
            ]),
        },
        WorkflowTemplate {
            id: "tpl_transform_crm",
            name: "Reshape and send to a CRM",
            description: "Maps a sign-up payload to a contact record and sends it to a CRM API with \
                          an API key header. Create the secret CRM_API_KEY and replace the example URL.",
            category: "integrations",
            trigger: json!({"type": "webhook", "config": {}}),
            steps: json!([
                {
                    "id": "shape",
                    "type": "transform",
                    "config": {"output": {
                        "contact": {"email": "{{input.email}}", "name": "{{input.name}}"},
                        "source": "sealflow",
                        "workflow_id": "{{workflow.id}}"
                    }}
                },
                {
                    "id": "send",
                    "type": "webhook",
                    "config": {
                        "url": "https://crm.example.com/api/contacts",
                        "headers": {"X-Api-Key": "{{secrets.CRM_API_KEY}}"},
                        "body": "{{steps.shape.output}}"
                    }
                }
            ]),
        },
        WorkflowTemplate {
            id: "tpl_weekday_heartbeat",
            name: "Weekday morning heartbeat",
            description: "Every weekday at 09:00 Berlin time, calls a health-check URL so a monitor \
                          notices if the automation server is down. Create the secret HEARTBEAT_URL.",
            category: "monitoring",
            trigger: json!({"type": "schedule", "config": {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}}),
            steps: json!([{
                "id": "ping",
                "type": "webhook",
                "config": {"url": "{{secrets.HEARTBEAT_URL}}", "method": "GET", "timeout_ms": 5000, "retries": 2}
            }]),
        },
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::validate;

    #[test]
    fn every_template_validates() {
        assert!(catalogue().len() >= 5);
        for t in catalogue() {
            let def = validate(Some(&t.trigger), Some(&t.steps)).unwrap_or_else(|e| panic!("{}: {e}", t.id));
            assert!(!def.steps.is_empty(), "{}", t.id);
            // Canonical forms: the stored trigger and steps read back as written.
            assert_eq!(def.trigger.to_json(), t.trigger, "{}", t.id);
            assert_eq!(def.steps_json(), t.steps, "{}", t.id);
        }
    }

    #[test]
    fn ids_unique_and_fields_filled() {
        let mut ids = HashSet::new();
        for t in catalogue() {
            assert!(ids.insert(t.id), "duplicate {}", t.id);
            assert!(t.id.starts_with("tpl_"), "{}", t.id);
            for (what, text) in [
                ("name", t.name),
                ("description", t.description),
                ("category", t.category),
            ] {
                assert!(!text.trim().is_empty(), "{} {what}", t.id);
            }
        }
    }

    #[test]
    fn covers_the_spec_examples() {
        let categories: HashSet<_> = catalogue().iter().map(|t| t.category).collect();
        for c in ["notifications", "integrations", "follow-ups", "routing"] {
            assert!(categories.contains(c), "{c}");
        }
        let chat = find("tpl_chat_notify").expect("chat template");
        assert_eq!(chat.steps[0]["config"]["url"], "{{secrets.SLACK_WEBHOOK_URL}}");
        assert!(find("tpl_nope").is_none());
    }

    #[test]
    fn serialises_to_the_spec_shape() {
        let v = serde_json::to_value(find("tpl_delayed_followup")).expect("serialise");
        let mut keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["category", "description", "id", "name", "steps", "trigger"]
        );
        assert_eq!(v["steps"][0]["type"], "delay");
    }
}
