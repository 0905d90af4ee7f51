//! Queries on `audit_log`: who did what, when and from where. Rows are
//! only ever added.

use diesel::prelude::*;

use super::models::{AuditEntry, NewAuditEntry};
use super::paged::PagedDsl;
use super::prepared::PrepareOnce;
use super::schema::audit_log;
use super::types::Page;
use super::{clamp_limit, page_total, DbConnection, MAX_PAGE};

/// Which entries [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// At or after (Unix ms).
    pub since: Option<i64>,
    /// Before (Unix ms).
    pub until: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// Writes an audit entry.
pub fn insert(conn: &mut DbConnection, new: &NewAuditEntry) -> QueryResult<AuditEntry> {
    diesel::insert_into(audit_log::table)
        .values(new.clone())
        .returning(audit_log::all_columns)
        .prepared()
        .get_result(conn)
}

/// Writes the audit entry of `actor` (from `source_addr`) doing `action`
/// to `target` at `at` (Unix ms), with optional JSON details: the one way
/// every layer (REST handlers, the job flow, enrolment, the CLI) audits.
pub fn record(
    conn: &mut DbConnection,
    at: i64,
    actor: &str,
    source_addr: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Option<serde_json::Value>,
) -> QueryResult<()> {
    insert(conn, &entry(at, actor, source_addr, action, target, detail))?;
    Ok(())
}

/// The entry [`record`] writes, for a caller that writes it with another
/// row in one statement (`jobs::insert_audited`).
pub fn entry(
    at: i64,
    actor: &str,
    source_addr: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Option<serde_json::Value>,
) -> NewAuditEntry {
    NewAuditEntry {
        id: super::new_id(),
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        detail,
        source_addr: source_addr.map(str::to_owned),
    }
}

fn filtered<'a>(filter: &'a AuditFilter) -> audit_log::BoxedQuery<'a, super::MultiBackend> {
    let mut query = audit_log::table.into_boxed();
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_log::actor.eq(actor));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::action.eq(action));
    }
    if let Some(target) = &filter.target {
        query = query.filter(audit_log::target.eq(target));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_log::at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_log::at.lt(until));
    }
    query
}

/// Entries matching the filter, newest first, and the total that match.
pub fn list(conn: &mut DbConnection, filter: &AuditFilter) -> QueryResult<Page<AuditEntry>> {
    let limit = clamp_limit(filter.limit, MAX_PAGE);
    let offset = filter.offset.max(0);
    let items = filtered(filter)
        .order((audit_log::at.desc(), audit_log::id.desc()))
        .select(AuditEntry::as_select())
        .paged(limit, offset)
        .load(conn)?;
    let total = page_total(items.len(), limit, offset, || {
        filtered(filter).count().get_result(conn)
    })?;
    Ok(Page { items, total })
}
