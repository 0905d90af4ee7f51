//! The database pool's settings (issue 19 §4): `--pool-size`,
//! `--pool-connection-timeout-seconds`, `--pool-idle-timeout-seconds`,
//! `--statement-timeout-seconds`, `--database-application-name` and
//! `--database-plan-cache-mode`, each
//! also an environment variable and a key of the TOML file.

use std::time::Duration;

use crate::store::{check_application_name, PlanCacheMode, PoolSettings};

use super::{ConfigError, FileConfig, ServeArgs, DEFAULT_POOL_SIZE};

/// Longest connection wait, idle time or statement timeout accepted (a
/// day): anything longer is a typo in the unit.
const MAX_SECONDS: u64 = 24 * 60 * 60;

/// The pool's settings from the flags (or environment), the file and the
/// defaults, each checked with the setting named.
pub(super) fn resolve(serve: &ServeArgs, file: &FileConfig) -> Result<PoolSettings, ConfigError> {
    let defaults = PoolSettings::with_size(DEFAULT_POOL_SIZE);
    let max_size = serve
        .pool_size
        .or(file.pool_size)
        .unwrap_or(defaults.max_size);
    if max_size == 0 {
        return Err(invalid("pool_size", "must be at least 1"));
    }
    let seconds = |name: &'static str, value: Option<u64>| match value {
        Some(s) if s > MAX_SECONDS => Err(invalid(
            name,
            &format!("{s} is too long (at most {MAX_SECONDS} seconds)"),
        )),
        other => Ok(other.map(Duration::from_secs)),
    };
    let connection_timeout = match seconds(
        "pool_connection_timeout_seconds",
        serve
            .pool_connection_timeout_seconds
            .or(file.pool_connection_timeout_seconds),
    )? {
        Some(t) if t.is_zero() => {
            return Err(invalid(
                "pool_connection_timeout_seconds",
                "must be at least 1",
            ))
        }
        Some(t) => t,
        None => defaults.connection_timeout,
    };
    // 0 turns each of these off.
    let idle_timeout = match seconds(
        "pool_idle_timeout_seconds",
        serve
            .pool_idle_timeout_seconds
            .or(file.pool_idle_timeout_seconds),
    )? {
        Some(t) if t.is_zero() => None,
        Some(t) => Some(t),
        None => defaults.idle_timeout,
    };
    let statement_timeout = seconds(
        "statement_timeout_seconds",
        serve
            .statement_timeout_seconds
            .or(file.statement_timeout_seconds),
    )?
    .filter(|t| !t.is_zero());
    let application_name = serve
        .database_application_name
        .clone()
        .or_else(|| file.database_application_name.clone())
        .unwrap_or(defaults.application_name);
    check_application_name(&application_name)
        .map_err(|e| invalid("database_application_name", &e))?;
    let plan_cache_mode = match serve
        .database_plan_cache_mode
        .as_deref()
        .or(file.database_plan_cache_mode.as_deref())
    {
        Some(text) => {
            PlanCacheMode::parse(text).map_err(|e| invalid("database_plan_cache_mode", &e))?
        }
        None => defaults.plan_cache_mode,
    };
    Ok(PoolSettings {
        max_size,
        connection_timeout,
        idle_timeout,
        statement_timeout,
        application_name,
        plan_cache_mode,
    })
}

fn invalid(name: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults, flags over the file, 0 turning the optional ones off, and
    /// each bad value refused with the setting named.
    #[test]
    fn pool_settings_resolve_and_are_checked() {
        let none = ServeArgs::default();
        let file = FileConfig::default();
        let d = resolve(&none, &file).unwrap();
        assert_eq!(d, PoolSettings::with_size(DEFAULT_POOL_SIZE));

        let file = FileConfig {
            pool_size: Some(3),
            pool_idle_timeout_seconds: Some(0),
            statement_timeout_seconds: Some(60),
            database_application_name: Some("rm-file".into()),
            database_plan_cache_mode: Some("force_custom_plan".into()),
            ..FileConfig::default()
        };
        let serve = ServeArgs {
            pool_size: Some(20),
            pool_connection_timeout_seconds: Some(5),
            database_plan_cache_mode: Some("auto".into()),
            ..ServeArgs::default()
        };
        let s = resolve(&serve, &file).unwrap();
        assert_eq!(s.max_size, 20);
        assert_eq!(s.connection_timeout, Duration::from_secs(5));
        assert_eq!(s.idle_timeout, None);
        assert_eq!(s.statement_timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.application_name, "rm-file");
        assert_eq!(s.plan_cache_mode, PlanCacheMode::Auto, "the flag wins");
        let from_file = resolve(&ServeArgs::default(), &file).unwrap();
        assert_eq!(from_file.plan_cache_mode, PlanCacheMode::ForceCustomPlan);

        let bad = |serve: ServeArgs| match resolve(&serve, &FileConfig::default()) {
            Err(ConfigError::Invalid { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        let with = |f: fn(&mut ServeArgs)| {
            let mut s = ServeArgs::default();
            f(&mut s);
            s
        };
        assert_eq!(bad(with(|s| s.pool_size = Some(0))), "pool_size");
        assert_eq!(
            bad(with(|s| s.pool_connection_timeout_seconds = Some(0))),
            "pool_connection_timeout_seconds"
        );
        assert_eq!(
            bad(with(|s| s.pool_idle_timeout_seconds = Some(MAX_SECONDS + 1))),
            "pool_idle_timeout_seconds"
        );
        assert_eq!(
            bad(with(|s| s.statement_timeout_seconds = Some(u64::MAX))),
            "statement_timeout_seconds"
        );
        assert_eq!(
            bad(with(|s| s.database_application_name = Some("a\tb".into()))),
            "database_application_name"
        );
        assert_eq!(
            bad(with(|s| s.database_plan_cache_mode = Some("generic".into()))),
            "database_plan_cache_mode"
        );
    }
}
