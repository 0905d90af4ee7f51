//! App wiring: opens the store and key, builds the actors once, and runs the
//! actix-web server (plain or rustls TLS) until SIGINT/SIGTERM, then stops
//! it gracefully ([`shutdown`]).
//!
//! [`start`] binds the listener first so tests can ask for port 0 and read
//! the real address back; `serve_blocking` is what `restic-manager serve` runs.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::actors;
use crate::config::{ServerConfig, TlsFiles};
use crate::crypto::{CryptoError, SecretKey};
use crate::http::AppState;
use crate::{admin, http};

/// A started server: its address, a handle to stop it, and the first admin's
/// password if this start created the account.
pub struct Started {
    pub addr: SocketAddr,
    pub state: AppState,
    pub server: actix_web::dev::Server,
    pub initial_admin_password: Option<String>,
}

/// Opens everything and binds the listener; the returned server must be
/// awaited (or spawned) to run. Must be called inside an actix system.
pub async fn start(config: ServerConfig) -> anyhow::Result<Started> {
    install_crypto_provider();
    // Everything that can fail on bad input (a busy port, unreadable TLS
    // files, an unusable key file) is checked first: before the actors
    // start, since an error after that would drop their running system and
    // panic, and before anything is logged, so that the error is the one
    // line on stderr that README promises.
    let listener =
        listen(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let tls = config.tls.as_ref().map(load_tls).transpose()?;
    let key_context = || format!("cannot use key file {}", config.key_file.display());
    let existing_key = match SecretKey::load(&config.key_file) {
        Ok(key) => Some(key),
        Err(CryptoError::KeyFileMissing { .. }) => None,
        Err(e) => return Err(e).with_context(key_context),
    };

    let pool = admin::open_store(&config)?;
    let key = match existing_key {
        Some(key) => key,
        // First start: created once the store is known to open.
        None => SecretKey::load_or_create(&config.key_file).with_context(key_context)?,
    };
    let initial_admin_password = admin::bootstrap_admin(&pool)?;

    let key = Arc::new(key);
    let config_arc = Arc::new(config.clone());
    let actors = Arc::new(actors::start(pool.clone(), key.clone(), config_arc.clone()));
    let blocking = blocking_threads(pool.max_size());
    let state = AppState {
        pool,
        key,
        config: config_arc,
        actors,
        recent_credentials: Arc::default(),
    };

    let app_state = state.clone();
    // One login limiter for every worker: per-worker counters would multiply the limits.
    let login_limiter = web::Data::new(http::auth::LoginLimiter::new());
    let hsts = tls.is_some();
    let http_server = HttpServer::new(move || {
        App::new()
            // Under TLS, browsers are told to use nothing but HTTPS (issue 15 B.11).
            .wrap(actix_web::middleware::Condition::new(
                hsts,
                actix_web::middleware::DefaultHeaders::new().add((
                    actix_web::http::header::STRICT_TRANSPORT_SECURITY,
                    http::HSTS,
                )),
            ))
            .app_data(web::Data::new(app_state.clone()))
            .app_data(login_limiter.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(http::API_JSON_LIMIT)
                    .error_handler(http::error::json_error_handler),
            )
            .app_data(web::QueryConfig::default().error_handler(http::error::query_error_handler))
            .configure(http::routes)
            .default_service(web::to(http::ui::not_found))
    })
    // Signals are ours (serve_blocking): agent sessions must be closed
    // before the graceful stop, or it waits out the timeout on them.
    .disable_signals()
    .worker_max_blocking_threads(blocking)
    .shutdown_timeout(10);
    let http_server = match tls {
        Some(tls) => http_server.listen_rustls_0_23(listener, tls)?,
        None => http_server.listen(listener)?,
    };
    Ok(Started {
        addr,
        state,
        server: http_server.run(),
        initial_admin_password,
    })
}

/// Connections the kernel completes and queues for `accept` (capped by
/// `net.core.somaxconn`, 4096 by default on Linux).
///
/// Pitfall met at 15,000 agents: `std::net::TcpListener::bind` listens
/// with a backlog of 128. When a fleet connects at once (a server restart,
/// `loadgen connect`: 1,000 connects in flight) the queue overflowed
/// while the two workers were busy greeting (`ListenOverflows` in `nstat`
/// grew by thousands a run), the kernel dropped those SYNs, and each
/// dropped agent waited out TCP's 1 s (then 3 s) retransmission: the
/// fleet's last agents online a second or more late, for no work.
pub(crate) const LISTEN_BACKLOG: i32 = 4096;

/// A listening TCP socket on `addr` with [`LISTEN_BACKLOG`]
/// (`SO_REUSEADDR` on Unix, as std's `bind` sets it).
pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Threads of each worker's blocking pool (`web::block`): as many as the
/// database pool has connections, and at least [`MIN_BLOCKING_THREADS`].
///
/// Pitfall met at 15,000 agents (issue 10 §8): actix-web's default is 512
/// divided by the cores, and every greeting is a `web::block` read that
/// waits in `Pool::get` for one of a few connections, so a burst of hellos
/// grew 512 threads that could do nothing but wait, each with its stack
/// and malloc cache: 2.4 KiB of RSS per connected agent at 15,000 (21.6 →
/// 19.2 KiB, BENCHMARKS.md), and slower hellos. Every blocking
/// task here is a short read or a bounded computation (argon2), so a queue
/// in front of as many threads as there are connections loses no speed.
pub(crate) fn blocking_threads(pool_size: u32) -> usize {
    usize::try_from(pool_size)
        .unwrap_or(usize::MAX)
        .max(MIN_BLOCKING_THREADS)
}

/// Floor of [`blocking_threads`]: a pool of one connection still lets a
/// password hash run beside a read.
pub(crate) const MIN_BLOCKING_THREADS: usize = 4;

/// Runs the server until SIGINT/SIGTERM (actix-web's signal handling stops
/// accepting, drains in-flight requests, then returns).
pub fn serve_blocking(config: ServerConfig) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let started = start(config).await?;
        if let Some(password) = &started.initial_admin_password {
            // Printed once, on the console of the operator who started the
            // server: this is the only place the password ever appears.
            println!("created user admin with password: {password}");
            println!("(set RESTIC_MANAGER_ADMIN_PASSWORD before the first start to choose it)");
        }
        let scheme = if started.state.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(addr = %started.addr, "restic-manager listening on {scheme}://{}", started.addr);
        println!("listening on {scheme}://{}", started.addr);
        let handle = started.server.handle();
        let server = actix_web::rt::spawn(started.server);
        let signal = wait_for_stop_signal().await;
        tracing::info!(signal, "stopping");
        shutdown(&started.state, &handle).await;
        server
            .await
            .context("server task failed")?
            .context("server failed")?;
        tracing::info!("shut down cleanly");
        Ok(())
    })
}

/// Stops a running server gracefully: it accepts no new connection, every
/// agent session is closed with 1001 (agents reconnect to the next start),
/// buffered writes are flushed, and in-flight requests are drained.
pub async fn shutdown(state: &AppState, handle: &actix_web::dev::ServerHandle) {
    // `stop` stops accepting at once; the returned future completes when
    // the remaining connections are done.
    let stopped = handle.stop(true);
    match state
        .actors
        .login_audit
        .send(actors::login_audit::FlushLoginAudit)
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the last failed logins"),
        Err(e) => tracing::warn!(error = %e, "login audit unavailable"),
    }
    state.actors.notifier.stop().await;
    match state.actors.close_all_sessions().await {
        Ok(n) => tracing::info!(sessions = n, "agent sessions closed"),
        Err(e) => tracing::warn!(error = %e, "cannot close agent sessions"),
    }
    stopped.await;
}

/// Waits for SIGINT (Ctrl-C) or, on Unix, SIGTERM; returns its name.
async fn wait_for_stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
                ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await;
        "Ctrl-C"
    }
}

/// Completes on Ctrl-C; never, if Ctrl-C cannot be watched (the server
/// must not stop because a signal handler failed to install).
async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "cannot watch Ctrl-C");
        std::future::pending::<()>().await;
    }
}

/// rustls 0.23 needs a process-wide crypto provider; we use ring.
pub fn install_crypto_provider() {
    // Err means a provider is already installed (a second server in the same
    // test process): that one is ring too, so there is nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn load_tls(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read TLS certificate {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid TLS certificate {}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate found in {}", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read TLS key {}", files.key.display()))?;
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_threads_follow_the_pool_with_a_floor() {
        assert_eq!(blocking_threads(1), MIN_BLOCKING_THREADS);
        assert_eq!(blocking_threads(8), 8);
        assert_eq!(blocking_threads(64), 64);
    }

    /// 512 connections wait for `accept` without a SYN dropped (std's
    /// backlog of 128 held about 129; the rest waited 1 s to retry).
    #[test]
    fn the_listener_queues_a_burst_of_connections() {
        use std::time::Duration;
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let held: Vec<std::net::TcpStream> = (0..512)
            .map(|i| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("connection {i} was not queued: {e}"))
            })
            .collect();
        assert_eq!(held.len(), 512);
        drop(listener);
    }

    /// A busy address is refused (the start-up error names it).
    #[test]
    fn a_busy_address_is_refused() {
        let first = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let err = listen(first.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }
}
