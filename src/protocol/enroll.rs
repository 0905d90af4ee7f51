//! The HTTP enrolment bodies (`POST /api/v1/agent/enroll`). `Debug` masks
//! the tokens.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Masked;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::*;

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
}
