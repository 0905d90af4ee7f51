//! Notifications (issue 15 A): which events exist, which change of the
//! server's state raises which event, and what a notification says.
//!
//! The rules here are pure: [`job_events`] turns a job that just ended
//! into the events it raises, [`payload`] builds an event's JSON body.
//! `store::notifications` records them (de-duplicated by condition) in the
//! caller's transaction, `actors::notifier` delivers them, and [`deliver`]
//! speaks to webhooks and mail servers.
//!
//! Every failure event is paired with its recovery: a condition starts
//! with the failure and ends with the recovery, and only those two edges
//! notify. A channel that asks for a failure also gets its recovery.

pub mod deliver;

use serde_json::{json, Map, Value};

use crate::ids::{HostId, ScheduleId};
use crate::protocol::JobKind;
use crate::store::models::Job;
use crate::store::notifications::{condition_key, Event};
use crate::store::JobStatus;

/// A backup (or forget, prune, …) failed after its last retry.
pub const JOB_FAILED: &str = "job.failed";
/// The next run of that host, group and kind succeeded.
pub const JOB_RECOVERED: &str = "job.recovered";
/// A scheduled run did not fire.
pub const RUN_MISSED: &str = "run.missed";
/// A later run of that schedule succeeded.
pub const RUN_RECOVERED: &str = "run.recovered";
/// A host stayed offline longer than `--offline-grace-seconds`.
pub const HOST_OFFLINE: &str = "host.offline";
/// It came back.
pub const HOST_ONLINE: &str = "host.online";
/// `restic check` failed.
pub const CHECK_FAILED: &str = "check.failed";
/// The next check passed.
pub const CHECK_RECOVERED: &str = "check.recovered";
/// A restore drill failed.
pub const DRILL_FAILED: &str = "drill.failed";
/// The next drill of that group passed.
pub const DRILL_RECOVERED: &str = "drill.recovered";

/// A service health check of a host failed.
pub const HEALTH_DOWN: &str = "health.down";
/// It passed again.
pub const HEALTH_UP: &str = "health.up";

/// Failure events and their recoveries.
pub const PAIRS: &[(&str, &str)] = &[
    (JOB_FAILED, JOB_RECOVERED),
    (RUN_MISSED, RUN_RECOVERED),
    (HOST_OFFLINE, HOST_ONLINE),
    (CHECK_FAILED, CHECK_RECOVERED),
    (DRILL_FAILED, DRILL_RECOVERED),
    (HEALTH_DOWN, HEALTH_UP),
];

/// Whether `name` is an event a channel may ask for.
pub fn is_event(name: &str) -> bool {
    PAIRS.iter().any(|(f, r)| *f == name || *r == name)
}

/// The failure whose recovery `event` is, if it is one.
pub fn failure_of(event: &str) -> Option<&'static str> {
    PAIRS.iter().find(|(_, r)| *r == event).map(|(f, _)| *f)
}

fn detail(pairs: &[(&str, Option<String>)]) -> Map<String, Value> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), Value::String(v))))
        .collect()
}

/// The events a job that just ended raises (none for a cancelled job, a
/// failure that will be retried, or a catalog job, which is the server's
/// own housekeeping). `follow_up` is the job created with its end.
pub fn job_events(job: &Job, follow_up: Option<&Job>) -> Vec<Event> {
    let failed = match job.status {
        JobStatus::Failed => true,
        JobStatus::Succeeded => false,
        _ => return Vec::new(),
    };
    if failed && follow_up.is_some_and(|f| f.kind == job.kind) {
        return Vec::new(); // a retry follows: not the last attempt yet
    }
    if job.kind == JobKind::Catalog {
        return Vec::new();
    }
    let group = job.tag.clone().unwrap_or_default();
    let (failure, recovery, about) = match job.kind {
        JobKind::Check => (CHECK_FAILED, CHECK_RECOVERED, String::new()),
        JobKind::Drill => (DRILL_FAILED, DRILL_RECOVERED, group.clone()),
        kind => (JOB_FAILED, JOB_RECOVERED, format!("{kind}|{group}")),
    };
    let at = job.finished_at.unwrap_or(job.created_at);
    let message = if failed {
        let error = job.error.as_deref().unwrap_or("no reason given");
        format!("{} job failed: {error}", job.kind)
    } else {
        format!("{} job succeeded again", job.kind)
    };
    let mut events = vec![Event {
        name: if failed { failure } else { recovery },
        condition: condition_key(failure, &job.host_id, &about),
        starts: failed,
        host_id: job.host_id.to_string(),
        detail: detail(&[
            ("kind", Some(job.kind.to_string())),
            ("source_group", job.tag.clone()),
            ("job_id", Some(job.id.to_string())),
            ("message", Some(message)),
            ("path", Some(format!("/jobs/{}", job.id))),
        ]),
        at,
    }];
    if let (false, Some(schedule_id)) = (failed, &job.schedule_id) {
        events.push(run_event(&job.host_id, schedule_id, false, at));
    }
    events
}

/// `run.missed` (`missed`) or `run.recovered` of one schedule.
pub fn run_event(host_id: &HostId, schedule_id: &ScheduleId, missed: bool, at: i64) -> Event {
    let message = if missed {
        "a scheduled run did not start".to_owned()
    } else {
        "the schedule runs again".to_owned()
    };
    Event {
        name: if missed { RUN_MISSED } else { RUN_RECOVERED },
        condition: condition_key(RUN_MISSED, host_id, schedule_id),
        starts: missed,
        host_id: host_id.to_string(),
        detail: detail(&[
            ("schedule_id", Some(schedule_id.to_string())),
            ("message", Some(message)),
            ("path", Some(format!("/hosts/{host_id}"))),
        ]),
        at,
    }
}

/// `host.offline` (since `last_seen`) or `host.online`.
pub fn host_event(host_id: &str, offline: bool, at: i64) -> Event {
    let message = if offline {
        "the host's agent is offline"
    } else {
        "the host's agent is back online"
    };
    Event {
        name: if offline { HOST_OFFLINE } else { HOST_ONLINE },
        condition: condition_key(HOST_OFFLINE, host_id, ""),
        starts: offline,
        host_id: host_id.to_owned(),
        detail: detail(&[
            ("message", Some(message.to_owned())),
            ("path", Some(format!("/hosts/{host_id}"))),
        ]),
        at,
    }
}

/// `health.down` (`down`) or `health.up` of one check of a host.
pub fn health_event(host_id: &str, check: &str, down: bool, at: i64) -> Event {
    let message = if down {
        format!("the health check {check} fails")
    } else {
        format!("the health check {check} passes again")
    };
    Event {
        name: if down { HEALTH_DOWN } else { HEALTH_UP },
        condition: condition_key(HEALTH_DOWN, host_id, check),
        starts: down,
        host_id: host_id.to_owned(),
        detail: detail(&[
            ("check", Some(check.to_owned())),
            ("message", Some(message)),
            ("path", Some(format!("/hosts/{host_id}"))),
        ]),
        at,
    }
}

/// RFC 3339 text of a Unix time in milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An event's body as the outbox stores it: the delivery adds `id` and
/// turns `path` into `url` (docs/API.md, "Notifications").
pub fn payload(
    event: &Event,
    hostname: &str,
    display_name: Option<&str>,
    since: Option<i64>,
) -> Value {
    let mut body = json!({
        "event": event.name,
        "state": if event.starts { "firing" } else { "resolved" },
        "occurred_at": rfc3339(event.at),
        "host": {
            "id": event.host_id,
            "hostname": hostname,
            "name": display_name.unwrap_or(hostname),
        },
    });
    if let (Some(since), Some(obj)) = (since, body.as_object_mut()) {
        obj.insert("since".into(), Value::String(rfc3339(since)));
    }
    if let Some(obj) = body.as_object_mut() {
        for (k, v) in &event.detail {
            obj.insert(k.clone(), v.clone());
        }
    }
    body
}

/// One line about an event body, for summaries and mail subjects.
pub fn one_line(body: &Value) -> String {
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    let host = body
        .pointer("/host/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let group = match text("source_group") {
        "" => String::new(),
        g => format!(" ({g})"),
    };
    format!("{}: {host}{group}: {}", text("event"), text("message"))
}

#[cfg(test)]
mod tests;
