//! The agent's side of restore jobs beyond the command line
//! (`restic::restore` builds that):
//!
//! - [`SourceRepos`]: the repository settings a restore from another
//!   host's repository arrives with. They stay in memory only: the
//!   daemon takes them out of the `command.run` before the job is
//!   journaled, keeps them here by job id, and hands them over when the
//!   job starts. After an agent restart they are gone and such a job
//!   fails, asking for the restore to be run again.
//! - [`stats`]: the `job.finished` stats of a restore, counting files and
//!   bytes under the target (off the event loop) where restic 0.14 prints
//!   no summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::restic::{self, Counted, OutputDigest, RepoSettings};
use crate::protocol::{CommandRun, RestoreSpec};

/// Source repositories of accepted restores, by job id (memory only).
#[derive(Debug, Default)]
pub struct SourceRepos {
    by_job: HashMap<String, RepoSettings>,
}

/// Why a restore from another host's repository cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceRepoError {
    /// The `command.run` names a source host but carries no settings.
    #[error("the restore names source host {0} but carries no repository settings for it")]
    Missing(String),
    /// The settings were in memory only and the agent restarted.
    #[error("the repository settings of source host {0} are kept in memory only and were lost when the agent restarted; run the restore again")]
    Lost(String),
}

impl SourceRepos {
    /// Takes the source repository out of a `command.run` (so what is
    /// journaled holds no secret). `Ok(None)`: the job uses the host's own
    /// repository.
    pub fn take_from(run: &mut CommandRun) -> Result<Option<RepoSettings>, SourceRepoError> {
        let Some(spec) = run.restore.as_mut() else {
            return Ok(None);
        };
        let update = spec.repository.take();
        match (&spec.source_host_id, update) {
            (None, _) => Ok(None),
            (Some(host), None) => Err(SourceRepoError::Missing(host.clone())),
            (Some(_), Some(update)) => {
                let mut settings = RepoSettings::default();
                settings.apply(&update);
                Ok(Some(settings))
            }
        }
    }

    /// Keeps a job's source repository until it starts or is dropped.
    pub fn insert(&mut self, job_id: &str, settings: RepoSettings) {
        self.by_job.insert(job_id.to_owned(), settings);
    }

    /// Forgets a job's settings (it ended without starting).
    pub fn forget(&mut self, job_id: &str) {
        self.by_job.remove(job_id);
    }

    /// The repository a starting job reads: its source repository (taken
    /// out of memory), or `own` when it has none.
    pub fn for_start(
        &mut self,
        command: &CommandRun,
        own: &RepoSettings,
    ) -> Result<RepoSettings, SourceRepoError> {
        let source = command
            .restore
            .as_ref()
            .and_then(|spec| spec.source_host_id.as_ref());
        let taken = self.by_job.remove(&command.job_id);
        match (source, taken) {
            (None, _) => Ok(own.clone()),
            (Some(_), Some(settings)) => Ok(settings),
            (Some(host), None) => Err(SourceRepoError::Lost(host.clone())),
        }
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_job.is_empty()
    }
}

/// The `job.finished` stats of a restore that ran with exit code
/// `exit_code` (see `restic::restore` for what each field means).
pub async fn stats(
    command: &CommandRun,
    digest: &OutputDigest,
    exit_code: i32,
) -> Option<Map<String, Value>> {
    let spec = command.restore.as_ref()?;
    let counted = match digest.summary() {
        Some(_) => None,
        None => Some(count_target(spec, digest.first_text()).await),
    };
    Some(restic::restore_stats(
        spec,
        digest.summary(),
        counted,
        digest.errors(),
        exit_code,
    ))
}

/// Files and bytes under the target for each restored path (0.14). Only
/// once restic printed its header (it started restoring); the whole
/// snapshot's paths come from that header.
async fn count_target(spec: &RestoreSpec, header: Option<&str>) -> Counted {
    let Some(header) = header else {
        return Counted::default();
    };
    let roots = if spec.paths.is_empty() {
        restic::header_paths(header).unwrap_or_default()
    } else {
        spec.paths.clone()
    };
    let target = PathBuf::from(&spec.target);
    tokio::task::spawn_blocking(move || count(&target, &roots))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("counting restored files failed: {e}");
            Counted::default()
        })
}

/// Regular files (symlinks not followed) and their sizes under
/// `target/root` for each root; unreadable entries are skipped.
fn count(target: &Path, roots: &[String]) -> Counted {
    let mut counted = Counted::default();
    let mut stack: Vec<PathBuf> = roots
        .iter()
        .map(|root| target.join(root.trim_start_matches(['/', '\\'])))
        .collect();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            counted.files += 1;
            counted.bytes += meta.len();
        } else if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|entry| entry.ok().map(|e| e.path())));
            }
        }
    }
    counted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ConfigUpdate, JobKind, RestoreOverwrite};

    fn restore_run(source: Option<&str>, repository: Option<ConfigUpdate>) -> CommandRun {
        CommandRun {
            job_id: "j1".to_owned(),
            kind: JobKind::Restore,
            args: Vec::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            tag: None,
            retention_policy: None,
            snapshot_id: Some("abcd1234".to_owned()),
            restore: Some(Box::new(RestoreSpec {
                paths: Vec::new(),
                target: "/tmp/r".to_owned(),
                overwrite: RestoreOverwrite::Always,
                verify: false,
                source_host_id: source.map(str::to_owned),
                repository,
            })),
            drill: None,
            dump: None,
        }
    }

    /// Settings leave the command, wait in memory and are handed over
    /// once; without them (restart) the job cannot start.
    #[test]
    fn source_repositories_stay_in_memory() {
        let update = ConfigUpdate {
            repo_url: Some("/srv/other".to_owned()),
            repo_password: Some("other-pw-77".to_owned()),
            ..ConfigUpdate::default()
        };
        let mut run = restore_run(Some("h2"), Some(update));
        let settings = SourceRepos::take_from(&mut run).unwrap().unwrap();
        let journaled = serde_json::to_string(&run).unwrap();
        assert!(!journaled.contains("other-pw-77"), "{journaled}");
        let mut repos = SourceRepos::default();
        repos.insert("j1", settings);
        let own = RepoSettings::default();
        let got = repos.for_start(&run, &own).unwrap();
        assert_eq!(got.password.unwrap().expose(), "other-pw-77");
        assert!(repos.is_empty());
        assert_eq!(
            repos.for_start(&run, &own),
            Err(SourceRepoError::Lost("h2".to_owned()))
        );
        let mut bare = restore_run(Some("h2"), None);
        assert_eq!(
            SourceRepos::take_from(&mut bare),
            Err(SourceRepoError::Missing("h2".to_owned()))
        );
        let mut local = restore_run(None, None);
        assert_eq!(SourceRepos::take_from(&mut local), Ok(None));
        assert!(repos.for_start(&local, &own).is_ok());
    }

    /// Counting walks each restored path under the target, files only.
    #[test]
    fn counting() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("srv/data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a.txt"), "hello").unwrap();
        std::fs::write(data.join("sub/b.txt"), "world!").unwrap();
        let all = count(dir.path(), &["/srv/data".to_owned()]);
        assert_eq!(
            all,
            Counted {
                files: 2,
                bytes: 11
            }
        );
        let one = count(
            dir.path(),
            &["/srv/data/sub/b.txt".to_owned(), "/missing".to_owned()],
        );
        assert_eq!(one, Counted { files: 1, bytes: 6 });
    }
}
