//! Domain services: the rules of each resource, between the HTTP layer and the store.

pub mod audit;
pub mod files;
pub mod keyring;
pub mod redactors;
pub mod results;
pub mod runs;
pub mod secrets;
pub mod users;
pub mod workflows;
