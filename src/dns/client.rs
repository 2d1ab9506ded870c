//! A small stub resolver for service discovery: one question to one DNS server over UDP, again
//! over TCP when the answer is truncated. Built on hickory-proto's message codec and kept here,
//! behind the rule that hickory types stay in `src/dns/`: callers get plain addresses, SRV
//! targets and the smallest TTL, never a hickory type.
//!
//! No cache and no recursion of its own: the server asked is a recursive resolver (the
//! system's by default) or an authoritative server, and discovery asks again when the TTL runs
//! out.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// What to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// Service records.
    Srv,
}

/// One SRV record, with the target's addresses when the server sent them along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// Lower is preferred.
    pub priority: u16,
    /// Share among targets of one priority.
    pub weight: u16,
    /// Port of the service.
    pub port: u16,
    /// Target host name (absolute, with the trailing dot).
    pub target: String,
    /// Addresses of the target from the additional section (may be empty).
    pub addresses: Vec<IpAddr>,
}

/// An answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// A/AAAA answers.
    pub addresses: Vec<IpAddr>,
    /// SRV answers.
    pub srv: Vec<SrvTarget>,
    /// Smallest TTL of the answer records (seconds); `None` when there were none.
    pub ttl: Option<u32>,
    /// The name does not exist (NXDOMAIN).
    pub nxdomain: bool,
}

/// Why a query gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The name is not a valid DNS name.
    #[error("bad name {0:?}: {1}")]
    Name(String, String),
    /// No answer in time.
    #[error("no answer from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// Socket trouble.
    #[error("{0}: {1}")]
    Io(SocketAddr, std::io::Error),
    /// The reply did not parse or did not match the question.
    #[error("bad reply from {0}: {1}")]
    Reply(SocketAddr, String),
    /// The server answered with an error code (SERVFAIL, REFUSED, ...).
    #[error("{0} answered {1}")]
    Rcode(SocketAddr, String),
}

/// Asks `server` one question, within `timeout` overall.
pub async fn query(
    server: SocketAddr,
    name: &str,
    lookup: Lookup,
    timeout: Duration,
) -> Result<Answer, ClientError> {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let qname =
        Name::from_ascii(&fqdn).map_err(|e| ClientError::Name(fqdn.clone(), e.to_string()))?;
    let rtype = match lookup {
        Lookup::A => RecordType::A,
        Lookup::Aaaa => RecordType::AAAA,
        Lookup::Srv => RecordType::SRV,
    };
    let id: u16 = rand::random();
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(qname.clone(), rtype));
    let bytes = msg
        .to_vec()
        .map_err(|e| ClientError::Name(fqdn.clone(), e.to_string()))?;
    let work = async {
        let reply = udp(server, &bytes).await?;
        let reply = parse(server, &reply, id)?;
        if reply.metadata.truncation {
            let again = tcp(server, &bytes).await?;
            parse(server, &again, id)
        } else {
            Ok(reply)
        }
    };
    let reply = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout(server, timeout))??;
    answer(server, &reply, &qname, rtype)
}

async fn udp(server: SocketAddr, q: &[u8]) -> Result<Vec<u8>, ClientError> {
    let local: SocketAddr = if server.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let io = |e| ClientError::Io(server, e);
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    sock.send(q).await.map_err(io)?;
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).await.map_err(io)?;
    buf.truncate(n);
    Ok(buf)
}

async fn tcp(server: SocketAddr, q: &[u8]) -> Result<Vec<u8>, ClientError> {
    let io = |e| ClientError::Io(server, e);
    let mut s = TcpStream::connect(server).await.map_err(io)?;
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).await.map_err(io)?;
    let len = s.read_u16().await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.map_err(io)?;
    Ok(buf)
}

fn parse(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, ClientError> {
    let m = Message::from_vec(bytes).map_err(|e| ClientError::Reply(server, e.to_string()))?;
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return Err(ClientError::Reply(
            server,
            "reply does not match the query".into(),
        ));
    }
    Ok(m)
}

fn answer(
    server: SocketAddr,
    m: &Message,
    qname: &Name,
    rtype: RecordType,
) -> Result<Answer, ClientError> {
    let mut out = Answer::default();
    match m.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => {
            out.nxdomain = true;
            return Ok(out);
        }
        other => return Err(ClientError::Rcode(server, other.to_string())),
    }
    if m.queries.first().is_some_and(|q| q.name() != qname) {
        return Err(ClientError::Reply(
            server,
            "reply is for another name".into(),
        ));
    }
    for r in &m.answers {
        if r.record_type() != rtype {
            // CNAME chains: the final records are in the answer too.
            continue;
        }
        out.ttl = Some(out.ttl.map_or(r.ttl, |t| t.min(r.ttl)));
        match &r.data {
            RData::A(a) => out.addresses.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => out.addresses.push(IpAddr::V6(a.0)),
            RData::SRV(s) => out.srv.push(SrvTarget {
                priority: s.priority,
                weight: s.weight,
                port: s.port,
                target: s.target.to_ascii(),
                addresses: Vec::new(),
            }),
            _ => {}
        }
    }
    for t in &mut out.srv {
        for r in &m.additionals {
            let name_matches = r.name.to_ascii().eq_ignore_ascii_case(&t.target);
            match &r.data {
                RData::A(a) if name_matches => t.addresses.push(IpAddr::V4(a.0)),
                RData::AAAA(a) if name_matches => t.addresses.push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The first `nameserver` of `/etc/resolv.conf` (port 53), the resolver discovery asks when
/// the site file names none.
pub fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    resolv_conf_nameserver(&text)
}

/// The first `nameserver` line of a resolv.conf text.
pub fn resolv_conf_nameserver(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next())
            .flatten()
            .and_then(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let t = "# x\nsearch example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        assert_eq!(
            resolv_conf_nameserver(t),
            Some("10.0.0.2:53".parse().expect("addr"))
        );
        assert_eq!(
            resolv_conf_nameserver("nameserver fe80::1%eth0\n"),
            Some("[fe80::1]:53".parse().expect("addr"))
        );
        assert_eq!(resolv_conf_nameserver("options ndots:1\n"), None);
    }
}
