//! Cron expressions: the one dialect the API accepts, the UI shows, the
//! scheduler checks for missed runs and the agent fires, and the time math
//! on them. Depends on croner and chrono only, so server and agent share it.
//!
//! # The dialect
//!
//! - Five fields: minute, hour, day of month, month, day of week, in UTC;
//!   names (`MON`, `JAN`), ranges, lists and steps, croner's `L`, `#` and
//!   `W`, and the nicknames `@yearly`, `@monthly`, `@weekly`, `@daily`,
//!   `@hourly`. When both day fields are restricted, either matching is
//!   enough (Vixie cron).
//! - No seconds field (and no year field): a backup schedule has minute
//!   resolution, and the server matches fires to cron times by the minute.
//! - At most [`MAX_LEN`] characters.
//! - It must match some date: `0 0 31 2 *` is refused.
//!
//! An expression that breaks a rule is an [`InvalidCron`], whose text is
//! the reason (croner's own for a syntax error); the API answers it as 400
//! `invalid_cron`.
//!
//! # Time
//!
//! Cron times are whole seconds. croner carries the fraction of a second
//! of the instant it starts from into every time it yields, so every
//! method here starts from the instant cut to its second; results are then
//! exact whatever the fraction of `now`.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// Longest cron expression accepted, in bytes.
pub const MAX_LEN: usize = 256;

/// How many upcoming run times the API and the UI show for a schedule.
pub const NEXT_RUNS: usize = 5;

/// Why an expression is not in the dialect; the text is the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCron {
    /// Longer than [`MAX_LEN`].
    #[error("longer than {MAX_LEN} characters")]
    TooLong,
    /// croner refused it (syntax, range, seconds or year field).
    #[error("{0}")]
    Syntax(String),
    /// It parses but no date matches it.
    #[error("the expression never matches a date ({0})")]
    NeverMatches(String),
}

/// A parsed cron expression of the dialect.
#[derive(Debug, Clone)]
pub struct CronExpr {
    cron: Cron,
}

impl CronExpr {
    /// Parses `expr` (surrounding whitespace ignored) under the dialect's
    /// rules.
    pub fn parse(expr: &str) -> Result<Self, InvalidCron> {
        if expr.len() > MAX_LEN {
            return Err(InvalidCron::TooLong);
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| InvalidCron::Syntax(e.to_string()))?;
        // Without a year field, whether an expression ever matches does not
        // depend on where the search starts: a fixed start keeps parsing
        // independent of the clock.
        cron.find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, false)
            .map_err(|e| InvalidCron::NeverMatches(e.to_string()))?;
        Ok(Self { cron })
    }

    /// croner's English description, e.g. "At 02:00".
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The cron times strictly after `after`, ascending.
    pub fn times_after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
        // A cron time in (after cut to its second, after] would be a whole
        // second between the two: there is none, so nothing is lost.
        self.cron.iter_after(after.trunc_subsecs(0))
    }

    /// The first cron time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.times_after(after).next()
    }

    /// The next `n` cron times strictly after `now`.
    pub fn next_runs(&self, now: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        self.times_after(now).take(n).collect()
    }

    /// The latest cron time at or before `at`.
    pub fn latest_up_to(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&at.trunc_subsecs(0), true)
            .ok()
    }
}

impl FromStr for CronExpr {
    type Err = InvalidCron;

    fn from_str(expr: &str) -> Result<Self, Self::Err> {
        Self::parse(expr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Timelike};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Five fields, names and nicknames are in the dialect.
    #[test]
    fn accepted() {
        for expr in [
            "*/15 * * * *",
            "0 3 * * MON-FRI",
            "30 1 1 * *",
            "0 2 * jan,jul sun",
            "@daily",
            "@hourly",
            " 0 2 * * * ",
            "0 0 29 2 *",
            "0 0 L * *",
        ] {
            assert!(CronExpr::parse(expr).is_ok(), "{expr:?}");
        }
    }

    /// Seconds, years, bad fields, impossible dates and long text are refused, each with a reason.
    #[test]
    fn refused() {
        for (expr, kind) in [
            ("", "syntax"),
            ("* * *", "syntax"),
            ("61 * * * *", "syntax"),
            ("0 25 * * *", "syntax"),
            ("*/0 * * * *", "syntax"),
            ("0 0 * * * *", "syntax"),
            ("0 0 0 * * * 2030", "syntax"),
            ("hello", "syntax"),
            ("0 0 31 2 *", "never"),
            ("0 0 30 2 *", "never"),
        ] {
            let err = CronExpr::parse(expr).expect_err(expr);
            match (kind, &err) {
                ("syntax", InvalidCron::Syntax(reason))
                | ("never", InvalidCron::NeverMatches(reason)) => {
                    assert!(!reason.is_empty(), "{expr:?}")
                }
                _ => panic!("{expr:?}: {err:?}"),
            }
            assert!(!err.to_string().is_empty());
        }
        let long = format!("0 2 * * *{}", " ".repeat(MAX_LEN));
        assert_eq!(CronExpr::parse(&long).unwrap_err(), InvalidCron::TooLong);
        assert_eq!(
            InvalidCron::TooLong.to_string(),
            "longer than 256 characters"
        );
    }

    /// A daily 02:00 schedule runs at 02:00 UTC on the next five days.
    #[test]
    fn next_runs_daily() {
        let cron = CronExpr::parse("0 2 * * *").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let expected: Vec<_> = (2..=6)
            .map(|d| Utc.with_ymd_and_hms(2026, 3, d, 2, 0, 0).unwrap())
            .collect();
        assert_eq!(cron.next_runs(now, NEXT_RUNS), expected);
        assert!(cron.describe().contains('2'), "{}", cron.describe());
    }

    /// From 12:00:00.283 the runs are at 02:00:00.000, not .283; from 02:00:00.5 the next is the next day's.
    #[test]
    fn whole_seconds() {
        let cron = CronExpr::parse("0 2 * * *").unwrap();
        assert_eq!(
            cron.next_runs(at("2026-03-01T12:00:00.283Z"), 2),
            [at("2026-03-02T02:00:00Z"), at("2026-03-03T02:00:00Z")]
        );
        assert_eq!(
            cron.next_after(at("2026-03-02T02:00:00.5Z")),
            Some(at("2026-03-03T02:00:00Z"))
        );
        assert_eq!(
            cron.latest_up_to(at("2026-03-02T02:00:00.999Z")),
            Some(at("2026-03-02T02:00:00Z"))
        );
        assert_eq!(
            cron.latest_up_to(at("2026-03-02T01:59:59.999Z")),
            Some(at("2026-03-01T02:00:00Z"))
        );
    }

    /// A time exactly on a cron time is "up to" it, not "after" it.
    #[test]
    fn bounds() {
        let cron = CronExpr::parse("0 * * * *").unwrap();
        let t = at("2026-11-23T03:00:00Z");
        assert_eq!(cron.latest_up_to(t), Some(t));
        assert_eq!(cron.next_after(t), Some(at("2026-11-23T04:00:00Z")));
    }

    /// For many expressions and start instants (with fractions of a
    /// second), the times agree with a minute-by-minute scan and with each
    /// other: whole seconds, strictly after the start, ascending, nothing
    /// skipped, and `latest_up_to` is the last one not after the instant.
    #[test]
    fn agrees_with_a_minute_scan() {
        let exprs = [
            "* * * * *",
            "*/7 3-5 * * *",
            "0 2 * * *",
            "15,45 */2 * * MON-FRI",
            "0 0 1 * *",
            "30 12 * * SUN",
            "0 0 13 * FRI",
        ];
        // A small linear congruential generator: reproducible starts.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 11
        };
        let base = at("2026-01-01T00:00:00Z");
        for expr in exprs {
            let cron = CronExpr::parse(expr).unwrap();
            for _ in 0..12 {
                let secs = i64::try_from(next() % (400 * 86_400)).unwrap();
                let nanos = i64::try_from(next() % 1_000_000_000).unwrap();
                let start = base + Duration::seconds(secs) + Duration::nanoseconds(nanos);
                let window_end = start + Duration::days(3);
                let got: Vec<_> = cron
                    .times_after(start)
                    .take_while(|t| *t <= window_end)
                    .collect();
                // Every minute in (start, window_end] that matches.
                let mut minute = start.trunc_subsecs(0).with_second(0).unwrap();
                let mut want = Vec::new();
                while minute <= window_end {
                    if minute > start && cron.cron.is_time_matching(&minute).unwrap() {
                        want.push(minute);
                    }
                    minute += Duration::minutes(1);
                }
                assert_eq!(got, want, "{expr} from {start}");
                for t in &got {
                    assert_eq!(t.nanosecond(), 0);
                    assert_eq!(cron.latest_up_to(*t), Some(*t), "{expr} at {t}");
                }
                if let Some(latest) = cron.latest_up_to(start) {
                    assert!(latest <= start);
                    let after = cron.next_after(latest).unwrap();
                    assert!(after > start, "{expr}: {after} skipped before {start}");
                    assert_eq!(cron.next_after(start), Some(after));
                }
            }
        }
    }
}
