//! Helpers shared by the end-to-end tests: test databases, a real server on
//! a random port, scripted agents and temp restic repositories.
#![allow(dead_code)]

pub mod db;
pub mod server;
