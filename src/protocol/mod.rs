//! The agent ⇄ server wire protocol (`docs/PROTOCOL.md`, version 1), shared
//! by the server and the agent.
//!
//! This module owns the JSON shape of every WebSocket frame and of the HTTP
//! enrolment bodies, and nothing else: no I/O, no state, no policy. A frame is
//! an [`Envelope`] `{"type": .., "id": .., "data": {..}}`; its `message` is an
//! [`AgentToServer`] or a [`ServerToAgent`] value, one variant per wire type,
//! each wrapping one payload struct whose field names are the wire names.
//!
//! ```text
//! let frame = Envelope::new(AgentToServer::from(heartbeat)).encode();
//! let envelope = Envelope::<AgentToServer>::decode(&text)?;   // DecodeError names the problem
//! ```
//!
//! Decoding runs in two steps so that errors are precise and the hot path is
//! cheap (`log.stream` frames arrive at 100k/s at scale): first the envelope
//! (`type`, `id`, and `data` kept as borrowed raw JSON), then the payload for
//! that type only. Failures are typed ([`DecodeError`]) and map onto the
//! `error` frame codes of PROTOCOL.md ([`DecodeError::code`]); a failing
//! payload is parsed a second time, on the error path only, to name the field
//! at fault (`schedules[0].enabled: invalid type ..`). Unknown fields are
//! ignored everywhere (new optional fields never bump [`PROTOCOL_VERSION`]);
//! nothing here panics on any input.
//!
//! Secrets (`repo_password`, `repo_credential`, enrolment and agent tokens)
//! travel in these types, so their `Debug` output masks them, and decode
//! errors never echo the value of a secret field.
//!
//! # Layout
//!
//! - `envelope.rs`: [`Envelope`], [`WireMessage`], [`frame_id`] and
//!   [`hello_protocol_version`]: the frame around every message, encoding and
//!   the first decoding step.
//! - `decode.rs`: [`DecodeError`] and the payload decoding step that names
//!   the field at fault without echoing secrets.
//! - `enums.rs`: the wire enums ([`JobKind`], [`ScheduleKind`], [`JobStatus`], [`FinishStatus`],
//!   [`LogStreamKind`], [`LockState`]) and [`UnknownVariant`].
//! - `retention.rs`: [`RetentionPolicy`] and its validation.
//! - `options.rs`: [`RunOptions`], a source group's or policy's allow-listed
//!   restic options, the flags they become in `command.run.args` and the
//!   agent's check of those flags ([`check_option_arg`]).
//! - `restore.rs`: [`RestoreSpec`] (`command.run.restore`) and its checks.
//! - `drill.rs`: [`DrillSpec`] (`command.run.drill`) and a drill's stats.
//! - `dump.rs`: [`DumpSpec`] (`command.run.dump`, a dump source group)
//!   and its checks.
//! - `agent_messages.rs`: the payloads an agent sends (`hello` … `schedule.fire`).
//! - `server_messages.rs`: the payloads a server sends (`config.update` … `error`).
//! - `catalog.rs`: the snapshot catalog's payloads (`catalog.chunk`,
//!   `catalog.list`, `catalog.listing`) and their chunk bounds.
//! - `health.rs`: service health checks, `health.set` and `health.report`
//!   ([`HealthCheckSpec`], [`validate_checks`]).
//! - `nullable.rs`: [`nullable`], the absent / `null` / value decoding of
//!   a field that an explicit `null` clears, and [`apply_patch`].
//! - `messages.rs`: one enum per direction, [`AgentToServer`] and
//!   [`ServerToAgent`], tying each wire `type` to its payload.
//! - `downloads.rs`: the download stream's messages and its binary data
//!   frame ([`parse_data_frame`]).
//! - `offline.rs`: [`JobReport`] (`job.report`), a job the agent ran
//!   itself while the server was away.
//! - `discovery.rs`: [`DiscoveryReport`] (`discovery.report`), the Docker
//!   containers an agent found, with the rules on database images and
//!   secret environment variables.
//! - `capabilities.rs`: what each server → agent message, job kind and
//!   option needs of `hello.capabilities`, and protocol 1's set for an
//!   agent that declares none ([`message_capabilities`]).
//! - `enroll.rs`: the HTTP enrolment bodies [`EnrollRequest`] and
//!   [`EnrollResponse`].
//!
//! Each file carries the literal-JSON (golden) tests of what it defines.

use std::fmt;

mod agent_messages;
mod capabilities;
mod catalog;
mod decode;
mod discovery;
mod downloads;
mod drill;
mod dump;
mod enroll;
mod enums;
mod envelope;
mod health;
mod messages;
mod nullable;
mod offline;
mod options;
mod restore;
mod retention;
mod server_messages;
#[cfg(test)]
mod testing;

pub use agent_messages::{
    CommandResult, Heartbeat, Hello, JobFinished, JobProgress, JobStarted, LogStream, RepoStats,
    ScheduleAck, ScheduleFire, SnapshotInfo, SnapshotsReport,
};
pub use capabilities::{
    effective_capabilities, first_missing, kind_capability, message_capabilities, run_capabilities,
    strip_config, CAPABILITY_ACTIVE_JOB_IDS, CAPABILITY_CANCEL, CAPABILITY_CATALOG,
    CAPABILITY_DRILL, CAPABILITY_DURABLE_OUTBOX, CAPABILITY_HOOKS, CAPABILITY_LOCAL_CRON,
    CAPABILITY_RESTORE, PROTOCOL_1_CAPABILITIES,
};
pub use catalog::{
    dir_key, CatalogChunk, CatalogEntry, CatalogList, CatalogListing, CHUNK_MAX_BYTES,
    CHUNK_MAX_ENTRIES, ENTRIES_STAT,
};
pub use decode::DecodeError;
pub use discovery::{
    is_secret_name, ContainerPort, DatabaseType, DiscoveredContainer, DiscoveryReport, EnvHint,
    CAPABILITY_DISCOVERY, MAX_DISCOVERED_CONTAINERS, MAX_ENV_HINTS, SECRET_NAME_WORDS,
};
pub use downloads::{
    data_frame_header, parse_data_frame, DataFrameError, DownloadCancel, DownloadCredit,
    DownloadEnd, DownloadErrorCode, DownloadReady, DownloadStart, DownloadType, DATA_FRAME_KIND,
    DOWNLOAD_CHUNK_BYTES,
};
pub use drill::{
    DrillFile, DrillSpec, DRILL_BYTES_STAT, DRILL_DURATION_STAT, DRILL_FILES_STAT,
    DRILL_MISMATCHES_STAT,
};
pub use dump::{
    DumpDriver, DumpSpec, InvalidDump, CAPABILITY_DOCKER, CAPABILITY_DUMP_PREFIX, DUMP_BYTES_STAT,
    DUMP_ENGINE_STAT,
};
pub use enroll::{EnrollRequest, EnrollResponse};
pub use enums::{
    FinishStatus, JobKind, JobStatus, LockState, LogStreamKind, RestoreOverwrite, ScheduleKind,
    UnknownVariant,
};
pub use envelope::{encode_with_data, frame_id, hello_protocol_version, Envelope, WireMessage};
pub use health::{
    status_ok, validate_checks, HealthCheckResult, HealthCheckSpec, HealthCheckType, HealthReport,
    HealthSet, InvalidHealthCheck, CAPABILITY_HEALTH, MAX_TIMEOUT_SECONDS, MIN_INTERVAL_SECONDS,
    REPORT_EVERY_SECONDS,
};
pub use messages::{AgentToServer, ServerToAgent};
pub use nullable::{apply_patch, nullable};
pub use offline::{JobReport, CAPABILITY_OFFLINE_BACKUP, ORIGIN_AGENT};
pub use options::{
    check_option_arg, Compression, InvalidOption, RunOptions, FLAG_COMPRESSION,
    FLAG_USE_FS_SNAPSHOT, OPTION_KEYS,
};
pub use restore::{check_target, InvalidRestore, RestoreSpec};
pub use retention::{InvalidRetention, RetentionPolicy};
pub use server_messages::{
    Ack, AgentUpdateAvailable, CommandCancel, CommandRun, ConfigUpdate, ErrorFrame, ScheduleSet,
    ScheduleSpec, SourceGroupSpec,
};

/// The protocol version this build speaks; sent in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every `protocol_version` a server of this build accepts in `hello`.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[u32] = &[1];

/// `error.code` for a frame whose `type` is unknown; the connection stays up.
pub const ERROR_UNKNOWN_TYPE: &str = "unknown_type";

/// `error.code` for a frame that is not JSON, lacks `type`/`id`, or whose
/// `data` does not match its type's shape.
pub const ERROR_BAD_FRAME: &str = "bad_frame";

/// `error.code` for a `hello` whose `protocol_version` is not supported; the
/// frame carries `supported` and the server then closes with 1008.
pub const ERROR_UNSUPPORTED_PROTOCOL: &str = "unsupported_protocol";

/// `hello.os` spelling for Linux hosts.
pub const OS_LINUX: &str = "linux";
/// `hello.os` spelling for Windows hosts.
pub const OS_WINDOWS: &str = "windows";
/// `hello.arch` spelling for x86-64 hosts.
pub const ARCH_AMD64: &str = "amd64";
/// `hello.arch` spelling for 64-bit ARM hosts.
pub const ARCH_ARM64: &str = "arm64";

/// The `hello.capabilities` entry of an agent that answers
/// `download.start` (an older one would leave the request unanswered).
pub const CAPABILITY_DOWNLOAD: &str = "download";

/// Whether a server of this build accepts `hello.protocol_version = version`.
pub fn is_supported_protocol(version: u32) -> bool {
    SUPPORTED_PROTOCOL_VERSIONS.contains(&version)
}

/// A fresh envelope id: a random UUID v4 in its hyphenated text form.
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `Debug` of an optional secret: `Some("***")` or `None`.
struct Masked<'a>(Option<&'a str>);

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(\"***\")"),
            None => f.write_str("None"),
        }
    }
}

/// `Debug` of a three-state secret ([`nullable`]): `None`, `Some(None)`
/// (clear) or `Some(Some("***"))`.
struct MaskedPatch<'a>(Option<&'a Option<String>>);

impl fmt::Debug for MaskedPatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(Some(_)) => f.write_str("Some(Some(\"***\"))"),
            Some(None) => f.write_str("Some(None)"),
            None => f.write_str("None"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protocol version 1 is supported; others are not.
    #[test]
    fn supported_protocol_versions() {
        assert!(is_supported_protocol(PROTOCOL_VERSION));
        assert!(!is_supported_protocol(0));
        assert!(!is_supported_protocol(2));
        let frame = ErrorFrame::unsupported_protocol(2, Some("h".to_owned()));
        assert_eq!(frame.code, ERROR_UNSUPPORTED_PROTOCOL);
        assert_eq!(frame.supported, Some(vec![1]));
    }

    /// `Debug` of config and enrolment bodies never shows secrets or URL
    /// credentials.
    #[test]
    fn debug_masks_secrets() {
        let config = ConfigUpdate {
            repo_url: Some("rest:https://alice:hunter2@backup.example:8000/web".to_owned()),
            repo_password: Some("repo-pass-123".to_owned()),
            repo_username: Some(Some("alice".to_owned())),
            repo_credential: Some(Some("cred-456".to_owned())),
            hook_shell: None,
            version: Some(3),
        };
        let shown = format!("{:?}", Envelope::with_id("x", ServerToAgent::from(config)));
        for secret in ["hunter2", "repo-pass-123", "cred-456"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("rest:https://alice:***@backup.example:8000/web"),
            "{shown}"
        );
        assert!(shown.contains("alice"), "{shown}");

        let request = EnrollRequest {
            token: "enrol-secret".to_owned(),
            hostname: "web-01".to_owned(),
            os: OS_LINUX.to_owned(),
            arch: ARCH_AMD64.to_owned(),
        };
        let response = EnrollResponse {
            host_id: "h1".to_owned(),
            agent_token: "agent-secret".to_owned(),
        };
        let shown = format!("{request:?} {response:?}");
        assert!(!shown.contains("enrol-secret") && !shown.contains("agent-secret"));
        assert!(shown.contains("web-01") && shown.contains("h1"));
    }
}
