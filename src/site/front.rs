//! The client-facing listeners of a running site: one accept task per listener, HTTP or TCP,
//! started from a bound socket, a listener config and its pool. A reload can stop one accept
//! task and start another on the same socket (new settings or pool for new connections, the
//! port never closes); connections already accepted carry on with what they had.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SiteState;
use super::l4::{self, L4Listener};
use super::pool::Pool;
use super::proxy::Proxy;
use super::serve;
use crate::config::site::{ListenerConfig, Protocol};

/// One listener's accept task.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) cfg: ListenerConfig,
    pub(crate) socket: Arc<TcpListener>,
    task: JoinHandle<()>,
}

impl Running {
    /// The address it listens on (the actual port when the config said 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or(self.cfg.bind)
    }

    /// Stops accepting; the socket stays open while someone else holds it.
    pub(crate) fn abort(self) -> Arc<TcpListener> {
        self.task.abort();
        self.socket
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

    /// Starts accepting on `socket` for `cfg`, served by `pool`.
    pub(crate) fn start(&mut self, cfg: ListenerConfig, socket: Arc<TcpListener>, pool: Arc<Pool>) {
        self.running.push(self.spawn(cfg, socket, pool));
    }

    /// Starts an accept task without recording it (a reload records its own list).
    pub(crate) fn spawn(
        &self,
        cfg: ListenerConfig,
        socket: Arc<TcpListener>,
        pool: Arc<Pool>,
    ) -> Running {
        let stop = self.stop.clone();
        let task = match cfg.protocol {
            Protocol::Tcp => {
                let me = Arc::new(L4Listener {
                    cfg: cfg.clone(),
                    pool: Arc::clone(&pool),
                    metrics: self.state.l4.clone(),
                });
                tokio::spawn(l4::accept_loop(Arc::clone(&socket), me, stop))
            }
            Protocol::Http => {
                let proxy = Arc::new(Proxy {
                    pool: Arc::clone(&pool),
                    ids: Arc::clone(&self.state.ids),
                    max_body: cfg.max_body_bytes,
                });
                tokio::spawn(serve::accept_loop(
                    Arc::clone(&socket),
                    cfg.clone(),
                    proxy,
                    stop,
                ))
            }
        };
        Running { cfg, socket, task }
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
