//! The agent's local schedule: the last `schedule.set` the server pushed,
//! evaluated with croner, so that backups fire on time even while the
//! server is unreachable.
//!
//! Pure logic driven by an injected `now` (tests need no sleeps):
//!
//! - [`CronTable::apply`] replaces the whole table atomically: every
//!   expression is parsed first, and one bad expression leaves the old
//!   table in place.
//! - [`CronTable::tick`] returns, for each enabled schedule, the latest
//!   cron time in `(last_checked, now]`, at most one per schedule, so a
//!   host that was off or offline for days fires once, not once per missed
//!   slot. A fire that cannot be sent at once (no connection) waits in
//!   [`CronTable::pending`] keeping its original `scheduled_at`; a newer
//!   fire of the same schedule replaces it.
//! - The table (version, schedules, per-schedule `last_checked`, pending
//!   fires) is saved to `<state_dir>/schedule.json` on every change, so an
//!   agent restarted after a due time still fires it once.
//!
//! Expressions are parsed and evaluated by [`crate::cron`], the dialect
//! the server's API accepted them in and its missed-run detection uses, so
//! both sides agree on when a schedule was due.
//!
//! The daemon reads the schedule's "now" from a [`Clock`]: the system
//! clock in production, a shifted one in end-to-end tests, which thereby
//! see a real `* * * * *` schedule fire within seconds instead of waiting
//! for the next wall-clock minute.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::platform;
use crate::cron::CronExpr;
use crate::protocol::{ScheduleFire, ScheduleSet, ScheduleSpec};

/// Longest the agent sleeps between two schedule checks, so that a clock
/// change or a suspend/resume is noticed within this time.
pub const MAX_SLEEP_SECONDS: i64 = 60;

/// The time source of the local schedule.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Why a `schedule.set` was not applied, or the table not saved.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// A schedule's expression does not parse.
    #[error("schedule {id}: invalid cron expression {expr:?}: {reason}")]
    BadExpression {
        /// The schedule id.
        id: String,
        /// The expression.
        expr: String,
        /// Why it is not in the dialect.
        reason: String,
    },
    /// Two schedules share an id.
    #[error("schedule id {0:?} appears twice")]
    DuplicateId(String),
    /// The state file could not be written.
    #[error("schedule state {path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state could not be encoded.
    #[error("schedule state encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One schedule with its parsed expression.
#[derive(Debug, Clone)]
struct Entry {
    spec: ScheduleSpec,
    cron: CronExpr,
    /// Cron times up to and including this instant have been handled.
    last_checked: DateTime<Utc>,
}

/// The saved form of the table.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    version: u64,
    schedules: Vec<SavedEntry>,
    #[serde(default)]
    pending: BTreeMap<String, DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedEntry {
    spec: ScheduleSpec,
    last_checked: DateTime<Utc>,
}

/// The local cron table.
#[derive(Debug)]
pub struct CronTable {
    /// The applied `schedule.set` version (0: none yet).
    version: u64,
    entries: Vec<Entry>,
    /// Fires not yet sent: schedule id → its original `scheduled_at`.
    pending: BTreeMap<String, DateTime<Utc>>,
    /// Where the table is saved; `None` keeps it in memory (tests).
    path: Option<PathBuf>,
}

impl CronTable {
    /// An empty in-memory table.
    pub fn new() -> Self {
        Self {
            version: 0,
            entries: Vec::new(),
            pending: BTreeMap::new(),
            path: None,
        }
    }

    /// Loads the table saved in `state_dir` (empty if none, or if the file
    /// does not decode, which is logged); later changes are saved there.
    pub fn load(state_dir: &Path) -> Self {
        let path = state_dir.join("schedule.json");
        let mut table = Self::new();
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => {
                    table.version = saved.version;
                    table.pending = saved.pending;
                    for saved in saved.schedules {
                        match parse(&saved.spec) {
                            Ok(cron) => table.entries.push(Entry {
                                spec: saved.spec,
                                cron,
                                last_checked: saved.last_checked,
                            }),
                            Err(err) => tracing::error!("saved schedule dropped: {err}"),
                        }
                    }
                }
                Err(err) => {
                    tracing::error!(path = %path.display(), "saved schedule unreadable, starting empty: {err}");
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::error!(path = %path.display(), "cannot read saved schedule, starting empty: {err}");
            }
        }
        table.path = Some(path);
        table
    }

    /// The applied version (0 before the first `schedule.set`).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The schedules of the applied version.
    pub fn schedules(&self) -> impl Iterator<Item = &ScheduleSpec> {
        self.entries.iter().map(|entry| &entry.spec)
    }

    /// Replaces the table with `set`, atomically: on any error nothing
    /// changes. A schedule that was enabled before and keeps its id and
    /// expression keeps its progress; any other starts at `now` (no fire
    /// for times before it existed or was enabled). Pending fires of
    /// schedules that are gone or disabled are dropped.
    pub fn apply(&mut self, set: &ScheduleSet, now: DateTime<Utc>) -> Result<(), CronError> {
        let mut entries = Vec::with_capacity(set.schedules.len());
        for spec in &set.schedules {
            if entries.iter().any(|entry: &Entry| entry.spec.id == spec.id) {
                return Err(CronError::DuplicateId(spec.id.clone()));
            }
            let cron = parse(spec)?;
            let last_checked = self
                .entries
                .iter()
                .find(|old| {
                    old.spec.id == spec.id
                        && old.spec.cron_expr == spec.cron_expr
                        && old.spec.enabled
                        && spec.enabled
                })
                .map_or(now, |old| old.last_checked);
            entries.push(Entry {
                spec: spec.clone(),
                cron,
                last_checked,
            });
        }
        let previous = (
            std::mem::replace(&mut self.version, set.version),
            std::mem::replace(&mut self.entries, entries),
            self.pending.clone(),
        );
        let entries = &self.entries;
        self.pending.retain(|id, _| {
            entries
                .iter()
                .any(|entry| &entry.spec.id == id && entry.spec.enabled)
        });
        if let Err(err) = self.save() {
            (self.version, self.entries, self.pending) = previous;
            return Err(err);
        }
        Ok(())
    }

    /// Advances the table to `now` and returns the fires that became due,
    /// also adding them to [`pending`](Self::pending). The caller sends the
    /// pending fires when connected and clears them with
    /// [`take_pending`](Self::take_pending).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<ScheduleFire> {
        let mut fires = Vec::new();
        for entry in &mut self.entries {
            if now <= entry.last_checked {
                continue; // clock went back: never fire a handled time twice
            }
            if entry.spec.enabled {
                if let Some(due) = entry.cron.latest_up_to(now) {
                    if due > entry.last_checked {
                        fires.push(ScheduleFire {
                            schedule_id: entry.spec.id.clone(),
                            scheduled_at: due,
                            kind: Some(entry.spec.kind),
                        });
                    }
                }
            }
            entry.last_checked = now;
        }
        if !fires.is_empty() {
            for fire in &fires {
                self.pending
                    .insert(fire.schedule_id.clone(), fire.scheduled_at);
            }
            if let Err(err) = self.save() {
                tracing::error!("cannot save the schedule state: {err}");
            }
        }
        fires
    }

    /// The fires waiting to be sent, oldest first, each with its
    /// schedule's kind in the table now.
    pub fn pending(&self) -> Vec<ScheduleFire> {
        let mut fires: Vec<ScheduleFire> = self
            .pending
            .iter()
            .map(|(id, at)| ScheduleFire {
                schedule_id: id.clone(),
                scheduled_at: *at,
                kind: self
                    .entries
                    .iter()
                    .find(|entry| &entry.spec.id == id)
                    .map(|entry| entry.spec.kind),
            })
            .collect();
        fires.sort_by(|a, b| {
            (a.scheduled_at, &a.schedule_id).cmp(&(b.scheduled_at, &b.schedule_id))
        });
        fires
    }

    /// Marks `fires` as sent (a pending fire replaced meanwhile by a newer
    /// one of the same schedule stays pending).
    pub fn mark_sent(&mut self, fires: &[ScheduleFire]) {
        let before = self.pending.len();
        for fire in fires {
            if self.pending.get(&fire.schedule_id) == Some(&fire.scheduled_at) {
                self.pending.remove(&fire.schedule_id);
            }
        }
        if self.pending.len() != before {
            if let Err(err) = self.save() {
                tracing::error!("cannot save the schedule state: {err}");
            }
        }
    }

    /// Removes and returns every pending fire.
    pub fn take_pending(&mut self) -> Vec<ScheduleFire> {
        let fires = self.pending();
        self.mark_sent(&fires);
        fires
    }

    /// When the table next needs a [`tick`](Self::tick): the earliest next
    /// cron time of an enabled schedule, but no later than
    /// [`MAX_SLEEP_SECONDS`] from `now`.
    pub fn next_wake(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let cap = now + chrono::Duration::seconds(MAX_SLEEP_SECONDS);
        self.entries
            .iter()
            .filter(|entry| entry.spec.enabled)
            .filter_map(|entry| entry.cron.next_after(now))
            .fold(cap, DateTime::min)
    }

    fn save(&self) -> Result<(), CronError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let saved = Saved {
            version: self.version,
            schedules: self
                .entries
                .iter()
                .map(|entry| SavedEntry {
                    spec: entry.spec.clone(),
                    last_checked: entry.last_checked,
                })
                .collect(),
            pending: self.pending.clone(),
        };
        let bytes = serde_json::to_vec(&saved)?;
        platform::write_private_file_atomically(path, &bytes).map_err(|source| CronError::Io {
            path: path.clone(),
            source,
        })
    }
}

impl Default for CronTable {
    fn default() -> Self {
        Self::new()
    }
}

fn parse(spec: &ScheduleSpec) -> Result<CronExpr, CronError> {
    CronExpr::parse(&spec.cron_expr).map_err(|err| CronError::BadExpression {
        id: spec.id.clone(),
        expr: spec.cron_expr.chars().take(100).collect(),
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ScheduleKind;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn spec(id: &str, expr: &str, enabled: bool) -> ScheduleSpec {
        ScheduleSpec {
            id: id.to_owned(),
            cron_expr: expr.to_owned(),
            enabled,
            kind: ScheduleKind::Backup,
            source_groups: Vec::new(),
        }
    }

    fn set(version: u64, schedules: Vec<ScheduleSpec>) -> ScheduleSet {
        ScheduleSet { version, schedules }
    }

    fn fire(id: &str, when: &str) -> ScheduleFire {
        ScheduleFire {
            schedule_id: id.to_owned(),
            scheduled_at: at(when),
            kind: Some(ScheduleKind::Backup),
        }
    }

    /// A check schedule's fire carries its kind, when due and when sent
    /// later from the pending list; a table saved before kinds (no
    /// `kind` in its specs) loads as backups.
    #[test]
    fn fires_carry_the_kind() {
        let mut table = CronTable::new();
        let check = ScheduleSpec {
            kind: ScheduleKind::Check,
            ..spec("c", "0 4 * * *", true)
        };
        table
            .apply(&set(1, vec![check]), at("2026-11-23T01:00:00Z"))
            .unwrap();
        let due = table.tick(at("2026-11-23T04:00:00Z"));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].kind, Some(ScheduleKind::Check));
        assert_eq!(table.pending()[0].kind, Some(ScheduleKind::Check));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("schedule.json"),
            r#"{"version":3,"schedules":[{"spec":{"id":"old","cron_expr":"@daily","enabled":true},"last_checked":"2026-11-23T00:00:00Z"}],"pending":{"old":"2026-11-23T00:00:00Z"}}"#,
        )
        .unwrap();
        let loaded = CronTable::load(dir.path());
        assert_eq!(
            loaded.schedules().next().map(|s| s.kind),
            Some(ScheduleKind::Backup)
        );
        assert_eq!(loaded.pending()[0].kind, Some(ScheduleKind::Backup));
    }

    /// A daily schedule fires once at its time, not before, not twice.
    #[test]
    fn fires_at_due_time_once() {
        let mut table = CronTable::new();
        table
            .apply(
                &set(1, vec![spec("s1", "0 2 * * *", true)]),
                at("2026-11-23T01:00:00Z"),
            )
            .unwrap();
        assert_eq!(table.version(), 1);
        assert!(table.tick(at("2026-11-23T01:59:59Z")).is_empty());
        assert_eq!(
            table.tick(at("2026-11-23T02:00:00Z")),
            vec![fire("s1", "2026-11-23T02:00:00Z")]
        );
        assert!(table.tick(at("2026-11-23T02:00:30Z")).is_empty());
        assert_eq!(
            table.next_wake(at("2026-11-23T02:00:30Z")),
            at("2026-11-23T02:01:30Z")
        );
        assert_eq!(
            table.next_wake(at("2026-11-24T01:59:30Z")),
            at("2026-11-24T02:00:00Z")
        );
    }

    /// Many missed slots give one fire, with the latest missed time, and it
    /// stays pending until marked sent.
    #[test]
    fn missed_fires_coalesce() {
        let mut table = CronTable::new();
        table
            .apply(
                &set(
                    1,
                    vec![
                        spec("hourly", "0 * * * *", true),
                        spec("daily", "30 3 * * *", true),
                    ],
                ),
                at("2026-11-23T00:10:00Z"),
            )
            .unwrap();
        let fires = table.tick(at("2026-11-25T05:20:00Z"));
        assert_eq!(
            fires,
            vec![
                fire("hourly", "2026-11-25T05:00:00Z"),
                fire("daily", "2026-11-25T03:30:00Z"),
            ]
        );
        assert_eq!(
            table.pending(),
            vec![
                fire("daily", "2026-11-25T03:30:00Z"),
                fire("hourly", "2026-11-25T05:00:00Z")
            ]
        );
        // Offline another hour: the newer hourly fire replaces the old one.
        table.tick(at("2026-11-25T06:05:00Z"));
        assert_eq!(
            table.take_pending(),
            vec![
                fire("daily", "2026-11-25T03:30:00Z"),
                fire("hourly", "2026-11-25T06:00:00Z")
            ]
        );
        assert!(table.pending().is_empty());
    }

    /// Disabled schedules never fire, and enabling one later does not fire
    /// the times that passed while it was disabled.
    #[test]
    fn disabled_schedules() {
        let mut table = CronTable::new();
        table
            .apply(
                &set(1, vec![spec("s", "*/5 * * * *", false)]),
                at("2026-11-23T00:00:00Z"),
            )
            .unwrap();
        assert!(table.tick(at("2026-11-23T01:00:00Z")).is_empty());
        table
            .apply(
                &set(2, vec![spec("s", "*/5 * * * *", true)]),
                at("2026-11-23T01:02:00Z"),
            )
            .unwrap();
        assert!(table.tick(at("2026-11-23T01:04:59Z")).is_empty());
        assert_eq!(
            table.tick(at("2026-11-23T01:05:00Z")),
            vec![fire("s", "2026-11-23T01:05:00Z")]
        );
    }

    /// An unchanged schedule keeps its progress across a new version; a
    /// changed expression starts over; an empty set disables everything
    /// and drops pending fires.
    #[test]
    fn reapply_keeps_progress() {
        let mut table = CronTable::new();
        table
            .apply(
                &set(1, vec![spec("s", "0 * * * *", true)]),
                at("2026-11-23T00:30:00Z"),
            )
            .unwrap();
        // Offline across 01:00; a new version arrives at 01:10 before a tick.
        table
            .apply(
                &set(
                    2,
                    vec![spec("s", "0 * * * *", true), spec("t", "0 * * * *", true)],
                ),
                at("2026-11-23T01:10:00Z"),
            )
            .unwrap();
        assert_eq!(
            table.tick(at("2026-11-23T01:11:00Z")),
            vec![fire("s", "2026-11-23T01:00:00Z")]
        );
        table
            .apply(&set(3, Vec::new()), at("2026-11-23T01:12:00Z"))
            .unwrap();
        assert!(table.pending().is_empty());
        assert!(table.tick(at("2026-11-23T09:00:00Z")).is_empty());
        assert_eq!(table.schedules().count(), 0);
    }

    /// A set with a bad expression or a duplicate id changes nothing.
    #[test]
    fn apply_is_atomic() {
        let mut table = CronTable::new();
        table
            .apply(
                &set(1, vec![spec("s", "0 2 * * *", true)]),
                at("2026-11-23T00:00:00Z"),
            )
            .unwrap();
        let err = table
            .apply(
                &set(
                    2,
                    vec![spec("a", "0 3 * * *", true), spec("b", "61 * * * *", true)],
                ),
                at("2026-11-23T00:00:00Z"),
            )
            .unwrap_err();
        assert!(
            matches!(err, CronError::BadExpression { ref id, .. } if id == "b"),
            "{err}"
        );
        let err = table
            .apply(
                &set(
                    2,
                    vec![spec("a", "0 3 * * *", true), spec("a", "0 4 * * *", true)],
                ),
                at("2026-11-23T00:00:00Z"),
            )
            .unwrap_err();
        assert!(matches!(err, CronError::DuplicateId(_)));
        assert_eq!(table.version(), 1);
        let ids: Vec<_> = table.schedules().map(|s| s.id.clone()).collect();
        assert_eq!(ids, vec!["s"]);
    }

    /// The clock going back never fires a handled time again.
    #[test]
    fn clock_going_back() {
        let mut table = CronTable::new();
        table
            .apply(
                &set(1, vec![spec("s", "0 * * * *", true)]),
                at("2026-11-23T00:30:00Z"),
            )
            .unwrap();
        assert_eq!(table.tick(at("2026-11-23T01:00:00Z")).len(), 1);
        assert!(table.tick(at("2026-11-23T00:45:00Z")).is_empty());
        assert!(table.tick(at("2026-11-23T01:00:00Z")).is_empty());
        assert_eq!(table.tick(at("2026-11-23T02:00:00Z")).len(), 1);
    }

    /// The table and its pending fires survive a restart, and a time that
    /// passed while the agent was down fires once after it.
    #[test]
    fn state_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut table = CronTable::load(dir.path());
            table
                .apply(
                    &set(
                        7,
                        vec![spec("a", "0 2 * * *", true), spec("b", "0 3 * * *", true)],
                    ),
                    at("2026-11-23T01:00:00Z"),
                )
                .unwrap();
            assert_eq!(table.tick(at("2026-11-23T02:00:05Z")).len(), 1); // pending, unsent
        }
        let mut table = CronTable::load(dir.path());
        assert_eq!(table.version(), 7);
        assert_eq!(table.pending(), vec![fire("a", "2026-11-23T02:00:00Z")]);
        // The agent was down across 03:00: fires once, on the first tick.
        assert_eq!(
            table.tick(at("2026-11-23T04:00:00Z")),
            vec![fire("b", "2026-11-23T03:00:00Z")]
        );
        assert!(table.tick(at("2026-11-23T04:00:01Z")).is_empty());
        assert_eq!(table.take_pending().len(), 2);
        let table = CronTable::load(dir.path());
        assert!(table.pending().is_empty());
    }

    /// A corrupt state file gives an empty table, not a failure.
    #[test]
    fn corrupt_state_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schedule.json"), b"{\"version\":").unwrap();
        let table = CronTable::load(dir.path());
        assert_eq!(table.version(), 0);
    }

    /// Fires carry whole-second cron times even when ticked between
    /// seconds.
    #[test]
    fn fire_times_are_whole_seconds() {
        let mut table = CronTable::new();
        table
            .apply(
                &set(1, vec![spec("s", "0 * * * *", true)]),
                at("2026-11-23T00:10:00.250Z"),
            )
            .unwrap();
        assert_eq!(
            table.tick(at("2026-11-23T03:20:07.987654321Z")),
            vec![fire("s", "2026-11-23T03:00:00Z")]
        );
        assert_eq!(
            table.next_wake(at("2026-11-23T03:59:30.5Z")),
            at("2026-11-23T04:00:00Z")
        );
    }

    /// Without enabled schedules the agent still wakes every minute.
    #[test]
    fn wake_cap() {
        let table = CronTable::new();
        let now = at("2026-11-23T00:00:00Z");
        assert_eq!(table.next_wake(now), at("2026-11-23T00:01:00Z"));
    }
}
