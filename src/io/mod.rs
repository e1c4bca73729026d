//! Bulk data paths: the deterministic fleet generator behind `graphpilot seed`.

pub mod seed;
