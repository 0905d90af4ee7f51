//! The configuration file's format and its reading: TOML with
//! `[[repositories]]`, `[[policies]]` (with `[[policies.source_groups]]`
//! and `[[policies.schedules]]`) and `[[hosts]]`, every table refusing an
//! unknown key. [`parse`] checks every value with the REST API's own rules
//! (a policy is a `PolicyRequest`, a repository's URL and secrets pass the
//! API's checks, labels the hosts' rules) and resolves the secret
//! references (`password_env`, `password_file`, `credential_env`,
//! `credential_file`), so that a file that parses can only fail to apply
//! for what the database says (a host that does not exist, a repository
//! still in use, a source group name taken).
//!
//! Every error names the line it is about ([`FileError`]): toml's spans
//! give the byte offsets, [`line_of`] turns them into line numbers.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::http::api::{
    check_repository_name, check_secret, check_url, validate_labels, GroupRequest, PolicyRequest,
    ScheduleRequest,
};
use crate::http::error::ApiError;
use crate::store::policies::Policy;

/// Most bytes of a configuration file.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// A file that cannot be applied, and the line it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", .line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct FileError {
    /// 1-based; `None` when the error is about the whole file.
    pub line: Option<usize>,
    /// The API's error code (`validation_failed`, `invalid_cron`).
    pub code: &'static str,
    pub message: String,
}

impl FileError {
    /// A `validation_failed` error at `line`.
    pub fn at(line: usize, message: impl Into<String>) -> Self {
        FileError {
            line: Some(line),
            code: "validation_failed",
            message: message.into(),
        }
    }

    fn from_api(line: usize, e: ApiError) -> Self {
        FileError {
            line: Some(line),
            code: e.code,
            message: e.message,
        }
    }
}

/// A secret read from where the file says; `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value, to seal or compare; never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A shared repository as the file wants it.
#[derive(Debug, Clone)]
pub struct DesiredRepository {
    /// The line of `name`.
    pub line: usize,
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    /// `None`: the file names no source, the stored password is kept.
    pub password: Option<Secret>,
    /// `None`: the stored credential is kept.
    pub credential: Option<Secret>,
    /// The hostname of the host that runs maintenance, and its line.
    pub maintenance_host: Option<(String, usize)>,
}

/// How a policy names its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryRef {
    /// A shared repository of the file, by name.
    Name(String),
    /// Any repository of the server, by id.
    Id(String),
}

/// A policy as the file wants it: validated as the API validates a
/// `PolicyRequest` (its id and times are filled in when applied).
#[derive(Debug, Clone)]
pub struct DesiredPolicy {
    /// The line of `name`.
    pub line: usize,
    pub policy: Policy,
    /// The repository and the line that names it.
    pub repository: Option<(RepositoryRef, usize)>,
}

/// A host's labels as the file wants them.
#[derive(Debug, Clone)]
pub struct DesiredHost {
    /// The line of `hostname`.
    pub line: usize,
    pub hostname: String,
    /// Picks one of several hosts of one hostname.
    pub id: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A parsed, checked file with its secrets read.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub repositories: Vec<DesiredRepository>,
    pub policies: Vec<DesiredPolicy>,
    pub hosts: Vec<DesiredHost>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    repositories: Vec<Spanned<RawRepository>>,
    #[serde(default)]
    policies: Vec<Spanned<RawPolicy>>,
    #[serde(default)]
    hosts: Vec<Spanned<RawHost>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    name: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    username: Option<Spanned<String>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    credential_env: Option<Spanned<String>>,
    #[serde(default)]
    credential_file: Option<Spanned<String>>,
    #[serde(default)]
    maintenance_host: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    cron_expr: Spanned<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    source_groups: Vec<String>,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Spanned<String>,
    #[serde(default)]
    // Not `Spanned`: toml 0.8 cannot span a table written under its own
    // `[policies.selector]` header (as exports write it); see `key_line`.
    selector: Option<RawSelector>,
    #[serde(default)]
    source_groups: Vec<Spanned<GroupRequest>>,
    #[serde(default)]
    schedules: Vec<Spanned<RawSchedule>>,
    /// A shared repository of the file, by name.
    #[serde(default)]
    repository: Option<Spanned<String>>,
    /// Any repository, by id (exports write it for a private one).
    #[serde(default)]
    repository_id: Option<Spanned<String>>,
    #[serde(default)]
    options: Option<Spanned<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    hostname: Spanned<String>,
    #[serde(default)]
    id: Option<String>,
    // Not `Spanned`, as `RawPolicy::selector`: `[hosts.labels]` headers.
    labels: BTreeMap<String, String>,
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line where `key` is set inside the table at `span` (`key = ...` or
/// a `[...key]` header); `None` when the table's span does not reach it.
fn key_line(text: &str, span: Range<usize>, key: &str) -> Option<usize> {
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let mut offset = start;
    for l in text[start..end].split_inclusive('\n') {
        let t = l.trim_start();
        let assigned = t
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        let header = t.starts_with('[')
            && t.trim_end()
                .trim_end_matches(']')
                .ends_with(&format!(".{key}"));
        if assigned || header {
            return Some(line_of(text, offset));
        }
        offset += l.len();
    }
    None
}

/// Reads a configuration file: every table checked, every secret read
/// (`env` looks up a variable; files are read from this machine).
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Desired, FileError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(FileError {
            line: None,
            code: "validation_failed",
            message: format!("the file is larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    let raw: RawFile = toml::from_str(text).map_err(|e| FileError {
        line: e.span().map(|s| line_of(text, s.start)),
        code: "validation_failed",
        message: e.message().trim().to_owned(),
    })?;
    let line = |span: Range<usize>| line_of(text, span.start);
    let mut desired = Desired::default();

    let mut names = HashSet::new();
    for entry in raw.repositories {
        let r = entry.into_inner();
        let name_line = line(r.name.span());
        let name = check_repository_name(r.name.get_ref())
            .map_err(|e| FileError::from_api(name_line, e))?;
        if !names.insert(name.clone()) {
            return Err(FileError::at(
                name_line,
                format!("name: a repository named {name:?} appears twice in this file"),
            ));
        }
        let url = r.url.get_ref().trim().to_owned();
        check_url(&url).map_err(|e| FileError::from_api(line(r.url.span()), e))?;
        let username = match r.username {
            Some(u) => {
                check_secret("username", Some(u.get_ref()))
                    .map_err(|e| FileError::from_api(line(u.span()), e))?;
                Some(u.into_inner())
            }
            None => None,
        };
        let password = secret(text, env, "password", r.password_env, r.password_file)?;
        let credential = secret(text, env, "credential", r.credential_env, r.credential_file)?;
        let maintenance_host = r.maintenance_host.map(|h| {
            let l = line(h.span());
            (h.into_inner().trim().to_owned(), l)
        });
        desired.repositories.push(DesiredRepository {
            line: name_line,
            name,
            url,
            username,
            password,
            credential,
            maintenance_host,
        });
    }

    let mut names = HashSet::new();
    for entry in raw.policies {
        let entry_span = entry.span();
        let p = entry.into_inner();
        let name_line = line(p.name.span());
        // Errors about the policy as a whole name the line of its name.
        let at = name_line;
        let selector_line = key_line(text, entry_span, "selector").unwrap_or(at);
        let group_lines: Vec<usize> = p.source_groups.iter().map(|g| line(g.span())).collect();
        let schedule_lines: Vec<(usize, usize, Option<usize>)> = p
            .schedules
            .iter()
            .map(|s| {
                let s_ref = s.get_ref();
                (
                    line(s.span()),
                    line(s_ref.cron_expr.span()),
                    s_ref.kind.as_ref().map(|k| line(k.span())),
                )
            })
            .collect();
        let options_line = p.options.as_ref().map_or(at, |o| line(o.span()));
        let repository = match (p.repository, p.repository_id) {
            (Some(_), Some(id)) => {
                return Err(FileError::at(
                    line(id.span()),
                    "repository_id: give repository (a shared repository's name) or repository_id, not both",
                ))
            }
            (Some(name), None) => {
                let l = line(name.span());
                Some((RepositoryRef::Name(name.into_inner().trim().to_owned()), l))
            }
            (None, Some(id)) => {
                let l = line(id.span());
                Some((RepositoryRef::Id(id.into_inner().trim().to_owned()), l))
            }
            (None, None) => None,
        };
        let request = PolicyRequest::from_parts(
            p.name.into_inner(),
            p.selector.map(|s| s.labels).unwrap_or_default(),
            p.source_groups
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            p.schedules
                .into_iter()
                .map(|s| {
                    let s = s.into_inner();
                    ScheduleRequest::from_parts(
                        s.cron_expr.into_inner(),
                        s.enabled,
                        s.kind.map(Spanned::into_inner),
                        s.source_groups,
                    )
                })
                .collect(),
            p.options.map(Spanned::into_inner),
        );
        let policy = request.into_policy(String::new(), 0, 0).map_err(|e| {
            let l = locate(
                &e.message,
                at,
                name_line,
                selector_line,
                options_line,
                &group_lines,
                &schedule_lines,
            );
            FileError::from_api(l, e)
        })?;
        if !names.insert(policy.name.clone()) {
            return Err(FileError::at(
                name_line,
                format!(
                    "name: a policy named {:?} appears twice in this file",
                    policy.name
                ),
            ));
        }
        desired.policies.push(DesiredPolicy {
            line: at,
            policy,
            repository,
        });
    }

    let mut hosts = HashSet::new();
    for entry in raw.hosts {
        let entry_span = entry.span();
        let h = entry.into_inner();
        let at = line(h.hostname.span());
        let hostname = h.hostname.get_ref().trim().to_owned();
        if hostname.is_empty() {
            return Err(FileError::at(at, "hostname: must not be empty"));
        }
        let labels_line = key_line(text, entry_span, "labels").unwrap_or(at);
        let labels = h.labels;
        validate_labels(&labels).map_err(|e| FileError::from_api(labels_line, e))?;
        let id = h.id.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty());
        if !hosts.insert((hostname.clone(), id.clone())) {
            return Err(FileError::at(
                at,
                format!("hostname: host {hostname:?} appears twice in this file"),
            ));
        }
        desired.hosts.push(DesiredHost {
            line: at,
            hostname,
            id,
            labels,
        });
    }
    Ok(desired)
}

/// The line a policy's validation error is about, from the field its
/// message starts with (`schedules[1].cron_expr: …`).
fn locate(
    message: &str,
    policy: usize,
    name: usize,
    selector: usize,
    options: usize,
    groups: &[usize],
    schedules: &[(usize, usize, Option<usize>)],
) -> usize {
    let field = message.split(':').next().unwrap_or_default();
    let index = |prefix: &str| -> Option<(usize, &str)> {
        let rest = field.strip_prefix(prefix)?;
        let (i, tail) = rest.split_once(']')?;
        Some((i.parse().ok()?, tail.trim_start_matches('.')))
    };
    if let Some((i, _)) = index("source_groups[") {
        return groups.get(i).copied().unwrap_or(policy);
    }
    if let Some((i, tail)) = index("schedules[") {
        return match schedules.get(i) {
            Some((_, cron, _)) if tail == "cron_expr" => *cron,
            Some((_, _, Some(kind))) if tail == "kind" => *kind,
            Some((at, _, _)) => *at,
            None => policy,
        };
    }
    match field {
        "name" => name,
        f if f.starts_with("selector") => selector,
        "options" => options,
        _ => policy,
    }
}

/// Reads the secret a repository names, from a variable or a file (at
/// most one of the two).
fn secret(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    what: &str,
    from_env: Option<Spanned<String>>,
    from_file: Option<Spanned<String>>,
) -> Result<Option<Secret>, FileError> {
    let value = match (from_env, from_file) {
        (Some(_), Some(file)) => {
            return Err(FileError::at(
                line_of(text, file.span().start),
                format!("{what}_file: give {what}_env or {what}_file, not both"),
            ))
        }
        (None, None) => return Ok(None),
        (Some(var), None) => {
            let at = line_of(text, var.span().start);
            let name = var.get_ref().trim();
            if name.is_empty() {
                return Err(FileError::at(
                    at,
                    format!("{what}_env: name an environment variable"),
                ));
            }
            match env(name) {
                Some(v) if !v.is_empty() => (v, at),
                Some(_) => {
                    return Err(FileError::at(
                        at,
                        format!("{what}_env: the environment variable {name} is empty"),
                    ))
                }
                None => {
                    return Err(FileError::at(
                        at,
                        format!("{what}_env: the environment variable {name} is not set"),
                    ))
                }
            }
        }
        (None, Some(file)) => {
            let at = line_of(text, file.span().start);
            let path = Path::new(file.get_ref().trim());
            let read = std::fs::read_to_string(path).map_err(|e| {
                FileError::at(
                    at,
                    format!("{what}_file: cannot read {}: {e}", path.display()),
                )
            })?;
            let v = read.trim_end_matches(['\r', '\n']).to_owned();
            if v.is_empty() {
                return Err(FileError::at(
                    at,
                    format!("{what}_file: {} is empty", path.display()),
                ));
            }
            (v, at)
        }
    };
    let (value, at) = value;
    check_secret(what, Some(&value)).map_err(|e| FileError::from_api(at, e))?;
    Ok(Some(Secret::new(value)))
}

#[cfg(test)]
mod tests {
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
}
