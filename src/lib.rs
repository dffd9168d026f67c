//! overseer: a supervised, PostgreSQL-backed scheduler daemon. See docs/ARCHITECTURE.md.
//!
//! Floors, from the top: `cli` (with `client`, which only speaks HTTP) → `app` → `api` →
//! `supervisor` → `actors` → `db`,
//! `notify`, `telemetry`, `config`. Imports only point down.

pub mod actors;
pub mod api;
pub mod app;
pub mod browser;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod declarative;
pub mod flags;
pub mod jobs;
pub mod kinds;
pub mod notify;
pub mod quota;
pub mod stdx;
pub mod supervisor;
pub mod telemetry;
pub mod ui;
