//! Configuration as code (issue 12 §6) end to end: `GET /config/export`
//! and `POST /config/apply` over HTTP (roles, dry run, idempotence, the
//! export applied back, errors naming the line with nothing changed, a
//! repository in use refused, `schedule.set` pushed to a connected
//! agent), and the `export` / `apply` commands of the binary, against the
//! database and against a running server (`--server`).

use std::path::Path;
use std::process::Command;

use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::protocol::ServerToAgent;
use serde_json::{json, Value};

use crate::common::agent::{enroll, TestAgent};
use crate::common::api::{assert_error, audit_rows, call, create_host, get, user_with_token};
use crate::common::server::{client, spawn_app, TestApp};

/// A file with a shared repository (its password in `password_file`),
/// a policy on it for `env=prod`, and `web`'s labels.
fn file(password_file: &Path, web: &str, cron: &str) -> String {
    format!(
        r#"[[repositories]]
name = "cfg-prod"
url = "/srv/restic/cfg-prod"
password_file = {password:?}

[[policies]]
name = "cfg-base"
repository = "cfg-prod"
selector = {{ labels = {{ env = "prod" }} }}

[[policies.source_groups]]
name = "etc"
includes = ["/etc"]
retention_policy = {{ keep_daily = 7 }}

[[policies.schedules]]
cron_expr = "{cron}"
source_groups = ["etc"]

[[hosts]]
hostname = "{web}"
labels = {{ env = "prod", role = "web" }}
"#,
        password = password_file.display().to_string()
    )
}

async fn apply(app: &TestApp, token: &str, text: &str, dry: Option<&str>) -> (StatusCode, Value) {
    let path = match dry {
        Some(d) => format!("/config/apply?dry_run={d}"),
        None => "/config/apply".to_owned(),
    };
    let resp = client()
        .post(app.api(&path))
        .bearer_auth(token)
        .header("Content-Type", "application/toml")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn export(app: &TestApp, token: &str) -> (StatusCode, String, String) {
    let resp = client()
        .get(app.api("/config/export"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let media = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, media, resp.text().await.unwrap())
}

fn changes(body: &Value) -> Vec<String> {
    body["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["action"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Policies, repositories and the labels of `host`: what an apply may
/// change, to check that a refused one changed nothing.
async fn state(app: &TestApp, host: &str) -> Value {
    let (_, policies) = get(app, &app.admin_token, "/policies").await;
    let (_, repositories) = get(app, &app.admin_token, "/repositories").await;
    let (_, host) = get(app, &app.admin_token, &format!("/hosts/{host}")).await;
    let strip = |list: &Value, keys: &[&str]| -> Value {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let mut item = item.clone();
                for k in keys {
                    item.as_object_mut().unwrap().remove(*k);
                }
                item
            })
            .collect()
    };
    json!({
        "policies": strip(&policies, &[]),
        "repositories": strip(&repositories, &[]),
        "labels": host["labels"],
    })
}

/// Export needs an operator, apply an admin; a dry run answers the
/// changes and makes none; the apply makes them in one go with one audit
/// row; applying the same file again, or the export, changes nothing;
/// the export holds no secret.
#[actix_web::test]
async fn api_round_trip_dry_run_idempotence_and_roles() {
    let app = spawn_app().await;
    let web = create_host(&app, "cfg-web").await;
    create_host(&app, "cfg-db").await;
    let viewer = user_with_token(&app, "cfgviewer", Role::Viewer, "viewer-password").await;
    let operator = user_with_token(&app, "cfgoperator", Role::Operator, "operator-password").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("repo-password");
    std::fs::write(&secret, "very-secret-repo-password\n").unwrap();
    let text = file(&secret, "cfg-web", "0 2 * * *");

    let (status, body) = apply(&app, &operator, &text, Some("false")).await;
    assert_error(&(status, body), StatusCode::FORBIDDEN, "forbidden");
    let (status, _, _) = export(&app, &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, media, _) = export(&app, &operator).await;
    assert_eq!(status, StatusCode::OK);
    assert!(media.starts_with("application/toml"), "{media}");

    let before = state(&app, &web).await;
    let (status, body) = apply(&app, &app.admin_token, &text, Some("true")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = [
        "create repository cfg-prod",
        "create policy cfg-base",
        "update host_labels cfg-web",
    ];
    assert_eq!(changes(&body), expected);
    assert_eq!(state(&app, &web).await, before, "a dry run changes nothing");
    assert!(audit_rows(&app, "config.apply").await.is_empty());

    let (status, body) = apply(&app, &app.admin_token, &text, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(changes(&body), expected);
    assert_eq!(body["hosts_affected"], 1);
    let audit = audit_rows(&app, "config.apply").await;
    assert_eq!(audit.len(), 1);
    let (_, repos) = get(&app, &app.admin_token, "/repositories").await;
    assert_eq!(repos["items"][0]["name"], "cfg-prod");
    assert_eq!(repos["items"][0]["password_set"], true);
    let (_, config) = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{web}/effective-config"),
    )
    .await;
    assert_eq!(config["policies"], json!(["cfg-base"]));
    assert_eq!(config["source_groups"][0]["origin"], "policy:cfg-base");
    let (_, policies) = get(&app, &app.admin_token, "/policies").await;
    assert_eq!(
        policies["items"][0]["repository_id"],
        repos["items"][0]["id"]
    );

    let (status, body) = apply(&app, &app.admin_token, &text, Some("false")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(changes(&body), Vec::<String>::new(), "idempotent");

    let (status, _, exported) = export(&app, &operator).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!exported.contains("very-secret"), "{exported}");
    assert!(
        exported.contains("# password: stored on the server"),
        "{exported}"
    );
    assert!(exported.contains("cfg-web"), "{exported}");
    let (status, body) = apply(&app, &app.admin_token, &exported, None).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{exported}");
    assert_eq!(changes(&body), Vec::<String>::new(), "{exported}");

    // A changed schedule is one update; a file without the policy deletes it.
    let (_, body) = apply(
        &app,
        &app.admin_token,
        &file(&secret, "cfg-web", "0 3 * * *"),
        None,
    )
    .await;
    assert_eq!(changes(&body), ["update policy cfg-base"]);
    let bare = "[[hosts]]\nhostname = \"cfg-web\"\nlabels = { env = \"prod\", role = \"web\" }\n";
    let (_, body) = apply(&app, &app.admin_token, bare, None).await;
    assert_eq!(
        changes(&body),
        ["delete repository cfg-prod", "delete policy cfg-base"]
    );
    let (_, config) = get(
        &app,
        &app.admin_token,
        &format!("/hosts/{web}/effective-config"),
    )
    .await;
    assert_eq!(config["source_groups"], json!([]));
}

/// Each bad file is a 400 naming its line, and nothing changes: an
/// unknown key, a bad cron expression, a bad label, an unset variable,
/// an unreadable secret file, an unknown host; a bad `dry_run` names it.
#[actix_web::test]
async fn api_errors_name_the_line_and_change_nothing() {
    let app = spawn_app().await;
    let web = create_host(&app, "cfg-err").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "pw-1").unwrap();
    let good = file(&secret, "cfg-err", "0 2 * * *");
    let before = state(&app, &web).await;
    let cases = [
        (
            good.replace("includes = [\"/etc\"]", "includes = [\"/etc\"]\nbogus = 1"),
            14,
            "validation_failed",
            "bogus",
        ),
        (
            good.replace("0 2 * * *", "0 2 * * * *x"),
            17,
            "invalid_cron",
            "cron_expr",
        ),
        (
            good.replace("role = \"web\"", "\"bad key\" = \"web\""),
            22,
            "validation_failed",
            "labels:",
        ),
        (
            good.replace(
                &format!("password_file = {:?}", secret.display().to_string()),
                "password_env = \"CFG_SURELY_UNSET_VARIABLE\"",
            ),
            4,
            "validation_failed",
            "CFG_SURELY_UNSET_VARIABLE is not set",
        ),
        (
            good.replace(
                &secret.display().to_string(),
                &dir.path().join("missing").display().to_string(),
            ),
            4,
            "validation_failed",
            "password_file: cannot read",
        ),
        (
            good.replace("hostname = \"cfg-err\"", "hostname = \"cfg-nowhere\""),
            21,
            "validation_failed",
            "no live host named",
        ),
    ];
    for (text, line, code, words) in cases {
        let got = apply(&app, &app.admin_token, &text, None).await;
        let message = assert_error(&got, StatusCode::BAD_REQUEST, code);
        assert!(message.starts_with(&format!("line {line}: ")), "{message}");
        assert!(message.contains(words), "{message}");
        assert_eq!(state(&app, &web).await, before, "{message}");
    }
    let got = apply(&app, &app.admin_token, &good, Some("maybe")).await;
    let message = assert_error(&got, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(message.starts_with("dry_run:"), "{message}");
    assert!(audit_rows(&app, "config.apply").await.is_empty());
}

/// A repository that hosts use is not deleted by a file that leaves it
/// out: 409 naming the host, and the policy the same file would delete
/// stays.
#[actix_web::test]
async fn api_refuses_to_delete_a_repository_in_use() {
    let app = spawn_app().await;
    let web = create_host(&app, "cfg-used").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "pw-1").unwrap();
    let (status, body) = apply(
        &app,
        &app.admin_token,
        &file(&secret, "cfg-used", "0 2 * * *"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, repos) = get(&app, &app.admin_token, "/repositories").await;
    let repo = repos["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &app,
        &app.admin_token,
        Method::PUT,
        &format!("/hosts/{web}/repository"),
        Some(json!({"repository_id": repo})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = state(&app, &web).await;
    let got = apply(&app, &app.admin_token, "", None).await;
    let message = assert_error(&got, StatusCode::CONFLICT, "conflict");
    assert!(
        message.contains("cfg-prod") && message.contains(&web),
        "{message}"
    );
    assert_eq!(state(&app, &web).await, before);
}

/// A connected agent whose host the file's policy now matches gets the
/// new `schedule.set`, as after a policy PUT.
#[actix_web::test]
async fn api_apply_pushes_schedule_set() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "cfg-live").await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    let (_, set) = agent.hello("cfg-live").await;
    assert!(set.schedules.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "pw-1").unwrap();
    let (status, body) = apply(
        &app,
        &app.admin_token,
        &file(&secret, "cfg-live", "0 2 * * *"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hosts_affected"], 1);
    let (set, _) = agent
        .wait_for(|m| match m {
            ServerToAgent::ScheduleSet(set) => Some(set.clone()),
            _ => None,
        })
        .await;
    assert_eq!(set.schedules.len(), 1);
    assert_eq!(set.schedules[0].cron_expr, "0 2 * * *");
    assert_eq!(set.schedules[0].source_groups[0].includes, ["/etc"]);
}

/// A policy's health checks travel in the file: applied, the matching
/// connected agent gets them in `health.set`; the export writes them and
/// applying it back changes nothing; a bad check is a 400 naming its
/// line; a file without them takes them away.
#[actix_web::test]
async fn api_apply_carries_health_checks() {
    let app = spawn_app().await;
    let enrolled = enroll(&app, "cfg-checks").await;
    let mut agent = TestAgent::connect(&app, &enrolled).await.unwrap();
    let mut hello = crate::common::agent::hello("cfg-checks");
    hello
        .capabilities
        .get_or_insert_with(Vec::new)
        .push(restic_manager::protocol::CAPABILITY_HEALTH.to_owned());
    agent.send(hello).await;
    let health_set = |m: &ServerToAgent| match m {
        ServerToAgent::HealthSet(set) => Some(set.clone()),
        _ => None,
    };
    assert!(agent.wait_for(health_set).await.0.checks.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "pw-1").unwrap();
    let plain = file(&secret, "cfg-checks", "0 2 * * *");
    let with = plain.replace(
        "\n[[hosts]]",
        "\n[[policies.health_checks]]\nname = \"ssh\"\ntype = \"tcp\"\n\
         target = \"127.0.0.1:22\"\ninterval_seconds = 60\ntimeout_seconds = 5\n\n[[hosts]]",
    );

    let (status, body) = apply(&app, &app.admin_token, &with, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (set, _) = agent.wait_for(health_set).await;
    assert_eq!(set.checks.len(), 1, "{set:?}");
    assert_eq!(set.checks[0].name, "ssh");
    assert_eq!(set.checks[0].target, "127.0.0.1:22");
    let (_, policies) = get(&app, &app.admin_token, "/policies").await;
    assert_eq!(policies["items"][0]["health_checks"][0]["name"], "ssh");

    let (status, _, exported) = export(&app, &app.admin_token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        exported.contains("[[policies.health_checks]]")
            && exported.contains("target = \"127.0.0.1:22\""),
        "{exported}"
    );
    let (status, body) = apply(&app, &app.admin_token, &exported, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(changes(&body).is_empty(), "{body}");

    let bad = with.replace("interval_seconds = 60", "interval_seconds = 1");
    let (status, body) = apply(&app, &app.admin_token, &bad, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("line 20: health_checks[0].interval_seconds"),
        "{message}"
    );

    let (status, body) = apply(&app, &app.admin_token, &plain, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(changes(&body), ["update policy cfg-base"]);
    let (set, _) = agent.wait_for(health_set).await;
    assert!(set.checks.is_empty(), "{set:?}");
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_restic-manager"));
    c.env_remove("RESTIC_MANAGER_ADMIN_PASSWORD")
        .env_remove("RESTIC_MANAGER_DATABASE_URL")
        .env_remove("RESTIC_MANAGER_DATA_DIR")
        .env_remove("RESTIC_MANAGER_API_TOKEN")
        .env_remove("CFG_REPO_PW")
        .env("RESTIC_MANAGER_LOG", "warn");
    c
}

/// Runs the binary; returns (success, stdout, stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A file for the CLI: the password in a variable, host `cli-1`.
const CLI_FILE: &str = r#"[[repositories]]
name = "prod"
url = "/srv/restic/prod"
password_env = "CFG_REPO_PW"

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
hostname = "cli-1"
labels = { env = "prod" }
"#;

/// `apply` and `export` against the database: a dry run prints the
/// changes and makes none; apply prints them; again, nothing; the export
/// (no secret in it) applied back changes nothing, even without the
/// variable; bad files are one line on stderr naming the file and line,
/// and change nothing.
#[test]
fn cli_against_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, _, err) = run(bin()
        .args([
            "host",
            "bulk-enroll",
            "--count",
            "2",
            "--hostname-prefix",
            "cli",
            "--output",
        ])
        .arg(dir.path().join("tokens.tsv"))
        .arg("--data-dir")
        .arg(&data));
    assert!(ok, "{err}");
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, CLI_FILE).unwrap();
    let apply = |file: &Path, extra: &[&str], password: Option<&str>| {
        let mut cmd = bin();
        cmd.arg("apply")
            .arg(file)
            .args(extra)
            .arg("--data-dir")
            .arg(&data);
        if let Some(p) = password {
            cmd.env("CFG_REPO_PW", p);
        }
        run(&mut cmd)
    };
    let export = || run(bin().arg("export").arg("--data-dir").arg(&data));
    let (_, empty_export, _) = export();
    let all = "create repository prod\ncreate policy base\nupdate host_labels cli-1\n";

    let (ok, out, err) = apply(&cfg, &["--dry-run"], Some("repo-pw-1"));
    assert!(ok, "{err}");
    assert_eq!(out, all);
    assert!(err.starts_with("dry run: 3 change(s)"), "{err}");
    assert_eq!(export().1, empty_export, "a dry run changes nothing");

    let (ok, out, err) = apply(&cfg, &[], Some("repo-pw-1"));
    assert!(ok, "{err}");
    assert_eq!(out, all);
    let (ok, out, err) = apply(&cfg, &[], Some("repo-pw-1"));
    assert!(ok, "{err}");
    assert_eq!(out, "");
    assert_eq!(err.trim(), "no changes");
    // A new password is an update of the repository.
    let (_, out, _) = apply(&cfg, &["--dry-run"], Some("repo-pw-2"));
    assert_eq!(out, "update repository prod\n");

    let exported = dir.path().join("exported.toml");
    let (ok, _, err) = run(bin()
        .arg("export")
        .arg("--output")
        .arg(&exported)
        .arg("--data-dir")
        .arg(&data));
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(!text.contains("repo-pw-1"), "{text}");
    assert!(
        text.contains("name = \"base\"") && text.contains("cli-1"),
        "{text}"
    );
    let (ok, out, err) = apply(&exported, &[], None);
    assert!(ok, "{err}");
    assert_eq!(out, "", "{text}");

    let cases = [
        (CLI_FILE.replace("[[hosts]]", "[[hostz]]"), 19, "hostz"),
        (CLI_FILE.replace("0 2 * * *", "61 2 * * *"), 16, "cron_expr"),
        (
            CLI_FILE.replace("env = \"prod\" }\n", "\"e v\" = \"prod\" }\n"),
            21,
            "labels:",
        ),
    ];
    let bad = dir.path().join("bad.toml");
    for (text, line, words) in cases {
        std::fs::write(&bad, &text).unwrap();
        let (ok, out, err) = apply(&bad, &[], Some("repo-pw-9"));
        assert!(!ok && out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: {}: line {line}: ", bad.display())),
            "{err}"
        );
        assert!(err.contains(words), "{err}");
    }
    // The variable unset: the line that names it.
    let changed = CLI_FILE.replace("0 2 * * *", "0 5 * * *");
    std::fs::write(&bad, &changed).unwrap();
    let (ok, _, err) = apply(&bad, &[], None);
    assert!(!ok);
    assert!(
        err.contains("line 4: password_env: the environment variable CFG_REPO_PW is not set"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        export().1,
        "nothing changed"
    );
}

/// `--server URL --api-token T`: the same commands through a running
/// server's API; an operator's token cannot apply.
#[actix_web::test]
async fn cli_against_a_running_server() {
    let app = spawn_app().await;
    create_host(&app, "cfg-remote").await;
    let operator = user_with_token(&app, "cfgremoteop", Role::Operator, "operator-password").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "remote-pw").unwrap();
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, file(&secret, "cfg-remote", "0 2 * * *")).unwrap();
    let server = app.url("");
    let remote = |args: Vec<String>, token: String| async move {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_restic-manager"));
        cmd.args(args)
            .env("RESTIC_MANAGER_API_TOKEN", token)
            .env("RESTIC_MANAGER_LOG", "warn");
        let out = cmd.output().await.unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let apply_args = |file: &Path| {
        vec![
            "apply".to_owned(),
            file.display().to_string(),
            "--server".to_owned(),
            server.clone(),
        ]
    };
    let (ok, _, err) = remote(apply_args(&cfg), operator.clone()).await;
    assert!(!ok);
    assert!(err.starts_with("error: ") && err.contains("403"), "{err}");
    let (ok, out, err) = remote(apply_args(&cfg), app.admin_token.clone()).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "create repository cfg-prod\ncreate policy cfg-base\nupdate host_labels cfg-remote\n"
    );
    let (ok, exported, err) = remote(
        vec!["export".into(), "--server".into(), server.clone()],
        operator.clone(),
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        !exported.contains("remote-pw") && exported.contains("cfg-base"),
        "{exported}"
    );
    let back = dir.path().join("back.toml");
    std::fs::write(&back, &exported).unwrap();
    let (ok, out, err) = remote(apply_args(&back), app.admin_token.clone()).await;
    assert!(ok, "{err}");
    assert_eq!(out, "");
    assert_eq!(err.trim(), "no changes");
}
