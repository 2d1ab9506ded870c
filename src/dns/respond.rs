//! From query bytes to reply: parse, answer, and encode with EDNS, ECS and truncation.
//!
//! One function serves both transports: UDP encodes to bytes here, TCP hands the same
//! [`Prepared`] reply to hickory-server's response path (see `tcp.rs`).

use std::net::IpAddr;

use hickory_proto::op::{Edns, MessageType, Metadata, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};

use super::catalog::Catalog;
use super::lookup::{Question, Reply, lookup};
use super::query::{EdnsQuery, Reject, parse};
use super::steer::Client;

/// Largest UDP payload Meridian sends, whatever the client offers (DNS flag day 2020).
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

/// A reply ready to encode.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) metadata: Metadata,
    /// The question as asked, when it could be read.
    pub(crate) question: Option<HQuery>,
    pub(crate) reply: Reply,
    pub(crate) edns: Option<Edns>,
    /// UDP payload limit for this reply.
    pub(crate) udp_limit: usize,
}

/// What was sent, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answered {
    /// The full (extended) RCODE.
    pub(crate) rcode: u16,
    /// The query carried ECS.
    pub(crate) ecs: bool,
    /// QTYPE (0 when the question could not be read).
    pub(crate) qtype: u16,
    /// Index of the zone that answered.
    pub(crate) zone: Option<usize>,
}

/// Answers one UDP packet into `out`: the fast path when it covers the question, else the
/// general path. `None` when nothing is to be sent.
pub(crate) fn answer_udp(
    cat: &Catalog,
    packet: &[u8],
    source: IpAddr,
    max_udp: u16,
    out: &mut Vec<u8>,
) -> Option<Answered> {
    let mut zone = None;
    if let Ok(q) = parse(packet)
        && super::fast::answer(
            cat,
            &q,
            source,
            udp_limit(q.edns.as_ref(), max_udp),
            max_udp,
            out,
            &mut zone,
        )
    {
        return Some(Answered {
            rcode: u16::from(out[3] & 0x0f),
            ecs: q.edns.is_some_and(|e| e.ecs.is_some()),
            qtype: q.qtype,
            zone,
        });
    }
    let p = prepare(cat, packet, source, max_udp)?;
    encode_udp(&p, out);
    (!out.is_empty()).then(|| p.answered())
}

impl Prepared {
    pub(crate) fn answered(&self) -> Answered {
        Answered {
            rcode: u16::from(self.metadata.response_code),
            ecs: self.edns.as_ref().is_some_and(|e| {
                e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)
                    .is_some()
            }),
            qtype: self
                .question
                .as_ref()
                .map_or(0, |q| u16::from(q.query_type())),
            zone: self.reply.zone,
        }
    }
}

/// Answers one packet; `None` means send nothing.
pub(crate) fn prepare(
    cat: &Catalog,
    packet: &[u8],
    source: IpAddr,
    max_udp: u16,
) -> Option<Prepared> {
    let q = match parse(packet) {
        Ok(q) => q,
        Err(Reject::Drop) => return None,
        Err(Reject::FormErr {
            id,
            flags,
            question_end,
            edns,
            why,
        }) => {
            tracing::debug!(%source, why, "FORMERR");
            let mut md = metadata(id, flags);
            md.response_code = ResponseCode::FormErr;
            return Some(Prepared {
                metadata: md,
                question: question_end.and_then(|end| read_question(&packet[12..end])),
                reply: Reply::refused(),
                edns: edns.map(|e| reply_edns(&e, None, 0, max_udp)),
                udp_limit: udp_limit(edns.as_ref(), max_udp),
            });
        }
    };
    let mut md = metadata(q.id, q.flags);
    let question = read_question(q.question());
    let limit = udp_limit(q.edns.as_ref(), max_udp);
    let mut empty = |rcode: ResponseCode, edns: Option<Edns>| {
        md.response_code = rcode;
        Some(Prepared {
            metadata: md,
            question: question.clone(),
            reply: Reply::refused(),
            edns,
            udp_limit: limit,
        })
    };
    if let Some(e) = &q.edns
        && e.version > 0
    {
        // RFC 6891 §6.1.3: BADVERS, with our version (0) in the OPT record.
        return empty(ResponseCode::BADVERS, Some(reply_edns(e, None, 0, max_udp)));
    }
    if q.opcode() != 0 {
        let edns = q.edns.map(|e| reply_edns(&e, None, 0, max_udp));
        return empty(ResponseCode::NotImp, edns);
    }
    let client = Client {
        source,
        ecs: q.edns.and_then(|e| e.ecs),
    };
    let reply = lookup(
        cat,
        &Question {
            qname: q.qname,
            qname_lower: &q.qname_lower,
            qtype: q.qtype,
            qclass: q.qclass,
        },
        &client,
    );
    md.response_code = reply.rcode;
    md.authoritative = reply.authoritative;
    let edns = q
        .edns
        .map(|e| reply_edns(&e, client.ecs.as_ref(), reply.scope, max_udp));
    Some(Prepared {
        metadata: md,
        question,
        reply,
        edns,
        udp_limit: limit,
    })
}

fn metadata(id: u16, flags: u16) -> Metadata {
    let mut md = Metadata::new(
        id,
        MessageType::Response,
        OpCode::from_u8(((flags >> 11) & 0xf) as u8),
    );
    md.recursion_desired = flags & 0x0100 != 0;
    md.checking_disabled = flags & 0x0010 != 0;
    md
}

fn read_question(bytes: &[u8]) -> Option<HQuery> {
    HQuery::read(&mut BinDecoder::new(bytes)).ok()
}

fn udp_limit(edns: Option<&EdnsQuery>, max_udp: u16) -> usize {
    match edns {
        Some(e) => e.payload.min(max_udp).max(512) as usize,
        None => 512,
    }
}

/// The OPT record of a reply: our payload size, version 0, and the client subnet echoed with
/// the answer's scope (RFC 7871 §7.2.1); scope 0 when the query's source prefix was 0.
fn reply_edns(q: &EdnsQuery, ecs: Option<&super::query::Ecs>, scope: u8, max_udp: u16) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(max_udp);
    e.set_version(0);
    if let Some(ecs) = ecs {
        let scope = if ecs.source == 0 { 0 } else { scope };
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            ecs.addr, ecs.source, scope,
        )));
    }
    let _ = q;
    e
}

/// Encodes for UDP: the whole reply when it fits the client's limit, else the header,
/// question and OPT record with TC set.
pub(crate) fn encode_udp(p: &Prepared, out: &mut Vec<u8>) {
    out.clear();
    if encode(p, false, out).is_ok() && out.len() <= p.udp_limit {
        return;
    }
    out.clear();
    if encode(p, true, out).is_err() {
        out.clear();
    }
}

fn encode(
    p: &Prepared,
    truncated: bool,
    out: &mut Vec<u8>,
) -> Result<(), hickory_proto::ProtoError> {
    let mut md = p.metadata;
    md.truncation = truncated;
    let mut enc = BinEncoder::new(out);
    let none: &[hickory_proto::rr::Record] = &[];
    let (an, ns, ar) = if truncated {
        (none, none, none)
    } else {
        (
            &p.reply.answers[..],
            &p.reply.authority[..],
            &p.reply.additional[..],
        )
    };
    hickory_proto::op::emit_message_parts(
        &md,
        &mut p.question.iter(),
        &mut an.iter(),
        &mut ns.iter(),
        &mut ar.iter(),
        p.edns.as_ref(),
        None,
        &mut enc,
    )?;
    Ok(())
}
