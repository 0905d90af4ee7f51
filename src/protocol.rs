//! The agent ⇄ server wire protocol (`shared/PROTOCOL.md`, version 1), shared
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

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

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

/// Longest text (in characters) a decode error quotes from its input, so a
/// hostile 8 MiB frame cannot make an 8 MiB error frame or log line.
const MAX_QUOTED_CHARS: usize = 200;

/// Payload fields whose values are secrets: decode errors about them never
/// quote the offending value.
const SECRET_FIELDS: &[&str] = &["repo_password", "repo_credential", "token", "agent_token"];

/// Whether a server of this build accepts `hello.protocol_version = version`.
pub fn is_supported_protocol(version: u32) -> bool {
    SUPPORTED_PROTOCOL_VERSIONS.contains(&version)
}

/// A fresh envelope id: a random UUID v4 in its hyphenated text form.
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------

/// One frame: a message and the id its sender chose for it.
///
/// The id is what `ack.correlation_id` and `error.correlation_id` refer to,
/// and what the agent's outbox is keyed by: a re-sent message keeps its id
/// (build it with [`Envelope::with_id`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<M> {
    /// Sender-chosen unique id (UUID v4 or v7 text; any non-empty string is
    /// accepted on decode).
    pub id: String,
    /// The typed message; its variant decides the wire `type`.
    pub message: M,
}

impl<M> Envelope<M> {
    /// Wraps `message` under a fresh UUID v4 id.
    pub fn new(message: M) -> Self {
        Self {
            id: new_message_id(),
            message,
        }
    }

    /// Wraps `message` under a given id (a re-send from the outbox).
    pub fn with_id(id: impl Into<String>, message: M) -> Self {
        Self {
            id: id.into(),
            message,
        }
    }
}

impl<M: WireMessage> Envelope<M> {
    /// The frame's JSON text: `{"type":..,"id":..,"data":{..}}`.
    pub fn encode(&self) -> String {
        let frame = FrameOut {
            message_type: self.message.type_name(),
            id: &self.id,
            data: &self.message,
        };
        match serde_json::to_string(&frame) {
            Ok(text) => text,
            // Unreachable for the types of this module: serde_json fails only
            // when a `Serialize` impl reports an error or a map key is not a
            // string, and every payload here is derived from strings, numbers,
            // booleans, chrono timestamps and `Map<String, Value>`. Should a
            // future payload break that, the peer gets a well-formed frame
            // with empty data, answers `bad_frame`, and no ack drops anything.
            Err(_) => format!(
                "{{\"type\":\"{}\",\"id\":{},\"data\":{{}}}}",
                self.message.type_name(),
                Value::String(self.id.clone())
            ),
        }
    }

    /// Parses one text frame.
    ///
    /// The envelope is checked first (`Malformed` names what is wrong with
    /// it), then the `type` (`UnknownType`), then the payload of that type
    /// (`BadData` names the field). A missing or `null` `data` is `{}`.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let frame = RawFrame::parse(text)?;
        let id = frame.id()?;
        let message_type = frame.message_type()?;
        let message = M::decode_data(&message_type, frame.data_text())?;
        Ok(Self { id, message })
    }
}

/// The id of a frame that may not decode, so that an `error` frame can carry
/// it as `correlation_id`. `None` when the text has no usable `id`.
///
/// Meant for the error path only: it parses the envelope again.
pub fn frame_id(text: &str) -> Option<String> {
    RawFrame::parse(text).ok()?.id().ok()
}

/// The `protocol_version` of a `hello` frame that may not decode as this
/// version's [`Hello`] (a newer agent may have changed its shape), so that it
/// can still be answered with [`ErrorFrame::unsupported_protocol`] rather
/// than `bad_frame`. `None` for any other frame or a missing version.
///
/// Meant for the error path only: it parses the frame again.
pub fn hello_protocol_version(text: &str) -> Option<u32> {
    #[derive(Deserialize)]
    struct VersionOnly {
        protocol_version: u32,
    }
    let frame = RawFrame::parse(text).ok()?;
    if frame.message_type().ok()? != "hello" {
        return None;
    }
    serde_json::from_str::<VersionOnly>(frame.data_text())
        .ok()
        .map(|data| data.protocol_version)
}

/// A message type of one direction: the enums [`AgentToServer`] and
/// [`ServerToAgent`].
///
/// `Serialize` writes the payload only (the envelope's `data`).
pub trait WireMessage: Sized + Serialize {
    /// The wire `type` of this message (`"job.finished"`).
    fn type_name(&self) -> &'static str;

    /// Decodes the payload `data` (raw JSON text) of a frame of type
    /// `message_type`.
    fn decode_data(message_type: &str, data: &str) -> Result<Self, DecodeError>;
}

/// Serialised form of an outgoing frame.
#[derive(Serialize)]
struct FrameOut<'a, M: Serialize> {
    #[serde(rename = "type")]
    message_type: &'static str,
    id: &'a str,
    data: &'a M,
}

/// First decoding step: the envelope with every member kept as raw JSON, so
/// that each problem gets its own message and `data` is not parsed twice.
#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type", borrow, default)]
    message_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

impl<'a> RawFrame<'a> {
    fn parse(text: &'a str) -> Result<Self, DecodeError> {
        // serde's derived structs also accept JSON arrays (positionally), so
        // the object check comes first.
        if !text.trim_start().starts_with('{') {
            return Err(match serde_json::from_str::<&RawValue>(text) {
                Ok(value) => DecodeError::Malformed(format!(
                    "frame must be a JSON object, got {}",
                    json_kind(value.get())
                )),
                Err(err) => DecodeError::Malformed(format!(
                    "frame is not valid JSON: {}",
                    serde_message(&err)
                )),
            });
        }
        serde_json::from_str(text).map_err(|err| {
            let prefix = if err.is_data() {
                // Only possible data error with all-raw members: a repeated key.
                "frame"
            } else {
                "frame is not valid JSON"
            };
            DecodeError::Malformed(format!("{prefix}: {}", serde_message(&err)))
        })
    }

    fn id(&self) -> Result<String, DecodeError> {
        let raw = self
            .id
            .ok_or_else(|| DecodeError::Malformed("missing field `id`".to_owned()))?;
        let id: String = serde_json::from_str(raw.get()).map_err(|_| {
            DecodeError::Malformed(format!(
                "field `id` must be a string, got {}",
                json_kind(raw.get())
            ))
        })?;
        if id.is_empty() {
            return Err(DecodeError::Malformed(
                "field `id` must not be empty".to_owned(),
            ));
        }
        Ok(id)
    }

    fn message_type(&self) -> Result<Cow<'a, str>, DecodeError> {
        let raw = self
            .message_type
            .ok_or_else(|| DecodeError::Malformed("missing field `type`".to_owned()))?;
        let text = raw.get();
        // Fast path: a plain string without escapes is borrowed as is.
        if let Some(inner) = text
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
        {
            if !inner.contains('\\') {
                return Ok(Cow::Borrowed(inner));
            }
        }
        serde_json::from_str::<String>(text)
            .map(Cow::Owned)
            .map_err(|_| {
                DecodeError::Malformed(format!(
                    "field `type` must be a string, got {}",
                    json_kind(text)
                ))
            })
    }

    fn data_text(&self) -> &'a str {
        self.data.map_or("{}", RawValue::get)
    }
}

/// Decodes one payload; on failure re-parses with path tracking to name the
/// field at fault.
fn decode_payload<T: DeserializeOwned>(message_type: &str, data: &str) -> Result<T, DecodeError> {
    let bad = |detail: String| DecodeError::BadData {
        message_type: clip(message_type),
        detail,
    };
    if !data.trim_start().starts_with('{') {
        return Err(bad(format!(
            "`data` must be a JSON object, got {}",
            json_kind(data)
        )));
    }
    match serde_json::from_str::<T>(data) {
        Ok(payload) => Ok(payload),
        Err(plain) => Err(bad(describe_payload_error::<T>(data, &plain))),
    }
}

/// The message of a payload error, prefixed by the path of the field at
/// fault (`schedules[0].source_groups[1].retry_max: invalid type: ..`).
fn describe_payload_error<T: DeserializeOwned>(data: &str, plain: &serde_json::Error) -> String {
    let mut deserializer = serde_json::Deserializer::from_str(data);
    let tracked = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(_) => return serde_message(plain),
        Err(tracked) => tracked,
    };
    let path = tracked.path();
    let is_secret = path.iter().next_back().is_some_and(|segment| {
        matches!(segment, serde_path_to_error::Segment::Map { key } if SECRET_FIELDS.contains(&key.as_str()))
    });
    let message = if is_secret {
        // serde quotes the unexpected value; a secret's value is never shown.
        "invalid value (not shown: secret field)".to_owned()
    } else {
        serde_message(tracked.inner())
    };
    let path = path.to_string();
    if path == "." {
        message
    } else {
        format!("{}: {message}", clip(&path))
    }
}

/// serde_json's message without its " at line L column C" suffix (positions
/// inside `data` mean nothing to the peer), quoted text clipped.
fn serde_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let message = match full.rfind(" at line ") {
        Some(cut) if err.line() > 0 => &full[..cut],
        _ => full.as_str(),
    };
    clip(message)
}

/// A word for the kind of a raw JSON value, for error messages.
fn json_kind(raw: &str) -> &'static str {
    match raw.trim_start().bytes().next() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        _ => "something else",
    }
}

/// `text` cut to [`MAX_QUOTED_CHARS`] characters (on a char boundary).
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Decode errors and the `error` frame
// ---------------------------------------------------------------------------

/// Why a frame could not be decoded. The text of every variant is fit to go
/// back to the peer as `error.detail`: bounded in length, no secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, not an object, or `type` / `id` missing or of the wrong
    /// type; the text says which.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A well-formed frame whose `type` this direction does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// The `data` of a known type does not match its shape.
    #[error("bad data for {message_type}: {detail}")]
    BadData {
        /// The frame's `type`.
        message_type: String,
        /// serde's message, prefixed with the path of the field at fault.
        detail: String,
    },
}

impl DecodeError {
    /// The `error.code` that answers this failure: `"unknown_type"` or
    /// `"bad_frame"`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownType(_) => ERROR_UNKNOWN_TYPE,
            Self::Malformed(_) | Self::BadData { .. } => ERROR_BAD_FRAME,
        }
    }
}

/// A value that is not one of an enum's wire spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownVariant {
    /// What was being parsed ("job kind").
    pub what: &'static str,
    /// The rejected text (clipped).
    pub value: String,
}

// ---------------------------------------------------------------------------
// Wire enums
// ---------------------------------------------------------------------------

/// Defines a string enum with its wire spellings, `as_str`, `Display` and
/// `FromStr`, so the spelling is written once.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $wire => Ok(Self::$variant), )+
                    other => Err(UnknownVariant { what: $what, value: clip(other) }),
                }
            }
        }
    };
}

wire_enum! {
    /// The operation a job runs (`command.run.kind`, `job.started.kind`).
    pub enum JobKind ("job kind") {
        /// `restic backup` of one source group.
        Backup = "backup",
        /// `restic init` of the host's repository.
        Init = "init",
        /// `restic forget` with a retention policy.
        Forget = "forget",
        /// `restic prune`.
        Prune = "prune",
        /// `restic check`.
        Check = "check",
        /// `restic unlock`.
        Unlock = "unlock",
    }
}

wire_enum! {
    /// The lifecycle state of a job (server side; the agent reports the
    /// terminal ones with [`FinishStatus`]).
    pub enum JobStatus ("job status") {
        /// Created, not yet running on the agent.
        Queued = "queued",
        /// `job.started` received.
        Running = "running",
        /// Finished well (restic exit 0, or 3 with a warning in `error`).
        Succeeded = "succeeded",
        /// Finished badly, or lost by the agent.
        Failed = "failed",
        /// Stopped on request.
        Cancelled = "cancelled",
    }
}

impl JobStatus {
    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

wire_enum! {
    /// The outcome in `job.finished.status`.
    pub enum FinishStatus ("finish status") {
        /// Restic exit 0, or 3 ("some source files could not be read") with
        /// the warning in `error`.
        Succeeded = "succeeded",
        /// Any other outcome.
        Failed = "failed",
        /// Stopped after `command.cancel`.
        Cancelled = "cancelled",
    }
}

impl From<FinishStatus> for JobStatus {
    fn from(status: FinishStatus) -> Self {
        match status {
            FinishStatus::Succeeded => Self::Succeeded,
            FinishStatus::Failed => Self::Failed,
            FinishStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl TryFrom<JobStatus> for FinishStatus {
    type Error = UnknownVariant;

    fn try_from(status: JobStatus) -> Result<Self, Self::Error> {
        status.as_str().parse()
    }
}

wire_enum! {
    /// Which channel a `log.stream` line came from.
    pub enum LogStreamKind ("log stream") {
        /// A line restic wrote to stdout.
        Stdout = "stdout",
        /// A line restic wrote to stderr.
        Stderr = "stderr",
        /// A parsed restic `--json` event or an agent event.
        Event = "event",
    }
}

wire_enum! {
    /// Whether the repository held a lock when `repo.stats` was taken.
    pub enum LockState ("lock state") {
        /// At least one lock file exists.
        Locked = "locked",
        /// No lock.
        Unlocked = "unlocked",
    }
}

// ---------------------------------------------------------------------------
// Retention policy
// ---------------------------------------------------------------------------

/// Restic's keep options, the wire object `retention_policy`. Absent keys are
/// omitted on the wire; a policy with no key set is [`is_empty`](Self::is_empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// `--keep-last n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// `--keep-hourly n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// `--keep-daily n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// `--keep-weekly n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// `--keep-monthly n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// `--keep-yearly n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// `--keep-within d`, a restic duration such as `"30d"` or `"1y6m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
}

/// A retention policy restic would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRetention {
    /// `keep_within` is not a restic duration (digits and a unit among
    /// `y`, `m`, `d`, `h`, repeated).
    #[error("keep_within {0:?} is not a restic duration such as \"30d\" or \"1y6m\"")]
    KeepWithin(String),
}

impl RetentionPolicy {
    /// True when no keep option is set (restic's `forget` would remove
    /// nothing and complain).
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_hourly.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
            && self.keep_yearly.is_none()
            && self.keep_within.is_none()
    }

    /// Restic's command-line flags for this policy, in restic's order:
    /// `["--keep-daily", "7", "--keep-within", "30d"]`.
    pub fn keep_flags(&self) -> Vec<String> {
        let counts = [
            ("--keep-last", self.keep_last),
            ("--keep-hourly", self.keep_hourly),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
            ("--keep-monthly", self.keep_monthly),
            ("--keep-yearly", self.keep_yearly),
        ];
        let mut flags = Vec::new();
        for (flag, count) in counts {
            if let Some(count) = count {
                flags.push(flag.to_owned());
                flags.push(count.to_string());
            }
        }
        if let Some(within) = &self.keep_within {
            flags.push("--keep-within".to_owned());
            flags.push(within.clone());
        }
        flags
    }

    /// Checks what restic would reject: a `keep_within` that is not a
    /// duration (it would also be read as a flag if it began with `-`).
    pub fn validate(&self) -> Result<(), InvalidRetention> {
        match &self.keep_within {
            Some(within) if !is_restic_duration(within) => {
                Err(InvalidRetention::KeepWithin(clip(within)))
            }
            _ => Ok(()),
        }
    }
}

/// Restic's duration grammar: one or more `<digits><unit>`, unit in `ymdh`.
fn is_restic_duration(text: &str) -> bool {
    let mut digits = 0usize;
    let mut groups = 0usize;
    for byte in text.bytes() {
        match byte {
            b'0'..=b'9' => digits += 1,
            b'y' | b'm' | b'd' | b'h' if digits > 0 => {
                digits = 0;
                groups += 1;
            }
            _ => return false,
        }
    }
    digits == 0 && groups > 0
}

// ---------------------------------------------------------------------------
// Agent → server payloads
// ---------------------------------------------------------------------------

/// `hello`: the agent's first frame on a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the agent speaks ([`PROTOCOL_VERSION`]).
    pub protocol_version: u32,
    /// The agent's own version.
    pub agent_version: String,
    /// `restic version` as found on the host.
    pub restic_version: String,
    /// The host's name.
    pub hostname: String,
    /// [`OS_LINUX`] or [`OS_WINDOWS`].
    pub os: String,
    /// [`ARCH_AMD64`] or [`ARCH_ARM64`].
    pub arch: String,
    /// When the host booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_time: Option<DateTime<Utc>>,
    /// Optional features the agent has (seed 002).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The last config version the agent applied (seed 002).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_config_version: Option<u64>,
}

/// `heartbeat`: sent every 30 s; marks the host online.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's clock when it sent the frame.
    pub sent_at: DateTime<Utc>,
    /// Jobs the agent is running. `None` (absent) means the agent does not
    /// report them, which is not the same as `Some(vec![])`, "none running":
    /// only the latter lets the server fail a job the agent lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_job_ids: Option<Vec<String>>,
    /// Host metrics (`load1`, `mem_used_bytes`, `disk_free_bytes`, ..); a key
    /// is present only when it was measured.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metrics: Map<String, Value>,
}

/// `command.result`: the agent accepted (persisted) or refused a
/// `command.run`. Not the job's completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The job of the `command.run`.
    pub job_id: String,
    /// Whether the agent took the job.
    pub accepted: bool,
    /// Why it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `job.started`: the agent began running a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStarted {
    /// The job.
    pub job_id: String,
    /// What it runs.
    pub kind: JobKind,
    /// When restic was started.
    pub started_at: DateTime<Utc>,
}

/// `job.progress`: the latest restic status of a running job. Kinds other
/// than backup fill the subset that makes sense (missing counters are 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// The job.
    pub job_id: String,
    /// Fraction done, 0..1.
    #[serde(default)]
    pub percent_done: f64,
    /// Files processed so far.
    #[serde(default)]
    pub files_done: u64,
    /// Files found so far by the scanner.
    #[serde(default)]
    pub total_files: u64,
    /// Bytes processed so far.
    #[serde(default)]
    pub bytes_done: u64,
    /// Bytes found so far by the scanner.
    #[serde(default)]
    pub total_bytes: u64,
    /// Estimated seconds left; absent while restic cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    /// Current throughput in bytes per second.
    #[serde(default)]
    pub throughput_bps: u64,
}

/// `log.stream`: one line of a job's live log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStream {
    /// The job.
    pub job_id: String,
    /// Per job, from 1, strictly increasing; `(job_id, seq)` de-duplicates.
    pub seq: u64,
    /// When the line was read.
    pub ts: DateTime<Utc>,
    /// Its channel.
    pub stream: LogStreamKind,
    /// The line, without its newline.
    pub payload: String,
}

/// `job.finished`: a job's terminal state. Kept in the agent's outbox until
/// the server's `ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFinished {
    /// The job.
    pub job_id: String,
    /// Its outcome.
    pub status: FinishStatus,
    /// Restic's exit code (PROTOCOL.md lists their meanings).
    pub exit_code: i32,
    /// When restic ended.
    pub finished_at: DateTime<Utc>,
    /// Restic's summary object, as restic printed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Map<String, Value>>,
    /// The error, or the warning of a `succeeded` exit 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One snapshot of `snapshots.report`, mirrored from `restic snapshots --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The long snapshot id.
    pub id: String,
    /// Its 8-hex-digit short form.
    pub short_id: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// The host restic recorded.
    pub hostname: String,
    /// The backed-up paths.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Its tags (the source group's name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Total size, from restic ≥ 0.17's summary; absent on older restic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Total files, from restic ≥ 0.17's summary; absent on older restic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_count: Option<u64>,
}

/// `snapshots.report`: the host's full snapshot list; replaces the server's
/// projection, so the list is required (an absent list is a bad frame, not
/// "no snapshots").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsReport {
    /// Every snapshot of the host's repository.
    pub snapshots: Vec<SnapshotInfo>,
}

/// `repo.stats`: periodic repository health facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoStats {
    /// Repository size on disk.
    pub size_bytes: u64,
    /// Number of snapshots.
    pub snapshot_count: u64,
    /// Logical size over stored size.
    pub dedup_ratio: f64,
    /// When `restic check` last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_at: Option<DateTime<Utc>>,
    /// How that check ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_status: Option<String>,
    /// Whether a lock was held.
    pub lock_state: LockState,
}

/// `schedule.ack`: the agent applied a `schedule.set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleAck {
    /// The `schedule.set` version applied.
    pub version: u64,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
}

/// `schedule.fire`: one of the agent's cron entries fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleFire {
    /// The schedule ([`ScheduleSpec::id`]).
    pub schedule_id: String,
    /// The wall-clock time the entry fired.
    pub scheduled_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------
// Server → agent payloads
// ---------------------------------------------------------------------------

/// `config.update`: per-host repository settings. An absent field means
/// "leave as is". `Debug` masks the secrets and any credentials in the URL.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    /// `RESTIC_REPOSITORY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// `RESTIC_PASSWORD` (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_password: Option<String>,
    /// REST user name or S3 access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_username: Option<String>,
    /// REST password or S3 secret key (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_credential: Option<String>,
    /// The shell hooks run under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_shell: Option<String>,
}

impl fmt::Debug for ConfigUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigUpdate")
            .field(
                "repo_url",
                &self.repo_url.as_deref().map(crate::redact::url),
            )
            .field("repo_password", &Masked(self.repo_password.as_deref()))
            .field("repo_username", &self.repo_username)
            .field("repo_credential", &Masked(self.repo_credential.as_deref()))
            .field("hook_shell", &self.hook_shell)
            .finish()
    }
}

/// One schedule of `schedule.set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The schedule's id, echoed in `schedule.fire`.
    pub id: String,
    /// Five-field cron expression.
    pub cron_expr: String,
    /// A disabled schedule never fires.
    pub enabled: bool,
    /// The source groups it backs up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_groups: Vec<SourceGroupSpec>,
}

/// A source group as attached to a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroupSpec {
    /// Unique per host; the snapshot tag.
    pub name: String,
    /// Paths to back up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
    /// Restic exclude patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// What `forget` keeps for this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
    /// Retries of a failed backup.
    #[serde(default)]
    pub retry_max: u32,
    /// Seconds between retries.
    #[serde(default)]
    pub retry_backoff_seconds: u32,
}

/// `schedule.set`: the host's full canonical schedule list. The list is
/// required: an empty list disables everything, an absent one is a bad frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSet {
    /// The host's schedule version, echoed in `schedule.ack`.
    pub version: u64,
    /// Every schedule of the host.
    pub schedules: Vec<ScheduleSpec>,
}

/// `command.run`: run a job now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRun {
    /// The job; the agent de-duplicates by it.
    pub job_id: String,
    /// What to run.
    pub kind: JobKind,
    /// Extra restic arguments for kinds without structured fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Backup: paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
    /// Backup: exclude patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Backup: snapshot tag; forget: `--tag` filter (the source group name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Forget: what to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
}

/// `command.cancel`: stop a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandCancel {
    /// The job.
    pub job_id: String,
}

/// `agent.update_available`: informational; the agent never self-updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUpdateAvailable {
    /// The newest agent version.
    pub latest_version: String,
    /// Where the package comes from (apt repository, Chocolatey source).
    pub package_url: String,
    /// What changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<String>,
}

/// `ack`: the server applied (or refused) the frame with id `correlation_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The acknowledged envelope's `id`.
    pub correlation_id: String,
    /// Whether it was applied.
    pub accepted: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `error`: the answer to a frame that could not be handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// [`ERROR_UNKNOWN_TYPE`], [`ERROR_BAD_FRAME`] or
    /// [`ERROR_UNSUPPORTED_PROTOCOL`].
    pub code: String,
    /// Human-readable, names the field at fault.
    #[serde(default)]
    pub detail: String,
    /// The offending envelope's `id`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// With `unsupported_protocol`: the versions the server accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<Vec<u32>>,
}

impl ErrorFrame {
    /// The answer to a frame that failed to decode; `correlation_id` is
    /// usually [`frame_id`] of the frame's text.
    pub fn from_decode_error(error: &DecodeError, correlation_id: Option<String>) -> Self {
        Self {
            code: error.code().to_owned(),
            detail: error.to_string(),
            correlation_id,
            supported: None,
        }
    }

    /// The answer to a `hello` with an unsupported `protocol_version`.
    pub fn unsupported_protocol(requested: u32, correlation_id: Option<String>) -> Self {
        Self {
            code: ERROR_UNSUPPORTED_PROTOCOL.to_owned(),
            detail: format!("protocol_version {requested} is not supported"),
            correlation_id,
            supported: Some(SUPPORTED_PROTOCOL_VERSIONS.to_vec()),
        }
    }
}

// ---------------------------------------------------------------------------
// Direction enums
// ---------------------------------------------------------------------------

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
    }
}

// ---------------------------------------------------------------------------
// HTTP enrolment (POST /api/v1/agent/enroll)
// ---------------------------------------------------------------------------

/// Body of `POST /api/v1/agent/enroll`. `Debug` masks the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The one-time enrolment token (secret).
    pub token: String,
    /// The host's name.
    pub hostname: String,
    /// [`OS_LINUX`] or [`OS_WINDOWS`].
    pub os: String,
    /// [`ARCH_AMD64`] or [`ARCH_ARM64`].
    pub arch: String,
}

impl fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("token", &Masked(Some(&self.token)))
            .field("hostname", &self.hostname)
            .field("os", &self.os)
            .field("arch", &self.arch)
            .finish()
    }
}

/// Answer to a successful enrolment. `Debug` masks the agent token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The host's id on the server.
    pub host_id: String,
    /// The agent's bearer token for the WebSocket (secret; shown once).
    pub agent_token: String,
}

impl fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("host_id", &self.host_id)
            .field("agent_token", &Masked(Some(&self.agent_token)))
            .finish()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn ts(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    /// Decodes `text` as agent→server, checks it equals `expected`, and that
    /// encoding gives back the same JSON.
    fn golden_a2s(text: &str, expected_id: &str, expected: AgentToServer) {
        let envelope = Envelope::<AgentToServer>::decode(text).expect("golden frame decodes");
        assert_eq!(envelope.id, expected_id);
        assert_eq!(envelope.message, expected);
        assert_same_json(&envelope.encode(), text);
    }

    /// As [`golden_a2s`], server→agent.
    fn golden_s2a(text: &str, expected_id: &str, expected: ServerToAgent) {
        let envelope = Envelope::<ServerToAgent>::decode(text).expect("golden frame decodes");
        assert_eq!(envelope.id, expected_id);
        assert_eq!(envelope.message, expected);
        assert_same_json(&envelope.encode(), text);
    }

    fn assert_same_json(actual: &str, expected: &str) {
        let actual: Value = serde_json::from_str(actual).expect("encoded JSON");
        let expected: Value = serde_json::from_str(expected).expect("golden JSON");
        assert_eq!(actual, expected);
    }

    fn decode_a2s(text: &str) -> Result<AgentToServer, DecodeError> {
        Envelope::<AgentToServer>::decode(text).map(|envelope| envelope.message)
    }

    fn decode_s2a(text: &str) -> Result<ServerToAgent, DecodeError> {
        Envelope::<ServerToAgent>::decode(text).map(|envelope| envelope.message)
    }

    fn bad_data_detail(result: Result<impl fmt::Debug, DecodeError>) -> (String, String) {
        match result {
            Err(DecodeError::BadData {
                message_type,
                detail,
            }) => (message_type, detail),
            other => panic!("expected BadData, got {other:?}"),
        }
    }

    fn malformed_detail(result: Result<impl fmt::Debug, DecodeError>) -> String {
        match result {
            Err(DecodeError::Malformed(detail)) => detail,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    // --- wire spellings ----------------------------------------------------

    /// The eleven agent→server type names are spelled exactly as PROTOCOL.md.
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
            ]
        );
    }

    /// The seven server→agent type names are spelled exactly as PROTOCOL.md.
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
            ]
        );
    }

    /// Enum wire spellings are pinned and `FromStr` inverts `as_str`.
    #[test]
    fn enum_spellings_are_pinned_and_parse_back() {
        let kinds: Vec<_> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            kinds,
            ["backup", "init", "forget", "prune", "check", "unlock"]
        );
        let statuses: Vec<_> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            statuses,
            ["queued", "running", "succeeded", "failed", "cancelled"]
        );
        let finish: Vec<_> = FinishStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(finish, ["succeeded", "failed", "cancelled"]);
        let streams: Vec<_> = LogStreamKind::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(streams, ["stdout", "stderr", "event"]);
        let locks: Vec<_> = LockState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(locks, ["locked", "unlocked"]);

        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(*status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
        }
        for stream in LogStreamKind::ALL {
            assert_eq!(stream.as_str().parse::<LogStreamKind>(), Ok(*stream));
        }
        for lock in LockState::ALL {
            assert_eq!(lock.as_str().parse::<LockState>(), Ok(*lock));
        }
        assert_eq!(
            "Backup".parse::<JobKind>(),
            Err(UnknownVariant {
                what: "job kind",
                value: "Backup".to_owned()
            })
        );
        assert!("done".parse::<JobStatus>().is_err());
    }

    /// Only succeeded, failed and cancelled are terminal; finish statuses map
    /// onto them and back.
    #[test]
    fn job_status_terminality_and_finish_mapping() {
        assert!(!JobStatus::Queued.is_terminal());
        assert!(!JobStatus::Running.is_terminal());
        assert!(JobStatus::Succeeded.is_terminal());
        assert!(JobStatus::Failed.is_terminal());
        assert!(JobStatus::Cancelled.is_terminal());
        for finish in FinishStatus::ALL {
            let status = JobStatus::from(*finish);
            assert!(status.is_terminal());
            assert_eq!(status.as_str(), finish.as_str());
            assert_eq!(FinishStatus::try_from(status), Ok(*finish));
        }
        assert!(FinishStatus::try_from(JobStatus::Running).is_err());
    }

    // --- golden frames, agent → server --------------------------------------

    /// `hello` as in PROTOCOL.md's example.
    #[test]
    fn golden_hello() {
        golden_a2s(
            r#"{"type":"hello","id":"9f1c","data":{"protocol_version":1,"agent_version":"0.1.0","restic_version":"0.14.0","hostname":"web-01","os":"linux","arch":"amd64","boot_time":"2026-11-20T08:00:00Z"}}"#,
            "9f1c",
            AgentToServer::Hello(Hello {
                protocol_version: 1,
                agent_version: "0.1.0".to_owned(),
                restic_version: "0.14.0".to_owned(),
                hostname: "web-01".to_owned(),
                os: OS_LINUX.to_owned(),
                arch: ARCH_AMD64.to_owned(),
                boot_time: Some(ts("2026-11-20T08:00:00Z")),
                capabilities: vec![],
                last_known_config_version: None,
            }),
        );
    }

    /// `hello` with seed 002's optional fields and without `boot_time`.
    #[test]
    fn golden_hello_with_optional_fields() {
        golden_a2s(
            r#"{"type":"hello","id":"h2","data":{"protocol_version":1,"agent_version":"0.2.0","restic_version":"0.18.1","hostname":"win-7","os":"windows","arch":"arm64","capabilities":["vss"],"last_known_config_version":12}}"#,
            "h2",
            AgentToServer::Hello(Hello {
                protocol_version: 1,
                agent_version: "0.2.0".to_owned(),
                restic_version: "0.18.1".to_owned(),
                hostname: "win-7".to_owned(),
                os: OS_WINDOWS.to_owned(),
                arch: ARCH_ARM64.to_owned(),
                boot_time: None,
                capabilities: vec!["vss".to_owned()],
                last_known_config_version: Some(12),
            }),
        );
    }

    /// `heartbeat` with only `sent_at`: no active-job report, no metrics.
    #[test]
    fn golden_heartbeat_minimal() {
        golden_a2s(
            r#"{"type":"heartbeat","id":"hb1","data":{"sent_at":"2026-11-23T02:00:00Z"}}"#,
            "hb1",
            AgentToServer::Heartbeat(Heartbeat {
                sent_at: ts("2026-11-23T02:00:00Z"),
                active_job_ids: None,
                metrics: Map::new(),
            }),
        );
    }

    /// `heartbeat` with active jobs and measured metrics; an empty
    /// `active_job_ids` stays distinct from an absent one.
    #[test]
    fn golden_heartbeat_full() {
        let mut metrics = Map::new();
        metrics.insert("load1".to_owned(), json!(0.25));
        metrics.insert("disk_free_bytes".to_owned(), json!(1_000_000_u64));
        golden_a2s(
            r#"{"type":"heartbeat","id":"hb2","data":{"sent_at":"2026-11-23T02:00:30Z","active_job_ids":["j1","j2"],"metrics":{"load1":0.25,"disk_free_bytes":1000000}}}"#,
            "hb2",
            AgentToServer::Heartbeat(Heartbeat {
                sent_at: ts("2026-11-23T02:00:30Z"),
                active_job_ids: Some(vec!["j1".to_owned(), "j2".to_owned()]),
                metrics,
            }),
        );
        golden_a2s(
            r#"{"type":"heartbeat","id":"hb3","data":{"sent_at":"2026-11-23T02:01:00Z","active_job_ids":[]}}"#,
            "hb3",
            AgentToServer::Heartbeat(Heartbeat {
                sent_at: ts("2026-11-23T02:01:00Z"),
                active_job_ids: Some(vec![]),
                metrics: Map::new(),
            }),
        );
    }

    /// `command.result` accepted (no `error`) and refused (with `error`).
    #[test]
    fn golden_command_result() {
        golden_a2s(
            r#"{"type":"command.result","id":"cr1","data":{"job_id":"0193","accepted":true}}"#,
            "cr1",
            AgentToServer::CommandResult(CommandResult {
                job_id: "0193".to_owned(),
                accepted: true,
                error: None,
            }),
        );
        golden_a2s(
            r#"{"type":"command.result","id":"cr2","data":{"job_id":"0194","accepted":false,"error":"repository not configured"}}"#,
            "cr2",
            AgentToServer::CommandResult(CommandResult {
                job_id: "0194".to_owned(),
                accepted: false,
                error: Some("repository not configured".to_owned()),
            }),
        );
    }

    /// `job.started`.
    #[test]
    fn golden_job_started() {
        golden_a2s(
            r#"{"type":"job.started","id":"js1","data":{"job_id":"0193","kind":"forget","started_at":"2026-11-23T02:00:01Z"}}"#,
            "js1",
            AgentToServer::JobStarted(JobStarted {
                job_id: "0193".to_owned(),
                kind: JobKind::Forget,
                started_at: ts("2026-11-23T02:00:01Z"),
            }),
        );
    }

    /// `job.progress` with every field.
    #[test]
    fn golden_job_progress() {
        golden_a2s(
            r#"{"type":"job.progress","id":"jp1","data":{"job_id":"0193","percent_done":0.5,"files_done":10,"total_files":20,"bytes_done":1024,"total_bytes":2048,"eta_seconds":7,"throughput_bps":4096}}"#,
            "jp1",
            AgentToServer::JobProgress(JobProgress {
                job_id: "0193".to_owned(),
                percent_done: 0.5,
                files_done: 10,
                total_files: 20,
                bytes_done: 1024,
                total_bytes: 2048,
                eta_seconds: Some(7),
                throughput_bps: 4096,
            }),
        );
    }

    /// `log.stream` for each stream kind.
    #[test]
    fn golden_log_stream() {
        for kind in LogStreamKind::ALL {
            let text = format!(
                r#"{{"type":"log.stream","id":"ls1","data":{{"job_id":"0193","seq":1,"ts":"2026-11-23T02:00:02.500Z","stream":"{}","payload":"scan finished"}}}}"#,
                kind.as_str()
            );
            golden_a2s(
                &text,
                "ls1",
                AgentToServer::LogStream(LogStream {
                    job_id: "0193".to_owned(),
                    seq: 1,
                    ts: Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 2).unwrap()
                        + chrono::Duration::milliseconds(500),
                    stream: *kind,
                    payload: "scan finished".to_owned(),
                }),
            );
        }
    }

    /// `job.finished` as in PROTOCOL.md's example, with the restic summary.
    #[test]
    fn golden_job_finished() {
        let mut stats = Map::new();
        stats.insert("files_new".to_owned(), json!(3));
        stats.insert("data_added".to_owned(), json!(3001768));
        stats.insert("snapshot_id".to_owned(), json!("f535d3c7"));
        golden_a2s(
            r#"{"type":"job.finished","id":"e0b7","data":{"job_id":"0193","status":"succeeded","exit_code":0,"finished_at":"2026-11-23T02:00:41Z","stats":{"files_new":3,"data_added":3001768,"snapshot_id":"f535d3c7"}}}"#,
            "e0b7",
            AgentToServer::JobFinished(JobFinished {
                job_id: "0193".to_owned(),
                status: FinishStatus::Succeeded,
                exit_code: 0,
                finished_at: ts("2026-11-23T02:00:41Z"),
                stats: Some(stats),
                error: None,
            }),
        );
    }

    /// `job.finished` failed, without `stats`, with `error`.
    #[test]
    fn golden_job_finished_failed() {
        golden_a2s(
            r#"{"type":"job.finished","id":"e0b8","data":{"job_id":"0195","status":"failed","exit_code":1,"finished_at":"2026-11-23T02:00:41Z","error":"Fatal: wrong password or no key found"}}"#,
            "e0b8",
            AgentToServer::JobFinished(JobFinished {
                job_id: "0195".to_owned(),
                status: FinishStatus::Failed,
                exit_code: 1,
                finished_at: ts("2026-11-23T02:00:41Z"),
                stats: None,
                error: Some("Fatal: wrong password or no key found".to_owned()),
            }),
        );
    }

    /// `snapshots.report` with one full snapshot and one from old restic
    /// (no tags, sizes).
    #[test]
    fn golden_snapshots_report() {
        golden_a2s(
            r#"{"type":"snapshots.report","id":"sr1","data":{"snapshots":[
                {"id":"f535d3c7aa","short_id":"f535d3c7","time":"2026-11-23T02:00:40Z","hostname":"web-01","paths":["/etc"],"tags":["etc"],"size_bytes":3001768,"file_count":3},
                {"id":"0a1b2c3d4e","short_id":"0a1b2c3d","time":"2026-11-22T02:00:40Z","hostname":"web-01","paths":["/srv"]}]}}"#,
            "sr1",
            AgentToServer::SnapshotsReport(SnapshotsReport {
                snapshots: vec![
                    SnapshotInfo {
                        id: "f535d3c7aa".to_owned(),
                        short_id: "f535d3c7".to_owned(),
                        time: ts("2026-11-23T02:00:40Z"),
                        hostname: "web-01".to_owned(),
                        paths: vec!["/etc".to_owned()],
                        tags: vec!["etc".to_owned()],
                        size_bytes: Some(3001768),
                        file_count: Some(3),
                    },
                    SnapshotInfo {
                        id: "0a1b2c3d4e".to_owned(),
                        short_id: "0a1b2c3d".to_owned(),
                        time: ts("2026-11-22T02:00:40Z"),
                        hostname: "web-01".to_owned(),
                        paths: vec!["/srv".to_owned()],
                        tags: vec![],
                        size_bytes: None,
                        file_count: None,
                    },
                ],
            }),
        );
    }

    /// `repo.stats` with and without the last check.
    #[test]
    fn golden_repo_stats() {
        golden_a2s(
            r#"{"type":"repo.stats","id":"rs1","data":{"size_bytes":123456,"snapshot_count":4,"dedup_ratio":2.5,"last_check_at":"2026-11-22T03:00:00Z","last_check_status":"ok","lock_state":"unlocked"}}"#,
            "rs1",
            AgentToServer::RepoStats(RepoStats {
                size_bytes: 123456,
                snapshot_count: 4,
                dedup_ratio: 2.5,
                last_check_at: Some(ts("2026-11-22T03:00:00Z")),
                last_check_status: Some("ok".to_owned()),
                lock_state: LockState::Unlocked,
            }),
        );
        golden_a2s(
            r#"{"type":"repo.stats","id":"rs2","data":{"size_bytes":0,"snapshot_count":0,"dedup_ratio":1.5,"lock_state":"locked"}}"#,
            "rs2",
            AgentToServer::RepoStats(RepoStats {
                size_bytes: 0,
                snapshot_count: 0,
                dedup_ratio: 1.5,
                last_check_at: None,
                last_check_status: None,
                lock_state: LockState::Locked,
            }),
        );
    }

    /// `schedule.ack`.
    #[test]
    fn golden_schedule_ack() {
        golden_a2s(
            r#"{"type":"schedule.ack","id":"sa1","data":{"version":4,"applied_at":"2026-11-23T01:00:00Z"}}"#,
            "sa1",
            AgentToServer::ScheduleAck(ScheduleAck {
                version: 4,
                applied_at: ts("2026-11-23T01:00:00Z"),
            }),
        );
    }

    /// `schedule.fire`.
    #[test]
    fn golden_schedule_fire() {
        golden_a2s(
            r#"{"type":"schedule.fire","id":"sf1","data":{"schedule_id":"sch_1","scheduled_at":"2026-11-23T02:00:00Z"}}"#,
            "sf1",
            AgentToServer::ScheduleFire(ScheduleFire {
                schedule_id: "sch_1".to_owned(),
                scheduled_at: ts("2026-11-23T02:00:00Z"),
            }),
        );
    }

    // --- golden frames, server → agent --------------------------------------

    /// `config.update` with every field, and with none ("leave all as is").
    #[test]
    fn golden_config_update() {
        golden_s2a(
            r#"{"type":"config.update","id":"cu1","data":{"repo_url":"rest:https://backup.example:8000/web-01","repo_password":"pw","repo_username":"web-01","repo_credential":"cred","hook_shell":"/bin/sh"}}"#,
            "cu1",
            ServerToAgent::ConfigUpdate(ConfigUpdate {
                repo_url: Some("rest:https://backup.example:8000/web-01".to_owned()),
                repo_password: Some("pw".to_owned()),
                repo_username: Some("web-01".to_owned()),
                repo_credential: Some("cred".to_owned()),
                hook_shell: Some("/bin/sh".to_owned()),
            }),
        );
        golden_s2a(
            r#"{"type":"config.update","id":"cu2","data":{}}"#,
            "cu2",
            ServerToAgent::ConfigUpdate(ConfigUpdate::default()),
        );
    }

    /// `schedule.set` as in PROTOCOL.md's example.
    #[test]
    fn golden_schedule_set() {
        golden_s2a(
            r#"{"type":"schedule.set","id":"7a2e","data":{"version":4,"schedules":[{"id":"sch_1","cron_expr":"0 2 * * *","enabled":true,"source_groups":[{"name":"etc","includes":["/etc"],"excludes":["*.tmp"],"retention_policy":{"keep_daily":7,"keep_weekly":4},"retry_max":2,"retry_backoff_seconds":300}]}]}}"#,
            "7a2e",
            ServerToAgent::ScheduleSet(ScheduleSet {
                version: 4,
                schedules: vec![ScheduleSpec {
                    id: "sch_1".to_owned(),
                    cron_expr: "0 2 * * *".to_owned(),
                    enabled: true,
                    source_groups: vec![SourceGroupSpec {
                        name: "etc".to_owned(),
                        includes: vec!["/etc".to_owned()],
                        excludes: vec!["*.tmp".to_owned()],
                        retention_policy: Some(RetentionPolicy {
                            keep_daily: Some(7),
                            keep_weekly: Some(4),
                            ..RetentionPolicy::default()
                        }),
                        retry_max: 2,
                        retry_backoff_seconds: 300,
                    }],
                }],
            }),
        );
    }

    /// `schedule.set` with an empty list (disables everything).
    #[test]
    fn golden_schedule_set_empty() {
        golden_s2a(
            r#"{"type":"schedule.set","id":"7a2f","data":{"version":5,"schedules":[]}}"#,
            "7a2f",
            ServerToAgent::ScheduleSet(ScheduleSet {
                version: 5,
                schedules: vec![],
            }),
        );
    }

    /// `command.run` as in PROTOCOL.md's example (backup).
    #[test]
    fn golden_command_run_backup() {
        golden_s2a(
            r#"{"type":"command.run","id":"c41d","data":{"job_id":"0193","kind":"backup","includes":["/etc"],"excludes":["*.tmp"],"tag":"etc"}}"#,
            "c41d",
            ServerToAgent::CommandRun(CommandRun {
                job_id: "0193".to_owned(),
                kind: JobKind::Backup,
                args: vec![],
                includes: vec!["/etc".to_owned()],
                excludes: vec!["*.tmp".to_owned()],
                tag: Some("etc".to_owned()),
                retention_policy: None,
            }),
        );
    }

    /// `command.run` for forget with a full retention policy, and for check
    /// with free-form args.
    #[test]
    fn golden_command_run_forget_and_args() {
        golden_s2a(
            r#"{"type":"command.run","id":"c41e","data":{"job_id":"0196","kind":"forget","tag":"etc","retention_policy":{"keep_last":3,"keep_hourly":24,"keep_daily":7,"keep_weekly":4,"keep_monthly":12,"keep_yearly":2,"keep_within":"30d"}}}"#,
            "c41e",
            ServerToAgent::CommandRun(CommandRun {
                job_id: "0196".to_owned(),
                kind: JobKind::Forget,
                args: vec![],
                includes: vec![],
                excludes: vec![],
                tag: Some("etc".to_owned()),
                retention_policy: Some(RetentionPolicy {
                    keep_last: Some(3),
                    keep_hourly: Some(24),
                    keep_daily: Some(7),
                    keep_weekly: Some(4),
                    keep_monthly: Some(12),
                    keep_yearly: Some(2),
                    keep_within: Some("30d".to_owned()),
                }),
            }),
        );
        golden_s2a(
            r#"{"type":"command.run","id":"c41f","data":{"job_id":"0197","kind":"check","args":["--read-data-subset=1/10"]}}"#,
            "c41f",
            ServerToAgent::CommandRun(CommandRun {
                job_id: "0197".to_owned(),
                kind: JobKind::Check,
                args: vec!["--read-data-subset=1/10".to_owned()],
                includes: vec![],
                excludes: vec![],
                tag: None,
                retention_policy: None,
            }),
        );
    }

    /// `command.cancel`.
    #[test]
    fn golden_command_cancel() {
        golden_s2a(
            r#"{"type":"command.cancel","id":"cc1","data":{"job_id":"0193"}}"#,
            "cc1",
            ServerToAgent::CommandCancel(CommandCancel {
                job_id: "0193".to_owned(),
            }),
        );
    }

    /// `agent.update_available` with and without a changelog.
    #[test]
    fn golden_agent_update_available() {
        golden_s2a(
            r#"{"type":"agent.update_available","id":"ua1","data":{"latest_version":"0.2.0","package_url":"https://apt.example/","changelog":"faster"}}"#,
            "ua1",
            ServerToAgent::AgentUpdateAvailable(AgentUpdateAvailable {
                latest_version: "0.2.0".to_owned(),
                package_url: "https://apt.example/".to_owned(),
                changelog: Some("faster".to_owned()),
            }),
        );
        golden_s2a(
            r#"{"type":"agent.update_available","id":"ua2","data":{"latest_version":"0.2.0","package_url":"https://apt.example/"}}"#,
            "ua2",
            ServerToAgent::AgentUpdateAvailable(AgentUpdateAvailable {
                latest_version: "0.2.0".to_owned(),
                package_url: "https://apt.example/".to_owned(),
                changelog: None,
            }),
        );
    }

    /// `ack` as in PROTOCOL.md's example, and a refusal with `reason`.
    #[test]
    fn golden_ack() {
        golden_s2a(
            r#"{"type":"ack","id":"5d0a","data":{"correlation_id":"e0b7","accepted":true}}"#,
            "5d0a",
            ServerToAgent::Ack(Ack {
                correlation_id: "e0b7".to_owned(),
                accepted: true,
                reason: None,
            }),
        );
        golden_s2a(
            r#"{"type":"ack","id":"5d0b","data":{"correlation_id":"e0b8","accepted":false,"reason":"unknown job"}}"#,
            "5d0b",
            ServerToAgent::Ack(Ack {
                correlation_id: "e0b8".to_owned(),
                accepted: false,
                reason: Some("unknown job".to_owned()),
            }),
        );
    }

    /// `error` for a bad frame, and `unsupported_protocol` with `supported`.
    #[test]
    fn golden_error() {
        golden_s2a(
            r#"{"type":"error","id":"er1","data":{"code":"bad_frame","detail":"bad data for job.progress: missing field `job_id`","correlation_id":"jp9"}}"#,
            "er1",
            ServerToAgent::Error(ErrorFrame {
                code: ERROR_BAD_FRAME.to_owned(),
                detail: "bad data for job.progress: missing field `job_id`".to_owned(),
                correlation_id: Some("jp9".to_owned()),
                supported: None,
            }),
        );
        golden_s2a(
            r#"{"type":"error","id":"er2","data":{"code":"unsupported_protocol","detail":"protocol_version 7 is not supported","supported":[1]}}"#,
            "er2",
            ServerToAgent::Error(ErrorFrame::unsupported_protocol(7, None)),
        );
    }

    /// Enrolment bodies use API.md's field names.
    #[test]
    fn enrol_bodies_round_trip() {
        let request = EnrollRequest {
            token: "tok".to_owned(),
            hostname: "web-01".to_owned(),
            os: OS_LINUX.to_owned(),
            arch: ARCH_AMD64.to_owned(),
        };
        let text = r#"{"token":"tok","hostname":"web-01","os":"linux","arch":"amd64"}"#;
        assert_eq!(
            serde_json::from_str::<EnrollRequest>(text).unwrap(),
            request
        );
        assert_same_json(&serde_json::to_string(&request).unwrap(), text);

        let response = EnrollResponse {
            host_id: "h_1".to_owned(),
            agent_token: "secret-agent-token".to_owned(),
        };
        let text = r#"{"host_id":"h_1","agent_token":"secret-agent-token"}"#;
        assert_eq!(
            serde_json::from_str::<EnrollResponse>(text).unwrap(),
            response
        );
        assert_same_json(&serde_json::to_string(&response).unwrap(), text);
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

    // --- decode errors ------------------------------------------------------

    /// An unknown `type` is `UnknownType` (code `unknown_type`), also for a
    /// type of the other direction.
    #[test]
    fn unknown_type_is_typed() {
        let err = decode_a2s(r#"{"type":"discovery.report","id":"x","data":{}}"#).unwrap_err();
        assert_eq!(err, DecodeError::UnknownType("discovery.report".to_owned()));
        assert_eq!(err.code(), ERROR_UNKNOWN_TYPE);
        assert_eq!(
            decode_a2s(r#"{"type":"config.update","id":"x","data":{}}"#).unwrap_err(),
            DecodeError::UnknownType("config.update".to_owned())
        );
        assert_eq!(
            decode_s2a(r#"{"type":"hello","id":"x","data":{}}"#).unwrap_err(),
            DecodeError::UnknownType("hello".to_owned())
        );
        // Case matters: wire names are lower case.
        assert_eq!(
            decode_s2a(r#"{"type":"ACK","id":"x","data":{}}"#).unwrap_err(),
            DecodeError::UnknownType("ACK".to_owned())
        );
    }

    /// Text that is not JSON is `Malformed` saying so.
    #[test]
    fn not_json_is_malformed() {
        for text in ["", "hello", "{", r#"{"type":"ack""#, "{\"type\":}", "\u{0}"] {
            let detail = malformed_detail(decode_s2a(text));
            assert!(detail.contains("not valid JSON"), "{text:?}: {detail}");
        }
        let detail = malformed_detail(decode_s2a(r#"{"type":"ack","id":"x","data":{}} trailing"#));
        assert!(detail.contains("not valid JSON"), "{detail}");
    }

    /// JSON that is not an object (array, string, number, null) is
    /// `Malformed` naming what it got.
    #[test]
    fn non_object_is_malformed() {
        let cases = [
            (r#"["ack","x",{}]"#, "an array"),
            (r#""ack""#, "a string"),
            ("42", "a number"),
            ("null", "null"),
            ("true", "a boolean"),
        ];
        for (text, kind) in cases {
            assert_eq!(
                decode_s2a(text).unwrap_err(),
                DecodeError::Malformed(format!("frame must be a JSON object, got {kind}")),
                "{text}"
            );
        }
    }

    /// Missing or mistyped `type` and `id` are `Malformed` naming the field.
    #[test]
    fn envelope_fields_are_checked() {
        let cases = [
            (r#"{"id":"x","data":{}}"#, "missing field `type`"),
            (r#"{"type":null,"id":"x"}"#, "missing field `type`"),
            (
                r#"{"type":7,"id":"x"}"#,
                "field `type` must be a string, got a number",
            ),
            (r#"{"type":"ack","data":{}}"#, "missing field `id`"),
            (
                r#"{"type":"ack","id":12}"#,
                "field `id` must be a string, got a number",
            ),
            (
                r#"{"type":"ack","id":{}}"#,
                "field `id` must be a string, got an object",
            ),
            (r#"{"type":"ack","id":""}"#, "field `id` must not be empty"),
        ];
        for (text, expected) in cases {
            let err = decode_s2a(text).unwrap_err();
            assert_eq!(err, DecodeError::Malformed(expected.to_owned()), "{text}");
            assert_eq!(err.code(), ERROR_BAD_FRAME);
        }
        let detail = malformed_detail(decode_s2a(r#"{"type":"ack","type":"error","id":"x"}"#));
        assert!(detail.contains("duplicate field `type`"), "{detail}");
    }

    /// An escaped but valid `type` string still decodes.
    #[test]
    fn escaped_type_string_decodes() {
        let message =
            decode_s2a(r#"{"type":"comm\u0061nd.cancel","id":"x","data":{"job_id":"j"}}"#).unwrap();
        assert_eq!(
            message,
            ServerToAgent::CommandCancel(CommandCancel {
                job_id: "j".to_owned()
            })
        );
    }

    /// A missing or null `data` is `{}`: fine for `config.update`, a
    /// `missing field` error for a type with required fields.
    #[test]
    fn missing_data_is_empty_object() {
        assert_eq!(
            decode_s2a(r#"{"type":"config.update","id":"x"}"#).unwrap(),
            ServerToAgent::ConfigUpdate(ConfigUpdate::default())
        );
        assert_eq!(
            decode_s2a(r#"{"type":"config.update","id":"x","data":null}"#).unwrap(),
            ServerToAgent::ConfigUpdate(ConfigUpdate::default())
        );
        let (message_type, detail) =
            bad_data_detail(decode_s2a(r#"{"type":"command.cancel","id":"x"}"#));
        assert_eq!(message_type, "command.cancel");
        assert_eq!(detail, "missing field `job_id`");
    }

    /// `data` that is not an object is `BadData`.
    #[test]
    fn non_object_data_is_bad_data() {
        let err = decode_s2a(r#"{"type":"command.cancel","id":"x","data":["j"]}"#).unwrap_err();
        assert_eq!(
            err,
            DecodeError::BadData {
                message_type: "command.cancel".to_owned(),
                detail: "`data` must be a JSON object, got an array".to_owned(),
            }
        );
        assert_eq!(err.code(), ERROR_BAD_FRAME);
    }

    /// A field of the wrong type is `BadData` whose detail names the field,
    /// nested fields by their path.
    #[test]
    fn wrong_field_type_names_the_field() {
        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"command.result","id":"x","data":{"job_id":5,"accepted":true}}"#,
        ));
        assert_eq!(
            detail,
            "job_id: invalid type: integer `5`, expected a string"
        );

        let (_, detail) = bad_data_detail(decode_s2a(
            r#"{"type":"schedule.set","id":"x","data":{"version":1,"schedules":[{"id":"s","cron_expr":"@daily","enabled":true,"source_groups":[{"name":"a"},{"name":"b","retry_max":"two"}]}]}}"#,
        ));
        assert!(
            detail.starts_with("schedules[0].source_groups[1].retry_max: invalid type: string"),
            "{detail}"
        );

        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"hello","id":"x","data":{"protocol_version":1.5,"agent_version":"a","restic_version":"r","hostname":"h","os":"linux","arch":"amd64"}}"#,
        ));
        assert!(detail.starts_with("protocol_version: "), "{detail}");

        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"log.stream","id":"x","data":{"job_id":"j","seq":-1,"ts":"2026-11-23T02:00:00Z","stream":"stdout","payload":""}}"#,
        ));
        assert!(detail.starts_with("seq: "), "{detail}");
    }

    /// An unknown enum spelling is `BadData` naming the field and the
    /// accepted spellings.
    #[test]
    fn unknown_enum_value_names_the_field() {
        let (_, detail) = bad_data_detail(decode_s2a(
            r#"{"type":"command.run","id":"x","data":{"job_id":"j","kind":"restore"}}"#,
        ));
        assert!(
            detail.starts_with("kind: unknown variant `restore`"),
            "{detail}"
        );
        assert!(detail.contains("`backup`"), "{detail}");

        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"job.finished","id":"x","data":{"job_id":"j","status":"running","exit_code":0,"finished_at":"2026-11-23T02:00:41Z"}}"#,
        ));
        assert!(
            detail.starts_with("status: unknown variant `running`"),
            "{detail}"
        );
    }

    /// A mistyped secret field is reported without its value.
    #[test]
    fn secret_values_are_not_echoed_in_errors() {
        let (_, detail) = bad_data_detail(decode_s2a(
            r#"{"type":"config.update","id":"x","data":{"repo_password":918273645}}"#,
        ));
        assert_eq!(
            detail,
            "repo_password: invalid value (not shown: secret field)"
        );
        assert!(!detail.contains("918273645"));
    }

    /// Error text quoting a huge input is clipped.
    #[test]
    fn error_details_are_bounded() {
        let huge = "x".repeat(100_000);
        let text = format!(r#"{{"type":"{huge}","id":"x","data":{{}}}}"#);
        let err = decode_s2a(&text).unwrap_err();
        assert!(
            err.to_string().len() < 4 * MAX_QUOTED_CHARS,
            "{}",
            err.to_string().len()
        );

        let text =
            format!(r#"{{"type":"command.run","id":"x","data":{{"job_id":"j","kind":"{huge}"}}}}"#);
        let err = decode_s2a(&text).unwrap_err();
        assert_eq!(err.code(), ERROR_BAD_FRAME);
        assert!(
            err.to_string().len() < 4 * MAX_QUOTED_CHARS,
            "{}",
            err.to_string().len()
        );
    }

    /// `ErrorFrame::from_decode_error` carries the code, detail and id.
    #[test]
    fn error_frame_from_decode_error() {
        let text = r#"{"type":"job.progress","id":"jp9","data":{}}"#;
        let err = decode_a2s(text).unwrap_err();
        let frame = ErrorFrame::from_decode_error(&err, frame_id(text));
        assert_eq!(
            frame,
            ErrorFrame {
                code: "bad_frame".to_owned(),
                detail: "bad data for job.progress: missing field `job_id`".to_owned(),
                correlation_id: Some("jp9".to_owned()),
                supported: None,
            }
        );
        let err = decode_a2s(r#"{"type":"nope","id":"n1"}"#).unwrap_err();
        let frame = ErrorFrame::from_decode_error(&err, frame_id(r#"{"type":"nope","id":"n1"}"#));
        assert_eq!(frame.code, "unknown_type");
        assert_eq!(frame.correlation_id.as_deref(), Some("n1"));
    }

    /// `frame_id` finds the id of a frame that does not decode, and nothing
    /// in text without one.
    #[test]
    fn frame_id_of_broken_frames() {
        assert_eq!(frame_id(r#"{"id":"a1","type":5}"#).as_deref(), Some("a1"));
        assert_eq!(frame_id(r#"{"type":"ack","id":7}"#), None);
        assert_eq!(frame_id("not json"), None);
        assert_eq!(frame_id(r#"{"type":"ack"}"#), None);
    }

    /// A `hello` of another protocol version is recognised even when its
    /// shape does not decode as this version's `Hello`.
    #[test]
    fn hello_protocol_version_of_foreign_hello() {
        let text = r#"{"type":"hello","id":"h","data":{"protocol_version":2,"agent":{"v":"9"}}}"#;
        assert!(matches!(decode_a2s(text), Err(DecodeError::BadData { .. })));
        assert_eq!(hello_protocol_version(text), Some(2));
        assert_eq!(
            hello_protocol_version(
                r#"{"type":"heartbeat","id":"h","data":{"protocol_version":2}}"#
            ),
            None
        );
        assert_eq!(
            hello_protocol_version(r#"{"type":"hello","id":"h","data":{}}"#),
            None
        );
        assert_eq!(hello_protocol_version("garbage"), None);
    }

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

    /// Arbitrary garbage, truncations and byte flips of valid frames never
    /// panic, and every failure maps to a protocol error code.
    #[test]
    fn garbage_never_panics() {
        let valid = [
            r#"{"type":"schedule.set","id":"7a2e","data":{"version":4,"schedules":[{"id":"sch_1","cron_expr":"0 2 * * *","enabled":true,"source_groups":[{"name":"etc","includes":["/etc"],"excludes":["*.tmp"],"retention_policy":{"keep_daily":7,"keep_weekly":4},"retry_max":2,"retry_backoff_seconds":300}]}]}}"#,
            r#"{"type":"job.finished","id":"e0b7","data":{"job_id":"0193","status":"succeeded","exit_code":0,"finished_at":"2026-11-23T02:00:41Z","stats":{"files_new":3,"data_added":3001768,"snapshot_id":"f535d3c7"}}}"#,
            r#"{"type":"log.stream","id":"l","data":{"job_id":"j","seq":1,"ts":"2026-11-23T02:00:02Z","stream":"event","payload":"é\"\\"}}"#,
        ];
        let mut checked = 0usize;
        let mut check = |text: &str| {
            for result in [decode_a2s(text).map(|_| ()), decode_s2a(text).map(|_| ())] {
                if let Err(err) = result {
                    assert!(matches!(err.code(), "bad_frame" | "unknown_type"));
                    assert!(err.to_string().len() < 4 * MAX_QUOTED_CHARS + 100);
                }
            }
            let _ = frame_id(text); // must not panic; its value is not checked here
            checked += 1;
        };

        // Every proper prefix of a valid frame is rejected as malformed.
        for frame in valid {
            for (cut, _) in frame.char_indices().skip(1) {
                let prefix = &frame[..cut];
                assert!(matches!(decode_a2s(prefix), Err(DecodeError::Malformed(_))));
                check(prefix);
            }
        }

        // Byte-level mutations (kept valid UTF-8) and random token soup.
        let alphabet: Vec<char> = "{}[]\":,0123456789.-+eEtrufalsn \\/u\u{e9}\u{1F600}abcdtypeidat"
            .chars()
            .collect();
        let tokens = [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"type\"",
            "\"id\"",
            "\"data\"",
            "\"ack\"",
            "\"hello\"",
            "null",
            "true",
            "1e999",
            "-0",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "\"job.finished\"",
            "{}",
            "[]",
            "18446744073709551616",
            "\"",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64*: deterministic, so a failure is reproducible.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        for _ in 0..3_000 {
            let len = (next() % 64) as usize;
            let soup: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            check(&soup);
            let count = (next() % 12) as usize;
            let joined: String = (0..count)
                .map(|_| tokens[(next() % tokens.len() as u64) as usize])
                .collect();
            check(&joined);
            let frame = valid[(next() % valid.len() as u64) as usize];
            let mut chars: Vec<char> = frame.chars().collect();
            let at = (next() % chars.len() as u64) as usize;
            chars[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            check(&chars.into_iter().collect::<String>());
        }
        assert!(checked > 9_000);
    }

    // --- envelope and helpers -----------------------------------------------

    /// `Envelope::new` gives each message a fresh UUID v4 id that survives a
    /// round trip.
    #[test]
    fn envelope_ids_are_fresh_uuid_v4() {
        let cancel = || {
            ServerToAgent::from(CommandCancel {
                job_id: "j".to_owned(),
            })
        };
        let first = Envelope::new(cancel());
        let second = Envelope::new(cancel());
        assert_ne!(first.id, second.id);
        let parsed = uuid::Uuid::parse_str(&first.id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        let back = Envelope::<ServerToAgent>::decode(&first.encode()).unwrap();
        assert_eq!(back, first);
        assert_eq!(
            uuid::Uuid::parse_str(&new_message_id())
                .unwrap()
                .get_version_num(),
            4
        );
    }

    /// An id needing JSON escapes round-trips.
    #[test]
    fn envelope_id_with_escapes_round_trips() {
        let envelope =
            Envelope::with_id("a\"b\\c\u{1}", ServerToAgent::from(ConfigUpdate::default()));
        let back = Envelope::<ServerToAgent>::decode(&envelope.encode()).unwrap();
        assert_eq!(back, envelope);
    }

    /// `Debug` of config and enrolment bodies never shows secrets or URL
    /// credentials.
    #[test]
    fn debug_masks_secrets() {
        let config = ConfigUpdate {
            repo_url: Some("rest:https://alice:hunter2@backup.example:8000/web".to_owned()),
            repo_password: Some("repo-pass-123".to_owned()),
            repo_username: Some("alice".to_owned()),
            repo_credential: Some("cred-456".to_owned()),
            hook_shell: None,
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

    // --- retention policy -------------------------------------------------

    /// `keep_flags` lists restic's flags in order; absent rules give none.
    #[test]
    fn retention_keep_flags() {
        let policy = RetentionPolicy {
            keep_last: Some(3),
            keep_hourly: Some(24),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: Some(2),
            keep_within: Some("30d".to_owned()),
        };
        assert_eq!(
            policy.keep_flags(),
            [
                "--keep-last",
                "3",
                "--keep-hourly",
                "24",
                "--keep-daily",
                "7",
                "--keep-weekly",
                "4",
                "--keep-monthly",
                "12",
                "--keep-yearly",
                "2",
                "--keep-within",
                "30d",
            ]
        );
        let policy = RetentionPolicy {
            keep_daily: Some(7),
            keep_within: Some("1y6m".to_owned()),
            ..RetentionPolicy::default()
        };
        assert_eq!(
            policy.keep_flags(),
            ["--keep-daily", "7", "--keep-within", "1y6m"]
        );
        assert!(!policy.is_empty());
        assert!(RetentionPolicy::default().is_empty());
        assert!(RetentionPolicy::default().keep_flags().is_empty());
    }

    /// The policy serialises to the wire object with absent keys omitted.
    #[test]
    fn retention_wire_object() {
        let policy = RetentionPolicy {
            keep_weekly: Some(4),
            keep_within: Some("2h".to_owned()),
            ..RetentionPolicy::default()
        };
        assert_eq!(
            serde_json::to_value(&policy).unwrap(),
            json!({"keep_weekly": 4, "keep_within": "2h"})
        );
        assert_eq!(
            serde_json::to_value(RetentionPolicy::default()).unwrap(),
            json!({})
        );
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"keep_last":-1}"#).is_err());
    }

    /// `validate` accepts restic durations and rejects anything else.
    #[test]
    fn retention_validate_keep_within() {
        for good in ["30d", "1y6m", "2h", "1y2m3d4h", "0d"] {
            let policy = RetentionPolicy {
                keep_within: Some(good.to_owned()),
                ..RetentionPolicy::default()
            };
            assert_eq!(policy.validate(), Ok(()), "{good}");
        }
        for bad in [
            "", "d", "30", "-1d", "30x", "30d ", "--prune", "1.5d", "30D",
        ] {
            let policy = RetentionPolicy {
                keep_within: Some(bad.to_owned()),
                ..RetentionPolicy::default()
            };
            assert_eq!(
                policy.validate(),
                Err(InvalidRetention::KeepWithin(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(RetentionPolicy::default().validate(), Ok(()));
    }
}
