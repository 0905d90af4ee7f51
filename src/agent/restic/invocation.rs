//! One restic run as a value ([`Invocation`]: program, arguments,
//! environment) and the repository environment every run gets: URL and
//! password, backend credentials per scheme (never argv), the cache folder,
//! and the inherited variables that could redirect restic scrubbed.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use super::command::{BuildError, ResticHost};
use super::{RepoSettings, ResticVersion};
use crate::agent::config::Secret;

/// Progress frames restic prints per second with `--json` (`RESTIC_PROGRESS_FPS`):
/// matched to the at-most-2-per-second `job.progress` rate.
pub const PROGRESS_FPS: &str = "2";

/// Environment variables removed from restic's environment: inherited from
/// the agent's own, they could point restic at another repository or
/// password source than the one the server configured.
pub(super) const SCRUBBED_ENV: &[&str] = &[
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_KEY_HINT",
    "RESTIC_REST_USERNAME",
    "RESTIC_REST_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "B2_ACCOUNT_ID",
    "B2_ACCOUNT_KEY",
    "AZURE_ACCOUNT_NAME",
    "AZURE_ACCOUNT_KEY",
];

/// One restic run: program, arguments (never a secret) and environment
/// (credentials). `Debug` shows the variable names, not their values.
#[derive(Clone)]
pub struct Invocation {
    /// The restic executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it (values may be secrets).
    pub env: Vec<(&'static str, Secret)>,
    /// Variables removed from the inherited environment.
    pub env_remove: &'static [&'static str],
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Invocation")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &names)
            .finish()
    }
}

impl Invocation {
    /// A `tokio::process::Command` for this run (stdio not yet set).
    pub fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args);
        for name in self.env_remove {
            command.env_remove(name);
        }
        for (name, value) in &self.env {
            command.env(name, OsString::from(value.expose()));
        }
        command
    }

    /// The same restic on the same repository, with the same credentials,
    /// running `args` instead (the repository is named only in the
    /// environment, never in the arguments).
    pub fn with_args(&self, args: Vec<String>) -> Invocation {
        Invocation {
            program: self.program.clone(),
            args,
            env: self.env.clone(),
            env_remove: self.env_remove,
        }
    }

    /// The value of an environment variable of this run (tests, checks).
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.expose())
    }
}

impl ResticHost {
    /// Adds the repository environment to `args`.
    pub(super) fn with_repo(
        &self,
        args: Vec<String>,
        repo: &RepoSettings,
    ) -> Result<Invocation, BuildError> {
        let (Some(url), Some(password)) = (&repo.url, &repo.password) else {
            return Err(BuildError::NotConfigured);
        };
        let mut env = vec![
            ("RESTIC_PASSWORD", password.clone()),
            ("RESTIC_PROGRESS_FPS", Secret::new(PROGRESS_FPS)),
            (
                "RESTIC_CACHE_DIR",
                Secret::new(self.cache_dir.to_string_lossy()),
            ),
        ];
        let mut repository = url.clone();
        let backend = url.expose().split(':').next().unwrap_or_default();
        if let (Some(username), Some(credential)) = (&repo.username, &repo.credential) {
            let credential = credential.clone();
            let username = Secret::new(username.as_str());
            match backend {
                "rest" => {
                    let env_supported = self
                        .version
                        .as_ref()
                        .is_none_or(ResticVersion::has_rest_credential_env);
                    if env_supported {
                        env.push(("RESTIC_REST_USERNAME", username));
                        env.push(("RESTIC_REST_PASSWORD", credential));
                    } else {
                        // restic < 0.17 reads REST credentials only from the
                        // URL; it goes through the environment, never argv.
                        repository = Secret::new(rest_url_with_credentials(
                            url.expose(),
                            username.expose(),
                            credential.expose(),
                        ));
                    }
                }
                "s3" => {
                    env.push(("AWS_ACCESS_KEY_ID", username));
                    env.push(("AWS_SECRET_ACCESS_KEY", credential));
                }
                "b2" => {
                    env.push(("B2_ACCOUNT_ID", username));
                    env.push(("B2_ACCOUNT_KEY", credential));
                }
                "azure" => {
                    env.push(("AZURE_ACCOUNT_NAME", username));
                    env.push(("AZURE_ACCOUNT_KEY", credential));
                }
                _ => {}
            }
        }
        env.insert(0, ("RESTIC_REPOSITORY", repository));
        Ok(Invocation {
            program: self.binary.clone(),
            args,
            env,
            env_remove: SCRUBBED_ENV,
        })
    }
}

/// `rest:https://host/path` with `user:password@` inserted into the
/// authority (percent-encoded), for restic < 0.17.
fn rest_url_with_credentials(url: &str, username: &str, password: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find('/').unwrap_or(rest.len());
    if rest[..authority_len].contains('@') {
        return url.to_owned(); // the URL already carries credentials
    }
    format!(
        "{}{}:{}@{}",
        &url[..authority_start],
        percent_encode_userinfo(username),
        percent_encode_userinfo(password),
        rest
    )
}

fn percent_encode_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse_version;
    use super::super::settings::tests::repo;
    use super::*;
    use crate::protocol::{CommandRun, ConfigUpdate, JobKind};

    fn host() -> ResticHost {
        ResticHost::new("/usr/bin/restic", Path::new("/var/lib/rm"))
    }

    fn run(kind: JobKind) -> CommandRun {
        CommandRun {
            job_id: "j1".to_owned(),
            kind,
            args: Vec::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            tag: None,
            retention_policy: None,
            snapshot_id: None,
            restore: None,
            drill: None,
            dump: None,
        }
    }

    /// Debug of the settings and of an invocation shows no secret.
    #[test]
    fn debug_hides_secrets() {
        let mut settings = repo();
        settings.apply(&ConfigUpdate {
            repo_url: Some("rest:https://u:urlpass@h/r".to_owned()),
            repo_credential: Some(Some("cred-secret".to_owned())),
            repo_username: Some(Some("u".to_owned())),
            ..ConfigUpdate::default()
        });
        let invocation = host().job(&run(JobKind::Check), &settings).unwrap();
        let shown = format!("{settings:?} {invocation:?}");
        for secret in ["pw-123", "urlpass", "cred-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("RESTIC_PASSWORD"));
    }

    /// REST credentials go to RESTIC_REST_* on restic ≥ 0.17 (or unknown),
    /// into the URL (environment only) before; S3 keys to AWS_*.
    #[test]
    fn backend_credentials() {
        let mut settings = repo();
        settings.apply(&ConfigUpdate {
            repo_url: Some("rest:https://backup.example:8000/web".to_owned()),
            repo_username: Some(Some("alice".to_owned())),
            repo_credential: Some(Some("p@ss:w/rd".to_owned())),
            ..ConfigUpdate::default()
        });
        let mut restic = host();
        let modern = restic.job(&run(JobKind::Check), &settings).unwrap();
        assert_eq!(modern.env_value("RESTIC_REST_USERNAME"), Some("alice"));
        assert_eq!(modern.env_value("RESTIC_REST_PASSWORD"), Some("p@ss:w/rd"));
        assert_eq!(
            modern.env_value("RESTIC_REPOSITORY"),
            Some("rest:https://backup.example:8000/web")
        );

        restic.version = parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64");
        let old = restic.job(&run(JobKind::Check), &settings).unwrap();
        assert_eq!(old.env_value("RESTIC_REST_USERNAME"), None);
        assert_eq!(
            old.env_value("RESTIC_REPOSITORY"),
            Some("rest:https://alice:p%40ss%3Aw%2Frd@backup.example:8000/web")
        );
        assert!(!old.args.iter().any(|arg| arg.contains("alice")));

        settings.apply(&ConfigUpdate {
            repo_url: Some("s3:s3.amazonaws.com/bucket".to_owned()),
            ..ConfigUpdate::default()
        });
        let s3 = restic.job(&run(JobKind::Check), &settings).unwrap();
        assert_eq!(s3.env_value("AWS_ACCESS_KEY_ID"), Some("alice"));
        assert_eq!(s3.env_value("AWS_SECRET_ACCESS_KEY"), Some("p@ss:w/rd"));
    }
}
