//! Bulk data paths: the deterministic fleet generator behind `graphpilot seed`, and import and
//! export of a tenant's events.

pub mod export;
pub mod import;
pub mod seed;

#[cfg(test)]
mod filter_oracle_tests;
