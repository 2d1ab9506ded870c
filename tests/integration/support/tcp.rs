//! A TCP backend on 127.0.0.1:0 for the L4 tests. Each connection gets `<name>\n`, then an echo
//! of everything it sends; when the client half-closes, the backend still writes `bye\n` and
//! then closes (so a proxy that does not pass half-close on loses the `bye`). Every byte a
//! connection received is recorded, and open connections are counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct TcpState {
    pub accepted: AtomicUsize,
    pub open: AtomicUsize,
    /// Bytes received per connection, in accept order (filled as they arrive).
    pub received: Mutex<Vec<Vec<u8>>>,
}

#[derive(Debug)]
pub struct TcpBackend {
    pub addr: SocketAddr,
    pub name: String,
    pub state: Arc<TcpState>,
    stop: watch::Sender<bool>,
}

impl TcpBackend {
    pub async fn start(name: &str) -> TcpBackend {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(l, name)
    }

    /// Serves on a listener the test bound itself (another loopback address, a given port).
    pub fn serve(l: TcpListener, name: &str) -> TcpBackend {
        let addr = l.local_addr().expect("addr");
        let state = Arc::new(TcpState::default());
        let (stop, rx) = watch::channel(false);
        tokio::spawn(accept(l, name.to_string(), Arc::clone(&state), rx));
        TcpBackend {
            addr,
            name: name.to_string(),
            state,
            stop,
        }
    }

    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    pub fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// Bytes received on connection `i` so far.
    pub fn received(&self, i: usize) -> Vec<u8> {
        self.state
            .received
            .lock()
            .expect("lock")
            .get(i)
            .cloned()
            .unwrap_or_default()
    }

    /// Stops accepting and drops every open connection.
    pub fn kill(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept(
    l: TcpListener,
    name: String,
    state: Arc<TcpState>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let s = tokio::select! {
            r = l.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let i = {
            let mut r = state.received.lock().expect("lock");
            r.push(Vec::new());
            r.len() - 1
        };
        state.accepted.fetch_add(1, Ordering::SeqCst);
        state.open.fetch_add(1, Ordering::SeqCst);
        let (state, name, mut stop) = (Arc::clone(&state), name.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = echo(s, &name, &state, i) => {}
                _ = stop.changed() => {}
            }
            state.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn echo(mut s: TcpStream, name: &str, state: &TcpState, i: usize) {
    if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                state.received.lock().expect("lock")[i].extend_from_slice(&buf[..n]);
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = s.write_all(b"bye\n").await;
    let _ = s.shutdown().await;
}

/// Connects, reads the backend's name line.
pub async fn connect_named(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect within 5 s")
        .expect("connect");
    let name = read_line(&mut s).await;
    (s, name)
}

/// Reads one `\n`-terminated line (bounded wait), without the newline.
pub async fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("a byte within 5 s")
            .expect("read");
        if n == 0 || b[0] == b'\n' {
            return String::from_utf8_lossy(&line).into_owned();
        }
        line.push(b[0]);
    }
}

/// Reads to EOF (bounded wait).
pub async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("EOF within 5 s")
        .expect("read");
    out
}
