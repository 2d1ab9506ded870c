//! Configuration reload (SIGHUP, `POST /api/reload`, [`ReloadHandle::reload`]): the site file
//! is read and validated again, diffed against the running configuration (`plan.rs`), and the
//! difference is applied without dropping a connection. A file that does not validate, or a
//! new listener that cannot bind, leaves everything as it was and is reported.
//!
//! Requests come through a channel to the task that owns the listeners, so reloads never run
//! concurrently.

mod plan;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::SiteError;
use super::SiteState;
use super::backend::Origin;
use super::front::{Front, Running};
use super::pool::{MemberError, Pool};
use super::tls::{ListenerTls, prepare_listener, prepare_pool};
use crate::config::ConfigError;
use crate::config::site::{SiteConfig, load_site_file};
use plan::{ListenerPlan, PoolPlan, ServerDiff};

type Reply = oneshot::Sender<Result<Vec<String>, ReloadError>>;

/// Reload requests, received by the running site.
pub(crate) type ReloadRequests = mpsc::UnboundedReceiver<Reply>;

/// Why a reload was not applied (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file did not read or validate.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A new listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate, key or CA file did not load.
    #[error("{0}")]
    Tls(String),
    /// The site is not running (any more).
    #[error("the site is not running")]
    NotRunning,
}

/// Asks a running site to reload its file.
#[derive(Debug, Clone)]
pub struct ReloadHandle(mpsc::UnboundedSender<Reply>);

impl ReloadHandle {
    /// Reloads; returns one line per change applied.
    pub async fn reload(&self) -> Result<Vec<String>, ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.0.send(tx).map_err(|_| ReloadError::NotRunning)?;
        rx.await.map_err(|_| ReloadError::NotRunning)?
    }
}

/// A handle and the receiving end for the site.
pub(crate) fn channel() -> (ReloadHandle, ReloadRequests) {
    let (tx, rx) = mpsc::unbounded_channel();
    (ReloadHandle(tx), rx)
}

/// Reloads on every SIGHUP until aborted (what `meridian site` runs beside the site).
pub async fn reload_on_sighup(h: ReloadHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload through the admin API only");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the site file");
            // The outcome is logged by the reloader.
            let _ = h.reload().await;
        }
    }
    #[cfg(not(unix))]
    let _ = h;
}

/// Owns the running configuration and the listeners; applies reloads.
#[derive(Debug)]
pub(crate) struct Reloader {
    cfg: SiteConfig,
    pub(crate) front: Front,
    rx: ReloadRequests,
}

impl Reloader {
    pub(crate) fn new(cfg: SiteConfig, front: Front, rx: ReloadRequests) -> Self {
        Reloader { cfg, front, rx }
    }

    /// Applies reload requests until `shutdown` completes; returns the configuration then
    /// running (its shutdown settings apply).
    pub(crate) async fn serve(
        &mut self,
        state: &Arc<SiteState>,
        shutdown: impl Future<Output = ()>,
    ) -> SiteConfig {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return self.cfg.clone(),
                Some(reply) = self.rx.recv() => {
                    let r = self.reload(state).await;
                    match &r {
                        Ok(changes) => {
                            state.reloads.with_label_values(&["ok"]).inc();
                            tracing::info!(file = %self.cfg.file.display(), ?changes, "site reloaded");
                        }
                        Err(e) => {
                            state.reloads.with_label_values(&["error"]).inc();
                            tracing::error!(error = %e, "reload failed; the running configuration stays");
                        }
                    }
                    let _ = reply.send(r);
                }
            }
        }
    }

    async fn reload(&mut self, state: &Arc<SiteState>) -> Result<Vec<String>, ReloadError> {
        let new = load_site_file(&self.cfg.file)?;
        let plan = plan::plan(&self.cfg, &new);
        // Bind first: a failure here leaves everything untouched.
        let mut bound = Vec::new();
        for (l, p) in new.listeners.iter().zip(&plan.listeners) {
            bound.push(match p {
                ListenerPlan::Bind => Some(Arc::new(TcpListener::bind(l.bind).await.map_err(
                    |source| ReloadError::Bind {
                        addr: l.bind,
                        source,
                    },
                )?)),
                _ => None,
            });
        }
        // Then every file: new listeners' certificates, running ones' (re-read, as renewals
        // arrive by reload), pools' CAs. A failure here too leaves everything untouched.
        let mut tls = Vec::new();
        for (l, p) in new.listeners.iter().zip(&plan.listeners) {
            tls.push(match p {
                ListenerPlan::Keep(_) => None,
                _ => prepare_listener(l, &state.metrics.features).map_err(tls_err)?,
            });
        }
        let kept: Vec<String> = new
            .listeners
            .iter()
            .zip(&plan.listeners)
            .filter(|(_, p)| matches!(p, ListenerPlan::Keep(_)))
            .map(|(l, _)| l.bind.to_string())
            .collect();
        let kept_certs = state
            .certs
            .load_all(|name| kept.iter().any(|k| k == name))
            .map_err(|e| ReloadError::Tls(e.to_string()))?;
        let mut backend_tls = Vec::new();
        for (pc, pp) in new.pools.iter().zip(&plan.pools) {
            backend_tls.push(match pp {
                PoolPlan::Keep(..) => None,
                _ => prepare_pool(pc).map_err(tls_err)?,
            });
        }
        let old_pools = state.pools();
        let find = |name: &str| old_pools.iter().find(|p| p.cfg.name == name).cloned();
        let mut pools = Vec::new();
        for ((pc, pp), btls) in new.pools.iter().zip(&plan.pools).zip(backend_tls) {
            // A pool is started once its servers' TLS is set.
            let start = |p: &Arc<Pool>| {
                if let Some(t) = btls.clone() {
                    p.set_backend_tls(t);
                }
                state.start_pool(p);
            };
            let pool = match (pp, find(&pc.name)) {
                (PoolPlan::Keep(_, diff), Some(p)) => {
                    apply_diff(&p, diff);
                    p
                }
                (PoolPlan::Replace(_, diff), Some(old)) => {
                    // Connections made with other TLS settings are not carried over.
                    let carried = if old.cfg.tls == pc.tls {
                        old.hand_over(&diff.removed, &diff.moved, &diff.changed, pc)
                    } else {
                        old.retire_all();
                        Vec::new()
                    };
                    old.stop();
                    let p = Arc::new(Pool::with_backends(pc.clone(), &state.metrics, carried));
                    start(&p);
                    p
                }
                _ => {
                    let p = Arc::new(Pool::new(pc.clone(), &state.metrics));
                    start(&p);
                    p
                }
            };
            pools.push(pool);
        }
        for name in &plan.dropped_pools {
            if let Some(p) = find(name) {
                p.stop();
                p.retire_all();
            }
        }
        state.pools.store(Arc::new(pools.clone()));
        self.restart_listeners(&new, &plan.listeners, &plan.closed, bound, tls, &pools);
        state.certs.install(kept_certs);
        self.front.publish();
        state.slow_latency.store(
            super::slow_latency_ns(&new),
            std::sync::atomic::Ordering::Relaxed,
        );
        state.api.store(Arc::new(super::api::resolve(
            new.admin.as_ref().map(|a| a.api.clone()),
        )));
        let summary = plan.summary();
        self.cfg = new;
        Ok(summary)
    }

    fn restart_listeners(
        &mut self,
        new: &SiteConfig,
        plans: &[ListenerPlan],
        closed: &[usize],
        bound: Vec<Option<Arc<TcpListener>>>,
        tls: Vec<Option<ListenerTls>>,
        pools: &[Arc<Pool>],
    ) {
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.front.running)
            .into_iter()
            .map(Some)
            .collect();
        let mut running = Vec::new();
        for (((lc, p), socket), tls) in new.listeners.iter().zip(plans).zip(bound).zip(tls) {
            let (socket, slot) = match (p, socket) {
                (ListenerPlan::Keep(i), _) => match old[*i].take() {
                    Some(r) => {
                        running.push(r);
                        continue;
                    }
                    None => continue,
                },
                (ListenerPlan::Restart(i), _) => match old[*i].take() {
                    Some(r) => r.abort(),
                    None => continue,
                },
                (ListenerPlan::Bind, Some(s)) => (s, None),
                (ListenerPlan::Bind, None) => continue,
            };
            running.push(self.front.spawn(lc.clone(), socket, slot, pools, tls));
        }
        for &i in closed {
            if let Some(r) = old[i].take() {
                tracing::info!(listener = %r.local_addr(), "listener closed by reload");
                drop(r.abort());
            }
        }
        self.front.running = running;
    }
}

fn tls_err(e: SiteError) -> ReloadError {
    ReloadError::Tls(e.to_string())
}

/// Applies one kept pool's server changes: additions first, so the pool never empties.
fn apply_diff(p: &Arc<Pool>, d: &ServerDiff) {
    let warn = |e: MemberError| tracing::warn!(pool = %p.cfg.name, error = %e, "reload: server change skipped");
    for s in &d.added {
        if let Err(e) = p.add(s.clone(), Origin::Config) {
            warn(e);
        }
    }
    for s in &d.moved {
        p.replace(s.clone(), Origin::Config);
    }
    for s in &d.changed {
        if let Err(e) = p.update(s) {
            warn(e);
        }
    }
    for id in &d.removed {
        if let Err(e) = p.remove(id) {
            warn(e);
        }
    }
}
