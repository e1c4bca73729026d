//! One integration-test binary: every test drives the real `graphpilot` binary over HTTP against a
//! real SQLite file in a fresh data directory.

mod admin;
mod analytics;
mod auth;
mod batch;
mod counts;
mod crud;
mod dashboard;
mod details;
mod durability;
mod exports;
mod faults;
mod helpers;
mod hostile;
mod identity;
mod metrics;
mod nodes;
mod odata;
mod paging;
mod profiles;
mod sdk_js;
mod sdk_python;
mod startup;
mod sync;
mod throttling;
mod tls;
mod world;
