//! `restic-manager-agent`: parses the command line, starts tracing and calls
//! into [`restic_manager_agent::agent`]. Errors are one line on stderr and a
//! non-zero exit status. On Windows, `service install|uninstall|run` hands
//! over to `agent::platform::service`, which runs the same daemon under the
//! Service Control Manager.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use restic_manager_agent::agent::{self, platform, AgentConfig, EnrollOptions, Secret};

/// The restic-manager agent: runs restic on this host for the server.
#[derive(Debug, Parser)]
#[command(
    name = "restic-manager-agent",
    version = restic_manager_agent::version_line(),
    about
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enrol this host with a one-time token and write the agent config.
    Enroll(EnrollArgs),
    /// Run the agent until SIGTERM/SIGINT (Ctrl-C or Ctrl-Break on Windows).
    Run(RunArgs),
    /// The Windows service: install or uninstall it (as an administrator),
    /// or run as the Service Control Manager starts it.
    #[cfg(windows)]
    #[command(subcommand)]
    Service(ServiceCommand),
}

#[derive(Debug, clap::Args)]
struct EnrollArgs {
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
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
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
}

#[cfg(windows)]
#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Register (or update) the service `restic-manager-agent`: started at
    /// boot as LocalSystem, restarted on failure, running `service run`
    /// with these options; restricts the config to SYSTEM and
    /// Administrators. Does not start it (`sc.exe start restic-manager-agent`).
    Install(RunArgs),
    /// Stop and remove the service.
    Uninstall,
    /// Run as the service (what the Service Control Manager starts; logs go
    /// to %ProgramData%\restic-manager\agent.log).
    Run(RunArgs),
}

fn main() -> ExitCode {
    let cli: Cli = restic_manager_agent::parse_cli();
    let result = match cli.command {
        Command::Enroll(args) => {
            restic_manager_agent::init_tracing();
            block_on(enroll(args))
        }
        Command::Run(args) => {
            restic_manager_agent::init_tracing();
            block_on(run(args, Box::pin(platform::shutdown_signal())))
        }
        #[cfg(windows)]
        Command::Service(command) => service(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `future` to completion on a new multi-threaded runtime.
fn block_on(future: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::runtime::Runtime::new()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?
        .block_on(future)
}

async fn enroll(args: EnrollArgs) -> Result<(), String> {
    let config_path = args.config.unwrap_or_else(platform::default_config_path);
    let options = EnrollOptions {
        server_url: args.server,
        token: Secret::new(args.token),
        config_path: config_path.clone(),
        ca_file: args.ca_file,
        force: args.force,
        allow_insecure: args.allow_insecure,
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

/// The config `run` would use: the file with the command line's overrides.
fn load_config(args: &RunArgs) -> Result<AgentConfig, String> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(platform::default_config_path);
    let mut config = AgentConfig::load(&path).map_err(|err| err.to_string())?;
    if let Some(state_dir) = &args.state_dir {
        config.state_dir.clone_from(state_dir);
    }
    if let Some(restic) = &args.restic {
        config.restic_binary.clone_from(restic);
    }
    config.allow_insecure_ws |= args.allow_insecure_ws;
    // Refuse a bad URL at once instead of retrying it forever.
    agent::connection::ws_url(&config.server_url, config.allow_insecure_ws)
        .map_err(|err| err.to_string())?;
    Ok(config)
}

async fn run(
    args: RunArgs,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Result<(), String> {
    let config = load_config(&args)?;
    agent::run(config, shutdown)
        .await
        .map_err(|err| err.to_string())
}

#[cfg(windows)]
fn service(command: ServiceCommand) -> Result<(), String> {
    use platform::service::{self, Installed, SERVICE_NAME};
    match command {
        ServiceCommand::Run(args) => {
            service::run(Box::new(move |shutdown| block_on(run(args, shutdown))))
                .map_err(|err| err.to_string())
        }
        ServiceCommand::Install(args) => {
            restic_manager_agent::init_tracing();
            let absolute = |path: &std::path::Path| {
                std::path::absolute(path)
                    .map_err(|err| format!("cannot resolve {}: {err}", path.display()))
            };
            let config_path = absolute(
                &args
                    .config
                    .clone()
                    .unwrap_or_else(platform::default_config_path),
            )?;
            let args = RunArgs {
                config: Some(config_path.clone()),
                state_dir: args.state_dir.as_deref().map(absolute).transpose()?,
                // A bare name stays a PATH lookup; a path is made absolute
                // (the service starts in System32).
                restic: match args.restic {
                    Some(restic) if restic.components().count() > 1 => Some(absolute(&restic)?),
                    other => other,
                },
                allow_insecure_ws: args.allow_insecure_ws,
            };
            let config = load_config(&args)?;
            let executable = std::env::current_exe()
                .map_err(|err| format!("cannot find this program's path: {err}"))?;
            let protected = platform::protect_agent_files(&config_path, &config.state_dir)
                .map_err(|err| err.to_string())?;
            let installed = service::install(executable, service_arguments(&args))
                .map_err(|err| err.to_string())?;
            for path in protected {
                println!(
                    "access restricted to SYSTEM and Administrators: {}",
                    path.display()
                );
            }
            let verb = match installed {
                Installed::Created => "installed",
                Installed::Updated => "updated",
            };
            println!(
                "service {SERVICE_NAME} {verb} (config {}); start it with `sc.exe start {SERVICE_NAME}`",
                config_path.display()
            );
            Ok(())
        }
        ServiceCommand::Uninstall => {
            restic_manager_agent::init_tracing();
            service::uninstall().map_err(|err| err.to_string())?;
            println!("service {SERVICE_NAME} removed");
            Ok(())
        }
    }
}

/// The command line the service is registered with: `service run` and the
/// given options.
#[cfg(windows)]
fn service_arguments(args: &RunArgs) -> Vec<std::ffi::OsString> {
    let mut arguments: Vec<std::ffi::OsString> = vec!["service".into(), "run".into()];
    if let Some(config) = &args.config {
        arguments.extend(["--config".into(), config.clone().into_os_string()]);
    }
    if let Some(state_dir) = &args.state_dir {
        arguments.extend(["--state-dir".into(), state_dir.clone().into_os_string()]);
    }
    if let Some(restic) = &args.restic {
        arguments.extend(["--restic".into(), restic.clone().into_os_string()]);
    }
    if args.allow_insecure_ws {
        arguments.push("--allow-insecure-ws".into());
    }
    arguments
}
