//! `--backend postgres`: a throwaway PostgreSQL cluster for one run
//! (issue 19 §1), so both backends are measured the same way.
//!
//! The cluster is started and stopped with the project's
//! `scripts/pg-throwaway` (built into this binary, so a copied
//! load generator needs no checkout): `start DIR` prints the URL, `stop
//! DIR` stops the server and removes the cluster. [`Throwaway`] stops it
//! when dropped, so an error, Ctrl-C or SIGTERM (handled in `main`) does
//! not leave a server behind; a SIGKILL does (`scripts/pg-throwaway stop`
//! with the directory printed at start cleans up).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// `scripts/pg-throwaway`, as of this build.
const SCRIPT: &str = include_str!("../../../scripts/pg-throwaway");

/// A running throwaway cluster; stopped on drop.
pub struct Throwaway {
    /// Holds the script and the script's state directory.
    dir: PathBuf,
    /// The connection URL `start` printed.
    pub url: String,
}

impl Throwaway {
    /// Starts a cluster; a clear error when PostgreSQL's binaries are
    /// missing or the cluster does not start.
    pub fn start() -> anyhow::Result<Throwaway> {
        let dir = std::env::temp_dir().join(format!(
            "restic-manager-loadgen-pg-{}",
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let script = dir.join("pg-throwaway");
        std::fs::write(&script, SCRIPT)
            .with_context(|| format!("cannot write {}", script.display()))?;
        // From here on, a failure removes the directory (and a half-started
        // cluster) through Drop.
        let mut cluster = Throwaway {
            dir,
            url: String::new(),
        };
        let output = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(cluster.state_dir())
            .output()
            .context("--backend postgres: cannot run bash for scripts/pg-throwaway")?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let hint = if stderr.contains("not found") {
                " (PostgreSQL's server binaries initdb and pg_ctl are needed: install postgresql, or pass --database-url)"
            } else {
                ""
            };
            bail!(
                "--backend postgres: cannot start a throwaway PostgreSQL{hint}: {}",
                stderr.trim()
            );
        }
        let url = String::from_utf8(output.stdout)
            .context("scripts/pg-throwaway printed non-UTF-8")?
            .trim()
            .to_owned();
        if !url.starts_with("postgres://") {
            bail!("--backend postgres: scripts/pg-throwaway printed {url:?}, not a URL");
        }
        cluster.url = url;
        eprintln!(
            "throwaway PostgreSQL at {} (state in {})",
            cluster.url,
            cluster.state_dir().display()
        );
        Ok(cluster)
    }

    /// The `DIR` of `scripts/pg-throwaway start|stop DIR`.
    fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn script(&self) -> PathBuf {
        self.dir.join("pg-throwaway")
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let status = Command::new("bash")
            .arg(self.script())
            .arg("stop")
            .arg(self.state_dir())
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("scripts/pg-throwaway stop exited with {s}"),
            Err(e) => eprintln!("cannot run scripts/pg-throwaway stop: {e}"),
        }
        remove(&self.dir);
    }
}

fn remove(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("cannot remove {}: {e}", dir.display());
        }
    }
}
