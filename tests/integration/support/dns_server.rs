//! A tiny scriptable DNS server on 127.0.0.1:0 (UDP) for the discovery tests: answers A, AAAA
//! and SRV questions from tables the test changes at run time, with a fixed TTL; can be told
//! to answer SERVFAIL, or nothing at all.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

#[derive(Debug, Default)]
pub struct Tables {
    pub addrs: HashMap<String, Vec<IpAddr>>,
    /// name → (priority, weight, port, target)
    pub srv: HashMap<String, Vec<(u16, u16, u16, String)>>,
}

#[derive(Debug)]
pub struct TinyDns {
    pub addr: SocketAddr,
    pub tables: Arc<Mutex<Tables>>,
    pub servfail: Arc<AtomicBool>,
    pub silent: Arc<AtomicBool>,
    pub queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TinyDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TinyDns {
    pub async fn start(ttl: u32) -> TinyDns {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        let tables = Arc::new(Mutex::new(Tables::default()));
        let servfail = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (t, f, s, q) = (
            Arc::clone(&tables),
            Arc::clone(&servfail),
            Arc::clone(&silent),
            Arc::clone(&queries),
        );
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                q.fetch_add(1, Ordering::SeqCst);
                if s.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let reply = answer(&query, &t, f.load(Ordering::SeqCst), ttl);
                if let Ok(bytes) = reply.to_vec() {
                    let _ = sock.send_to(&bytes, from).await;
                }
            }
        });
        TinyDns {
            addr,
            tables,
            servfail,
            silent,
            queries,
            task,
        }
    }

    pub fn set_addrs(&self, name: &str, ips: &[&str]) {
        let ips = ips.iter().map(|i| i.parse().expect("ip")).collect();
        self.tables
            .lock()
            .expect("lock")
            .addrs
            .insert(name.to_string(), ips);
    }

    pub fn set_srv(&self, name: &str, records: &[(u16, u16, u16, &str)]) {
        let r = records
            .iter()
            .map(|&(p, w, port, t)| (p, w, port, t.to_string()))
            .collect();
        self.tables
            .lock()
            .expect("lock")
            .srv
            .insert(name.to_string(), r);
    }
}

fn answer(q: &Message, t: &Mutex<Tables>, servfail: bool, ttl: u32) -> Message {
    let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    m.metadata.authoritative = true;
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    let Some(question) = q.queries.first() else {
        m.metadata.response_code = ResponseCode::FormErr;
        return m;
    };
    m.add_query(question.clone());
    if servfail {
        m.metadata.response_code = ResponseCode::ServFail;
        return m;
    }
    let name = question.name().to_ascii();
    let tables = t.lock().expect("lock");
    let known = tables.addrs.contains_key(&name) || tables.srv.contains_key(&name);
    if !known {
        m.metadata.response_code = ResponseCode::NXDomain;
        return m;
    }
    let owner = Name::from_ascii(&name).expect("name");
    match question.query_type() {
        RecordType::A | RecordType::AAAA => {
            for ip in tables.addrs.get(&name).into_iter().flatten() {
                let data = match (ip, question.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                m.add_answer(Record::from_rdata(owner.clone(), ttl, data));
            }
        }
        RecordType::SRV => {
            for (p, w, port, target) in tables.srv.get(&name).into_iter().flatten() {
                let tn = Name::from_ascii(target).expect("target");
                m.add_answer(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::SRV(SRV::new(*p, *w, *port, tn.clone())),
                ));
                for ip in tables.addrs.get(target).into_iter().flatten() {
                    if let IpAddr::V4(v4) = ip {
                        m.add_additional(Record::from_rdata(tn.clone(), ttl, RData::A(A(*v4))));
                    }
                }
            }
        }
        _ => {}
    }
    m
}
