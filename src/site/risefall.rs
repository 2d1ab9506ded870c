//! Active-check verdicts as a pure rise/fall state machine (pingora's `observe_health`): a
//! server goes down after `fall` consecutive failures and up after `rise` consecutive successes.
//! Before its first check a server is in its initial state; the first result decides at once,
//! so a server that starts "down until checked" takes traffic after one passing check.

/// Rise/fall state of one server.
#[derive(Debug, Clone)]
pub struct RiseFall {
    up: bool,
    checked: bool,
    streak: u32,
    rise: u32,
    fall: u32,
}

impl RiseFall {
    /// A server in its initial state.
    pub fn new(initial_up: bool, rise: u32, fall: u32) -> Self {
        RiseFall {
            up: initial_up,
            checked: false,
            streak: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    /// A machine that has already seen checks (a check task restarted by a reload): the next
    /// result counts towards rise/fall instead of deciding at once.
    pub fn resumed(up: bool, rise: u32, fall: u32) -> Self {
        RiseFall {
            checked: true,
            ..RiseFall::new(up, rise, fall)
        }
    }

    /// Current verdict.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Feeds one check result; returns the new verdict when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if !self.checked {
            self.checked = true;
            self.streak = 0;
            let changed = ok != self.up;
            self.up = ok;
            return changed.then_some(ok);
        }
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak >= needed {
            self.up = ok;
            self.streak = 0;
            return Some(ok);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_check_decides_then_rise_and_fall() {
        let mut h = RiseFall::new(false, 2, 3);
        assert_eq!(h.observe(true), Some(true));
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(true), None, "a success resets the streak");
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(false));
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(true));
    }

    #[test]
    fn initial_up_stays_up_on_a_pass() {
        let mut h = RiseFall::new(true, 2, 2);
        assert_eq!(h.observe(true), None);
        assert!(h.is_up());
        let mut h = RiseFall::new(true, 2, 2);
        assert_eq!(h.observe(false), Some(false));
    }
}
