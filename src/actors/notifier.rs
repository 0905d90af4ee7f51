//! The notifier: delivers the notification outbox (`store::notifications`)
//! and raises `host.offline` for hosts gone longer than
//! `--offline-grace-seconds`.
//!
//! A task on the actix system, like log retention: every tick it reads
//! the due outbox rows (on the blocking pool, never on an event loop),
//! plans each channel's delivery ([`plan`]: one message per event, one
//! summary for a burst, or wait for the burst's window to close), sends
//! them (async HTTP or SMTP, channels side by side), and records every
//! attempt through the one writer ([`RunWrite`]). A failed attempt is
//! retried with exponential back-off ([`retry_at`]) until the event is
//! `give_up_after` old. Because a row leaves `pending` only by a recorded
//! attempt, a restart between an event and its delivery loses nothing.
//!
//! Every `SWEEP_TICKS` ticks it asks the writer to start the `host.offline`
//! condition of each host offline past the grace; one transaction for all
//! of them, so a thousand hosts lost at once are one burst.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use serde_json::Value;

use super::persistence::{PersistError, Persistence, RunWrite};
use crate::config::NotifyConfig;
use crate::crypto::{self, SecretKey};
use crate::notify::{self, deliver};
use crate::store::notifications::{self, Attempt, Channel, OutboxRow};
use crate::store::{self, Pool};

/// Outbox rows read per tick.
const BATCH: i64 = 5_000;
/// The offline sweep runs every this many ticks.
const SWEEP_TICKS: u32 = 10;
/// Longest pause between two attempts of one event.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How a channel's due events go out this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// One message per event.
    Each,
    /// All of them in one summary message.
    Summary,
    /// Not yet: a burst is going on and its window is open, so more may
    /// join the summary.
    Hold,
}

/// The burst rule: more than `burst` events of one channel within a
/// window go out as one summary. `pending` wait now, `recent` went out
/// within the window, the oldest pending one is `oldest_age` old.
pub fn plan(
    pending: usize,
    recent: usize,
    oldest_age: Duration,
    burst: usize,
    window: Duration,
) -> Plan {
    if pending > burst {
        Plan::Summary
    } else if recent + pending > burst {
        if oldest_age >= window {
            Plan::Summary
        } else {
            Plan::Hold
        }
    } else {
        Plan::Each
    }
}

/// When a failed event is tried again after its `attempts`-th failure
/// (base, 2×base, 4×base … up to an hour), or `None` once it is older than
/// `give_up_after`.
pub fn retry_at(config: &NotifyConfig, attempts: i32, created_at: i64, now: i64) -> Option<i64> {
    if now.saturating_sub(created_at) >= millis(config.give_up_after) {
        return None;
    }
    let factor = 1u32 << attempts.clamp(0, 20);
    let delay = config.retry_base.saturating_mul(factor).min(MAX_BACKOFF);
    Some(now + millis(delay))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What one tick read: the channels with due rows, and per channel its
/// rows and the events it delivered within the window.
struct Work {
    channels: Vec<(Channel, Vec<OutboxRow>, usize)>,
}

/// Stops the notifier at a server's shutdown: after [`Handle::stop`] no
/// delivery starts and none is in flight, so a server started again on
/// the same database (tests do that in one process) is the only sender.
#[derive(Debug, Default)]
pub struct Handle {
    stopped: std::sync::atomic::AtomicBool,
    /// Held for each round of work.
    busy: tokio::sync::Mutex<()>,
}

impl Handle {
    /// Stops the notifier and waits for its round in progress, if any.
    pub async fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _round = self.busy.lock().await;
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Starts the notifier on the current actix system.
pub fn start(
    persistence: Addr<Persistence>,
    pool: Pool,
    key: Arc<SecretKey>,
    config: NotifyConfig,
) -> Arc<Handle> {
    let handle = Arc::new(Handle::default());
    let me = handle.clone();
    actix::spawn(async move {
        let http = reqwest::Client::new();
        let mut ticks: u32 = 0;
        loop {
            {
                let _round = me.busy.lock().await;
                if me.is_stopped() {
                    break;
                }
                if ticks % SWEEP_TICKS == 0 && !sweep_offline(&persistence, &config).await {
                    break;
                }
                ticks = ticks.wrapping_add(1);
                match read_work(&pool, &config).await {
                    Ok(work) => {
                        let attempts = deliver_all(&http, &key, &config, work).await;
                        if !attempts.is_empty() && !record(&persistence, attempts).await {
                            break;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the notification outbox"),
                }
            }
            tokio::time::sleep(config.tick).await;
        }
    });
    handle
}

/// Starts `host.offline` for hosts offline past the grace. False when the
/// writer is gone (the server is stopping).
async fn sweep_offline(persistence: &Addr<Persistence>, config: &NotifyConfig) -> bool {
    let grace = millis(config.offline_grace);
    let write = RunWrite::new("notifying offline hosts", move |conn| {
        let now = store::now_ms();
        let hosts = notifications::newly_offline(conn, now - grace)?;
        let events: Vec<_> = hosts
            .iter()
            .map(|(host_id, _)| notify::host_event(host_id, true, now))
            .collect();
        notifications::start_new(conn, &events)?;
        Ok::<_, PersistError>(hosts.len())
    });
    match persistence.send(write).await {
        Err(_) => false,
        Ok(Ok(n)) => {
            if n > 0 {
                tracing::info!(hosts = n, "hosts offline past the grace");
            }
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot look for offline hosts");
            true
        }
    }
}

async fn read_work(pool: &Pool, config: &NotifyConfig) -> Result<Work, String> {
    let pool = pool.clone();
    let window = millis(config.burst_window);
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        let now = store::now_ms();
        let due = notifications::due(&mut conn, now, BATCH).map_err(|e| e.to_string())?;
        let mut by_channel: BTreeMap<String, Vec<OutboxRow>> = BTreeMap::new();
        for row in due {
            by_channel
                .entry(row.channel_id.clone())
                .or_default()
                .push(row);
        }
        let mut channels = Vec::new();
        for (id, rows) in by_channel {
            let Some(channel) = notifications::get(&mut conn, &id).map_err(|e| e.to_string())?
            else {
                continue;
            };
            let recent = notifications::delivered_since(&mut conn, &id, now - window)
                .map_err(|e| e.to_string())?;
            channels.push((channel, rows, usize::try_from(recent).unwrap_or(0)));
        }
        Ok(Work { channels })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The channel's destination, its secret opened.
pub fn target(key: &SecretKey, channel: &Channel) -> Result<deliver::Target, String> {
    match channel.kind.as_str() {
        "webhook" => {
            let secret = channel
                .secret_sealed
                .as_deref()
                .map(|sealed| crypto::open_string(key, sealed, channel.id.as_bytes()))
                .transpose()
                .map_err(|e| format!("cannot open the channel's secret: {e}"))?;
            Ok(deliver::Target::Webhook {
                url: channel.url.clone().unwrap_or_default(),
                secret,
            })
        }
        _ => Ok(deliver::Target::Email {
            to: channel.recipients.clone(),
        }),
    }
}

async fn deliver_all(
    http: &reqwest::Client,
    key: &SecretKey,
    config: &NotifyConfig,
    work: Work,
) -> Vec<Attempt> {
    let now = store::now_ms();
    let jobs = work
        .channels
        .into_iter()
        .map(|(channel, rows, recent)| async move {
            let oldest = rows.first().map_or(now, |r| r.created_at);
            let age = Duration::from_millis(u64::try_from(now - oldest).unwrap_or(0));
            let decided = plan(rows.len(), recent, age, config.burst, config.burst_window);
            let target = match target(key, &channel) {
                Ok(t) => t,
                Err(error) => {
                    tracing::warn!(channel = %channel.name, %error, "cannot deliver notifications");
                    return vec![failed(config, &rows, None, error, now)];
                }
            };
            let public = config.public_url.as_deref();
            match decided {
                Plan::Hold => Vec::new(),
                Plan::Summary => {
                    let id = store::new_id();
                    let events: Vec<Value> = rows
                        .iter()
                        .map(|r| deliver::event_body(&r.payload, &r.id, public))
                        .collect();
                    let body = deliver::summary_body(&id, &events);
                    let result = deliver::send(http, config, &target, &id, &body).await;
                    vec![attempt(
                        config,
                        &rows,
                        Some(id),
                        result,
                        store::now_ms(),
                        &channel,
                    )]
                }
                Plan::Each => {
                    let mut attempts = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let body = deliver::event_body(&row.payload, &row.id, public);
                        let result = deliver::send(http, config, &target, &row.id, &body).await;
                        attempts.push(attempt(
                            config,
                            std::slice::from_ref(row),
                            None,
                            result,
                            store::now_ms(),
                            &channel,
                        ));
                    }
                    attempts
                }
            }
        });
    futures_util::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn attempt(
    config: &NotifyConfig,
    rows: &[OutboxRow],
    summary_id: Option<String>,
    result: Result<Option<i32>, deliver::Failure>,
    now: i64,
    channel: &Channel,
) -> Attempt {
    match result {
        Ok(status_code) => Attempt {
            ids: rows.iter().map(|r| r.id.clone()).collect(),
            summary_id,
            status_code,
            error: None,
            at: now,
            retry_at: None,
        },
        Err(failure) => {
            tracing::info!(channel = %channel.name, events = rows.len(), error = %failure.error, "notification not delivered; retrying later");
            failed(config, rows, failure.status_code, failure.error, now)
        }
    }
}

fn failed(
    config: &NotifyConfig,
    rows: &[OutboxRow],
    status_code: Option<i32>,
    error: String,
    now: i64,
) -> Attempt {
    // Rows planned together share their back-off: the first one's.
    let first = rows.first();
    let retry = first.and_then(|r| retry_at(config, r.attempts, r.created_at, now));
    Attempt {
        ids: rows.iter().map(|r| r.id.clone()).collect(),
        summary_id: None,
        status_code,
        error: Some(error),
        at: now,
        retry_at: retry,
    }
}

/// Records the attempts in one write. False when the writer is gone.
async fn record(persistence: &Addr<Persistence>, attempts: Vec<Attempt>) -> bool {
    let write = RunWrite::new("recording notification deliveries", move |conn| {
        let mut n = 0;
        for attempt in &attempts {
            n += notifications::record_attempt(conn, attempt)?;
        }
        Ok::<_, PersistError>(n)
    });
    match persistence.send(write).await {
        Err(_) => false,
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot record notification deliveries");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn bursts_become_summaries() {
        assert_eq!(plan(3, 0, Duration::ZERO, 20, MIN), Plan::Each);
        assert_eq!(plan(20, 0, Duration::ZERO, 20, MIN), Plan::Each);
        assert_eq!(plan(21, 0, Duration::ZERO, 20, MIN), Plan::Summary);
        assert_eq!(plan(1000, 0, Duration::ZERO, 20, MIN), Plan::Summary);
        // 18 went out this minute, 5 more wait: hold them for the window.
        assert_eq!(plan(5, 18, Duration::from_secs(10), 20, MIN), Plan::Hold);
        assert_eq!(plan(5, 18, MIN, 20, MIN), Plan::Summary);
    }

    #[test]
    fn retries_back_off_and_give_up_after_a_day() {
        let config = NotifyConfig::default();
        assert_eq!(retry_at(&config, 0, 0, 1_000), Some(11_000));
        assert_eq!(retry_at(&config, 1, 0, 1_000), Some(21_000));
        assert_eq!(retry_at(&config, 3, 0, 1_000), Some(81_000));
        // Capped at an hour.
        assert_eq!(retry_at(&config, 30, 0, 1_000), Some(3_601_000));
        let day = 24 * 3600 * 1000;
        assert_eq!(retry_at(&config, 5, 0, day), None);
    }
}
