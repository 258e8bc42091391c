//! The HTTP side of the client: one `reqwest` client with the bearer token, JSON in and out,
//! and the server's `{"error","message","code"}` bodies turned into [`ClientError`]s by status.

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{ClientArgs, ClientError, ClientResult};

pub struct Api {
    base: String,
    token: Option<SecretString>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(args: &ClientArgs) -> ClientResult<Self> {
        let base = args.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Invalid(format!(
                "--url must start with http:// or https:// (got {base:?})"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("sealflow-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base,
            token: args.token.clone().map(SecretString::from),
            http,
        })
    }

    /// Sends a request and returns the JSON body of a 2xx answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> ClientResult<Value> {
        let token = self.token.as_ref().ok_or_else(|| {
            ClientError::Auth("no token: set SEALFLOW_TOKEN (or pass --token) to an API key or JWT".into())
        })?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(token.expose_secret())
            .header("Accept", "application/json");
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body);
        }
        let res = req
            .send()
            .await
            .map_err(|e| ClientError::Other(format!("cannot reach {}: {e}", self.base)))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .map_err(|e| ClientError::Other(format!("reading the answer failed: {e}")))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"]
            .as_str()
            .or(body["error"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered {status}"));
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Auth(message),
            StatusCode::NOT_FOUND => ClientError::NotFound(message),
            s if s.is_client_error()
                && s != StatusCode::TOO_MANY_REQUESTS
                && s != StatusCode::PAYMENT_REQUIRED =>
            {
                ClientError::Invalid(message)
            }
            _ => ClientError::Other(message),
        })
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> ClientResult<Value> {
        self.call(Method::GET, path, query, None).await
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> ClientResult<Value> {
        let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
        self.call(method, path, &[], Some(bytes)).await
    }
}

/// A path segment, percent-encoded (ids and names come from the user).
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
