//! Accept loops, connection serving and graceful shutdown.
//!
//! Each connection task holds a receiver of the shutdown channel; on shutdown it asks hyper to
//! finish the request in flight and close, and the site waits (up to the grace time) for the
//! sender's `closed()`, which fires when the last connection task has ended.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::front::Front;
use super::h1::{self, Door, Rewind, Served};
use super::headers::Client;
use super::io::Counted;
use super::proxy::Proxy;
use super::reload::{ReloadRequests, Reloader};
use super::{Listeners, SiteError, SiteState, admin, api};
use crate::config::site::{ListenerConfig, SiteConfig};

/// How often time-based state (ejection expiry, breaker cool-down, slow start) is folded into
/// the pools' selectors, and idle backend connections the backends closed are let go.
const MAINTENANCE_TICK: Duration = Duration::from_millis(250);

pub(crate) async fn run(
    cfg: SiteConfig,
    state: Arc<SiteState>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    reloads: ReloadRequests,
) -> Result<(), SiteError> {
    if listeners.http.len() != cfg.listeners.len() {
        return Err(SiteError::Listeners(format!(
            "{} listeners configured, {} given",
            cfg.listeners.len(),
            listeners.http.len()
        )));
    }
    // Everything that reads files first: a missing certificate stops the site before it serves.
    let mut tls = Vec::with_capacity(cfg.listeners.len());
    for lc in &cfg.listeners {
        tls.push(super::tls::prepare_listener(lc, &state.metrics.features)?);
    }
    for (pool, pc) in state.pools().iter().zip(&cfg.pools) {
        if let Some(t) = super::tls::prepare_pool(pc)? {
            pool.set_backend_tls(t);
        }
    }
    let mut background = JoinSet::new();
    for pool in state.pools().iter() {
        state.start_pool(pool);
    }
    // One tick for every pool there is (a reload swaps the list).
    let ticked = Arc::clone(&state);
    background.spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_TICK);
        loop {
            tick.tick().await;
            for pool in ticked.pools().iter() {
                pool.refresh();
                pool.sweep_idle();
            }
        }
    });
    if let Some(admin) = listeners.admin {
        background.spawn(admin_loop(admin, Arc::clone(&state)));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut front = Front::new(Arc::clone(&state), stop_rx);
    let pools = state.pools();
    for ((l, lc), tls) in listeners.http.into_iter().zip(&cfg.listeners).zip(tls) {
        front.start(lc.clone(), Arc::new(l), &pools, tls);
    }
    tracing::info!(
        listeners = cfg.listeners.len(),
        pools = state.pools().len(),
        "site serving"
    );
    front.publish();

    // Serves, applying reloads, until the shutdown future completes.
    let mut reloader = Reloader::new(cfg, front, reloads);
    let cfg = reloader.serve(&state, shutdown).await;
    state.draining.store(true, Ordering::Relaxed);
    tracing::info!(delay = ?cfg.shutdown.delay, grace = ?cfg.shutdown.grace, "draining");
    tokio::time::sleep(cfg.shutdown.delay).await;
    let _ = stop_tx.send(true);
    // Accept loops return at once; connection tasks finish their requests.
    reloader.front.join().await;
    if tokio::time::timeout(cfg.shutdown.grace, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?cfg.shutdown.grace, "grace time over; closing remaining connections");
    }
    background.abort_all();
    for pool in state.pools().iter() {
        pool.stop();
    }
    tracing::info!("site stopped");
    Ok(())
}

pub(crate) async fn accept_loop(
    l: Arc<TcpListener>,
    lc: ListenerConfig,
    proxy: Arc<ArcSwap<Proxy>>,
    tls: Option<(TlsAcceptor, super::tls::Handshakes)>,
    mut stop: watch::Receiver<bool>,
) {
    let tls = tls.map(Arc::new);
    // hyper's own header-read timeout arms a boxed timer per request (measured: 10 % of the
    // proxy's CPU); `idle_watch` below gives the same protection with one timer per connection.
    let mut auto = auto::Builder::new(TokioExecutor::new());
    // `writev(false)`: hyper copies a response's head and body into one buffer and writes it
    // with `send(2)`; on a socket that is cheaper in the kernel than `writev(2)`, which goes
    // through the file layer (measured: see docs/benchmarks.md, "Where the time goes").
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None::<Duration>)
        .writev(false)
        .max_buf_size(lc.max_header_bytes);
    auto.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(lc.max_header_bytes as u32);
    // HTTP/1.1 only: hyper's own connection type, without the protocol sniffing layer.
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(None::<Duration>)
        .writev(false)
        .max_buf_size(lc.max_header_bytes);
    let builders = Arc::new((auto, h1));
    loop {
        let (stream, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the connections we have.
                    tracing::warn!(listener = %lc.bind, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let builders = Arc::clone(&builders);
        let stop = stop.clone();
        let (idle, h2, max_head) = (lc.header_timeout, lc.h2, lc.max_header_bytes);
        let tls = tls.clone();
        tokio::spawn(async move {
            let activity = Arc::new(Activity::default());
            let c = ClientConn {
                proxy,
                builders,
                stop,
                activity: Arc::clone(&activity),
                idle,
                peer,
                max_head,
            };
            let io = Counted::new(stream, Arc::clone(&activity.written));
            match tls.as_deref() {
                None => {
                    let speaks = if h2 { Speaks::H1OrH2c } else { Speaks::H1 };
                    serve_client(io, Client::new(peer), speaks, c).await;
                }
                Some((acceptor, hs)) => {
                    let Some((io, alpn_h2)) =
                        super::tls::handshake(acceptor, io, idle, hs, peer).await
                    else {
                        return;
                    };
                    let speaks = if h2 && alpn_h2 {
                        Speaks::H2
                    } else {
                        Speaks::H1
                    };
                    serve_client(io, Client::new(peer).over_tls(), speaks, c).await;
                }
            }
        });
    }
}

type Builders = (
    auto::Builder<TokioExecutor>,
    hyper::server::conn::http1::Builder,
);

/// What serving one client connection needs beside its socket.
struct ClientConn {
    /// Read per request: a reload that restarts the listener swaps it.
    proxy: Arc<ArcSwap<Proxy>>,
    builders: Arc<Builders>,
    stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
    idle: Duration,
    peer: std::net::SocketAddr,
    /// The largest request head (larger gets 431).
    max_head: usize,
}

/// Which HTTP a client connection may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    /// HTTP/1.1 only.
    H1,
    /// HTTP/1.1, or HTTP/2 with prior knowledge (told apart by hyper from the preface).
    H1OrH2c,
    /// HTTP/2, negotiated by ALPN.
    H2,
}

/// Serves HTTP on one accepted (and, for TLS, handshaken) client connection: HTTP/1.1 requests
/// without a body on `h1`'s path, and, from the first request that path hands over, hyper.
async fn serve_client<I>(io: I, client: Client, speaks: Speaks, c: ClientConn)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ClientConn {
        proxy,
        builders,
        stop,
        activity,
        idle,
        peer,
        max_head,
    } = c;
    let io = if speaks == Speaks::H2 {
        Rewind::new(Bytes::new(), io)
    } else {
        let door = Door::default();
        let served = h1::serve(io, &proxy, &client, &activity, &door, max_head);
        match drive_h1(served, stop.clone(), &activity, &door, idle, peer).await {
            Some(io) => io,
            None => return,
        }
    };
    let client = Arc::new(client);
    let act = Arc::clone(&activity);
    let svc = service_fn(move |req| {
        let proxy = proxy.load_full();
        let client = Arc::clone(&client);
        let act = Arc::clone(&act);
        act.started.fetch_add(1, Ordering::Relaxed);
        async move {
            let resp = proxy.handle(req, &client).await;
            act.finished.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(resp)
        }
    });
    let io = TokioIo::new(io);
    if speaks != Speaks::H1 {
        let conn = builders.0.serve_connection(io, svc);
        drive(conn, stop, &activity, idle, peer).await;
    } else {
        let conn = builders.1.serve_connection(io, svc);
        drive(conn, stop, &activity, idle, peer).await;
    }
}

/// Runs `h1`'s request loop on a client connection until it ends, the site stops, or it sits
/// idle, by the same rules as [`drive`] for hyper's; the connection when hyper is to take it.
async fn drive_h1<I>(
    served: impl Future<Output = Served<I>>,
    mut stop: watch::Receiver<bool>,
    activity: &Activity,
    door: &Door,
    idle: Duration,
    peer: std::net::SocketAddr,
) -> Option<Rewind<I>> {
    let handed = |s: Served<I>| match s {
        Served::Closed => None,
        Served::Handover(io) => Some(io),
    };
    tokio::pin!(served);
    let stopped = tokio::select! {
        biased;
        s = served.as_mut() => return handed(s),
        _ = stop.changed() => true,
        _ = idle_watch(activity, idle) => false,
    };
    door.closing.store(true, Ordering::Relaxed);
    if !door.busy.load(Ordering::Relaxed) {
        // Between requests: close now.
        return None;
    }
    if stopped {
        // Finishes the request in progress, then closes (the site bounds this by `grace`).
        return handed(served.await);
    }
    // Idle with part of a request head in, or a response streaming: as in `drive`.
    loop {
        let before = activity.written.load(Ordering::Relaxed);
        match tokio::time::timeout(idle, served.as_mut()).await {
            Ok(s) => return handed(s),
            Err(_) if activity.written.load(Ordering::Relaxed) != before => continue,
            Err(_) => {
                tracing::debug!(client = %peer, "closing a stalled client connection");
                return None;
            }
        }
    }
}

/// Runs one client connection until it ends, the site stops, or it sits idle.
async fn drive<C>(
    conn: C,
    mut stop: watch::Receiver<bool>,
    activity: &Activity,
    idle: Duration,
    peer: std::net::SocketAddr,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    enum End<R> {
        Done(R),
        Stop,
        Idle,
    }
    let end = tokio::select! {
        biased;
        r = conn.as_mut() => End::Done(r),
        _ = stop.changed() => End::Stop,
        _ = idle_watch(activity, idle) => End::Idle,
    };
    let result = match end {
        End::Done(r) => r,
        End::Stop => {
            // Finishes a response in progress, then closes (the site bounds this by `grace`).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        End::Idle => {
            // Idle: closes at once. Streaming a response: finishes it, as long as it keeps
            // writing. Mid-way through a request head: hyper would wait for the rest, so the
            // connection is dropped after a period without a byte written.
            conn.as_mut().graceful_shutdown();
            loop {
                let before = activity.written.load(Ordering::Relaxed);
                match tokio::time::timeout(idle, conn.as_mut()).await {
                    Ok(r) => break r,
                    Err(_) if activity.written.load(Ordering::Relaxed) != before => continue,
                    Err(_) => {
                        tracing::debug!(client = %peer, "closing a stalled client connection");
                        return;
                    }
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
    }
}

/// Requests seen on one client connection.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    pub(crate) started: AtomicU64,
    pub(crate) finished: AtomicU64,
    written: Arc<AtomicU64>,
}

/// Completes when a connection has started no request and has none waiting for a backend for
/// a whole period of `idle` (so an idle keep-alive connection, or one trickling a request
/// head, is closed after between one and two periods).
async fn idle_watch(a: &Activity, idle: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + idle, idle);
    let mut last = u64::MAX;
    loop {
        tick.tick().await;
        let started = a.started.load(Ordering::Relaxed);
        if started == last && a.finished.load(Ordering::Relaxed) == started {
            return;
        }
        last = started;
    }
}

async fn admin_loop(l: TcpListener, state: Arc<SiteState>) {
    loop {
        let (stream, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let state = Arc::clone(&state);
                async move {
                    Ok::<_, Infallible>(if api::is_api(req.uri().path()) {
                        api::handle(&state, peer, req).await
                    } else {
                        admin::handle(&state, &req)
                    })
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(client = %peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}

/// Completes on SIGTERM or Ctrl-C: the shutdown future `meridian site` passes to the site.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
