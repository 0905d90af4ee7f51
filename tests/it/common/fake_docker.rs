//! A fake Docker Engine API on a Unix socket inside the test (CI has no
//! Docker): `/_ping`, `/version`, `/containers/json`,
//! `/containers/{id}/json` and a streaming `/events`, enough for the
//! agent's discovery through bollard. The test sets the running
//! containers ([`FakeDocker::set`]) and emits events ([`FakeDocker::event`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

/// One running container of the fake.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// (private, public) ports.
    pub ports: Vec<(u16, Option<u16>)>,
    pub networks: Vec<String>,
}

impl FakeContainer {
    pub fn new(id: &str, name: &str, image: &str, env: &[&str]) -> Self {
        FakeContainer {
            id: id.to_owned(),
            name: name.to_owned(),
            image: image.to_owned(),
            env: env.iter().map(|e| (*e).to_owned()).collect(),
            ports: Vec::new(),
            networks: vec!["bridge".to_owned()],
        }
    }

    fn summary(&self) -> Value {
        let networks: serde_json::Map<String, Value> = self
            .networks
            .iter()
            .map(|n| (n.clone(), json!({"NetworkID": format!("net-{n}")})))
            .collect();
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|(private, public)| match public {
                Some(public) => json!({"IP": "127.0.0.1", "PrivatePort": private, "PublicPort": public, "Type": "tcp"}),
                None => json!({"PrivatePort": private, "Type": "tcp"}),
            })
            .collect();
        json!({
            "Id": self.id, "Names": [format!("/{}", self.name)], "Image": self.image,
            "ImageID": "sha256:0", "Command": "run", "Created": 1_700_000_000,
            "State": "running", "Status": "Up 5 minutes", "Ports": ports, "Labels": {},
            "NetworkSettings": {"Networks": networks}, "Mounts": [],
        })
    }

    fn inspect(&self) -> Value {
        json!({
            "Id": self.id, "Name": format!("/{}", self.name), "Image": "sha256:0",
            "State": {"Status": "running", "Running": true},
            "Config": {"Image": self.image, "Env": self.env},
        })
    }
}

/// The fake Engine; stops with the test's runtime.
pub struct FakeDocker {
    pub socket: PathBuf,
    containers: Arc<Mutex<Vec<FakeContainer>>>,
    events: broadcast::Sender<String>,
    _dir: tempfile::TempDir,
}

impl FakeDocker {
    /// Serves `containers` on a fresh socket.
    pub fn start(containers: Vec<FakeContainer>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let containers = Arc::new(Mutex::new(containers));
        let (events, _) = broadcast::channel(64);
        let state = (containers.clone(), events.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (containers, events) = (state.0.clone(), state.1.clone());
                tokio::spawn(serve(stream, containers, events));
            }
        });
        FakeDocker {
            socket,
            containers,
            events,
            _dir: dir,
        }
    }

    /// `unix://…`, the agent's `docker_host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Replaces the running containers.
    pub fn set(&self, containers: Vec<FakeContainer>) {
        *self.containers.lock().unwrap() = containers;
    }

    /// How many clients follow `/events`.
    pub fn event_listeners(&self) -> usize {
        self.events.receiver_count()
    }

    /// Sends a container event (`start`, `die`, …) to every listener.
    pub fn event(&self, action: &str, id: &str) {
        let event = json!({"Type": "container", "Action": action, "Actor": {"ID": id, "Attributes": {}}, "scope": "local", "time": 1_700_000_000, "timeNano": 1_700_000_000_000_000_000i64});
        // Err: no listener; the caller waits for one first.
        let _ = self.events.send(event.to_string());
    }
}

async fn serve(
    mut stream: UnixStream,
    containers: Arc<Mutex<Vec<FakeContainer>>>,
    events: broadcast::Sender<String>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let path = target.split('?').next().unwrap_or("/");
    // bollard prefixes the API version: /v1.47/containers/json.
    let path = match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            &rest[rest.find('/').unwrap_or(rest.len())..]
        }
        _ => path,
    };
    if path == "/events" {
        let mut rx = events.subscribe();
        let header = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(header.as_bytes()).await.is_err() {
            return;
        }
        while let Ok(event) = rx.recv().await {
            let line = format!("{event}\n");
            let chunk = format!("{:x}\r\n{line}\r\n", line.len());
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        return;
    }
    let body = answer(path, &containers.lock().unwrap());
    let response = match body {
        Some((kind, body)) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => {
            let body = json!({"message": format!("no such path {path}")}).to_string();
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
    };
    // Err: the client went away; nothing to do.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The answer to a `GET` of `path` other than `/events`: content type
/// and body, or `None` for a 404.
fn answer(path: &str, containers: &[FakeContainer]) -> Option<(&'static str, String)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["_ping"] => Some(("text/plain", "OK".to_owned())),
        ["version"] => Some((
            "application/json",
            json!({"Version": "27.0.0-fake", "ApiVersion": "1.47", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"}).to_string(),
        )),
        ["containers", "json"] => {
            let list: Vec<Value> = containers.iter().map(FakeContainer::summary).collect();
            Some(("application/json", Value::Array(list).to_string()))
        }
        ["containers", id, "json"] => containers
            .iter()
            .find(|c| c.id == *id || c.name == *id)
            .map(|c| ("application/json", c.inspect().to_string())),
        _ => None,
    }
}
