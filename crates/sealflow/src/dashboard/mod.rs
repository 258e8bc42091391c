//! The web dashboard: server-rendered pages for people, in the same binary as the API.
//!
//! Templates (minijinja) and the stylesheet are compiled into the binary; the only script is the
//! run page's live refresh. Every page acts through the same domain services as the API with a
//! [`Principal`](crate::auth::Principal) built from the session, so the rules (roles, limits,
//! validation) are the API's. Sessions live in the database ([`session`]); every form carries
//! the session's CSRF token, and pages answer with a strict Content-Security-Policy.

// Page handlers end early with a finished response (a redirect to sign-in, a re-rendered form).
// That response is the error arm of their `Result`s; boxing it would only add an allocation to
// the paths that answer, so clippy's size lint is not useful here.
#![allow(clippy::result_large_err)]

mod pages;
mod session;
mod view;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use tower_http::set_header::SetResponseHeaderLayer;

pub use session::{Session, SESSION_COOKIE};

use crate::http::AppState;

/// The compiled templates.
pub struct Pages {
    env: Environment<'static>,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("login.html", include_str!("templates/login.html")),
    ("message.html", include_str!("templates/message.html")),
    ("secrets.html", include_str!("templates/secrets.html")),
    ("secret_delete.html", include_str!("templates/secret_delete.html")),
    ("workflows.html", include_str!("templates/workflows.html")),
    ("workflow.html", include_str!("templates/workflow.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("run_detail.html", include_str!("templates/run_detail.html")),
    ("keys.html", include_str!("templates/keys.html")),
];

impl Pages {
    /// Parses every template once at start, so a broken template stops the server, not a page.
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        // `.html` templates escape every value by default.
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    pub(crate) fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes, with headers that keep its pages out of caches and frames.
pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(pages::auth::home))
        .route("/login", get(pages::auth::login_page).post(pages::auth::login))
        .route("/logout", post(pages::auth::logout))
        .route("/switch", post(pages::auth::switch))
        .route("/secrets", get(pages::secrets::list).post(pages::secrets::save))
        .route(
            "/secrets/delete",
            get(pages::secrets::confirm_delete).post(pages::secrets::delete),
        )
        .route(
            "/workflows",
            get(pages::workflows::list).post(pages::workflows::create),
        )
        .route(
            "/workflows/{id}",
            get(pages::workflows::show).post(pages::workflows::save),
        )
        .route("/workflows/{id}/status", post(pages::workflows::set_status))
        .route("/workflows/{id}/run", post(pages::workflows::run))
        .route("/workflows/{id}/webhook", post(pages::workflows::rotate))
        .route("/runs", get(pages::runs::list))
        .route("/runs/{id}", get(pages::runs::show))
        .route("/runs/{id}/cancel", post(pages::runs::cancel))
        .route("/keys", get(pages::keys::list).post(pages::keys::create))
        .route("/keys/revoke", post(pages::keys::revoke))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ));
    pages
        .route("/static/app.css", get(stylesheet))
        .route("/static/run.js", get(run_script))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/app.css"),
    )
}

async fn run_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("static/run.js"),
    )
}
