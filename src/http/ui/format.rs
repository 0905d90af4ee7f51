//! How the pages write numbers and times: byte sizes in binary units,
//! durations, UTC timestamps and "… ago". Pure functions, no I/O.

use chrono::DateTime;

/// `1536` → `"1.5 KiB"`; below 1 KiB in bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// [`bytes`] of a signed stored size (negative sizes do not occur; they
/// print as 0 B).
pub fn bytes_i64(n: i64) -> String {
    bytes(u64::try_from(n).unwrap_or(0))
}

/// `3725` → `"1h 2m 5s"`; `42` → `"42s"`.
pub fn duration_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// The time between two stored times (Unix ms), or `None` if either is
/// missing or they are out of order.
pub fn elapsed(from: Option<i64>, to: Option<i64>) -> Option<String> {
    let (from, to) = (from?, to?);
    let ms = to.checked_sub(from)?;
    let secs = u64::try_from(ms).ok()? / 1000;
    Some(duration_secs(secs))
}

/// A stored time (Unix ms) as `"2026-03-01 12:34:56 UTC"`.
pub fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

/// A stored time as RFC 3339, for `<time datetime=…>`.
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// How long before `now` a stored time was: `"just now"`, `"5 min ago"`,
/// `"3 h ago"`, `"2 days ago"`; a time in the future is `"in the future"`.
pub fn ago(ms: i64, now: i64) -> String {
    let Some(delta) = now.checked_sub(ms) else {
        return "—".to_owned();
    };
    if delta < -60_000 {
        return "in the future".to_owned();
    }
    let secs = delta.max(0) / 1000;
    match secs {
        0..=59 => "just now".to_owned(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        86_400..=172_799 => "1 day ago".to_owned(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A count with its noun: `plural(1, "snapshot", "snapshots")` is
/// `"1 snapshot"`, any other count takes the plural form.
pub fn plural(n: impl Into<i128>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Shortens `text` to at most `max` characters, ending in `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes use binary units with one decimal below 100.
    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(bytes(300 * 1024 * 1024 * 1024), "300 GiB");
        assert_eq!(bytes_i64(-5), "0 B");
        assert!(bytes(u64::MAX).ends_with("EiB"));
    }

    /// Durations drop leading zero units.
    #[test]
    fn durations() {
        assert_eq!(duration_secs(42), "42s");
        assert_eq!(duration_secs(125), "2m 5s");
        assert_eq!(duration_secs(3725), "1h 2m 5s");
        assert_eq!(elapsed(Some(1_000), Some(6_500)), Some("5s".to_owned()));
        assert_eq!(elapsed(Some(6_500), Some(1_000)), None);
        assert_eq!(elapsed(None, Some(1_000)), None);
    }

    /// Times print in UTC; relative times round down to the largest unit.
    #[test]
    fn times() {
        assert_eq!(time(1_767_323_045_678), "2026-01-02 03:04:05 UTC");
        assert_eq!(rfc3339(1_767_323_045_678), "2026-01-02T03:04:05Z");
        let now = 1_767_323_045_678;
        assert_eq!(ago(now - 10_000, now), "just now");
        assert_eq!(ago(now - 5 * 60_000, now), "5 min ago");
        assert_eq!(ago(now - 3 * 3_600_000, now), "3 h ago");
        assert_eq!(ago(now - 90_000_000, now), "1 day ago");
        assert_eq!(ago(now - 10 * 86_400_000, now), "10 days ago");
        assert_eq!(ago(now + 3_600_000, now), "in the future");
    }

    /// One thing is singular; none and many are plural.
    #[test]
    fn plurals() {
        assert_eq!(plural(1u64, "snapshot", "snapshots"), "1 snapshot");
        assert_eq!(plural(0i64, "snapshot", "snapshots"), "0 snapshots");
        assert_eq!(plural(2usize as u64, "file", "files"), "2 files");
    }

    /// Clipping keeps short text and marks cut text with an ellipsis.
    #[test]
    fn clipping() {
        assert_eq!(clip("web-01", 10), "web-01");
        assert_eq!(clip("a-very-long-hostname", 8), "a-very-…");
        assert_eq!(clip("ééééé", 3).chars().count(), 3);
    }
}
