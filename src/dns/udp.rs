//! The UDP hot path: one socket per worker thread (SO_REUSEPORT spreads packets across them),
//! blocking receive, answer, send. No task per packet, no channel, no lock: each worker reads the
//! catalog through its own `arc_swap::Cache`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::respond::answer_udp;
use super::server::Shared;

/// How often a blocked worker wakes up to notice shutdown.
const WAKE: Duration = Duration::from_millis(200);

/// Binds `workers` UDP sockets on `addr` (port 0 picks one port for all of them) and starts a
/// thread for each. Returns the bound address.
pub(crate) fn start(
    addr: SocketAddr,
    workers: usize,
    shared: Arc<Shared>,
) -> io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let first = bind(addr, workers > 1)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind(bound, true)?);
    }
    let mut threads = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || serve(s, shared))?,
        );
    }
    Ok((bound, threads))
}

fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // A large receive buffer absorbs bursts instead of dropping them.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(WAKE))?;
    Ok(s)
}

fn serve(socket: UdpSocket, shared: Arc<Shared>) {
    let mut cache = arc_swap::Cache::new(Arc::clone(&shared.catalog));
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
    while !shared.stopping.load(Ordering::Relaxed) {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "UDP receive failed");
                shared.metrics.udp_errors.inc();
                continue;
            }
        };
        if src.port() == 0 {
            continue;
        }
        let catalog = cache.load();
        let Some(answered) = answer_udp(catalog, &buf[..n], src.ip(), shared.max_udp, &mut out)
        else {
            continue;
        };
        shared.metrics.count(answered);
        if let Err(e) = socket.send_to(&out, src) {
            tracing::debug!(error = %e, %src, "UDP send failed");
            shared.metrics.udp_errors.inc();
        }
    }
}
