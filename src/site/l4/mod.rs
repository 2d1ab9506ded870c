//! The TCP (L4) proxy: `protocol = "tcp"` listeners relay each client connection to one server
//! of their pool, picked by the same engine as HTTP requests (a connection holds its lease, so
//! least-connections counts connections).
//!
//! Per connection: an optional PROXY header from a front balancer gives the client's real
//! address (which the hashing algorithms then use); a server is picked and dialled within the
//! pool's connect timeout, a failed dial counts against the server (passive ejection, breaker)
//! and is retried on another server; an optional PROXY header goes to the server; then the
//! relay runs until both sides closed or the connection sat idle.

mod metrics;
mod proxy_header;
mod relay;
#[cfg(target_os = "linux")]
mod splice;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

pub(crate) use metrics::L4Metrics;
pub(crate) use relay::End;

use super::pool::{Lease, Pool};
use crate::balance::{DEFAULT_SEED, hash_bytes};
use crate::config::site::ListenerConfig;

/// What one listener's connections share.
#[derive(Debug)]
pub(crate) struct L4Listener {
    pub(crate) cfg: ListenerConfig,
    pub(crate) pool: Arc<Pool>,
    pub(crate) metrics: L4Metrics,
}

/// Accepts until `stop` changes; each connection runs in its own task and holds a clone of
/// `stop` (so the site's graceful shutdown waits for it up to the grace time).
pub(crate) async fn accept_loop(
    l: Arc<TcpListener>,
    me: Arc<L4Listener>,
    mut stop: watch::Receiver<bool>,
) {
    let limit = (me.cfg.l4.max_connections > 0)
        .then(|| Arc::new(Semaphore::new(me.cfg.l4.max_connections)));
    loop {
        // At the limit, stop accepting: new clients wait in the kernel's backlog.
        let permit = match &limit {
            Some(s) => tokio::select! {
                p = Arc::clone(s).acquire_owned() => p.ok(),
                _ = stop.changed() => return,
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(listener = %me.cfg.bind, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let me = Arc::clone(&me);
        let stop = stop.clone();
        tokio::spawn(async move {
            let reason = serve(stream, peer, &me).await;
            me.metrics
                .closed
                .with_label_values(&[&me.cfg.bind.to_string(), reason])
                .inc();
            drop((permit, stop));
        });
    }
}

/// Serves one client connection; returns why it ended (a metric label).
async fn serve(mut client: TcpStream, peer: SocketAddr, me: &L4Listener) -> &'static str {
    let _ = client.set_nodelay(true);
    let opts = &me.cfg.l4;
    let mut source = peer;
    let mut destination = client.local_addr().unwrap_or(me.cfg.bind);
    let mut early = Vec::new();
    if opts.accept_proxy {
        match proxy_header::read(&mut client, me.cfg.header_timeout).await {
            Ok((d, rest)) => {
                source = d.source.unwrap_or(source);
                destination = d.destination.unwrap_or(destination);
                early = rest;
            }
            Err(e) => {
                tracing::debug!(client = %peer, error = %e, "refused a connection");
                return "proxy_header";
            }
        }
    }
    let hash = if me.pool.needs_hash() {
        ip_hash(source.ip())
    } else {
        0
    };
    let Some((lease, mut server)) = connect(&me.pool, hash, &me.metrics).await else {
        return "no_server";
    };
    let mut head = match opts.send_proxy {
        Some(v) => proxy_header::encode(v, source, destination),
        None => Vec::new(),
    };
    head.extend_from_slice(&early);
    if !head.is_empty()
        && let Err(e) = server.write_all(&head).await
    {
        tracing::debug!(server = %lease.backend().cfg.id, error = %e, "write to server failed");
        return "error";
    }
    let r = relay::relay(client, server, opts.idle_timeout, opts.splice).await;
    let pool = me.pool.cfg.name.as_str();
    let b = &me.metrics.bytes;
    b.with_label_values(&[pool, "up"])
        .inc_by(r.up + early.len() as u64);
    b.with_label_values(&[pool, "down"]).inc_by(r.down);
    drop(lease);
    match r.end {
        End::Done => "done",
        End::Idle => "idle",
        End::Error => "error",
    }
}

/// The hash the `ip-hash` and `consistent-hash` algorithms use for a client address: the same
/// as the HTTP proxy's, so a client maps alike through L4 and L7 listeners of one pool.
fn ip_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => hash_bytes(DEFAULT_SEED, &a.octets()),
        IpAddr::V6(a) => hash_bytes(DEFAULT_SEED, &a.octets()),
    }
}

/// Picks a server and dials it; a failed dial counts against that server and is retried on
/// another one, each server at most once, up to `retry.attempts` times. A failed dial sent
/// nothing, so, as for HTTP requests that never left, it is not counted against the retry
/// budget.
async fn connect(pool: &Arc<Pool>, hash: u64, m: &L4Metrics) -> Option<(Lease, TcpStream)> {
    let attempts = 1 + pool.cfg.retry.attempts as usize;
    let mut tried = Vec::with_capacity(attempts);
    for attempt in 0..attempts {
        let lease = match pool.pick_wait(hash, &tried).await {
            Ok(l) => l,
            Err(e) => {
                if attempt == 0 {
                    pool.metrics.rejected.inc();
                    tracing::debug!(pool = %pool.cfg.name, error = ?e, "no server for a connection");
                }
                return None;
            }
        };
        if attempt > 0 {
            pool.metrics.retries.inc();
        }
        tried.push(lease.index);
        let b = lease.backend();
        let labels = [pool.cfg.name.as_str(), b.cfg.id.as_str()];
        // Resolved before the dial, so a server's error series exists (at 0) once it is used.
        let errors = m.connect_errors.with_label_values(&labels);
        let start = Instant::now();
        let timeout = pool.cfg.timeouts.connect;
        match tokio::time::timeout(timeout, TcpStream::connect(b.cfg.address)).await {
            Ok(Ok(s)) => {
                pool.record(lease.index, true, Some(start));
                let _ = s.set_nodelay(true);
                m.connections.with_label_values(&labels).inc();
                return Some((lease, s));
            }
            Ok(Err(e)) => {
                tracing::debug!(server = %b.cfg.id, error = %e, "connect failed");
            }
            Err(_) => {
                tracing::debug!(server = %b.cfg.id, ?timeout, "connect timed out");
            }
        }
        errors.inc();
        pool.record(lease.index, false, None);
    }
    None
}
