//! restic-manager: a control plane for restic backups across a fleet.
//!
//! # Layout
//!
//! - [`protocol`]: the agent ⇄ server wire protocol (PROTOCOL.md), serde types only.
//! - [`ids`]: typed ids ([`ids::HostId`], [`ids::JobId`], …) the server passes around.
//! - [`store`]: diesel schema, migrations and typed queries (SQLite and PostgreSQL).
//! - [`crypto`]: XChaCha20-Poly1305 sealing of secrets at rest and the key file.
//! - [`auth`]: argon2id passwords, random tokens stored as SHA-256, roles,
//!   username and password rules.
//! - [`config`]: server configuration (flags > `RESTIC_MANAGER_*` env > TOML file).
//! - [`redact`]: secrets in URLs hidden for logs and errors.
//! - [`cron`]: the one cron dialect (API, UI, scheduler, agent) and its time math.
//! - [`tokens`]: issuing enrolment and API tokens, for the CLI and the REST API.
//! - [`admin`]: the admin commands (users, tokens, migrations, first admin).
//! - [`server`]: app wiring: store, key, actors, HTTP server, TLS.
//! - [`actors`]: the server's actors, one per file.
//! - [`http`]: actix-web routes: REST API, agent WebSocket upgrade, health, metrics.
//! - [`metrics`]: in-process counters and the Prometheus text format.
//! - [`agent`]: the agent daemon.

pub mod actors;
pub mod admin;
pub mod agent;
pub mod auth;
pub mod config;
pub mod cron;
pub mod crypto;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod protocol;
pub mod redact;
pub mod server;
pub mod store;
pub mod tokens;

/// Starts tracing to stderr, filtered by `RESTIC_MANAGER_LOG` (default `info`).
pub fn init_tracing() {
    init_tracing_with_default("info");
}

/// Starts tracing to stderr, filtered by `RESTIC_MANAGER_LOG`, else by
/// `default` (a tracing filter such as `warn`). The one-shot admin commands
/// use `warn`, so that their errors are one line on stderr.
pub fn init_tracing_with_default(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RESTIC_MANAGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Err only if a subscriber is already set (tests): keep that one.
    // Colours only on a terminal: journald, log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Parses the command line into `P`, as `P::parse()` does, except that a
/// usage error (a bad flag, a missing argument, a bad value) is one line on
/// stderr, as the README promises for every error: the first paragraph of
/// clap's message, its lines joined. `--help` and `--version` print as
/// usual. Exits with clap's status (2 for a usage error, 0 for help).
pub fn parse_cli<P: clap::Parser>() -> P {
    match P::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            eprintln!("{}", usage_error_line(&err.render().to_string()));
            std::process::exit(err.exit_code())
        }
    }
}

/// The first paragraph of a clap error message on one line.
fn usage_error_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's multi-line usage errors become their first paragraph on one line.
    #[test]
    fn usage_errors_are_one_line() {
        let missing = "error: the following required arguments were not provided:\n  --username <USERNAME>\n\nUsage: restic-manager user add --username <USERNAME>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error_line(missing),
            "error: the following required arguments were not provided: --username <USERNAME>"
        );
        let unknown = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: x\n";
        assert_eq!(
            usage_error_line(unknown),
            "error: unexpected argument '--bogus' found"
        );
    }
}
