//! Capabilities (issue 14 §4): what an agent declares in
//! `hello.capabilities`, and which capability every server → agent
//! message, job kind and option needs. The server never sends what the
//! agent did not declare; a REST request that needs a missing capability
//! answers 409 `agent_lacks_capability` naming it.
//!
//! An agent that sends no `capabilities` at all speaks protocol 1 as it
//! was first written (`/work/shared/PROTOCOL.md`): `config.update` with
//! `hook_shell`, `schedule.set` (its own cron table, `schedule.fire`),
//! `command.run` of `backup`, `init`, `forget`, `prune`, `check` and
//! `unlock`, `command.cancel`, `agent.update_available`, `ack` and
//! `error`. It gets exactly that: [`PROTOCOL_1_CAPABILITIES`].
//!
//! Some capabilities only describe what the agent sends (`active_job_ids`
//! in heartbeats, `durable_outbox` replays, `offline_backup`'s
//! `job.report`): the server reads those messages from any agent and
//! sends nothing that depends on them.

use super::{CommandRun, JobKind, ServerToAgent, CAPABILITY_DOWNLOAD, CAPABILITY_HEALTH};

/// The agent reports its running and queued jobs in `heartbeat.active_job_ids`.
pub const CAPABILITY_ACTIVE_JOB_IDS: &str = "active_job_ids";
/// The agent stops a job on `command.cancel`.
pub const CAPABILITY_CANCEL: &str = "cancel";
/// The agent runs `catalog` jobs and answers `catalog.list`.
pub const CAPABILITY_CATALOG: &str = "catalog";
/// The agent runs `drill` jobs.
pub const CAPABILITY_DRILL: &str = "drill";
/// The agent keeps unacknowledged reports on disk and replays them.
pub const CAPABILITY_DURABLE_OUTBOX: &str = "durable_outbox";
/// The agent runs pre/post hooks with `config.update.hook_shell`.
pub const CAPABILITY_HOOKS: &str = "hooks";
/// The agent keeps the cron table of `schedule.set` and sends `schedule.fire`.
pub const CAPABILITY_LOCAL_CRON: &str = "local_cron";
/// The agent runs `restore` jobs.
pub const CAPABILITY_RESTORE: &str = "restore";

/// What an agent whose `hello` has no `capabilities` field gets: protocol
/// 1 as first written (`command.cancel`, `hook_shell`, `schedule.set`).
pub const PROTOCOL_1_CAPABILITIES: &[&str] =
    &[CAPABILITY_CANCEL, CAPABILITY_HOOKS, CAPABILITY_LOCAL_CRON];

/// The capabilities the server holds an agent to: the declared list, or
/// [`PROTOCOL_1_CAPABILITIES`] when the field was absent.
pub fn effective_capabilities(declared: Option<&[String]>) -> Vec<String> {
    match declared {
        Some(list) => list.to_vec(),
        None => PROTOCOL_1_CAPABILITIES
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
    }
}

/// The capability a job kind needs beyond protocol 1 (`None`: any agent
/// runs it).
pub fn kind_capability(kind: JobKind) -> Option<&'static str> {
    match kind {
        JobKind::Restore => Some(CAPABILITY_RESTORE),
        JobKind::Catalog => Some(CAPABILITY_CATALOG),
        JobKind::Drill => Some(CAPABILITY_DRILL),
        JobKind::Backup
        | JobKind::Init
        | JobKind::Forget
        | JobKind::Prune
        | JobKind::Check
        | JobKind::Unlock => None,
    }
}

/// Every capability a `command.run` needs: its kind's, and a dump's
/// (`dump:<driver>` or `docker`). Its other options (`args` with the
/// group's restic flags, `includes`, `excludes`, `tag`,
/// `retention_policy`) are protocol 1's.
pub fn run_capabilities(run: &CommandRun) -> Vec<String> {
    let kind = kind_capability(run.kind).map(str::to_owned);
    let dump = run.dump.as_ref().map(|dump| dump.required_capability());
    kind.into_iter().chain(dump).collect()
}

/// Every capability a server → agent message needs (empty: any agent
/// takes it). `config.update`'s `hook_shell` needs `hooks`: the sender
/// leaves it out for an agent without (see [`strip_config`]).
pub fn message_capabilities(message: &ServerToAgent) -> Vec<String> {
    let one = |c: &str| vec![c.to_owned()];
    match message {
        ServerToAgent::ConfigUpdate(update) if matches!(update.hook_shell, Some(Some(_))) => {
            one(CAPABILITY_HOOKS)
        }
        ServerToAgent::ScheduleSet(_) => one(CAPABILITY_LOCAL_CRON),
        ServerToAgent::CommandRun(run) => run_capabilities(run),
        ServerToAgent::CommandCancel(_) => one(CAPABILITY_CANCEL),
        ServerToAgent::CatalogList(_) => one(CAPABILITY_CATALOG),
        ServerToAgent::DownloadStart(_)
        | ServerToAgent::DownloadCredit(_)
        | ServerToAgent::DownloadCancel(_) => one(CAPABILITY_DOWNLOAD),
        ServerToAgent::HealthSet(_) => one(CAPABILITY_HEALTH),
        ServerToAgent::ConfigUpdate(_)
        | ServerToAgent::AgentUpdateAvailable(_)
        | ServerToAgent::Ack(_)
        | ServerToAgent::Error(_) => Vec::new(),
    }
}

/// The first capability of `required` missing from `declared`.
pub fn first_missing<'a>(declared: &[String], required: &'a [String]) -> Option<&'a str> {
    required
        .iter()
        .find(|need| !declared.iter().any(|have| have == *need))
        .map(String::as_str)
}

/// `config.update` as an agent with `declared` capabilities may receive
/// it: `hook_shell` only to an agent with `hooks`.
pub fn strip_config(declared: &[String], mut update: super::ConfigUpdate) -> super::ConfigUpdate {
    if !declared.iter().any(|c| c == CAPABILITY_HOOKS) {
        update.hook_shell = None;
    }
    update
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        Ack, CatalogList, CommandCancel, ConfigUpdate, DownloadCancel, DownloadCredit,
        DownloadStart, HealthSet, ScheduleSet,
    };
    use serde_json::json;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| (*c).to_owned()).collect()
    }

    fn run(kind: JobKind) -> CommandRun {
        serde_json::from_value(json!({"job_id": "j1", "kind": kind.as_str()})).unwrap()
    }

    /// An absent field is protocol 1; a declared list, even an empty one,
    /// is taken as it is.
    #[test]
    fn absent_capabilities_are_protocol_1() {
        assert_eq!(
            effective_capabilities(None),
            caps(&["cancel", "hooks", "local_cron"])
        );
        assert_eq!(effective_capabilities(Some(&[])), Vec::<String>::new());
        assert_eq!(
            effective_capabilities(Some(&caps(&["download"]))),
            caps(&["download"])
        );
    }

    /// The requirement table: protocol 1's kinds need nothing, the later
    /// ones their own capability, a dump its tool's.
    #[test]
    fn job_kinds_and_options() {
        for kind in [
            JobKind::Backup,
            JobKind::Init,
            JobKind::Forget,
            JobKind::Prune,
            JobKind::Check,
            JobKind::Unlock,
        ] {
            assert!(run_capabilities(&run(kind)).is_empty(), "{kind}");
        }
        assert_eq!(run_capabilities(&run(JobKind::Restore)), caps(&["restore"]));
        assert_eq!(run_capabilities(&run(JobKind::Catalog)), caps(&["catalog"]));
        assert_eq!(run_capabilities(&run(JobKind::Drill)), caps(&["drill"]));
        let dump: CommandRun = serde_json::from_value(json!({"job_id": "j2", "kind": "backup",
            "dump": {"driver": "postgres", "database": "app"}}))
        .unwrap();
        assert_eq!(run_capabilities(&dump), caps(&["dump:postgres"]));
        let docker: CommandRun = serde_json::from_value(json!({"job_id": "j3", "kind": "backup",
            "dump": {"driver": "postgres", "database": "app", "container": "pg"}}))
        .unwrap();
        assert_eq!(run_capabilities(&docker), caps(&["docker"]));
    }

    /// Every server → agent message and what it needs.
    #[test]
    fn messages() {
        let needs = |m: ServerToAgent| message_capabilities(&m);
        assert!(needs(ConfigUpdate::default().into()).is_empty());
        let hooks = ConfigUpdate {
            hook_shell: Some(Some("bash".to_owned())),
            ..ConfigUpdate::default()
        };
        assert_eq!(needs(hooks.into()), caps(&["hooks"]));
        let schedules = ScheduleSet {
            version: 1,
            schedules: vec![],
        };
        assert_eq!(needs(schedules.into()), caps(&["local_cron"]));
        assert_eq!(
            needs(CommandCancel { job_id: "j".into() }.into()),
            caps(&["cancel"])
        );
        assert_eq!(
            needs(
                CatalogList {
                    request_id: "r".into(),
                    snapshot_id: "s".into(),
                    path: "/".into()
                }
                .into()
            ),
            caps(&["catalog"])
        );
        let start = DownloadStart {
            download_id: "d".into(),
            snapshot_id: "s".into(),
            path: "/".into(),
            window: 1,
        };
        assert_eq!(needs(start.into()), caps(&["download"]));
        let credit = DownloadCredit {
            download_id: "d".into(),
            chunks: 1,
        };
        assert_eq!(needs(credit.into()), caps(&["download"]));
        let cancel = DownloadCancel {
            download_id: "d".into(),
        };
        assert_eq!(needs(cancel.into()), caps(&["download"]));
        assert_eq!(
            needs(HealthSet { checks: vec![] }.into()),
            caps(&["health"])
        );
        let ack = Ack {
            correlation_id: "c".into(),
            accepted: true,
            reason: None,
        };
        assert!(needs(ack.into()).is_empty());
    }

    /// The first missing capability is named; `hook_shell` is dropped for
    /// an agent without `hooks`.
    #[test]
    fn missing_and_stripped() {
        let declared = caps(&["cancel", "restore"]);
        assert_eq!(first_missing(&declared, &caps(&["restore"])), None);
        assert_eq!(
            first_missing(&declared, &caps(&["restore", "dump:mariadb"])),
            Some("dump:mariadb")
        );
        let update = ConfigUpdate {
            repo_url: Some("/srv/repo".to_owned()),
            hook_shell: Some(Some("bash".to_owned())),
            ..ConfigUpdate::default()
        };
        let stripped = strip_config(&declared, update.clone());
        assert_eq!(stripped.hook_shell, None);
        assert_eq!(stripped.repo_url.as_deref(), Some("/srv/repo"));
        assert_eq!(strip_config(&caps(&["hooks"]), update.clone()), update);
    }
}
