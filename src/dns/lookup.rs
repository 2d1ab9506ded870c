//! The authoritative answer for a question (RFC 1034 §4.3.2, RFC 2308, RFC 4592, RFC 8482):
//! delegations, exact matches, services, CNAME chains within the zone, wildcards, NODATA and
//! NXDOMAIN. Pure: no I/O, no locks.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name as HName, RData, Record, RecordType};

use super::catalog::{Catalog, Node, ZoneData, owner};
use super::names::{label_starts, to_wire};
use super::query::NameBuf;
use super::steer::Client;

/// Longest CNAME chain followed inside a zone.
const MAX_CNAME_HOPS: usize = 8;

const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

/// The sections of an answer, before encoding.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) rcode: ResponseCode,
    pub(crate) authoritative: bool,
    pub(crate) answers: Vec<Record>,
    pub(crate) authority: Vec<Record>,
    pub(crate) additional: Vec<Record>,
    /// ECS scope prefix length for the answer.
    pub(crate) scope: u8,
    /// Index of the zone that answered.
    pub(crate) zone: Option<usize>,
}

impl Reply {
    pub(crate) fn refused() -> Self {
        Reply {
            rcode: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            scope: 0,
            zone: None,
        }
    }

    fn authoritative() -> Self {
        Reply {
            rcode: ResponseCode::NoError,
            authoritative: true,
            ..Self::refused()
        }
    }
}

/// The question being answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Question<'a> {
    /// As asked (case kept).
    pub(crate) qname: &'a [u8],
    /// Lower-cased.
    pub(crate) qname_lower: &'a NameBuf,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
}

/// Answers a question from the catalog.
pub(crate) fn lookup(cat: &Catalog, q: &Question<'_>, client: &Client) -> Reply {
    if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
        return Reply::refused();
    }
    let lower = q.qname_lower.as_bytes();
    let mut starts = [0u8; 128];
    let n = label_starts(lower, &mut starts);
    let Some(zi) = cat.find(lower, &starts[..n]) else {
        return Reply::refused();
    };
    let z = &cat.zones[zi];
    let qtype = RecordType::from(q.qtype);
    let mut reply = Reply::authoritative();
    reply.zone = Some(zi);
    let mut name: Box<[u8]> = lower.into();
    let mut owner_name = owner(q.qname);
    for _ in 0..=MAX_CNAME_HOPS {
        if let Some(cut) = delegation(z, &name) {
            if reply.answers.is_empty() {
                referral(z, cut, &mut reply);
            }
            return reply;
        }
        let Some(node) = find_node(z, &name) else {
            reply.rcode = ResponseCode::NXDomain;
            reply.authority.push(z.negative_soa.clone());
            return reply;
        };
        if qtype != RecordType::CNAME
            && let Some(cname) = node.rrset(RecordType::CNAME)
        {
            let rec = with_owner(&cname.records[0], &owner_name);
            let RData::CNAME(target) = &rec.data else {
                return reply;
            };
            let target: HName = target.0.clone();
            reply.answers.push(rec);
            let target_lower = to_wire_hickory(&target);
            if !within(&target_lower, &z.origin_wire) {
                return reply;
            }
            name = target_lower;
            owner_name = target;
            continue;
        }
        answer_node(z, node, qtype, &owner_name, client, &mut reply);
        return reply;
    }
    // A CNAME loop or an over-long chain: what was collected is the answer.
    reply
}

fn answer_node(
    z: &ZoneData,
    node: &Node,
    qtype: RecordType,
    owner: &HName,
    client: &Client,
    reply: &mut Reply,
) {
    if let Some(svc) = node.service
        && matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::ANY)
    {
        let steered = z.steering.steer(svc, client);
        reply.scope = steered.scope;
        let want_v4 = qtype != RecordType::AAAA;
        if !steered.nodata {
            for dc in steered.datacenters() {
                for addr in &z.config.datacenters[dc].addresses {
                    let rdata = match (addr, want_v4) {
                        (std::net::IpAddr::V4(a), true) => RData::A((*a).into()),
                        (std::net::IpAddr::V6(a), false) => RData::AAAA((*a).into()),
                        _ => continue,
                    };
                    reply
                        .answers
                        .push(Record::from_rdata(owner.clone(), steered.ttl, rdata));
                }
            }
        }
        if reply.answers.is_empty() || steered.nodata {
            nodata(z, reply);
        }
        return;
    }
    let set = if qtype == RecordType::ANY {
        // RFC 8482: answer one RRset rather than everything.
        node.rrsets.first()
    } else {
        node.rrset(qtype)
    };
    match set {
        Some(set) => {
            for r in &set.records {
                reply.answers.push(with_owner(r, owner));
            }
            additional(z, set.rtype, reply);
        }
        None => nodata(z, reply),
    }
}

fn nodata(z: &ZoneData, reply: &mut Reply) {
    reply.authority.push(z.negative_soa.clone());
}

fn with_owner(r: &Record, owner: &HName) -> Record {
    let mut r = r.clone();
    r.name = owner.clone();
    r
}

fn to_wire_hickory(n: &HName) -> Box<[u8]> {
    match crate::config::Name::parse_absolute(&n.to_ascii()) {
        Ok(m) => to_wire(&m),
        Err(_) => Box::new([0]),
    }
}

/// True when `name` equals `parent` or lies below it (both lower-case wire form).
pub(crate) fn within(name: &[u8], parent: &[u8]) -> bool {
    if parent.len() > name.len() || name[name.len() - parent.len()..] != *parent {
        return false;
    }
    let mut starts = [0u8; 128];
    let n = label_starts(name, &mut starts);
    starts[..n].contains(&((name.len() - parent.len()) as u8))
}

/// The delegation point at or above `name`, if any.
fn delegation<'z>(z: &'z ZoneData, name: &[u8]) -> Option<&'z [u8]> {
    z.cuts
        .iter()
        .filter(|c| within(name, c))
        .max_by_key(|c| c.len())
        .map(|c| &**c)
}

fn referral(z: &ZoneData, cut: &[u8], reply: &mut Reply) {
    reply.authoritative = false;
    let Some(node) = z.nodes.get(cut) else {
        return;
    };
    if let Some(ns) = node.rrset(RecordType::NS) {
        reply.authority.extend(ns.records.iter().cloned());
        glue(z, ns.records.iter(), reply);
    }
}

/// A and AAAA records of in-zone targets of NS, MX and SRV records.
fn additional(z: &ZoneData, t: RecordType, reply: &mut Reply) {
    if matches!(t, RecordType::NS | RecordType::MX | RecordType::SRV) {
        let answers = std::mem::take(&mut reply.answers);
        glue(z, answers.iter(), reply);
        reply.answers = answers;
    }
}

fn glue<'a>(z: &ZoneData, records: impl Iterator<Item = &'a Record>, reply: &mut Reply) {
    for r in records {
        let target = match &r.data {
            RData::NS(ns) => &ns.0,
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            _ => continue,
        };
        let wire = to_wire_hickory(target);
        if !within(&wire, &z.origin_wire) {
            continue;
        }
        if let Some(node) = z.nodes.get(&wire) {
            for t in [RecordType::A, RecordType::AAAA] {
                if let Some(set) = node.rrset(t) {
                    for rec in &set.records {
                        if !reply.additional.contains(rec) {
                            reply.additional.push(rec.clone());
                        }
                    }
                }
            }
        }
    }
}

/// The node for `name`: an exact match, else the wildcard at the closest encloser (RFC 4592).
/// `None` means the name does not exist.
fn find_node<'z>(z: &'z ZoneData, name: &[u8]) -> Option<&'z Node> {
    if let Some(n) = z.nodes.get(name) {
        return Some(n);
    }
    let mut starts = [0u8; 128];
    let n = label_starts(name, &mut starts);
    // Walk up: the first existing ancestor is the closest encloser.
    for &s in &starts[1..n] {
        let ancestor = &name[s as usize..];
        if ancestor.len() < z.origin_wire.len() {
            break;
        }
        if z.nodes.contains_key(ancestor) || *ancestor == *z.origin_wire {
            let mut wild = Vec::with_capacity(ancestor.len() + 2);
            wild.extend_from_slice(b"\x01*");
            wild.extend_from_slice(ancestor);
            return z.nodes.get(wild.as_slice()).filter(|w| !w.is_empty());
        }
    }
    None
}
