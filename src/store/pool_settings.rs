//! How the connection pool holds its connections (issue 19 §4): size,
//! timeouts, and PostgreSQL's per-session settings. Read from the server's
//! configuration (`--pool-*`, `--statement-timeout-seconds`,
//! `--database-application-name`) and applied by [`super::connect_with`].

use std::time::Duration;

/// How the pool holds its connections (issue 19 §4): the defaults are
/// r2d2's, plus the name PostgreSQL shows for the server's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections at most.
    pub max_size: u32,
    /// How long a caller waits for a free connection (or for the database
    /// to come back) before its request fails.
    pub connection_timeout: Duration,
    /// An idle connection is closed after this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// PostgreSQL only: a statement running longer is cancelled by the
    /// database (`None`: no limit, PostgreSQL's default).
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL only: the `application_name` of every connection, as
    /// `pg_stat_activity` shows it.
    pub application_name: String,
    /// PostgreSQL only: how prepared statements are planned.
    pub plan_cache_mode: PlanCacheMode,
}

/// PostgreSQL's `plan_cache_mode` for the server's connections
/// (`--database-plan-cache-mode`).
///
/// The default, [`PlanCacheMode::ForceGenericPlan`], plans each prepared
/// statement once per connection whatever its values, as SQLite's build
/// does (`SQLITE_ENABLE_QPSG`, `store::sqlite_build`): left to choose
/// (`auto`), PostgreSQL planned most list statements again at every
/// execution (`LIMIT $n`, skewed columns such as `online`), 0.1-0.2 ms
/// each, for the same plan (issue 19, BENCHMARKS.md). `auto` and
/// `force_custom_plan` are there for a database whose data makes a
/// generic plan a bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanCacheMode {
    #[default]
    ForceGenericPlan,
    Auto,
    ForceCustomPlan,
}

impl PlanCacheMode {
    pub const ALL: [PlanCacheMode; 3] = [
        PlanCacheMode::ForceGenericPlan,
        PlanCacheMode::Auto,
        PlanCacheMode::ForceCustomPlan,
    ];

    /// PostgreSQL's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanCacheMode::ForceGenericPlan => "force_generic_plan",
            PlanCacheMode::Auto => "auto",
            PlanCacheMode::ForceCustomPlan => "force_custom_plan",
        }
    }

    /// The mode named `text`, or why not (the names it could be).
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|m| m.as_str()).collect();
                format!("expected one of {}, got {text:?}", names.join(", "))
            })
    }
}

/// Default [`PoolSettings::connection_timeout`] (r2d2's).
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`PoolSettings::idle_timeout`] (r2d2's).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default [`PoolSettings::application_name`].
pub const DEFAULT_APPLICATION_NAME: &str = "restic-manager";

impl PoolSettings {
    /// The defaults with `max_size` connections.
    pub fn with_size(max_size: u32) -> Self {
        PoolSettings {
            max_size,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            statement_timeout: None,
            application_name: DEFAULT_APPLICATION_NAME.to_owned(),
            plan_cache_mode: PlanCacheMode::default(),
        }
    }

    /// The statements that set these on a new PostgreSQL connection.
    /// `application_name` is checked by [`check_application_name`] when
    /// the configuration is read; its quotes are doubled here all the same.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) fn postgres_setup(&self) -> String {
        // `plan_cache_mode` needs PostgreSQL 12 or newer.
        let mut sql = format!(
            "SET application_name = '{}'; SET plan_cache_mode = {};",
            self.application_name.replace('\'', "''"),
            self.plan_cache_mode.as_str()
        );
        if let Some(timeout) = self.statement_timeout {
            sql.push_str(&format!(
                " SET statement_timeout = {};",
                timeout.as_millis()
            ));
        }
        sql
    }
}

/// Why an `application_name` is refused: PostgreSQL keeps 63 bytes of
/// printable ASCII.
pub fn check_application_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!("is {} bytes long (at most 63)", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(format!("holds {c:?} (printable ASCII only)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's session settings: the name quoted, the statement
    /// timeout in milliseconds only when set.
    #[test]
    fn postgres_session_settings() {
        let mut settings = PoolSettings::with_size(4);
        assert_eq!(
            settings.postgres_setup(),
            "SET application_name = 'restic-manager'; SET plan_cache_mode = force_generic_plan;"
        );
        settings.application_name = "rm 'a'".into();
        settings.statement_timeout = Some(Duration::from_secs(30));
        settings.plan_cache_mode = PlanCacheMode::Auto;
        assert_eq!(
            settings.postgres_setup(),
            "SET application_name = 'rm ''a'''; SET plan_cache_mode = auto; \
             SET statement_timeout = 30000;"
        );
    }

    /// The plan cache modes read back from their names; others are
    /// refused naming the three.
    #[test]
    fn plan_cache_modes_parse() {
        for mode in PlanCacheMode::ALL {
            assert_eq!(PlanCacheMode::parse(mode.as_str()), Ok(mode));
        }
        let e = PlanCacheMode::parse("generic").unwrap_err();
        assert!(
            e.contains("force_generic_plan, auto, force_custom_plan"),
            "{e}"
        );
    }

    /// An application name PostgreSQL would cut or mangle is refused.
    #[test]
    fn application_names_are_checked() {
        assert!(check_application_name("restic-manager eu-1").is_ok());
        assert!(check_application_name("").is_err());
        assert!(check_application_name(&"x".repeat(64)).is_err());
        let e = check_application_name("a\nb").unwrap_err();
        assert!(e.contains("printable ASCII"), "{e}");
        assert!(check_application_name("é").is_err());
    }
}
