//! Bulk data paths: the deterministic fleet generator behind `graphpilot seed`, import and
//! export of a tenant's events, and the report export jobs with their files.

pub mod export;
pub mod export_jobs;
pub mod import;
pub mod report;
pub mod seed;
pub mod sync;

#[cfg(test)]
mod filter_oracle_tests;
