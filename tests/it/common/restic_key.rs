//! A cheap key for a test repository.
//!
//! `restic init` calibrates its key derivation to take about half a second
//! (scrypt with N = 32768, r = 8, p = 6 on this machine), and every later
//! restic command on the repository derives the key again: measured with
//! `perf` over a whole run of tests/it, restic was a third of the CPU and
//! scrypt four-fifths of restic's. restic has no setting for it, so
//! [`cheapen`] rewrites a fresh test repository's key file with N = 1024,
//! r = 8, p = 1: the master key is decrypted with the password and the
//! file's own parameters, encrypted again under a key derived with the
//! cheap ones, and stored under its new content hash. Everything else in
//! the repository, the master key included, stays as restic wrote it.
//!
//! The format (restic's `doc/design.rst`, "Keys, Encryption and MAC"):
//! scrypt gives 64 bytes, an AES-256 key then a Poly1305-AES key (a 16 byte
//! AES key `k`, then `r`); `data` is `IV || AES-256-CTR(plaintext) || MAC`,
//! the MAC Poly1305 over the ciphertext with the key `r || AES-128_k(IV)`.

// Test set-up fails loudly: a key that cannot be rewritten is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;

/// log₂ of the cheap key's scrypt N (N = 1024), and its r and p.
const CHEAP_LOG_N: u8 = 10;
const CHEAP_R: u32 = 8;
const CHEAP_P: u32 = 1;

/// Rewrites each key file of the local repository at `repo` (made by
/// `restic init` with `password`) with cheap scrypt parameters.
pub fn cheapen(repo: &Path, password: &str) {
    let keys = repo.join("keys");
    for entry in std::fs::read_dir(&keys).expect("the repository's keys/") {
        let path = entry.expect("key entry").path();
        let mut key: Value = serde_json::from_slice(&std::fs::read(&path).expect("read key file"))
            .expect("key JSON");
        let old = derive(
            password,
            &BASE64.decode(key["salt"].as_str().unwrap()).unwrap(),
            key["N"].as_u64().unwrap(),
            key["r"].as_u64().unwrap(),
            key["p"].as_u64().unwrap(),
        );
        let master = old.open(&BASE64.decode(key["data"].as_str().unwrap()).unwrap());

        let salt: [u8; 64] = random();
        let new = derive(
            password,
            &salt,
            1 << CHEAP_LOG_N,
            CHEAP_R.into(),
            CHEAP_P.into(),
        );
        key["N"] = (1u64 << CHEAP_LOG_N).into();
        key["r"] = CHEAP_R.into();
        key["p"] = CHEAP_P.into();
        key["salt"] = BASE64.encode(salt).into();
        key["data"] = BASE64.encode(new.seal(&master)).into();
        let text = serde_json::to_vec(&key).expect("key JSON");
        // Stored files are named by the SHA-256 of their content.
        let name = hex::encode(sha2::Sha256::digest(&text));
        std::fs::write(keys.join(name), &text).expect("write key file");
        std::fs::remove_file(&path).expect("remove the old key file");
    }
}

/// The three keys scrypt gives for one key file.
struct Keys {
    encrypt: [u8; 32],
    mac_k: [u8; 16],
    mac_r: [u8; 16],
}

fn derive(password: &str, salt: &[u8], n: u64, r: u64, p: u64) -> Keys {
    assert!(n.is_power_of_two(), "scrypt N {n} is a power of two");
    let params = scrypt::Params::new(
        n.trailing_zeros() as u8,
        u32::try_from(r).unwrap(),
        u32::try_from(p).unwrap(),
    )
    .expect("scrypt parameters");
    let mut out = [0u8; 64];
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut out).expect("scrypt");
    Keys {
        encrypt: out[..32].try_into().unwrap(),
        mac_k: out[32..48].try_into().unwrap(),
        mac_r: out[48..].try_into().unwrap(),
    }
}

impl Keys {
    /// Poly1305-AES of `ciphertext` with `nonce`.
    fn mac(&self, nonce: &[u8; 16], ciphertext: &[u8]) -> [u8; 16] {
        let aes = aes::Aes128::new_from_slice(&self.mac_k).unwrap();
        let mut s = aes::Block::from(*nonce);
        aes.encrypt_block(&mut s);
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&self.mac_r);
        key[16..].copy_from_slice(&s);
        let poly = poly1305::Poly1305::new_from_slice(&key).unwrap();
        poly.compute_unpadded(ciphertext).into()
    }

    fn ctr(&self, iv: &[u8; 16], data: &mut [u8]) {
        let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(&self.encrypt, iv).unwrap();
        cipher.apply_keystream(data);
    }

    /// `IV || ciphertext || MAC` → plaintext; panics on a wrong MAC.
    fn open(&self, sealed: &[u8]) -> Vec<u8> {
        assert!(sealed.len() >= 32, "sealed key data too short");
        let iv: [u8; 16] = sealed[..16].try_into().unwrap();
        let (ciphertext, mac) = sealed[16..].split_at(sealed.len() - 32);
        assert_eq!(
            self.mac(&iv, ciphertext),
            mac,
            "the key file's MAC does not match (wrong password?)"
        );
        let mut plain = ciphertext.to_vec();
        self.ctr(&iv, &mut plain);
        plain
    }

    /// plaintext → `IV || ciphertext || MAC` with a fresh IV.
    fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let iv: [u8; 16] = random();
        let mut ciphertext = plain.to_vec();
        self.ctr(&iv, &mut ciphertext);
        let mac = self.mac(&iv, &ciphertext);
        [&iv[..], &ciphertext, &mac].concat()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes
}

#[cfg(test)]
mod tests {
    use super::super::restic::TempRepo;

    /// After `init` (which cheapens the key) restic opens the repository
    /// with its password and refuses another, and the key file says N = 1024.
    #[test]
    fn a_cheapened_repository_opens_with_its_password_only() {
        let repo = TempRepo::new();
        repo.init();
        let keys: Vec<_> = std::fs::read_dir(repo.repo.join("keys"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let key: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&keys[0]).unwrap()).unwrap();
        assert_eq!(key["N"], 1024, "{key}");
        assert_eq!(key["p"], 1, "{key}");
        let config = repo.restic(&["cat", "config", "--no-lock"]);
        assert!(config.status.success(), "{config:?}");
        let check = repo.restic(&["check", "--no-lock"]);
        assert!(check.status.success(), "{check:?}");
        let wrong = repo
            .command(&["cat", "config", "--no-lock"])
            .env("RESTIC_PASSWORD", "not-the-password")
            .output()
            .unwrap();
        assert!(!wrong.status.success(), "a wrong password opened it");
    }
}
