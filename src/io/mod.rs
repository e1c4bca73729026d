//! Bulk data paths: the deterministic fleet generator behind `graphpilot seed`, and import and
//! export of a tenant's events.

pub mod commands;
pub mod export;
pub mod import;
pub mod seed;
