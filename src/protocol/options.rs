//! Per-group restic options (issue 12 §5): the allow-listed `options`
//! object of a source group or policy ([`RunOptions`]), the restic flags
//! it becomes in `command.run.args`, and the check of those flags' values
//! that the agent runs again before restic sees them ([`check_option_arg`]).
//!
//! The server validates the object when it is written (the API names the
//! key at fault) and turns it into flags when it creates a job; the agent
//! accepts only the flags below, each with a value of the right form, so
//! a raw string from the server never reaches restic. Options live beside
//! the wire types because both sides must agree on the same rules.

use serde::{Deserialize, Serialize};

/// Every key of an `options` object, in the order the API documents them.
pub const OPTION_KEYS: &[&str] = &[
    "limit_upload_kib",
    "limit_download_kib",
    "one_file_system",
    "exclude_caches",
    "exclude_larger_than",
    "compression",
    "use_fs_snapshot",
];

/// Largest bandwidth limit, in KiB/s (about 1 TiB/s: anything above is a
/// typo, not a limit).
pub const MAX_LIMIT_KIB: u64 = 1 << 30;

/// Most digits of an `exclude_larger_than` number (keeps `n × 2^40` far
/// from restic's 64-bit overflow).
const MAX_SIZE_DIGITS: usize = 12;

/// `--limit-upload=<KiB/s>` (a global flag: backup and forget).
pub const FLAG_LIMIT_UPLOAD: &str = "--limit-upload=";
/// `--limit-download=<KiB/s>`.
pub const FLAG_LIMIT_DOWNLOAD: &str = "--limit-download=";
/// `--one-file-system` (backup).
pub const FLAG_ONE_FILE_SYSTEM: &str = "--one-file-system";
/// `--exclude-caches` (backup).
pub const FLAG_EXCLUDE_CACHES: &str = "--exclude-caches";
/// `--exclude-larger-than=<size>` (backup).
pub const FLAG_EXCLUDE_LARGER_THAN: &str = "--exclude-larger-than=";
/// `--compression=<auto|max|off>` (backup; restic 0.14+, repository v2).
pub const FLAG_COMPRESSION: &str = "--compression=";
/// `--use-fs-snapshot` (backup; Windows VSS only).
pub const FLAG_USE_FS_SNAPSHOT: &str = "--use-fs-snapshot";

/// restic's `--compression` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// restic's default: fast compression (none on a v1 repository).
    Auto,
    /// Best compression, slower.
    Max,
    /// No compression.
    Off,
}

impl Compression {
    /// The wire and flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Auto => "auto",
            Compression::Max => "max",
            Compression::Off => "off",
        }
    }

    /// The mode named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Compression::Auto),
            "max" => Some(Compression::Max),
            "off" => Some(Compression::Off),
            _ => None,
        }
    }
}

/// The `options` object of a source group or policy. Every key is
/// optional; a group's own key overrides its policy's ([`Self::overlaid`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Upload bandwidth limit, KiB/s (`--limit-upload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_upload_kib: Option<u64>,
    /// Download bandwidth limit, KiB/s (`--limit-download`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_download_kib: Option<u64>,
    /// Stay on the file system of each include (`--one-file-system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_file_system: Option<bool>,
    /// Skip folders holding a `CACHEDIR.TAG` (`--exclude-caches`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_caches: Option<bool>,
    /// Skip files larger than this restic size, e.g. `"500M"`
    /// (`--exclude-larger-than`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_larger_than: Option<String>,
    /// `--compression` (restic 0.14+, repository format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Back up from a Windows VSS snapshot (`--use-fs-snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_fs_snapshot: Option<bool>,
}

/// An option value restic would refuse or misread; the message starts
/// with `options.<key>:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("options.{key}: {reason}")]
pub struct InvalidOption {
    /// The key at fault.
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

impl InvalidOption {
    fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }
}

/// Checks a bandwidth limit: 1 ..= [`MAX_LIMIT_KIB`].
fn check_limit(key: &'static str, kib: u64) -> Result<(), InvalidOption> {
    if kib == 0 || kib > MAX_LIMIT_KIB {
        return Err(InvalidOption::new(
            key,
            format!("must be a whole number of KiB/s between 1 and {MAX_LIMIT_KIB}"),
        ));
    }
    Ok(())
}

/// Checks a restic size: 1-12 digits (not all zero) and an optional unit
/// among `k`, `m`, `g`, `t` (either case), as restic's `ParseBytes` reads it.
pub fn check_size(key: &'static str, size: &str) -> Result<(), InvalidOption> {
    let digits = size.strip_suffix(['k', 'K', 'm', 'M', 'g', 'G', 't', 'T']);
    let digits = digits.unwrap_or(size);
    let ok = !digits.is_empty()
        && digits.len() <= MAX_SIZE_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0');
    if !ok {
        let shown: String = size.chars().take(40).collect();
        return Err(InvalidOption::new(
            key,
            format!("{shown:?} is not a restic size such as \"500M\" (a number above 0 and an optional unit k, M, G or T)"),
        ));
    }
    Ok(())
}

impl RunOptions {
    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        *self == RunOptions::default()
    }

    /// Checks every value restic would refuse or misread.
    pub fn validate(&self) -> Result<(), InvalidOption> {
        if let Some(kib) = self.limit_upload_kib {
            check_limit("limit_upload_kib", kib)?;
        }
        if let Some(kib) = self.limit_download_kib {
            check_limit("limit_download_kib", kib)?;
        }
        if let Some(size) = &self.exclude_larger_than {
            check_size("exclude_larger_than", size)?;
        }
        Ok(())
    }

    /// `over`'s keys on top of `base`'s (a group's own options over its
    /// policy's); `None` when neither sets anything.
    pub fn overlaid(base: Option<&Self>, over: Option<&Self>) -> Option<Self> {
        let (b, o) = (base.cloned().unwrap_or_default(), over.cloned());
        let o = o.unwrap_or_default();
        let merged = RunOptions {
            limit_upload_kib: o.limit_upload_kib.or(b.limit_upload_kib),
            limit_download_kib: o.limit_download_kib.or(b.limit_download_kib),
            one_file_system: o.one_file_system.or(b.one_file_system),
            exclude_caches: o.exclude_caches.or(b.exclude_caches),
            exclude_larger_than: o.exclude_larger_than.or(b.exclude_larger_than),
            compression: o.compression.or(b.compression),
            use_fs_snapshot: o.use_fs_snapshot.or(b.use_fs_snapshot),
        };
        (!merged.is_empty()).then_some(merged)
    }

    /// The bandwidth limits as flags (every kind that moves data: backup
    /// and forget).
    pub fn transfer_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(kib) = self.limit_upload_kib {
            args.push(format!("{FLAG_LIMIT_UPLOAD}{kib}"));
        }
        if let Some(kib) = self.limit_download_kib {
            args.push(format!("{FLAG_LIMIT_DOWNLOAD}{kib}"));
        }
        args
    }

    /// Every option as a backup's flags (a `false` switch adds nothing).
    pub fn backup_args(&self) -> Vec<String> {
        let mut args = self.transfer_args();
        if self.one_file_system == Some(true) {
            args.push(FLAG_ONE_FILE_SYSTEM.to_owned());
        }
        if self.exclude_caches == Some(true) {
            args.push(FLAG_EXCLUDE_CACHES.to_owned());
        }
        if let Some(size) = &self.exclude_larger_than {
            args.push(format!("{FLAG_EXCLUDE_LARGER_THAN}{size}"));
        }
        if let Some(mode) = self.compression {
            args.push(format!("{FLAG_COMPRESSION}{}", mode.as_str()));
        }
        if self.use_fs_snapshot == Some(true) {
            args.push(FLAG_USE_FS_SNAPSHOT.to_owned());
        }
        args
    }
}

/// The agent's second check of an argument: when `arg` is one of the
/// option flags with a value, the value must be what [`RunOptions`]
/// allows (a flag outside the options passes; the per-kind allow-list
/// decides about it).
pub fn check_option_arg(arg: &str) -> Result<(), InvalidOption> {
    let limit = |key, value: &str| {
        let kib = value
            .parse::<u64>()
            .map_err(|_| InvalidOption::new(key, format!("{value:?} is not a whole number")))?;
        check_limit(key, kib)
    };
    if let Some(value) = arg.strip_prefix(FLAG_LIMIT_UPLOAD) {
        limit("limit_upload_kib", value)
    } else if let Some(value) = arg.strip_prefix(FLAG_LIMIT_DOWNLOAD) {
        limit("limit_download_kib", value)
    } else if let Some(value) = arg.strip_prefix(FLAG_EXCLUDE_LARGER_THAN) {
        check_size("exclude_larger_than", value)
    } else if let Some(value) = arg.strip_prefix(FLAG_COMPRESSION) {
        match Compression::parse(value) {
            Some(_) => Ok(()),
            None => Err(InvalidOption::new(
                "compression",
                format!("{:?} is not auto, max or off", clip40(value)),
            )),
        }
    } else {
        Ok(())
    }
}

fn clip40(value: &str) -> String {
    value.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> RunOptions {
        RunOptions {
            limit_upload_kib: Some(1024),
            limit_download_kib: Some(2048),
            one_file_system: Some(true),
            exclude_caches: Some(true),
            exclude_larger_than: Some("500M".to_owned()),
            compression: Some(Compression::Max),
            use_fs_snapshot: Some(true),
        }
    }

    /// Every option becomes its restic flag; limits alone for forget; a
    /// `false` switch adds nothing.
    #[test]
    fn options_become_flags() {
        assert_eq!(
            full().backup_args(),
            [
                "--limit-upload=1024",
                "--limit-download=2048",
                "--one-file-system",
                "--exclude-caches",
                "--exclude-larger-than=500M",
                "--compression=max",
                "--use-fs-snapshot"
            ]
        );
        assert_eq!(
            full().transfer_args(),
            ["--limit-upload=1024", "--limit-download=2048"]
        );
        let off = RunOptions {
            one_file_system: Some(false),
            use_fs_snapshot: Some(false),
            ..RunOptions::default()
        };
        assert!(off.backup_args().is_empty());
        assert!(RunOptions::default().backup_args().is_empty());
    }

    /// Every generated flag passes the agent's check.
    #[test]
    fn generated_flags_pass_the_agent_check() {
        for arg in full().backup_args() {
            check_option_arg(&arg).unwrap();
        }
    }

    /// A group's key wins over its policy's; unset keys fall through;
    /// nothing set on either is `None`.
    #[test]
    fn group_overrides_policy() {
        let policy = RunOptions {
            limit_upload_kib: Some(100),
            one_file_system: Some(true),
            ..RunOptions::default()
        };
        let group = RunOptions {
            limit_upload_kib: Some(50),
            one_file_system: Some(false),
            compression: Some(Compression::Off),
            ..RunOptions::default()
        };
        let merged = RunOptions::overlaid(Some(&policy), Some(&group)).unwrap();
        assert_eq!(merged.limit_upload_kib, Some(50));
        assert_eq!(merged.one_file_system, Some(false));
        assert_eq!(merged.compression, Some(Compression::Off));
        let only_policy = RunOptions::overlaid(Some(&policy), None).unwrap();
        assert_eq!(only_policy, policy);
        assert_eq!(RunOptions::overlaid(None, None), None);
        assert_eq!(
            RunOptions::overlaid(Some(&RunOptions::default()), None),
            None
        );
    }

    /// Bad values are refused naming the key.
    #[test]
    fn bad_values_are_refused() {
        let cases = [
            (
                RunOptions {
                    limit_upload_kib: Some(0),
                    ..RunOptions::default()
                },
                "options.limit_upload_kib:",
            ),
            (
                RunOptions {
                    limit_download_kib: Some(MAX_LIMIT_KIB + 1),
                    ..RunOptions::default()
                },
                "options.limit_download_kib:",
            ),
        ];
        for (options, prefix) in cases {
            let err = options.validate().unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{err}");
        }
        for bad in [
            "",
            "M",
            "0",
            "00k",
            "-1",
            "5MB",
            "1.5G",
            "500 M",
            "--x",
            "1e9",
            "1234567890123",
        ] {
            let options = RunOptions {
                exclude_larger_than: Some(bad.to_owned()),
                ..RunOptions::default()
            };
            let err = options.validate().unwrap_err().to_string();
            assert!(err.starts_with("options.exclude_larger_than:"), "{bad}");
        }
        for good in ["1", "500M", "500m", "2G", "10k", "1T", "123456789012"] {
            check_size("exclude_larger_than", good).unwrap();
        }
    }

    /// The agent refuses option flags whose values the server could not
    /// have produced.
    #[test]
    fn agent_check_refuses_bad_values() {
        for bad in [
            "--limit-upload=0",
            "--limit-upload=-5",
            "--limit-upload=1k",
            "--limit-download=",
            "--exclude-larger-than=huge",
            "--compression=fastest",
            "--compression=",
        ] {
            assert!(check_option_arg(bad).is_err(), "{bad}");
        }
        for ok in ["--limit-upload=10", "--compression=auto", "--prune"] {
            check_option_arg(ok).unwrap();
        }
    }

    /// The stored and wire form: unset keys are left out.
    #[test]
    fn json_shape() {
        let options = RunOptions {
            compression: Some(Compression::Auto),
            exclude_caches: Some(false),
            ..RunOptions::default()
        };
        let text = serde_json::to_string(&options).unwrap();
        assert_eq!(text, r#"{"exclude_caches":false,"compression":"auto"}"#);
        assert_eq!(serde_json::from_str::<RunOptions>(&text).unwrap(), options);
    }
}
