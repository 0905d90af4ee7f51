//! The server's key file: 32 random bytes created once with mode 0600
//! (unix), loaded with size validation on every later start, and never
//! overwritten ([`SecretKey`]); the AEAD built from it for sealing.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305};

use super::{CryptoError, KEY_LEN};

/// The 32-byte key that seals every secret at rest.
///
/// `Debug` never shows the bytes. The bytes are overwritten with zeros on
/// drop; without the `zeroize` crate this is best effort (the write is kept
/// alive with [`std::hint::black_box`], and copies the cipher makes
/// internally while sealing are not covered).
#[derive(Clone)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps raw key bytes (tests, or a key obtained another way).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Generates a new random key (not written anywhere).
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(CryptoError::Random)?;
        Ok(Self(bytes))
    }

    /// Loads the key file at `path`, which must exist and hold exactly
    /// [`KEY_LEN`] bytes.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let file = File::open(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                CryptoError::KeyFileMissing {
                    path: path.to_path_buf(),
                }
            } else {
                CryptoError::KeyFileRead {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let read_err = |source| CryptoError::KeyFileRead {
            path: path.to_path_buf(),
            source,
        };
        let found = file.metadata().map_err(read_err)?.len();
        warn_if_readable_by_others(path, &file);

        // Read at most one byte more than a key, so a huge file at the key
        // path is rejected without being read into memory.
        let mut buf = Vec::with_capacity(KEY_LEN + 1);
        file.take(KEY_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        let bytes: [u8; KEY_LEN] = match buf.as_slice().try_into() {
            Ok(bytes) => bytes,
            Err(_) => {
                buf.fill(0);
                return Err(CryptoError::KeyFileSize {
                    path: path.to_path_buf(),
                    // The file may have changed between stat and read; report
                    // what was actually read when it disagrees with a valid size.
                    found: if found == KEY_LEN as u64 {
                        buf.len() as u64
                    } else {
                        found
                    },
                });
            }
        };
        buf.fill(0);
        Ok(Self(bytes))
    }

    /// Loads the key file at `path`, or creates it if it does not exist.
    ///
    /// Creation makes the parent directory if needed, writes 32 fresh random
    /// bytes to a file opened with `create_new` (mode 0600 on unix) and
    /// fsyncs the file and its directory. An existing file is never
    /// overwritten or repaired, whatever its content; a file of the wrong
    /// size is [`CryptoError::KeyFileSize`]. If another process creates the
    /// file at the same moment, its key is loaded.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        match Self::load(path) {
            Err(CryptoError::KeyFileMissing { .. }) => {}
            other => return other,
        }
        let write_err = |source| CryptoError::KeyFileWrite {
            path: path.to_path_buf(),
            source,
        };
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent {
            create_private_dir_all(dir).map_err(write_err)?;
        }

        let mut file = match open_new_private(path) {
            Ok(file) => file,
            // Lost a race with another process creating the key: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Self::load(path),
            Err(e) => return Err(write_err(e)),
        };
        let key = Self::generate()?;
        let written = file.write_all(&key.0).and_then(|()| file.sync_all());
        if let Err(source) = written {
            drop(file);
            // Only the file this call just created is removed: no secret can
            // have been sealed with a key that was never completely written,
            // and leaving a short file would block every later start.
            if let Err(cleanup) = fs::remove_file(path) {
                tracing::warn!(
                    path = %path.display(),
                    error = %cleanup,
                    "could not remove partially written key file"
                );
            }
            return Err(write_err(source));
        }
        sync_dir(parent.unwrap_or_else(|| Path::new("."))).map_err(write_err)?;
        tracing::info!(path = %path.display(), "created new secret key file");
        Ok(key)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

/// Creates `dir` and its missing parents, each new one with mode 0700 on
/// unix whatever the umask (issue 15 B.8): the data directory holds the
/// key file and the database. An existing directory is left as it is.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Opens `path` for writing, failing if it exists; mode 0600 on unix.
fn open_new_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes a new directory entry durable (unix); a no-op elsewhere, where
/// directories cannot be opened for fsync.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

/// Logs a warning when the key file can be read by group or others (unix).
fn warn_if_readable_by_others(path: &Path, file: &File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = file.metadata() {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:o}"),
                    "key file is accessible to group or others; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, file);
    }
}

/// The AEAD instance for `key`.
pub(super) fn cipher_for(key: &SecretKey) -> XChaCha20Poly1305 {
    let key: &Key = (&key.0).into();
    XChaCha20Poly1305::new(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{open_string, seal_str};

    const ROW: &[u8] = b"0190c1d2-7e4f-7a3b-9c1d-2e3f4a5b6c7d";

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes([byte; KEY_LEN])
    }

    /// Debug output never shows key bytes.
    #[test]
    fn debug_hides_key() {
        assert_eq!(format!("{:?}", key(0xab)), "SecretKey(***)");
    }

    /// A new key file is created with exactly 32 bytes (mode 0600 on unix), in a new directory.
    #[test]
    fn key_file_created_private_with_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("secret.key");
        let k = SecretKey::load_or_create(&path).unwrap();
        let on_disk = fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), KEY_LEN);
        assert_eq!(on_disk, k.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "mode {mode:o}");
        }
    }

    /// A second load, by either function, returns the key created by the first.
    #[test]
    fn second_load_returns_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = SecretKey::load_or_create(&path).unwrap();
        let again = SecretKey::load_or_create(&path).unwrap();
        let loaded = SecretKey::load(&path).unwrap();
        assert_eq!(first.0, again.0);
        assert_eq!(first.0, loaded.0);
        let sealed = seal_str(&first, "secret", ROW).unwrap();
        assert_eq!(open_string(&loaded, &sealed, ROW).unwrap(), "secret");
    }

    /// Two independently created key files differ (keys are random).
    #[test]
    fn created_keys_are_random() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let b = SecretKey::load_or_create(&dir.path().join("b.key")).unwrap();
        assert_ne!(a.0, b.0);
        assert_ne!(a.0, [0u8; KEY_LEN]);
    }

    /// An existing valid key file is used as is and its bytes are never rewritten.
    #[test]
    fn existing_key_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        fs::write(&path, [0x5a; KEY_LEN]).unwrap();
        let k = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(k.0, [0x5a; KEY_LEN]);
        assert_eq!(fs::read(&path).unwrap(), vec![0x5a; KEY_LEN]);
    }

    /// Wrong-size key files (empty, short, long) are a clear error and stay untouched.
    #[test]
    fn wrong_size_key_file_is_clear_error_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0usize, 16, 31, 33, 4096] {
            let path = dir.path().join(format!("secret-{size}.key"));
            let content = vec![0x11; size];
            fs::write(&path, &content).unwrap();
            for result in [SecretKey::load_or_create(&path), SecretKey::load(&path)] {
                let err = result.unwrap_err();
                match &err {
                    CryptoError::KeyFileSize { path: p, found } => {
                        assert_eq!(p, &path);
                        assert_eq!(*found, size as u64);
                    }
                    other => panic!("size {size}: unexpected error {other}"),
                }
                let message = err.to_string();
                assert!(message.contains(&path.display().to_string()), "{message}");
                assert!(
                    message.contains(&format!("is {size} bytes long")),
                    "{message}"
                );
                assert!(message.contains("expected exactly 32"), "{message}");
            }
            assert_eq!(fs::read(&path).unwrap(), content, "file must be untouched");
        }
    }

    /// load refuses a missing file, naming it, and does not create it.
    #[test]
    fn load_missing_file_is_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.key");
        let err = SecretKey::load(&path).unwrap_err();
        assert!(matches!(err, CryptoError::KeyFileMissing { .. }));
        assert!(err.to_string().contains("absent.key"), "{err}");
        assert!(!path.exists());
    }

    /// A directory at the key path is a read error, not a panic or an overwrite.
    #[test]
    fn directory_at_key_path_is_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        fs::create_dir(&path).unwrap();
        assert!(SecretKey::load_or_create(&path).is_err());
        assert!(path.is_dir());
    }
}
