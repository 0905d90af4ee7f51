//! `baseline-ws`: the bare minimum a WebSocket server needs per idle
//! connection, to state our memory per agent as a ratio to it.
//!
//! The bare server (`baseline-ws-server`, this binary started as a child
//! process) is tokio-tungstenite on a two-worker runtime (as many as
//! actix's workers here) with the small read buffer tungstenite's docs
//! recommend for many connections: it accepts, upgrades, and reads and
//! drops frames (tungstenite answers pings) — no actors, no database,
//! no authentication. The same simulated agents connect to it (online
//! once `hello` is sent) and heartbeat; its RSS per connection and CPU
//! over --duration are measured as in `connect` and `idle`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::StreamExt;

use crate::agent::{ws_config, AgentConfig, JobBehaviour};
use crate::fleet::{Credentials, Fleet};
use crate::procstats::{self, CpuMeter};
use crate::report::{summarize, Report};
use crate::scenarios::{add_memory, SETTLE};
use crate::Options;

/// Worker threads of the bare server (actix starts one per core: 2 here).
const WORKERS: usize = 2;

/// The bare server: runs until killed.
pub fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        println!("listening on ws://{}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, typically: wait and go on.
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
                else {
                    return;
                };
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    })
}

/// The child process; killed when dropped.
struct BareServer(Child);

impl Drop for BareServer {
    fn drop(&mut self) {
        // Cleanup: an error means it exited already.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Which bare server to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareKind {
    /// tokio-tungstenite (`baseline-ws`).
    Tungstenite,
    /// actix-web + `actix_web_actors` (`baseline-actix`).
    Actix,
}

impl BareKind {
    fn scenario(self) -> &'static str {
        match self {
            BareKind::Tungstenite => "baseline-ws",
            BareKind::Actix => "baseline-actix",
        }
    }

    fn server_command(self) -> &'static str {
        match self {
            BareKind::Tungstenite => "baseline-ws-server",
            BareKind::Actix => "baseline-actix-server",
        }
    }
}

fn start_bare_server(kind: BareKind) -> anyhow::Result<(BareServer, SocketAddr)> {
    let me = std::env::current_exe().context("cannot find this executable")?;
    let mut child = Command::new(me)
        .args([kind.server_command(), "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the bare server")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let server = BareServer(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("cannot read the bare server's address")?;
    let Some(addr) = line.trim().strip_prefix("listening on ws://") else {
        bail!("the bare server said {line:?}");
    };
    let addr = addr.parse().context("the bare server's address")?;
    Ok((server, addr))
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    measure_bare(opts, BareKind::Tungstenite).await
}

/// Starts a bare server, connects the agents, and measures it like
/// `connect` (time, RSS per agent) and `idle` (CPU over --duration).
pub async fn measure_bare(opts: &Options, kind: BareKind) -> anyhow::Result<Report> {
    let n = opts.agents as usize;
    let (server, addr) = tokio::task::spawn_blocking(move || start_bare_server(kind))
        .await
        .context("start panicked")??;
    let pid = server.0.id();
    tokio::time::sleep(SETTLE).await;
    let before = procstats::rss_kib(pid)?;
    let hosts: Vec<Credentials> = (0..n)
        .map(|i| Credentials {
            host_id: format!("bare-{i}"),
            token: "unused".to_owned(),
        })
        .collect();
    let config = AgentConfig {
        ws_url: format!("ws://{addr}/"),
        server: addr,
        expect_greeting: false,
        heartbeat: opts.heartbeat,
        jobs: JobBehaviour::Instant,
        reconnect: true,
    };
    let fleet = Fleet::launch(
        hosts,
        config,
        opts.source_addresses as usize,
        opts.connect_concurrency as usize,
    );
    let online = fleet.wait_online(n, opts.timeout).await;
    tokio::time::sleep(SETTLE).await;
    let after = procstats::rss_kib(pid)?;
    let cpu = CpuMeter::start(pid)?;
    eprintln!("idle for {:?}", opts.duration);
    tokio::time::sleep(opts.duration).await;

    let mut report = Report::new(kind.scenario(), n);
    report.int("online", fleet.online() as u64);
    match online {
        Ok(d) => report.seconds("seconds", d),
        Err(e) => {
            eprintln!("{e:#}");
            report.text("seconds", "timeout")
        }
    };
    add_memory(&mut report, Some(before), Some(after), n);
    report.float("server_cpu_pct", cpu.percent()?, 2);
    let mut latencies = fleet.shared.first_online_latencies();
    report
        .latency("online", summarize(&mut latencies).as_ref())
        .int(
            "connect_errors",
            fleet.shared.connect_errors.load(Ordering::Relaxed),
        )
        .seconds("duration", opts.duration);
    fleet.stop().await;
    drop(server);
    Ok(report)
}
