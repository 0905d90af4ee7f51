//! `restic version`: its output (text before 0.17, JSON since) parsed into
//! a [`ResticVersion`], and what each version supports.

use serde::Deserialize;

/// A restic version as `restic version` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResticVersion {
    /// The version text (`"0.14.0"`, `"0.16.4-dev"`).
    pub text: String,
    /// Major, minor and patch numbers (missing parts are 0).
    pub numbers: (u32, u32, u32),
}

impl ResticVersion {
    /// Whether restic reads REST credentials from `RESTIC_REST_USERNAME` /
    /// `RESTIC_REST_PASSWORD` (0.17 and later).
    pub fn has_rest_credential_env(&self) -> bool {
        self.numbers >= (0, 17, 0)
    }
}

/// Parses the output of `restic version` (0.14's text line, or 0.18's
/// `--json` object).
pub fn parse_version(output: &str) -> Option<ResticVersion> {
    #[derive(Deserialize)]
    struct VersionJson {
        message_type: String,
        version: String,
    }
    let text = output.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('{') {
            let parsed: VersionJson = serde_json::from_str(line).ok()?;
            (parsed.message_type == "version").then_some(parsed.version)
        } else {
            let rest = line.strip_prefix("restic ")?;
            rest.split_whitespace().next().map(str::to_owned)
        }
    })?;
    let text = text.trim_start_matches('v').to_owned();
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|part| part.parse::<u32>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some(ResticVersion {
        text,
        numbers: (major, minor, patch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `restic version` of 0.14 (text) and 0.18 (JSON) both parse.
    #[test]
    fn versions() {
        let v14 = parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n").unwrap();
        assert_eq!(v14.text, "0.14.0");
        assert_eq!(v14.numbers, (0, 14, 0));
        assert!(!v14.has_rest_credential_env());
        let v18 = parse_version(
            r#"{"message_type":"version","version":"0.18.0","go_version":"go1.24.4","go_os":"linux","go_arch":"amd64"}"#,
        )
        .unwrap();
        assert_eq!(v18.numbers, (0, 18, 0));
        assert!(v18.has_rest_credential_env());
        let dev =
            parse_version("restic 0.16.4-dev (compiled manually) compiled with go1.21").unwrap();
        assert_eq!(dev.text, "0.16.4-dev");
        assert_eq!(dev.numbers, (0, 16, 4));
        assert_eq!(parse_version("bash: restic: command not found"), None);
        assert_eq!(parse_version(""), None);
    }
}
