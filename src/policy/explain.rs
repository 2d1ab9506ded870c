//! Tracing the pipeline for `meridian explain`. On the query path the tracer is [`NoTrace`],
//! which compiles to nothing.

use crate::config::zone::DcId;

/// Receives each step of a selection.
pub trait Trace {
    /// A step ran; `kept` is what it left, in order; `note` says why.
    fn step(&mut self, name: &'static str, kept: &[DcId], note: impl FnOnce() -> String);
}

/// The query path's tracer: records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _: &'static str, _: &[DcId], _: impl FnOnce() -> String) {}
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The step's name (`candidates`, `health`, `sovereignty`, `order`, `answers`).
    pub name: &'static str,
    /// Datacenters kept, in order.
    pub kept: Vec<DcId>,
    /// Why.
    pub note: String,
}

/// Every step of a selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explanation {
    /// The steps in order.
    pub steps: Vec<Step>,
}

impl Trace for Explanation {
    fn step(&mut self, name: &'static str, kept: &[DcId], note: impl FnOnce() -> String) {
        self.steps.push(Step {
            name,
            kept: kept.to_vec(),
            note: note(),
        });
    }
}
