//! A lean parser for incoming queries: header, the one question, and the OPT record with its
//! EDNS Client Subnet option.
//!
//! It reads straight from the packet without allocating, keeps the query name's case (replies
//! echo the question as it was asked) and checks what RFC 6891 and RFC 7871 require of a query,
//! which hickory's decoder accepts silently (a non-zero ECS scope, address bits set beyond the
//! source prefix, an option length that does not match the prefix). Responses are built
//! elsewhere; this module only says what was asked and how to refuse it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest name on the wire (RFC 1035 §2.3.4).
pub(crate) const MAX_NAME: usize = 255;

/// EDNS option code of Client Subnet (RFC 7871).
const OPT_ECS: u16 = 8;
/// RR type of OPT.
const TYPE_OPT: u16 = 41;

/// The client subnet a query carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// The address, with bits beyond the source prefix zero.
    pub addr: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
}

impl Ecs {
    /// The address family number (1 IPv4, 2 IPv6).
    pub fn family(&self) -> u16 {
        match self.addr {
            IpAddr::V4(_) => 1,
            IpAddr::V6(_) => 2,
        }
    }
}

/// The EDNS part of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EdnsQuery {
    /// Requestor's UDP payload size (values below 512 are treated as 512).
    pub(crate) payload: u16,
    /// EDNS version.
    pub(crate) version: u8,
    /// The DO bit.
    pub(crate) dnssec_ok: bool,
    /// Client subnet, when present and valid.
    pub(crate) ecs: Option<Ecs>,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub(crate) struct Query<'a> {
    /// The whole packet.
    pub(crate) packet: &'a [u8],
    /// Message ID.
    pub(crate) id: u16,
    /// Header flags word (opcode, RD, CD ...), as received.
    pub(crate) flags: u16,
    /// The question's name in wire form, as received (case preserved).
    pub(crate) qname: &'a [u8],
    /// The question's name in wire form, lower-cased.
    pub(crate) qname_lower: NameBuf,
    /// QTYPE.
    pub(crate) qtype: u16,
    /// QCLASS.
    pub(crate) qclass: u16,
    /// Offset just past the question section.
    pub(crate) question_end: usize,
    /// The OPT record, if any.
    pub(crate) edns: Option<EdnsQuery>,
}

impl Query<'_> {
    /// The opcode.
    pub(crate) fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The question section as received (name, type, class).
    pub(crate) fn question(&self) -> &[u8] {
        &self.packet[12..self.question_end]
    }
}

/// A lower-cased wire-format name in a fixed buffer.
#[derive(Clone, Copy)]
pub(crate) struct NameBuf {
    buf: [u8; MAX_NAME],
    len: u8,
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::dns::names::wire_to_text(self.as_bytes()))
    }
}

impl NameBuf {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// Why a packet is not answered normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not worth an answer: shorter than a header, or a response.
    Drop,
    /// Answer FORMERR. `question_end` is set when the question itself was well formed, and
    /// `edns` when the OPT record was (a FORMERR for a bad ECS option still carries an OPT).
    FormErr {
        id: u16,
        flags: u16,
        question_end: Option<usize>,
        edns: Option<EdnsQuery>,
        why: &'static str,
    },
}

struct Reader<'a> {
    p: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.p.get(self.at)?;
        self.at += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.p.get(self.at..self.at + 2)?;
        self.at += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.p.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.p.get(self.at..self.at + n)?;
        self.at += n;
        Some(b)
    }
    /// Skips a possibly compressed name (records other than the question).
    fn skip_name(&mut self) -> Option<()> {
        let mut total = 0usize;
        loop {
            let len = self.u8()?;
            match len & 0xc0 {
                0x00 if len == 0 => return Some(()),
                0x00 => {
                    total += len as usize + 1;
                    if total > MAX_NAME {
                        return None;
                    }
                    self.bytes(len as usize)?;
                }
                0xc0 => {
                    self.u8()?;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Parses a query packet.
pub(crate) fn parse(packet: &[u8]) -> Result<Query<'_>, Reject> {
    if packet.len() < 12 {
        return Err(Reject::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & 0x8000 != 0 {
        return Err(Reject::Drop);
    }
    let count = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let formerr = |question_end, edns, why| Reject::FormErr {
        id,
        flags,
        question_end,
        edns,
        why,
    };
    if qd != 1 {
        return Err(formerr(
            None,
            None,
            "a query must carry exactly one question",
        ));
    }
    let mut r = Reader { p: packet, at: 12 };
    let mut lower = NameBuf {
        buf: [0; MAX_NAME],
        len: 0,
    };
    let name_start = r.at;
    loop {
        let Some(len) = r.u8() else {
            return Err(formerr(None, None, "question name runs past the packet"));
        };
        if len & 0xc0 != 0 {
            return Err(formerr(
                None,
                None,
                "compression or bad label type in the question",
            ));
        }
        let total = lower.len as usize + 1 + len as usize;
        if total > MAX_NAME {
            return Err(formerr(None, None, "question name longer than 255 octets"));
        }
        let Some(label) = r.bytes(len as usize) else {
            return Err(formerr(None, None, "question name runs past the packet"));
        };
        let at = lower.len as usize;
        lower.buf[at] = len;
        for (d, s) in lower.buf[at + 1..total].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        lower.len = total as u8;
        if len == 0 {
            break;
        }
    }
    let qname = &packet[name_start..r.at];
    let (Some(qtype), Some(qclass)) = (r.u16(), r.u16()) else {
        return Err(formerr(None, None, "question ends early"));
    };
    let question_end = r.at;
    let formerr_q = |edns, why| formerr(Some(question_end), edns, why);
    for _ in 0..(u32::from(an) + u32::from(ns)) {
        if skip_record(&mut r).is_none() {
            return Err(formerr_q(None, "record runs past the packet"));
        }
    }
    let mut edns: Option<EdnsQuery> = None;
    for _ in 0..ar {
        let owner_at = r.at;
        if r.skip_name().is_none() {
            return Err(formerr_q(edns, "additional record runs past the packet"));
        }
        let owner_is_root = r.at == owner_at + 1 && packet[owner_at] == 0;
        let (Some(rtype), Some(class), Some(ttl), Some(rdlen)) =
            (r.u16(), r.u16(), r.u32(), r.u16())
        else {
            return Err(formerr_q(edns, "additional record runs past the packet"));
        };
        let Some(rdata) = r.bytes(rdlen as usize) else {
            return Err(formerr_q(edns, "additional record runs past the packet"));
        };
        if rtype != TYPE_OPT {
            continue;
        }
        if edns.is_some() {
            return Err(formerr_q(None, "more than one OPT record"));
        }
        if !owner_is_root {
            return Err(formerr_q(None, "OPT record not owned by the root"));
        }
        let mut e = EdnsQuery {
            payload: class.max(512),
            version: ((ttl >> 16) & 0xff) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
            ecs: None,
        };
        match parse_options(rdata) {
            Ok(ecs) => e.ecs = ecs,
            Err(why) => {
                return Err(formerr_q(Some(e), why));
            }
        }
        edns = Some(e);
    }
    if r.at != packet.len() {
        return Err(formerr_q(edns, "trailing bytes after the last record"));
    }
    Ok(Query {
        packet,
        id,
        flags,
        qname,
        qname_lower: lower,
        qtype,
        qclass,
        question_end,
        edns,
    })
}

fn skip_record(r: &mut Reader<'_>) -> Option<()> {
    r.skip_name()?;
    r.bytes(8)?;
    let len = r.u16()?;
    r.bytes(len as usize)?;
    Some(())
}

/// Walks the OPT options; returns the validated ECS option, if any.
fn parse_options(mut opts: &[u8]) -> Result<Option<Ecs>, &'static str> {
    let mut ecs = None;
    while !opts.is_empty() {
        if opts.len() < 4 {
            return Err("truncated EDNS option");
        }
        let code = u16::from_be_bytes([opts[0], opts[1]]);
        let len = u16::from_be_bytes([opts[2], opts[3]]) as usize;
        let Some(data) = opts.get(4..4 + len) else {
            return Err("EDNS option runs past the OPT record");
        };
        if code == OPT_ECS {
            if ecs.is_some() {
                return Err("more than one client subnet option");
            }
            ecs = Some(parse_ecs(data)?);
        }
        opts = &opts[4 + len..];
    }
    Ok(ecs)
}

/// Validates an ECS option as RFC 7871 §6 requires of a query.
pub(crate) fn parse_ecs(data: &[u8]) -> Result<Ecs, &'static str> {
    if data.len() < 4 {
        return Err("client subnet option shorter than 4 octets");
    }
    let family = u16::from_be_bytes([data[0], data[1]]);
    let source = data[2];
    let scope = data[3];
    let addr = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err("client subnet with an unknown address family"),
    };
    if source > max {
        return Err("client subnet source prefix longer than the address");
    }
    if scope != 0 {
        return Err("client subnet scope prefix must be 0 in a query");
    }
    let need = (source as usize).div_ceil(8);
    if addr.len() != need {
        return Err("client subnet address length does not match the source prefix");
    }
    if !source.is_multiple_of(8) {
        let mask = 0xffu8 >> (source % 8);
        if addr[need - 1] & mask != 0 {
            return Err("client subnet address has bits set beyond the source prefix");
        }
    }
    let addr = if family == 1 {
        let mut o = [0u8; 4];
        o[..need].copy_from_slice(addr);
        IpAddr::V4(Ipv4Addr::from(o))
    } else {
        let mut o = [0u8; 16];
        o[..need].copy_from_slice(addr);
        IpAddr::V6(Ipv6Addr::from(o))
    };
    Ok(Ecs { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], extra_ar: &[u8], arcount: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&arcount.to_be_bytes());
        p.extend_from_slice(name);
        p.extend_from_slice(&[0, 1, 0, 1]);
        p.extend_from_slice(extra_ar);
        p
    }

    fn opt(options: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
        o.extend_from_slice(&(options.len() as u16).to_be_bytes());
        o.extend_from_slice(options);
        o
    }

    fn ecs(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 8];
        o.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
        o.extend_from_slice(&family.to_be_bytes());
        o.extend_from_slice(&[source, scope]);
        o.extend_from_slice(addr);
        o
    }

    const WWW: &[u8] = b"\x03WwW\x07example\x03com\x00";

    #[test]
    fn parses_name_case_and_ecs() {
        let p = query(WWW, &opt(&ecs(1, 24, 0, &[192, 0, 2])), 1);
        let q = parse(&p).expect("valid");
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.qname, WWW);
        assert_eq!(q.qname_lower.as_bytes(), b"\x03www\x07example\x03com\x00");
        assert_eq!(q.qtype, 1);
        let e = q.edns.expect("edns");
        assert_eq!(e.payload, 1232);
        assert_eq!(
            e.ecs,
            Some(Ecs {
                addr: "192.0.2.0".parse().expect("ip"),
                source: 24
            })
        );
    }

    #[test]
    fn rejects_each_malformed_ecs() {
        let cases = [
            ecs(1, 24, 8, &[192, 0, 2]),       // non-zero scope
            ecs(3, 24, 0, &[192, 0, 2]),       // unknown family
            ecs(1, 33, 0, &[192, 0, 2, 1, 0]), // prefix over 32
            ecs(2, 129, 0, &[0; 17]),          // prefix over 128
            ecs(1, 24, 0, &[192, 0, 2, 0]),    // length does not match
            ecs(1, 23, 0, &[192, 0, 3]),       // bits beyond the prefix
        ];
        for c in cases {
            let p = query(WWW, &opt(&c), 1);
            match parse(&p) {
                Err(Reject::FormErr {
                    question_end: Some(_),
                    edns: Some(_),
                    ..
                }) => {}
                other => panic!("{c:?}: expected FORMERR with question and OPT, got {other:?}"),
            }
        }
    }

    #[test]
    fn drops_responses_and_runts() {
        assert_eq!(parse(&[0; 5]).unwrap_err(), Reject::Drop);
        let mut p = query(WWW, &[], 0);
        p[2] |= 0x80;
        assert_eq!(parse(&p).unwrap_err(), Reject::Drop);
    }

    #[test]
    fn formerr_on_two_opts_and_trailing_bytes() {
        let mut two = opt(&[]);
        two.extend(opt(&[]));
        assert!(matches!(
            parse(&query(WWW, &two, 2)),
            Err(Reject::FormErr { .. })
        ));
        let mut p = query(WWW, &[], 0);
        p.push(0);
        assert!(matches!(parse(&p), Err(Reject::FormErr { .. })));
    }
}
