//! A DNS server on loopback and a small client for tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use meridian::dns::{DnsMetrics, DnsOptions, DnsServer, SteeringFactory, Zones};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Bounded wait for any reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub struct TestDns {
    pub addr: SocketAddr,
    pub zones: Zones,
    server: Option<DnsServer>,
}

impl TestDns {
    pub async fn start(zone_dir: &Path) -> Self {
        Self::start_with(zone_dir, meridian::dns::first_datacenter_steering()).await
    }

    pub async fn start_with(zone_dir: &Path, steering: SteeringFactory) -> Self {
        Self::start_opts(zone_dir, steering, DnsOptions::default()).await
    }

    pub async fn start_opts(zone_dir: &Path, steering: SteeringFactory, opts: DnsOptions) -> Self {
        let metrics = DnsMetrics::new(&prometheus::Registry::new()).expect("metrics");
        let zones = Zones::load(zone_dir, steering, metrics).expect("test zones load");
        let server = DnsServer::start(&zones, &opts)
            .await
            .expect("server starts");
        TestDns {
            addr: server.local_addrs[0],
            zones,
            server: Some(server),
        }
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.server
            .as_ref()
            .map(|s| s.local_addrs.clone())
            .unwrap_or_default()
    }

    /// The same server, queried at another of its addresses.
    pub fn at(&self, addr: SocketAddr) -> TestDnsRef<'_> {
        TestDnsRef { dns: self, addr }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Sends one UDP query and waits (bounded) for the reply bytes.
    pub async fn udp_raw(&self, query: &[u8]) -> Option<Vec<u8>> {
        udp_to(self.addr, query).await
    }
    pub async fn udp(&self, query: &[u8]) -> Message {
        let bytes = self.udp_raw(query).await.expect("a UDP reply");
        Message::from_vec(&bytes).expect("a well-formed reply")
    }

    /// Sends several queries on one TCP connection, all before reading, and reads the replies.
    pub async fn tcp_pipelined(&self, queries: &[Vec<u8>]) -> Vec<Message> {
        tcp_to(self.addr, queries).await
    }
}

/// A view of a test server at one of its addresses.
pub struct TestDnsRef<'a> {
    dns: &'a TestDns,
    pub addr: SocketAddr,
}

impl TestDnsRef<'_> {
    pub async fn udp(&self, query: &[u8]) -> Message {
        let _ = self.dns;
        let bytes = udp_to(self.addr, query).await.expect("a UDP reply");
        Message::from_vec(&bytes).expect("a well-formed reply")
    }

    pub async fn tcp_pipelined(&self, queries: &[Vec<u8>]) -> Vec<Message> {
        tcp_to(self.addr, queries).await
    }
}

async fn udp_to(addr: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let local = if addr.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let sock = UdpSocket::bind(local).await.expect("bind");
    sock.send_to(query, addr).await.expect("send");
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(REPLY_TIMEOUT, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

async fn tcp_to(addr: SocketAddr, queries: &[Vec<u8>]) -> Vec<Message> {
    {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut out = Vec::new();
        for q in queries {
            out.extend_from_slice(&(q.len() as u16).to_be_bytes());
            out.extend_from_slice(q);
        }
        s.write_all(&out).await.expect("write");
        let mut replies = Vec::new();
        for _ in queries {
            let read = async {
                let len = s.read_u16().await?;
                let mut buf = vec![0u8; len as usize];
                s.read_exact(&mut buf).await?;
                Ok::<_, std::io::Error>(buf)
            };
            let buf = tokio::time::timeout(REPLY_TIMEOUT, read)
                .await
                .expect("TCP reply in time")
                .expect("TCP read");
            replies.push(Message::from_vec(&buf).expect("well-formed TCP reply"));
        }
        replies
    }
}

/// A query message.
pub struct Q {
    pub msg: Message,
}

impl Q {
    pub fn new(name: &str, t: RecordType) -> Self {
        let mut msg = Message::new(0x4d52, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(Name::from_ascii(name).expect("name"), t));
        Q { msg }
    }

    pub fn id(mut self, id: u16) -> Self {
        self.msg.metadata.id = id;
        self
    }

    pub fn edns(mut self, payload: u16) -> Self {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        self.msg.edns = Some(e);
        self
    }

    pub fn version(mut self, v: u8) -> Self {
        self.msg.edns.get_or_insert_with(Edns::new).set_version(v);
        self
    }

    pub fn ecs(mut self, subnet: &str) -> Self {
        let cs: ClientSubnet = subnet.parse().expect("subnet");
        let e = self.msg.edns.get_or_insert_with(|| {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e
        });
        e.options_mut().insert(EdnsOption::Subnet(cs));
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.msg.to_vec().expect("encode query")
    }
}

/// A query with a hand-made OPT record carrying exactly `option` bytes (for malformed ECS).
pub fn query_with_raw_opt(name: &str, option: &[u8]) -> Vec<u8> {
    let mut q = Q::new(name, RecordType::A).bytes();
    q[11] = 1; // ARCOUNT
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    q.extend_from_slice(&(option.len() as u16).to_be_bytes());
    q.extend_from_slice(option);
    q
}

/// The ECS option of a reply: (source prefix, scope prefix, address).
pub fn reply_ecs(m: &Message) -> Option<(u8, u8, std::net::IpAddr)> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(cs) => Some((cs.source_prefix(), cs.scope_prefix(), cs.addr())),
        _ => None,
    }
}

pub fn answer_strings(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}
