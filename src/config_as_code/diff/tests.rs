//! Tests of [`super::plan`] on plain values (a parsed file against a
//! made-up current state).

use super::*;
use crate::config_as_code::file::parse;

fn env(name: &str) -> Option<String> {
    match name {
        "PW" => Some("pw-1".into()),
        "PW2" => Some("pw-2".into()),
        _ => None,
    }
}

const FILE: &str = r#"
[[repositories]]
name = "prod"
url = "/srv/prod"
password_env = "PW"
maintenance_host = "db-1"

[[policies]]
name = "base"
repository = "prod"
selector = { labels = { env = "prod" } }
[[policies.source_groups]]
name = "etc"
includes = ["/etc"]
[[policies.schedules]]
cron_expr = "0 2 * * *"
source_groups = ["etc"]

[[hosts]]
hostname = "db-1"
labels = { env = "prod" }
"#;

fn hosts() -> Vec<CurrentHost> {
    vec![
        CurrentHost {
            id: "h1".into(),
            hostname: "db-1".into(),
            labels: BTreeMap::new(),
        },
        CurrentHost {
            id: "h2".into(),
            hostname: "web".into(),
            labels: BTreeMap::new(),
        },
        CurrentHost {
            id: "h3".into(),
            hostname: "web".into(),
            labels: BTreeMap::new(),
        },
    ]
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("new-{n}")
    }
}

/// The state the database has once `plan`'s writes are made.
fn after(current: &Current, plan: &Plan) -> Current {
    let mut next = current.clone();
    for op in &plan.repositories {
        match op {
            RepositoryOp::Create {
                id,
                desired,
                maintenance_host_id,
            }
            | RepositoryOp::Update {
                id,
                desired,
                maintenance_host_id,
                ..
            } => {
                next.repositories.retain(|r| r.id != *id);
                next.repositories.push(CurrentRepository {
                    id: id.clone(),
                    name: desired.name.clone(),
                    url: desired.url.clone(),
                    username: desired.username.clone(),
                    password: desired.password.clone(),
                    credential: desired.credential.clone(),
                    maintenance_host_id: maintenance_host_id.clone(),
                    host_ids: Vec::new(),
                    own_host_ids: Vec::new(),
                });
            }
            RepositoryOp::Delete { id, .. } => next.repositories.retain(|r| r.id != *id),
        }
    }
    for op in &plan.policies {
        match op {
            PolicyOp::Create(p) => next.policies.push(p.clone()),
            PolicyOp::Update { new, .. } => {
                next.policies.retain(|p| p.id != new.id);
                next.policies.push((**new).clone());
            }
            PolicyOp::Delete(p) => next.policies.retain(|q| q.id != p.id),
        }
    }
    for op in &plan.hosts {
        for h in next.hosts.iter_mut().filter(|h| h.id == op.id) {
            h.labels = op.labels.clone();
        }
    }
    next
}

/// An empty database: everything is created; applied again, nothing
/// changes (idempotence).
#[test]
fn creates_then_nothing() {
    let desired = parse(FILE, &env).unwrap();
    let empty = Current {
        hosts: hosts(),
        ..Current::default()
    };
    let first = plan(&empty, &desired, ids(), 1).unwrap();
    let got: Vec<String> = first.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "create repository prod",
            "create policy base",
            "update host_labels db-1"
        ]
    );
    let PolicyOp::Create(p) = &first.policies[0] else {
        panic!("{:?}", first.policies)
    };
    assert_eq!(p.repository_id.as_deref(), Some("new-1"));
    let RepositoryOp::Create {
        maintenance_host_id,
        ..
    } = &first.repositories[0]
    else {
        panic!()
    };
    assert_eq!(maintenance_host_id.as_deref(), Some("h1"));
    let second = plan(&after(&empty, &first), &desired, ids(), 2).unwrap();
    assert!(second.changes.is_empty(), "{:?}", second.changes);
}

/// Changed fields update; a changed secret updates; a secret the
/// file does not name is kept; what the file lacks is deleted.
#[test]
fn updates_and_deletes() {
    let desired = parse(FILE, &env).unwrap();
    let base = Current {
        hosts: hosts(),
        ..Current::default()
    };
    let state = after(&base, &plan(&base, &desired, ids(), 1).unwrap());

    let changed = parse(&FILE.replace("0 2 * * *", "0 3 * * *"), &env).unwrap();
    let p = plan(&state, &changed, ids(), 2).unwrap();
    assert_eq!(p.changes, [change(Action::Update, Kind::Policy, "base")]);

    let new_password = parse(&FILE.replace("\"PW\"", "\"PW2\""), &env).unwrap();
    let p = plan(&state, &new_password, ids(), 2).unwrap();
    assert_eq!(
        p.changes,
        [change(Action::Update, Kind::Repository, "prod")]
    );

    let no_source = parse(&FILE.replace("password_env = \"PW\"\n", ""), &env).unwrap();
    assert!(plan(&state, &no_source, ids(), 2)
        .unwrap()
        .changes
        .is_empty());

    let only_hosts = parse(
        "[[hosts]]\nhostname = \"db-1\"\nlabels = { env = \"prod\" }\n",
        &env,
    )
    .unwrap();
    let p = plan(&state, &only_hosts, ids(), 2).unwrap();
    assert_eq!(
        p.changes,
        [
            change(Action::Delete, Kind::Repository, "prod"),
            change(Action::Delete, Kind::Policy, "base"),
        ]
    );
}

/// Health checks are part of a policy: adding, changing or dropping
/// one in the file updates the policy; the same list changes nothing.
#[test]
fn health_checks_update_the_policy() {
    let check = "[[policies.health_checks]]\nname = \"ssh\"\ntype = \"tcp\"\n\
                 target = \"127.0.0.1:22\"\ninterval_seconds = 60\ntimeout_seconds = 5\n";
    let with = FILE.replace("\n[[hosts]]", &format!("{check}\n[[hosts]]"));
    let base = Current {
        hosts: hosts(),
        ..Current::default()
    };
    let plain = after(
        &base,
        &plan(&base, &parse(FILE, &env).unwrap(), ids(), 1).unwrap(),
    );
    let added = plan(&plain, &parse(&with, &env).unwrap(), ids(), 2).unwrap();
    assert_eq!(
        added.changes,
        [change(Action::Update, Kind::Policy, "base")]
    );
    let PolicyOp::Update { new, .. } = &added.policies[0] else {
        panic!("{:?}", added.policies)
    };
    assert_eq!(new.health_checks[0].name, "ssh");
    let checked = after(&plain, &added);
    assert!(plan(&checked, &parse(&with, &env).unwrap(), ids(), 3)
        .unwrap()
        .changes
        .is_empty());
    let other = with.replace("interval_seconds = 60", "interval_seconds = 120");
    let changed = plan(&checked, &parse(&other, &env).unwrap(), ids(), 3).unwrap();
    assert_eq!(
        changed.changes,
        [change(Action::Update, Kind::Policy, "base")]
    );
    let dropped = plan(&checked, &parse(FILE, &env).unwrap(), ids(), 3).unwrap();
    let PolicyOp::Update { new, .. } = &dropped.policies[0] else {
        panic!("{:?}", dropped.policies)
    };
    assert!(new.health_checks.is_empty(), "the file is the truth");
}

/// A repository hosts use is not deleted (409 naming them); unknown
/// or ambiguous hosts and unknown repositories name their line; a new
/// repository needs a password source.
#[test]
fn refusals() {
    let desired = parse(FILE, &env).unwrap();
    let base = Current {
        hosts: hosts(),
        ..Current::default()
    };
    let mut state = after(&base, &plan(&base, &desired, ids(), 1).unwrap());
    state.repositories[0].host_ids = vec!["h1".into(), "h2".into()];
    state.repositories[0].own_host_ids = vec!["h1".into()];
    let empty = parse("", &env).unwrap();
    match plan(&state, &empty, ids(), 2).unwrap_err() {
        PlanError::Conflict(m) => assert!(m.contains("h1") && m.contains("prod"), "{m}"),
        other => panic!("{other:?}"),
    }

    let unknown = parse(
        &FILE.replace("hostname = \"db-1\"", "hostname = \"db-9\""),
        &env,
    )
    .unwrap();
    let e = plan(&base, &unknown, ids(), 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 20: hostname: no live host named \"db-9\""
    );
    let twice = parse(
        &FILE.replace("hostname = \"db-1\"", "hostname = \"web\""),
        &env,
    )
    .unwrap();
    let e = plan(&base, &twice, ids(), 1).unwrap_err().to_string();
    assert!(e.contains("2 hosts are named \"web\" (h2, h3)"), "{e}");
    let chosen = parse(
        &FILE.replace("hostname = \"db-1\"", "hostname = \"web\"\nid = \"h3\""),
        &env,
    )
    .unwrap();
    let p = plan(&base, &chosen, ids(), 1).unwrap();
    assert_eq!(p.hosts[0].id, "h3");

    let no_repo = parse(
        &FILE.replace("repository = \"prod\"", "repository = \"x\""),
        &env,
    )
    .unwrap();
    let e = plan(&base, &no_repo, ids(), 1).unwrap_err().to_string();
    assert!(e.starts_with("line 10: repository:"), "{e}");
    let no_pw = parse(&FILE.replace("password_env = \"PW\"\n", ""), &env).unwrap();
    let e = plan(&base, &no_pw, ids(), 1).unwrap_err().to_string();
    assert!(e.starts_with("line 3: password_env:"), "{e}");
}
