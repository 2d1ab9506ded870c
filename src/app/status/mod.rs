//! The DNS side's status page and its JSON: every datacenter of the zones being served, with
//! its live health from the board, its place from the zone file and its share of recent
//! answers from the steering counters.
//!
//! - [`StatusView`]: the data, gathered once per request, serialised as `/status.json`.
//! - `page`: the self-contained HTML page (`/status`): map, table, explain form.
//! - `map`: the inline SVG world map.
//! - [`share`]: the answer-share sampler.

mod map;
mod page;
pub mod share;

use std::time::Duration;

use serde::Serialize;

use crate::config::ZoneSet;
use crate::probe::{BoardStatus, DcHealth, DcState, DcStatus};

pub use page::{ExplainForm, live_fragment, page};
pub use share::{AnswerShares, Share, Shares};

/// How a datacenter is drawn: green takes clients normally; amber is draining, changing state
/// or shedding load; red is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    /// Up, steady, not overloaded.
    Green,
    /// Draining, changing state, or reporting more load than it keeps (`shed_at`, else 1.0).
    Amber,
    /// Down.
    Red,
}

impl Colour {
    /// The colour of a datacenter in `state`, `changing` or not, reporting `load`, shedding
    /// above `shed_at` (when the zone sets it; 1.0, full capacity, otherwise).
    pub fn of(state: DcState, changing: bool, load: f32, shed_at: Option<f64>) -> Colour {
        let overloaded = load > shed_at.unwrap_or(1.0) as f32;
        match state {
            DcState::Down => Colour::Red,
            DcState::Draining => Colour::Amber,
            DcState::Up if changing || overloaded => Colour::Amber,
            DcState::Up => Colour::Green,
        }
    }

    /// `green`, `amber` or `red`.
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Green => "green",
            Colour::Amber => "amber",
            Colour::Red => "red",
        }
    }
}

/// A point on the map, degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// One datacenter as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DcRow {
    /// The zone's origin.
    #[serde(skip)]
    pub zone: String,
    /// Health from the board (name, state, since, latest check, load).
    #[serde(flatten)]
    pub status: DcStatus,
    /// Where it is (from the zone file).
    pub location: Option<Point>,
    /// Its country (from the zone file).
    pub country: Option<String>,
    /// Its jurisdiction (from the zone file).
    pub jurisdiction: Option<String>,
    /// Load above which it sheds clients.
    pub shed_at: Option<f64>,
    /// How the page draws it.
    pub colour: Colour,
    /// Answers that named it first, over the answer window.
    pub answers_last_minute: u64,
    /// Its share of the zone's answers over the answer window; `None` without answers.
    pub answer_share: Option<f64>,
}

impl DcRow {
    /// `up`, `draining` or `down`, marked `(admin)` when an operator forced it.
    pub fn state_label(&self) -> String {
        match self.status.admin {
            Some(_) => format!("{} (admin)", self.status.state.as_str()),
            None => self.status.state.as_str().to_string(),
        }
    }

    /// The datacenter's health as the policy engine sees it.
    pub fn health(&self) -> DcHealth {
        DcHealth {
            state: self.status.state,
            load: self.status.load,
            changing: self.status.changing,
        }
    }
}

/// One zone's datacenters.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneView {
    /// The zone's origin.
    pub origin: String,
    /// Its datacenters, in zone-file order.
    pub datacenters: Vec<DcRow>,
}

/// Everything the status page and `/status.json` show.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// Every zone on the health board.
    pub zones: Vec<ZoneView>,
    /// The time the answer shares cover (up to a minute), seconds.
    pub answer_span_seconds: f64,
}

impl StatusView {
    /// Joins the board's health, the served zones' settings and the answer shares.
    pub fn gather(board: BoardStatus, set: &ZoneSet, shares: &Shares) -> StatusView {
        let zones = board
            .zones
            .into_iter()
            .map(|z| {
                let model = set.zones().iter().find(|m| m.origin.as_str() == z.origin);
                let datacenters = z
                    .datacenters
                    .into_iter()
                    .map(|status| {
                        let dc = model
                            .and_then(|m| m.datacenter_id(&status.name).map(|i| &m.datacenters[i]));
                        let shed_at = dc.and_then(|d| d.shed).map(|s| s.at);
                        let share = shares.get(&z.origin, &status.name);
                        DcRow {
                            zone: z.origin.clone(),
                            location: dc.and_then(|d| d.location).map(|p| Point {
                                lat: p.lat,
                                lon: p.lon,
                            }),
                            country: dc.and_then(|d| d.country.clone()),
                            jurisdiction: dc.and_then(|d| d.jurisdiction.clone()),
                            shed_at,
                            colour: Colour::of(status.state, status.changing, status.load, shed_at),
                            answers_last_minute: share.answers,
                            answer_share: share.share,
                            status,
                        }
                    })
                    .collect();
                ZoneView {
                    origin: z.origin,
                    datacenters,
                }
            })
            .collect();
        StatusView {
            zones,
            answer_span_seconds: shares.span.as_secs_f64(),
        }
    }

    /// Every datacenter of every zone.
    pub fn rows(&self) -> impl Iterator<Item = &DcRow> {
        self.zones.iter().flat_map(|z| z.datacenters.iter())
    }

    /// The live health of zone `origin`, one entry per datacenter of `names` (the zone model's
    /// order); datacenters the board does not know are up.
    pub fn health_of(&self, origin: &str, names: &[&str]) -> Vec<DcHealth> {
        let zone = self.zones.iter().find(|z| z.origin == origin);
        names
            .iter()
            .map(|n| {
                zone.and_then(|z| z.datacenters.iter().find(|d| d.status.name == *n))
                    .map_or(DcHealth::UP, DcRow::health)
            })
            .collect()
    }

    /// How long the answer shares cover.
    pub fn answer_span(&self) -> Duration {
        Duration::from_secs_f64(self.answer_span_seconds.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_follow_state_changes_and_load() {
        use DcState::*;
        assert_eq!(Colour::of(Up, false, 0.3, None), Colour::Green);
        assert_eq!(Colour::of(Up, true, 0.3, None), Colour::Amber);
        assert_eq!(Colour::of(Up, false, 0.9, Some(0.8)), Colour::Amber);
        assert_eq!(Colour::of(Up, false, 0.75, Some(0.8)), Colour::Green);
        assert_eq!(Colour::of(Up, false, 1.2, None), Colour::Amber);
        assert_eq!(Colour::of(Draining, false, 0.0, None), Colour::Amber);
        assert_eq!(Colour::of(Down, false, 0.0, None), Colour::Red);
        assert_eq!(Colour::of(Down, true, 2.0, Some(0.5)), Colour::Red);
    }
}
