//! Tests of [`super::parse`]: good files, and every error naming its line.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn env(name: &str) -> Option<String> {
    (name == "REPO_PROD_PASSWORD").then(|| "s3cret-value".to_owned())
}

const GOOD: &str = r#"
[[repositories]]
name = "prod"
url = "/srv/restic/prod"
password_env = "REPO_PROD_PASSWORD"

[[policies]]
name = "base"
repository = "prod"
selector = { labels = { env = "prod" } }

[[policies.source_groups]]
name = "etc"
includes = ["/etc"]
retention_policy = { keep_daily = 7 }

[[policies.schedules]]
cron_expr = "0 2 * * *"
source_groups = ["etc"]

[[hosts]]
hostname = "web-1"
labels = { env = "prod" }
"#;

/// A good file reads whole: the secret from the variable, the
/// policy validated as the API does, the host's labels.
#[test]
fn a_good_file_reads() {
    let d = parse(GOOD, &env).unwrap();
    assert_eq!(d.repositories.len(), 1);
    let r = &d.repositories[0];
    assert_eq!(r.password.as_ref().unwrap().expose(), "s3cret-value");
    assert_eq!(format!("{r:?}").matches("s3cret").count(), 0);
    let p = &d.policies[0];
    assert_eq!(p.policy.name, "base");
    assert_eq!(p.policy.schedules[0].cron_expr, "0 2 * * *");
    assert_eq!(p.repository, Some((RepositoryRef::Name("prod".into()), 9)));
    assert_eq!(
        d.hosts[0].labels.get("env").map(String::as_str),
        Some("prod")
    );
}

fn error(text: &str) -> FileError {
    parse(text, &env).unwrap_err()
}

/// An unknown key names its line.
#[test]
fn unknown_key_names_the_line() {
    let e = error("[[policies]]\nname = \"a\"\nbogus = 1\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.to_string().starts_with("line 3: "), "{e}");
    assert!(e.message.contains("bogus"), "{e}");
    let e = error(&GOOD.replace("keep_daily", "keep_dayly"));
    assert!(e.message.contains("keep_dayly"), "{e}");
    assert_eq!(e.line, Some(15), "{e}");
}

/// A bad cron expression names the line of `cron_expr`.
#[test]
fn bad_cron_names_the_line() {
    let e = error(&GOOD.replace("0 2 * * *", "0 25 * * *"));
    assert_eq!(e.line, Some(18), "{e}");
    assert_eq!(e.code, "invalid_cron");
    assert!(e.message.starts_with("schedules[0].cron_expr:"), "{e}");
}

/// A bad label key, in a selector or on a host, names its line.
#[test]
fn bad_label_names_the_line() {
    let e = error(&GOOD.replace("{ env = \"prod\" } }", "{ \"bad key\" = \"prod\" } }"));
    assert_eq!(e.line, Some(10), "{e}");
    assert!(e.message.starts_with("selector.labels:"), "{e}");
    let e = error(&GOOD.replace(
        "labels = { env = \"prod\" }\n",
        "labels = { \"a b\" = \"x\" }\n",
    ));
    assert_eq!(e.line, Some(23), "{e}");
    assert!(e.message.starts_with("labels:"), "{e}");
}

/// Selectors and labels under their own `[...]` headers, as exports
/// write them, read too (toml cannot span such tables).
#[test]
fn header_tables_read() {
    let text = GOOD
        .replace(
            "selector = { labels = { env = \"prod\" } }\n",
            "[policies.selector.labels]\nenv = \"prod\"\n",
        )
        .replace(
            "labels = { env = \"prod\" }\n",
            "[hosts.labels]\nenv = \"prod\"\n",
        );
    let d = parse(&text, &env).unwrap();
    assert_eq!(
        d.policies[0]
            .policy
            .selector
            .labels
            .get("env")
            .map(String::as_str),
        Some("prod")
    );
    assert_eq!(
        d.hosts[0].labels.get("env").map(String::as_str),
        Some("prod")
    );
}

/// An unset variable or an unreadable file names the line; a file
/// is read, its line end dropped.
#[test]
fn secrets_name_the_line() {
    let e = parse(GOOD, &no_env).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("REPO_PROD_PASSWORD is not set"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let text = GOOD.replace(
        "password_env = \"REPO_PROD_PASSWORD\"",
        &format!("password_file = {:?}", missing.display().to_string()),
    );
    let e = parse(&text, &no_env).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.starts_with("password_file: cannot read"), "{e}");
    std::fs::write(&missing, "from-a-file\n").unwrap();
    let d = parse(&text, &no_env).unwrap();
    assert_eq!(
        d.repositories[0].password.as_ref().unwrap().expose(),
        "from-a-file"
    );
    let both = GOOD.replace(
        "password_env = \"REPO_PROD_PASSWORD\"",
        "password_env = \"REPO_PROD_PASSWORD\"\npassword_file = \"/x\"",
    );
    assert_eq!(parse(&both, &env).unwrap_err().line, Some(6));
}

/// Names twice, a policy naming a group it lacks, bad TOML: each
/// names its line.
#[test]
fn other_errors_name_the_line() {
    let twice = format!("{GOOD}\n[[hosts]]\nhostname = \"web-1\"\nlabels = {{}}\n");
    assert_eq!(error(&twice).line, Some(26));
    let e = error(&GOOD.replace("source_groups = [\"etc\"]", "source_groups = [\"nope\"]"));
    assert_eq!(e.line, Some(17), "{e}");
    let e = error("[[policies]\n");
    assert_eq!(e.line, Some(1), "{e}");
    let e = error("[[policies]]\nname = \"\"\n");
    assert_eq!(e.line, Some(2), "{e}");
}

/// A policy's health checks read as the API's (`[[policies.health_checks]]`);
/// a bad one names its own table's line, an unknown key its line.
#[test]
fn health_checks_read_and_name_their_line() {
    let checks = "\n[[policies.health_checks]]\nname = \"web\"\ntype = \"http\"\n\
                  target = \"http://127.0.0.1:8080/\"\ninterval_seconds = 60\ntimeout_seconds = 5\n";
    let at = GOOD.find("\n[[hosts]]").unwrap();
    let text = format!("{}{checks}{}", &GOOD[..at], &GOOD[at..]);
    let d = parse(&text, &env).unwrap();
    let check = &d.policies[0].policy.health_checks[0];
    assert_eq!(check.name, "web");
    assert_eq!(check.interval_seconds, 60);
    assert_eq!(check.kind, crate::protocol::HealthCheckType::Http);
    let bad = text.replace("interval_seconds = 60", "interval_seconds = 1");
    let e = error(&bad);
    assert!(
        e.message.starts_with("health_checks[0].interval_seconds"),
        "{e}"
    );
    assert_eq!(e.line, Some(21), "the check's table: {e}");
    let e = error(&text.replace("timeout_seconds", "timeout_secs"));
    assert!(e.message.contains("timeout_secs"), "{e}");
    assert_eq!(e.line, Some(21), "{e}");
}
