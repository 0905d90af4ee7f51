//! The server's side of downloads against a scripted agent (no restic):
//! an agent without the `download` capability is refused at once, a
//! failure before the first byte is the agent's message in a 502, and the
//! bytes and credits flow as PROTOCOL.md says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::StatusCode;
use restic_manager::protocol::{
    data_frame_header, DownloadEnd, DownloadErrorCode, DownloadReady, DownloadType, ServerToAgent,
};
use restic_manager::store::{self, models::NewSnapshot};

use crate::common::agent::{enroll, hello, TestAgent};
use crate::common::api::{assert_error, db};
use crate::common::e2e::wait_online;
use crate::common::server::{client, spawn_app, TestApp};

const SNAPSHOT: &str = "4cf8eed27a83eaa00aa61a5c6f6b23bfdc0e9df1c022158d9339059b74adc4ac";

/// A connected scripted agent (with or without the `download`
/// capability) whose host has snapshot [`SNAPSHOT`] reported.
async fn agent(app: &TestApp, capable: bool) -> (String, TestAgent) {
    let enrolled = enroll(app, "web-1").await;
    let mut agent = TestAgent::connect(app, &enrolled).await.unwrap();
    let mut hello = hello("web-1");
    if capable {
        hello
            .capabilities
            .get_or_insert_with(Vec::new)
            .push("download".to_owned());
    }
    agent.send(hello).await;
    agent
        .wait_for(|m| matches!(m, ServerToAgent::ScheduleSet(_)).then_some(()))
        .await;
    wait_online(app, &enrolled.host_id).await;
    let host = enrolled.host_id.clone();
    db(app, move |conn| {
        let snapshot = NewSnapshot {
            snapshot_id: SNAPSHOT.to_owned(),
            short_id: SNAPSHOT[..8].to_owned(),
            time: store::now_ms(),
            hostname: "web-1".to_owned(),
            paths: vec!["/etc".to_owned()],
            tags: Vec::new(),
            size_bytes: None,
            file_count: None,
        };
        store::snapshots::replace_for_host(conn, &host, &[snapshot], store::now_ms()).unwrap();
    })
    .await;
    (enrolled.host_id, agent)
}

fn download(app: &TestApp, host: &str, path: &str) -> reqwest::RequestBuilder {
    client()
        .get(app.api(&format!("/hosts/{host}/snapshots/{SNAPSHOT}/download")))
        .query(&[("path", path)])
        .bearer_auth(&app.admin_token)
}

/// An agent that does not say it streams downloads is refused at once
/// (409 `agent_lacks_capability` naming `download`), not left to time out.
#[actix_web::test]
async fn an_agent_without_the_capability_is_refused() {
    let app = spawn_app().await;
    let (host, _agent) = agent(&app, false).await;
    let response = download(&app, &host, "/etc").send().await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"download\"")),
        "{body}"
    );
    assert_error(
        &(status, body),
        StatusCode::CONFLICT,
        "agent_lacks_capability",
    );
    app.stop().await;
}

/// `download.end` with an error before `download.ready` is a 502 quoting
/// it; a stream is `download.ready`, binary frames (credits granted as
/// the client reads) and `download.end`.
#[actix_web::test]
async fn refusal_then_a_stream_with_credits() {
    let app = spawn_app().await;
    let (host, mut agent) = agent(&app, true).await;

    let request = download(&app, &host, "/etc/shadow").send();
    let script = async {
        let (start, _) = agent
            .wait_for(|m| match m {
                ServerToAgent::DownloadStart(start) => Some(start.clone()),
                _ => None,
            })
            .await;
        assert_eq!(start.snapshot_id, SNAPSHOT);
        assert_eq!(start.path, "/etc/shadow");
        assert_eq!(start.window, 32);
        agent
            .send(DownloadEnd {
                download_id: start.download_id,
                bytes: 0,
                code: Some(DownloadErrorCode::Failed),
                error: Some("Fatal: unable to open repository".to_owned()),
            })
            .await;
    };
    let (response, ()) = futures_util::join!(request, script);
    let response = response.unwrap();
    let status = response.status();
    let message = assert_error(
        &(status, response.json().await.unwrap()),
        StatusCode::BAD_GATEWAY,
        "agent_error",
    );
    assert!(message.contains("unable to open repository"), "{message}");

    // 40 frames of 1 KiB: 32 at first, the rest only after a credit.
    let request = async {
        let response = download(&app, &host, "/etc/hosts").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-length"], "40960");
        response.bytes().await.unwrap()
    };
    let script = async {
        let (start, _) = agent
            .wait_for(|m| match m {
                ServerToAgent::DownloadStart(start) => Some(start.clone()),
                _ => None,
            })
            .await;
        let id = start.download_id.clone();
        agent
            .send(DownloadReady {
                download_id: id.clone(),
                kind: DownloadType::File,
                size: Some(40 * 1024),
            })
            .await;
        let frame = |n: u8| {
            let mut frame = data_frame_header(&id).unwrap();
            frame.extend(std::iter::repeat_n(n, 1024));
            frame
        };
        for n in 0..32 {
            agent.send_binary(frame(n)).await;
        }
        let (credit, _) = agent
            .wait_for(|m| match m {
                ServerToAgent::DownloadCredit(credit) => Some(credit.clone()),
                _ => None,
            })
            .await;
        assert_eq!(credit.download_id, id);
        assert_eq!(credit.chunks, 16);
        for n in 32..40 {
            agent.send_binary(frame(n)).await;
        }
        agent
            .send(DownloadEnd {
                download_id: id,
                bytes: 40 * 1024,
                code: None,
                error: None,
            })
            .await;
    };
    let (body, ()) = futures_util::join!(request, script);
    let expected: Vec<u8> = (0..40u8)
        .flat_map(|n| std::iter::repeat_n(n, 1024))
        .collect();
    assert_eq!(body.to_vec(), expected);
    app.stop().await;
}
