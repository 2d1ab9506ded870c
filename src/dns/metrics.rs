//! DNS counters. Handles are resolved once, so the query path only does atomic adds.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::respond::Answered;

/// Counters of the DNS front end.
#[derive(Debug, Clone)]
pub struct DnsMetrics {
    noerror: IntCounter,
    nxdomain: IntCounter,
    refused: IntCounter,
    formerr: IntCounter,
    other: IntCounter,
    ecs: IntCounter,
    pub(crate) udp_errors: IntCounter,
    /// Zone reloads by result (`ok`, `error`).
    pub reloads: IntCounterVec,
}

impl DnsMetrics {
    /// Creates the counters and registers them.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let by_rcode = IntCounterVec::new(
            Opts::new(
                "meridian_dns_responses_total",
                "DNS responses sent, by rcode",
            ),
            &["rcode"],
        )?;
        let ecs = IntCounter::new(
            "meridian_dns_ecs_queries_total",
            "Queries that carried an EDNS Client Subnet option",
        )?;
        let udp_errors = IntCounter::new(
            "meridian_dns_udp_errors_total",
            "UDP receive or send errors",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new("meridian_dns_reloads_total", "Zone reloads, by result"),
            &["result"],
        )?;
        registry.register(Box::new(by_rcode.clone()))?;
        registry.register(Box::new(ecs.clone()))?;
        registry.register(Box::new(udp_errors.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        Ok(DnsMetrics {
            noerror: by_rcode.with_label_values(&["NOERROR"]),
            nxdomain: by_rcode.with_label_values(&["NXDOMAIN"]),
            refused: by_rcode.with_label_values(&["REFUSED"]),
            formerr: by_rcode.with_label_values(&["FORMERR"]),
            other: by_rcode.with_label_values(&["OTHER"]),
            ecs,
            udp_errors,
            reloads,
        })
    }

    pub(crate) fn count(&self, a: Answered) {
        match a.rcode {
            0 => self.noerror.inc(),
            3 => self.nxdomain.inc(),
            5 => self.refused.inc(),
            1 => self.formerr.inc(),
            _ => self.other.inc(),
        }
        if a.ecs {
            self.ecs.inc();
        }
    }
}
