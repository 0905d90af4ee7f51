//! `restic-manager-agent`: parses the command line, starts tracing and calls
//! into [`restic_manager::agent`]. Errors are one line on stderr and a
//! non-zero exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use restic_manager::agent::{self, platform, AgentConfig, EnrollOptions, Secret};

/// The restic-manager agent: runs restic on this host for the server.
#[derive(Debug, Parser)]
#[command(name = "restic-manager-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enrol this host with a one-time token and write the agent config.
    Enroll {
        /// The server's URL (https://backup.example.com).
        #[arg(long, env = "RESTIC_MANAGER_SERVER")]
        server: String,
        /// The one-time enrolment token (`restic-manager token create`).
        #[arg(long, env = "RESTIC_MANAGER_ENROLL_TOKEN", hide_env_values = true)]
        token: String,
        /// Where to write the config [default: the platform's agent.toml].
        #[arg(long)]
        config: Option<PathBuf>,
        /// A PEM file of CA certificates to trust for the server.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Replace an existing enrolled config.
        #[arg(long)]
        force: bool,
        /// Allow plain http:// (and later ws://) to a non-loopback server.
        #[arg(long)]
        allow_insecure: bool,
    },
    /// Run the agent until SIGTERM/SIGINT.
    Run {
        /// The agent config [default: the platform's agent.toml].
        #[arg(long, env = "RESTIC_MANAGER_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// Override the state directory of the config.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Override the restic binary of the config.
        #[arg(long)]
        restic: Option<PathBuf>,
        /// Allow ws:// (no TLS) to a non-loopback server.
        #[arg(long)]
        allow_insecure_ws: bool,
    },
}

fn main() -> ExitCode {
    let cli: Cli = restic_manager::parse_cli();
    restic_manager::init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Enroll {
            server,
            token,
            config,
            ca_file,
            force,
            allow_insecure,
        } => {
            let config_path = config.unwrap_or_else(platform::default_config_path);
            let options = EnrollOptions {
                server_url: server,
                token: Secret::new(token),
                config_path: config_path.clone(),
                ca_file,
                force,
                allow_insecure,
            };
            let config = agent::enroll(&options)
                .await
                .map_err(|err| err.to_string())?;
            println!(
                "enrolled as host {}; config written to {}",
                config.host_id,
                config_path.display()
            );
            Ok(())
        }
        Command::Run {
            config,
            state_dir,
            restic,
            allow_insecure_ws,
        } => {
            let path = config.unwrap_or_else(platform::default_config_path);
            let mut config = AgentConfig::load(&path).map_err(|err| err.to_string())?;
            if let Some(state_dir) = state_dir {
                config.state_dir = state_dir;
            }
            if let Some(restic) = restic {
                config.restic_binary = restic;
            }
            config.allow_insecure_ws |= allow_insecure_ws;
            // Refuse a bad URL at once instead of retrying it forever.
            agent::connection::ws_url(&config.server_url, config.allow_insecure_ws)
                .map_err(|err| err.to_string())?;
            agent::run(config, platform::shutdown_signal())
                .await
                .map_err(|err| err.to_string())
        }
    }
}
