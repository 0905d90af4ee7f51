//! The repository settings `config.update` pushes (URL, password,
//! back-end credential, hook shell), kept with secrets hidden from `Debug`.

use std::fmt;

use crate::agent::config::Secret;
use crate::protocol::{apply_patch, ConfigUpdate};

/// The repository settings last pushed by `config.update`. Kept in memory
/// only: the server re-sends them after every `hello`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepoSettings {
    /// `RESTIC_REPOSITORY` (may hold REST credentials for restic < 0.17).
    pub url: Option<Secret>,
    /// `RESTIC_PASSWORD`.
    pub password: Option<Secret>,
    /// REST user name, S3 access key id, B2 account id, Azure account name.
    pub username: Option<String>,
    /// REST password, S3 secret key, B2 / Azure account key.
    pub credential: Option<Secret>,
    /// The shell hooks run under.
    pub hook_shell: Option<String>,
}

impl fmt::Debug for RepoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoSettings")
            .field(
                "url",
                &self
                    .url
                    .as_ref()
                    .map(|url| crate::redact::url(url.expose())),
            )
            .field("password", &self.password)
            .field("username", &self.username)
            .field("credential", &self.credential)
            .field("hook_shell", &self.hook_shell)
            .finish()
    }
}

impl RepoSettings {
    /// Applies a `config.update`: an absent or empty field leaves the
    /// current value as is; an explicit `null` (user name, credential,
    /// hook shell) clears it.
    pub fn apply(&mut self, update: &ConfigUpdate) {
        let set = |value: &Option<String>| value.clone().map(Some);
        apply_patch(&mut self.url, set(&update.repo_url).as_ref(), Secret::new);
        apply_patch(
            &mut self.password,
            set(&update.repo_password).as_ref(),
            Secret::new,
        );
        apply_patch(
            &mut self.username,
            update.repo_username.as_ref(),
            std::convert::identity,
        );
        apply_patch(
            &mut self.credential,
            update.repo_credential.as_ref(),
            Secret::new,
        );
        apply_patch(
            &mut self.hook_shell,
            update.hook_shell.as_ref(),
            std::convert::identity,
        );
    }

    /// Whether restic can be pointed at the repository (URL and password).
    pub fn is_configured(&self) -> bool {
        self.url.is_some() && self.password.is_some()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Settings of a local test repository.
    pub(in crate::agent::restic) fn repo() -> RepoSettings {
        let mut repo = RepoSettings::default();
        repo.apply(&ConfigUpdate {
            repo_url: Some("/srv/restic-test/repo".to_owned()),
            repo_password: Some("pw-123".to_owned()),
            ..ConfigUpdate::default()
        });
        repo
    }

    /// `config.update` fields that are absent or empty leave the value as is.
    #[test]
    fn config_update_merges() {
        let mut settings = repo();
        settings.apply(&ConfigUpdate {
            repo_url: Some(String::new()),
            repo_password: None,
            repo_username: Some(Some("alice".to_owned())),
            repo_credential: Some(Some("cred".to_owned())),
            hook_shell: Some(Some("/bin/bash".to_owned())),
            version: Some(2),
        });
        assert_eq!(
            settings.url.as_ref().unwrap().expose(),
            "/srv/restic-test/repo"
        );
        assert_eq!(settings.password.as_ref().unwrap().expose(), "pw-123");
        assert_eq!(settings.username.as_deref(), Some("alice"));
        assert_eq!(settings.credential.as_ref().unwrap().expose(), "cred");
        assert_eq!(settings.hook_shell.as_deref(), Some("/bin/bash"));
        assert!(settings.is_configured());
        assert!(!RepoSettings::default().is_configured());
    }

    /// An explicit `null` clears the user name, credential and hook shell;
    /// the URL and password stay.
    #[test]
    fn config_update_null_clears() {
        let mut settings = repo();
        settings.apply(&ConfigUpdate {
            repo_username: Some(Some("alice".to_owned())),
            repo_credential: Some(Some("cred".to_owned())),
            hook_shell: Some(Some("/bin/bash".to_owned())),
            ..ConfigUpdate::default()
        });
        let cleared: ConfigUpdate = serde_json::from_str(
            r#"{"repo_username":null,"repo_credential":null,"hook_shell":null,"version":3}"#,
        )
        .unwrap();
        settings.apply(&cleared);
        assert_eq!(settings.username, None);
        assert!(settings.credential.is_none());
        assert_eq!(settings.hook_shell, None);
        assert!(settings.is_configured(), "{settings:?}");
    }
}
