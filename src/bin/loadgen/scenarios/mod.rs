//! The scenarios of issue 6, one per file, and [`Ctx`], what each gets:
//! the server under test (started here or given), its REST client, the
//! hosts' credentials, and helpers to launch agents and read the server's
//! memory.
//!
//! # Layout
//!
//! - [`connect`]: time to online, RSS per agent.
//! - [`idle`]: CPU of N idle agents.
//! - [`dispatch`]: run-now → `command.run` latency.
//! - [`fanout`]: schedule change → every ack recorded.
//! - [`logs`]: log ingestion rate and lag.
//! - [`reconnect`]: restart with agents connected; nothing lost.
//! - [`ui`]: page and API latencies over a seeded fleet-sized database.
//! - [`shared_repo`]: hosts on shared repositories, backups and prunes:
//!   lock failures and lease waits.
//! - [`soak`]: jobs, logs, schedule changes and reconnect churn at once:
//!   memory and descriptors stay flat, nothing is lost.
//! - [`catalog`]: snapshot catalog ingest rate, folder browse and search
//!   latencies (store path).
//! - [`catalog_live`]: the same ingest through real sessions: rate and the
//!   server's memory at its peak.

mod catalog;
mod catalog_live;
mod connect;
mod dispatch;
mod fanout;
mod idle;
mod logs;
mod reconnect;
mod shared_repo;
mod soak;
mod ui;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::sync::Semaphore;

use crate::agent::{AgentConfig, JobBehaviour};
use crate::api::Api;
use crate::fleet::{parse_hosts_file, Credentials, Fleet};
use crate::report::Report;
use crate::server::OwnServer;
use crate::{baseline_actix, baseline_sqlite, baseline_ws, procstats, Options, Scenario};

/// Pause before reading memory, so that allocations of the step before
/// settle.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What a scenario works with.
pub struct Ctx {
    pub opts: Options,
    /// The server this program started, if it did.
    pub own: Option<OwnServer>,
    pub hosts: Vec<Credentials>,
    pub api: Api,
    pub addr: SocketAddr,
    server_pid: Option<u32>,
}

/// Runs `scenario`; returns its output line.
pub async fn run(scenario: Scenario, opts: Options) -> anyhow::Result<Report> {
    let fd_limit = procstats::raise_nofile_limit()?;
    let agents = opts.agents as usize;
    eprintln!(
        "{}: {agents} agents, descriptor limit {fd_limit}",
        scenario.name()
    );
    let mut report = match scenario {
        Scenario::BaselineWs => baseline_ws::run(&opts).await?,
        Scenario::BaselineActix => baseline_actix::run(&opts).await?,
        Scenario::BaselineSqlite => baseline_sqlite::run(&opts).await?,
        Scenario::Ui => ui::run(&opts).await?,
        Scenario::Catalog => catalog::run(&opts)?,
        Scenario::BaselineWsServer | Scenario::BaselineActixServer => {
            bail!("the bare servers are started by their baselines")
        }
        _ => {
            let backend = opts
                .server
                .is_none()
                .then(|| backend_name(opts.database_url.as_deref()));
            let mut ctx = Ctx::open(opts).await?;
            let mut report = match scenario {
                Scenario::Connect => connect::run(&mut ctx).await?,
                Scenario::Idle => idle::run(&mut ctx).await?,
                Scenario::Dispatch => dispatch::run(&mut ctx).await?,
                Scenario::Fanout => fanout::run(&mut ctx).await?,
                Scenario::Logs => logs::run(&mut ctx).await?,
                Scenario::Reconnect => reconnect::run(&mut ctx).await?,
                Scenario::SharedRepo => shared_repo::run(&mut ctx).await?,
                Scenario::Soak => soak::run(&mut ctx).await?,
                Scenario::CatalogLive => catalog_live::run(&mut ctx).await?,
                _ => bail!("not a server scenario"),
            };
            ctx.close().await;
            if let Some(backend) = backend {
                report.text("backend", backend);
            }
            report
        }
    };
    report.int("fd_limit", fd_limit);
    Ok(report)
}

/// `backend=` of a started server: `postgres` for a `postgres://` URL.
pub fn backend_name(database_url: Option<&str>) -> &'static str {
    match database_url {
        Some(url) if url.starts_with("postgres") => "postgres",
        _ => "sqlite",
    }
}

impl Ctx {
    /// Starts the server (or reads the given one's credentials).
    async fn open(opts: Options) -> anyhow::Result<Ctx> {
        let agents = opts.agents as usize;
        match &opts.server {
            Some(url) => {
                let token = opts.api_token.clone().context("--api-token is needed")?;
                let path = opts.hosts.clone().context("--hosts is needed")?;
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let mut hosts = parse_hosts_file(&text)?;
                if hosts.len() < agents {
                    bail!(
                        "{} holds {} hosts; --agents {agents} needs as many",
                        path.display(),
                        hosts.len()
                    );
                }
                hosts.truncate(agents);
                let addr = socket_addr(url)?;
                Ok(Ctx {
                    api: Api::new(url, &token)?,
                    own: None,
                    hosts,
                    addr,
                    server_pid: opts.server_pid,
                    opts,
                })
            }
            None => {
                let keep = opts.keep_data;
                let log = opts.server_log.clone();
                let url = opts.database_url.clone();
                let setup = Instant::now();
                let (mut server, hosts) = tokio::task::spawn_blocking(move || {
                    OwnServer::prepare(agents, keep, &log, url.as_deref())
                })
                .await
                .context("setup panicked")??;
                let addr = tokio::task::spawn_blocking(move || {
                    let addr = server.start();
                    (server, addr)
                })
                .await
                .context("start panicked")?;
                let (server, addr) = (addr.0, addr.1?);
                eprintln!(
                    "server {} pid {} ready in {:.1}s (data in {})",
                    addr,
                    server.pid()?,
                    setup.elapsed().as_secs_f64(),
                    server.data_dir().display()
                );
                Ok(Ctx {
                    api: Api::new(&format!("http://{addr}"), &server.api_token)?,
                    server_pid: None,
                    own: Some(server),
                    hosts,
                    addr,
                    opts,
                })
            }
        }
    }

    /// The server's pid, when it can be measured.
    pub fn pid(&self) -> Option<u32> {
        match &self.own {
            Some(server) => server.pid().ok(),
            None => self.server_pid,
        }
    }

    /// The server's RSS in KiB, when it can be measured.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid().and_then(|pid| procstats::rss_kib(pid).ok())
    }

    /// Launches an agent per host with `jobs` behaviour.
    pub fn launch(&self, jobs: JobBehaviour) -> Fleet {
        self.launch_hosts(self.hosts.clone(), jobs)
    }

    /// Launches an agent for each of `hosts` (a part of the fleet) with
    /// `jobs` behaviour.
    pub fn launch_hosts(&self, hosts: Vec<crate::fleet::Credentials>, jobs: JobBehaviour) -> Fleet {
        let config = AgentConfig {
            ws_url: format!("ws://{}/api/v1/agent/ws", self.addr),
            server: self.addr,
            expect_greeting: true,
            heartbeat: self.opts.heartbeat,
            jobs,
            reconnect: true,
        };
        Fleet::launch(
            hosts,
            config,
            self.opts.source_addresses as usize,
            self.opts.connect_concurrency as usize,
        )
    }

    /// Launches the agents and waits until all are online (not measured).
    pub async fn connect_all(&self, jobs: JobBehaviour) -> anyhow::Result<Fleet> {
        let fleet = self.launch(jobs);
        let took = fleet
            .wait_online(self.hosts.len(), self.opts.timeout)
            .await?;
        eprintln!(
            "{} agents online in {:.1}s",
            self.hosts.len(),
            took.as_secs_f64()
        );
        Ok(fleet)
    }

    /// Polls the API until `n` hosts show as online; returns how long it
    /// took, or `None` after the timeout.
    pub async fn wait_server_online(&self, n: usize, start: Instant) -> Option<Duration> {
        loop {
            match self.api.count_hosts("online").await {
                Ok(count) if count >= n as u64 => return Some(start.elapsed()),
                Ok(_) => {}
                Err(e) => eprintln!("cannot count online hosts: {e:#}"),
            }
            if start.elapsed() >= self.opts.timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `f` for every item with at most `--api-concurrency` at once;
    /// fails with the first error.
    pub async fn for_each_limited<T, F, Fut, R>(
        &self,
        items: Vec<T>,
        f: F,
    ) -> anyhow::Result<Vec<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<R>> + Send + 'static,
    {
        let limit = Arc::new(Semaphore::new(self.opts.api_concurrency as usize));
        let f = Arc::new(f);
        let mut tasks = Vec::with_capacity(items.len());
        for item in items {
            let permit = limit.clone().acquire_owned().await?;
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let out = f(item).await;
                drop(permit);
                out
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(task.await.context("a request task panicked")??);
        }
        Ok(out)
    }

    async fn close(mut self) {
        if let Some(server) = self.own.take() {
            // Dropping stops the child and removes the data directory:
            // blocking work, off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || drop(server)).await;
        }
    }
}

/// `host:port` of an `http://host:port` URL.
fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--server must be an http:// URL (the load generator speaks plain ws://)");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))
}

/// Server memory figures: before, after, and per agent.
pub fn add_memory(
    report: &mut Report,
    before_kib: Option<u64>,
    after_kib: Option<u64>,
    agents: usize,
) {
    if let (Some(before), Some(after)) = (before_kib, after_kib) {
        report.float("rss_base_mib", before as f64 / 1024.0, 1);
        report.float("rss_mib", after as f64 / 1024.0, 1);
        report.float(
            "rss_per_agent_kib",
            after.saturating_sub(before) as f64 / agents.max(1) as f64,
            2,
        );
    }
}
