//! DNS counters. Label handles are resolved when a catalog is compiled, so the query path only
//! does atomic adds.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::respond::Answered;

/// Query types counted apart; everything else is `other`.
const QTYPES: [(u16, &str); 4] = [(1, "A"), (28, "AAAA"), (255, "ANY"), (0, "other")];
/// Response codes counted apart; everything else is `other`.
const RCODES: [(u16, &str); 6] = [
    (0, "NOERROR"),
    (3, "NXDOMAIN"),
    (5, "REFUSED"),
    (1, "FORMERR"),
    (4, "NOTIMP"),
    (u16::MAX, "other"),
];

/// Counters of the DNS front end.
#[derive(Debug, Clone)]
pub struct DnsMetrics {
    queries: IntCounterVec,
    pub(crate) udp_errors: IntCounter,
    /// Zone reloads by result (`ok`, `error`).
    pub reloads: IntCounterVec,
}

impl DnsMetrics {
    /// Creates the counters and registers them.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let queries = IntCounterVec::new(
            Opts::new(
                "meridian_dns_queries_total",
                "DNS queries answered, by zone (empty: none), query type, response code and \
                 whether the query carried EDNS Client Subnet",
            ),
            &["zone", "qtype", "rcode", "ecs"],
        )?;
        let udp_errors = IntCounter::new(
            "meridian_dns_udp_errors_total",
            "UDP receive or send errors",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new("meridian_dns_reloads_total", "Zone reloads, by result"),
            &["result"],
        )?;
        registry.register(Box::new(queries.clone()))?;
        registry.register(Box::new(udp_errors.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        Ok(DnsMetrics {
            queries,
            udp_errors,
            reloads,
        })
    }

    /// The handles of one zone (`""` for queries no zone answers).
    pub(crate) fn zone(&self, zone: &str) -> ZoneCounters {
        let mut handles = Vec::with_capacity(QTYPES.len() * RCODES.len() * 2);
        for (_, qt) in QTYPES {
            for (_, rc) in RCODES {
                for ecs in ["no", "yes"] {
                    handles.push(self.queries.with_label_values(&[zone, qt, rc, ecs]));
                }
            }
        }
        ZoneCounters { handles }
    }

    /// Drops the series of a zone that is no longer served.
    pub(crate) fn forget_zone(&self, zone: &str) {
        for (_, qt) in QTYPES {
            for (_, rc) in RCODES {
                for ecs in ["no", "yes"] {
                    let _ = self.queries.remove_label_values(&[zone, qt, rc, ecs]);
                }
            }
        }
    }
}

/// Pre-resolved query counters of one zone.
#[derive(Debug, Clone)]
pub(crate) struct ZoneCounters {
    handles: Vec<IntCounter>,
}

impl ZoneCounters {
    pub(crate) fn count(&self, a: &Answered) {
        let q = QTYPES
            .iter()
            .position(|(t, _)| *t == a.qtype)
            .unwrap_or(QTYPES.len() - 1);
        let r = RCODES
            .iter()
            .position(|(c, _)| *c == a.rcode)
            .unwrap_or(RCODES.len() - 1);
        let i = (q * RCODES.len() + r) * 2 + usize::from(a.ecs);
        if let Some(h) = self.handles.get(i) {
            h.inc();
        }
    }
}
