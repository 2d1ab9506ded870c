//! The health board: every datacenter's live state, fed by one check task per distinct check.
//!
//! Writers (check tasks, the admin API, reloads) serialise on one mutex — a few hundred
//! updates a second at most. Readers on the DNS path never touch it: each zone's health is
//! republished as an immutable snapshot in a [`ZoneHealth`] whenever a datacenter's visible
//! health changes.
//!
//! Datacenters share a check when their check specs are identical apart from `initial`: the
//! target is then probed once per interval however many datacenters, services and zones use
//! it. Check tasks hold only a weak reference to the board; dropping the last [`HealthBoard`]
//! stops them.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::config::Name;
use crate::config::zone::{CheckSpec, ZoneSet};

use super::check::{AnyProbe, CheckResult, target_label};
use super::health::{DcHealth, DcState, ZoneHealth};
use super::metrics::ProbeMetrics;
use super::schedule::{self, Report, Sink, Timing};

/// Errors of the health board.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Created outside a Tokio runtime.
    #[error("the health board needs a Tokio runtime: {0}")]
    NoRuntime(#[from] tokio::runtime::TryCurrentError),
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client for health checks: {0}")]
    Client(#[source] reqwest::Error),
    /// Metrics could not be registered (a name already taken on that registry).
    #[error("cannot register probe metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// No zone with that origin is attached.
    #[error("no zone {0} on the health board")]
    UnknownZone(String),
    /// The zone has no datacenter of that name.
    #[error("no datacenter {dc:?} in zone {zone}")]
    UnknownDatacenter {
        /// The zone's origin.
        zone: String,
        /// The name asked for.
        dc: String,
    },
}

/// The live health of every datacenter of the attached zones. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct HealthBoard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) state: Mutex<State>,
    metrics: ProbeMetrics,
    client: reqwest::Client,
    runtime: Handle,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) zones: Vec<ZoneSlot>,
    pub(super) checks: HashMap<u64, CheckSlot>,
    next_id: u64,
}

#[derive(Debug)]
pub(super) struct ZoneSlot {
    pub(super) origin: Name,
    health: Arc<ZoneHealth>,
    pub(super) dcs: Vec<DcSlot>,
}

#[derive(Debug)]
pub(super) struct DcSlot {
    pub(super) name: String,
    pub(super) check: Option<u64>,
    initial: DcState,
    pub(super) admin: Option<DcState>,
    pub(super) current: DcHealth,
    /// When `current.state` was entered.
    pub(super) since: SystemTime,
}

#[derive(Debug)]
pub(super) struct CheckSlot {
    /// The spec with `initial_up` normalised: the identity that datacenters share.
    spec: CheckSpec,
    pub(super) target: String,
    pub(super) status: CheckStatus,
    first: watch::Sender<bool>,
    task: AbortHandle,
}

/// The latest result of one check.
#[derive(Debug, Default, Clone)]
pub(super) struct CheckStatus {
    /// `None` before the first result.
    pub(super) state: Option<DcState>,
    pub(super) changing: bool,
    pub(super) load: f32,
    pub(super) result: Option<CheckResult>,
    pub(super) rtt: Option<Duration>,
    pub(super) error: Option<String>,
    pub(super) at: Option<SystemTime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for c in lock(&self.state).checks.values() {
            c.task.abort();
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves consistent data (every update is one assignment
    // per field), so poisoning is ignored rather than propagated to the DNS side.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HealthBoard {
    /// An empty board whose metrics are registered on `registry`. Must be called inside a
    /// Tokio runtime: check tasks are spawned on it.
    pub fn new(registry: &prometheus::Registry) -> Result<Self, ProbeError> {
        let runtime = Handle::try_current()?;
        let client = reqwest::Client::builder()
            // A health check must see the site itself: no proxy from the environment, no
            // redirects, and a fresh connection every time (as HAProxy does), so a pooled
            // connection can neither hide nor fake a dead listener.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .user_agent(concat!("meridian-probe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ProbeError::Client)?;
        Ok(HealthBoard {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                metrics: ProbeMetrics::new(registry)?,
                client,
                runtime,
            }),
        })
    }

    pub(super) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Makes the board follow `zones`: one [`ZoneHealth`] per zone of [`ZoneSet::zones`], in
    /// that order. Datacenters whose check (and zone and name) still exist keep their state,
    /// admin override and history; new checks start at once; checks no longer used stop. Call
    /// it at start-up and on every reload, then [`first_round`](Self::first_round) before
    /// serving from the new snapshots.
    pub fn attach(&self, zones: &ZoneSet) -> Vec<Arc<ZoneHealth>> {
        let mut guard = lock(&self.inner.state);
        let st = &mut *guard;
        let old_zones = std::mem::take(&mut st.zones);
        let mut used = HashSet::new();
        let now = SystemTime::now();
        for zone in zones.zones() {
            let old = old_zones.iter().find(|z| z.origin == zone.origin);
            let origin = zone.origin.as_str();
            let mut dcs = Vec::with_capacity(zone.datacenters.len());
            for dc in &zone.datacenters {
                let check = dc.check.as_ref().map(|spec| self.check_for(st, spec));
                used.extend(check);
                let prev = old.and_then(|z| z.dcs.iter().find(|d| d.name == dc.name));
                let mut slot = DcSlot {
                    name: dc.name.clone(),
                    check,
                    initial: match &dc.check {
                        Some(c) if !c.initial_up => DcState::Down,
                        _ => DcState::Up,
                    },
                    admin: prev.and_then(|p| p.admin),
                    current: DcHealth::UP,
                    since: now,
                };
                slot.current = effective(&slot, &st.checks);
                match prev {
                    Some(p) if p.current.state == slot.current.state => slot.since = p.since,
                    Some(p) => log_change(
                        origin,
                        &slot.name,
                        (p.current.state, slot.current.state),
                        None,
                        "reload",
                    ),
                    None => {}
                }
                self.inner
                    .metrics
                    .set_state(origin, &slot.name, slot.current.state);
                dcs.push(slot);
            }
            let health = Arc::new(ZoneHealth::new(
                zone.origin.clone(),
                dcs.iter().map(|d| d.current).collect(),
            ));
            st.zones.push(ZoneSlot {
                origin: zone.origin.clone(),
                health,
                dcs,
            });
        }
        self.forget_removed(st, &old_zones, &used);
        st.zones.iter().map(|z| z.health.clone()).collect()
    }

    /// The id of the running check for `spec`, started if there is none.
    fn check_for(&self, st: &mut State, spec: &CheckSpec) -> u64 {
        let key = CheckSpec {
            initial_up: true,
            ..spec.clone()
        };
        if let Some((id, _)) = st.checks.iter().find(|(_, c)| c.spec == key) {
            return *id;
        }
        let id = st.next_id;
        st.next_id += 1;
        let target = target_label(&spec.target);
        let sink = BoardSink {
            board: Arc::downgrade(&self.inner),
            id,
        };
        let probe = AnyProbe::new(spec, &self.inner.client);
        let rng = SmallRng::seed_from_u64(rand::random());
        let task = self
            .inner
            .runtime
            .spawn(schedule::run(probe, Timing::of(spec), rng, sink));
        let abort = task.abort_handle();
        let label = target.clone();
        // The loop has no error path of its own; a panic would be a bug, and must not pass
        // silently while the datacenters it serves keep their last state.
        self.inner.runtime.spawn(async move {
            if let Err(e) = task.await
                && e.is_panic()
            {
                tracing::error!(target = %label, error = %e, "health check task panicked");
            }
        });
        tracing::info!(target = %target, interval = ?spec.interval, timeout = ?spec.timeout,
            rise = spec.rise, fall = spec.fall, "health check started");
        st.checks.insert(
            id,
            CheckSlot {
                spec: key,
                target,
                status: CheckStatus::default(),
                first: watch::Sender::new(false),
                task: abort,
            },
        );
        id
    }

    /// Stops checks that no datacenter uses and drops the series of vanished datacenters.
    fn forget_removed(&self, st: &mut State, old_zones: &[ZoneSlot], used: &HashSet<u64>) {
        let removed: Vec<CheckSlot> = {
            let ids: Vec<u64> = st
                .checks
                .keys()
                .filter(|id| !used.contains(id))
                .copied()
                .collect();
            ids.iter().filter_map(|id| st.checks.remove(id)).collect()
        };
        for c in removed {
            c.task.abort();
            tracing::info!(target = %c.target, "health check stopped");
            if !st.checks.values().any(|k| k.target == c.target) {
                self.inner.metrics.forget_target(&c.target);
            }
        }
        for z in old_zones {
            let now = st.zones.iter().find(|n| n.origin == z.origin);
            for d in &z.dcs {
                if !now.is_some_and(|n| n.dcs.iter().any(|x| x.name == d.name)) {
                    self.inner.metrics.forget_dc(z.origin.as_str(), &d.name);
                }
            }
        }
    }

    /// Waits until every check started so far has reported once. Each first check starts when
    /// its datacenter is attached and is bounded by its timeout, so this returns within the
    /// longest check timeout of the new checks. Before a datacenter's first result the board
    /// shows the state declared in the zone (`initial`, up by default).
    pub async fn first_round(&self) {
        let waiting: Vec<watch::Receiver<bool>> = lock(&self.inner.state)
            .checks
            .values()
            .filter(|c| !*c.first.borrow())
            .map(|c| c.first.subscribe())
            .collect();
        for mut rx in waiting {
            // An error means the check was removed by a reload meanwhile: nothing to wait for.
            let _ = rx.wait_for(|reported| *reported).await;
        }
    }

    /// Sets (`Some`) or clears (`None`) an operator's override of a datacenter's state, e.g.
    /// `Some(DcState::Draining)` to drain it by hand. The override wins over check results and
    /// survives reloads while the zone and datacenter exist.
    pub fn set_admin(
        &self,
        zone: &Name,
        dc: &str,
        state: Option<DcState>,
    ) -> Result<(), ProbeError> {
        let mut guard = lock(&self.inner.state);
        let st = &mut *guard;
        let z = st
            .zones
            .iter_mut()
            .find(|z| &z.origin == zone)
            .ok_or_else(|| ProbeError::UnknownZone(zone.to_string()))?;
        let slot = z.dcs.iter_mut().find(|d| d.name == dc).ok_or_else(|| {
            ProbeError::UnknownDatacenter {
                zone: zone.to_string(),
                dc: dc.to_string(),
            }
        })?;
        tracing::info!(zone = %z.origin, datacenter = dc,
            admin = state.map_or("none", DcState::as_str), "admin override set");
        slot.admin = state;
        let new = effective(slot, &st.checks);
        let change = self.apply(z.origin.as_str(), slot, new);
        z.publish();
        if let Some(c) = change {
            log_change(z.origin.as_str(), dc, c, None, "admin");
        }
        Ok(())
    }

    /// Records a new health value for a datacenter: since, metrics. Returns the change of
    /// state, which the caller logs once it has published it (so a log line never describes
    /// a state that the DNS path does not see yet).
    fn apply(&self, zone: &str, dc: &mut DcSlot, new: DcHealth) -> Option<(DcState, DcState)> {
        let change = (new.state != dc.current.state).then_some((dc.current.state, new.state));
        if change.is_some() {
            dc.since = SystemTime::now();
            self.inner.metrics.transition(zone, &dc.name, new.state);
            self.inner.metrics.set_state(zone, &dc.name, new.state);
        }
        dc.current = new;
        change
    }

    /// Takes one check report: updates the check, then every datacenter that uses it.
    fn record(&self, id: u64, r: Report) -> ControlFlow<()> {
        let mut guard = lock(&self.inner.state);
        let st = &mut *guard;
        let Some(c) = st.checks.get_mut(&id) else {
            return ControlFlow::Break(());
        };
        let obs = &r.observation;
        self.inner
            .metrics
            .duration(&c.target, r.elapsed.as_secs_f64());
        if let Some(t) = r.transition {
            tracing::debug!(target = %c.target, from = t.from.map_or("none", DcState::as_str),
                to = t.to.as_str(), "check state changed");
        }
        if let Some(e) = &obs.error {
            tracing::debug!(target = %c.target, result = obs.result.as_str(), error = %e,
                "health check failed");
        }
        c.status = CheckStatus {
            state: Some(r.state),
            changing: r.changing,
            load: obs.load.unwrap_or(0.0),
            result: Some(obs.result),
            rtt: Some(r.elapsed),
            error: obs.error.clone(),
            at: Some(SystemTime::now()),
        };
        c.first.send_replace(true);
        let checks = &st.checks;
        for z in &mut st.zones {
            let mut dirty = false;
            let mut changes = Vec::new();
            for dc in z.dcs.iter_mut().filter(|d| d.check == Some(id)) {
                let new = effective(dc, checks);
                let origin = z.origin.as_str();
                self.inner
                    .metrics
                    .check(origin, &dc.name, obs.result, new.load);
                if new != dc.current {
                    changes.extend(self.apply(origin, dc, new).map(|c| (dc.name.clone(), c)));
                    dirty = true;
                }
            }
            if dirty {
                z.publish();
            }
            for (dc, change) in changes {
                log_change(
                    z.origin.as_str(),
                    &dc,
                    change,
                    obs.error.as_deref(),
                    "check",
                );
            }
        }
        ControlFlow::Continue(())
    }
}

impl ZoneSlot {
    fn publish(&self) {
        self.health
            .store(self.dcs.iter().map(|d| d.current).collect());
    }
}

/// What the DNS side sees: the admin override, else the check's state, else the declared
/// initial state.
fn effective(dc: &DcSlot, checks: &HashMap<u64, CheckSlot>) -> DcHealth {
    let status = dc.check.and_then(|id| checks.get(&id)).map(|c| &c.status);
    DcHealth {
        state: dc
            .admin
            .or(status.and_then(|s| s.state))
            .unwrap_or(dc.initial),
        load: status.map_or(0.0, |s| s.load),
        changing: status.is_some_and(|s| s.changing),
    }
}

fn log_change(
    zone: &str,
    dc: &str,
    (from, to): (DcState, DcState),
    error: Option<&str>,
    why: &str,
) {
    tracing::info!(
        zone,
        datacenter = dc,
        from = from.as_str(),
        to = to.as_str(),
        cause = why,
        error = error.unwrap_or(""),
        "datacenter state changed"
    );
}

/// Routes a check task's reports to the board; stops the task when the board or the check
/// is gone.
struct BoardSink {
    board: Weak<Inner>,
    id: u64,
}

impl Sink for BoardSink {
    fn record(&mut self, report: Report) -> ControlFlow<()> {
        match self.board.upgrade() {
            Some(inner) => HealthBoard { inner }.record(self.id, report),
            None => ControlFlow::Break(()),
        }
    }
}
