//! Command-line plumbing every binary shares (the server, the agent, the
//! load generator): tracing to stderr, clap usage errors on one line, and
//! what this build is ([`VERSION`], [`GIT_COMMIT`], [`version_line`]) for
//! `--version`, `GET /api/v1/version` and the UI footer, and the hidden
//! `generate-docs` subcommand that writes each binary's man pages and shell
//! completions from its clap definitions (the Debian packages ship them;
//! `scripts/check-packages` runs it). The agent package compiles this file
//! too, so it depends on clap, clap_complete, clap_mangen,
//! tracing-subscriber and `crate::protocol` only.

use std::path::{Path, PathBuf};
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

/// The hidden subcommand every binary answers: `generate-docs --out-dir DIR`.
const GENERATE_DOCS: &str = "generate-docs";

/// Parses the command line into `P`, as `P::parse()` does, except that a
/// usage error (a bad flag, a missing argument, a bad value) is one line on
/// stderr, as the README promises for every error: the first paragraph of
/// clap's message, its lines joined. `--help` and `--version` print as
/// usual. Exits with clap's status (2 for a usage error, 0 for help).
///
/// `generate-docs --out-dir DIR` is answered here: it writes the man pages
/// and completions of `P` (see [`generate_docs`]) and exits. It is added at
/// run time rather than to `P`, so the pages and completions it writes do
/// not mention it, and it is hidden from `--help`.
pub fn parse_cli<P: clap::Parser>() -> P {
    let docs = clap::Command::new(GENERATE_DOCS)
        .hide(true)
        .about("Write the man pages and shell completions (for packaging)")
        .arg(
            clap::Arg::new("out-dir")
                .long("out-dir")
                .value_name("DIR")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf)),
        );
    let mut command = P::command().subcommand(docs);
    let parsed = command.try_get_matches_from_mut(std::env::args_os());
    let parsed = parsed.and_then(|mut matches| {
        if let Some((GENERATE_DOCS, sub)) = matches.subcommand() {
            let out_dir = sub
                .get_one::<PathBuf>("out-dir")
                .cloned()
                .unwrap_or_default();
            std::process::exit(match generate_docs(P::command(), &out_dir) {
                Ok(written) => {
                    for path in written {
                        println!("{}", path.display());
                    }
                    0
                }
                Err(err) => {
                    eprintln!(
                        "error: cannot write the docs to {}: {err}",
                        out_dir.display()
                    );
                    1
                }
            });
        }
        P::from_arg_matches_mut(&mut matches).map_err(|err| err.format(&mut command))
    });
    match parsed {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            eprintln!("{}", usage_error_line(&err.render().to_string()));
            std::process::exit(err.exit_code())
        }
    }
}

/// Writes the man pages and shell completions of `command` under `out_dir`
/// (created if missing), named as they are installed:
/// `man/NAME.1` plus `man/NAME-SUB.1` for every visible subcommand,
/// `bash/NAME`, `zsh/_NAME` and `fish/NAME.fish`. Returns the files written.
pub fn generate_docs(command: clap::Command, out_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = command.get_name().to_string();
    let man_dir = out_dir.join("man");
    std::fs::create_dir_all(&man_dir)?;
    clap_mangen::generate_to(command.clone(), &man_dir)?;
    let mut written = Vec::new();
    for entry in std::fs::read_dir(&man_dir)? {
        written.push(entry?.path());
    }
    written.sort();
    let shells = [
        (clap_complete::Shell::Bash, "bash", name.clone()),
        (clap_complete::Shell::Zsh, "zsh", format!("_{name}")),
        (clap_complete::Shell::Fish, "fish", format!("{name}.fish")),
    ];
    for (shell, dir, file) in shells {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command.clone(), &name, &mut script);
        std::fs::create_dir_all(out_dir.join(dir))?;
        let path = out_dir.join(dir).join(file);
        std::fs::write(&path, script)?;
        written.push(path);
    }
    Ok(written)
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

    /// A small command line with a subcommand, a hidden one and a flag.
    fn example() -> clap::Command {
        clap::Command::new("rm-example")
            .about("An example")
            .arg(clap::Arg::new("config").long("config"))
            .subcommand(clap::Command::new("serve").about("Serve"))
            .subcommand(clap::Command::new("secret").hide(true))
    }

    /// One man page per visible (sub)command and one completion file per
    /// shell, under the names they are installed with; hidden subcommands
    /// get no page.
    #[test]
    fn generate_docs_writes_pages_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        let written = generate_docs(example(), dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "man/rm-example-serve.1",
                "man/rm-example.1",
                "bash/rm-example",
                "zsh/_rm-example",
                "fish/rm-example.fish"
            ]
        );
        let page = std::fs::read_to_string(dir.path().join("man/rm-example.1")).unwrap();
        assert!(
            page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH rm-example 1"),
            "{page}"
        );
        assert!(
            page.contains("\\-\\-config") && !page.contains("secret"),
            "{page}"
        );
        let bash = std::fs::read_to_string(dir.path().join("bash/rm-example")).unwrap();
        assert!(
            bash.contains("serve") && bash.contains("--config"),
            "{bash}"
        );
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
