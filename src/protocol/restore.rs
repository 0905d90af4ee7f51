//! The restore part of `command.run` ([`RestoreSpec`]: what to restore,
//! where, how) and the checks both sides apply to it: the server answers a
//! bad request with 400 naming the field, the agent refuses a bad
//! `command.run` with the same words.
//!
//! A restore from another host's repository carries that repository's
//! settings ([`RestoreSpec::repository`], a [`ConfigUpdate`] whose `Debug`
//! masks the secrets). The server builds them when it sends the job, never
//! stores them with it; the agent keeps them in memory only
//! ([`RestoreSpec::without_repository`] is what it journals).

use serde::{Deserialize, Serialize};

use super::decode::clip;
use super::{ConfigUpdate, RestoreOverwrite};

/// `command.run.restore`: the restore parameters (the snapshot is
/// `command.run.snapshot_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSpec {
    /// Absolute paths inside the snapshot to restore (`--include`); empty
    /// restores the whole snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The absolute folder restored into (`--target`); `/` restores in
    /// place.
    pub target: String,
    /// What to do with files that exist already.
    #[serde(default)]
    pub overwrite: RestoreOverwrite,
    /// Read every restored file back and compare it (`--verify`).
    #[serde(default)]
    pub verify: bool,
    /// The host whose repository holds the snapshot, when it is not the
    /// host that runs the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_host_id: Option<String>,
    /// That host's repository settings (only with `source_host_id`); the
    /// agent keeps them in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<ConfigUpdate>,
}

/// A restore request that must not run; `Display` starts with the field
/// (`"paths[1]: …"`), the way the REST API names fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidRestore {
    /// The field at fault (`target`, `paths[2]`).
    pub field: String,
    /// Why.
    pub reason: String,
}

impl InvalidRestore {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl RestoreSpec {
    /// Checks the target and the paths: the target absolute (`/…`, or a
    /// Windows drive `C:\…`), every path absolute inside the snapshot
    /// (`/…`), none empty, none with a `..` component or a NUL byte.
    pub fn validate(&self) -> Result<(), InvalidRestore> {
        check_target(&self.target)?;
        for (i, path) in self.paths.iter().enumerate() {
            check_path(&format!("paths[{i}]"), path)?;
        }
        Ok(())
    }

    /// The spec without the source repository's settings: what the agent
    /// writes to its journal.
    pub fn without_repository(&self) -> Self {
        Self {
            repository: None,
            ..self.clone()
        }
    }
}

/// The target folder: absolute, no `..`, no NUL.
pub fn check_target(target: &str) -> Result<(), InvalidRestore> {
    let field = "target";
    common_checks(field, target)?;
    let bytes = target.as_bytes();
    let windows_drive = bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && matches!(bytes[2], b'\\' | b'/');
    if !(target.starts_with('/') || windows_drive) {
        return Err(InvalidRestore::new(
            field,
            format!(
                "{:?} is not an absolute path (use \"/\" to restore in place)",
                clip(target)
            ),
        ));
    }
    Ok(())
}

/// One path inside the snapshot: absolute, no `..`, no NUL.
fn check_path(field: &str, path: &str) -> Result<(), InvalidRestore> {
    common_checks(field, path)?;
    if !path.starts_with('/') {
        return Err(InvalidRestore::new(
            field,
            format!(
                "{:?} is not an absolute path inside the snapshot",
                clip(path)
            ),
        ));
    }
    Ok(())
}

fn common_checks(field: &str, text: &str) -> Result<(), InvalidRestore> {
    if text.is_empty() {
        return Err(InvalidRestore::new(field, "must not be empty"));
    }
    if text.contains('\0') {
        return Err(InvalidRestore::new(field, "must not contain a NUL byte"));
    }
    if text.split(['/', '\\']).any(|part| part == "..") {
        return Err(InvalidRestore::new(
            field,
            format!("{:?} must not contain a \"..\" component", clip(text)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(target: &str, paths: &[&str]) -> RestoreSpec {
        RestoreSpec {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            target: target.to_owned(),
            overwrite: RestoreOverwrite::Always,
            verify: false,
            source_host_id: None,
            repository: None,
        }
    }

    /// Absolute targets (Unix, in place, Windows drive) and absolute paths
    /// pass; the rest is refused naming the field.
    #[test]
    fn validation() {
        for target in ["/", "/tmp/restore-1", "C:\\restore", "d:/r"] {
            assert_eq!(spec(target, &["/etc/nginx"]).validate(), Ok(()), "{target}");
        }
        let cases = [
            (
                spec("tmp/r", &[]),
                "target: \"tmp/r\" is not an absolute path",
            ),
            (spec("", &[]), "target: must not be empty"),
            (spec("/tmp/../etc", &[]), "target: \"/tmp/../etc\" must not"),
            (spec("/tmp/a\0b", &[]), "target: must not contain a NUL"),
            (spec("/r", &["/etc", ""]), "paths[1]: must not be empty"),
            (
                spec("/r", &["/etc/../root"]),
                "paths[0]: \"/etc/../root\" must not",
            ),
            (spec("/r", &["/e\0"]), "paths[0]: must not contain a NUL"),
            (
                spec("/r", &["etc"]),
                "paths[0]: \"etc\" is not an absolute path",
            ),
        ];
        for (spec, expected) in cases {
            let error = spec.validate().unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error}");
        }
        // A name that only contains dots is fine.
        assert_eq!(spec("/r..x", &["/a/..b", "/c/.../d"]).validate(), Ok(()));
    }

    /// The wire shape: defaults filled in, the repository masked in
    /// `Debug` and dropped by `without_repository`.
    #[test]
    fn wire_shape_and_secrets() {
        let parsed: RestoreSpec = serde_json::from_str(r#"{"target":"/tmp/r"}"#).unwrap();
        assert_eq!(parsed, spec("/tmp/r", &[]));
        let full: RestoreSpec = serde_json::from_str(
            r#"{"paths":["/etc"],"target":"/","overwrite":"if-newer","verify":true,"source_host_id":"h2","repository":{"repo_url":"/srv/repo","repo_password":"s3cret-pw"}}"#,
        )
        .unwrap();
        assert_eq!(full.overwrite, RestoreOverwrite::IfNewer);
        assert!(!format!("{full:?}").contains("s3cret-pw"));
        let journaled = serde_json::to_string(&full.without_repository()).unwrap();
        assert!(!journaled.contains("s3cret-pw"), "{journaled}");
        assert!(
            journaled.contains("\"source_host_id\":\"h2\""),
            "{journaled}"
        );
        let bad = serde_json::from_str::<RestoreSpec>(r#"{"target":"/","overwrite":"sometimes"}"#);
        assert!(bad.is_err());
    }
}
