//! Redaction of secrets embedded in URLs, for logs, errors and `Debug`
//! output: one implementation for database URLs (server) and repository
//! URLs (agent, protocol payloads).

/// The byte range of a URL's authority (`user:pass@host:port`), if it has
/// a `scheme://`.
pub(crate) fn authority_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let len = url[start..]
        .find(['/', '?', '#'])
        .unwrap_or(url.len() - start);
    Some((start, start + len))
}

/// A URL fit for logs and error messages (database URLs, restic
/// repository URLs such as `rest:https://user:pass@host/repo`): the password in the
/// user info and any `password=` query parameter become `***`. Text that
/// is not a URL (a SQLite path) is returned unchanged.
pub fn url(url: &str) -> String {
    let Some((start, end)) = authority_range(url) else {
        return url.to_owned();
    };
    let authority = &url[start..end];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let rest = &url[end..];
    match rest.find('?') {
        Some(q) => {
            out.push_str(&rest[..=q]);
            let (query, fragment) = match rest[q + 1..].find('#') {
                Some(h) => (&rest[q + 1..q + 1 + h], &rest[q + 1 + h..]),
                None => (&rest[q + 1..], ""),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(rest),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passwords in the user info and in the query string are hidden.
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            url("postgres://alice:s3cret@db.example:5432/rm?sslmode=require"),
            "postgres://alice:***@db.example:5432/rm?sslmode=require"
        );
        assert_eq!(
            url("postgresql://db/rm?user=bob&password=hunter2#x"),
            "postgresql://db/rm?user=bob&password=***#x"
        );
        assert_eq!(url("postgres://alice@db/rm"), "postgres://alice@db/rm");
        assert_eq!(url("data/restic-manager.db"), "data/restic-manager.db");
        // An '@' inside the password does not leak its tail.
        assert_eq!(url("postgres://u:p@ss@host/db"), "postgres://u:***@host/db");
    }

    /// Repository URLs: the REST server's password is hidden wherever the
    /// URL appears; local paths and cloud URLs without user info are kept.
    #[test]
    fn redacts_repository_urls() {
        assert_eq!(url("/srv/restic"), "/srv/restic");
        assert_eq!(
            url("s3:s3.amazonaws.com/bucket"),
            "s3:s3.amazonaws.com/bucket"
        );
        assert_eq!(
            url("rest:https://backup.example/a@b"),
            "rest:https://backup.example/a@b"
        );
        assert_eq!(
            url("rest:http://u:p@h:8000/r"),
            "rest:http://u:***@h:8000/r"
        );
        assert_eq!(url("rest:http://u:p@x@h/r"), "rest:http://u:***@h/r");
    }
}
