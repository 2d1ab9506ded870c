//! Membership changes of a pool at run time: add, remove (drain first), weight and state, the
//! in-place update a reload makes, and the whole-set sync a discovery refresh makes. Each change
//! builds a new [`Members`] snapshot under the pool's edit lock and swaps it in; picks in
//! progress keep the snapshot they loaded. A server never loses its connections, health or
//! counters because another one changed.
//!
//! Removal drains: the server is flagged (no new picks), stays listed as `removing` while
//! leases on it remain, and is dropped by the first refresh after its last lease ended.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::balance::Maglev;
use crate::config::site::ServerConfig;

use super::super::backend::{Backend, Origin, ServerState};
use super::super::checker;
use super::{DEFAULT_RTT_NS, Members, Pool};

/// Why a membership change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MemberError {
    #[error("pool {pool:?} already has a server {id:?}")]
    Exists { pool: String, id: String },
    #[error("pool {pool:?} has no server {id:?}")]
    NoSuchServer { pool: String, id: String },
    #[error("removing {id:?} would leave pool {pool:?} without servers")]
    LastServer { pool: String, id: String },
}

/// What a [`Pool::sync`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SyncReport {
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
    pub(crate) updated: Vec<String>,
}

impl SyncReport {
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.updated.is_empty()
    }
}

impl Pool {
    /// A new server of this pool (not a member yet).
    pub(super) fn make_backend(&self, s: ServerConfig, origin: Origin) -> Arc<Backend> {
        let up = self.cfg.check.is_none() || s.initial_up.unwrap_or(false);
        let m = self.site_metrics.backend(&self.cfg.name, &s.id);
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let b = Arc::new(Backend::new(
            s,
            (key, origin),
            self.cfg.breaker,
            up,
            DEFAULT_RTT_NS,
            m,
        ));
        if let Some(tls) = self.backend_tls.get() {
            b.conns.set_tls(tls.clone());
        }
        b
    }

    /// Swaps in a snapshot of `backends` (sorted by key); builds the hash table unless given.
    /// Callers hold the edit lock (or own the pool alone).
    pub(super) fn publish(&self, backends: Vec<Arc<Backend>>, maglev: Option<Arc<Maglev>>) {
        let maglev = match maglev {
            Some(t) => Some(t),
            None if self.needs_hash() => {
                let ids: Vec<(&str, u32)> = backends
                    .iter()
                    .map(|b| (b.cfg.id.as_str(), b.weight()))
                    .collect();
                Some(Arc::new(Maglev::new(&ids)))
            }
            None => None,
        };
        let (usable, weights, panic) = self.health(&backends);
        self.members.store(Arc::new(Members::build(
            backends, maglev, usable, weights, panic,
        )));
    }

    /// The members minus removed servers with no lease left (their checks stop).
    pub(super) fn reap(&self, backends: &[Arc<Backend>]) -> Vec<Arc<Backend>> {
        backends
            .iter()
            .filter(|b| {
                let gone = b.is_removed() && b.in_flight.load(Ordering::Relaxed) == 0;
                if gone {
                    b.stop_checker();
                    tracing::info!(pool = %self.cfg.name, server = %b.cfg.id, "removed server drained and dropped");
                }
                !gone
            })
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.edit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a server; it starts down until checked when the pool has checks, and ramps up
    /// over `slow_start`.
    pub(crate) fn add(
        self: &Arc<Self>,
        s: ServerConfig,
        origin: Origin,
    ) -> Result<Arc<Backend>, MemberError> {
        let _edit = self.lock();
        let old = self.members.load();
        if old.by_id(&s.id).is_some() {
            return Err(MemberError::Exists {
                pool: self.cfg.name.clone(),
                id: s.id,
            });
        }
        let b = self.make_backend(s, origin);
        let mut backends = old.backends.clone();
        backends.push(Arc::clone(&b));
        self.publish(backends, None);
        self.start_checker(&b);
        tracing::info!(pool = %self.cfg.name, server = %b.cfg.id, address = %b.cfg.address, origin = origin.as_str(), "server added");
        Ok(b)
    }

    /// Removes a server: it takes nothing new at once and leaves when its last lease ends.
    /// The last server of a pool cannot be removed (a pool never empties silently).
    pub(crate) fn remove(&self, id: &str) -> Result<(), MemberError> {
        let _edit = self.lock();
        let old = self.members.load();
        let Some(b) = old.by_id(id) else {
            return Err(self.no_such(id));
        };
        if old.backends.iter().filter(|x| !x.is_removed()).count() == 1 {
            return Err(MemberError::LastServer {
                pool: self.cfg.name.clone(),
                id: id.to_string(),
            });
        }
        self.retire(b);
        let kept = self.reap(&old.backends);
        self.publish(kept, None);
        Ok(())
    }

    fn retire(&self, b: &Backend) {
        b.removed.store(true, Ordering::Relaxed);
        b.conns.clear();
        tracing::info!(pool = %self.cfg.name, server = %b.cfg.id, in_flight = b.in_flight.load(Ordering::Relaxed), "server removed; draining");
    }

    /// Sets a server's weight (0..=1000); consistent-hash tables are rebuilt.
    pub(crate) fn set_weight(&self, id: &str, weight: u32) -> Result<(), MemberError> {
        let _edit = self.lock();
        let old = self.members.load();
        let b = old.by_id(id).ok_or_else(|| self.no_such(id))?;
        let before = b.weight();
        b.set_weight(weight);
        self.publish(old.backends.clone(), None);
        tracing::info!(pool = %self.cfg.name, server = %id, before, weight, "server weight changed");
        Ok(())
    }

    /// Sets a server's administrative state.
    pub(crate) fn set_state(&self, id: &str, state: ServerState) -> Result<(), MemberError> {
        let _edit = self.lock();
        let old = self.members.load();
        let b = old.by_id(id).ok_or_else(|| self.no_such(id))?;
        let before = b.state();
        b.set_state(state);
        self.publish(old.backends.clone(), old.maglev.clone());
        tracing::info!(pool = %self.cfg.name, server = %id, before = before.as_str(), state = state.as_str(), "server state changed");
        Ok(())
    }

    fn no_such(&self, id: &str) -> MemberError {
        MemberError::NoSuchServer {
            pool: self.cfg.name.clone(),
            id: id.to_string(),
        }
    }

    /// Makes the servers of `origin` equal to `want` (by id): adds the new ones, removes (and
    /// drains) the missing ones, and updates the weight, limit and state of the others in
    /// place. Servers of other origins are left alone. A server whose address changed is
    /// replaced (the old one drains).
    pub(crate) fn sync(self: &Arc<Self>, origin: Origin, want: &[ServerConfig]) -> SyncReport {
        let _edit = self.lock();
        let old = self.members.load();
        let mut report = SyncReport::default();
        let mut backends = old.backends.clone();
        let wanted: HashSet<&str> = want.iter().map(|s| s.id.as_str()).collect();
        for b in old
            .backends
            .iter()
            .filter(|b| b.origin == origin && !b.is_removed())
        {
            let same_addr = want
                .iter()
                .any(|s| s.id == b.cfg.id && s.address == b.cfg.address);
            if !wanted.contains(b.cfg.id.as_str()) || !same_addr {
                self.retire(b);
                report.removed.push(b.cfg.id.clone());
            }
        }
        let mut fresh = Vec::new();
        for s in want {
            match old.by_id(&s.id).filter(|b| !b.is_removed()) {
                Some(b) if b.origin == origin => {
                    if update_in_place(b, s) {
                        report.updated.push(s.id.clone());
                    }
                }
                Some(b) => {
                    tracing::warn!(pool = %self.cfg.name, server = %s.id, owner = b.origin.as_str(), "server id already taken by another source; skipped");
                }
                None => {
                    let b = self.make_backend(s.clone(), origin);
                    report.added.push(s.id.clone());
                    backends.push(Arc::clone(&b));
                    fresh.push(b);
                }
            }
        }
        if report.is_empty() {
            return report;
        }
        let kept = self.reap(&backends);
        self.publish(kept, None);
        for b in &fresh {
            self.start_checker(b);
        }
        tracing::info!(pool = %self.cfg.name, origin = origin.as_str(), added = ?report.added, removed = ?report.removed, updated = ?report.updated, "pool servers changed");
        report
    }

    /// Applies a server's new settings (same address) in place.
    pub(crate) fn update(&self, s: &ServerConfig) -> Result<bool, MemberError> {
        let _edit = self.lock();
        let old = self.members.load();
        let b = old.by_id(&s.id).ok_or_else(|| self.no_such(&s.id))?;
        let changed = update_in_place(b, s);
        if changed {
            self.publish(old.backends.clone(), None);
            tracing::info!(pool = %self.cfg.name, server = %s.id, weight = s.weight, max_connections = s.max_connections, drain = s.drain, "server settings changed");
        }
        Ok(changed)
    }

    /// Replaces the server with `s.id` by a new one at `s.address` (the old one drains).
    pub(crate) fn replace(self: &Arc<Self>, s: ServerConfig, origin: Origin) {
        let fresh = {
            let _edit = self.lock();
            let old = self.members.load();
            if let Some(b) = old.by_id(&s.id) {
                self.retire(b);
            }
            let b = self.make_backend(s, origin);
            let mut backends = self.reap(&old.backends);
            backends.push(Arc::clone(&b));
            self.publish(backends, None);
            b
        };
        self.start_checker(&fresh);
    }

    /// Hands the servers over to a pool with new settings `cfg` that replaces this one: every
    /// running server except `removed` and `moved` ones (which drain here), with `changed`
    /// settings applied. A changed breaker configuration restarts their breakers closed.
    pub(crate) fn hand_over(
        &self,
        removed: &[String],
        moved: &[ServerConfig],
        changed: &[ServerConfig],
        cfg: &crate::config::site::PoolConfig,
    ) -> Vec<Arc<Backend>> {
        let _edit = self.lock();
        let old = self.members.load();
        let mut carried = Vec::new();
        for b in old.backends.iter().filter(|b| !b.is_removed()) {
            let leaves = b.origin == Origin::Config
                && (removed.contains(&b.cfg.id) || moved.iter().any(|s| s.id == b.cfg.id));
            if leaves {
                self.retire(b);
                continue;
            }
            if let Some(s) = changed.iter().find(|s| s.id == b.cfg.id) {
                update_in_place(b, s);
            }
            if cfg.breaker != self.cfg.breaker {
                b.reset_breaker(cfg.breaker);
            }
            carried.push(Arc::clone(b));
        }
        carried
    }

    /// Removes every server (the pool left the configuration); they drain.
    pub(crate) fn retire_all(&self) {
        let _edit = self.lock();
        for b in self.members.load().backends.iter() {
            if !b.is_removed() {
                self.retire(b);
            }
        }
    }

    /// Starts the active checks of every member (once the site runs).
    pub(crate) fn start(self: &Arc<Self>) {
        self.running.store(true, Ordering::Relaxed);
        for b in &self.members.load().backends {
            self.start_checker(b);
        }
    }

    /// Stops every task of the pool: checks of its members and pool tasks (discovery).
    pub(crate) fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
        for b in &self.members.load().backends {
            b.stop_checker();
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
    }

    /// Runs a task for as long as the pool runs (stopped by [`Pool::stop`]).
    pub(crate) fn spawn_task(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f).abort_handle();
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(h);
    }

    fn start_checker(self: &Arc<Self>, b: &Arc<Backend>) {
        let Some(check) = self.cfg.check.clone() else {
            return;
        };
        if !self.running.load(Ordering::Relaxed) || b.is_removed() {
            return;
        }
        let task = tokio::spawn(checker::run(Arc::clone(self), Arc::clone(b), check));
        let old = b
            .checker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task.abort_handle());
        if let Some(old) = old {
            old.abort();
        }
    }
}

/// Applies a server's new settings to the running server; true when something changed.
pub(crate) fn update_in_place(b: &Backend, s: &ServerConfig) -> bool {
    let mut changed = false;
    if b.weight() != s.weight {
        b.set_weight(s.weight);
        changed = true;
    }
    if b.max_connections() != s.max_connections {
        b.set_max_connections(s.max_connections);
        changed = true;
    }
    let state = if s.drain {
        ServerState::Drain
    } else {
        ServerState::Ready
    };
    if b.cfg.drain != s.drain && b.state() != state {
        b.set_state(state);
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::site::parse_site;
    use crate::site::metrics::SiteMetrics;

    fn pool(extra: &str) -> Arc<Pool> {
        let text = format!("[pools.p]\nservers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n{extra}\n");
        let cfg = parse_site(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Pool::new(cfg.pools[0].clone(), &SiteMetrics::new()))
    }

    fn server(addr: &str, weight: u32) -> ServerConfig {
        ServerConfig {
            address: addr.parse().expect("addr"),
            id: addr.to_string(),
            weight,
            max_connections: 1024,
            initial_up: None,
            drain: false,
        }
    }

    fn ids(p: &Arc<Pool>, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                p.pick(0, &[])
                    .map(|l| l.backend().cfg.id.clone())
                    .unwrap_or_else(|_| "-".into())
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_server_drains_then_leaves() {
        let p = pool("");
        let lease = p.pick(0, &[]).expect("pick");
        let busy = lease.backend().cfg.id.clone();
        p.remove(&busy).expect("remove");
        let m = p.members();
        assert!(m.by_id(&busy).is_none(), "not addressable any more");
        assert_eq!(m.backends.len(), 2, "still listed while its lease lives");
        for _ in 0..4 {
            let l = p.pick(0, &[]).expect("pick");
            assert_ne!(l.backend().cfg.id, busy, "takes nothing new");
        }
        drop(lease);
        p.refresh();
        assert_eq!(
            p.members().backends.len(),
            1,
            "dropped after its last lease"
        );
        let last = p.members().backends[0].cfg.id.clone();
        assert!(matches!(
            p.remove(&last),
            Err(MemberError::LastServer { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_added_server_ramps_up_with_slow_start() {
        let p = pool("algorithm = \"weighted-round-robin\"\nslow_start = \"10s\"");
        tokio::time::advance(Duration::from_secs(60)).await;
        p.refresh();
        p.add(server("127.0.0.1:3", 1), Origin::Api).expect("add");
        assert_eq!(p.members().weights, [16, 16, 2], "10 % at first");
        tokio::time::advance(Duration::from_secs(10)).await;
        p.refresh();
        assert_eq!(p.members().weights, [16, 16, 16]);
        assert!(matches!(
            p.add(server("127.0.0.1:3", 1), Origin::Api),
            Err(MemberError::Exists { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn sync_touches_only_its_own_origin() {
        let p = pool("");
        let want = [server("127.0.0.1:7", 1), server("127.0.0.1:8", 2)];
        let r = p.sync(Origin::Discovery, &want);
        assert_eq!(r.added, ["127.0.0.1:7", "127.0.0.1:8"]);
        let r = p.sync(Origin::Discovery, &[server("127.0.0.1:8", 3)]);
        assert_eq!(r.removed, ["127.0.0.1:7"]);
        assert_eq!(r.updated, ["127.0.0.1:8"]);
        let m = p.members();
        let live: Vec<&str> = m
            .backends
            .iter()
            .filter(|b| !b.is_removed())
            .map(|b| b.cfg.id.as_str())
            .collect();
        assert_eq!(live, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:8"]);
        assert_eq!(m.by_id("127.0.0.1:8").map(|b| b.weight()), Some(3));
        assert!(
            p.sync(Origin::Discovery, &[server("127.0.0.1:8", 3)])
                .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn weight_and_state_take_effect_for_the_next_pick() {
        let p = pool("algorithm = \"weighted-round-robin\"");
        p.set_weight("127.0.0.1:1", 3).expect("weight");
        let got = ids(&p, 8);
        assert_eq!(
            got.iter().filter(|i| *i == "127.0.0.1:1").count(),
            6,
            "{got:?}"
        );
        p.set_state("127.0.0.1:1", ServerState::Maintenance)
            .expect("state");
        assert!(ids(&p, 4).iter().all(|i| i == "127.0.0.1:2"));
        p.set_state("127.0.0.1:1", ServerState::Ready)
            .expect("state");
        assert!(ids(&p, 4).iter().any(|i| i == "127.0.0.1:1"));
        assert!(p.set_weight("nope", 1).is_err());
    }
}
