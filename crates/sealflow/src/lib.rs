//! sealflow: a self-hosted workflow engine whose steps call other services with secrets.
//!
//! Layers (see `shared/design.md` in the project docs): [`http`] → [`auth`] → [`domain`] →
//! [`store`]; [`vault`] seals secret values; [`config`] and [`startup`] assemble the application
//! that `main` and the tests run the same way.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod engine;
pub mod files;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod vault;
