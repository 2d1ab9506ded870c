//! The UDP fast path: the common answers written straight into the reply buffer from bytes
//! prepared when the zone was compiled. No allocation, no hickory encoder, no name compression
//! table: every owner name is a pointer to the question (offset 12) or to the zone origin's
//! suffix of it.
//!
//! It covers exact and wildcard matches of A, AAAA, TXT, CAA, PTR and CNAME (asked as CNAME),
//! service answers, NODATA, NXDOMAIN and REFUSED, with EDNS and ECS. Anything else (CNAME
//! chains, referrals, answers that need additional records, ANY, truncation) returns `false`
//! and the general path (`lookup.rs` + `respond.rs`) answers. A differential test checks that
//! both paths give the same replies.

use std::net::IpAddr;

use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::catalog::{Catalog, Node, ZoneData};
use super::names::label_starts;
use super::query::{Ecs, Query};
use super::steer::Client;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

const RCODE_NOERROR: u16 = 0;
const RCODE_NXDOMAIN: u16 = 3;
const RCODE_REFUSED: u16 = 5;

/// An RRset ready to copy: each record starts with the two-byte owner pointer `C0 0C`.
#[derive(Debug, Clone)]
pub(crate) struct FastSet {
    pub(crate) qtype: u16,
    pub(crate) count: u16,
    pub(crate) bytes: Box<[u8]>,
}

/// Whether replies of this type can be copied verbatim (no names to compress, no additional
/// section processing).
fn copyable(t: RecordType) -> bool {
    matches!(
        t,
        RecordType::A
            | RecordType::AAAA
            | RecordType::TXT
            | RecordType::CAA
            | RecordType::PTR
            | RecordType::CNAME
    )
}

/// Encodes the records of an RRset with the owner pointer to the question.
pub(crate) fn prepare_set(t: RecordType, records: &[Record]) -> Option<FastSet> {
    if !copyable(t) {
        return None;
    }
    let mut bytes = Vec::new();
    for r in records {
        bytes.extend_from_slice(&[0xc0, 0x0c]);
        bytes.extend_from_slice(&u16::from(t).to_be_bytes());
        bytes.extend_from_slice(&u16::from(r.dns_class).to_be_bytes());
        bytes.extend_from_slice(&r.ttl.to_be_bytes());
        let mut rdata = Vec::new();
        let mut enc = BinEncoder::new(&mut rdata);
        // Names inside rdata are written in full: compression there is optional.
        enc.set_canonical_form(true);
        r.data.emit(&mut enc).ok()?;
        bytes.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
        bytes.extend_from_slice(&rdata);
    }
    Some(FastSet {
        qtype: u16::from(t),
        count: u16::try_from(records.len()).ok()?,
        bytes: bytes.into_boxed_slice(),
    })
}

/// The SOA record of negative answers after its owner name: type, class, TTL, rdata.
pub(crate) fn prepare_soa_tail(soa: &Record) -> Box<[u8]> {
    let mut rdata = Vec::new();
    let mut enc = BinEncoder::new(&mut rdata);
    enc.set_canonical_form(true);
    let _ = soa.data.emit(&mut enc);
    let mut out = Vec::with_capacity(10 + rdata.len());
    out.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&soa.ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    out.into_boxed_slice()
}

/// Writes the reply for `q` into `out` when the fast path covers it.
pub(crate) fn answer(
    cat: &Catalog,
    q: &Query<'_>,
    source: IpAddr,
    limit: usize,
    max_udp: u16,
    out: &mut Vec<u8>,
    zone: &mut Option<usize>,
) -> bool {
    if q.opcode() != 0 || q.qclass != CLASS_IN || q.edns.is_some_and(|e| e.version != 0) {
        return false;
    }
    let client = Client {
        source,
        ecs: q.edns.and_then(|e| e.ecs),
    };
    let lower = q.qname_lower.as_bytes();
    let mut starts = [0u8; 128];
    let n = label_starts(lower, &mut starts);
    let starts = &starts[..n];
    out.clear();
    let Some(zi) = cat.find(lower, starts) else {
        begin(out, q, RCODE_REFUSED, false);
        return finish(out, q, 0, &client, 0, 0, 0, limit, max_udp);
    };
    *zone = Some(zi);
    let z = &cat.zones[zi];
    if z.cuts.iter().any(|c| super::lookup::within(lower, c)) {
        return false;
    }
    let node = match z.nodes.get(lower) {
        Some(n) => n,
        None => match wildcard(z, lower, starts) {
            Some(n) => n,
            None => {
                begin(out, q, RCODE_NXDOMAIN, true);
                soa(out, z, lower);
                return finish(out, q, 0, &client, 0, 1, 0, limit, max_udp);
            }
        },
    };
    answer_node(z, node, q, &client, limit, max_udp, out)
}

fn answer_node(
    z: &ZoneData,
    node: &Node,
    q: &Query<'_>,
    client: &Client,
    limit: usize,
    max_udp: u16,
    out: &mut Vec<u8>,
) -> bool {
    let lower = q.qname_lower.as_bytes();
    if q.qtype == TYPE_ANY {
        return false;
    }
    if q.qtype != TYPE_CNAME && node.rrset(RecordType::CNAME).is_some() {
        return false;
    }
    begin(out, q, RCODE_NOERROR, true);
    if let Some(svc) = node.service
        && (q.qtype == TYPE_A || q.qtype == TYPE_AAAA)
    {
        let steered = z.steering.steer(svc, client);
        let mut count = 0u16;
        if !steered.nodata {
            for dc in steered.datacenters() {
                for addr in &z.config.datacenters[dc].addresses {
                    count += address(out, addr, q.qtype, steered.ttl);
                }
            }
        }
        if count > 0 {
            return finish(out, q, count, client, steered.scope, 0, 0, limit, max_udp);
        }
        soa(out, z, lower);
        return finish(out, q, 0, client, steered.scope, 1, 0, limit, max_udp);
    }
    match node.fast.iter().find(|f| f.qtype == q.qtype) {
        Some(set) => {
            out.extend_from_slice(&set.bytes);
            finish(out, q, set.count, client, 0, 0, 0, limit, max_udp)
        }
        None if node.rrset(RecordType::from(q.qtype)).is_some() => false,
        None => {
            soa(out, z, lower);
            finish(out, q, 0, client, 0, 1, 0, limit, max_udp)
        }
    }
}

fn address(out: &mut Vec<u8>, addr: &IpAddr, qtype: u16, ttl: u32) -> u16 {
    match (addr, qtype) {
        (IpAddr::V4(a), TYPE_A) => {
            out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&[0, 4]);
            out.extend_from_slice(&a.octets());
            1
        }
        (IpAddr::V6(a), TYPE_AAAA) => {
            out.extend_from_slice(&[0xc0, 0x0c, 0, 28, 0, 1]);
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&[0, 16]);
            out.extend_from_slice(&a.octets());
            1
        }
        _ => 0,
    }
}

fn wildcard<'z>(z: &'z ZoneData, name: &[u8], starts: &[u8]) -> Option<&'z Node> {
    for &s in &starts[1..] {
        let ancestor = &name[s as usize..];
        if ancestor.len() < z.origin_wire.len() {
            break;
        }
        if *ancestor == *z.origin_wire || z.nodes.contains_key(ancestor) {
            let mut wild = [0u8; 257];
            wild[..2].copy_from_slice(b"\x01*");
            wild[2..2 + ancestor.len()].copy_from_slice(ancestor);
            return z
                .nodes
                .get(&wild[..2 + ancestor.len()])
                .filter(|w| !w.is_empty());
        }
    }
    None
}

/// Header and question; counts are filled in by `finish`.
fn begin(out: &mut Vec<u8>, q: &Query<'_>, rcode: u16, aa: bool) {
    // QR, opcode 0, AA, RD and CD copied, RA clear.
    let mut flags = 0x8000 | (q.flags & 0x0110) | rcode;
    if aa {
        flags |= 0x0400;
    }
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(q.question());
}

/// The negative-answer SOA, its owner a pointer to the origin inside the question name.
fn soa(out: &mut Vec<u8>, z: &ZoneData, lower: &[u8]) {
    let at = 12 + lower.len() - z.origin_wire.len();
    if at <= 12 + 255 && z.origin_wire.len() > 1 {
        out.extend_from_slice(&(0xc000u16 | at as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&z.origin_wire);
    }
    out.extend_from_slice(&z.soa_tail);
}

/// Fills in the counts, appends the OPT record; false when the reply does not fit (the general
/// path then truncates).
#[allow(clippy::too_many_arguments)]
fn finish(
    out: &mut Vec<u8>,
    q: &Query<'_>,
    an: u16,
    client: &Client,
    scope: u8,
    ns: u16,
    ar: u16,
    limit: usize,
    max_udp: u16,
) -> bool {
    let mut ar = ar;
    if q.edns.is_some() {
        opt(out, client.ecs.as_ref(), scope, max_udp);
        ar += 1;
    }
    out[6..8].copy_from_slice(&an.to_be_bytes());
    out[8..10].copy_from_slice(&ns.to_be_bytes());
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    out.len() <= limit
}

fn opt(out: &mut Vec<u8>, ecs: Option<&Ecs>, scope: u8, max_udp: u16) {
    out.push(0);
    out.extend_from_slice(&41u16.to_be_bytes());
    out.extend_from_slice(&max_udp.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    match ecs {
        None => out.extend_from_slice(&[0, 0]),
        Some(e) => {
            let addr_len = (e.source as usize).div_ceil(8);
            let opt_len = 4 + addr_len;
            out.extend_from_slice(&((4 + opt_len) as u16).to_be_bytes());
            out.extend_from_slice(&[0, 8]);
            out.extend_from_slice(&(opt_len as u16).to_be_bytes());
            out.extend_from_slice(&e.family().to_be_bytes());
            let scope = if e.source == 0 { 0 } else { scope };
            out.extend_from_slice(&[e.source, scope]);
            match e.addr {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..addr_len]),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..addr_len]),
            }
        }
    }
}
