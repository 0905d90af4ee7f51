//! The frame around every message (`{"type", "id", "data"}`): building and
//! encoding an [`Envelope`], and the first decoding step, which reads the
//! envelope with `data` kept as borrowed raw JSON and hands it to the
//! direction's [`WireMessage::decode_data`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::decode::{json_kind, serde_message};
use super::{new_message_id, DecodeError};

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

/// A frame under a fresh id whose `data` is JSON text encoded already
/// (a `schedule.set` assembled from rendered parts:
/// `store::schedule_set::HostSchedules::frame`):
/// `{"type":..,"id":..,"data":<data>}`, as [`Envelope::encode`] writes
/// it. `data` must be one JSON object; the caller's tests hold it equal
/// to the typed encoding.
pub fn encode_with_data(message_type: &str, data: &str) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let mut frame = String::with_capacity(data.len() + 96);
    frame.push_str("{\"type\":");
    frame.push_str(&quoted(message_type));
    frame.push_str(",\"id\":");
    frame.push_str(&quoted(&new_message_id()));
    frame.push_str(",\"data\":");
    frame.push_str(data);
    frame.push('}');
    frame
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decode::MAX_QUOTED_CHARS;
    use crate::protocol::testing::*;
    use crate::protocol::*;

    // --- decode errors ------------------------------------------------------

    /// An unknown `type` is `UnknownType` (code `unknown_type`), also for a
    /// type of the other direction.
    #[test]
    fn unknown_type_is_typed() {
        let err = decode_a2s(r#"{"type":"inventory.report","id":"x","data":{}}"#).unwrap_err();
        assert_eq!(err, DecodeError::UnknownType("inventory.report".to_owned()));
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

    /// Arbitrary garbage, truncations and byte flips of valid frames never
    /// panic, and every failure maps to a protocol error code.
    #[test]
    fn garbage_never_panics() {
        let valid = [
            r#"{"type":"schedule.set","id":"7a2e","data":{"version":4,"schedules":[{"id":"sch_1","cron_expr":"0 2 * * *","enabled":true,"kind":"backup","source_groups":[{"name":"etc","includes":["/etc"],"excludes":["*.tmp"],"retention_policy":{"keep_daily":7,"keep_weekly":4},"retry_max":2,"retry_backoff_seconds":300}]}]}}"#,
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
}
