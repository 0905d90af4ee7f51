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
//! give the byte offsets, `lines` turns them into line numbers.

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

mod lines;

pub use lines::line_of;
use lines::{key_line, PolicyLines};

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
    /// As `PUT /hosts/{id}/health-checks`' items (`[[policies.health_checks]]`).
    #[serde(default)]
    health_checks: Vec<Spanned<serde_json::Map<String, serde_json::Value>>>,
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
        let check_lines: Vec<usize> = p.health_checks.iter().map(|c| line(c.span())).collect();
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
            p.health_checks
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
        );
        let lines = PolicyLines {
            policy: at,
            name: name_line,
            selector: selector_line,
            options: options_line,
            groups: group_lines,
            schedules: schedule_lines,
            checks: check_lines,
        };
        let policy = request
            .into_policy(String::new(), 0, 0)
            .map_err(|e| FileError::from_api(lines.locate(&e.message), e))?;
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
mod tests;
