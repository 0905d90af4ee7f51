//! `spawn_app()`: a real restic-manager server on 127.0.0.1:0 with a fresh
//! temp data dir (SQLite database and key file), an admin API token, and a
//! handle to stop it. Call it inside `#[actix_web::test]`.
//!
//! With `RESTIC_MANAGER_TEST_SERVER_BACKEND=postgres` (and
//! `RESTIC_MANAGER_TEST_POSTGRES_URL` naming a server) every server starts on
//! a fresh PostgreSQL database instead: `scripts/test` runs the channel and
//! API suites a second time that way, so both backends see the same tests.
//!
//! A stopped server can be started again on the same data dir and port
//! ([`TestApp::start_again`]), as an operator restarting the service would.

use std::net::SocketAddr;

use restic_manager::config::{DatabaseUrl, ServerConfig};
use restic_manager::http::AppState;
use restic_manager::server;

/// A running test server.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// `ws://127.0.0.1:PORT/api/v1/agent/ws`
    pub ws_url: String,
    pub state: AppState,
    pub config: ServerConfig,
    /// The generated password of the `admin` account.
    pub admin_password: String,
    /// An API token of `admin`, for `Authorization: Bearer …`.
    pub admin_token: String,
    pub handle: actix_web::dev::ServerHandle,
    /// Keeps the data dir alive as long as the app.
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database the server runs on, if any (dropped with the app).
    pub pg: Option<super::db::PgScratch>,
}

impl TestApp {
    /// `base_url` + `path` (path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// `base_url` + `/api/v1` + `path`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base_url, path)
    }

    /// A fresh enrolment token (valid one hour), created as the CLI would.
    pub async fn enrollment_token(&self) -> String {
        let pool = self.state.pool.clone();
        actix_web::web::block(move || {
            restic_manager::admin::create_enrollment_token(
                &pool,
                std::time::Duration::from_secs(3600),
                "admin",
            )
        })
        .await
        .expect("blocking task")
        .expect("enrollment token")
        .token
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&self) {
        restic_manager::server::shutdown(&self.state, &self.handle).await;
    }

    /// Starts a new server on this (stopped) server's data dir and port:
    /// same database, key file and admin account; a fresh API token.
    pub async fn start_again(self) -> TestApp {
        let mut config = self.config.clone();
        config.listen = self.addr;
        let admin_password = self.admin_password.clone();
        let addr = self.addr;
        // The PostgreSQL database moves to the new server (dropping it
        // here would drop the database under it).
        let pg = self.pg;
        let mut app = start_in(self.dir, config).await;
        assert_eq!(app.addr, addr, "restarted on the same port");
        app.admin_password = admin_password;
        app.pg = pg;
        app
    }
}

/// Starts a server with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after `adjust` changed the test configuration. Unless
/// `adjust` moved its database, the server starts on a copy of
/// the process's template (migrated, with `admin`: [`super::template`]).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig::for_data_dir(dir.path());
    let (pg, template) = if server_on_postgres() {
        let (pg, template) = super::db::postgres_server_database().unwrap_or_else(|| {
            panic!(
                "{SERVER_BACKEND_ENV}=postgres needs {} (and the postgres feature)",
                super::db::POSTGRES_URL_ENV
            )
        });
        config.database_url = DatabaseUrl(pg.url.clone());
        (Some(pg), template)
    } else {
        (None, super::template::sqlite())
    };
    let database_url = config.database_url.0.clone();
    adjust(&mut config);
    // The template's database holds no sealed secret yet: a test that
    // moves the key file elsewhere still starts on it (the template's key
    // file then lies unused in the data directory).
    let template = template.filter(|_| config.database_url.0 == database_url);
    if let Some(template) = template {
        template.write_into(dir.path());
    }
    let mut app = start_in(dir, config).await;
    if let Some(template) = template {
        app.admin_password = template.admin_password.clone();
    }
    app.pg = pg;
    app
}

/// Selects the database backend of test servers (`sqlite` by default).
pub const SERVER_BACKEND_ENV: &str = "RESTIC_MANAGER_TEST_SERVER_BACKEND";

/// True when test servers must run on PostgreSQL.
fn server_on_postgres() -> bool {
    match std::env::var(SERVER_BACKEND_ENV).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{SERVER_BACKEND_ENV}={other}: expected sqlite or postgres"),
    }
}

/// Ports test servers listen on: below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768 upwards by default), which the
/// kernel hands to every outgoing connection and to a bind on port 0. A
/// server restarted on its port ([`TestApp::start_again`]) once found it
/// taken in between by some test's client socket ("Address already in
/// use"); a port below that range is never handed out by the kernel.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// Ports this process has handed out (never handed out twice: a stopped
/// server may start again on its port).
static PORTS_TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A port of [`TEST_PORTS`] free now and not handed out before by this
/// process (other processes, such as the other runs of `scripts/test`,
/// pick at random in the same range, and a port found taken is skipped).
fn free_test_port() -> u16 {
    use std::hash::BuildHasher;
    let mut taken = PORTS_TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
    loop {
        // A fresh `RandomState` is randomly keyed: a random number
        // without a dependency for it.
        let random = std::collections::hash_map::RandomState::new().hash_one(taken.len());
        let port = TEST_PORTS.start + u16::try_from(random % span).unwrap_or(0);
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
}

/// Starts a server on an existing data dir (e.g. to test a restart). A
/// config listening on port 0 gets a port of [`TEST_PORTS`] instead (a
/// new one should another process bind it first).
pub async fn start_in(dir: tempfile::TempDir, mut config: ServerConfig) -> TestApp {
    let pick = config.listen.port() == 0;
    let mut attempt = 0;
    let started = loop {
        attempt += 1;
        if pick {
            config.listen.set_port(free_test_port());
        }
        match server::start(config.clone()).await {
            Ok(started) => break started,
            Err(e) if pick && attempt < 10 && format!("{e:#}").contains("in use") => {}
            Err(e) => panic!("server starts: {e:?}"),
        }
    };
    let addr = started.addr;
    let state = started.state.clone();
    let handle = started.server.handle();
    actix_web::rt::spawn(started.server);
    let admin_password = started.initial_admin_password.unwrap_or_default();
    // The writer marks every host offline as it starts (no session
    // survives a restart), on its own thread, possibly after
    // `server::start` has returned; a test that then sets a host online
    // straight in the database raced with it. A write through the writer
    // is handled after its start.
    state
        .actors
        .write("test: the writer has started", |_| {
            Ok::<_, restic_manager::http::error::ApiError>(())
        })
        .await
        .expect("the writer starts");
    let pool = state.pool.clone();
    let admin_token = actix_web::web::block(move || {
        restic_manager::admin::create_api_token(&pool, "admin", "tests", None)
    })
    .await
    .expect("blocking task")
    .expect("api token");
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        ws_url: format!("ws://{addr}/api/v1/agent/ws"),
        state,
        config,
        admin_password,
        admin_token,
        handle,
        dir,
        pg: None,
    }
}

/// An HTTP client for tests (no proxy, short timeouts).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}
