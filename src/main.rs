//! `restic-manager`: the server and its admin commands.
//!
//! Thin on purpose: parse flags, start tracing, call into the library. Every
//! error is one line on stderr and a non-zero exit status.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use restic_manager::auth::{self, Role};
use restic_manager::config::{CommonArgs, ServeArgs, ServerConfig};
use restic_manager::config_as_code::remote;
use restic_manager::{admin, server};

#[derive(Debug, Parser)]
#[command(
    name = "restic-manager",
    version = restic_manager::version_line(),
    about = "Control plane for restic backups across a fleet"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

// The serve variant is large (every server flag); the value is parsed
// once at start and never moved around, so boxing it buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (REST API, web UI, agent WebSocket).
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage one-time enrolment tokens for new hosts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage API tokens for automation.
    #[command(name = "api-token", subcommand)]
    ApiToken(ApiTokenCommand),
    /// Manage hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Apply database migrations and exit.
    Migrate,
    /// Write the policies, shared repositories and host labels as a TOML
    /// file (configuration as code; never a secret).
    Export {
        /// Write to FILE (replaced whole) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Make the policies, shared repositories and host labels what FILE
    /// says, in one transaction; prints one line per change.
    Apply {
        /// The TOML file (as `export` writes it).
        file: PathBuf,
        /// Check the file and print the changes without making them.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// `--server URL --api-token T`: run `export` / `apply` against a running
/// server's API instead of its database (its agents are told at once,
/// and secret references are read by the server).
#[derive(Debug, clap::Args)]
struct RemoteArgs {
    /// The server's base URL, e.g. https://backups.example.com:8080.
    #[arg(long, value_name = "URL", requires = "api_token")]
    server: Option<String>,
    /// An API token (operator for export, admin for apply).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RESTIC_MANAGER_API_TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
}

impl RemoteArgs {
    /// The server and token, if `--server` was given.
    fn server(&self) -> Option<(&str, &str)> {
        Some((self.server.as_deref()?, self.api_token.as_deref()?))
    }
}

#[derive(Debug, Subcommand)]
enum HostCommand {
    /// Create COUNT hosts at once and write `host_id<TAB>agent_token` lines
    /// to a new file readable by its owner only (fleet provisioning, load
    /// tests); the agents connect with these tokens without enrolling.
    #[command(name = "bulk-enroll")]
    BulkEnroll {
        /// How many hosts to create.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=admin::MAX_BULK_ENROLL as i64))]
        count: u32,
        /// The file to create (it must not exist).
        #[arg(long, value_name = "FILE")]
        output: std::path::PathBuf,
        /// Hostnames are PREFIX-1 … PREFIX-COUNT.
        #[arg(long, default_value = "host")]
        hostname_prefix: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; the password comes from a prompt or --password-stdin.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a one-time enrolment token (and nothing else) on stdout.
    Create {
        /// How long the token stays valid, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Print an API token for USERNAME (sent as `Authorization: Bearer …`).
    Create {
        #[arg(long)]
        username: String,
        /// A name to recognise the token by in listings.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Expiry, e.g. 90d; default: no expiry.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if d.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli: Cli = restic_manager::parse_cli();
    // The server logs what it does; the one-shot admin commands print their
    // result and say nothing else unless something is wrong (README: an
    // error is one line on stderr), so their default level is `warn`.
    match cli.command {
        Command::Serve(_) => restic_manager::init_tracing(),
        _ => restic_manager::init_tracing_with_default("warn"),
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let serve_args = match &cli.command {
        Command::Serve(args) => args.clone(),
        _ => ServeArgs::default(),
    };
    let config = ServerConfig::resolve(&cli.common, &serve_args)?;
    match cli.command {
        Command::Serve(_) => server::serve_blocking(config),
        Command::Migrate => {
            let pool = admin::open_store(&config)?;
            let applied = admin::migrate(&pool)?;
            println!("migrations up to date ({applied} applied now)");
            Ok(())
        }
        Command::User(UserCommand::Add {
            username,
            role,
            password_stdin,
        }) => {
            let password = read_password(password_stdin)?;
            let pool = admin::open_store(&config)?;
            admin::add_user(&pool, &username, role, &password)?;
            eprintln!("user {username} added with role {}", role.as_str());
            Ok(())
        }
        Command::Token(TokenCommand::Create { ttl }) => {
            let pool = admin::open_store(&config)?;
            let token = admin::create_enrollment_token(&pool, ttl, "cli")?;
            println!("{}", token.token);
            Ok(())
        }
        Command::Host(HostCommand::BulkEnroll {
            count,
            output,
            hostname_prefix,
        }) => {
            let pool = admin::open_store(&config)?;
            let count = usize::try_from(count).context("the count is too large")?;
            admin::bulk_enroll_to_file(&pool, count, &hostname_prefix, &output)?;
            eprintln!("{count} hosts enrolled; tokens in {}", output.display());
            Ok(())
        }
        Command::Export {
            output,
            remote: via,
        } => {
            let text = match via.server() {
                Some((url, token)) => runtime()?.block_on(remote::export(url, token))?,
                None => admin::export_config(&admin::open_store(&config)?)?,
            };
            match output {
                Some(path) => {
                    write_replacing(&path, &text)?;
                    eprintln!("configuration written to {}", path.display());
                }
                None => std::io::stdout()
                    .write_all(text.as_bytes())
                    .context("cannot write to standard output")?,
            }
            Ok(())
        }
        Command::Apply {
            file,
            dry_run,
            remote: via,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (changes, hosts) = match via.server() {
                Some((url, token)) => {
                    let answer = runtime()?
                        .block_on(remote::apply(url, token, text, dry_run))
                        .with_context(|| file.display().to_string())?;
                    (answer.changes, answer.hosts_affected)
                }
                None => {
                    let pool = admin::open_store(&config)?;
                    let applied = admin::apply_config(&pool, &config.key_file, &text, dry_run)
                        .with_context(|| file.display().to_string())?;
                    let n = applied.hosts_affected.len();
                    (applied.changes, n)
                }
            };
            for change in &changes {
                println!("{change}");
            }
            match (changes.len(), dry_run) {
                (0, _) => eprintln!("no changes"),
                (n, true) => {
                    eprintln!("dry run: {n} change(s) would be made, affecting {hosts} host(s)")
                }
                (n, false) => eprintln!("{n} change(s) applied, {hosts} host(s) affected"),
            }
            Ok(())
        }
        Command::ApiToken(ApiTokenCommand::Create {
            username,
            name,
            ttl,
        }) => {
            let pool = admin::open_store(&config)?;
            let token = admin::create_api_token(&pool, &username, &name, ttl)?;
            println!("{token}");
            Ok(())
        }
    }
}

/// A runtime for the `--server` requests.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the HTTP client")
}

/// Writes `text` to `path` through a temporary file beside it and a
/// rename, so that a crash leaves the old file or the new one, whole.
fn write_replacing(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        // Best effort: the temporary file may not exist.
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Reads a password from stdin (`--password-stdin`) or an interactive prompt.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("no terminal to prompt for a password: use --password-stdin");
        }
        let first = rpassword::prompt_password("Password: ").context("cannot read password")?;
        let second =
            rpassword::prompt_password("Repeat password: ").context("cannot read password")?;
        if first != second {
            bail!("the passwords do not match");
        }
        first
    };
    auth::check_password_policy(&password)?;
    Ok(password)
}
