//! Row types shared by every backend.

use crate::vault::SealedSecret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub slug: String,
    pub created_at: i64,
}

/// The three roles of spec §2, stored as their lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Readonly,
    Member,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Readonly => "readonly",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name; `tech` is the hosted service's alias for `member`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "readonly" => Some(Role::Readonly),
            "member" | "tech" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key as stored: only its SHA-256 hash and a short preview, never the key.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub role: Role,
    pub key_hash: String,
    pub key_preview: String,
    pub created_at: i64,
    pub last_used: Option<i64>,
    pub total_requests: i64,
    /// When the key was revoked or disabled; a key with one is refused until enabled again.
    pub revoked_at: Option<i64>,
    /// Runs this key may start in total; `None` is unlimited.
    pub credit_limit: Option<i64>,
    /// Runs this key has started (one credit each).
    pub credits_used: i64,
}

/// A secret's listable metadata (never its value).
#[derive(Debug, Clone)]
pub struct SecretMeta {
    pub name: String,
    pub allowed_hosts: Option<Vec<String>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A secret row: metadata plus the sealed value.
#[derive(Debug, Clone)]
pub struct SecretRecord {
    pub workspace_id: String,
    pub name: String,
    pub version: i64,
    pub sealed: SealedSecret,
    pub allowed_hosts: Option<Vec<String>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Outcome of [`super::SecretRepo::insert_secret`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertSecret {
    Inserted,
    NameExists,
    LimitReached,
}

/// A workflow definition as stored (spec §4). `trigger` and `steps` are the validated JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: String,
    pub status: String,
    pub trigger: serde_json::Value,
    pub steps: serde_json::Value,
    pub template_id: Option<String>,
    pub version: i64,
    pub webhook_token: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One saved version of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowVersion {
    pub version: i64,
    pub name: String,
    pub description: String,
    pub status: String,
    pub trigger: serde_json::Value,
    pub steps: serde_json::Value,
    pub created_at: i64,
}

/// A page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub offset: i64,
    pub limit: i64,
}

/// A run as stored (spec §5). `definition` pins the trigger and steps it started with; shared,
/// since a run is cloned on its way through the engine and its definition never changes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub workspace_id: String,
    pub workflow_id: String,
    pub workflow_name: String,
    pub workflow_version: i64,
    pub definition: std::sync::Arc<serde_json::Value>,
    pub status: String,
    pub trigger_type: String,
    pub input: serde_json::Value,
    pub error: Option<String>,
    /// Index of the next step to execute.
    pub next_step: i64,
    pub wake_at: i64,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// How many steps completed (filled by reads; ignored by writes).
    pub steps_completed: i64,
}

/// The recorded result of one step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub idx: i64,
    pub step_id: String,
    pub step_type: String,
    pub status: String,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
}

/// How a run ends, recorded in the same commit as its last step results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEnd<'a> {
    /// `completed` or `failed`.
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub at_ms: i64,
}

/// The claimable runs at one moment ([`crate::store::QueueRepo::due_runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueRuns {
    pub count: i64,
    /// The earliest `wake_at` among them (epoch ms); `None` when there are none.
    pub oldest_wake_at: Option<i64>,
}

/// Options of a store, set when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Claims of one run that may end without any step result being recorded (its worker died
    /// mid-step each time) before the run is failed instead of being claimed again.
    pub max_run_attempts: i64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_run_attempts: 5 }
    }
}

/// Outcome of inserting a run that may carry an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertRun {
    Inserted,
    /// A live run already holds this key; here it is.
    Existing(Box<RunRecord>),
}

/// A rate-limit hit counted in the same commit as a run's insert (see
/// [`super::RunRepo::insert_counted_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHit<'a> {
    pub bucket: &'a str,
    pub window_start: i64,
    /// Past this many hits in the window the run is not inserted.
    pub limit: i64,
}

/// Outcome of a cancel request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelRun {
    Cancelled,
    AlreadyFinished(String),
    NotFound,
}
