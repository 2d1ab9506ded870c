//! Zones compiled for answering: every owner name in lower-case wire form mapped to its RRsets
//! (hickory records, built once per load) and to the service that answers there.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::rdata::{AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name as HName, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};

use super::metrics::{DnsMetrics, ZoneCounters};
use super::names::{to_hickory, to_wire};
use super::respond::Answered;
use super::steer::ZoneSteering;
use crate::config::zone::{RecordData, Zone};
use crate::config::{Name, ZoneSet};

/// The records of one type at one name.
#[derive(Debug, Clone)]
pub(crate) struct RrSet {
    pub(crate) rtype: RecordType,
    pub(crate) records: Vec<Record>,
}

/// Everything at one owner name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node {
    pub(crate) rrsets: Vec<RrSet>,
    /// The RRsets the UDP fast path can copy verbatim.
    pub(crate) fast: Vec<super::fast::FastSet>,
    /// Index into the zone's services.
    pub(crate) service: Option<usize>,
}

impl Node {
    pub(crate) fn rrset(&self, t: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|r| r.rtype == t)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rrsets.is_empty() && self.service.is_none()
    }
}

/// One zone ready to answer.
#[derive(Debug)]
pub(crate) struct ZoneData {
    pub(crate) config: Arc<Zone>,
    pub(crate) origin_wire: Box<[u8]>,
    pub(crate) nodes: HashMap<Box<[u8]>, Node>,
    /// The SOA for negative answers: TTL = min(SOA TTL, minimum) (RFC 2308 §3).
    pub(crate) negative_soa: Record,
    /// `negative_soa` after its owner name, for the fast path.
    pub(crate) soa_tail: Box<[u8]>,
    /// Names (wire, lower case) of delegation points below the apex.
    pub(crate) cuts: Vec<Box<[u8]>>,
    /// Steering of the zone's services.
    pub(crate) steering: Arc<dyn ZoneSteering>,
}

/// Every zone, most specific origin first.
#[derive(Debug, Default)]
pub struct Catalog {
    pub(crate) zones: Vec<ZoneData>,
    /// Query counters per zone (same order), and for queries no zone answers.
    counters: Vec<ZoneCounters>,
    unzoned: Option<ZoneCounters>,
}

impl Catalog {
    /// Compiles a zone set. `steering` gives each zone (in `ZoneSet::zones()` order) its
    /// steering.
    pub fn new(
        set: &ZoneSet,
        steering: Vec<Arc<dyn ZoneSteering>>,
        metrics: Option<&DnsMetrics>,
    ) -> Self {
        let zones: Vec<ZoneData> = set
            .zones()
            .iter()
            .zip(steering)
            .map(|(z, s)| compile(z.clone(), s))
            .collect();
        let counters = metrics.map_or_else(Vec::new, |m| {
            zones
                .iter()
                .map(|z| m.zone(z.config.origin.as_str()))
                .collect()
        });
        Catalog {
            zones,
            counters,
            unzoned: metrics.map(|m| m.zone("")),
        }
    }

    /// Counts an answered query.
    pub(crate) fn count(&self, a: &Answered) {
        let c = match a.zone {
            Some(i) => self.counters.get(i),
            None => self.unzoned.as_ref(),
        };
        if let Some(c) = c {
            c.count(a);
        }
    }

    /// The zone whose origin is the longest suffix of `qname` (lower-case wire form), given the
    /// offsets at which its labels start.
    pub(crate) fn find(&self, qname: &[u8], starts: &[u8]) -> Option<usize> {
        self.zones.iter().position(|z| {
            let o = &z.origin_wire;
            o.len() <= qname.len()
                && starts.contains(&((qname.len() - o.len()) as u8))
                && qname[qname.len() - o.len()..] == **o
        })
    }

    /// The compiled zones.
    pub fn zone_configs(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.iter().map(|z| &z.config)
    }
}

fn compile(config: Arc<Zone>, steering: Arc<dyn ZoneSteering>) -> ZoneData {
    let origin = to_hickory(&config.origin);
    let mut nodes: HashMap<Box<[u8]>, Node> = HashMap::new();
    let soa_data = &config.soa;
    let soa_rdata = RData::SOA(SOA::new(
        to_hickory(&soa_data.mname),
        to_hickory(&soa_data.rname),
        soa_data.serial,
        soa_data.refresh as i32,
        soa_data.retry as i32,
        soa_data.expire as i32,
        soa_data.minimum,
    ));
    let soa = Record::from_rdata(origin.clone(), config.ttl, soa_rdata);
    let mut negative_soa = soa.clone();
    negative_soa.ttl = config.ttl.min(soa_data.minimum);
    add(&mut nodes, &config.origin, soa.clone());
    for ns in &config.nameservers {
        let r = Record::from_rdata(origin.clone(), config.ttl, RData::NS(NS(to_hickory(ns))));
        add(&mut nodes, &config.origin, r);
    }
    let mut cuts = Vec::new();
    for rec in &config.records {
        let Some(rdata) = rdata(&rec.data) else {
            continue;
        };
        if matches!(rec.data, RecordData::Ns(_)) && rec.name != config.origin {
            let w = to_wire(&rec.name);
            if !cuts.contains(&w) {
                cuts.push(w);
            }
        }
        let r = Record::from_rdata(to_hickory(&rec.name), rec.ttl, rdata);
        add(&mut nodes, &rec.name, r);
    }
    for (i, svc) in config.services.iter().enumerate() {
        nodes.entry(to_wire(&svc.name)).or_default().service = Some(i);
    }
    // Empty non-terminals: every ancestor of a name, up to the origin, exists (NODATA, not
    // NXDOMAIN, RFC 8020).
    let names: Vec<Name> = config
        .records
        .iter()
        .map(|r| r.name.clone())
        .chain(config.services.iter().map(|s| s.name.clone()))
        .collect();
    for n in names {
        let mut p = n.parent();
        while p.is_within(&config.origin) && p != config.origin {
            nodes.entry(to_wire(&p)).or_default();
            p = p.parent();
        }
    }
    for node in nodes.values_mut() {
        node.fast = node
            .rrsets
            .iter()
            .filter_map(|s| super::fast::prepare_set(s.rtype, &s.records))
            .collect();
    }
    ZoneData {
        soa_tail: super::fast::prepare_soa_tail(&negative_soa),
        origin_wire: to_wire(&config.origin),
        config,
        nodes,
        negative_soa,
        cuts,
        steering,
    }
}

fn add(nodes: &mut HashMap<Box<[u8]>, Node>, name: &Name, r: Record) {
    let node = nodes.entry(to_wire(name)).or_default();
    let t = r.record_type();
    match node.rrsets.iter_mut().find(|s| s.rtype == t) {
        Some(set) => {
            // One TTL per RRset (RFC 2181 §5.2): the lowest wins.
            let ttl = set.records[0].ttl.min(r.ttl);
            set.records.push(r);
            for rec in &mut set.records {
                rec.ttl = ttl;
            }
        }
        None => node.rrsets.push(RrSet {
            rtype: t,
            records: vec![r],
        }),
    }
}

fn rdata(d: &RecordData) -> Option<RData> {
    Some(match d {
        RecordData::A(a) => RData::A((*a).into()),
        RecordData::Aaaa(a) => RData::AAAA(AAAA(*a)),
        RecordData::Cname(n) => RData::CNAME(CNAME(to_hickory(n))),
        RecordData::Ns(n) => RData::NS(NS(to_hickory(n))),
        RecordData::Ptr(n) => RData::PTR(PTR(to_hickory(n))),
        RecordData::Mx {
            preference,
            exchange,
        } => RData::MX(MX::new(*preference, to_hickory(exchange))),
        RecordData::Txt(s) => RData::TXT(TXT::new(s.clone())),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, to_hickory(target))),
        RecordData::Caa {
            critical,
            tag,
            value,
        } => caa(*critical, tag, value).ok()?,
    })
}

/// CAA from its wire form, so that any tag and value round-trip byte for byte.
pub(crate) fn caa(critical: bool, tag: &str, value: &str) -> Result<RData, String> {
    let mut wire = vec![if critical { 0x80 } else { 0 }, tag.len() as u8];
    wire.extend_from_slice(tag.as_bytes());
    wire.extend_from_slice(value.as_bytes());
    let len = u16::try_from(wire.len()).map_err(|_| "CAA value too long".to_string())?;
    let mut d = BinDecoder::new(&wire);
    match RData::read(&mut d, RecordType::CAA, Restrict::new(len)) {
        Ok(r @ RData::CAA(_)) => Ok(r),
        Ok(_) => Err("not a CAA record".into()),
        Err(e) => Err(format!("bad CAA value: {e}")),
    }
}

/// The owner name of records answered for `qname`.
pub(crate) fn owner(qname: &[u8]) -> HName {
    super::names::wire_to_hickory(qname)
}
