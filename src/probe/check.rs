//! The `Probe` seam: one check of one target, and the TCP implementation.
//!
//! A probe only looks; timing (interval, jitter, timeout) belongs to the scheduler, which
//! wraps every call in the check's timeout, and judgement over time belongs to the state
//! machine. That keeps each piece testable on its own.

use std::future::Future;

use crate::config::zone::{CheckSpec, CheckTarget};

use super::http::HttpProbe;
use super::machine::Verdict;

/// How one check ended; also the `result` label of `meridian_probe_checks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    /// Passed; the site takes new clients.
    Pass,
    /// Passed; the site reports `draining`.
    Draining,
    /// Failed: refused, reset, bad status or body, site reports down or too few backends.
    Fail,
    /// No answer within the check's timeout.
    Timeout,
}

impl CheckResult {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Pass => "pass",
            CheckResult::Draining => "draining",
            CheckResult::Fail => "fail",
            CheckResult::Timeout => "timeout",
        }
    }

    /// What the state machine makes of it.
    pub fn verdict(self) -> Verdict {
        match self {
            CheckResult::Pass => Verdict::Up,
            CheckResult::Draining => Verdict::Draining,
            CheckResult::Fail | CheckResult::Timeout => Verdict::Fail,
        }
    }
}

/// What one check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// How it ended.
    pub result: CheckResult,
    /// Load reported by the site (in-flight work over capacity), when it sent a report.
    pub load: Option<f32>,
    /// Why it failed, for logs and the status page.
    pub error: Option<String>,
}

impl Observation {
    /// A passing check without a site report.
    pub fn pass() -> Self {
        Observation {
            result: CheckResult::Pass,
            load: None,
            error: None,
        }
    }

    /// A failed check.
    pub fn fail(error: impl Into<String>) -> Self {
        Observation {
            result: CheckResult::Fail,
            load: None,
            error: Some(error.into()),
        }
    }
}

/// One kind of health check.
pub(crate) trait Probe: Send + Sync + 'static {
    /// Runs one check. Unbounded in time: the scheduler applies the timeout.
    fn check(&self) -> impl Future<Output = Observation> + Send;
}

/// A TCP connect check: passes when the connection is accepted.
#[derive(Debug, Clone)]
pub(crate) struct TcpProbe {
    target: String,
}

impl TcpProbe {
    pub(crate) fn new(target: &str) -> Self {
        TcpProbe {
            target: target.to_string(),
        }
    }
}

impl Probe for TcpProbe {
    async fn check(&self) -> Observation {
        match tokio::net::TcpStream::connect(self.target.as_str()).await {
            Ok(_) => Observation::pass(),
            Err(e) => Observation::fail(format!("connect {}: {e}", self.target)),
        }
    }
}

/// The probe a check spec asks for.
#[derive(Debug, Clone)]
pub(crate) enum AnyProbe {
    Http(HttpProbe),
    Tcp(TcpProbe),
}

impl AnyProbe {
    pub(crate) fn new(spec: &CheckSpec, client: &reqwest::Client) -> Self {
        match &spec.target {
            CheckTarget::Http(url) => AnyProbe::Http(HttpProbe::new(url, spec, client.clone())),
            CheckTarget::Tcp(addr) => AnyProbe::Tcp(TcpProbe::new(addr)),
        }
    }
}

impl Probe for AnyProbe {
    async fn check(&self) -> Observation {
        match self {
            AnyProbe::Http(p) => p.check().await,
            AnyProbe::Tcp(p) => p.check().await,
        }
    }
}

/// A human-readable name of a check's target: the URL or `tcp://host:port`.
pub fn target_label(target: &CheckTarget) -> String {
    match target {
        CheckTarget::Http(url) => url.clone(),
        CheckTarget::Tcp(addr) => format!("tcp://{addr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_probe_passes_on_accept_and_fails_on_refusal() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let p = TcpProbe::new(&addr);
        assert_eq!(p.check().await, Observation::pass());
        drop(l);
        let o = p.check().await;
        assert_eq!(o.result, CheckResult::Fail);
        assert!(o.error.unwrap().contains(&addr));
    }
}
