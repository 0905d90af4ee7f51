//! Every integration test of restic-manager in one crate, so that the
//! library, actix and diesel are linked into one test binary instead of
//! one per file. Each module below was a test binary of its own; `common`
//! holds their shared helpers. One module runs alone with its name as the
//! filter: `cargo test --test it -- store::`.
//!
//! The modules share one process and run on parallel threads, so none may
//! change process-wide state: no `std::env::set_var` (pass settings
//! explicitly), no global tracing subscriber (`agent_session` gives each
//! agent its own), no change of the working directory, and no fixed port.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

mod agent_channel;
mod agent_compat;
mod agent_enroll;
mod agent_reports;
mod agent_restic;
mod agent_session;
mod agent_tls;
mod api;
mod api_admin;
mod api_catalog;
mod api_metrics;
mod api_openapi;
mod api_restore;
mod capabilities;
mod cli;
mod config_as_code;
mod config_versions;
mod conformance;
mod discovery;
mod docs;
mod download_channel;
mod dumps;
mod e2e_backup;
mod e2e_catalog;
mod e2e_download;
mod e2e_drill;
mod e2e_faults;
mod e2e_jobs;
mod e2e_restore;
mod hardening;
mod health;
mod health_policy;
mod job_followup;
mod notifications;
mod offline;
mod offline_channel;
mod pg_restart;
mod policies;
mod run_options;
mod schedule_kinds;
mod secrets_at_rest;
mod shared_repo;
mod store;
mod store_catalog;
mod store_logs;
mod ui_browser;
mod ui_fleet;
mod ui_fleet_browser;
mod ui_http;
mod ui_snapshot;
mod upgrade;
mod verification;
mod version;
mod windows_agent;
