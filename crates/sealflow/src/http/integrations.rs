//! `/workflows/integrations…`: the official CLI manages third-party OAuth connections there.
//! sealflow has none, so every such route answers 503 (which the CLI reads as "not configured")
//! with the usual JSON error, instead of matching `/workflows/{id}` and saying "not found".

use axum::routing::any;
use axum::Router;

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows/integrations", any(unsupported))
        .route("/workflows/integrations/{*rest}", any(unsupported))
}

async fn unsupported() -> ApiError {
    ApiError::Unavailable(
        "integrations (third-party OAuth connections) are not part of sealflow; call other \
         services from webhook steps with secrets instead"
            .into(),
    )
}
