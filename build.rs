//! Build script of both packages (the agent's `agent/build.rs` compiles
//! this file as a module): gives the code the git commit it is built from,
//! as the `RESTIC_MANAGER_GIT_COMMIT` compile-time variable that
//! `--version`, `GET /api/v1/version` and the UI footer show.
//!
//! The commit is `git rev-parse --short HEAD` of the checkout, or the
//! `RESTIC_MANAGER_GIT_COMMIT` environment variable when set (a build from
//! a source tarball or a container context without `.git`), else
//! `unknown`. Cargo runs the script again when HEAD moves: when `.git/HEAD`
//! (a branch switch or a detached checkout), the branch's ref file (a
//! commit) or `packed-refs` changes.

use std::path::PathBuf;
use std::process::Command;

/// The variable the code reads with `env!`, and that overrides git.
const COMMIT_VAR: &str = "RESTIC_MANAGER_GIT_COMMIT";

/// The commit when there is neither a git checkout nor the variable.
const UNKNOWN: &str = "unknown";

pub fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={COMMIT_VAR}");
    let commit = match std::env::var(COMMIT_VAR) {
        Ok(value) if is_commit(value.trim()) => value.trim().to_owned(),
        _ => {
            watch_git();
            git(&["rev-parse", "--short", "HEAD"])
                .filter(|hash| is_commit(hash))
                .unwrap_or_else(|| UNKNOWN.to_owned())
        }
    };
    println!("cargo:rustc-env={COMMIT_VAR}={commit}");
}

/// A short or full hexadecimal commit hash.
fn is_commit(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reruns the script when HEAD, the branch it names or the packed refs
/// change. Only existing files are named: cargo reruns on every build for a
/// path that does not exist.
fn watch_git() {
    let mut files = vec![git_path("HEAD")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        files.push(git_path(&branch));
    }
    files.push(git_path("packed-refs"));
    for file in files.into_iter().flatten() {
        if file.is_file() {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
}

/// Where git keeps `name` (`HEAD`, `refs/heads/main`), also in a worktree.
fn git_path(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(&["rev-parse", "--git-path", name])?);
    Some(if path.is_absolute() {
        path
    } else {
        manifest_dir().join(path)
    })
}

/// The package's directory (git runs there, and relative paths start there).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// The trimmed standard output of `git ARGS` in the package's directory, or
/// `None` when git is missing, fails (not a checkout) or prints nothing.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}
