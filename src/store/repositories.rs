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
use super::paged::PagedDsl;
use super::schema::{hosts, repositories};
use super::{write_transaction, DbConnection};
use crate::ids::HostId;

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

/// Sets the host's private repository: updates the one it points to, or
/// creates one with `form.id` and points the host to it (also when it
/// pointed to a shared one), in one transaction.
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
        // A host on a shared repository that is given one inline gets a
        // private one of its own; the shared one is left as it is.
        let current = match current {
            Some(id) if get_shared(conn, &id)?.is_some() => None,
            other => other,
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
                // The host's own choice from now on: no policy takes it back.
                diesel::update(hosts::table.find(host_id))
                    .set((
                        hosts::repository_id.eq(&repository.id),
                        hosts::repository_policy_id.eq(None::<String>),
                        hosts::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                Ok(Some(repository))
            }
        }
    })
}

/// The shared repositories (those with a name), by name.
pub fn list_shared(conn: &mut DbConnection) -> QueryResult<Vec<Repository>> {
    repositories::table
        .filter(repositories::name.is_not_null())
        .order(repositories::name.asc())
        .select(Repository::as_select())
        .load(conn)
}

/// The shared repository with this id (`None` for a private one).
pub fn get_shared(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Repository>> {
    Ok(get(conn, id)?.filter(Repository::is_shared))
}

/// What a shared repository's create or update writes; `None` keeps a
/// field (on creation: NULL). Secrets are sealed with `id` already.
#[derive(Debug, Default)]
pub struct SharedForm {
    pub name: Option<String>,
    pub url: Option<String>,
    pub username: Option<Option<String>>,
    pub password_sealed: Option<Vec<u8>>,
    pub credential_sealed: Option<Option<Vec<u8>>>,
    pub maintenance_host_id: Option<Option<String>>,
}

#[derive(AsChangeset)]
#[diesel(table_name = repositories)]
struct SharedChanges<'a> {
    name: Option<&'a str>,
    url: Option<&'a str>,
    username: Option<Option<&'a str>>,
    password_sealed: Option<&'a [u8]>,
    credential_sealed: Option<Option<&'a [u8]>>,
    maintenance_host_id: Option<Option<&'a str>>,
    updated_at: i64,
}

/// Creates a shared repository with `id` (name and URL required). A
/// duplicate name is a `UniqueViolation`.
pub fn insert_shared(
    conn: &mut DbConnection,
    id: &str,
    form: &SharedForm,
    now: i64,
) -> QueryResult<Repository> {
    let row = NewRow {
        id,
        url: form.url.as_deref().unwrap_or_default(),
        username: form.username.as_ref().and_then(|u| u.as_deref()),
        password_sealed: form.password_sealed.as_deref(),
        credential_sealed: form.credential_sealed.as_ref().and_then(|c| c.as_deref()),
        hook_shell: None,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(repositories::table)
        .values(&row)
        .execute(conn)?;
    update_shared(conn, id, form, now)?.ok_or(DieselError::NotFound)
}

/// Updates a shared repository; `None` if there is none with this id.
pub fn update_shared(
    conn: &mut DbConnection,
    id: &str,
    form: &SharedForm,
    now: i64,
) -> QueryResult<Option<Repository>> {
    let changes = SharedChanges {
        name: form.name.as_deref(),
        url: form.url.as_deref(),
        username: form.username.as_ref().map(|u| u.as_deref()),
        password_sealed: form.password_sealed.as_deref(),
        credential_sealed: form.credential_sealed.as_ref().map(|c| c.as_deref()),
        maintenance_host_id: form.maintenance_host_id.as_ref().map(|m| m.as_deref()),
        updated_at: now,
    };
    diesel::update(repositories::table.find(id))
        .set(&changes)
        .returning(repositories::all_columns)
        .get_result(conn)
        .optional()
}

/// Ids of the hosts (not revoked) that use this repository.
pub fn hosts_using(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<String>> {
    hosts::table
        .filter(hosts::repository_id.eq(id))
        .filter(hosts::revoked_at.is_null())
        .order(hosts::id.asc())
        .select(hosts::id)
        .load(conn)
}

/// The live hosts using it by their own choice (not given it by a
/// policy: `store::policy_sync`).
pub fn hosts_choosing(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<String>> {
    hosts::table
        .filter(hosts::repository_id.eq(id))
        .filter(hosts::repository_policy_id.is_null())
        .filter(hosts::revoked_at.is_null())
        .order(hosts::id.asc())
        .select(hosts::id)
        .load(conn)
}

/// How many live hosts use each of these repositories and the first
/// `first` of them (id, host name) in natural order of the names, for the
/// Repositories page (a repository shared by thousands of hosts lists a
/// few and counts the rest).
pub fn attached_summary(
    conn: &mut DbConnection,
    id: &str,
    first: i64,
) -> QueryResult<(i64, Vec<(String, String)>)> {
    let live = hosts::table
        .filter(hosts::repository_id.eq(id))
        .filter(hosts::revoked_at.is_null());
    let total: i64 = live.count().get_result(conn)?;
    let names = live
        .order((hosts::sort_key.asc(), hosts::id.asc()))
        .select((hosts::id, hosts::hostname))
        .paged(first, 0)
        .load(conn)?;
    Ok((total, names))
}

/// Deletes a repository no host points to (revoked hosts let go of it);
/// whether it existed.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::update(hosts::table.filter(hosts::repository_id.eq(id)))
        .set((
            hosts::repository_id.eq(None::<String>),
            hosts::repository_policy_id.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(diesel::delete(repositories::table.find(id)).execute(conn)? > 0)
}

/// Points the host to an existing repository (a shared one), as its own
/// choice (a policy's repository no longer applies to it).
pub fn attach(conn: &mut DbConnection, host_id: &HostId, id: &str, now: i64) -> QueryResult<bool> {
    let changed = diesel::update(hosts::table.find(host_id))
        .set((
            hosts::repository_id.eq(id),
            hosts::repository_policy_id.eq(None::<String>),
            hosts::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(changed > 0)
}
