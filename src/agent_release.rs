//! The newest agent release the server knows (`--agent-latest-version`,
//! default the server's own version; `--agent-package-url`,
//! `--agent-changelog-url`) and which agents are older than it, by
//! semantic-version precedence (issue 14 §4).
//!
//! An agent is told of an update (`agent.update_available`, once per
//! session) and its host shows `update_available` only when its
//! `hello.agent_version` is strictly older: an equal or newer agent never
//! hears of a "downgrade", and a version that is not semantic-version text
//! gets no notice (the session logs a warning). Pre-releases order as
//! semver says (`0.2.0-rc.1` < `0.2.0`); build metadata is ignored.

use std::cmp::Ordering;

use semver::Version;

use crate::protocol::AgentUpdateAvailable;

/// The newest agent release and where to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRelease {
    /// The newest agent version.
    pub latest: Version,
    /// Where the package comes from (`agent.update_available.package_url`;
    /// empty when the server was given none).
    pub package_url: String,
    /// What changed (`agent.update_available.changelog`).
    pub changelog_url: Option<String>,
}

/// How an agent's version compares with the newest release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAge {
    /// Strictly older: an update is available.
    Older,
    /// The newest release, or newer (a development build): no notice.
    Current,
    /// Not semantic-version text: no notice, and the reason.
    Unparsable(String),
}

impl Default for AgentRelease {
    /// The server's own version, no package or changelog URL.
    fn default() -> Self {
        AgentRelease {
            latest: own_version(),
            package_url: String::new(),
            changelog_url: None,
        }
    }
}

/// The server's version (`CARGO_PKG_VERSION`, always semver text).
fn own_version() -> Version {
    Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// Parses a version as the agent or the operator writes it.
pub fn parse_version(text: &str) -> Result<Version, semver::Error> {
    Version::parse(text.trim())
}

impl AgentRelease {
    /// How `agent_version` compares with [`AgentRelease::latest`].
    pub fn age(&self, agent_version: &str) -> AgentAge {
        match parse_version(agent_version) {
            Ok(version) => match version.cmp_precedence(&self.latest) {
                Ordering::Less => AgentAge::Older,
                Ordering::Equal | Ordering::Greater => AgentAge::Current,
            },
            Err(e) => AgentAge::Unparsable(e.to_string()),
        }
    }

    /// Whether an update is available for an agent of this version (no
    /// version yet, or one that cannot be read: no).
    pub fn update_available(&self, agent_version: Option<&str>) -> bool {
        agent_version.is_some_and(|v| self.age(v) == AgentAge::Older)
    }

    /// The versions among `versions` that are older than the release (the
    /// `?update_available=true` filter: one look at the fleet's distinct
    /// versions, then an `IN` on the stored column).
    pub fn older_of<'a>(&self, versions: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        versions
            .into_iter()
            .filter(|v| self.age(v) == AgentAge::Older)
            .map(str::to_owned)
            .collect()
    }

    /// The `agent.update_available` this release makes.
    pub fn notice(&self) -> AgentUpdateAvailable {
        AgentUpdateAvailable {
            latest_version: self.latest.to_string(),
            package_url: self.package_url.clone(),
            changelog: self.changelog_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(latest: &str) -> AgentRelease {
        AgentRelease {
            latest: parse_version(latest).unwrap(),
            ..AgentRelease::default()
        }
    }

    /// Older, equal and newer versions by semver precedence, not text.
    #[test]
    fn orders_by_semver() {
        let r = release("0.10.0");
        assert_eq!(r.age("0.9.3"), AgentAge::Older);
        assert_eq!(
            r.age("0.2.0"),
            AgentAge::Older,
            "0.2 < 0.10 though '2' > '1'"
        );
        assert_eq!(r.age("0.10.0"), AgentAge::Current);
        assert_eq!(r.age("0.10.1"), AgentAge::Current, "never a downgrade");
        assert_eq!(r.age("1.0.0"), AgentAge::Current);
        assert_eq!(r.age(" 0.9.0 "), AgentAge::Older, "surrounding blanks");
    }

    /// A pre-release is older than its release and newer than the one
    /// before; build metadata does not count.
    #[test]
    fn pre_releases_and_build_metadata() {
        let r = release("0.2.0");
        assert_eq!(r.age("0.2.0-rc.1"), AgentAge::Older);
        assert_eq!(r.age("0.2.0-alpha"), AgentAge::Older);
        assert_eq!(r.age("0.2.0+build.7"), AgentAge::Current);
        assert_eq!(r.age("0.2.1-rc.1"), AgentAge::Current);
        let pre = release("0.2.0-rc.2");
        assert_eq!(pre.age("0.2.0-rc.1"), AgentAge::Older);
        assert_eq!(
            pre.age("0.2.0-rc.10"),
            AgentAge::Current,
            "numeric ids compare as numbers"
        );
        assert_eq!(pre.age("0.2.0"), AgentAge::Current);
    }

    /// Text that is not a semantic version gets no notice.
    #[test]
    fn garbage_is_unparsable() {
        let r = release("0.2.0");
        for garbage in ["", "latest", "0.1", "v0.1.0", "0.1.0.4", "01.0.0", "0.1.0-"] {
            assert!(
                matches!(r.age(garbage), AgentAge::Unparsable(_)),
                "{garbage:?}"
            );
            assert!(!r.update_available(Some(garbage)), "{garbage:?}");
        }
        assert!(!r.update_available(None));
        assert!(r.update_available(Some("0.1.0")));
    }

    /// The filter keeps the older versions only.
    #[test]
    fn older_of_the_fleet() {
        let r = release("1.2.0");
        let fleet = ["1.1.9", "1.2.0", "garbage", "1.2.0-rc.1", "2.0.0"];
        assert_eq!(r.older_of(fleet), ["1.1.9", "1.2.0-rc.1"]);
    }

    /// The default release is the server's own version; the notice
    /// carries the URLs.
    #[test]
    fn default_and_notice() {
        let d = AgentRelease::default();
        assert_eq!(d.latest.to_string(), env!("CARGO_PKG_VERSION"));
        let r = AgentRelease {
            package_url: "https://apt.example/".to_owned(),
            changelog_url: Some("https://example/changes".to_owned()),
            ..release("0.3.0")
        };
        let notice = r.notice();
        assert_eq!(notice.latest_version, "0.3.0");
        assert_eq!(notice.package_url, "https://apt.example/");
        assert_eq!(notice.changelog.as_deref(), Some("https://example/changes"));
    }
}
