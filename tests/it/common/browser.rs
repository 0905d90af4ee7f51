//! Headless Chromium for browser tests: [`Browser::start`] runs
//! `chromedriver` (Debian's `chromium-driver`; `CHROMEDRIVER` overrides
//! `/usr/bin/chromedriver`) on a free port and opens a fantoccini session
//! on `/usr/bin/chromium` (`CHROMIUM` overrides) with a fresh profile in a
//! temp dir; downloads land in [`Browser::downloads`]. Helpers wait on DOM
//! conditions (and on a finished download) with a deadline — never a
//! fixed sleep — and save screenshots.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;

/// How long a browser condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(100);

fn chromedriver_binary() -> PathBuf {
    std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

fn chromium_binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("probe address").port()
}

/// The chromedriver process; killed on drop.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The process may have exited already; either way it is gone after.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session.
pub struct Browser {
    pub client: Client,
    driver: Driver,
    /// The browser profile (`--user-data-dir`), removed at the end.
    _profile: TempDir,
    /// Where downloads are saved.
    pub downloads: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let port = free_port();
        let child = Command::new(chromedriver_binary())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (apt-get install chromium-driver): {e}",
                    chromedriver_binary().display()
                )
            });
        let driver = Driver { child };
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let started = Instant::now();
        loop {
            let ready = http
                .get(format!("{url}/status"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "chromedriver did not answer on {url}"
            );
            tokio::time::sleep(POLL).await;
        }
        let profile = tempfile::Builder::new()
            .prefix("rm-chromium-")
            .tempdir()
            .unwrap();
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1400,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let downloads = tempfile::Builder::new()
            .prefix("rm-downloads-")
            .tempdir()
            .unwrap();
        let prefs = json!({
            "download.default_directory": downloads.path().to_string_lossy(),
            "download.prompt_for_download": false,
        });
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".to_owned(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({"binary": chromium_binary(), "args": args, "prefs": prefs}),
        );
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
            downloads,
        }
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(self) {
        // A failed close leaves only a process that Drop kills anyway.
        let _ = self.client.close().await;
        drop(self.driver);
    }
}

/// Waits for an element matching `css`.
pub async fn wait_css(client: &Client, css: &str) -> Element {
    client
        .wait()
        .at_most(DEADLINE)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} within {DEADLINE:?}: {e}"))
}

/// Polls `script` (a JavaScript expression body ending in `return …`)
/// until it returns something other than `null`/`false`, and returns
/// that value.
pub async fn wait_js(client: &Client, what: &str, script: &str) -> Value {
    let started = Instant::now();
    loop {
        let value = client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script for {what} failed: {e}"));
        if !matches!(value, Value::Null | Value::Bool(false)) {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the page's path is `path`.
pub async fn wait_path(client: &Client, path: &str) {
    let started = Instant::now();
    loop {
        let url = client.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "still at {url}, expected the path {path}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the page's path starts with `prefix`; returns the path.
pub async fn wait_path_prefix(client: &Client, prefix: &str) -> String {
    let started = Instant::now();
    loop {
        let url = client.current_url().await.unwrap();
        if url.path().starts_with(prefix) {
            return url.path().to_owned();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "still at {url}, expected a path under {prefix}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Replaces the value of the input or textarea matching `css`.
pub async fn fill(client: &Client, css: &str, value: &str) {
    let field = wait_css(client, css).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Saves a PNG screenshot of the page as `dir/name.png`.
pub async fn screenshot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Waits until the browser finished downloading `name` into `dir` (the
/// file exists and Chromium's `.crdownload` part is gone); returns its bytes.
pub async fn wait_download(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    let partial = dir.join(format!("{name}.crdownload"));
    let started = Instant::now();
    loop {
        if path.is_file() && !partial.exists() {
            return std::fs::read(&path).unwrap();
        }
        let present: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            started.elapsed() < DEADLINE,
            "no download {name} within {DEADLINE:?}; the folder holds {present:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}
