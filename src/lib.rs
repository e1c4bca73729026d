//! graphpilot: a stateful, Graph-faithful server for Microsoft Graph's Windows Autopilot
//! deployment events (`/beta/deviceManagement/autopilotEvents`).
//!
//! Layers, top to bottom (data flows one way):
//! - [`cli`] and [`app`]: commands, flags, and the server's lifecycle; [`server`]: the
//!   connection loop and its limits.
//! - [`http`]: routing, the Graph error type, auth and throttling middleware, response envelopes;
//!   graphpilot's own analytics API and deployments dashboard.
//! - [`odata`]: query options from the raw query string.
//! - [`model`]: the entity schema and request bodies → typed values.
//! - [`edm`]: exact EDM primitives (DateTimeOffset, Duration, enums).
//! - [`profile`]: the production profile's quirks, resolved once into typed values.
//! - [`store`]: SQLite or PostgreSQL behind one interface, with a group-commit writer; the
//!   analytics' aggregates computed in SQL.
//! - [`auth`]: signing keys, token minting and verification, permissions.
//! - [`tls`]: the local CA, server certificates and the HTTPS listener.

pub mod app;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod edm;
pub mod http;
pub mod io;
pub mod model;
pub mod odata;
pub mod profile;
pub mod server;
pub mod store;
pub mod tls;

#[cfg(test)]
mod layers_test;
