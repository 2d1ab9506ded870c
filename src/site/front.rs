//! The client-facing listeners of a running site: one accept task per listener, HTTP (with
//! its TLS and features) or TCP, started from a bound socket, a listener config and the
//! site's pools. A reload can stop one accept task and start another on the same socket (new
//! settings or pools for new connections, the port never closes); connections already
//! accepted carry on with what they had. What status pages and certificate reloads need of
//! the running listeners is published in the site state ([`Front::publish`]).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SiteState;
use super::l4::{self, L4Listener};
use super::l7::Features;
use super::pool::Pool;
use super::proxy::Proxy;
use super::serve;
use super::tls::{ListenerTls, TlsListener};
use crate::config::site::{ListenerConfig, Protocol};

/// One listener's accept task.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) cfg: ListenerConfig,
    pub(crate) socket: Arc<TcpListener>,
    task: JoinHandle<()>,
    pub(crate) view: ListenerView,
    /// HTTP: the proxy every connection of this socket reads per request; a restart on the
    /// same socket swaps a new one in, so open keep-alive connections follow too.
    slot: Option<Arc<ArcSwap<Proxy>>>,
}

/// What the rest of the site sees of a running listener.
#[derive(Debug, Clone)]
pub(crate) struct ListenerView {
    /// Its configured address, as in metrics.
    pub(crate) name: String,
    /// Routing, limits, cache and compression (`None`: plain forwarding).
    pub(crate) features: Option<Arc<Features>>,
    /// Its certificates, when it terminates TLS.
    pub(crate) tls: Option<Arc<TlsListener>>,
}

impl Running {
    /// The address it listens on (the actual port when the config said 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or(self.cfg.bind)
    }

    /// Stops accepting; the socket stays open while someone else holds it. Returns the
    /// socket and the HTTP proxy slot, for a listener restarting on them.
    pub(crate) fn abort(self) -> (Arc<TcpListener>, Option<Arc<ArcSwap<Proxy>>>) {
        self.task.abort();
        (self.socket, self.slot)
    }
}

/// Every listener of a site.
#[derive(Debug)]
pub(crate) struct Front {
    state: Arc<SiteState>,
    stop: watch::Receiver<bool>,
    pub(crate) running: Vec<Running>,
}

impl Front {
    /// `stop` turns true when the site shuts down: accept loops return, connections drain.
    pub(crate) fn new(state: Arc<SiteState>, stop: watch::Receiver<bool>) -> Self {
        Front {
            state,
            stop,
            running: Vec::new(),
        }
    }

    /// Starts accepting on `socket` for `cfg` (with its TLS, loaded by the caller).
    pub(crate) fn start(
        &mut self,
        cfg: ListenerConfig,
        socket: Arc<TcpListener>,
        pools: &[Arc<Pool>],
        tls: Option<ListenerTls>,
    ) {
        let r = self.spawn(cfg, socket, None, pools, tls);
        self.running.push(r);
    }

    /// Starts an accept task without recording it (a reload records its own list). Features
    /// are built over `pools`, the pools the listener's config indexes. An HTTP listener
    /// restarting on its socket passes its old `slot`: the new proxy goes into it, so its open
    /// connections serve their next requests with the new pools and features.
    pub(crate) fn spawn(
        &self,
        cfg: ListenerConfig,
        socket: Arc<TcpListener>,
        slot: Option<Arc<ArcSwap<Proxy>>>,
        pools: &[Arc<Pool>],
        tls: Option<ListenerTls>,
    ) -> Running {
        let stop = self.stop.clone();
        let pool = Arc::clone(&pools[cfg.pool]);
        let name = cfg.bind.to_string();
        let mut view = ListenerView {
            name: name.clone(),
            features: None,
            tls: tls.as_ref().map(|t| Arc::clone(&t.certs)),
        };
        let mut http_slot = None;
        let task = match cfg.protocol {
            Protocol::Tcp => {
                let me = Arc::new(L4Listener {
                    cfg: cfg.clone(),
                    pool,
                    metrics: self.state.l4.clone(),
                });
                tokio::spawn(l4::accept_loop(Arc::clone(&socket), me, stop))
            }
            Protocol::Http => {
                view.features = cfg.features.as_ref().map(|f| {
                    Arc::new(Features::new(
                        name,
                        f,
                        f.default_pool,
                        pools,
                        &self.state.metrics.features,
                    ))
                });
                let proxy = Proxy {
                    pool,
                    ids: Arc::clone(&self.state.ids),
                    max_body: cfg.max_body_bytes,
                    forwarded: cfg.forwarded,
                    request_id: cfg.request_id,
                    features: view.features.clone(),
                };
                let slot = match slot {
                    Some(s) => {
                        s.store(Arc::new(proxy));
                        s
                    }
                    None => Arc::new(ArcSwap::from_pointee(proxy)),
                };
                http_slot = Some(Arc::clone(&slot));
                tokio::spawn(serve::accept_loop(
                    Arc::clone(&socket),
                    cfg.clone(),
                    slot,
                    tls.map(|t| (t.acceptor, t.handshakes)),
                    stop,
                ))
            }
        };
        Running {
            cfg,
            socket,
            task,
            view,
            slot: http_slot,
        }
    }

    /// Publishes the running listeners' features and certificates to the site state (status,
    /// gauges, certificate reloads).
    pub(crate) fn publish(&self) {
        let views: Vec<ListenerView> = self.running.iter().map(|r| r.view.clone()).collect();
        self.state
            .certs
            .set(views.iter().filter_map(|v| v.tls.clone()).collect());
        self.state.listeners.store(Arc::new(views));
    }

    /// Waits for every accept task to return (after the stop signal), and lets go of the
    /// stop channel (the site's grace wait counts its holders).
    pub(crate) async fn join(&mut self) {
        self.stop = watch::channel(true).1;
        for r in self.running.drain(..) {
            let _ = r.task.await;
        }
    }
}
