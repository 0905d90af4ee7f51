//! Helpers shared by the golden tests of every file of this module.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;

pub(crate) fn ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test timestamp")
        .with_timezone(&Utc)
}

/// Decodes `text` as agent→server, checks it equals `expected`, and that
/// encoding gives back the same JSON.
pub(crate) fn golden_a2s(text: &str, expected_id: &str, expected: AgentToServer) {
    let envelope = Envelope::<AgentToServer>::decode(text).expect("golden frame decodes");
    assert_eq!(envelope.id, expected_id);
    assert_eq!(envelope.message, expected);
    assert_same_json(&envelope.encode(), text);
}

/// As [`golden_a2s`], server→agent.
pub(crate) fn golden_s2a(text: &str, expected_id: &str, expected: ServerToAgent) {
    let envelope = Envelope::<ServerToAgent>::decode(text).expect("golden frame decodes");
    assert_eq!(envelope.id, expected_id);
    assert_eq!(envelope.message, expected);
    assert_same_json(&envelope.encode(), text);
}

pub(crate) fn assert_same_json(actual: &str, expected: &str) {
    let actual: Value = serde_json::from_str(actual).expect("encoded JSON");
    let expected: Value = serde_json::from_str(expected).expect("golden JSON");
    assert_eq!(actual, expected);
}

pub(crate) fn decode_a2s(text: &str) -> Result<AgentToServer, DecodeError> {
    Envelope::<AgentToServer>::decode(text).map(|envelope| envelope.message)
}

pub(crate) fn decode_s2a(text: &str) -> Result<ServerToAgent, DecodeError> {
    Envelope::<ServerToAgent>::decode(text).map(|envelope| envelope.message)
}

pub(crate) fn bad_data_detail(result: Result<impl fmt::Debug, DecodeError>) -> (String, String) {
    match result {
        Err(DecodeError::BadData {
            message_type,
            detail,
        }) => (message_type, detail),
        other => panic!("expected BadData, got {other:?}"),
    }
}

pub(crate) fn malformed_detail(result: Result<impl fmt::Debug, DecodeError>) -> String {
    match result {
        Err(DecodeError::Malformed(detail)) => detail,
        other => panic!("expected Malformed, got {other:?}"),
    }
}
