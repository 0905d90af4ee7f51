//! A labelled fleet written straight into the store (no agents, no API:
//! fast enough for 15,000 hosts), a UI session's JSON calls with its CSRF
//! token, and users of a given role: what the fleet UI tests share
//! (`ui_fleet`, `ui_fleet_browser`).

use std::collections::BTreeMap;

use restic_manager::auth::Role;
use restic_manager::store::models::{NewHost, NewSourceGroup};
use restic_manager::store::{self};
use serde_json::Value;

use super::api::Browser;
use super::server::TestApp;

/// One host to seed.
pub struct Seed {
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub online: bool,
    /// Source groups (file groups backing up `/srv`), by name.
    pub groups: Vec<String>,
}

impl Seed {
    /// An offline host with these `key=value` labels and no group.
    pub fn new(hostname: &str, labels: &[(&str, &str)]) -> Seed {
        Seed {
            hostname: hostname.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            online: false,
            groups: Vec::new(),
        }
    }

    /// The same host with a source group named `name`.
    pub fn with_group(mut self, name: &str) -> Seed {
        self.groups.push(name.to_owned());
        self
    }
}

/// A file source group `id` of `host_id` backing up `includes`, no
/// retention, no retries.
pub fn file_group(
    id: &str,
    host_id: &str,
    name: String,
    includes: Vec<String>,
    now: i64,
) -> NewSourceGroup {
    NewSourceGroup {
        id: id.to_owned().into(),
        host_id: host_id.to_owned().into(),
        name,
        includes,
        excludes: Vec::new(),
        retention_policy: None,
        retry_max: 0,
        retry_backoff_seconds: 300,
        created_at: now,
        updated_at: now,
        prune_after_forget: false,
        kind: "files".to_owned(),
        dump: None,
        dump_password_sealed: None,
    }
}

/// Writes `hosts` into the store in one transaction; returns their ids
/// in the order given.
pub async fn seed(app: &TestApp, hosts: Vec<Seed>) -> Vec<String> {
    let pool = app.state.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let now = store::now_ms();
        store::write_transaction(&mut conn, |c| {
            let mut ids = Vec::with_capacity(hosts.len());
            for seed in hosts {
                let id = store::new_id();
                store::hosts::insert(
                    c,
                    &NewHost {
                        labels: seed.labels,
                        ..NewHost::new(id.clone(), seed.hostname, format!("seed-{id}"), now)
                    },
                )?;
                if seed.online {
                    store::hosts::set_online(c, &id, true, now)?;
                }
                for name in seed.groups {
                    let group = file_group(&store::new_id(), &id, name, vec!["/srv".into()], now);
                    store::source_groups::insert(c, &group)?;
                }
                ids.push(id);
            }
            diesel::QueryResult::Ok(ids)
        })
    })
    .await
    .unwrap()
    .unwrap()
}

/// Adds a user with `role`; returns the password.
pub async fn add_user(app: &TestApp, name: &str, role: Role) -> String {
    let password = format!("{name}-password-1234");
    let pool = app.state.pool.clone();
    let (n, p) = (name.to_owned(), password.clone());
    actix_web::web::block(move || restic_manager::admin::add_user(&pool, &n, role, &p))
        .await
        .unwrap()
        .unwrap();
    password
}

/// A JSON call of the API as the UI's script makes it (session cookie and
/// CSRF token): `(status, body)`.
pub async fn call(
    app: &TestApp,
    session: &Browser,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = session
        .request(app, method, path)
        .header("x-csrf-token", &session.csrf);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A UI page's status and HTML, as `session` sees it.
pub async fn page(app: &TestApp, session: &Browser, path: &str) -> (u16, String) {
    let resp = session.page(app, path).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
