//! `restic-manager-loadgen`: simulated agents and benchmarks for one
//! restic-manager server node (issue 6; figures in BENCHMARKS.md).
//!
//! `restic-manager-loadgen <scenario> --agents N` starts its own server
//! (the `restic-manager` binary next to this one, a fresh temporary data
//! directory with SQLite, a random port) unless `--server URL --api-token
//! T --hosts FILE` points it at a running one, runs the scenario with N
//! simulated agents in this process, and prints one line of `key=value`
//! figures starting with `scenario=<name> agents=<N>`. Progress goes to
//! stderr.
//!
//! # Layout
//!
//! - [`report`]: percentiles and the output line (pure).
//! - [`procstats`]: RSS, CPU and descriptors from `/proc`; `RLIMIT_NOFILE`.
//! - [`server`]: the server child process and its setup (admin commands).
//! - [`api`]: the REST calls the scenarios make.
//! - [`agent`]: one simulated agent (WebSocket client, PROTOCOL.md).
//! - [`fleet`]: N agents, their shared counters, source addresses.
//! - [`scenarios`]: `connect`, `idle`, `dispatch`, `fanout`, `logs`,
//!   `reconnect`, `ui`, `catalog`, `catalog-live`, `shared-repo`, `soak`.
//! - [`throwaway`]: `--backend postgres`'s throwaway cluster.
//! - [`seed`]: the `ui` scenario's hosts, jobs and log lines, written
//!   straight into the database.
//! - [`baseline_ws`], [`baseline_actix`], [`baseline_sqlite`]: the bare
//!   limits we compare with.

#[cfg(target_os = "linux")]
mod agent;
#[cfg(target_os = "linux")]
mod api;
#[cfg(target_os = "linux")]
mod baseline_actix;
#[cfg(target_os = "linux")]
mod baseline_sqlite;
#[cfg(target_os = "linux")]
mod baseline_ws;
#[cfg(target_os = "linux")]
mod fleet;
#[cfg(target_os = "linux")]
mod procstats;
mod report;
#[cfg(target_os = "linux")]
mod scenarios;
#[cfg(target_os = "linux")]
mod seed;
#[cfg(target_os = "linux")]
mod server;
#[cfg(target_os = "linux")]
mod throwaway;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

/// The scenarios and baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N agents connect and say hello: time until all are online, server
    /// RSS per connected agent.
    Connect,
    /// N agents heartbeat for --duration: server CPU %.
    Idle,
    /// Run-now at --rate per second for --duration on random hosts:
    /// latency from the API call to `command.run` at the agent.
    Dispatch,
    /// Change every host's schedule (--via host: one PUT per host; --via
    /// policy: one policy PUT): time until every agent got `schedule.set`
    /// and the server recorded every `schedule.ack`.
    Fanout,
    /// --writers agents stream --lines log lines each as fast as allowed:
    /// lines persisted per second, send-to-visible lag.
    Logs,
    /// Restart the server with N agents connected and --jobs jobs running:
    /// time until all are back, jobs and results lost.
    Reconnect,
    /// Seed --seed-hosts hosts, --seed-jobs jobs and --log-lines log lines
    /// into the database (not measured), then time the dashboard, host
    /// and job lists and pages, a long log's first and last page, and
    /// `/metrics`: p50 / p99 per page.
    Ui,
    /// One snapshot of --catalog-entries entries into the catalog as the
    /// writer stores them (--batch per transaction): entries per second,
    /// then p50 / p99 of a 10,000-entry folder page and of a search.
    Catalog,
    /// The catalog through real sessions: each agent reports a snapshot
    /// and streams its --catalog-entries entries when the server's
    /// `catalog` job comes; entries per second and the server's RSS
    /// before, at its peak and after.
    CatalogLive,
    /// N agents on --repositories shared repositories: a backup per host
    /// every --backup-every, a prune per repository every --prune-every,
    /// for --duration: jobs failed for a lock (must be 0), jobs that ran
    /// beside an exclusive one (must be 0), lease wait p50 / p99.
    SharedRepo,
    /// Jobs at --rate (their agents stream log lines), schedule changes
    /// and reconnect churn at once for --duration: the server's memory and
    /// descriptors after the warm-up and at the end, and nothing lost.
    Soak,
    /// A bare tokio-tungstenite server (no actors, no database) holding
    /// the same N idle connections, measured like `connect` and `idle`.
    BaselineWs,
    /// actix-web + actix_web_actors with an actor that ignores frames:
    /// the floor of our transport stack, measured like `baseline-ws`.
    BaselineActix,
    /// Raw batched SQLite inserts of the `logs` scenario's lines into the
    /// same `job_logs` schema.
    BaselineSqlite,
    /// The bare server process of `baseline-ws` (started by it).
    #[value(hide = true)]
    BaselineWsServer,
    /// The bare server process of `baseline-actix` (started by it).
    #[value(hide = true)]
    BaselineActixServer,
}

impl Scenario {
    /// The name printed as `scenario=`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::Idle => "idle",
            Scenario::Dispatch => "dispatch",
            Scenario::Fanout => "fanout",
            Scenario::Logs => "logs",
            Scenario::Reconnect => "reconnect",
            Scenario::Ui => "ui",
            Scenario::Catalog => "catalog",
            Scenario::CatalogLive => "catalog-live",
            Scenario::SharedRepo => "shared-repo",
            Scenario::Soak => "soak",
            Scenario::BaselineWs => "baseline-ws",
            Scenario::BaselineActix => "baseline-actix",
            Scenario::BaselineSqlite => "baseline-sqlite",
            Scenario::BaselineWsServer => "baseline-ws-server",
            Scenario::BaselineActixServer => "baseline-actix-server",
        }
    }
}

/// How `fanout` changes the schedule of every host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// One `PUT /hosts/{id}/schedules/{sid}` per host.
    Host,
    /// One `PUT /policies/{id}` whose schedule every host has.
    Policy,
}

/// The database of the server the load generator starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// SQLite in the temporary data directory.
    Sqlite,
    /// A throwaway PostgreSQL cluster started for the run
    /// (`scripts/pg-throwaway`, fsync off) and stopped at its end.
    Postgres,
}

/// How `reconnect` stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StopSignal {
    /// SIGKILL: a crash; nothing is flushed.
    Kill,
    /// SIGTERM: a clean stop (actix drains for up to 10 s).
    Term,
}

#[derive(Debug, Parser)]
#[command(
    name = "restic-manager-loadgen",
    version,
    about = "Simulated agents and benchmarks for a restic-manager server"
)]
pub struct Cli {
    /// What to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub options: Options,
}

/// Everything a scenario may be tuned with.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Simulated agents (connected hosts).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub agents: u32,
    /// A running server (`http://host:port`) instead of starting one.
    #[arg(long, requires_all = ["api_token", "hosts"], value_name = "URL")]
    pub server: Option<String>,
    /// API token (admin or operator) for --server.
    #[arg(
        long,
        env = "RESTIC_MANAGER_LOADGEN_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub api_token: Option<String>,
    /// Agent credentials for --server: the file `restic-manager host
    /// bulk-enroll --output` wrote on that server.
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// The pid of --server, to read its memory and CPU (else not measured).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Loopback source addresses to spread agents over (127.0.0.1…).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=250))]
    pub source_addresses: u32,
    /// First connections in progress at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_concurrency: u32,
    /// Agent heartbeat interval.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Measuring window of `idle`, `dispatch` and `baseline-ws`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// `dispatch`: wait this long after every agent is online before the
    /// first request (steady state: the greetings' writes drained).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub settle: Option<Duration>,
    /// `dispatch`: run-now requests per second.
    #[arg(long, default_value_t = 200.0, value_parser = parse_rate)]
    pub rate: f64,
    /// `logs`, `baseline-sqlite`: agents streaming a job's log.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub writers: u32,
    /// `logs`, `baseline-sqlite`: lines per job.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub lines: u64,
    /// `logs`: lines per second per writer (default: as fast as allowed).
    #[arg(long, value_parser = parse_rate)]
    pub line_rate: Option<f64>,
    /// `logs`, `baseline-sqlite`: bytes per line payload.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(64..=65536))]
    pub line_bytes: u32,
    /// `baseline-sqlite`: rows per transaction (default: the server's
    /// largest log batch, `FLUSH_MAX_ROWS`).
    #[arg(long, default_value_t = restic_manager::actors::persistence::FLUSH_MAX_ROWS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// `baseline-sqlite`: an extra `PRAGMA` for the baseline's connection
    /// (repeatable), e.g. `wal_autocheckpoint=10000`, to try storage settings.
    #[arg(long, value_name = "NAME=VALUE")]
    pub pragma: Vec<String>,
    /// REST requests in flight at once during setup and `fanout`.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub api_concurrency: u32,
    /// `fanout`: one PUT per host, or one policy PUT for all.
    #[arg(long, value_enum, default_value_t = Via::Host)]
    pub via: Via,
    /// `connect`: policies (each matching every host, with a source group
    /// and a schedule) created before the agents connect, so that each
    /// `hello` is answered with their groups and schedules too.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub policies: u32,
    /// `reconnect`: jobs running when the server stops.
    #[arg(long, default_value_t = 1000)]
    pub jobs: u32,
    /// `reconnect`, `shared-repo`: how long a job runs on the agent.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub hold: Duration,
    /// `reconnect`: how the server is stopped.
    #[arg(long, value_enum, default_value_t = StopSignal::Kill)]
    pub signal: StopSignal,
    /// `reconnect`: how long the server stays down.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub down: Duration,
    /// `shared-repo`: shared repositories the hosts are spread over.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub repositories: u32,
    /// `shared-repo`: every host backs up this often (at most a quarter
    /// of --duration, so a short run has several rounds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub backup_every: Duration,
    /// `shared-repo`: every repository is pruned this often (at most half
    /// of --duration).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub prune_every: Duration,
    /// Longest wait for any condition before the scenario gives up.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Keep the temporary data directory (database, server.log).
    #[arg(long)]
    pub keep_data: bool,
    /// The started server's database (`postgres://…`, e.g. from
    /// `scripts/pg-throwaway start DIR`; it must be empty). Default: SQLite
    /// in the temporary data directory. `baseline-sqlite` creates a fresh
    /// database on that server for each measure.
    #[arg(long, value_name = "URL", conflicts_with_all = ["backend", "server"])]
    pub database_url: Option<String>,
    /// The started server's database: `postgres` starts a throwaway
    /// PostgreSQL cluster (needs PostgreSQL's server binaries) and stops
    /// it at the end; `catalog`, `ui` and `baseline-sqlite` write into it
    /// too.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite, conflicts_with = "server")]
    pub backend: Backend,
    /// `ui`: hosts seeded into the database.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub seed_hosts: u64,
    /// `ui`: jobs seeded into the database.
    #[arg(long, default_value_t = 1_000_000)]
    pub seed_jobs: u64,
    /// `ui`: log lines seeded into the database (a tenth of them in one job).
    #[arg(long, default_value_t = 10_000_000)]
    pub log_lines: u64,
    /// `ui`: requests per page (sequential; a page stops early after
    /// --duration).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,
    /// `catalog`: entries of the catalogued snapshot; `catalog-live`:
    /// entries of each agent's snapshot.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub catalog_entries: u64,
    /// `RESTIC_MANAGER_LOG` of the started server.
    #[arg(long, default_value = "info")]
    pub server_log: String,
    /// `baseline-ws-server`: where to listen.
    #[arg(long, hide = true, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if d.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(d)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|e| format!("invalid rate {s:?}: {e}"))?;
    if !(rate > 0.0 && rate <= 100_000.0) {
        return Err("the rate must be above 0 and at most 100000 per second".into());
    }
    Ok(rate)
}

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let bare = match cli.scenario {
        Scenario::BaselineWsServer => Some(baseline_ws::serve(cli.options.listen)),
        Scenario::BaselineActixServer => Some(baseline_actix::serve(cli.options.listen)),
        _ => None,
    };
    if let Some(result) = bare {
        return match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut options = cli.options;
    // Held until the end of main: dropping it stops the cluster, after the
    // scenario (and its server) are gone.
    let cluster = match options.backend {
        Backend::Postgres => match throwaway::Throwaway::start() {
            Ok(cluster) => {
                options.database_url = Some(cluster.url.clone());
                Some(cluster)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        Backend::Sqlite => None,
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = scenarios::run(cli.scenario, options) => outcome,
            signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
        }
    });
    // The scenario's server and tasks go first, then the cluster (a
    // blocking task still running, e.g. seeding, is not waited for long).
    runtime.shutdown_timeout(Duration::from_secs(10));
    drop(cluster);
    match outcome {
        Ok(report) => {
            println!("{}", report.line());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Waits for Ctrl-C or SIGTERM (so that the throwaway cluster is stopped);
/// returns the signal's name.
#[cfg(target_os = "linux")]
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        // No SIGTERM handler: Ctrl-C alone still stops cleanly.
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("restic-manager-loadgen reads /proc and runs on Linux only");
    std::process::ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("restic-manager-loadgen").chain(args.iter().copied()))
    }

    /// A scenario and its options parse; defaults fill the rest.
    #[test]
    fn parses_scenario_and_options() {
        let cli = parse(&[
            "dispatch",
            "--agents",
            "10000",
            "--rate",
            "200",
            "--duration",
            "20s",
        ])
        .unwrap();
        assert_eq!(cli.scenario, Scenario::Dispatch);
        assert_eq!(cli.scenario.name(), "dispatch");
        assert_eq!(cli.options.agents, 10_000);
        assert_eq!(cli.options.rate, 200.0);
        assert_eq!(cli.options.duration, Duration::from_secs(20));
        assert_eq!(cli.options.settle, None);
        let settled = parse(&["dispatch", "--settle", "15s"]).unwrap();
        assert_eq!(settled.options.settle, Some(Duration::from_secs(15)));
        assert!(parse(&["dispatch", "--settle", "0s"]).is_err());
        assert_eq!(cli.options.heartbeat, Duration::from_secs(30));
        assert_eq!(cli.options.signal, StopSignal::Kill);
        assert_eq!(cli.options.via, Via::Host);
        assert_eq!(cli.options.policies, 0);
        let f = parse(&["fanout", "--agents", "500", "--via", "policy"]).unwrap();
        assert_eq!(f.options.via, Via::Policy);
        let c = parse(&["connect", "--policies", "20"]).unwrap();
        assert_eq!(c.options.policies, 20);
        assert!(parse(&["fanout", "--via", "label"]).is_err());
        let l = parse(&["catalog-live", "--agents", "4", "--catalog-entries", "5000"]).unwrap();
        assert_eq!(l.scenario.name(), "catalog-live");
        assert_eq!(l.options.catalog_entries, 5000);
        let b = parse(&["baseline-sqlite", "--writers", "10", "--lines", "5"]).unwrap();
        assert_eq!(b.scenario, Scenario::BaselineSqlite);
        assert_eq!(b.scenario.name(), "baseline-sqlite");
    }

    /// Bad input is refused with clap's error, never a panic: an unknown
    /// scenario, zero agents, a zero duration, a negative rate, and
    /// --server without its token and hosts file.
    #[test]
    fn refuses_bad_arguments() {
        assert!(parse(&["stampede"]).is_err());
        assert!(parse(&["connect", "--agents", "0"]).is_err());
        assert!(parse(&["idle", "--duration", "0s"]).is_err());
        assert!(parse(&["dispatch", "--rate", "-3"]).is_err());
        assert!(parse(&["connect", "--server", "http://127.0.0.1:8080"]).is_err());
        let ok = parse(&[
            "connect",
            "--server",
            "http://127.0.0.1:8080",
            "--api-token",
            "t",
            "--hosts",
            "hosts.tsv",
        ])
        .unwrap();
        assert_eq!(ok.options.server.as_deref(), Some("http://127.0.0.1:8080"));
    }

    /// `--backend` defaults to SQLite; `postgres` is refused beside
    /// `--database-url` (which names the database already) and `--server`
    /// (which starts nothing).
    #[test]
    fn backend_choice() {
        assert_eq!(parse(&["logs"]).unwrap().options.backend, Backend::Sqlite);
        let pg = parse(&["dispatch", "--backend", "postgres"]).unwrap();
        assert_eq!(pg.options.backend, Backend::Postgres);
        assert!(parse(&["logs", "--backend", "mysql"]).is_err());
        assert!(parse(&[
            "logs",
            "--backend",
            "postgres",
            "--database-url",
            "postgres://u@h/db"
        ])
        .is_err());
        let url = parse(&["logs", "--database-url", "postgres://u@h/db"]).unwrap();
        assert_eq!(url.options.backend, Backend::Sqlite, "the URL decides");
        assert!(parse(&[
            "connect",
            "--backend",
            "postgres",
            "--server",
            "http://127.0.0.1:8080",
            "--api-token",
            "t",
            "--hosts",
            "hosts.tsv",
        ])
        .is_err());
    }
}
