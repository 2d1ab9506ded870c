//! The health of one datacenter as the policy engine sees it.

/// Whether a datacenter may receive new clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DcState {
    /// Passing its checks.
    Up,
    /// Up, but the site asked for no new clients (its `/health` says `draining`, or an operator
    /// drained it).
    Draining,
    /// Failing its checks.
    Down,
}

/// The health of one datacenter: plain data, cheap to copy, read by the policy engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DcHealth {
    /// Current state.
    pub state: DcState,
    /// Load reported by the site: in-flight work over capacity (0..1, above 1 when overloaded).
    pub load: f32,
    /// True while the state changed recently or a check result is disagreeing with the state
    /// (rise/fall in progress): answers use the service's shorter `failover_ttl`.
    pub changing: bool,
}

impl DcHealth {
    /// A healthy, idle datacenter.
    pub const UP: DcHealth = DcHealth {
        state: DcState::Up,
        load: 0.0,
        changing: false,
    };

    /// A datacenter that fails its checks.
    pub const DOWN: DcHealth = DcHealth {
        state: DcState::Down,
        load: 0.0,
        changing: false,
    };

    /// True when it may take new clients.
    pub fn is_up(&self) -> bool {
        self.state == DcState::Up
    }
}
