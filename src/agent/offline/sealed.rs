//! The repository settings kept across restarts, sealed: so that a
//! backup can run while the server is away even after the agent
//! restarted, the settings of the last `config.update` (URL, password,
//! back-end credentials, hook shell) are written to
//! `<state_dir>/repository.sealed`, encrypted with XChaCha20-Poly1305
//! under a key of the agent's own, `<state_dir>/offline.key` (32 random
//! bytes made on first use). Both files are mode 0600 (on Windows the
//! state directory's ACL that `service install` sets); the password is
//! never written in clear.
//!
//! The file also holds the config version of those settings (the
//! `config.update.version` they came with): sealed with them, so that the
//! agent reports `hello.last_known_config_version` only for settings it
//! really holds, and a lost or unreadable file makes the server send them
//! again.
//!
//! Format: one version byte, the 24-byte nonce, the ciphertext of the
//! settings as JSON; the associated data binds it to the host id, so a
//! file copied from another host does not open.

use std::io;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::agent::config::Secret;
use crate::agent::platform;
use crate::agent::restic::RepoSettings;

/// The sealed settings file under the state directory.
pub const SEALED_FILE: &str = "repository.sealed";
/// The key file under the state directory.
pub const KEY_FILE: &str = "offline.key";

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Why the sealed settings could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// No randomness for a key or nonce.
    #[error("no randomness: {0}")]
    Random(getrandom::Error),
    /// The file does not open with this key (another key, another host,
    /// or damaged).
    #[error("{0}: does not open with this agent's key")]
    Open(PathBuf),
}

/// The settings as sealed (the plain text exists in memory only).
#[derive(Serialize, Deserialize)]
struct Plain {
    url: Option<String>,
    password: Option<String>,
    username: Option<String>,
    credential: Option<String>,
    hook_shell: Option<String>,
    /// The config version they came with (absent in files of agents
    /// before config versions, and after a server without them).
    #[serde(default)]
    config_version: Option<u64>,
}

/// Settings read back from the file, with their config version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The repository settings.
    pub settings: RepoSettings,
    /// The `config.update.version` they came with, if any.
    pub config_version: Option<u64>,
}

/// The sealed settings of one state directory.
#[derive(Debug, Clone)]
pub struct SealedSettings {
    file: PathBuf,
    key_file: PathBuf,
    /// The associated data: the host id.
    host_id: String,
}

impl SealedSettings {
    /// The sealed settings of `state_dir` for `host_id`.
    pub fn new(state_dir: &Path, host_id: &str) -> Self {
        Self {
            file: state_dir.join(SEALED_FILE),
            key_file: state_dir.join(KEY_FILE),
            host_id: host_id.to_owned(),
        }
    }

    /// Seals `settings` and their `config_version` to the file
    /// (atomically), making the key first if there is none.
    pub fn save(
        &self,
        settings: &RepoSettings,
        config_version: Option<u64>,
    ) -> Result<(), SealError> {
        let key = self.key(true)?;
        let plain = Plain {
            url: settings.url.as_ref().map(|s| s.expose().to_owned()),
            password: settings.password.as_ref().map(|s| s.expose().to_owned()),
            username: settings.username.clone(),
            credential: settings.credential.as_ref().map(|s| s.expose().to_owned()),
            hook_shell: settings.hook_shell.clone(),
            config_version,
        };
        let json = serde_json::to_vec(&plain).map_err(|e| self.io(&self.file, e.into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let ciphertext = cipher(&key)
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &json,
                    aad: self.host_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open(self.file.clone()))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        platform::write_private_file_atomically(&self.file, &sealed)
            .map_err(|e| self.io(&self.file, e))
    }

    /// The sealed settings, `None` when none were saved.
    pub fn load(&self) -> Result<Option<Kept>, SealError> {
        let sealed = match std::fs::read(&self.file) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(self.io(&self.file, err)),
        };
        let key = self.key(false)?;
        let open_error = || SealError::Open(self.file.clone());
        let Some((&VERSION, rest)) = sealed.split_first() else {
            return Err(open_error());
        };
        if rest.len() < NONCE_LEN {
            return Err(open_error());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| open_error())?;
        let json = cipher(&key)
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: self.host_id.as_bytes(),
                },
            )
            .map_err(|_| open_error())?;
        let plain: Plain = serde_json::from_slice(&json).map_err(|_| open_error())?;
        Ok(Some(Kept {
            settings: RepoSettings {
                url: plain.url.map(Secret::new),
                password: plain.password.map(Secret::new),
                username: plain.username,
                credential: plain.credential.map(Secret::new),
                hook_shell: plain.hook_shell,
            },
            config_version: plain.config_version,
        }))
    }

    /// The key, made (and written, 0600) when `create` and there is none.
    fn key(&self, create: bool) -> Result<[u8; KEY_LEN], SealError> {
        match std::fs::read(&self.key_file) {
            Ok(bytes) => bytes
                .try_into()
                .map_err(|_| SealError::Open(self.key_file.clone())),
            Err(err) if err.kind() == io::ErrorKind::NotFound && create => {
                let mut key = [0u8; KEY_LEN];
                getrandom::fill(&mut key).map_err(SealError::Random)?;
                platform::write_private_file_atomically(&self.key_file, &key)
                    .map_err(|e| self.io(&self.key_file, e))?;
                Ok(key)
            }
            Err(err) => Err(self.io(&self.key_file, err)),
        }
    }

    fn io(&self, path: &Path, source: io::Error) -> SealError {
        SealError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

fn cipher(key: &[u8; KEY_LEN]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConfigUpdate;

    fn settings() -> RepoSettings {
        let mut repo = RepoSettings::default();
        repo.apply(&ConfigUpdate {
            repo_url: Some("rest:https://backup.example/web".to_owned()),
            repo_password: Some("correct horse battery".to_owned()),
            repo_username: Some(Some("web-01".to_owned())),
            repo_credential: Some(Some("s3cr3t-credential".to_owned())),
            hook_shell: Some(Some("/bin/bash".to_owned())),
            version: Some(4),
        });
        repo
    }

    /// Settings come back equal after a "restart"; the file holds no
    /// secret in clear and both files are 0600; another host id (or a
    /// damaged file) does not open.
    #[test]
    fn sealed_settings_round_trip_and_stay_secret() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = SealedSettings::new(dir.path(), "host-1");
        assert!(sealed.load().unwrap().is_none());
        sealed.save(&settings(), Some(4)).unwrap();
        let again = SealedSettings::new(dir.path(), "host-1");
        assert_eq!(
            again.load().unwrap(),
            Some(Kept {
                settings: settings(),
                config_version: Some(4),
            })
        );

        let bytes = std::fs::read(dir.path().join(SEALED_FILE)).unwrap();
        for secret in [
            "correct horse battery",
            "s3cr3t-credential",
            "backup.example",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in clear"
            );
        }
        #[cfg(unix)]
        for file in [SEALED_FILE, KEY_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }

        let other = SealedSettings::new(dir.path(), "host-2");
        assert!(matches!(other.load(), Err(SealError::Open(_))));
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        std::fs::write(dir.path().join(SEALED_FILE), damaged).unwrap();
        assert!(matches!(again.load(), Err(SealError::Open(_))));
    }
}
