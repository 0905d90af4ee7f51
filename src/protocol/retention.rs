//! Restic's keep options as the wire object `retention_policy`, and the
//! check that restic would accept them.

use serde::{Deserialize, Serialize};

use super::decode::clip;

/// Restic's keep options, the wire object `retention_policy`. Absent keys are
/// omitted on the wire; a policy with no key set is [`is_empty`](Self::is_empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// `--keep-last n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// `--keep-hourly n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// `--keep-daily n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// `--keep-weekly n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// `--keep-monthly n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// `--keep-yearly n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// `--keep-within d`, a restic duration such as `"30d"` or `"1y6m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
}

/// A retention policy restic would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRetention {
    /// `keep_within` is not a restic duration (digits and a unit among
    /// `y`, `m`, `d`, `h`, repeated).
    #[error("keep_within {0:?} is not a restic duration such as \"30d\" or \"1y6m\"")]
    KeepWithin(String),
}

impl RetentionPolicy {
    /// True when no keep option is set (restic's `forget` would remove
    /// nothing and complain).
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_hourly.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
            && self.keep_yearly.is_none()
            && self.keep_within.is_none()
    }

    /// Restic's command-line flags for this policy, in restic's order:
    /// `["--keep-daily", "7", "--keep-within", "30d"]`.
    pub fn keep_flags(&self) -> Vec<String> {
        let counts = [
            ("--keep-last", self.keep_last),
            ("--keep-hourly", self.keep_hourly),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
            ("--keep-monthly", self.keep_monthly),
            ("--keep-yearly", self.keep_yearly),
        ];
        let mut flags = Vec::new();
        for (flag, count) in counts {
            if let Some(count) = count {
                flags.push(flag.to_owned());
                flags.push(count.to_string());
            }
        }
        if let Some(within) = &self.keep_within {
            flags.push("--keep-within".to_owned());
            flags.push(within.clone());
        }
        flags
    }

    /// Checks what restic would reject: a `keep_within` that is not a
    /// duration (it would also be read as a flag if it began with `-`).
    pub fn validate(&self) -> Result<(), InvalidRetention> {
        match &self.keep_within {
            Some(within) if !is_restic_duration(within) => {
                Err(InvalidRetention::KeepWithin(clip(within)))
            }
            _ => Ok(()),
        }
    }
}

/// Restic's duration grammar: one or more `<digits><unit>`, unit in `ymdh`.
fn is_restic_duration(text: &str) -> bool {
    let mut digits = 0usize;
    let mut groups = 0usize;
    for byte in text.bytes() {
        match byte {
            b'0'..=b'9' => digits += 1,
            b'y' | b'm' | b'd' | b'h' if digits > 0 => {
                digits = 0;
                groups += 1;
            }
            _ => return false,
        }
    }
    digits == 0 && groups > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // --- retention policy -------------------------------------------------

    /// `keep_flags` lists restic's flags in order; absent rules give none.
    #[test]
    fn retention_keep_flags() {
        let policy = RetentionPolicy {
            keep_last: Some(3),
            keep_hourly: Some(24),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: Some(2),
            keep_within: Some("30d".to_owned()),
        };
        assert_eq!(
            policy.keep_flags(),
            [
                "--keep-last",
                "3",
                "--keep-hourly",
                "24",
                "--keep-daily",
                "7",
                "--keep-weekly",
                "4",
                "--keep-monthly",
                "12",
                "--keep-yearly",
                "2",
                "--keep-within",
                "30d",
            ]
        );
        let policy = RetentionPolicy {
            keep_daily: Some(7),
            keep_within: Some("1y6m".to_owned()),
            ..RetentionPolicy::default()
        };
        assert_eq!(
            policy.keep_flags(),
            ["--keep-daily", "7", "--keep-within", "1y6m"]
        );
        assert!(!policy.is_empty());
        assert!(RetentionPolicy::default().is_empty());
        assert!(RetentionPolicy::default().keep_flags().is_empty());
    }

    /// The policy serialises to the wire object with absent keys omitted.
    #[test]
    fn retention_wire_object() {
        let policy = RetentionPolicy {
            keep_weekly: Some(4),
            keep_within: Some("2h".to_owned()),
            ..RetentionPolicy::default()
        };
        assert_eq!(
            serde_json::to_value(&policy).unwrap(),
            json!({"keep_weekly": 4, "keep_within": "2h"})
        );
        assert_eq!(
            serde_json::to_value(RetentionPolicy::default()).unwrap(),
            json!({})
        );
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"keep_last":-1}"#).is_err());
    }

    /// `validate` accepts restic durations and rejects anything else.
    #[test]
    fn retention_validate_keep_within() {
        for good in ["30d", "1y6m", "2h", "1y2m3d4h", "0d"] {
            let policy = RetentionPolicy {
                keep_within: Some(good.to_owned()),
                ..RetentionPolicy::default()
            };
            assert_eq!(policy.validate(), Ok(()), "{good}");
        }
        for bad in [
            "", "d", "30", "-1d", "30x", "30d ", "--prune", "1.5d", "30D",
        ] {
            let policy = RetentionPolicy {
                keep_within: Some(bad.to_owned()),
                ..RetentionPolicy::default()
            };
            assert_eq!(
                policy.validate(),
                Err(InvalidRetention::KeepWithin(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(RetentionPolicy::default().validate(), Ok(()));
    }
}
