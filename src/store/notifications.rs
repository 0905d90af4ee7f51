//! Notification channels, active conditions and the outbox (issue 15 A).
//!
//! - A **channel** is where notifications go (a webhook URL or mail
//!   addresses), which events it wants and, optionally, a label selector
//!   on the host. Its webhook secret is sealed by `crypto` (associated
//!   data: the channel id); this module never sees it in clear.
//! - A **condition** is a failure that is going on (`job.failed` of one
//!   host and group, `host.offline` of one host, …), keyed by what it is
//!   about. [`emit`] notifies when a condition starts and when it ends,
//!   never while it persists: that is the de-duplication.
//! - The **outbox** holds one row per event and channel, written in the
//!   transaction of the change that caused it (a job's end, a missed run,
//!   a host coming back), so a crash cannot lose one. The notifier
//!   (`actors::notifier`) reads due rows, delivers them and marks them;
//!   a row leaves `pending` only when the receiver took it, or when its
//!   retries ran out (`failed`).

use std::collections::BTreeMap;
use std::fmt;

use diesel::prelude::*;

use super::json::Json;
use super::paged::PagedDsl;
use super::schema::notification_outbox as ob;
use super::schema::{hosts, notification_channels as nc, notification_conditions as cond};
use super::DbConnection;

/// Outbox status of a row waiting for (another) delivery attempt.
pub const PENDING: &str = "pending";
/// Outbox status of a row the receiver took (2xx, or the mail server
/// accepted it).
pub const DELIVERED: &str = "delivered";
/// Outbox status of a row whose retries ran out.
pub const FAILED: &str = "failed";

/// A notification channel as stored.
#[derive(Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = nc)]
pub struct Channel {
    pub id: String,
    pub name: String,
    /// `webhook` or `email`.
    pub kind: String,
    /// The webhook's URL.
    pub url: Option<String>,
    /// The webhook's signing secret, sealed.
    pub secret_sealed: Option<Vec<u8>>,
    /// Mail recipients.
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub recipients: Vec<String>,
    /// Event names the channel wants.
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub events: Vec<String>,
    /// Labels a host must carry for its events to reach this channel.
    #[diesel(deserialize_as = Json<Option<BTreeMap<String, String>>>)]
    pub selector: Option<BTreeMap<String, String>>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url.as_deref().map(crate::redact::url))
            .field("secret_set", &self.secret_sealed.is_some())
            .field("recipients", &self.recipients)
            .field("events", &self.events)
            .field("selector", &self.selector)
            .finish()
    }
}

/// A channel to insert or the new values of one (all fields replaced).
#[derive(Clone, Insertable)]
#[diesel(table_name = nc)]
pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub url: Option<String>,
    pub secret_sealed: Option<Vec<u8>>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub recipients: Vec<String>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub events: Vec<String>,
    #[diesel(serialize_as = Json<Option<BTreeMap<String, String>>>)]
    pub selector: Option<BTreeMap<String, String>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = ob)]
pub struct OutboxRow {
    pub id: String,
    pub channel_id: String,
    pub event: String,
    /// The event's JSON body (without the delivery's own fields).
    pub payload: String,
    pub created_at: i64,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub status: String,
    pub delivered_at: Option<i64>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    /// Set when the row went out inside a summary message.
    pub summary_id: Option<String>,
}

/// An event to notify: what happened, to which host, and the condition
/// it starts or ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's name (`job.failed`, `host.online`, …).
    pub name: &'static str,
    /// The condition it is about (see [`condition_key`]).
    pub condition: String,
    /// True when the event starts the condition, false when it ends it.
    pub starts: bool,
    pub host_id: String,
    /// The event's fields besides the host (group, job, message, path).
    pub detail: serde_json::Map<String, serde_json::Value>,
    pub at: i64,
}

/// The key of a condition: the failure event's name and what it is about.
pub fn condition_key(failure: &str, host_id: &str, about: &str) -> String {
    format!("{failure}|{host_id}|{about}")
}

/// Records `event` and queues it for every channel that wants it, in the
/// caller's transaction. A start of a condition already going on, or the
/// end of one that is not, changes nothing (that is the de-duplication).
/// Returns the outbox rows written.
pub fn emit(conn: &mut DbConnection, event: &Event) -> QueryResult<usize> {
    let active = cond::table
        .find(&event.condition)
        .select(cond::since)
        .first::<i64>(conn)
        .optional()?;
    let since = match (event.starts, active) {
        (true, Some(_)) | (false, None) => return Ok(0),
        (true, None) => {
            diesel::insert_into(cond::table)
                .values((
                    cond::key.eq(&event.condition),
                    cond::host_id.eq(&event.host_id),
                    cond::event.eq(event.name),
                    cond::since.eq(event.at),
                ))
                .execute(conn)?;
            None
        }
        (false, Some(since)) => {
            diesel::delete(cond::table.find(&event.condition)).execute(conn)?;
            Some(since)
        }
    };
    let channels = channels_for(conn, event.name)?;
    enqueue(conn, event, since, &channels)
}

/// Starts conditions known not to be going on (the offline sweep's, read
/// in the same transaction by [`newly_offline`]) and queues their events
/// for every channel that wants them: what [`emit`] does for each, with
/// the conditions written in multi-row inserts and the channels read once
/// per event name, instead of three statements for every host (10,000
/// hosts going offline at once were 30,000 round trips in one writer turn
/// on PostgreSQL). Returns the outbox rows written.
pub fn start_new(conn: &mut DbConnection, events: &[Event]) -> QueryResult<usize> {
    for chunk in events.chunks(super::INSERT_CHUNK_ROWS) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|event| {
                (
                    cond::key.eq(&event.condition),
                    cond::host_id.eq(&event.host_id),
                    cond::event.eq(event.name),
                    cond::since.eq(event.at),
                )
            })
            .collect();
        // A multi-row insert is per backend (not on the multi-backend
        // connection).
        super::per_backend!(&mut *conn, |c| diesel::insert_into(cond::table)
            .values(&rows)
            .execute(c))?;
    }
    let mut channels: BTreeMap<&str, Vec<Channel>> = BTreeMap::new();
    let mut written = 0;
    for event in events {
        if !channels.contains_key(event.name) {
            let wanted = channels_for(conn, event.name)?;
            channels.insert(event.name, wanted);
        }
        written += enqueue(conn, event, None, &channels[event.name])?;
    }
    Ok(written)
}

/// Queues `event` (which ended a condition going on since `since`, if
/// any) for those of `channels` whose selector matches its host.
fn enqueue(
    conn: &mut DbConnection,
    event: &Event,
    since: Option<i64>,
    channels: &[Channel],
) -> QueryResult<usize> {
    if channels.is_empty() {
        return Ok(0);
    }
    let host = hosts::table
        .find(&event.host_id)
        .select((hosts::hostname, hosts::display_name, hosts::labels))
        .first::<(String, Option<String>, Json<BTreeMap<String, String>>)>(conn)
        .optional()?;
    let Some((hostname, display_name, Json(labels))) = host else {
        return Ok(0);
    };
    let payload = crate::notify::payload(event, &hostname, display_name.as_deref(), since);
    let payload = payload.to_string();
    let mut written = 0;
    for channel in channels.iter().filter(|c| selects(c, &labels)) {
        diesel::insert_into(ob::table)
            .values((
                ob::id.eq(super::new_id()),
                ob::channel_id.eq(&channel.id),
                ob::event.eq(event.name),
                ob::payload.eq(&payload),
                ob::created_at.eq(event.at),
                ob::next_attempt_at.eq(event.at),
                ob::status.eq(PENDING),
            ))
            .execute(conn)?;
        written += 1;
    }
    Ok(written)
}

/// Whether a channel's selector matches a host's labels (every label of
/// the selector must be there with the same value; none selects all).
pub fn selects(channel: &Channel, labels: &BTreeMap<String, String>) -> bool {
    channel
        .selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// Which of the condition `keys` are going on (one read per
/// [`INSERT_CHUNK_ROWS`](super::INSERT_CHUNK_ROWS) keys): a batch of events
/// that can only end conditions passes [`emit`] only those.
pub fn open_conditions(
    conn: &mut DbConnection,
    keys: &[&str],
) -> QueryResult<std::collections::HashSet<String>> {
    let mut open = std::collections::HashSet::new();
    for chunk in keys.chunks(super::INSERT_CHUNK_ROWS) {
        open.extend(
            cond::table
                .filter(cond::key.eq_any(chunk))
                .select(cond::key)
                .load::<String>(conn)?,
        );
    }
    Ok(open)
}

/// The channels that want `event` (by its name, or by the failure whose
/// recovery it is).
fn channels_for(conn: &mut DbConnection, event: &str) -> QueryResult<Vec<Channel>> {
    let failure = crate::notify::failure_of(event);
    Ok(list(conn)?
        .into_iter()
        .filter(|c| {
            c.events
                .iter()
                .any(|e| e == event || Some(e.as_str()) == failure)
        })
        .collect())
}

/// Every channel, by name.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Channel>> {
    nc::table
        .order(nc::name.asc())
        .select(Channel::as_select())
        .load(conn)
}

/// The channel with this id.
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Channel>> {
    nc::table
        .find(id)
        .select(Channel::as_select())
        .first(conn)
        .optional()
}

/// The channel with this name.
pub fn by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Channel>> {
    nc::table
        .filter(nc::name.eq(name))
        .select(Channel::as_select())
        .first(conn)
        .optional()
}

/// Inserts a channel.
pub fn insert(conn: &mut DbConnection, row: &ChannelRow) -> QueryResult<Channel> {
    diesel::insert_into(nc::table)
        .values(row.clone())
        .execute(conn)?;
    get(conn, &row.id)?.ok_or(diesel::result::Error::NotFound)
}

/// Replaces a channel's fields (`created_at` is kept).
pub fn update(conn: &mut DbConnection, row: &ChannelRow) -> QueryResult<Option<Channel>> {
    let n = diesel::update(nc::table.find(&row.id))
        .set((
            nc::name.eq(&row.name),
            nc::kind.eq(&row.kind),
            nc::url.eq(&row.url),
            nc::secret_sealed.eq(&row.secret_sealed),
            nc::recipients.eq(Json(row.recipients.clone())),
            nc::events.eq(Json(row.events.clone())),
            nc::selector.eq(Json(row.selector.clone())),
            nc::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    get(conn, &row.id)
}

/// Deletes a channel and its outbox rows. False if it did not exist.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(ob::table.filter(ob::channel_id.eq(id))).execute(conn)?;
    Ok(diesel::delete(nc::table.find(id)).execute(conn)? == 1)
}

/// Pending rows due at `now`, oldest first, at most `limit`.
pub fn due(conn: &mut DbConnection, now: i64, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    ob::table
        .filter(ob::status.eq(PENDING))
        .filter(ob::next_attempt_at.le(now))
        .order((ob::created_at.asc(), ob::id.asc()))
        .select(OutboxRow::as_select())
        .paged(limit, 0)
        .load(conn)
}

/// Events of `channel_id` delivered since `since` (a summary counts each
/// event it carried): the burst detector's memory.
pub fn delivered_since(conn: &mut DbConnection, channel_id: &str, since: i64) -> QueryResult<i64> {
    ob::table
        .filter(ob::channel_id.eq(channel_id))
        .filter(ob::status.eq(DELIVERED))
        .filter(ob::delivered_at.ge(since))
        .count()
        .get_result(conn)
}

/// The last `limit` outbox rows of a channel, newest first.
pub fn deliveries(
    conn: &mut DbConnection,
    channel_id: &str,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    ob::table
        .filter(ob::channel_id.eq(channel_id))
        .order((ob::created_at.desc(), ob::id.desc()))
        .select(OutboxRow::as_select())
        .paged(limit, 0)
        .load(conn)
}

/// What one delivery attempt of some rows gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub ids: Vec<String>,
    /// Set when the rows went out as one summary.
    pub summary_id: Option<String>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Why it failed; `None` when the receiver took it.
    pub error: Option<String>,
    pub at: i64,
    /// For a failure: when to try again; `None` gives up (`failed`).
    pub retry_at: Option<i64>,
}

/// Records an attempt on its rows. Only rows still `pending` change, so
/// a row delivered once is never reopened.
pub fn record_attempt(conn: &mut DbConnection, attempt: &Attempt) -> QueryResult<usize> {
    let mut changed = 0;
    for chunk in attempt.ids.chunks(super::INSERT_CHUNK_ROWS) {
        let rows = ob::table
            .filter(ob::id.eq_any(chunk))
            .filter(ob::status.eq(PENDING));
        changed += match (&attempt.error, attempt.retry_at) {
            (None, _) => diesel::update(rows)
                .set((
                    ob::status.eq(DELIVERED),
                    ob::attempts.eq(ob::attempts + 1),
                    ob::delivered_at.eq(attempt.at),
                    ob::last_status.eq(attempt.status_code),
                    ob::last_error.eq(None::<String>),
                    ob::summary_id.eq(&attempt.summary_id),
                ))
                .execute(conn)?,
            (Some(error), retry_at) => diesel::update(rows)
                .set((
                    ob::status.eq(if retry_at.is_some() { PENDING } else { FAILED }),
                    ob::attempts.eq(ob::attempts + 1),
                    ob::next_attempt_at.eq(retry_at.unwrap_or(attempt.at)),
                    ob::last_status.eq(attempt.status_code),
                    ob::last_error.eq(error),
                ))
                .execute(conn)?,
        };
    }
    Ok(changed)
}

/// Hosts offline since before `cutoff` (once online, not revoked) whose
/// `host.offline` condition has not started: (id, last seen).
///
/// Two single-table reads and the difference taken here, not one
/// statement with `NOT EXISTS` (or `NOT IN`): how PostgreSQL joins those
/// depends on its statistics, and its generic plan made while a table
/// looked empty (after a quiet spell or a fresh `ANALYZE`) scanned every
/// condition for every offline host: 783 ms a sweep on the one writer at
/// 10,000 hosts and 4,300 conditions (`auto_explain`, BENCHMARKS.md).
/// Each read here is one pass over its rows, whatever the plan.
pub fn newly_offline(conn: &mut DbConnection, cutoff: i64) -> QueryResult<Vec<(String, i64)>> {
    let started: std::collections::HashSet<String> = cond::table
        .filter(cond::event.eq(crate::notify::HOST_OFFLINE))
        .select(cond::host_id)
        .load(conn)?
        .into_iter()
        .collect();
    let rows: Vec<(String, Option<i64>)> = hosts::table
        .filter(hosts::online.eq(false))
        .filter(hosts::revoked_at.is_null())
        .filter(hosts::last_seen_at.lt(cutoff))
        .select((hosts::id, hosts::last_seen_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(id, _)| !started.contains(id))
        .filter_map(|(id, seen)| seen.map(|s| (id, s)))
        .collect())
}

/// The last `limit` outbox rows of every channel, newest first, with the
/// channel's name (the Notifications page).
pub fn recent(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<(OutboxRow, String)>> {
    ob::table
        .inner_join(nc::table)
        .order((ob::created_at.desc(), ob::id.desc()))
        .select((OutboxRow::as_select(), nc::name))
        .paged(limit, 0)
        .load(conn)
}
