//! The UDP hot path: one socket per worker thread (SO_REUSEPORT spreads packets across them),
//! blocking receive, answer, send. No task per packet, no channel, no lock: each worker reads the
//! catalog through its own `arc_swap::Cache`.
//!
//! Packets move in batches: one `recvmmsg` takes every query waiting (up to [`BATCH`]), one
//! `sendmmsg` sends every reply, so a busy server makes two system calls per batch instead of
//! two per query (nix's safe wrappers; Meridian has no unsafe code).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use socket2::{Domain, Protocol, Socket, Type};

use super::respond::answer_udp;
use super::server::Shared;

/// How often a blocked worker wakes up to notice shutdown.
const WAKE: Duration = Duration::from_millis(200);
/// Most packets moved per system call.
const BATCH: usize = 32;
/// Largest query accepted over UDP; longer ones are dropped (no query needs this much).
const MAX_QUERY: usize = 4096;

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

/// One received packet: its length and where it came from.
#[derive(Clone, Copy)]
struct Meta {
    len: usize,
    src: Option<SocketAddr>,
    truncated: bool,
}

fn serve(socket: UdpSocket, shared: Arc<Shared>) {
    let fd = socket.as_raw_fd();
    let mut cache = arc_swap::Cache::new(Arc::clone(&shared.catalog));
    let mut bufs = vec![[0u8; MAX_QUERY]; BATCH];
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1500)).collect();
    let mut rx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut tx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut meta: Vec<Meta> = Vec::with_capacity(BATCH);
    let mut dests: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
    while !shared.stopping.load(Ordering::Relaxed) {
        meta.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(fd, &mut rx, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(got) => meta.extend(got.map(|r| Meta {
                    len: r.bytes,
                    src: r.address.as_ref().and_then(to_socket_addr),
                    truncated: r.flags.contains(MsgFlags::MSG_TRUNC),
                })),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "UDP receive failed");
                    shared.metrics.udp_errors.inc();
                    continue;
                }
            }
        }
        let catalog = cache.load();
        dests.clear();
        let mut n = 0;
        for (m, buf) in meta.iter().zip(bufs.iter()) {
            let Some(src) = m.src else { continue };
            if src.port() == 0 || m.truncated {
                continue;
            }
            let packet = &buf[..m.len.min(MAX_QUERY)];
            if let Some(answered) =
                answer_udp(catalog, packet, src.ip(), shared.max_udp, &mut outs[n])
            {
                catalog.count(&answered);
                dests.push(Some(SockaddrStorage::from(src)));
                n += 1;
            }
        }
        send_all(fd, &mut tx, &outs[..n], &dests, &shared);
    }
}

fn send_all(
    fd: i32,
    tx: &mut MultiHeaders<SockaddrStorage>,
    outs: &[Vec<u8>],
    dests: &[Option<SockaddrStorage>],
    shared: &Shared,
) {
    let mut start = 0;
    while start < outs.len() {
        let slices: Vec<[IoSlice<'_>; 1]> =
            outs[start..].iter().map(|o| [IoSlice::new(o)]).collect();
        let none: &[ControlMessage<'_>] = &[];
        match sendmmsg(
            fd,
            tx,
            slices.iter(),
            &dests[start..],
            none,
            MsgFlags::empty(),
        ) {
            Ok(sent) => {
                let k = sent.count();
                if k == 0 {
                    start += 1;
                } else {
                    start += k;
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                // The first message failed (a vanished route, say): skip it, send the rest.
                tracing::debug!(error = %e, "UDP send failed");
                shared.metrics.udp_errors.inc();
                start += 1;
            }
        }
    }
}

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    if let Some(v6) = a.as_sockaddr_in6() {
        return Some(SocketAddr::V6((*v6).into()));
    }
    None
}
