//! Zero-copy relay on Linux: each direction moves bytes socket → pipe → socket with
//! `splice(2)` (through `nix`'s safe wrapper), so payload pages never cross into user space.
//!
//! Readiness comes from tokio's reactor (`readable`/`writable` + `try_io`), which clears a
//! socket's readiness when the closure reports `WouldBlock`. That is only right when the
//! `EAGAIN` came from the socket, never from the pipe, so each direction keeps one invariant:
//! it reads from its socket only while its pipe is empty (a read of at most the pipe's size
//! cannot then block on the pipe), and it writes to its socket only while its pipe holds data
//! (a write cannot then block on an empty pipe).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes asked of one `splice` call: the default pipe capacity (16 pages).
const CHUNK: usize = 64 * 1024;

/// Relays both ways until both ends closed their side; a FIN from one end is passed on to the
/// other as `shutdown(Write)` while the other direction goes on.
pub(crate) async fn relay(
    client: &TcpStream,
    server: &TcpStream,
    up: &AtomicU64,
    down: &AtomicU64,
) -> io::Result<()> {
    tokio::try_join!(pump(client, server, up), pump(server, client, down)).map(|_| ())
}

async fn pump(from: &TcpStream, to: &TcpStream, moved: &AtomicU64) -> io::Result<()> {
    let (pipe_r, pipe_w) = pipe()?;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        // The pipe is empty here, so an EAGAIN can only mean "no data on the socket".
        let n = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                splice(from, None, &pipe_w, None, CHUNK, flags).map_err(io::Error::from)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            // End of stream from `from`: half-close towards `to`, keep the other direction.
            return match SockRef::from(to).shutdown(std::net::Shutdown::Write) {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
                _ => Ok(()),
            };
        }
        let mut left = n;
        while left > 0 {
            // The pipe holds data here, so an EAGAIN can only mean "socket buffer full".
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(&pipe_r, None, to, None, left, flags).map_err(io::Error::from)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (b, _) = l.accept().await.expect("accept");
        (a, b)
    }

    /// 4 MiB up, an answer after the half-close, both byte-exact.
    #[tokio::test]
    async fn moves_bulk_data_and_passes_half_close_on() {
        let (mut client, proxy_client) = pair().await;
        let (proxy_server, mut server) = pair().await;
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let (u, d) = (Arc::clone(&up), Arc::clone(&down));
        let relay = tokio::spawn(async move { relay(&proxy_client, &proxy_server, &u, &d).await });
        let data: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.expect("write");
            client.shutdown().await.expect("half-close");
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.expect("read");
            answer
        });
        let mut got = Vec::new();
        server
            .read_to_end(&mut got)
            .await
            .expect("server reads to EOF");
        assert!(got == data, "payload differs");
        server.write_all(b"after-eof").await.expect("answer");
        server.shutdown().await.expect("close");
        assert_eq!(writer.await.expect("client"), b"after-eof");
        relay.await.expect("task").expect("relay ok");
        assert_eq!(up.load(Ordering::Relaxed), 4 << 20);
        assert_eq!(down.load(Ordering::Relaxed), 9);
    }
}
