//! `/auth/login` (sign in with email and password, get a login JWT) and `/users` (admins add
//! people to their workspace, change their role, remove them).
//!
//! Sign-in attempts are limited per email ([`LOGIN_LIMIT_PER_EMAIL`] a minute) and per client
//! address ([`LOGIN_LIMIT_PER_ADDRESS`] a minute), counted in the database like the run limit, so
//! every instance of a fleet counts the same window. The client address is the TCP peer: behind a
//! proxy it is the proxy's, which still bounds the total rate.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::JsonBody;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{Access, Principal};
use crate::domain::users::{normalize_email, AddedUser, SignedIn};
use crate::ids::rfc3339;
use crate::store::{Membership, Role};

pub const LOGIN_LIMIT_PER_EMAIL: i64 = 10;
pub const LOGIN_LIMIT_PER_ADDRESS: i64 = 30;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(list, add))
        .routes(routes!(change_role, remove))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// The workspace (id or slug) the token acts in; the first of the user's when omitted.
    workspace: Option<String>,
}

/// Counts a sign-in attempt against both limits. Used by the API and the dashboard alike.
pub async fn check_login_rate(state: &AppState, email: &str, peer: &SocketAddr) -> Result<(), ApiError> {
    let email_key = hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()));
    state
        .runs
        .check_rate(&format!("login-email:{email_key}"), LOGIN_LIMIT_PER_EMAIL)
        .await?;
    state
        .runs
        .check_rate(&format!("login-addr:{}", peer.ip()), LOGIN_LIMIT_PER_ADDRESS)
        .await?;
    Ok(())
}

/// The workspaces of a user as the API shows them.
pub fn workspaces_view(workspaces: &[Membership]) -> Vec<Value> {
    workspaces
        .iter()
        .map(|w| json!({"id": w.workspace_id, "slug": w.slug, "role": w.role.as_str()}))
        .collect()
}

/// Picks the workspace a sign-in acts in: the one asked for (id or slug) or the first.
pub fn pick_workspace<'a>(signed_in: &'a SignedIn, wanted: Option<&str>) -> Result<&'a Membership, ApiError> {
    let found = match wanted {
        Some(w) => signed_in
            .workspaces
            .iter()
            .find(|m| m.workspace_id == w || m.slug == w),
        None => signed_in.workspaces.first(),
    };
    found.ok_or_else(|| {
        ApiError::Forbidden(match wanted {
            Some(_) => "you are not a member of that workspace".into(),
            None => "you are not a member of any workspace; ask an admin to add you".into(),
        })
    })
}

#[utoipa::path(post, path = "/auth/login", tag = "users", request_body = LoginBody,
    responses((status = 200, description = "A login JWT, the user and their workspaces"),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<Value>, ApiError> {
    check_login_rate(&state, &body.email, &peer).await?;
    let signed_in = state.users.sign_in(&body.email, body.password).await?;
    let workspace = pick_workspace(&signed_in, body.workspace.as_deref())?;
    let (token, exp) =
        state
            .auth
            .login_tokens()
            .issue(&signed_in.user.id, &workspace.workspace_id, workspace.role)?;
    tracing::info!(user_id = %signed_in.user.id, "user signed in (API)");
    Ok(Json(json!({
        "token": token,
        "token_type": "Bearer",
        "expires_at": rfc3339(exp * 1000),
        "workspace": workspace.workspace_id,
        "user": {"id": signed_in.user.id, "email": signed_in.user.email},
        "workspaces": workspaces_view(&signed_in.workspaces),
    })))
}

#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, description = "The workspace's members"), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Admin)?;
    let users: Vec<Value> = state
        .users
        .members(&principal.workspace_id)
        .await?
        .into_iter()
        .map(|m| json!({"id": m.user_id, "email": m.email, "role": m.role.as_str(), "added_at": rfc3339(m.created_at)}))
        .collect();
    Ok(Json(json!({ "users": users })))
}

#[derive(Deserialize, ToSchema)]
pub struct AddUser {
    email: String,
    /// Required when the email has no account yet.
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    role: String,
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text)
        .ok_or_else(|| ApiError::BadRequest("role must be one of admin, member, readonly".into()))
}

#[utoipa::path(post, path = "/users", tag = "users", request_body = AddUser,
    responses((status = 201, description = "A new user, added"), (status = 200, description = "An existing user, added"),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn add(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<AddUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Access::Admin)?;
    let role = parse_role(&body.role)?;
    normalize_email(&body.email)?;
    let (user, added) = state
        .users
        .add_to_workspace(&body.email, body.password, &principal.workspace_id, role)
        .await?;
    tracing::info!(user_id = %user.id, role = %role, "user added to workspace");
    let status = match added {
        AddedUser::Created => StatusCode::CREATED,
        AddedUser::Joined => StatusCode::OK,
    };
    Ok((
        status,
        Json(json!({"id": user.id, "email": user.email, "role": role.as_str()})),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeRole {
    role: String,
}

#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("id" = String, Path)), request_body = ChangeRole,
    responses((status = 200, description = "Role changed"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn change_role(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChangeRole>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Admin)?;
    let role = parse_role(&body.role)?;
    state.users.set_role(&principal.workspace_id, &id, role).await?;
    tracing::info!(user_id = %id, role = %role, "member role changed");
    Ok(Json(json!({"id": id, "role": role.as_str()})))
}

#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, description = "Removed from the workspace"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Admin)?;
    state.users.remove(&principal.workspace_id, &id).await?;
    tracing::info!(user_id = %id, "member removed");
    Ok(Json(json!({"message": "User removed from the workspace"})))
}
