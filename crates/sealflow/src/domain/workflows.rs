//! Workflows: definitions with a trigger and ordered steps, saved as numbered versions.
//!
//! Validation of triggers and steps lives in the `sealflow-workflow` crate; this service adds
//! the resource rules (name, description, status), templates, the webhook URL token and the
//! optimistic version bump on update.

use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use crate::ids;
use crate::store::{PageRequest, Store, StoreError, WorkflowRecord, WorkflowVersion};

pub const STATUSES: [&str; 3] = ["draft", "active", "paused"];
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Concurrent updates of one workflow retry this often before answering 409.
const UPDATE_ATTEMPTS: usize = 16;

#[derive(Debug, Error)]
pub enum WorkflowsError {
    /// Well-formed but not a valid definition: 422 with where the problem is.
    #[error("{message}")]
    Invalid {
        message: String,
        step: Option<String>,
        field: Option<String>,
    },
    /// A missing or malformed request field: 400.
    #[error("{0}")]
    BadRequest(String),
    #[error("workflow {0:?} not found")]
    NotFound(String),
    #[error("workflow {0:?} is being changed by another request; try again")]
    Busy(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WorkflowsError {
    fn field(field: &str, message: String) -> Self {
        Self::Invalid {
            message,
            step: None,
            field: Some(field.to_owned()),
        }
    }
}

impl From<sealflow_workflow::Invalid> for WorkflowsError {
    fn from(e: sealflow_workflow::Invalid) -> Self {
        Self::Invalid {
            message: e.to_string(),
            step: e.step,
            field: e.field,
        }
    }
}

/// A create request; absent fields come from the template, or defaults.
#[derive(Debug, Default)]
pub struct NewWorkflow {
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub trigger: Option<Value>,
    pub steps: Option<Value>,
    pub template_id: Option<String>,
}

/// An update: every field is optional and absent ones keep their value.
#[derive(Debug, Default)]
pub struct WorkflowChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub trigger: Option<Value>,
    pub steps: Option<Value>,
}

pub struct WorkflowsService {
    store: Arc<dyn Store>,
    /// Largest definition (trigger and steps as compact JSON), `SEALFLOW_MAX_DEFINITION_BYTES`.
    max_definition_bytes: usize,
}

impl WorkflowsService {
    pub fn new(store: Arc<dyn Store>, max_definition_bytes: usize) -> Self {
        Self {
            store,
            max_definition_bytes,
        }
    }

    /// Refuses a definition over the size limit (before the costlier validation).
    fn check_size(&self, trigger: Option<&Value>, steps: Option<&Value>) -> Result<(), WorkflowsError> {
        sealflow_workflow::check_definition_size(
            trigger,
            steps,
            self.max_definition_bytes,
            "SEALFLOW_MAX_DEFINITION_BYTES",
        )
        .map_err(WorkflowsError::from)
    }

    pub async fn create(
        &self,
        workspace_id: &str,
        req: NewWorkflow,
    ) -> Result<WorkflowRecord, WorkflowsError> {
        let template = match &req.template_id {
            None => None,
            Some(id) => Some(sealflow_workflow::catalogue::find(id).ok_or_else(|| {
                WorkflowsError::field(
                    "template_id",
                    format!("template_id {id:?} is not a known template"),
                )
            })?),
        };
        let name = req
            .name
            .or_else(|| template.map(|t| t.name.to_owned()))
            .ok_or_else(|| WorkflowsError::BadRequest("name is required".into()))?;
        let description = req
            .description
            .or_else(|| template.map(|t| t.description.to_owned()))
            .unwrap_or_default();
        let trigger = req.trigger.or_else(|| template.map(|t| t.trigger.clone()));
        let steps = req.steps.or_else(|| template.map(|t| t.steps.clone()));
        let status = req.status.unwrap_or_else(|| "draft".to_owned());
        check_resource_fields(&name, &description, &status)?;
        self.check_size(trigger.as_ref(), steps.as_ref())?;
        let def = sealflow_workflow::validate(trigger.as_ref(), steps.as_ref())?;
        let now = ids::now_ms();
        let trigger = def.trigger.to_json();
        let wf = WorkflowRecord {
            id: ids::new_id("wf"),
            workspace_id: workspace_id.to_owned(),
            name,
            description,
            status,
            webhook_token: webhook_token_for(&trigger, None),
            trigger,
            steps: steps.unwrap_or_else(|| Value::Array(Vec::new())),
            template_id: req.template_id,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_workflow(&wf).await?;
        Ok(wf)
    }

    pub async fn get(&self, workspace_id: &str, id: &str) -> Result<WorkflowRecord, WorkflowsError> {
        self.store
            .get_workflow(workspace_id, id)
            .await?
            .ok_or_else(|| WorkflowsError::NotFound(id.to_owned()))
    }

    pub async fn list(
        &self,
        workspace_id: &str,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<(Vec<WorkflowRecord>, i64), WorkflowsError> {
        if let Some(s) = status {
            if !STATUSES.contains(&s) {
                return Err(WorkflowsError::BadRequest(format!(
                    "status must be one of {}",
                    STATUSES.join(", ")
                )));
            }
        }
        Ok(self.store.list_workflows(workspace_id, status, page).await?)
    }

    /// Applies `changes`, validating the resulting whole definition, as version + 1. The flag
    /// says whether the update gave the workflow a new webhook signing key (signing turned on),
    /// the one moment besides create and rotate when the key is shown.
    pub async fn update(
        &self,
        workspace_id: &str,
        id: &str,
        changes: WorkflowChanges,
    ) -> Result<(WorkflowRecord, bool), WorkflowsError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(workspace_id, id).await?;
            let mut next = current.clone();
            if let Some(name) = &changes.name {
                next.name = name.clone();
            }
            if let Some(description) = &changes.description {
                next.description = description.clone();
            }
            if let Some(status) = &changes.status {
                next.status = status.clone();
            }
            check_resource_fields(&next.name, &next.description, &next.status)?;
            let trigger = changes.trigger.as_ref().unwrap_or(&current.trigger);
            let steps = changes.steps.as_ref().unwrap_or(&current.steps);
            // A rename keeps working for a definition saved under a higher limit.
            if changes.trigger.is_some() || changes.steps.is_some() {
                self.check_size(Some(trigger), Some(steps))?;
            }
            let def = sealflow_workflow::validate(Some(trigger), Some(steps))?;
            next.trigger = def.trigger.to_json();
            next.steps = steps.clone();
            next.webhook_token = webhook_token_for(&next.trigger, current.webhook_token.as_deref());
            next.version = current.version + 1;
            next.updated_at = ids::now_ms().max(current.updated_at);
            if self.store.update_workflow(&next, current.version).await? {
                let new_key = is_signed(&next.trigger)
                    && (!is_signed(&current.trigger) || next.webhook_token != current.webhook_token);
                return Ok((next, new_key));
            }
        }
        Err(WorkflowsError::Busy(id.to_owned()))
    }

    /// Gives a webhook-triggered workflow a new token; the old URL stops working at once.
    pub async fn rotate_webhook(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<WorkflowRecord, WorkflowsError> {
        let token = ids::random_base62(32);
        if !self
            .store
            .rotate_webhook_token(workspace_id, id, &token, ids::now_ms())
            .await?
        {
            let wf = self.get(workspace_id, id).await?;
            return Err(WorkflowsError::Conflict(format!(
                "workflow {:?} has a {} trigger, not a webhook trigger",
                wf.id,
                wf.trigger["type"].as_str().unwrap_or("unknown")
            )));
        }
        self.get(workspace_id, id).await
    }

    pub async fn delete(&self, workspace_id: &str, id: &str) -> Result<(), WorkflowsError> {
        if self.store.delete_workflow(workspace_id, id).await? {
            Ok(())
        } else {
            Err(WorkflowsError::NotFound(id.to_owned()))
        }
    }

    pub async fn versions(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Vec<WorkflowVersion>, WorkflowsError> {
        let versions = self.store.list_workflow_versions(workspace_id, id).await?;
        if versions.is_empty() {
            return Err(WorkflowsError::NotFound(id.to_owned()));
        }
        Ok(versions)
    }
}

fn check_resource_fields(name: &str, description: &str, status: &str) -> Result<(), WorkflowsError> {
    let name_chars = name.trim().chars().count();
    if name_chars == 0 || name.chars().count() > MAX_NAME_CHARS {
        return Err(WorkflowsError::field(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters (not only spaces)"),
        ));
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(WorkflowsError::field(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if !STATUSES.contains(&status) {
        return Err(WorkflowsError::field(
            "status",
            format!("status must be one of {}", STATUSES.join(", ")),
        ));
    }
    Ok(())
}

/// A webhook-triggered workflow keeps its token (or gets a new one); others have none.
fn webhook_token_for(trigger: &Value, current: Option<&str>) -> Option<String> {
    (trigger["type"] == "webhook").then(|| current.map_or_else(|| ids::random_base62(32), str::to_owned))
}

/// Whether ingest calls must be signed. A definition saved before signing keys were generated
/// by the server may still name a `signing_secret`: it stays signed (with the generated key, shown
/// on rotate), never silently unsigned.
pub fn is_signed(trigger: &Value) -> bool {
    let config = &trigger["config"];
    config["signed"] == Value::Bool(true) || !config["signing_secret"].is_null()
}

/// The public URL of a webhook token.
pub fn webhook_url(public_base: &str, token: &str) -> String {
    format!("{public_base}/api/hooks/{token}")
}

/// Most workflows scanned for secret references on the secrets page.
const USAGE_SCAN_LIMIT: i64 = 1000;

impl WorkflowsService {
    /// Which workflows reference each secret name (`{{secrets.NAME}}` anywhere in their steps),
    /// as (workflow id, name) pairs; scans the newest [`USAGE_SCAN_LIMIT`] workflows.
    pub async fn secret_usage(
        &self,
        workspace_id: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<(String, String)>>, WorkflowsError> {
        let page = PageRequest {
            offset: 0,
            limit: USAGE_SCAN_LIMIT,
        };
        let (workflows, _) = self.store.list_workflows(workspace_id, None, page).await?;
        let mut usage: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
        for wf in workflows {
            // Stored definitions were validated on save; one that no longer parses names nothing.
            let Ok(def) = sealflow_workflow::validate(Some(&wf.trigger), Some(&wf.steps)) else {
                continue;
            };
            let mut names: Vec<&str> = def.steps.iter().flat_map(|s| s.template.secret_names()).collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                usage
                    .entry(name.to_owned())
                    .or_default()
                    .push((wf.id.clone(), wf.name.clone()));
            }
        }
        Ok(usage)
    }
}
