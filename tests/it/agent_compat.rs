//! The agent against servers of other releases speaking protocol 1
//! (issue 16, point 5), with the scripted server of `agent_session`:
//!
//! - a newer server sends message types this agent does not know and
//!   fields it does not know: the types are ignored with a debug log, the
//!   fields are ignored, and the session goes on;
//! - an older server sends only the fields its release knew, and answers a
//!   message it does not know with `error {code: "unknown_type"}`: the agent
//!   logs it and goes on.
//!
//! In both cases the proof that the session went on is a `command.run`
//! answered on the same connection, and no second connection.

use restic_manager::protocol::{
    AgentToServer, ConfigUpdate, Envelope, ErrorFrame, ServerToAgent, ERROR_UNKNOWN_TYPE,
};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

use crate::agent_session::{config, Conn, RunningAgent, TestServer};
use futures_util::SinkExt;

/// What the refused `command.run` says (no repository was configured).
const NO_REPOSITORY: &str = "no repository is configured for this host";

/// Sends `frame` as it is, a JSON text frame.
async fn send_raw(conn: &mut Conn, frame: &Value) {
    conn.ws
        .send(Message::text(frame.to_string()))
        .await
        .expect("send to agent");
}

/// Sends a minimal `command.run` of a check (the fields of protocol 1's
/// first release, plus `extra` in `data`) and expects it refused for want
/// of a repository, on this connection.
async fn run_check_is_answered(conn: &mut Conn, job_id: &str, extra: Value) {
    let mut data = json!({"job_id": job_id, "kind": "check"});
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    send_raw(
        conn,
        &json!({"type": "command.run", "id": job_id, "data": data}),
    )
    .await;
    let AgentToServer::CommandResult(result) = conn.recv_work().await.message else {
        panic!("expected command.result for {job_id}");
    };
    assert_eq!(result.job_id, job_id);
    assert!(!result.accepted);
    assert_eq!(result.error.as_deref(), Some(NO_REPOSITORY));
}

/// An agent on a fresh state directory, connected to a new scripted
/// server past its `hello`: the server, the state directory (kept while
/// the agent runs), the agent and its connection.
async fn connected(token: &str) -> (TestServer, TempDir, RunningAgent, Conn) {
    let mut server = TestServer::start(token).await;
    let state = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(config(&server, token, state.path()));
    let mut conn = server.accept().await;
    conn.hello().await;
    (server, state, agent, conn)
}

/// No second connection: the agent never dropped the first.
fn assert_no_reconnect(server: &mut TestServer) {
    assert!(
        server.conns.try_recv().is_err(),
        "the agent reconnected: it dropped the session"
    );
}

/// A newer server's unknown message types are ignored with a debug log
/// (not a warning, not a disconnect), and unknown fields, in `data` and in
/// the envelope, are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_server_is_understood_as_far_as_protocol_1_goes() {
    let (mut server, _state, agent, mut conn) = connected("agent-token-newer-server").await;

    send_raw(
        &mut conn,
        &json!({"type": "fleet.rebalance", "id": "n-1", "data": {"weight": 3}}),
    )
    .await;
    send_raw(
        &mut conn,
        &json!({"type": "agent.tune", "id": "n-2", "data": {}, "trace_id": "t-9"}),
    )
    .await;
    let mut update: Value =
        serde_json::from_str(&Envelope::new(ServerToAgent::from(ConfigUpdate::default())).encode())
            .unwrap();
    update["data"]["compression"] = json!("max");
    update["sent_by"] = json!("restic-manager 9.0.0");
    send_raw(&mut conn, &update).await;
    run_check_is_answered(
        &mut conn,
        "job-newer",
        json!({"priority": "high", "limits": {"upload_kib": 10}}),
    )
    .await;
    assert_no_reconnect(&mut server);

    let logs = agent.logs().text();
    for kind in ["fleet.rebalance", "agent.tune"] {
        let line = logs
            .lines()
            .find(|l| l.contains(kind))
            .unwrap_or_else(|| panic!("nothing logged about {kind}: {logs}"));
        assert!(line.contains("DEBUG"), "{line}");
        assert!(line.contains("does not know"), "{line}");
    }
    assert!(!logs.contains("undecodable"), "{logs}");
    assert!(!logs.contains("disconnected"), "{logs}");
    agent.shutdown().await.unwrap();
}

/// An older server sends only the fields its release knew, and answers
/// what it does not know with `error unknown_type`: the agent logs the
/// error and keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_server_is_served_with_what_it_knows() {
    let (mut server, _state, agent, mut conn) = connected("agent-token-older-server").await;

    // What an older server answers to a message type of a newer agent.
    conn.send(ErrorFrame {
        code: ERROR_UNKNOWN_TYPE.to_owned(),
        detail: "unknown message type \"catalog.chunk\"".to_owned(),
        correlation_id: Some("a-1".to_owned()),
        supported: None,
    })
    .await;
    send_raw(
        &mut conn,
        &json!({"type": "config.update", "id": "o-1", "data": {}}),
    )
    .await;
    run_check_is_answered(&mut conn, "job-older", json!({})).await;
    assert_no_reconnect(&mut server);

    let logs = agent.logs().text();
    assert!(
        logs.contains("the server reported an error") && logs.contains("catalog.chunk"),
        "{logs}"
    );
    assert!(!logs.contains("disconnected"), "{logs}");
    agent.shutdown().await.unwrap();
}
