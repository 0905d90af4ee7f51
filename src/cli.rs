//! Command-line plumbing every binary shares (the server, the agent, the
//! load generator): tracing to stderr, clap usage errors on one line, and
//! what this build is ([`VERSION`], [`GIT_COMMIT`], [`version_line`]) for
//! `--version`, `GET /api/v1/version` and the UI footer. The agent package
//! compiles this file too, so it depends on clap, tracing-subscriber and
//! `crate::protocol` only.

use std::sync::OnceLock;

/// This build's version: its package's version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this build was made from (a short hash), or `unknown`
/// outside a git checkout; set by `build.rs`.
pub const GIT_COMMIT: &str = env!("RESTIC_MANAGER_GIT_COMMIT");

/// What `--version` prints after the program's name:
/// `0.1.0 (commit 1a2b3c4, protocol 1)`.
pub fn version_line() -> &'static str {
    static LINE: OnceLock<String> = OnceLock::new();
    LINE.get_or_init(|| {
        format!(
            "{VERSION} (commit {GIT_COMMIT}, protocol {})",
            crate::protocol::PROTOCOL_VERSION
        )
    })
}

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

    /// The version line names the version, the commit and the protocol.
    #[test]
    fn version_line_names_the_three_facts() {
        let line = version_line();
        assert!(line.starts_with(env!("CARGO_PKG_VERSION")), "{line}");
        assert!(line.contains(&format!("commit {GIT_COMMIT}")), "{line}");
        assert!(line.ends_with("protocol 1)"), "{line}");
        assert!(!GIT_COMMIT.is_empty());
    }

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
