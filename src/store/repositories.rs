//! Queries on `repositories`: the restic repository a host backs up to
//! (URL, user name, sealed password and credential, hook shell). A host
//! points to its repository through `hosts.repository_id`, so that several
//! hosts may later share one.
//!
//! Secrets arrive sealed by `crypto` (associated data: the repository
//! id) and are stored as the exact bytes given; this module never sees a
//! plaintext secret.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::models::{Repository, RepositoryUpsert};
use super::schema::{hosts, repositories};
use super::{write_transaction, DbConnection};

/// The repository with this id.
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Repository>> {
    repositories::table
        .find(id)
        .select(Repository::as_select())
        .first(conn)
        .optional()
}

/// The repository the host points to, if it has one.
pub fn get_for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<Repository>> {
    hosts::table
        .inner_join(repositories::table)
        .filter(hosts::id.eq(host_id))
        .select(Repository::as_select())
        .first(conn)
        .optional()
}

#[derive(AsChangeset)]
#[diesel(table_name = repositories)]
struct Changes<'a> {
    url: &'a str,
    username: Option<Option<&'a str>>,
    password_sealed: Option<Option<&'a [u8]>>,
    credential_sealed: Option<Option<&'a [u8]>>,
    hook_shell: Option<Option<&'a str>>,
    updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = repositories)]
struct NewRow<'a> {
    id: &'a str,
    url: &'a str,
    username: Option<&'a str>,
    password_sealed: Option<&'a [u8]>,
    credential_sealed: Option<&'a [u8]>,
    hook_shell: Option<&'a str>,
    created_at: i64,
    updated_at: i64,
}

/// Sets the host's repository: updates the one it points to, or creates
/// one with `form.id` and points the host to it, in one transaction.
/// Fields left `None` in the form keep their value (NULL on creation).
/// `None` if the host does not exist.
///
/// `form.id` must be the id the secrets were sealed with: the host's
/// current repository id when it has one. If the host points to a
/// different repository (another writer got there first) nothing is
/// written and the error is a `CheckViolation` saying so, because secrets
/// sealed for one id cannot be opened under another.
pub fn upsert_for_host(
    conn: &mut DbConnection,
    host_id: &str,
    form: &RepositoryUpsert,
    now: i64,
) -> QueryResult<Option<Repository>> {
    write_transaction(conn, |conn| {
        let current: Option<Option<String>> = hosts::table
            .find(host_id)
            .select(hosts::repository_id)
            .first(conn)
            .optional()?;
        let Some(current) = current else {
            return Ok(None);
        };
        match current {
            Some(existing) if existing != form.id => Err(DieselError::DatabaseError(
                DatabaseErrorKind::CheckViolation,
                Box::new(format!(
                    "host {host_id} uses repository {existing}, not {}; \
                     seal the secrets for the current repository id",
                    form.id
                )),
            )),
            Some(existing) => {
                let changes = Changes {
                    url: &form.url,
                    username: form.username.as_ref().map(|u| u.as_deref()),
                    password_sealed: form.password_sealed.as_ref().map(|p| p.as_deref()),
                    credential_sealed: form.credential_sealed.as_ref().map(|c| c.as_deref()),
                    hook_shell: form.hook_shell.as_ref().map(|h| h.as_deref()),
                    updated_at: now,
                };
                diesel::update(repositories::table.find(&existing))
                    .set(&changes)
                    .returning(repositories::all_columns)
                    .get_result(conn)
                    .map(Some)
            }
            None => {
                let row = NewRow {
                    id: &form.id,
                    url: &form.url,
                    username: form.username.as_ref().and_then(|u| u.as_deref()),
                    password_sealed: form.password_sealed.as_ref().and_then(|p| p.as_deref()),
                    credential_sealed: form.credential_sealed.as_ref().and_then(|c| c.as_deref()),
                    hook_shell: form.hook_shell.as_ref().and_then(|h| h.as_deref()),
                    created_at: now,
                    updated_at: now,
                };
                let repository: Repository = diesel::insert_into(repositories::table)
                    .values(&row)
                    .returning(repositories::all_columns)
                    .get_result(conn)?;
                diesel::update(hosts::table.find(host_id))
                    .set((
                        hosts::repository_id.eq(&repository.id),
                        hosts::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                Ok(Some(repository))
            }
        }
    })
}
