//! The payload decoding step and its errors: [`DecodeError`], whose text is
//! fit to go back to the peer (bounded, no secret values), and the helpers
//! that name the field at fault.

use serde::de::DeserializeOwned;

use super::{ERROR_BAD_FRAME, ERROR_UNKNOWN_TYPE};

/// Longest text (in characters) a decode error quotes from its input, so a
/// hostile 8 MiB frame cannot make an 8 MiB error frame or log line.
pub(super) const MAX_QUOTED_CHARS: usize = 200;

/// Payload fields whose values are secrets: decode errors about them never
/// quote the offending value.
const SECRET_FIELDS: &[&str] = &["repo_password", "repo_credential", "token", "agent_token"];

/// Decodes one payload; on failure re-parses with path tracking to name the
/// field at fault.
pub(super) fn decode_payload<T: DeserializeOwned>(
    message_type: &str,
    data: &str,
) -> Result<T, DecodeError> {
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
pub(super) fn serde_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let message = match full.rfind(" at line ") {
        Some(cut) if err.line() > 0 => &full[..cut],
        _ => full.as_str(),
    };
    clip(message)
}

/// A word for the kind of a raw JSON value, for error messages.
pub(super) fn json_kind(raw: &str) -> &'static str {
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
pub(super) fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::*;

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
            r#"{"type":"command.run","id":"x","data":{"job_id":"j","kind":"defrag"}}"#,
        ));
        assert!(
            detail.starts_with("kind: unknown variant `defrag`"),
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
}
