//! The REST calls the scenarios make (API.md), as an automation client
//! with `Authorization: Bearer <api token>`: run-now, source groups and
//! schedules, and the reads that tell when the server has recorded
//! something (hosts online, acked schedule versions, jobs, log lines).

use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::json;

/// Largest page the API returns (`store::MAX_PAGE`).
pub const PAGE: usize = 1000;

/// A REST client for one server.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    /// `http://host:port/api/v1`.
    base: String,
    /// `http://host:port`.
    root: String,
    token: String,
}

/// The list envelope: `{"items": [...], "total": N}`.
#[derive(Deserialize)]
struct List<T> {
    items: Vec<T>,
    #[serde(default)]
    total: Option<u64>,
}

/// The fields of a host the scenarios look at.
#[derive(Debug, Deserialize)]
pub struct HostView {
    pub id: String,
    pub schedule_version: i64,
    pub acked_schedule_version: i64,
}

/// The fields of a job the scenarios look at.
#[derive(Debug, Deserialize)]
pub struct JobView {
    pub id: String,
    pub status: String,
    pub last_log_seq: i64,
    #[serde(default)]
    pub host_id: String,
    #[serde(default)]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub dispatched_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

impl Api {
    /// A client for the server at `server` (`http://host:port`).
    pub fn new(server: &str, token: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            // Below actix-web's 5 s keep-alive: a connection the server is
            // closing as idle is not reused (the soak's few "connection
            // closed before message completed" failures were that race).
            .pool_idle_timeout(Duration::from_secs(3))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api {
            client,
            base: format!("{}/api/v1", server.trim_end_matches('/')),
            root: server.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("{what}: request failed"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("{what}: HTTP {status}: {body}");
        }
        Ok(response)
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .send(self.client.get(format!("{}{path}", self.base)), path)
            .await?;
        response
            .json()
            .await
            .with_context(|| format!("{path}: unexpected answer"))
    }

    /// `GET <path>` from the server's root (a page, `/metrics` or an API
    /// route) with the token; returns the body's size in bytes once it
    /// has been read to the end.
    pub async fn fetch(&self, path: &str) -> anyhow::Result<usize> {
        let response = self
            .send(self.client.get(format!("{}{path}", self.root)), path)
            .await?;
        let body = response
            .bytes()
            .await
            .with_context(|| format!("{path}: body"))?;
        Ok(body.len())
    }

    /// `POST /hosts/{id}/jobs`: a run-now job; returns its id.
    pub async fn run_now(&self, host_id: &str, kind: &str) -> anyhow::Result<String> {
        let url = format!("{}/hosts/{host_id}/jobs", self.base);
        let response = self
            .send(
                self.client.post(url).json(&json!({ "kind": kind })),
                "run now",
            )
            .await?;
        Ok(response
            .json::<Created>()
            .await
            .context("run now: answer")?
            .id)
    }

    /// `POST /repositories`: a shared repository; returns its id.
    pub async fn create_repository(&self, name: &str, url: &str) -> anyhow::Result<String> {
        let body = json!({"name": name, "url": url, "password": "loadgen-shared-password"});
        let response = self
            .send(
                self.client
                    .post(format!("{}/repositories", self.base))
                    .json(&body),
                "create repository",
            )
            .await?;
        Ok(response
            .json::<Created>()
            .await
            .context("create repository: answer")?
            .id)
    }

    /// `PUT /hosts/{id}/repository {"repository_id"}`.
    pub async fn attach_repository(
        &self,
        host_id: &str,
        repository_id: &str,
    ) -> anyhow::Result<()> {
        let url = format!("{}/hosts/{host_id}/repository", self.base);
        let body = json!({ "repository_id": repository_id });
        self.send(self.client.put(url).json(&body), "attach repository")
            .await?;
        Ok(())
    }

    /// `POST /hosts/{id}/jobs` with a kind and an optional source group;
    /// `None` when the server answers 409 (e.g. the repository's prune
    /// is queued or running already).
    pub async fn run_job(
        &self,
        host_id: &str,
        kind: &str,
        group: Option<&str>,
    ) -> anyhow::Result<Option<String>> {
        let url = format!("{}/hosts/{host_id}/jobs", self.base);
        let body = match group {
            Some(group) => json!({ "kind": kind, "source_group": group }),
            None => json!({ "kind": kind }),
        };
        let response = self
            .client
            .post(url)
            .json(&body)
            .bearer_auth(&self.token)
            .send()
            .await
            .context("run job: request failed")?;
        let status = response.status();
        if status == reqwest::StatusCode::CONFLICT {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("run job: HTTP {status}: {body}");
        }
        Ok(Some(
            response
                .json::<Created>()
                .await
                .context("run job: answer")?
                .id,
        ))
    }

    /// `POST /policies`: a policy matching every host (selector `{}`)
    /// with one source group `group` and one schedule of it; returns its id.
    pub async fn create_policy(
        &self,
        name: &str,
        group: &str,
        cron_expr: &str,
    ) -> anyhow::Result<String> {
        let response = self
            .send(
                self.client
                    .post(format!("{}/policies", self.base))
                    .json(&policy_body(name, group, cron_expr)),
                "create policy",
            )
            .await?;
        Ok(response
            .json::<Created>()
            .await
            .context("create policy: answer")?
            .id)
    }

    /// `PUT /policies/{id}` with the shape of [`Self::create_policy`];
    /// returns `hosts_affected`.
    pub async fn update_policy(
        &self,
        id: &str,
        name: &str,
        group: &str,
        cron_expr: &str,
    ) -> anyhow::Result<u64> {
        #[derive(Deserialize)]
        struct Changed {
            hosts_affected: u64,
        }
        let response = self
            .send(
                self.client
                    .put(format!("{}/policies/{id}", self.base))
                    .json(&policy_body(name, group, cron_expr)),
                "update policy",
            )
            .await?;
        Ok(response
            .json::<Changed>()
            .await
            .context("update policy: answer")?
            .hosts_affected)
    }

    /// `POST /hosts/{id}/source-groups`.
    pub async fn create_source_group(&self, host_id: &str, name: &str) -> anyhow::Result<()> {
        let url = format!("{}/hosts/{host_id}/source-groups", self.base);
        let body = json!({
            "name": name,
            "includes": ["/etc", "/home"],
            "excludes": ["*.tmp"],
            "retention_policy": {"keep_daily": 7, "keep_weekly": 4},
        });
        self.send(self.client.post(url).json(&body), "create source group")
            .await?;
        Ok(())
    }

    /// `POST /hosts/{id}/schedules`; returns the schedule id.
    pub async fn create_schedule(
        &self,
        host_id: &str,
        cron_expr: &str,
        group: &str,
    ) -> anyhow::Result<String> {
        let url = format!("{}/hosts/{host_id}/schedules", self.base);
        let body = json!({"cron_expr": cron_expr, "enabled": true, "source_groups": [group]});
        let response = self
            .send(self.client.post(url).json(&body), "create schedule")
            .await?;
        Ok(response
            .json::<Created>()
            .await
            .context("create schedule: answer")?
            .id)
    }

    /// `PUT /hosts/{id}/schedules/{sid}`.
    pub async fn update_schedule(
        &self,
        host_id: &str,
        schedule_id: &str,
        cron_expr: &str,
        group: &str,
    ) -> anyhow::Result<()> {
        let url = format!("{}/hosts/{host_id}/schedules/{schedule_id}", self.base);
        let body = json!({"cron_expr": cron_expr, "enabled": true, "source_groups": [group]});
        self.send(self.client.put(url).json(&body), "update schedule")
            .await?;
        Ok(())
    }

    /// How many hosts the server shows with `status` (`online`/`offline`).
    pub async fn count_hosts(&self, status: &str) -> anyhow::Result<u64> {
        let list: List<HostView> = self.get(&format!("/hosts?status={status}&limit=1")).await?;
        list.total.context("the host list has no total")
    }

    /// Every host, a page at a time.
    pub async fn all_hosts(&self) -> anyhow::Result<Vec<HostView>> {
        let mut hosts = Vec::new();
        loop {
            let page: List<HostView> = self
                .get(&format!("/hosts?limit={PAGE}&offset={}", hosts.len()))
                .await?;
            let got = page.items.len();
            hosts.extend(page.items);
            if got < PAGE {
                return Ok(hosts);
            }
        }
    }

    /// How many jobs have `status`.
    pub async fn count_jobs(&self, status: &str) -> anyhow::Result<u64> {
        let list: List<JobView> = self.get(&format!("/jobs?status={status}&limit=1")).await?;
        list.total.context("the job list has no total")
    }

    /// Every job of `kind`, a page at a time.
    pub async fn all_jobs(&self, kind: &str) -> anyhow::Result<Vec<JobView>> {
        let mut jobs = Vec::new();
        loop {
            let page: List<JobView> = self
                .get(&format!(
                    "/jobs?kind={kind}&limit={PAGE}&offset={}",
                    jobs.len()
                ))
                .await?;
            let got = page.items.len();
            jobs.extend(page.items);
            if got < PAGE {
                return Ok(jobs);
            }
        }
    }

    /// One folder of a snapshot as the browse route answers it: (whether
    /// the snapshot is catalogued, the folder's entries).
    pub async fn snapshot_folder(
        &self,
        host_id: &str,
        snapshot_id: &str,
        path: &str,
    ) -> anyhow::Result<(bool, u64)> {
        #[derive(Deserialize)]
        struct Tree {
            catalogued: bool,
            total: u64,
        }
        let tree: Tree = self
            .get(&format!(
                "/hosts/{host_id}/snapshots/{snapshot_id}/tree?path={path}&limit=1"
            ))
            .await?;
        Ok((tree.catalogued, tree.total))
    }

    /// Whether log line `seq` of the job can be read through the API.
    pub async fn log_line_visible(&self, job_id: &str, seq: u64) -> anyhow::Result<bool> {
        #[derive(Deserialize)]
        struct Line {
            seq: u64,
        }
        let after = seq.saturating_sub(1);
        let lines: List<Line> = self
            .get(&format!("/jobs/{job_id}/logs?after_seq={after}&limit=1"))
            .await?;
        Ok(lines.items.first().is_some_and(|l| l.seq == seq))
    }
}

/// The body of a policy matching every host with one group and one
/// schedule of it.
fn policy_body(name: &str, group: &str, cron_expr: &str) -> serde_json::Value {
    json!({
        "name": name,
        "selector": {"labels": {}},
        "source_groups": [{
            "name": group,
            "includes": ["/etc", "/home"],
            "excludes": ["*.tmp"],
            "retention_policy": {"keep_daily": 7, "keep_weekly": 4},
        }],
        "schedules": [{"cron_expr": cron_expr, "enabled": true, "source_groups": [group]}],
    })
}
