//! Issue 15, part B: the findings of the outside review, one test each
//! (each failed before its fix). Scripted agents over real WebSockets and
//! REST calls on a real server, as in `agent_channel` and `api`.

use std::time::Duration;

use crate::common::agent::{enroll, log_line, Enrolled, TestAgent};
use crate::common::server::{spawn_app, TestApp};
use restic_manager::actors::events::{Event, EventFilter, Subscribe};
use restic_manager::actors::NewJobRequest;
use restic_manager::protocol;

/// Enrols, connects and says hello.
async fn online_agent(app: &TestApp, hostname: &str) -> (Enrolled, TestAgent) {
    let enrolled = enroll(app, hostname).await;
    let mut agent = TestAgent::connect(app, &enrolled).await.expect("connect");
    agent.hello(hostname).await;
    (enrolled, agent)
}

/// A queued `check` job of a host, created as "run now" does.
async fn run_check(app: &TestApp, host_id: &str) -> String {
    app.state
        .actors
        .create_job(NewJobRequest {
            host_id: host_id.to_owned(),
            kind: protocol::JobKind::Check,
            source_group: None,
            requested_by: "admin".to_owned(),
            source_addr: None,
            restore: None,
            drill: None,
        })
        .await
        .expect("job created")
        .id
        .to_string()
}

/// B.4: an agent's progress and log lines for another host's job are not
/// published to that job's live view; the owner's are.
#[actix_web::test]
async fn live_events_only_for_the_sessions_own_jobs() {
    let app = spawn_app().await;
    let (_a, mut intruder) = online_agent(&app, "intruder").await;
    let (b, mut owner) = online_agent(&app, "owner").await;
    let job_id = run_check(&app, &b.host_id).await;
    let run = owner.expect_command_run().await;
    assert_eq!(run.job_id, job_id);
    let mut events = app
        .state
        .actors
        .events
        .send(Subscribe {
            filter: EventFilter::Job(job_id.clone()),
        })
        .await
        .unwrap();

    intruder
        .send(protocol::JobProgress {
            job_id: job_id.clone(),
            percent_done: 0.9,
            files_done: 1,
            total_files: 1,
            bytes_done: 1,
            total_bytes: 1,
            eta_seconds: None,
            throughput_bps: 1,
        })
        .await;
    intruder.send(log_line(&job_id, 1)).await;
    // A bad frame's answer: the intruder's frames before it were handled
    // (and anything they published is in the events' mailbox).
    intruder.send_text("{}").await;
    intruder.expect_error().await;

    owner.send(log_line(&job_id, 7)).await;
    let first = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event")
        .expect("subscribed");
    match &*first {
        Event::JobLog { host_id, seq, .. } => {
            assert_eq!(host_id, &b.host_id);
            assert_eq!(*seq, 7);
        }
        other => panic!("the intruder's event was published: {other:?}"),
    }
}
