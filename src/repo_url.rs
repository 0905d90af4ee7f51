//! Rules on restic repository URLs that both sides enforce: the server
//! before it stores one (`PUT /hosts/{id}/repository`), the agent again
//! before it uses one from `config.update` or a restore's `command.run`
//! (issue 15 B.6 and B.9). Shared by server and agent, serde-free.
//!
//! - No password in the URL (`rest:https://user:password@host/`): it
//!   would be stored in clear and shown to every viewer. The `username`
//!   and `credential` fields carry it, sealed at rest ([`check_no_password`],
//!   the server's rule).
//! - No sftp host or user starting with `-` (`sftp:-oProxyCommand=…:/repo`):
//!   restic hands them to ssh, which would read an option ([`check_sftp`],
//!   both sides).

/// Why a repository URL is refused; the text is the reason, for a 400
/// that names the field or an agent's log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoUrlError {
    /// `user:password@` in the URL.
    #[error(
        "must not carry a password (user:password@): put the user name in the \
         `username` field and the password in `credential`, which are stored sealed"
    )]
    EmbeddedPassword,
    /// An sftp host or user that ssh would read as an option.
    #[error("the sftp host or user must not start with '-' (ssh would read it as an option)")]
    SftpOption,
}

/// Every rule: what the server checks before storing a URL.
pub fn check(url: &str) -> Result<(), RepoUrlError> {
    check_no_password(url)?;
    check_sftp(url)
}

/// Refuses a URL whose authority has a user info with a password.
pub fn check_no_password(url: &str) -> Result<(), RepoUrlError> {
    let Some((start, end)) = crate::redact::authority_range(url) else {
        return Ok(());
    };
    let authority = &url[start..end];
    match authority.rfind('@') {
        Some(at) if authority[..at].contains(':') => Err(RepoUrlError::EmbeddedPassword),
        _ => Ok(()),
    }
}

/// Refuses an sftp URL (`sftp:user@host:/path` or `sftp://user@host:port/path`)
/// whose host or user starts with `-`.
pub fn check_sftp(url: &str) -> Result<(), RepoUrlError> {
    let user_host = if let Some(rest) = url.strip_prefix("sftp://") {
        rest.split(['/', '?', '#']).next().unwrap_or_default()
    } else if let Some(rest) = url.strip_prefix("sftp:") {
        // restic splits `[user@]host:path` at the first colon (an IPv6
        // host in brackets aside, which cannot start with '-').
        rest.split(':').next().unwrap_or_default()
    } else {
        return Ok(());
    };
    let (user, host) = match user_host.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, user_host),
    };
    let dashed = |part: &str| part.trim_start().starts_with('-');
    if dashed(user_host) || dashed(host) || user.is_some_and(dashed) {
        return Err(RepoUrlError::SftpOption);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords in the authority are refused; user names alone and
    /// URLs without an authority pass.
    #[test]
    fn embedded_passwords() {
        for url in [
            "rest:https://alice:secret@backup.example:8000/repo",
            "sftp://bob:pw@host/srv/repo",
            "s3:https://key:secret@s3.example/bucket",
        ] {
            assert_eq!(check(url), Err(RepoUrlError::EmbeddedPassword), "{url}");
        }
        for url in [
            "rest:https://alice@backup.example:8000/repo",
            "rest:https://backup.example:8000/a:b@c",
            "s3:s3.amazonaws.com/bucket",
            "/srv/restic/repo",
            "sftp:user@host:/srv/repo",
            "b2:bucket:path",
        ] {
            assert_eq!(check(url), Ok(()), "{url}");
        }
        assert!(RepoUrlError::EmbeddedPassword
            .to_string()
            .contains("`credential`"));
    }

    /// sftp hosts and users starting with '-' are refused in both forms.
    #[test]
    fn sftp_options() {
        for url in [
            "sftp:-oProxyCommand=touch /tmp/x:/repo",
            "sftp:user@-oProxyCommand=sh:/repo",
            "sftp:-luser@host:/repo",
            "sftp://-oProxyCommand=x/repo",
            "sftp://user@-host:22/repo",
            "sftp: -oProxyCommand=x:/repo",
        ] {
            assert_eq!(check_sftp(url), Err(RepoUrlError::SftpOption), "{url}");
        }
        for url in [
            "sftp:user@host:/srv/re-po",
            "sftp://user@host:22//srv/-repo",
            "sftp:host:-repo",
            "sftp:[::1]:/repo",
            "rest:http://-host/",
        ] {
            assert_eq!(check_sftp(url), Ok(()), "{url}");
        }
    }
}
