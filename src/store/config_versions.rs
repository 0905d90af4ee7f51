//! Queries on the config version columns of `hosts`: the version of what
//! the host's `config.update` carries (repository URL, user name,
//! password, credential, hook shell) and the newest version its agent
//! acked. The version is bumped by triggers (migration `config_versions`)
//! on every write that may change that content, whichever store function
//! makes it; this module reads it and records acks.

use diesel::prelude::*;

use super::schema::hosts;
use super::DbConnection;

/// A host's config versions (the API's `config_version` and
/// `acked_config_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = hosts)]
pub struct HostConfigVersion {
    /// The current version (starts at 1).
    pub config_version: i64,
    /// When it was last bumped; `None` since enrolment.
    pub config_changed_at: Option<i64>,
    /// The newest version the agent acked (0: never).
    pub acked_config_version: i64,
    /// When it acked it.
    pub config_acked_at: Option<i64>,
}

impl HostConfigVersion {
    /// Whether the agent acked the current version.
    pub fn applied(&self) -> bool {
        self.acked_config_version >= self.config_version
    }
}

/// The host's config versions, `None` if there is no such host.
pub fn get(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<HostConfigVersion>> {
    hosts::table
        .find(host_id)
        .select(HostConfigVersion::as_select())
        .first(conn)
        .optional()
}

/// Records the agent's `ack` of the `config.update` of `version`: raises
/// the acked version to it, never above the current one nor below what
/// was acked already (a late ack of an older push changes nothing). True
/// if it was recorded.
pub fn ack(conn: &mut DbConnection, host_id: &str, version: i64, now: i64) -> QueryResult<bool> {
    diesel::update(
        hosts::table
            .find(host_id)
            .filter(hosts::config_version.ge(version))
            .filter(hosts::acked_config_version.lt(version)),
    )
    .set((
        hosts::acked_config_version.eq(version),
        hosts::config_acked_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}
