//! `sealflow secrets list | set NAME [--allowed-host H]… | delete NAME`.
//!
//! `set` never takes the value from argv (where every local user can read it in the process
//! list): it reads it from stdin when stdin is not a terminal, else prompts without echo.

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::http::Api;
use super::output::{cell, json, table};
use super::{ClientError, ClientResult, Output};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// List the workspace's secret names (values are never shown by the server).
    List,
    /// Create or replace a secret; the value is read from stdin or a no-echo prompt.
    Set {
        name: String,
        /// A host the secret may be sent to (repeat for several; `*.example.com` allowed).
        #[arg(long = "allowed-host", value_name = "HOST")]
        allowed_hosts: Vec<String>,
    },
    /// Delete a secret.
    Delete { name: String },
}

const PATH: &str = "/api/workflows/secrets";

pub async fn run(api: &Api, output: Output, cmd: SecretsCommand) -> ClientResult<()> {
    match cmd {
        SecretsCommand::List => {
            let body = api.get(PATH, &[]).await?;
            if output == Output::Json {
                json(&body);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = body["secrets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let hosts = s["allowed_hosts"]
                        .as_array()
                        .map(|h| h.iter().map(cell).collect::<Vec<_>>().join(","))
                        .unwrap_or_else(|| "(any)".into());
                    vec![cell(&s["name"]), hosts, cell(&s["updated_at"])]
                })
                .collect();
            table(&["NAME", "ALLOWED HOSTS", "UPDATED"], &rows);
        }
        SecretsCommand::Set { name, allowed_hosts } => {
            let value = read_value(&name)?;
            #[derive(Serialize)]
            struct Body<'a> {
                name: &'a str,
                value: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                allowed_hosts: Option<&'a [String]>,
            }
            let body = Zeroizing::new(
                serde_json::to_vec(&Body {
                    name: &name,
                    value: value.expose_secret(),
                    allowed_hosts: (!allowed_hosts.is_empty()).then_some(&allowed_hosts[..]),
                })
                .expect("the body serializes"),
            );
            let answer = api.call(Method::POST, PATH, &[], Some(body.to_vec())).await?;
            done(output, &answer, &format!("secret {name} saved"));
        }
        SecretsCommand::Delete { name } => {
            let answer = api.call(Method::DELETE, PATH, &[("name", &name)], None).await?;
            done(output, &answer, &format!("secret {name} deleted"));
        }
    }
    Ok(())
}

fn done(output: Output, answer: &Value, message: &str) {
    match output {
        Output::Json => json(answer),
        Output::Table => println!("{message}"),
    }
}

/// The secret's value: all of stdin (less one trailing newline), or a no-echo prompt on a
/// terminal. Kept in zeroizing memory.
fn read_value(name: &str) -> ClientResult<SecretString> {
    let value = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(format!("Value for {name} (not echoed): "))
                .map_err(|e| ClientError::Other(format!("cannot read the value: {e}")))?,
        )
    } else {
        let mut buf = Zeroizing::new(String::new());
        std::io::stdin().read_to_string(&mut buf).map_err(|e| {
            ClientError::Invalid(format!(
                "cannot read the value from stdin (UTF-8 text expected): {e}"
            ))
        })?;
        let trimmed = buf
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&buf);
        Zeroizing::new(trimmed.to_owned())
    };
    if value.is_empty() {
        return Err(ClientError::Invalid("the secret value is empty".into()));
    }
    Ok(SecretString::from(value.as_str()))
}
