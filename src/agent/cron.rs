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
mod tests;
