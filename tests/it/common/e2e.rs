//! The REST API as the end-to-end tests drive it (real agent, real restic): authenticated `GET` and
//! JSON requests as the test server's admin, polling with a deadline
//! (`wait_for`), and jobs run to their end (`run_job`).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::server::TestApp;

/// How long a test waits for anything the agent does asynchronously.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Time between two polls of [`wait_for`].
const POLL: Duration = Duration::from_millis(50);

/// `GET /api/v1{path}` as admin; asserts a 2xx answer.
pub async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = super::api::get(app, &app.admin_token, path).await;
    assert!(status.is_success(), "GET {path}: {status} {body}");
    body
}

/// A JSON request as admin; asserts a 2xx answer and returns its body
/// (`Null` when empty).
pub async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> Value {
    let (status, answer) =
        super::api::call(app, &app.admin_token, method.clone(), path, Some(body)).await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

/// `POST` with a JSON body (see [`send`]).
pub async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    send(app, reqwest::Method::POST, path, body).await
}

/// `PUT` with a JSON body (see [`send`]).
pub async fn put(app: &TestApp, path: &str, body: Value) -> Value {
    send(app, reqwest::Method::PUT, path, body).await
}

/// Polls `check` until it yields a value, failing after [`DEADLINE`].
/// The agent works asynchronously and the server offers no event to await
/// from outside but its API, so the API is polled.
pub async fn wait_for<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    wait_for_within(what, DEADLINE, check).await
}

/// [`wait_for`] with its own deadline.
pub async fn wait_for_within<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        actix_web::rt::time::sleep(POLL).await;
    }
}

/// Whether a job status is terminal.
pub fn is_terminal(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

/// Waits until host `host` is online.
pub async fn wait_online(app: &TestApp, host: &str) {
    wait_for("host online", async || {
        let h = get(app, &format!("/hosts/{host}")).await;
        (h["status"] == "online").then_some(())
    })
    .await;
}

/// Creates a job (`POST /hosts/{host}/jobs`) and returns its id.
pub async fn start_job(app: &TestApp, host: &str, body: Value) -> String {
    let job = post(app, &format!("/hosts/{host}/jobs"), body).await;
    job["id"].as_str().unwrap().to_owned()
}

/// Waits until job `id` is terminal and returns it.
pub async fn wait_job(app: &TestApp, id: &str) -> Value {
    wait_for(&format!("job {id} to finish"), async || {
        let job = get(app, &format!("/jobs/{id}")).await;
        is_terminal(&job).then_some(job)
    })
    .await
}

/// Creates a job and waits for its end.
pub async fn run_job(app: &TestApp, host: &str, body: Value) -> Value {
    let id = start_job(app, host, body).await;
    wait_job(app, &id).await
}

/// Every job of `host`, newest first.
pub async fn host_jobs(app: &TestApp, host: &str) -> Vec<Value> {
    get(app, &format!("/jobs?host_id={host}&limit=200")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until every job of `host` has ended: the follow-ups a finished
/// job leaves (the `catalog` listing after a backup, a retry) run on the
/// same repository, and a check of what a job left behind (restic's lock
/// files) must not see theirs.
pub async fn wait_host_idle(app: &TestApp, host: &str) {
    wait_for(&format!("every job of host {host} to end"), async || {
        host_jobs(app, host)
            .await
            .iter()
            .all(is_terminal)
            .then_some(())
    })
    .await
}

/// The stored log lines of job `id`, asserting that their `seq` numbers
/// are strictly increasing (so none is stored twice).
pub async fn job_logs(app: &TestApp, id: &str) -> Vec<Value> {
    let logs = get(app, &format!("/jobs/{id}/logs?limit=10000")).await;
    let items = logs["items"].as_array().unwrap().clone();
    let seqs: Vec<u64> = items.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "log seqs of job {id} not strictly increasing: {seqs:?}"
    );
    items
}

/// The host's snapshot projection (`GET /hosts/{host}/snapshots`).
pub async fn snapshots(app: &TestApp, host: &str) -> Vec<Value> {
    get(app, &format!("/hosts/{host}/snapshots")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Enrols an in-process agent in `dir` and starts it; returns the host id
/// and the running agent once the server sees it online.
pub async fn online_agent(
    app: &TestApp,
    dir: &std::path::Path,
) -> (String, super::daemon::InProcessAgent) {
    let config = super::daemon::enroll(app, dir).await;
    let host = config.host_id.clone();
    let agent = super::daemon::InProcessAgent::start(config);
    wait_online(app, &host).await;
    (host, agent)
}

/// Gives `host` the repository at `url`, made there as `restic init` would
/// but without its key calibration (3 s of CPU; [`super::restic_key::init`];
/// e2e_backup and capabilities run real `init` jobs through the agent).
pub async fn init_repository(app: &TestApp, host: &str, url: &std::path::Path, password: &str) {
    let (path, secret) = (url.to_path_buf(), password.to_owned());
    super::off_thread(move || super::restic_key::init(&path, &secret)).await;
    put(
        app,
        &format!("/hosts/{host}/repository"),
        serde_json::json!({"url": url.to_string_lossy(), "password": password}),
    )
    .await;
}
