//! One module per dashboard page family; each handler builds a principal-scoped call to the
//! domain services and renders the result.

pub mod auth;
pub mod keys;
pub mod runs;
pub mod secrets;
pub mod workflows;

use serde::Deserialize;

/// A form with no fields of its own (only `csrf`).
#[derive(Deserialize)]
pub struct NoFields {}

/// Query string of a page reached by a redirect that names a notice.
#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}
