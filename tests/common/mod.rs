//! Helpers shared by the end-to-end tests: test databases, a real server on
//! a random port, scripted agents and temp restic repositories.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

pub mod agent;
pub mod api;
pub mod db;
pub mod server;
