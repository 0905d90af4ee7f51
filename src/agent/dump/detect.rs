//! The dump capabilities an agent declares in `hello.capabilities`:
//! `dump:<driver>` for each driver whose dump tool is on `PATH`, and
//! `docker` when the Docker Engine answers on its socket (dumps inside
//! containers need it, and the docker CLI on `PATH`). The server refuses a
//! dump job for a driver the agent lacks (409 `agent_lacks_capability`).

use crate::protocol::{DumpDriver, CAPABILITY_DOCKER};
use std::path::{Path, PathBuf};

/// How long the Docker Engine gets to answer `GET /_ping`.
#[cfg(unix)]
const DOCKER_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The executable `name` in one of `path`'s folders, if any.
pub fn find_in(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Whether `name` is on the agent's `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| find_in(&path, name).is_some())
}

/// The tools a driver needs (all of them).
fn tools(driver: DumpDriver) -> &'static [&'static [&'static str]] {
    match driver {
        DumpDriver::Postgres => &[&["pg_dump"], &["psql"]],
        DumpDriver::Mysql => &[&["mysqldump"], &["mysql"]],
        DumpDriver::Mariadb => &[&["mariadb-dump", "mysqldump"], &["mariadb", "mysql"]],
        DumpDriver::Mongodb => &[&["mongodump"]],
        DumpDriver::Sqlite => &[&["sqlite3"]],
    }
}

/// `dump:<driver>` for each driver whose tools `has` finds (one of each
/// group of alternatives).
pub fn dump_capabilities(has: impl Fn(&str) -> bool) -> Vec<String> {
    DumpDriver::ALL
        .into_iter()
        .filter(|driver| {
            tools(*driver)
                .iter()
                .all(|alternatives| alternatives.iter().any(|tool| has(tool)))
        })
        .map(DumpDriver::capability)
        .collect()
}

/// The Docker Engine's Unix socket: `DOCKER_HOST` when it is a
/// `unix://` URL, else `/var/run/docker.sock`. `None` for a TCP
/// `DOCKER_HOST` (not probed).
pub fn docker_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host.strip_prefix("unix://").map(PathBuf::from),
        _ => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

/// Whether a Docker Engine answers `GET /_ping` with `OK` on `socket`.
#[cfg(unix)]
pub async fn docker_answers(socket: &Path) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ping = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
        stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer);
        Some(text.starts_with("HTTP/1.") && text.contains(" 200 "))
    };
    matches!(
        tokio::time::timeout(DOCKER_PING_TIMEOUT, ping).await,
        Ok(Some(true))
    )
}

/// Without Unix sockets the Docker Engine is not probed.
#[cfg(not(unix))]
pub async fn docker_answers(_socket: &Path) -> bool {
    false
}

/// Every dump capability of this host: the tools on `PATH`, and `docker`
/// when the docker CLI is there and the Engine answers.
pub async fn capabilities() -> Vec<String> {
    let mut found = dump_capabilities(on_path);
    if on_path("docker") {
        if let Some(socket) = docker_socket() {
            if docker_answers(&socket).await {
                found.push(CAPABILITY_DOCKER.to_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver is declared only when each of its tools (or an
    /// alternative) is there.
    #[test]
    fn capabilities_follow_the_tools() {
        let has = |tools: &'static [&'static str]| move |name: &str| tools.contains(&name);
        assert_eq!(
            dump_capabilities(has(&["pg_dump", "psql", "sqlite3"])),
            ["dump:postgres", "dump:sqlite"]
        );
        assert_eq!(
            dump_capabilities(has(&["pg_dump"])),
            Vec::<String>::new(),
            "pg_dump without psql cannot name the version"
        );
        assert_eq!(
            dump_capabilities(has(&["mysqldump", "mysql"])),
            ["dump:mysql", "dump:mariadb"]
        );
        assert_eq!(
            dump_capabilities(has(&["mariadb-dump", "mariadb", "mongodump"])),
            ["dump:mariadb", "dump:mongodb"]
        );
    }

    /// `PATH` lookup finds executables only.
    #[test]
    fn find_in_path() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("pg_dump");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        #[cfg(unix)]
        {
            assert_eq!(find_in(&path, "pg_dump"), None, "not executable");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(find_in(&path, "pg_dump"), Some(tool));
        assert_eq!(find_in(&path, "mysqldump"), None);
    }
}
