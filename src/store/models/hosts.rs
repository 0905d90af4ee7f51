//! Rows and forms of a host and its restic repository: the host as
//! enrolled and as its agent last described it, the operator's patch, and
//! the repository with its sealed secrets (`***` in `Debug`).

use std::collections::BTreeMap;
use std::fmt;

use diesel::prelude::*;

use super::REDACTED;
use crate::ids::HostId;
use crate::store::json::Json;
use crate::store::schema::{hosts, repositories};

/// A restic repository; a host points to one through `repository_id`.
/// The secrets are sealed by `crypto.rs` with this row's id as associated
/// data; the store keeps the sealed bytes exactly as given.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = repositories)]
pub struct Repository {
    pub id: String,
    pub url: String,
    pub username: Option<String>,
    pub password_sealed: Option<Vec<u8>>,
    pub credential_sealed: Option<Vec<u8>>,
    pub hook_shell: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set for a shared repository; `None` for a host's private one.
    pub name: Option<String>,
    /// The host that runs the repository's prune and check when online.
    pub maintenance_host_id: Option<String>,
}

impl Repository {
    /// Whether several hosts may use it (it has a name).
    pub fn is_shared(&self) -> bool {
        self.name.is_some()
    }

    /// Whether a password is stored (the API's `password_set`).
    pub fn password_set(&self) -> bool {
        self.password_sealed.is_some()
    }

    /// Whether a credential is stored (the API's `credential_set`).
    pub fn credential_set(&self) -> bool {
        self.credential_sealed.is_some()
    }
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password_set", &self.password_set())
            .field("credential_set", &self.credential_set())
            .field("hook_shell", &self.hook_shell)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("name", &self.name)
            .field("maintenance_host_id", &self.maintenance_host_id)
            .finish()
    }
}

/// What `repositories::upsert_for_host` writes. `id` is the id the caller
/// sealed the secrets with: the host's current repository id if it has one
/// (from `repositories::get_for_host`), else a fresh [`crate::store::new_id`].
/// `None` leaves a field as it is (on creation: NULL); `Some(None)` clears it.
#[derive(Clone, Default)]
pub struct RepositoryUpsert {
    pub id: String,
    pub url: String,
    pub username: Option<Option<String>>,
    pub password_sealed: Option<Option<Vec<u8>>>,
    pub credential_sealed: Option<Option<Vec<u8>>>,
    pub hook_shell: Option<Option<String>>,
}

/// A host: an enrolled agent and what it last told about itself.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = hosts)]
pub struct Host {
    pub id: HostId,
    pub hostname: String,
    pub display_name: Option<String>,
    /// The operator's labels (a JSON object in the column).
    #[diesel(deserialize_as = Json<BTreeMap<String, String>>)]
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    pub agent_version: Option<String>,
    pub restic_version: Option<String>,
    pub boot_time: Option<i64>,
    /// The agent's capabilities (a JSON list in the column).
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub capabilities: Vec<String>,
    /// SHA-256 (hex) of the agent token.
    pub agent_token_hash: String,
    pub repository_id: Option<String>,
    pub online: bool,
    pub last_seen_at: Option<i64>,
    pub enrolled_at: i64,
    pub updated_at: i64,
    /// Set when the host is revoked: its token no longer authenticates.
    pub revoked_at: Option<i64>,
}

impl Host {
    /// Whether the agent announced `capability` in its last `hello`
    /// (`protocol::CAPABILITY_*`).
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// `Ok` when the agent announced `capability`; else the refusal every
    /// caller turns into 409 `agent_lacks_capability` (a dump job for a
    /// driver whose tool the host lacks, any feature an older agent lacks).
    pub fn require_capability(&self, capability: &str) -> Result<(), LacksCapability> {
        if self.has_capability(capability) {
            return Ok(());
        }
        Err(LacksCapability {
            host_id: self.id.to_string(),
            capability: capability.to_owned(),
        })
    }
}

/// A host's agent did not announce a capability a request needs
/// ([`Host::require_capability`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the agent of host {host_id} lacks capability {capability:?} (not in its hello.capabilities)"
)]
pub struct LacksCapability {
    /// The host.
    pub host_id: String,
    /// What it lacks (`dump:postgres`).
    pub capability: String,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("id", &self.id)
            .field("hostname", &self.hostname)
            .field("display_name", &self.display_name)
            .field("labels", &self.labels)
            .field("os", &self.os)
            .field("arch", &self.arch)
            .field("agent_version", &self.agent_version)
            .field("restic_version", &self.restic_version)
            .field("boot_time", &self.boot_time)
            .field("capabilities", &self.capabilities)
            .field("agent_token_hash", &REDACTED)
            .field("repository_id", &self.repository_id)
            .field("online", &self.online)
            .field("last_seen_at", &self.last_seen_at)
            .field("enrolled_at", &self.enrolled_at)
            .field("updated_at", &self.updated_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

/// A host to create at enrolment (offline, no repository yet).
#[derive(Clone, Insertable)]
#[diesel(table_name = hosts)]
pub struct NewHost {
    pub id: HostId,
    pub hostname: String,
    pub display_name: Option<String>,
    #[diesel(serialize_as = Json<BTreeMap<String, String>>)]
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    pub agent_version: Option<String>,
    pub restic_version: Option<String>,
    pub boot_time: Option<i64>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub capabilities: Vec<String>,
    pub agent_token_hash: String,
    pub enrolled_at: i64,
    pub updated_at: i64,
}

impl NewHost {
    /// A Linux amd64 host that has reported nothing yet, enrolled `now`;
    /// complete it with struct update syntax:
    /// `NewHost { arch: .., ..NewHost::new(id, hostname, token_hash, now) }`.
    pub fn new(
        id: impl Into<HostId>,
        hostname: impl Into<String>,
        agent_token_hash: impl Into<String>,
        now: i64,
    ) -> NewHost {
        NewHost {
            id: id.into(),
            hostname: hostname.into(),
            display_name: None,
            labels: BTreeMap::new(),
            os: crate::protocol::OS_LINUX.to_owned(),
            arch: crate::protocol::ARCH_AMD64.to_owned(),
            agent_version: None,
            restic_version: None,
            boot_time: None,
            capabilities: Vec::new(),
            agent_token_hash: agent_token_hash.into(),
            enrolled_at: now,
            updated_at: now,
        }
    }
}

/// What a `hello` updates on the host row (`None`: keep the stored value).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = hosts)]
pub struct HostHello {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: Option<String>,
    pub restic_version: Option<String>,
    pub boot_time: Option<i64>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub capabilities: Option<Vec<String>>,
}

impl HostHello {
    /// `self` applied after `earlier`: what the row holds after both
    /// updates (a field `self` leaves out keeps `earlier`'s).
    pub fn after(&self, earlier: &HostHello) -> HostHello {
        HostHello {
            hostname: self.hostname.clone(),
            os: self.os.clone(),
            arch: self.arch.clone(),
            agent_version: self
                .agent_version
                .clone()
                .or_else(|| earlier.agent_version.clone()),
            restic_version: self
                .restic_version
                .clone()
                .or_else(|| earlier.restic_version.clone()),
            boot_time: self.boot_time.or(earlier.boot_time),
            capabilities: self
                .capabilities
                .clone()
                .or_else(|| earlier.capabilities.clone()),
        }
    }
}

/// An operator's change to a host (`PATCH /hosts/{id}`).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = hosts)]
pub struct HostPatch {
    /// `Some(None)` clears the display name.
    pub display_name: Option<Option<String>>,
    #[diesel(serialize_as = Json<BTreeMap<String, String>>)]
    pub labels: Option<BTreeMap<String, String>>,
}
