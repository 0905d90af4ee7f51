//! Secrets at rest: the server's key file and XChaCha20-Poly1305 sealing.
//!
//! This module owns two things (DESIGN.md "Security"):
//!
//! - The **key file**: 32 random bytes created on first start with mode
//!   0600 (unix), loaded with size validation on every later start, and
//!   **never overwritten**, whatever it contains. Losing or replacing it
//!   makes every stored secret unreadable, so a key file of the wrong size
//!   is a hard error for the operator to look at, not something to repair.
//! - **Sealing**: [`seal`] encrypts a secret (repository password, REST
//!   credential, …) with XChaCha20-Poly1305 under a fresh random 24-byte
//!   nonce and binds it to caller-given associated data, which is the id of
//!   the row that owns the secret. A sealed value copied onto another row,
//!   or opened with another key file, fails in [`open`] with
//!   [`CryptoError::Decrypt`].
//!
//! # Sealed format (version 1)
//!
//! ```text
//! version (1 byte, = 1) ‖ nonce (24 bytes) ‖ ciphertext ‖ Poly1305 tag (16 bytes)
//! ```
//!
//! The AEAD's associated data is `version ‖ associated_data`, so the format
//! byte is authenticated too and a future format cannot be downgraded into
//! this one. Random 192-bit nonces make a collision negligible for any
//! number of values this server will ever seal under one key.
//!
//! # Usage
//!
//! ```no_run
//! # fn main() -> Result<(), restic_manager::crypto::CryptoError> {
//! use restic_manager::crypto::{open_string, seal_str, SecretKey};
//!
//! let key = SecretKey::load_or_create(std::path::Path::new("data/secret.key"))?;
//! let row_id = "0190c1d2-7e4f-7a3b-9c1d-2e3f4a5b6c7d";
//! let sealed = seal_str(&key, "restic repo password", row_id.as_bytes())?;
//! assert_eq!(open_string(&key, &sealed, row_id.as_bytes())?, "restic repo password");
//! # Ok(())
//! # }
//! ```
//!
//! The key file is [`key`]'s; sealing is here.

use std::io;
use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::XNonce;

mod key;

use key::cipher_for;
pub use key::{create_private_dir_all, SecretKey};

/// Length of the key in the key file, in bytes (XChaCha20-Poly1305 key).
pub const KEY_LEN: usize = 32;

/// Length of the random nonce stored in front of every sealed value.
pub const NONCE_LEN: usize = 24;

/// Length of the Poly1305 authentication tag at the end of a sealed value.
pub const TAG_LEN: usize = 16;

/// Format byte that starts every value produced by [`seal`].
pub const SEALED_VERSION: u8 = 1;

/// Length of the header (format byte and nonce) of a sealed value.
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Every way loading the key or sealing/opening a secret can fail.
///
/// No variant ever carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// [`SecretKey::load`] was asked for a key file that does not exist.
    #[error("key file {} does not exist", path.display())]
    KeyFileMissing {
        /// Path that was looked up.
        path: PathBuf,
    },
    /// The key file exists but could not be read.
    #[error("could not read key file {}: {source}", path.display())]
    KeyFileRead {
        /// Path of the key file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The key file (or its directory) could not be created or written.
    #[error("could not create key file {}: {source}", path.display())]
    KeyFileWrite {
        /// Path of the key file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The key file exists but does not hold exactly [`KEY_LEN`] bytes.
    /// It is left untouched: replacing it would make every stored secret
    /// unreadable.
    #[error(
        "key file {} is {found} bytes long, expected exactly {KEY_LEN}; \
         it was left untouched (restore the original key file, or remove it \
         only if no secret has been stored yet)",
        path.display()
    )]
    KeyFileSize {
        /// Path of the key file.
        path: PathBuf,
        /// Size found on disk, in bytes.
        found: u64,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// The AEAD refused to encrypt (only possible for absurdly long input).
    #[error("secret could not be encrypted (value too long)")]
    Encrypt,
    /// Authentication failed: wrong key, wrong associated data, or a
    /// tampered or truncated value.
    #[error(
        "secret could not be decrypted: wrong key file or the value does not belong to this row"
    )]
    Decrypt,
    /// The value starts with a format byte this version does not know.
    #[error("sealed secret has unknown format version {version} (expected {SEALED_VERSION})")]
    UnknownVersion {
        /// The format byte found.
        version: u8,
    },
    /// [`open_string`] decrypted a value that is not UTF-8 text.
    #[error("decrypted secret is not valid UTF-8 text")]
    NotUtf8,
}

/// The AEAD's associated data: the format byte, then the caller's data.
fn full_associated_data(associated_data: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + associated_data.len());
    aad.push(SEALED_VERSION);
    aad.extend_from_slice(associated_data);
    aad
}

/// Encrypts `plaintext` under `key`, bound to `associated_data` (the owning
/// row's id). Each call draws a fresh random nonce, so sealing the same
/// value twice gives different bytes. See the module doc for the format.
pub fn seal(
    key: &SecretKey,
    plaintext: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(CryptoError::Random)?;
    let cipher = cipher_for(key);
    let aad = full_associated_data(associated_data);
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Encrypt)?;

    let mut sealed = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    sealed.push(SEALED_VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Decrypts a value produced by [`seal`] with the same key and associated
/// data. A wrong key, wrong associated data, or a tampered or truncated
/// value is [`CryptoError::Decrypt`]; an unknown format byte is
/// [`CryptoError::UnknownVersion`]. Never panics on any input.
pub fn open(
    key: &SecretKey,
    sealed: &[u8],
    associated_data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let Some((&version, rest)) = sealed.split_first() else {
        return Err(CryptoError::Decrypt);
    };
    if version != SEALED_VERSION {
        return Err(CryptoError::UnknownVersion { version });
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
    let cipher = cipher_for(key);
    let aad = full_associated_data(associated_data);
    cipher
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)
}

/// [`seal`] for text secrets.
pub fn seal_str(
    key: &SecretKey,
    plaintext: &str,
    associated_data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    seal(key, plaintext.as_bytes(), associated_data)
}

/// [`open`] for text secrets: the decrypted bytes must be UTF-8.
pub fn open_string(
    key: &SecretKey,
    sealed: &[u8],
    associated_data: &[u8],
) -> Result<String, CryptoError> {
    let bytes = open(key, sealed, associated_data)?;
    String::from_utf8(bytes).map_err(|e| {
        // Wipe the rejected plaintext before dropping it.
        let mut bytes = e.into_bytes();
        bytes.fill(0);
        CryptoError::NotUtf8
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &[u8] = b"0190c1d2-7e4f-7a3b-9c1d-2e3f4a5b6c7d";
    const OTHER_ROW: &[u8] = b"0190c1d2-7e4f-7a3b-9c1d-2e3f4a5b6c7e";

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes([byte; KEY_LEN])
    }

    /// A sealed secret opens back to the same text with the same key and row id.
    #[test]
    fn round_trip() {
        let k = key(7);
        let sealed = seal_str(&k, "correct horse battery staple", ROW).unwrap();
        assert_eq!(sealed[0], SEALED_VERSION);
        assert_eq!(
            sealed.len(),
            HEADER_LEN + "correct horse battery staple".len() + TAG_LEN
        );
        assert_eq!(
            open_string(&k, &sealed, ROW).unwrap(),
            "correct horse battery staple"
        );
    }

    /// The empty secret and a binary secret also round-trip.
    #[test]
    fn round_trip_empty_and_binary() {
        let k = key(7);
        let empty = seal(&k, b"", ROW).unwrap();
        assert_eq!(empty.len(), HEADER_LEN + TAG_LEN);
        assert_eq!(open(&k, &empty, ROW).unwrap(), Vec::<u8>::new());
        let binary: Vec<u8> = (0..=255).collect();
        let sealed = seal(&k, &binary, b"").unwrap();
        assert_eq!(open(&k, &sealed, b"").unwrap(), binary);
    }

    /// Sealing the same value twice gives different bytes (fresh nonce per call).
    #[test]
    fn same_value_seals_differently() {
        let k = key(7);
        let a = seal_str(&k, "same", ROW).unwrap();
        let b = seal_str(&k, "same", ROW).unwrap();
        assert_ne!(a, b);
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN], "nonces must differ");
        assert_eq!(open_string(&k, &a, ROW).unwrap(), "same");
        assert_eq!(open_string(&k, &b, ROW).unwrap(), "same");
    }

    /// Opening with another key file is the clear Decrypt error.
    #[test]
    fn wrong_key_fails() {
        let sealed = seal_str(&key(1), "secret", ROW).unwrap();
        let err = open(&key(2), &sealed, ROW).unwrap_err();
        assert!(matches!(err, CryptoError::Decrypt));
        assert_eq!(
            err.to_string(),
            "secret could not be decrypted: wrong key file or the value does not belong to this row"
        );
    }

    /// A value copied onto another row (other associated data) does not open.
    #[test]
    fn wrong_associated_data_fails() {
        let k = key(1);
        let sealed = seal_str(&k, "secret", ROW).unwrap();
        assert!(matches!(
            open(&k, &sealed, OTHER_ROW),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(open(&k, &sealed, b""), Err(CryptoError::Decrypt)));
    }

    /// Flipping any single bit anywhere in a sealed value is detected.
    #[test]
    fn tampered_byte_fails() {
        let k = key(1);
        let sealed = seal_str(&k, "secret", ROW).unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut tampered = sealed.clone();
                tampered[i] ^= bit;
                let err = open(&k, &tampered, ROW).unwrap_err();
                if i == 0 {
                    assert!(matches!(err, CryptoError::UnknownVersion { .. }));
                } else {
                    assert!(matches!(err, CryptoError::Decrypt), "byte {i}: {err}");
                }
            }
        }
    }

    /// Every truncation of a sealed value, down to empty, is Decrypt (no panic).
    #[test]
    fn truncated_fails() {
        let k = key(1);
        let sealed = seal_str(&k, "secret", ROW).unwrap();
        for len in 0..sealed.len() {
            assert!(
                matches!(open(&k, &sealed[..len], ROW), Err(CryptoError::Decrypt)),
                "length {len}"
            );
        }
        let mut extended = sealed.clone();
        extended.push(0);
        assert!(matches!(
            open(&k, &extended, ROW),
            Err(CryptoError::Decrypt)
        ));
    }

    /// A value with another format byte is refused with the version named.
    #[test]
    fn unknown_version_is_named() {
        let k = key(1);
        let mut sealed = seal_str(&k, "secret", ROW).unwrap();
        sealed[0] = 2;
        let err = open(&k, &sealed, ROW).unwrap_err();
        assert!(
            err.to_string().contains("unknown format version 2"),
            "{err}"
        );
    }

    /// The plaintext does not appear anywhere in the sealed bytes.
    #[test]
    fn plaintext_not_in_sealed_bytes() {
        let k = key(3);
        let secret = "hunter2-very-distinctive-repository-password";
        let sealed = seal_str(&k, secret, ROW).unwrap();
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
        // Not even an 8-byte fragment of it.
        for fragment in secret.as_bytes().windows(8) {
            assert!(!sealed.windows(8).any(|w| w == fragment));
        }
    }

    /// open_string refuses a decrypted value that is not UTF-8.
    #[test]
    fn open_string_rejects_non_utf8() {
        let k = key(3);
        let sealed = seal(&k, &[0xff, 0xfe], ROW).unwrap();
        assert!(matches!(
            open_string(&k, &sealed, ROW),
            Err(CryptoError::NotUtf8)
        ));
    }
}
