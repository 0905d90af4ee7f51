//! One enum per direction, [`AgentToServer`] and [`ServerToAgent`], built by
//! `wire_messages!` from a table of variant, payload and wire `type`.

use serde::{Serialize, Serializer};

use super::decode::{clip, decode_payload};
use super::*;

/// Defines one direction's message enum from a table of variant, payload
/// and wire `type`: the enum, its `TYPES`, [`WireMessage`] (type name,
/// decode dispatch), payload-only `Serialize`, and `From<payload>`.
macro_rules! wire_messages {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($payload:ty) = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($payload), )+
        }

        impl $name {
            /// Every wire `type` of this direction, in PROTOCOL.md's order.
            pub const TYPES: &'static [&'static str] = &[$($wire),+];
        }

        impl WireMessage for $name {
            fn type_name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $wire, )+
                }
            }

            fn decode_data(message_type: &str, data: &str) -> Result<Self, DecodeError> {
                match message_type {
                    $( $wire => decode_payload::<$payload>(message_type, data).map(Self::$variant), )+
                    other => Err(DecodeError::UnknownType(clip(other))),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Self::$variant(payload) => payload.serialize(serializer), )+
                }
            }
        }

        $(
            impl From<$payload> for $name {
                fn from(payload: $payload) -> Self {
                    Self::$variant(payload)
                }
            }
        )+
    };
}

wire_messages! {
    /// Every message an agent sends.
    pub enum AgentToServer {
        /// `hello`
        Hello(Hello) = "hello",
        /// `heartbeat`
        Heartbeat(Heartbeat) = "heartbeat",
        /// `command.result`
        CommandResult(CommandResult) = "command.result",
        /// `job.started`
        JobStarted(JobStarted) = "job.started",
        /// `job.progress`
        JobProgress(JobProgress) = "job.progress",
        /// `log.stream`
        LogStream(LogStream) = "log.stream",
        /// `job.finished` (at least once; answered by `ack`)
        JobFinished(JobFinished) = "job.finished",
        /// `snapshots.report` (at least once; answered by `ack`)
        SnapshotsReport(SnapshotsReport) = "snapshots.report",
        /// `repo.stats`
        RepoStats(RepoStats) = "repo.stats",
        /// `schedule.ack`
        ScheduleAck(ScheduleAck) = "schedule.ack",
        /// `schedule.fire`
        ScheduleFire(ScheduleFire) = "schedule.fire",
        /// `catalog.chunk`
        CatalogChunk(CatalogChunk) = "catalog.chunk",
        /// `catalog.listing`
        CatalogListing(CatalogListing) = "catalog.listing",
        /// `download.ready`
        DownloadReady(DownloadReady) = "download.ready",
        /// `download.end`
        DownloadEnd(DownloadEnd) = "download.end",
        /// `health.report`
        HealthReport(HealthReport) = "health.report",
        /// `job.report` (a job the agent ran offline; at least once; answered by `ack`)
        JobReport(JobReport) = "job.report",
        /// `ack` (of a `config.update` that carries a `version`)
        Ack(Ack) = "ack",
        /// `discovery.report` (only from an agent with the `discovery` capability)
        DiscoveryReport(DiscoveryReport) = "discovery.report",
    }
}

wire_messages! {
    /// Every message a server sends.
    pub enum ServerToAgent {
        /// `config.update`
        ConfigUpdate(ConfigUpdate) = "config.update",
        /// `schedule.set`
        ScheduleSet(ScheduleSet) = "schedule.set",
        /// `command.run` (at least once; the agent de-duplicates by `job_id`)
        CommandRun(CommandRun) = "command.run",
        /// `command.cancel`
        CommandCancel(CommandCancel) = "command.cancel",
        /// `agent.update_available`
        AgentUpdateAvailable(AgentUpdateAvailable) = "agent.update_available",
        /// `ack`
        Ack(Ack) = "ack",
        /// `error`
        Error(ErrorFrame) = "error",
        /// `catalog.list`
        CatalogList(CatalogList) = "catalog.list",
        /// `download.start`
        DownloadStart(DownloadStart) = "download.start",
        /// `download.credit`
        DownloadCredit(DownloadCredit) = "download.credit",
        /// `download.cancel`
        DownloadCancel(DownloadCancel) = "download.cancel",
        /// `health.set` (only to an agent with the `health` capability)
        HealthSet(HealthSet) = "health.set",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use chrono::TimeZone;
    use chrono::Utc;
    use serde_json::json;
    use serde_json::Value;

    // --- wire spellings ----------------------------------------------------

    /// The agent→server type names are spelled exactly as PROTOCOL.md.
    #[test]
    fn agent_to_server_type_names_are_pinned() {
        assert_eq!(
            AgentToServer::TYPES,
            &[
                "hello",
                "heartbeat",
                "command.result",
                "job.started",
                "job.progress",
                "log.stream",
                "job.finished",
                "snapshots.report",
                "repo.stats",
                "schedule.ack",
                "schedule.fire",
                "catalog.chunk",
                "catalog.listing",
                "download.ready",
                "download.end",
                "health.report",
                "job.report",
                "ack",
                "discovery.report",
            ]
        );
    }

    /// The server→agent type names are spelled exactly as PROTOCOL.md.
    #[test]
    fn server_to_agent_type_names_are_pinned() {
        assert_eq!(
            ServerToAgent::TYPES,
            &[
                "config.update",
                "schedule.set",
                "command.run",
                "command.cancel",
                "agent.update_available",
                "ack",
                "error",
                "catalog.list",
                "download.start",
                "download.credit",
                "download.cancel",
                "health.set",
            ]
        );
    }

    // --- compatibility rules ------------------------------------------------

    /// A renamed field is a protocol break: `jobId` does not satisfy `job_id`.
    #[test]
    fn renamed_field_is_rejected() {
        let (message_type, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"command.result","id":"x","data":{"jobId":"0193","accepted":true}}"#,
        ));
        assert_eq!(message_type, "command.result");
        assert_eq!(detail, "missing field `job_id`");

        let (_, detail) = bad_data_detail(decode_s2a(
            r#"{"type":"schedule.set","id":"x","data":{"version":1,"schedules":[{"id":"s","cronExpr":"* * * * *","enabled":true}]}}"#,
        ));
        assert_eq!(detail, "schedules[0]: missing field `cron_expr`");
    }

    /// Unknown fields are ignored in the envelope, in `data` and nested.
    #[test]
    fn unknown_fields_are_ignored() {
        let message = decode_s2a(
            r#"{"type":"schedule.set","id":"x","trace":"t","data":{"version":2,"future":{"a":1},"schedules":[{"id":"s","cron_expr":"@daily","enabled":false,"jitter":5,"source_groups":[{"name":"g","priority":3,"retention_policy":{"keep_last":1,"keep_tags":["x"]}}]}]}}"#,
        )
        .unwrap();
        assert_eq!(
            message,
            ServerToAgent::ScheduleSet(ScheduleSet {
                version: 2,
                schedules: vec![ScheduleSpec {
                    id: "s".to_owned(),
                    cron_expr: "@daily".to_owned(),
                    enabled: false,
                    kind: ScheduleKind::Backup,
                    source_groups: vec![SourceGroupSpec {
                        name: "g".to_owned(),
                        includes: vec![],
                        excludes: vec![],
                        retention_policy: Some(RetentionPolicy {
                            keep_last: Some(1),
                            ..RetentionPolicy::default()
                        }),
                        retry_max: 0,
                        retry_backoff_seconds: 0,
                    }],
                }],
            })
        );
    }

    /// Optional fields absent decode to `None`/empty and are not written back.
    #[test]
    fn optional_fields_absent_are_omitted_on_encode() {
        let text = r#"{"type":"job.progress","id":"p","data":{"job_id":"j"}}"#;
        let envelope = Envelope::<AgentToServer>::decode(text).unwrap();
        let AgentToServer::JobProgress(progress) = &envelope.message else {
            panic!("expected job.progress, got {:?}", envelope.message);
        };
        assert_eq!(progress.eta_seconds, None);
        assert_eq!(progress.files_done, 0);
        let encoded: Value = serde_json::from_str(&envelope.encode()).unwrap();
        assert!(encoded["data"].get("eta_seconds").is_none());
        assert_eq!(encoded["data"]["files_done"], json!(0));

        let finished = JobFinished {
            job_id: "j".to_owned(),
            status: FinishStatus::Cancelled,
            exit_code: 130,
            finished_at: ts("2026-11-23T02:00:41Z"),
            stats: None,
            error: None,
        };
        let encoded: Value =
            serde_json::from_str(&Envelope::with_id("f", AgentToServer::from(finished)).encode())
                .unwrap();
        assert_eq!(
            encoded,
            json!({"type":"job.finished","id":"f","data":{"job_id":"j","status":"cancelled","exit_code":130,"finished_at":"2026-11-23T02:00:41Z"}})
        );
    }

    /// Explicit `null` for an optional field reads as absent.
    #[test]
    fn null_optional_field_is_absent() {
        let message = decode_a2s(
            r#"{"type":"command.result","id":"x","data":{"job_id":"j","accepted":true,"error":null}}"#,
        )
        .unwrap();
        assert_eq!(
            message,
            AgentToServer::CommandResult(CommandResult {
                job_id: "j".to_owned(),
                accepted: true,
                error: None,
            })
        );
    }

    /// The primary lists of `schedule.set` and `snapshots.report` are
    /// required: their absence must not read as "disable all"/"no snapshots".
    #[test]
    fn primary_lists_are_required() {
        let (_, detail) = bad_data_detail(decode_s2a(
            r#"{"type":"schedule.set","id":"x","data":{"version":3}}"#,
        ));
        assert_eq!(detail, "missing field `schedules`");
        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"snapshots.report","id":"x","data":{}}"#,
        ));
        assert_eq!(detail, "missing field `snapshots`");
    }

    /// Timestamps with an offset are accepted and normalised to UTC.
    #[test]
    fn timestamps_with_offsets_normalise_to_utc() {
        let message = decode_a2s(
            r#"{"type":"schedule.fire","id":"x","data":{"schedule_id":"s","scheduled_at":"2026-11-23T03:00:00.123456789+01:00"}}"#,
        )
        .unwrap();
        let AgentToServer::ScheduleFire(fire) = message else {
            panic!("expected schedule.fire");
        };
        assert_eq!(
            fire.scheduled_at,
            Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
                + chrono::Duration::nanoseconds(123_456_789)
        );
        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"schedule.fire","id":"x","data":{"schedule_id":"s","scheduled_at":"yesterday"}}"#,
        ));
        assert!(detail.starts_with("scheduled_at: "), "{detail}");
    }
}
