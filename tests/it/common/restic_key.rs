//! Test repositories with a key that is cheap to derive.
//!
//! `restic init` calibrates its key derivation (3 s of CPU on this machine,
//! ending at scrypt with N = 32768, r = 8, p = 6) and every later restic
//! command on the repository derives the key again (0.4 s): measured with
//! `perf` over a whole run of tests/it, restic was a third of the CPU and
//! scrypt four-fifths of restic's. restic has no setting for either, so
//! [`init`] makes one repository with `restic init` per test process and
//! each new one as a copy of it, with a key file for its own password
//! (scrypt N = 1024, r = 8, p = 1) and a config with its own random
//! repository id (restic's caches are keyed by it). The copies share the
//! template's master key, which tests never see. Tests of `init` itself
//! still run the real one.
//!
//! The format (restic's `doc/design.rst`, "Keys, Encryption and MAC"):
//! scrypt gives 64 bytes, an AES-256 key then a Poly1305-AES key (a 16 byte
//! AES key `k`, then `r`); a key file's `data`, like every other stored
//! file, is `IV || AES-256-CTR(plaintext) || MAC`, the MAC Poly1305 over
//! the ciphertext with the key `r || AES-128_k(IV)`. The master key is
//! JSON; the config is uncompressed JSON sealed with the master key.

// Test set-up fails loudly: a key that cannot be rewritten is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;

/// log₂ of the cheap key's scrypt N (N = 1024), and its r and p.
const CHEAP_LOG_N: u8 = 10;
const CHEAP_R: u32 = 8;
const CHEAP_P: u32 = 1;

/// Makes a new repository at `repo` (which must not exist) with `password`:
/// a copy of this process's template repository with its own key file and
/// repository id: what `restic init` would leave there, but with a key
/// cheap to derive.
pub fn init(repo: &Path, password: &str) {
    let template = template();
    for dir in &template.dirs {
        std::fs::create_dir_all(repo.join(dir)).expect("create repository dir");
    }
    write_key_file(
        &repo.join("keys"),
        template.key.clone(),
        &template.master_json,
        password,
    );
    let mut config = template.config.clone();
    config["id"] = hex::encode(random::<32>()).into();
    let plain = serde_json::to_vec(&config).expect("config JSON");
    std::fs::write(repo.join("config"), template.master.seal(&plain)).expect("write config");
}

/// One repository made by `restic init`, read back.
struct Template {
    /// Its directories, relative (`data/00` … `data/ff`, `keys`, …).
    dirs: Vec<PathBuf>,
    /// Its key file as JSON (the `data` is replaced for each copy).
    key: Value,
    /// The master key as stored (JSON), and as keys.
    master_json: Vec<u8>,
    master: Keys,
    /// The decrypted config (`version`, `id`, `chunker_polynomial`).
    config: Value,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        let password = "template";
        let output = std::process::Command::new(super::restic::restic_binary())
            .args(["init", "--repo"])
            .arg(&repo)
            .env("RESTIC_PASSWORD", password)
            .env("RESTIC_CACHE_DIR", dir.path().join("cache"))
            .output()
            .expect("restic runs");
        assert!(output.status.success(), "restic init: {output:?}");
        let mut dirs = Vec::new();
        collect_dirs(&repo, &repo, &mut dirs);
        let key_path = std::fs::read_dir(repo.join("keys"))
            .expect("keys/")
            .next()
            .expect("a key file")
            .expect("key entry")
            .path();
        let key: Value = serde_json::from_slice(&std::fs::read(key_path).expect("read key file"))
            .expect("key JSON");
        let master_json = open_key_file(&key, password);
        let master = Keys::from_master(&master_json);
        let sealed = std::fs::read(repo.join("config")).expect("read config");
        let config: Value = serde_json::from_slice(&master.open(&sealed))
            .expect("the config is uncompressed JSON (repository format 1 and 2)");
        Template {
            dirs,
            key,
            master_json,
            master,
            config,
        }
    })
}

fn collect_dirs(root: &Path, dir: &Path, dirs: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            dirs.push(path.strip_prefix(root).expect("under root").to_path_buf());
            collect_dirs(root, &path, dirs);
        }
    }
}

/// The master key (JSON) a key file holds, opened with `password`.
fn open_key_file(key: &Value, password: &str) -> Vec<u8> {
    let keys = derive(
        password,
        &BASE64.decode(key["salt"].as_str().unwrap()).unwrap(),
        key["N"].as_u64().unwrap(),
        key["r"].as_u64().unwrap(),
        key["p"].as_u64().unwrap(),
    );
    keys.open(&BASE64.decode(key["data"].as_str().unwrap()).unwrap())
}

/// Writes `key` (a key file's JSON) into `keys` with `master` sealed under
/// `password` with the cheap parameters, named by its content's hash.
fn write_key_file(keys: &Path, mut key: Value, master: &[u8], password: &str) {
    let salt: [u8; 64] = random();
    let derived = derive(
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
    key["data"] = BASE64.encode(derived.seal(master)).into();
    let text = serde_json::to_vec(&key).expect("key JSON");
    // Stored files are named by the SHA-256 of their content.
    let name = hex::encode(sha2::Sha256::digest(&text));
    std::fs::write(keys.join(name), &text).expect("write key file");
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
    /// The keys of a master key's JSON (`{"mac": {"k", "r"}, "encrypt"}`).
    fn from_master(json: &[u8]) -> Keys {
        let master: Value = serde_json::from_slice(json).expect("master key JSON");
        let bytes = |value: &Value| BASE64.decode(value.as_str().unwrap()).unwrap();
        Keys {
            encrypt: bytes(&master["encrypt"]).try_into().unwrap(),
            mac_k: bytes(&master["mac"]["k"]).try_into().unwrap(),
            mac_r: bytes(&master["mac"]["r"]).try_into().unwrap(),
        }
    }

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

    /// A repository from `init` (a copy of the template) opens with its
    /// password only, takes a backup, passes `restic check`, has its own
    /// repository id and a key file saying N = 1024.
    #[test]
    fn copied_repositories_open_with_their_password_only() {
        let copied = TempRepo::new();
        copied.init();
        let other = TempRepo::new();
        other.init();
        let id = |repo: &TempRepo| {
            let out = repo.restic(&["cat", "config", "--no-lock"]);
            assert!(out.status.success(), "{out:?}");
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].clone()
        };
        assert_ne!(id(&copied), id(&other), "two copies share a repository id");
        assert_cheap_and_usable(&copied);
    }

    fn assert_cheap_and_usable(repo: &TempRepo) {
        let keys: Vec<_> = std::fs::read_dir(repo.repo.join("keys"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let key: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&keys[0]).unwrap()).unwrap();
        assert_eq!(key["N"], 1024, "{key}");
        assert_eq!(key["p"], 1, "{key}");
        let source = repo.source("src", &[("a.txt", "some text")]);
        let backup = repo.restic(&["backup", source.to_str().unwrap()]);
        assert!(backup.status.success(), "{backup:?}");
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
