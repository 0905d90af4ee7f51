//! `GET /jobs/{id}`: one job. Status, kind, attempt, timings, the
//! progress bar with throughput and ETA while it runs, the log (the last
//! [`LOG_TAIL`] stored lines), restic's summary once it is done, and a
//! cancel button for operators while it is active. A restore also shows
//! what it restores (snapshot, source host, paths, target, overwrite
//! mode, verify); a catalog job links its snapshot.
//!
//! While the job is active, `app.js` follows `GET /api/v1/jobs/{id}/events`
//! (Server-Sent Events, `api::events`) from the last rendered log line on
//! and updates the status, timings, progress and log in place.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::future;
use maud::{html, Markup};
use serde_json::Value;

use super::format::{self, plural};
use super::layout::{self, badge, Nav};
use super::log_lines;
use super::{encode_query_value, html_response, PageCtx, PageReader, UiError};
use crate::auth::Role;
use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;
use crate::protocol::JobProgress;
use crate::store::job_params::JobParams;
use crate::store::models::{Job, JobLog};
use crate::store::{self, JobKind, JobStatus};

/// Log lines rendered with the page (the newest ones).
pub const LOG_TAIL: i64 = 2000;

struct Data {
    job: Job,
    host_label: Option<String>,
    log: Vec<JobLog>,
    /// Every attempt of this job's first attempt, by number (just this
    /// job when it was never retried).
    attempts: Vec<Job>,
    /// Why a queued job waits for its repository lease.
    waiting_for: Option<String>,
}

pub(super) async fn page(
    state: web::Data<AppState>,
    page: PageReader,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let id = path.into_inner();
    // Two statements on two connections at once (on PostgreSQL each is a
    // round trip): the retry chain, the job among it, with the host's
    // name; and the log's tail, which needs no job row.
    let chain = with_conn(&state.pool, {
        let id = id.clone();
        move |conn| {
            let (attempts, host_label) = store::jobs::chain_with_host_label(conn, &id)?;
            let job = attempts
                .iter()
                .find(|j| j.id.as_str() == id)
                .cloned()
                .ok_or_else(|| ApiError::not_found(&format!("job {id}")))?;
            // Only a queued job waits for a lease (and only then is it shown).
            let waiting_for = if job.status == JobStatus::Queued {
                store::leases::waiting_for(conn, &[id.as_str()])?
                    .pop()
                    .map(|(_, reason)| reason)
            } else {
                None
            };
            Ok((job, attempts, host_label, waiting_for))
        }
    });
    let log = with_conn(&state.pool, move |conn| {
        Ok(store::job_logs::tail(conn, &id, LOG_TAIL)?)
    });
    // Alongside the caller's check (`PageReader`): viewers and up may see it.
    let (ctx, ((job, attempts, host_label, waiting_for), log)) =
        page.alongside(future::try_join(chain, log)).await?;
    ctx.require(Role::Viewer)?;
    let data = Data {
        job,
        host_label,
        log,
        attempts,
        waiting_for,
    };
    let progress: Option<JobProgress> = data.job.progress.clone();
    let stats: Option<Value> = data.job.stats.clone();
    let title = format!(
        "{} job{}",
        data.job.kind.as_str(),
        data.job
            .tag
            .as_deref()
            .map(|t| format!(" · {t}"))
            .unwrap_or_default()
    );
    let body = render(&ctx, &data, progress.as_ref(), stats.as_ref());
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::None, &title, body),
    ))
}

/// The badge of a job status (a success with a warning says so).
fn status_badge(job: &Job) -> Markup {
    match (job.status, job.warning.is_some()) {
        (JobStatus::Succeeded, true) => badge("warning", "succeeded with warnings"),
        (status, _) => badge(status.as_str(), status.as_str()),
    }
}

/// A stored time for the timings list (`—` when not reached yet).
fn when(ms: Option<i64>) -> Markup {
    match ms {
        Some(at) => html! { time datetime=(format::rfc3339(at)) { (format::time(at)) } },
        None => html! { "—" },
    }
}

/// One value of restic's summary, written for people: sizes in binary
/// units, durations in seconds, the rest as JSON text.
pub fn summary_value(key: &str, value: &Value) -> String {
    match value {
        Value::Number(n)
            if key.contains("bytes") || key.starts_with("data_added") || key.ends_with("_size") =>
        {
            n.as_u64()
                .map(format::bytes)
                .unwrap_or_else(|| n.to_string())
        }
        Value::Number(n) if key.ends_with("duration") => n
            .as_f64()
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| n.to_string()),
        Value::String(s) => s.clone(),
        Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

/// The progress text's figures, as written under the bar.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    /// 0..=100.
    percent: f64,
    /// `"179 MiB of 192 MiB"`.
    bytes: String,
    /// `"2 of 54 files"`.
    files: String,
    /// `"179 MiB/s"`, or `"—"` until measured.
    throughput: String,
    /// `"1m 5s"`, or `"—"` when unknown or finished.
    eta: String,
}

/// A throughput as text: `"—"` until something was measured.
fn throughput(bps: u64) -> String {
    if bps == 0 {
        "—".to_owned()
    } else {
        format!("{}/s", format::bytes(bps))
    }
}

/// A backup summary's final figures (`total_bytes_processed`,
/// `total_files_processed`, the average throughput over
/// `total_duration`); `None` for summaries without them (other kinds).
/// `app.js` `finalFigures` computes the same for the live page.
fn final_figures(stats: &Value) -> Option<Figures> {
    let bytes = stats.get("total_bytes_processed")?.as_u64()?;
    let files = stats.get("total_files_processed")?.as_u64()?;
    let secs = stats
        .get("total_duration")
        .and_then(Value::as_f64)
        .filter(|s| *s > 0.0);
    let bps = secs.map_or(0, |s| (bytes as f64 / s) as u64);
    Some(Figures {
        percent: 100.0,
        bytes: format!("{} of {}", format::bytes(bytes), format::bytes(bytes)),
        files: format!("{files} of {}", plural(files, "file", "files")),
        throughput: throughput(bps),
        eta: "—".to_owned(),
    })
}

/// What the progress section shows: a succeeded job's final figures
/// from its summary (so the text agrees with the summary below it), else
/// the last reported progress (complete for a success, without an ETA
/// once the job ended); `None` when there is nothing to show.
fn progress_figures(
    status: JobStatus,
    progress: Option<&JobProgress>,
    stats: Option<&Value>,
) -> Option<Figures> {
    let succeeded = status == JobStatus::Succeeded;
    if succeeded {
        if let Some(f) = stats.and_then(final_figures) {
            return Some(f);
        }
    }
    let p = progress?;
    let percent = if succeeded {
        100.0
    } else {
        (p.percent_done * 100.0).clamp(0.0, 100.0)
    };
    let eta = match p.eta_seconds {
        Some(secs) if !status.is_terminal() => format::duration_secs(secs),
        _ => "—".to_owned(),
    };
    Some(Figures {
        percent,
        bytes: format!(
            "{} of {}",
            format::bytes(p.bytes_done),
            format::bytes(p.total_bytes)
        ),
        files: format!(
            "{} of {}",
            p.files_done,
            plural(p.total_files, "file", "files")
        ),
        throughput: throughput(p.throughput_bps),
        eta,
    })
}

fn summary(stats: Option<&Value>) -> Markup {
    html! {
        @match stats {
            Some(Value::Object(map)) => {
                dl.facts #job-summary-list {
                    @for (key, value) in map {
                        @if key != "message_type" {
                            dt { (key.replace('_', " ")) } dd data-key=(key) { (summary_value(key, value)) }
                        }
                    }
                }
            }
            Some(other) => pre { (other.to_string()) },
            None => p.muted { "No summary." },
        }
    }
}

fn render(
    ctx: &PageCtx,
    data: &Data,
    progress: Option<&JobProgress>,
    stats: Option<&Value>,
) -> Markup {
    let job = &data.job;
    let terminal = job.status.is_terminal();
    let first_seq = data.log.first().map_or(0, |l| l.seq);
    let last_seq = data.log.last().map_or(0, |l| l.seq).max(0);
    let figures = progress_figures(job.status, progress, stats);
    html! {
        div #job-page data-job-id=(job.id) data-status=(job.status.as_str())
            data-rendered-status=(job.status.as_str())
            data-terminal=(if terminal { "true" } else { "false" })
            data-last-seq=(last_seq)
            data-events={ "/api/v1/jobs/" (job.id) "/events" } {
            section #job-facts {
                dl.facts {
                    dt { "Status" } dd #job-status { (status_badge(job)) }
                    dt { "Host" } dd { a href={ "/hosts/" (job.host_id) } { (data.host_label.as_deref().unwrap_or(&job.host_id)) } }
                    dt { "Kind" } dd #job-kind { (job.kind.as_str()) }
                    @if let Some(tag) = &job.tag { dt { "Source group" } dd { (tag) } }
                    (restore_facts(job))
                    dt { "Trigger" } dd { (job.trigger.as_str()) }
                    dt { "Attempt" } dd #job-attempt {
                        (job.attempt)
                        @if let Some(at) = job.retry_at { " — due " (format::time(at)) }
                        @if data.attempts.len() > 1 {
                            " — attempts: "
                            @for (i, a) in data.attempts.iter().enumerate() {
                                @if i > 0 { ", " }
                                @if a.id == job.id { strong { "#" (a.attempt) " " (a.status.as_str()) } }
                                @else { a href={ "/jobs/" (a.id) } { "#" (a.attempt) " " (a.status.as_str()) } }
                            }
                        }
                    }
                    dt { "Created" } dd { (when(Some(job.created_at))) }
                    dt { "Started" } dd #job-started { (when(job.started_at)) }
                    dt { "Finished" } dd #job-finished { (when(job.finished_at)) }
                    dt { "Duration" } dd #job-duration { (format::elapsed(job.started_at, job.finished_at).unwrap_or_else(|| "—".to_owned())) }
                    @if let Some(code) = job.exit_code { dt { "Exit code" } dd { (code) } }
                }
                @if let Some(reason) = &data.waiting_for {
                    p #job-waiting-for.warning { "Waiting for its repository lease: " (reason) }
                }
                p #job-error.error hidden[job.error.is_none()] { (job.error.as_deref().unwrap_or("")) }
                p #job-warning.warning hidden[job.warning.is_none()] { (job.warning.as_deref().unwrap_or("")) }
                @if ctx.can_operate() && !terminal {
                    div.actions {
                        button #cancel-job type="button" data-change data-method="POST"
                            data-path={ "/api/v1/jobs/" (job.id) "/cancel" }
                            data-confirm="Cancel this job?" data-then="message" data-message="Cancel requested." { "Cancel job" }
                    }
                }
            }
            section #job-progress-section hidden[figures.is_none() && job.status != JobStatus::Running] {
                h2 { "Progress" }
                progress #job-progress max="100" value=(figures.as_ref().map_or(0.0, |f| f.percent)) data-updates="0" {}
                p.progress-text {
                    span #progress-percent { (figures.as_ref().map_or("0%".to_owned(), |f| format!("{:.1}%", f.percent))) }
                    " · "
                    span #progress-bytes { (figures.as_ref().map_or("—", |f| f.bytes.as_str())) }
                    " · "
                    span #progress-files { (figures.as_ref().map_or("—", |f| f.files.as_str())) }
                    " · "
                    span #progress-throughput { (figures.as_ref().map_or("—", |f| f.throughput.as_str())) }
                    " · ETA "
                    span #progress-eta { (figures.as_ref().map_or("—", |f| f.eta.as_str())) }
                }
            }
            section #job-summary hidden[stats.is_none()] {
                h2 { "Summary" }
                div #job-summary-body { (summary(stats)) }
            }
            section #job-log-section {
                h2 { "Log" }
                @if first_seq > 1 {
                    p.muted { "Earlier lines are not shown; the full log is at "
                        a href={ "/api/v1/jobs/" (job.id) "/logs" } { "/api/v1/jobs/" (job.id) "/logs" } "." }
                }
                // A checkbox, not a button: it changes nothing but the view
                // (CSS shows the raw lines when it is checked).
                input #log-raw-toggle.toggle type="checkbox";
                label.toggle for="log-raw-toggle" { "Show the raw lines" }
                div #job-log.log role="log" aria-live="polite" {
                    @for line in &data.log { (log_line(line)) }
                }
                p.muted #job-log-empty hidden[!data.log.is_empty()] { "No log lines yet." }
            }
        }
    }
}

/// A restore's parameters (and the snapshot a restore or catalog job
/// reads, linked to its page on the host whose repository holds it).
fn restore_facts(job: &Job) -> Markup {
    let spec = match job.kind {
        JobKind::Restore => job.params.as_ref().and_then(JobParams::restore),
        _ => None,
    };
    let source = spec
        .as_ref()
        .and_then(|s| s.source_host_id.clone())
        .unwrap_or_else(|| job.host_id.to_string());
    html! {
        @if let Some(snapshot) = &job.snapshot_id {
            dt { "Snapshot" } dd #job-snapshot {
                a href={ "/hosts/" (encode_query_value(&source)) "/snapshots/" (encode_query_value(snapshot)) } {
                    code title=(snapshot) { (snapshot.get(..8).unwrap_or(snapshot)) } }
            }
        }
        @if let Some(spec) = &spec {
            @if let Some(from) = &spec.source_host_id {
                dt { "From host" } dd { a href={ "/hosts/" (encode_query_value(from)) } { (from) } }
            }
            dt { "Paths" } dd #job-restore-paths {
                @if spec.paths.is_empty() { "the whole snapshot" }
                @for p in &spec.paths { code { (p) } br; }
            }
            dt { "Target" } dd #job-restore-target { code { (spec.target) } }
            dt { "Existing files" } dd { (spec.overwrite.as_str()) }
            dt { "Verify" } dd { (if spec.verify { "yes" } else { "no" }) }
        }
    }
}

/// One stored log line: restic's JSON as text for people with the raw
/// line beside it (hidden until asked for), anything else as printed.
/// `app.js` `lineElement` builds the same for live lines.
fn log_line(line: &JobLog) -> Markup {
    let shown = log_lines::show(line.stream, &line.payload);
    let kind = shown.kind.as_str();
    html! {
        div class={ "line line-" (line.stream.as_str()) " kind-" (kind) } data-seq=(line.seq) data-kind=(kind) {
            @match &shown.text {
                Some(text) => { span.human { (text) } span.raw { (line.payload) } }
                None => (line.payload),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Summary values: sizes in binary units, durations in seconds, text as is.
    #[test]
    fn summary_values() {
        assert_eq!(summary_value("data_added", &json!(3_001_768)), "2.9 MiB");
        assert_eq!(
            summary_value("total_bytes_processed", &json!(1024)),
            "1.0 KiB"
        );
        assert_eq!(summary_value("total_duration", &json!(0.25)), "0.2 s");
        assert_eq!(summary_value("files_new", &json!(3)), "3");
        assert_eq!(summary_value("snapshot_id", &json!("f535d3c7")), "f535d3c7");
        assert_eq!(summary_value("broken_packs", &Value::Null), "—");
    }

    fn progress(percent: f64, bytes: u64, files: u64, bps: u64) -> JobProgress {
        JobProgress {
            job_id: "j".into(),
            percent_done: percent,
            files_done: files,
            total_files: 54,
            bytes_done: bytes,
            total_bytes: 192 * 1024 * 1024,
            eta_seconds: Some(3),
            throughput_bps: bps,
            step: None,
            dumped_bytes: None,
        }
    }

    /// A succeeded backup shows its summary's final figures, not the last
    /// mid-run progress; throughput is "—" until measured; no ETA once done.
    #[test]
    fn progress_figures_follow_the_outcome() {
        let last = progress(0.93, 179 * 1024 * 1024, 2, 179 * 1024 * 1024);
        let summary = json!({"total_bytes_processed": 192u64 * 1024 * 1024,
            "total_files_processed": 54, "total_duration": 2.0});
        let done = progress_figures(JobStatus::Succeeded, Some(&last), Some(&summary)).unwrap();
        assert_eq!(done.percent, 100.0);
        assert_eq!(done.bytes, "192 MiB of 192 MiB");
        assert_eq!(done.files, "54 of 54 files");
        assert_eq!(done.throughput, "96.0 MiB/s");
        assert_eq!(done.eta, "—");
        // Without a summary that has figures: the last progress, completed.
        let done = progress_figures(JobStatus::Succeeded, Some(&last), Some(&json!({}))).unwrap();
        assert_eq!((done.percent, done.eta.as_str()), (100.0, "—"));
        assert_eq!(done.files, "2 of 54 files");
        // Running: as reported; the first second has no throughput yet.
        let first = progress(0.0, 0, 0, 0);
        let running = progress_figures(JobStatus::Running, Some(&first), None).unwrap();
        assert_eq!(running.throughput, "—");
        assert_eq!(running.eta, "3s");
        let failed = progress_figures(JobStatus::Failed, Some(&last), Some(&summary)).unwrap();
        assert_eq!((failed.percent.round(), failed.eta.as_str()), (93.0, "—"));
        assert!(progress_figures(JobStatus::Succeeded, None, None).is_none());
    }

    /// Summary text is escaped, never markup.
    #[test]
    fn summary_is_escaped() {
        let html = summary(Some(&json!({"snapshot_id": "<img src=x>"}))).into_string();
        assert!(html.contains("&lt;img src=x&gt;"), "{html}");
    }
}
