//! Queries on `host_metrics`: each host's heartbeat metrics as a time
//! series. Points are a minute ([`MINUTE`], kept [`MINUTE_KEEP_MS`]) or an
//! hour ([`HOUR`], kept [`HOUR_KEEP_MS`]); [`downsample_batch`] folds old
//! minute points into hourly ones and drops what is past keeping, one
//! bounded batch per call, so the writer runs it between other writes.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde_json::{Map, Value};

use super::paged::PagedDsl;
use super::schema::host_metrics;
use super::{per_backend, DbConnection, INSERT_CHUNK_ROWS};

/// `resolution` of a one-minute point (seconds).
pub const MINUTE: i32 = 60;
/// `resolution` of a one-hour point (seconds).
pub const HOUR: i32 = 3600;
/// Minute points are kept this long (24 h) …
pub const MINUTE_KEEP_MS: i64 = 86_400_000;
/// … hourly points this long (30 days); older ones are dropped.
pub const HOUR_KEEP_MS: i64 = 30 * 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The heartbeat `metrics` keys stored as columns (the rest are ignored).
pub const LOAD1: &str = "load1";
pub const MEM_USED: &str = "mem_used_bytes";
pub const MEM_TOTAL: &str = "mem_total_bytes";
pub const DISK_FREE: &str = "disk_free_bytes";
/// Free bytes per source group (its first include's file system).
pub const SOURCE_DISK_FREE: &str = "source_disk_free_bytes";

/// One point. `None` writes NULL rather than DEFAULT, which SQLite's
/// multi-row VALUES needs.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = host_metrics, treat_none_as_default_value = false)]
pub struct MetricPoint {
    pub host_id: String,
    /// [`MINUTE`] or [`HOUR`].
    pub resolution: i32,
    /// Start of the minute or hour, Unix ms.
    pub at: i64,
    pub load1: Option<f64>,
    pub mem_used_bytes: Option<i64>,
    pub mem_total_bytes: Option<i64>,
    /// Of the agent's state directory.
    pub disk_free_bytes: Option<i64>,
    /// JSON object: source group → free bytes.
    pub source_disk_free: Option<String>,
}

fn int(metrics: &Map<String, Value>, key: &str) -> Option<i64> {
    metrics
        .get(key)
        .and_then(Value::as_u64)
        .and_then(|v| i64::try_from(v).ok())
}

impl MetricPoint {
    /// The minute point of a heartbeat's `metrics` received at `now`
    /// (Unix ms); `None` when it carries none of the stored keys.
    pub fn of_heartbeat(host_id: &str, metrics: &Map<String, Value>, now: i64) -> Option<Self> {
        let sources = metrics
            .get(SOURCE_DISK_FREE)
            .and_then(Value::as_object)
            .map(|groups| {
                groups
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .collect::<BTreeMap<String, u64>>()
            })
            .filter(|groups| !groups.is_empty())
            .and_then(|groups| serde_json::to_string(&groups).ok());
        let point = MetricPoint {
            host_id: host_id.to_owned(),
            resolution: MINUTE,
            at: now - now.rem_euclid(60_000),
            load1: metrics
                .get(LOAD1)
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite()),
            mem_used_bytes: int(metrics, MEM_USED),
            mem_total_bytes: int(metrics, MEM_TOTAL),
            disk_free_bytes: int(metrics, DISK_FREE),
            source_disk_free: sources,
        };
        let empty = point.load1.is_none()
            && point.mem_used_bytes.is_none()
            && point.mem_total_bytes.is_none()
            && point.disk_free_bytes.is_none()
            && point.source_disk_free.is_none();
        (!empty).then_some(point)
    }

    /// Free bytes per source group.
    pub fn sources(&self) -> BTreeMap<String, u64> {
        self.source_disk_free
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }
}

/// Stores points; one already there for the same host, resolution and
/// time is kept (a host writes at most one point per minute).
pub fn insert_batch(conn: &mut DbConnection, points: &[MetricPoint]) -> QueryResult<usize> {
    let mut inserted = 0;
    for chunk in points.chunks(INSERT_CHUNK_ROWS) {
        inserted += per_backend!(&mut *conn, |c| diesel::insert_into(host_metrics::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(inserted)
}

/// The host's points at or after `since`, oldest first (hourly points for
/// the older part, minute points for the last 24 hours), at most `limit`
/// (the newest).
pub fn list_for_host(
    conn: &mut DbConnection,
    host_id: &str,
    since: i64,
    limit: i64,
) -> QueryResult<Vec<MetricPoint>> {
    let mut rows: Vec<MetricPoint> = host_metrics::table
        .filter(host_metrics::host_id.eq(host_id))
        .filter(host_metrics::at.ge(since))
        .order((host_metrics::at.desc(), host_metrics::resolution.asc()))
        .select(MetricPoint::as_select())
        .paged(limit.max(1), 0)
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

/// What one [`downsample_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DownsampleOutcome {
    /// Minute points folded into hourly ones (and deleted).
    pub folded: usize,
    /// Hourly points written.
    pub hourly: usize,
    /// Hourly points dropped for age.
    pub dropped: usize,
    /// Nothing is left to do before `now`.
    pub done: bool,
}

fn hour_floor(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

/// One bounded step of the retention at `now`: drops the hourly points of
/// the oldest hour past [`HOUR_KEEP_MS`], or else folds the minute points
/// of the oldest whole hour past [`MINUTE_KEEP_MS`] of at most
/// `max_hosts` hosts into one hourly point each (averages; the lowest free
/// space). Call it again until `done`.
pub fn downsample_batch(
    conn: &mut DbConnection,
    now: i64,
    max_hosts: i64,
) -> QueryResult<DownsampleOutcome> {
    let hour_cutoff = hour_floor(now - HOUR_KEEP_MS);
    let oldest_hourly: Option<i64> = host_metrics::table
        .filter(host_metrics::resolution.eq(HOUR))
        .filter(host_metrics::at.lt(hour_cutoff))
        .select(diesel::dsl::min(host_metrics::at))
        .first(conn)?;
    if let Some(oldest) = oldest_hourly {
        let dropped = diesel::delete(
            host_metrics::table
                .filter(host_metrics::resolution.eq(HOUR))
                .filter(host_metrics::at.le(oldest)),
        )
        .execute(conn)?;
        return Ok(DownsampleOutcome {
            dropped,
            ..DownsampleOutcome::default()
        });
    }
    let minute_cutoff = hour_floor(now - MINUTE_KEEP_MS);
    let oldest_minute: Option<i64> = host_metrics::table
        .filter(host_metrics::resolution.eq(MINUTE))
        .filter(host_metrics::at.lt(minute_cutoff))
        .select(diesel::dsl::min(host_metrics::at))
        .first(conn)?;
    let Some(oldest) = oldest_minute else {
        return Ok(DownsampleOutcome {
            done: true,
            ..DownsampleOutcome::default()
        });
    };
    let hour = hour_floor(oldest);
    let in_hour = || {
        host_metrics::table
            .filter(host_metrics::resolution.eq(MINUTE))
            .filter(host_metrics::at.ge(hour))
            .filter(host_metrics::at.lt(hour + HOUR_MS))
    };
    let hosts: Vec<String> = in_hour()
        .select(host_metrics::host_id)
        .distinct()
        .order(host_metrics::host_id.asc())
        .paged(max_hosts.max(1), 0)
        .load(conn)?;
    let points: Vec<MetricPoint> = in_hour()
        .filter(host_metrics::host_id.eq_any(&hosts))
        .order((host_metrics::host_id.asc(), host_metrics::at.asc()))
        .select(MetricPoint::as_select())
        .load(conn)?;
    let hourly: Vec<MetricPoint> = points
        .chunk_by(|a, b| a.host_id == b.host_id)
        .map(|minutes| fold_hour(minutes, hour))
        .collect();
    let written = insert_batch(conn, &hourly)?;
    let folded =
        diesel::delete(in_hour().filter(host_metrics::host_id.eq_any(&hosts))).execute(conn)?;
    Ok(DownsampleOutcome {
        folded,
        hourly: written,
        dropped: 0,
        done: false,
    })
}

/// One host's minute points of one hour as one hourly point.
fn fold_hour(minutes: &[MetricPoint], hour: i64) -> MetricPoint {
    fn mean<T: Copy>(values: impl Iterator<Item = Option<T>>, f: impl Fn(T) -> f64) -> Option<f64> {
        let (sum, n) = values
            .flatten()
            .fold((0.0, 0u32), |(sum, n), v| (sum + f(v), n + 1));
        (n > 0).then(|| sum / f64::from(n))
    }
    let mean_int = |pick: fn(&MetricPoint) -> Option<i64>| {
        mean(minutes.iter().map(pick), |v| v as f64).map(|v| v.round() as i64)
    };
    let mut sources: BTreeMap<String, u64> = BTreeMap::new();
    for point in minutes {
        for (group, free) in point.sources() {
            let lowest = sources.entry(group).or_insert(free);
            *lowest = (*lowest).min(free);
        }
    }
    MetricPoint {
        host_id: minutes
            .first()
            .map(|p| p.host_id.clone())
            .unwrap_or_default(),
        resolution: HOUR,
        at: hour,
        load1: mean(minutes.iter().map(|p| p.load1), |v| v),
        mem_used_bytes: mean_int(|p| p.mem_used_bytes),
        mem_total_bytes: minutes.iter().filter_map(|p| p.mem_total_bytes).max(),
        disk_free_bytes: minutes.iter().filter_map(|p| p.disk_free_bytes).min(),
        source_disk_free: (!sources.is_empty())
            .then(|| serde_json::to_string(&sources).ok())
            .flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    /// A heartbeat's metrics become a point at the start of its minute;
    /// one without any stored key becomes none.
    #[test]
    fn point_of_heartbeat() {
        let metrics = map(json!({
            "load1": 0.5, "mem_used_bytes": 1000, "disk_free_bytes": 42,
            "source_disk_free_bytes": {"docs": 7, "bad": "x"}, "other": 1
        }));
        let point = MetricPoint::of_heartbeat("h", &metrics, 125_000).unwrap();
        assert_eq!(point.at, 120_000);
        assert_eq!(point.load1, Some(0.5));
        assert_eq!(point.mem_used_bytes, Some(1000));
        assert_eq!(point.mem_total_bytes, None);
        assert_eq!(point.disk_free_bytes, Some(42));
        assert_eq!(point.sources(), BTreeMap::from([("docs".to_owned(), 7)]));
        assert!(MetricPoint::of_heartbeat("h", &map(json!({"x": 1})), 0).is_none());
    }

    /// An hour folds to means (load, memory) and the lowest free space.
    #[test]
    fn hour_folds() {
        let minute = |at: i64, load: f64, free: i64| MetricPoint {
            host_id: "h".to_owned(),
            resolution: MINUTE,
            at,
            load1: Some(load),
            mem_used_bytes: Some(100),
            mem_total_bytes: None,
            disk_free_bytes: Some(free),
            source_disk_free: Some(format!(r#"{{"g":{free}}}"#)),
        };
        let hourly = fold_hour(&[minute(0, 1.0, 50), minute(60_000, 3.0, 40)], 0);
        assert_eq!(hourly.resolution, HOUR);
        assert_eq!(hourly.load1, Some(2.0));
        assert_eq!(hourly.mem_used_bytes, Some(100));
        assert_eq!(hourly.disk_free_bytes, Some(40));
        assert_eq!(hourly.sources()["g"], 40);
    }
}
