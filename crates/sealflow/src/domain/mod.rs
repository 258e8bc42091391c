//! Domain services: the rules of each resource, between the HTTP layer and the store.

pub mod runs;
pub mod secrets;
pub mod workflows;
