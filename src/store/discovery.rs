//! Queries on `host_discovery`: the latest Docker discovery report of each
//! host (issue 13 §2), one row per host replaced whole by the writer
//! (`actors::persistence`) on every `discovery.report`; the REST API and
//! the host page read it.

use diesel::prelude::*;

use super::json::Json;
use super::schema::host_discovery;
use super::{per_backend, DbConnection};
use crate::protocol::DiscoveredContainer;

/// A host's latest report as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = host_discovery)]
pub struct DiscoveryRow {
    pub host_id: String,
    /// The running containers, secret values already removed.
    #[diesel(deserialize_as = Json<Vec<DiscoveredContainer>>)]
    pub containers: Vec<DiscoveredContainer>,
    /// When the report arrived (Unix ms).
    pub received_at: i64,
}

/// Replaces the host's report.
pub fn put(
    conn: &mut DbConnection,
    host_id: &str,
    containers: &[DiscoveredContainer],
    now: i64,
) -> QueryResult<()> {
    let text = serde_json::to_string(containers)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    per_backend!(conn, |c| diesel::insert_into(host_discovery::table)
        .values((
            host_discovery::host_id.eq(host_id),
            host_discovery::containers.eq(&text),
            host_discovery::received_at.eq(now),
        ))
        .on_conflict(host_discovery::host_id)
        .do_update()
        .set((
            host_discovery::containers.eq(&text),
            host_discovery::received_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

/// The host's latest report, if one arrived.
pub fn get(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<DiscoveryRow>> {
    per_backend!(conn, |c| host_discovery::table
        .find(host_id)
        .select(DiscoveryRow::as_select())
        .first(c)
        .optional())
}
