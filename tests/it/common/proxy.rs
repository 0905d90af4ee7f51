//! A TCP proxy on 127.0.0.1 between an agent and the server that can
//! sever every connection on demand, as a network failure would: the
//! sockets on both sides are closed at once, with no WebSocket close frame.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Shared {
    /// The forwarding task of each live connection.
    connections: Vec<JoinHandle<()>>,
    /// Connections accepted since start.
    accepted: usize,
}

/// A running proxy; stops (and severs everything) when dropped.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let accept_shared = shared.clone();
        let accept = actix_web::rt::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let forward = actix_web::rt::spawn(async move {
                    // An upstream that refuses just closes the client.
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    // Ends when either side closes or fails.
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                let mut shared = accept_shared.lock().unwrap();
                shared.accepted += 1;
                shared.connections.retain(|task| !task.is_finished());
                shared.connections.push(forward);
            }
        });
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// `http://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every live connection (both sockets dropped); returns how
    /// many there were. New connections are accepted as before.
    pub fn sever(&self) -> usize {
        let mut shared = self.shared.lock().unwrap();
        let live: Vec<JoinHandle<()>> = shared.connections.drain(..).collect();
        let count = live.iter().filter(|task| !task.is_finished()).count();
        for task in live {
            task.abort();
        }
        count
    }

    /// Connections accepted since the proxy started.
    pub fn accepted(&self) -> usize {
        self.shared.lock().unwrap().accepted
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}
