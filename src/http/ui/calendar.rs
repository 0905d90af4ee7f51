//! The fleet calendar on the dashboard: one row per host, one cell per UTC
//! day for the last [`DAYS`] days, each cell coloured by that day's worst
//! outcome, drawn as SVG on the server. Two [`View`]s: backups (the
//! default) and verified (restore drills: succeeded, failed or none).
//!
//! [`Calendar::build`] turns the finished backups and missed runs of the
//! window into per-day counts; [`DayCounts::outcome`] picks the worst
//! outcome of a day; [`Calendar::render`] draws it. The order of badness
//! is failed > missed > warning > succeeded > none. A cancelled backup
//! counts as a warning: it was stopped on purpose, but the day has no
//! complete backup from it.

use chrono::{DateTime, Duration, NaiveDate};
use maud::{html, Markup};

use super::format;
use crate::store::ui_queries::JobOutcome;
use crate::store::JobStatus;

/// Days the calendar shows, today included.
pub const DAYS: usize = 30;

/// Side of one day cell, in SVG user units (pixels).
const CELL: u32 = 14;
/// Gap between cells.
const GAP: u32 = 3;
/// Width of the host-name column.
const LABEL_WIDTH: u32 = 190;
/// Height of the day-number header.
const HEADER: u32 = 18;
/// Height of the legend under the rows.
const LEGEND: u32 = 36;
/// Characters of a host name shown before it is clipped.
const LABEL_CHARS: usize = 26;
/// Characters of a host name in its label's tooltip.
const TITLE_CHARS: usize = 64;

/// What the calendar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Backups and missed runs.
    #[default]
    Backups,
    /// Restore drills: did a restore of the host's data succeed that day?
    Verified,
}

impl View {
    /// The `calendar=` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Backups => "backups",
            View::Verified => "verified",
        }
    }

    /// Parses a `calendar=` query value.
    pub fn parse(text: &str) -> Option<View> {
        [View::Backups, View::Verified]
            .into_iter()
            .find(|v| v.as_str() == text)
    }

    /// The outcomes this view can show, in legend order.
    fn legend(self) -> &'static [Outcome] {
        match self {
            View::Backups => &Outcome::ALL,
            View::Verified => &[Outcome::Succeeded, Outcome::Failed, Outcome::None],
        }
    }

    /// The legend's word for an outcome.
    fn legend_word(self, outcome: Outcome) -> &'static str {
        match (self, outcome) {
            (View::Verified, Outcome::Succeeded) => "verified",
            (View::Verified, Outcome::Failed) => "drill failed",
            (View::Verified, Outcome::None) => "no drill",
            (_, outcome) => outcome.as_str(),
        }
    }
}

/// A day's outcome, from harmless to worst (the derive orders them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// No backup finished and no run was missed.
    None,
    Succeeded,
    /// Succeeded with a warning, or cancelled.
    Warning,
    /// A scheduled run did not happen.
    Missed,
    Failed,
}

impl Outcome {
    /// The name used in classes, `data-outcome` and the legend.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::None => "none",
            Outcome::Succeeded => "succeeded",
            Outcome::Warning => "warning",
            Outcome::Missed => "missed",
            Outcome::Failed => "failed",
        }
    }

    /// The cell colour.
    pub fn fill(self) -> &'static str {
        match self {
            Outcome::None => "#e5e7eb",
            Outcome::Succeeded => "#1f9d55",
            Outcome::Warning => "#e0a800",
            Outcome::Missed => "#7c3aed",
            Outcome::Failed => "#d73a49",
        }
    }

    const ALL: [Outcome; 5] = [
        Outcome::Succeeded,
        Outcome::Warning,
        Outcome::Missed,
        Outcome::Failed,
        Outcome::None,
    ];
}

/// What happened on one host on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub succeeded: u32,
    /// Succeeded with a warning.
    pub warning: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub missed: u32,
}

impl DayCounts {
    /// The worst outcome of the day.
    pub fn outcome(&self) -> Outcome {
        if self.failed > 0 {
            Outcome::Failed
        } else if self.missed > 0 {
            Outcome::Missed
        } else if self.warning > 0 || self.cancelled > 0 {
            Outcome::Warning
        } else if self.succeeded > 0 {
            Outcome::Succeeded
        } else {
            Outcome::None
        }
    }

    /// Counts one finished backup.
    fn add(&mut self, status: JobStatus, warned: bool) {
        let slot = match (status, warned) {
            (JobStatus::Succeeded, false) => &mut self.succeeded,
            (JobStatus::Succeeded, true) => &mut self.warning,
            (JobStatus::Failed, _) => &mut self.failed,
            (JobStatus::Cancelled, _) => &mut self.cancelled,
            // Not finished: not an outcome of any day yet.
            (JobStatus::Queued | JobStatus::Running, _) => return,
        };
        *slot = slot.saturating_add(1);
    }

    /// "2 succeeded, 1 failed" (or "no backups"; drills: "1 drill
    /// succeeded" or "no drill").
    fn summary(&self, view: View) -> String {
        let parts: Vec<String> = [
            (self.succeeded, "succeeded"),
            (self.warning, "with warnings"),
            (self.failed, "failed"),
            (self.cancelled, "cancelled"),
            (self.missed, "missed"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        match (view, parts.is_empty()) {
            (View::Backups, true) => "no backups".to_owned(),
            (View::Backups, false) => parts.join(", "),
            (View::Verified, true) => "no drill".to_owned(),
            (View::Verified, false) => {
                let drills = if self.total() == 1 { "drill" } else { "drills" };
                format!("{drills}: {}", parts.join(", "))
            }
        }
    }

    /// Every event counted.
    fn total(&self) -> u32 {
        self.succeeded + self.warning + self.failed + self.cancelled + self.missed
    }
}

/// One host's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarRow {
    pub host_id: String,
    /// Display name or hostname.
    pub label: String,
    /// [`DAYS`] entries, oldest first.
    pub days: Vec<DayCounts>,
}

/// The whole calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The UTC day of the first column.
    pub first_day: NaiveDate,
    pub view: View,
    pub rows: Vec<CalendarRow>,
}

/// The UTC day of a stored time (Unix ms).
fn day_of(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())
}

/// The first UTC day of a calendar whose last column is the day of `now`
/// (Unix ms), and that day's start in Unix ms (the query window).
pub fn window(now: i64) -> (NaiveDate, i64) {
    let today = day_of(now).unwrap_or_default();
    let first = today - Duration::days(DAYS as i64 - 1);
    let start = first
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0);
    (first, start)
}

impl Calendar {
    /// Counts `backups` (in the verified view: drills) and `missed` (host
    /// id, scheduled time in Unix ms) into one row per host of `hosts` (id,
    /// label), in the given order. Events of other hosts or outside the
    /// window are ignored.
    pub fn build(
        first_day: NaiveDate,
        view: View,
        hosts: &[(String, String)],
        backups: &[JobOutcome],
        missed: &[(String, i64)],
    ) -> Calendar {
        let mut rows: Vec<CalendarRow> = hosts
            .iter()
            .map(|(id, label)| CalendarRow {
                host_id: id.clone(),
                label: label.clone(),
                days: vec![DayCounts::default(); DAYS],
            })
            .collect();
        let index: std::collections::HashMap<&str, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.as_str(), i))
            .collect();
        // (row, column) of a host's event at `ms`, if it is in the calendar.
        let place = |host_id: &str, ms: i64| -> Option<(usize, usize)> {
            let row = *index.get(host_id)?;
            let offset = (day_of(ms)? - first_day).num_days();
            let column = usize::try_from(offset).ok().filter(|c| *c < DAYS)?;
            Some((row, column))
        };
        for b in backups {
            let Some(at) = b.finished_at else { continue };
            if let Some((r, c)) = place(&b.host_id, at) {
                rows[r].days[c].add(b.status, b.warning.is_some());
            }
        }
        for (host_id, at) in missed {
            if let Some((r, c)) = place(host_id, *at) {
                let day = &mut rows[r].days[c];
                day.missed = day.missed.saturating_add(1);
            }
        }
        Calendar {
            first_day,
            view,
            rows,
        }
    }

    /// The SVG's width and height.
    pub fn size(&self) -> (u32, u32) {
        let rows = u32::try_from(self.rows.len()).unwrap_or(u32::MAX / 64);
        let width = LABEL_WIDTH + (CELL + GAP) * DAYS as u32;
        let height = HEADER + rows.max(1) * (CELL + GAP) + LEGEND;
        (width, height)
    }

    /// The calendar as an inline `<svg>`. Every cell is a `rect` with
    /// `data-host`, `data-day` (YYYY-MM-DD) and `data-outcome`, and a
    /// `<title>` tooltip naming the day and the counts (the host is the
    /// row's label). A cell is a fixed number of bytes, whatever the host
    /// is called: the dashboard's size depends on it.
    pub fn render(&self) -> Markup {
        let (width, height) = self.size();
        let step = CELL + GAP;
        let legend_y = height - LEGEND + 22;
        html! {
            svg.calendar xmlns="http://www.w3.org/2000/svg" role="img"
                width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) }
                aria-label={ (match self.view { View::Backups => "Backup", View::Verified => "Restore drill" })
                    " outcomes of the last " (DAYS) " days, one row per host" } {
                // Day-of-month header: every day, the first of a month in bold.
                @for d in 0..DAYS {
                    @let day = self.first_day + Duration::days(d as i64);
                    @let x = LABEL_WIDTH + d as u32 * step + CELL / 2;
                    text.day x=(x) y="12" text-anchor="middle" font-size="9"
                        font-weight=(if day.format("%d").to_string() == "01" { "bold" } else { "normal" }) {
                        (day.format("%-d"))
                    }
                }
                @if self.rows.is_empty() {
                    text x="0" y=(HEADER + CELL) font-size="12" { "No hosts enrolled yet." }
                }
                @for (r, row) in self.rows.iter().enumerate() {
                    @let y = HEADER + r as u32 * step;
                    a href={ "/hosts/" (row.host_id) } {
                        text.host x="0" y=(y + CELL - 3) font-size="12" {
                            title { (format::clip(&row.label, TITLE_CHARS)) }
                            (format::clip(&row.label, LABEL_CHARS))
                        }
                    }
                    @for (d, counts) in row.days.iter().enumerate() {
                        @let day = self.first_day + Duration::days(d as i64);
                        @let outcome = counts.outcome();
                        // Rounded by the style sheet (`rx`), to keep cells short.
                        rect x=(LABEL_WIDTH + d as u32 * step) y=(y) width=(CELL) height=(CELL)
                            fill=(outcome.fill())
                            data-host=(row.host_id) data-day=(day.format("%Y-%m-%d")) data-outcome=(outcome.as_str()) {
                            title { (day.format("%Y-%m-%d")) ": " (counts.summary(self.view)) }
                        }
                    }
                }
                @for (i, outcome) in self.view.legend().iter().enumerate() {
                    @let x = i as u32 * 110;
                    rect x=(x) y=(legend_y - 10) width="12" height="12" rx="2" fill=(outcome.fill()) {}
                    text x=(x + 16) y=(legend_y) font-size="11" { (self.view.legend_word(*outcome)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ui::xml_check::assert_well_formed;

    fn ms(day: NaiveDate, hour: u32) -> i64 {
        day.and_hms_opt(hour, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn backup(host: &str, at: i64, status: JobStatus, warning: bool) -> JobOutcome {
        JobOutcome {
            host_id: host.to_owned(),
            finished_at: Some(at),
            status,
            warning: warning.then(|| "some files could not be read".to_owned()),
        }
    }

    /// A day's colour is its worst outcome: failed > missed > warning > succeeded > none.
    #[test]
    fn worst_outcome_of_the_day() {
        let c = |succeeded, warning, failed, cancelled, missed| DayCounts {
            succeeded,
            warning,
            failed,
            cancelled,
            missed,
        };
        assert_eq!(c(0, 0, 0, 0, 0).outcome(), Outcome::None);
        assert_eq!(c(3, 0, 0, 0, 0).outcome(), Outcome::Succeeded);
        assert_eq!(c(3, 1, 0, 0, 0).outcome(), Outcome::Warning);
        assert_eq!(c(3, 0, 0, 1, 0).outcome(), Outcome::Warning);
        assert_eq!(c(3, 1, 0, 0, 1).outcome(), Outcome::Missed);
        assert_eq!(c(3, 1, 1, 0, 1).outcome(), Outcome::Failed);
        assert_eq!(c(0, 0, 0, 0, 2).outcome(), Outcome::Missed);
        assert!(Outcome::Failed > Outcome::Missed && Outcome::Missed > Outcome::Warning);
    }

    /// Backups and missed runs land in their host's row on their UTC day; others are ignored.
    #[test]
    fn build_places_events_by_day() {
        let now = ms(NaiveDate::from_ymd_opt(2026, 3, 30).unwrap(), 15);
        let (first, start) = window(now);
        assert_eq!(first, NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
        assert_eq!(start, ms(first, 0));
        let today = NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
        let day5 = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
        let hosts = vec![
            ("h1".to_owned(), "web-01".to_owned()),
            ("h2".to_owned(), "db-01".to_owned()),
        ];
        let backups = vec![
            backup("h1", ms(today, 2), JobStatus::Succeeded, false),
            backup("h1", ms(day5, 2), JobStatus::Succeeded, false),
            backup("h1", ms(day5, 3), JobStatus::Failed, false),
            backup("h2", ms(day5, 2), JobStatus::Succeeded, true),
            // Outside the window and of an unknown host: ignored.
            backup(
                "h1",
                ms(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap(), 2),
                JobStatus::Failed,
                false,
            ),
            backup("h9", ms(today, 2), JobStatus::Failed, false),
        ];
        let missed = vec![("h2".to_owned(), ms(today, 1))];
        let cal = Calendar::build(first, View::Backups, &hosts, &backups, &missed);
        assert_eq!(cal.rows.len(), 2);
        let h1 = &cal.rows[0];
        assert_eq!(h1.days.len(), DAYS);
        assert_eq!(h1.days[DAYS - 1].outcome(), Outcome::Succeeded);
        assert_eq!(h1.days[4].outcome(), Outcome::Failed);
        assert_eq!(h1.days[4].succeeded, 1);
        assert_eq!(h1.days[0].outcome(), Outcome::None);
        let h2 = &cal.rows[1];
        assert_eq!(h2.days[4].outcome(), Outcome::Warning);
        assert_eq!(h2.days[DAYS - 1].outcome(), Outcome::Missed);
        let total: u32 = cal
            .rows
            .iter()
            .flat_map(|r| &r.days)
            .map(|d| d.succeeded + d.warning + d.failed + d.cancelled + d.missed)
            .sum();
        assert_eq!(total, 5);
    }

    /// The SVG is well-formed XML with one cell per host and day, coloured by outcome.
    #[test]
    fn svg_is_well_formed() {
        let now = ms(NaiveDate::from_ymd_opt(2026, 3, 30).unwrap(), 15);
        let (first, _) = window(now);
        let today = NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
        let hosts = vec![("h1".to_owned(), "web-01".to_owned())];
        let backups = vec![backup("h1", ms(today, 2), JobStatus::Succeeded, false)];
        let svg = Calendar::build(first, View::Backups, &hosts, &backups, &[])
            .render()
            .into_string();
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<rect x=").count(), DAYS + Outcome::ALL.len());
        assert_eq!(svg.matches("data-day=").count(), DAYS);
        assert!(svg.contains("<title>2026-03-30: 1 succeeded</title>"));
        assert!(svg.contains(
            "fill=\"#1f9d55\" data-host=\"h1\" data-day=\"2026-03-30\" data-outcome=\"succeeded\""
        ));
        assert_eq!(svg.matches("data-outcome=\"none\"").count(), DAYS - 1);
        let empty = Calendar::build(first, View::Backups, &[], &[], &[])
            .render()
            .into_string();
        assert_well_formed(&empty);
        assert!(empty.contains("No hosts enrolled yet."));
    }

    /// Host names are escaped in labels, tooltips and attributes.
    #[test]
    fn host_names_are_escaped() {
        let (first, _) = window(0);
        let hosts = vec![("h\"1".to_owned(), "<script>alert(1)</script>&co".to_owned())];
        let svg = Calendar::build(first, View::Backups, &hosts, &[], &[])
            .render()
            .into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;co"));
        assert!(svg.contains("data-host=\"h&quot;1\""));
        assert_well_formed(&svg);
    }

    /// The verified view counts drills: a day with a failed drill is red,
    /// one with a succeeded drill green, and the legend and tooltips speak
    /// of drills.
    #[test]
    fn verified_view_counts_drills() {
        let now = ms(NaiveDate::from_ymd_opt(2026, 3, 30).unwrap(), 15);
        let (first, _) = window(now);
        let today = NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
        let day5 = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
        let hosts = vec![("h1".to_owned(), "web-01".to_owned())];
        let drills = vec![
            backup("h1", ms(today, 2), JobStatus::Succeeded, false),
            backup("h1", ms(day5, 2), JobStatus::Failed, false),
        ];
        let cal = Calendar::build(first, View::Verified, &hosts, &drills, &[]);
        assert_eq!(cal.rows[0].days[DAYS - 1].outcome(), Outcome::Succeeded);
        assert_eq!(cal.rows[0].days[4].outcome(), Outcome::Failed);
        let svg = cal.render().into_string();
        assert_well_formed(&svg);
        assert!(
            svg.contains("<title>2026-03-30: drill: 1 succeeded</title>"),
            "{svg}"
        );
        assert!(svg.contains("<title>2026-03-29: no drill</title>"), "{svg}");
        assert!(svg.contains(">verified</text>") && svg.contains(">drill failed</text>"));
        assert!(
            !svg.contains(">missed</text>"),
            "no missed runs in the verified legend"
        );
        assert!(svg.contains("Restore drill outcomes of the last 30 days"));
        assert_eq!(View::parse("verified"), Some(View::Verified));
        assert_eq!(View::parse("backups"), Some(View::Backups));
        assert_eq!(View::parse("drills"), None);
    }
}
