//! `GET /`: the fleet dashboard. Counters (hosts online and offline,
//! backups and missed runs of the last 24 hours), then what needs
//! attention first — failed backups, missed runs, offline hosts, hosts
//! never backed up, stale backups — each capped at [`ROWS_PER_STATE`] rows
//! with an "and N more" link to the host list filtered by that state, then
//! the healthy rest as a count with a short sample, and the fleet calendar
//! of the most urgent hosts (`?calendar=verified` shows restore drills
//! instead of backups). Host badges follow presence live (`app.js`
//! listens to `GET /ui/events`).
//!
//! Every figure comes from summary rows, a capped, indexed page (see
//! `store::ui_queries`) or the per-state host counts
//! (`store::hosts::state_counts`: one scan of the hosts on PostgreSQL,
//! about 3 ms at 10,000 hosts, and per-state counts that SQLite's indexes
//! answer), so the rows read do not grow with the fleet; the counts do,
//! slowly. Its size is bounded by construction, not by
//! the fleet: at most [`ROWS_PER_STATE`] rows per attention state and
//! [`HEALTHY_ROWS`] healthy rows (rows, not hosts: a host with forty
//! groups does not add forty), names clipped to [`NAME_CHARS`], and
//! [`CALENDAR_HOSTS`] calendar rows of fixed-size cells. With every row
//! filled and every name as long as allowed and made of characters that
//! HTML escapes, it is about 150 KB, under the 200 KB the issue sets (the
//! `dashboard_size_is_bounded_in_every_state` integration test seeds that
//! fleet); with ordinary names it is 113 KB at 10,000 hosts (loadgen `ui`).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::calendar::{self, Calendar, View};
use super::layout::{self, badge, Nav};
use super::{format, html_response, PageReader, UiError};
use crate::auth::Role;
use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;
use crate::store::hosts::{Health, HostCounts, HostFilter};
use crate::store::models::Job;
use crate::store::ui_queries::{self, HostBrief, LatestResult};
use crate::store::{JobKind, JobStatus};

/// Rows shown per state that needs attention; the rest is a link.
pub const ROWS_PER_STATE: i64 = 25;
/// Rows of healthy hosts shown as a sample.
pub const HEALTHY_ROWS: usize = 10;
/// Hosts in the calendar (the most urgent first).
pub const CALENDAR_HOSTS: usize = 10;
/// Characters of a host or source group name shown in a row; the host
/// page shows the whole name.
pub const NAME_CHARS: usize = 40;
const DAY_MS: i64 = 86_400_000;
/// A run missed this recently marks its host.
pub const MISSED_WINDOW_MS: i64 = DAY_MS;
/// A host whose newest successful backup is older than this is stale.
pub const STALE_AFTER_MS: i64 = 3 * DAY_MS;

/// A host state on the dashboard, worst first; each is also a filter of
/// the host list (`/hosts?status=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Severity {
    Failed,
    Missed,
    Offline,
    Never,
    Stale,
    Ok,
}

impl Severity {
    pub(super) const ALL: [Severity; 6] = [
        Severity::Failed,
        Severity::Missed,
        Severity::Offline,
        Severity::Never,
        Severity::Stale,
        Severity::Ok,
    ];

    /// The `data-severity` value, and the `status` of the host list.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Severity::Failed => "failed",
            Severity::Missed => "missed",
            Severity::Offline => "offline",
            Severity::Never => "never",
            Severity::Stale => "stale",
            Severity::Ok => "healthy",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Severity::Failed => "Latest backup failed",
            Severity::Missed => "Missed a scheduled run in the last 24 h",
            Severity::Offline => "Offline",
            Severity::Never => "Never backed up",
            Severity::Stale => "No successful backup for 3 days",
            Severity::Ok => "Healthy",
        }
    }

    /// The host-list filter of this state at `now`: offline, or one of
    /// the backup states of [`by_health`].
    pub(super) fn filter(self, now: i64) -> HostFilter {
        HostFilter {
            online: (self == Severity::Offline).then_some(false),
            health: by_health(now)
                .into_iter()
                .find(|(s, _)| *s == self)
                .map(|(_, health)| health),
            ..HostFilter::default()
        }
    }

    /// Parses a host-list `status` value.
    pub(super) fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One row: a host, and one of its source groups' latest result (or none).
struct Row {
    host: HostBrief,
    result: Option<LatestResult>,
}

/// The hosts in one state: how many, and the first rows.
struct Section {
    severity: Severity,
    /// Hosts in this state.
    count: i64,
    rows: Vec<Row>,
}

impl Section {
    /// Hosts in this state that the rows do not show.
    fn more(&self) -> i64 {
        let mut shown: Vec<&str> = self.rows.iter().map(|r| r.host.id.as_str()).collect();
        shown.dedup();
        self.count - i64::try_from(shown.len()).unwrap_or(0)
    }
}

/// The name a host is shown by.
pub(super) fn host_label(host: &HostBrief) -> &str {
    host.display_name.as_deref().unwrap_or(&host.hostname)
}

/// The badge of a finished job's outcome.
pub(super) fn outcome_badge(job: &Job) -> Markup {
    result_badge(job.status, job.warning.is_some())
}

fn result_badge(status: JobStatus, warning: bool) -> Markup {
    match (status, warning) {
        (JobStatus::Succeeded, true) => badge("warning", "succeeded with warnings"),
        (status, _) => badge(status.as_str(), status.as_str()),
    }
}

/// Everything the dashboard shows, read in one blocking call.
struct Data {
    hosts: i64,
    online: i64,
    sections: Vec<Section>,
    calendar_hosts: Vec<(String, String)>,
    outcomes: Vec<ui_queries::JobOutcome>,
    missed: Vec<(String, i64)>,
    last_day: (i64, i64, i64),
    missed_day: i64,
    /// Health checks whose latest result is down, fleet-wide.
    services_down: i64,
}

/// The states that are backup states at `now`, with them (the rest,
/// offline, is the online/offline count's).
fn by_health(now: i64) -> [(Severity, Health); 5] {
    [
        (Severity::Failed, Health::Failed),
        (
            Severity::Missed,
            Health::Missed {
                since: now - MISSED_WINDOW_MS,
            },
        ),
        (Severity::Never, Health::Never),
        (
            Severity::Stale,
            Health::Stale {
                before: now - STALE_AFTER_MS,
            },
        ),
        (
            Severity::Ok,
            Health::Healthy {
                missed_since: now - MISSED_WINDOW_MS,
                stale_before: now - STALE_AFTER_MS,
            },
        ),
    ]
}

/// Reads the host counts (online and offline) and the sections: per state
/// its count and first rows; healthy hosts with every group's latest
/// result.
fn sections(
    conn: &mut crate::store::DbConnection,
    now: i64,
) -> diesel::QueryResult<(HostCounts, Vec<Section>)> {
    let states = by_health(now);
    let counts = crate::store::hosts::state_counts(conn, states.map(|(_, health)| health))?;
    let mut out = Vec::new();
    for severity in Severity::ALL {
        let filter = severity.filter(now);
        let count = match states.iter().position(|(s, _)| *s == severity) {
            Some(i) => counts.states[i],
            None => counts.hosts.offline,
        };
        let rows = if count == 0 {
            Vec::new()
        } else if severity == Severity::Failed {
            ui_queries::failed_results(conn, ROWS_PER_STATE)?
                .into_iter()
                .map(|(host, result)| Row {
                    host,
                    result: Some(result),
                })
                .collect()
        } else {
            let limit = if severity == Severity::Ok {
                HEALTHY_ROWS as i64
            } else {
                ROWS_PER_STATE
            };
            let hosts = ui_queries::hosts_brief(conn, &HostFilter { limit, ..filter })?;
            if severity == Severity::Ok {
                let ids: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
                let mut results: HashMap<String, Vec<LatestResult>> = HashMap::new();
                for r in ui_queries::latest_results(conn, &ids)? {
                    results.entry(r.host_id.clone()).or_default().push(r);
                }
                let mut rows = Vec::new();
                for host in hosts {
                    let mine = results.remove(&host.id).unwrap_or_default();
                    if mine.is_empty() {
                        rows.push(Row { host, result: None });
                        continue;
                    }
                    for result in mine {
                        rows.push(Row {
                            host: host.clone(),
                            result: Some(result),
                        });
                    }
                }
                // A sample of rows, however many groups the hosts have.
                rows.truncate(HEALTHY_ROWS);
                rows
            } else {
                hosts
                    .into_iter()
                    .map(|host| Row { host, result: None })
                    .collect()
            }
        };
        out.push(Section {
            severity,
            count,
            rows,
        });
    }
    Ok((counts.hosts, out))
}

/// The dashboard's query: which calendar view.
#[derive(Debug, serde::Deserialize)]
pub(super) struct DashboardQuery {
    calendar: Option<String>,
}

pub(super) async fn page(
    state: web::Data<AppState>,
    page: PageReader,
    query: web::Query<DashboardQuery>,
) -> Result<HttpResponse, UiError> {
    let view = match query.into_inner().calendar.filter(|c| !c.is_empty()) {
        None => Ok(View::Backups),
        Some(text) => View::parse(&text).ok_or_else(|| {
            ApiError::validation(format!(
                "calendar: expected backups or verified, got {text:?}"
            ))
        }),
    };
    let now = page.now;
    let (first_day, window_start) = calendar::window(now);
    // Alongside the caller's check (`PageReader`), which is answered
    // first, before a bad query's error: viewers and up may see it.
    let (ctx, data) = page
        .alongside(async move {
            let view = view?;
            let data = with_conn(&state.pool, move |conn| {
                let (counts, sections) = sections(conn, now)?;
                // The calendar shows the most urgent hosts first, like the table.
                let mut calendar_hosts: Vec<(String, String)> = Vec::new();
                for row in sections.iter().flat_map(|s| &s.rows) {
                    if calendar_hosts.len() >= CALENDAR_HOSTS {
                        break;
                    }
                    if !calendar_hosts.iter().any(|(id, _)| *id == row.host.id) {
                        calendar_hosts
                            .push((row.host.id.clone(), host_label(&row.host).to_owned()));
                    }
                }
                let ids: Vec<String> = calendar_hosts.iter().map(|(id, _)| id.clone()).collect();
                let (outcomes, missed) = match view {
                    View::Backups => (
                        ui_queries::outcomes_since(conn, &ids, JobKind::Backup, window_start)?,
                        ui_queries::missed_runs_since(conn, &ids, window_start)?
                            .into_iter()
                            .map(|m| (m.host_id, m.scheduled_at))
                            .collect(),
                    ),
                    View::Verified => (
                        ui_queries::outcomes_since(conn, &ids, JobKind::Drill, window_start)?,
                        Vec::new(),
                    ),
                };
                Ok(Data {
                    hosts: counts.online + counts.offline,
                    online: counts.online,
                    sections,
                    calendar_hosts,
                    outcomes,
                    missed,
                    last_day: ui_queries::job_outcome_counts_since(
                        conn,
                        JobKind::Backup,
                        now - DAY_MS,
                    )?,
                    missed_day: ui_queries::missed_run_count_since(conn, now - DAY_MS)?,
                    services_down: crate::store::health::down_count(conn)?,
                })
            })
            .await?;
            Ok::<_, ApiError>((view, data))
        })
        .await?;
    ctx.require(Role::Viewer)?;
    let (view, data) = data;

    let cal = Calendar::build(
        first_day,
        view,
        &data.calendar_hosts,
        &data.outcomes,
        &data.missed,
    );
    let (succeeded, failed, cancelled) = data.last_day;
    let attention: Vec<&Section> = data
        .sections
        .iter()
        .filter(|s| s.severity != Severity::Ok && s.count > 0)
        .collect();
    let healthy = data.sections.iter().find(|s| s.severity == Severity::Ok);
    let body = html! {
        section.cards {
            div.card #card-hosts {
                h2 { "Hosts" }
                p.big { (data.hosts) }
                p { span #hosts-online { (data.online) } " online · " span #hosts-offline { (data.hosts - data.online) } " offline" }
            }
            div.card #card-healthy {
                h2 { "Healthy" }
                p.big { (healthy.map_or(0, |s| s.count)) }
                p { a href="/hosts?status=healthy" { "Healthy hosts →" } }
            }
            div.card {
                h2 { "Backups, last 24 h" }
                p.big { (succeeded) " ok" }
                p { (failed) " failed · " (cancelled) " cancelled" }
            }
            div.card {
                h2 { "Missed runs, last 24 h" }
                p.big { (data.missed_day) }
            }
            div.card #card-services-down {
                h2 { "Services down" }
                p.big #services-down { (data.services_down) }
                p { "health checks failing now" }
            }
        }
        section {
            h2 { "Backup status" }
            @if data.hosts == 0 {
                p.muted { "No hosts yet. " @if ctx.is_admin() { a href="/enrollment" { "Enrol a host" } "." } }
            } @else {
                @if attention.is_empty() {
                    p #all-healthy { "Nothing needs attention." }
                } @else {
                    ul.attention #attention-summary {
                        @for s in &attention {
                            li { a href={ "/hosts?status=" (s.severity.as_str()) } { (s.severity.title()) ": " (s.count) } }
                        }
                    }
                }
                table #backup-status {
                    thead { tr { th { "Host" } th { "Status" } th { "Source group" } th { "Last result" } th { "Finished" } th { "Note" } } }
                    @for s in data.sections.iter().filter(|s| s.count > 0) {
                        (section_rows(s, now))
                    }
                }
            }
        }
        section {
            h2 #fleet-calendar { "Fleet calendar" }
            p.calendar-views {
                @for v in [View::Backups, View::Verified] {
                    @if v == view {
                        strong aria-current="page" { (v.as_str()) }
                    } @else {
                        a href={ "/?calendar=" (v.as_str()) "#fleet-calendar" } { (v.as_str()) }
                    }
                    " "
                }
            }
            p.muted {
                @match view {
                    View::Backups => { "Worst backup outcome per host and day" },
                    View::Verified => { "Restore drills per host and day (a failed drill outweighs a succeeded one)" },
                }
                ", last " (calendar::DAYS) " days (UTC)"
                @if data.hosts > CALENDAR_HOSTS as i64 { ", the " (CALENDAR_HOSTS) " most urgent hosts" } "." }
            div.calendar-wrap { (cal.render()) }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Dashboard, "Dashboard", body),
    ))
}

/// One state's rows of the status table, headed by its name and count,
/// closed by a link to the rest.
fn section_rows(s: &Section, now: i64) -> Markup {
    let more = s.more();
    let severity = s.severity.as_str();
    html! {
        tbody data-state=(severity) {
            tr.state { th colspan="6" { (s.severity.title()) " · " (s.count) @if s.count == 1 { " host" } @else { " hosts" } } }
            @for row in &s.rows {
                tr data-host-id=(row.host.id) data-severity=(if s.severity == Severity::Ok { "ok" } else { severity }) {
                    td { a href={ "/hosts/" (row.host.id) } { (format::clip(host_label(&row.host), NAME_CHARS)) } }
                    td { (presence_badge(&row.host.id, row.host.online)) }
                    td { @match &row.result { Some(r) => (format::clip(&r.group, NAME_CHARS)), None => span.muted { "—" } } }
                    td {
                        @match &row.result {
                            Some(r) => a href={ "/jobs/" (r.job_id) } { (result_badge(r.status, r.warning)) },
                            None => span.muted { "—" },
                        }
                    }
                    td { @if let Some(at) = row.result.as_ref().and_then(|r| r.finished_at) { (ago(at, now)) } }
                    td { (note(s.severity, &row.host, now)) }
                }
            }
            @if more > 0 {
                tr.more { td colspan="6" { a href={ "/hosts?status=" (severity) } { "and " (more) " more →" } } }
            }
        }
    }
}

fn ago(at: i64, now: i64) -> Markup {
    html! { time datetime=(format::rfc3339(at)) title=(format::time(at)) { (format::ago(at, now)) } }
}

/// What the row's state says about the host.
fn note(severity: Severity, host: &HostBrief, now: i64) -> Markup {
    html! {
        @match severity {
            Severity::Missed => (badge("missed", "missed a run")),
            Severity::Offline => {
                "last seen "
                @match host.last_seen_at { Some(at) => (ago(at, now)), None => "never" }
            }
            Severity::Never => span.muted { "never backed up" },
            Severity::Stale => {
                "last backup "
                @match host.last_backup_at { Some(at) => (ago(at, now)), None => "never" }
            }
            Severity::Failed | Severity::Ok => {}
        }
    }
}

/// A host's online/offline badge; `app.js` updates it on presence events.
pub(super) fn presence_badge(host_id: &str, online: bool) -> Markup {
    let (kind, text) = if online {
        ("online", "online")
    } else {
        ("offline", "offline")
    };
    html! { span class={ "badge badge-" (kind) } data-presence=(host_id) { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state round-trips through its host-list `status` value, and
    /// the states are ordered worst first.
    #[test]
    fn states_parse_and_order() {
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert_eq!(Severity::parse("online"), None);
        assert!(Severity::Failed < Severity::Missed && Severity::Stale < Severity::Ok);
        let f = Severity::Stale.filter(10 * DAY_MS);
        assert_eq!(f.health, Some(Health::Stale { before: 7 * DAY_MS }));
        assert_eq!(Severity::Offline.filter(0).online, Some(false));
    }

    /// "and N more" counts hosts, not rows: a host with two failing groups
    /// is one host.
    #[test]
    fn more_counts_hosts() {
        let host = |id: &str| HostBrief {
            id: id.into(),
            hostname: id.into(),
            display_name: None,
            online: true,
            last_seen_at: None,
            last_backup_at: None,
        };
        let s = Section {
            severity: Severity::Failed,
            count: 5,
            rows: vec![
                Row {
                    host: host("a"),
                    result: None,
                },
                Row {
                    host: host("a"),
                    result: None,
                },
                Row {
                    host: host("b"),
                    result: None,
                },
            ],
        };
        assert_eq!(s.more(), 3);
    }
}
