//! DNS behaviour over real UDP and TCP on loopback.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::support::dns::{Q, TestDns, answer_strings, data_dir};

async fn server() -> TestDns {
    TestDns::start(&data_dir().join("zones")).await
}

#[tokio::test]
async fn answers_are_authoritative_and_not_recursive() {
    let s = server().await;
    let mut q = Q::new("www.example.com.", RecordType::A).edns(1232);
    q.msg.metadata.recursion_desired = true;
    let m = s.udp(&q.bytes()).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative, "AA set");
    assert!(!m.metadata.recursion_available, "RA clear");
    assert!(m.metadata.recursion_desired, "RD copied");
    assert_eq!(m.metadata.id, 0x4d52);
    let mut a = answer_strings(&m);
    a.sort();
    assert_eq!(a, ["192.0.2.1", "192.0.2.2"]);
    s.stop().await;
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_the_soa_with_the_negative_ttl() {
    let s = server().await;
    let m = s
        .udp(&Q::new("nope.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(
        m.authorities[0].ttl, 42,
        "negative TTL = min(SOA TTL, minimum)"
    );

    let m = s
        .udp(&Q::new("www.example.com.", RecordType::MX).bytes())
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty(), "NODATA has no answers");
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

    // An empty non-terminal exists: NODATA, not NXDOMAIN (RFC 8020).
    let m = s
        .udp(&Q::new("ent.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn names_outside_every_zone_are_refused() {
    let s = server().await;
    let m = s
        .udp(&Q::new("www.example.org.", RecordType::A).bytes())
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    assert!(!m.metadata.recursion_available);
    assert!(m.answers.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn cname_is_followed_within_the_zone_only() {
    let s = server().await;
    let m = s
        .udp(&Q::new("alias.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(m.answers.len(), 3, "CNAME then the two A records of www");
    assert_eq!(m.answers[1].name.to_ascii(), "www.example.com.");

    let m = s
        .udp(&Q::new("outside.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(
        m.answers.len(),
        1,
        "a target outside the zone is not chased"
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);

    let m = s
        .udp(&Q::new("alias.example.com.", RecordType::CNAME).bytes())
        .await;
    assert_eq!(m.answers.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn wildcards_synthesise_with_the_query_name() {
    let s = server().await;
    let m = s
        .udp(&Q::new("Anything.wild.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(answer_strings(&m), ["192.0.2.99"]);
    assert_eq!(m.answers[0].name.to_ascii(), "Anything.wild.example.com.");
    let m = s
        .udp(&Q::new("a.b.wild.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(answer_strings(&m), ["192.0.2.99"], "several labels deep");
    let m = s
        .udp(&Q::new("x.wild.example.com.", RecordType::AAAA).bytes())
        .await;
    assert!(m.answers.is_empty(), "wildcard NODATA");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    s.stop().await;
}

#[tokio::test]
async fn any_is_answered_minimally() {
    let s = server().await;
    let m = s
        .udp(&Q::new("www.example.com.", RecordType::ANY).bytes())
        .await;
    assert!(!m.answers.is_empty());
    let types: std::collections::BTreeSet<_> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1, "RFC 8482: one RRset, got {types:?}");
    s.stop().await;
}

#[tokio::test]
async fn edns_version_above_zero_gets_badvers() {
    let s = server().await;
    let m = s
        .udp(
            &Q::new("www.example.com.", RecordType::A)
                .edns(1232)
                .version(1)
                .bytes(),
        )
        .await;
    // RCODE 16 is BADVERS for OPT (RFC 6891); hickory decodes 16 under its TSIG name BADSIG.
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert_eq!(m.edns.as_ref().map(|e| e.version()), Some(0));
    assert!(m.answers.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn large_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let s = server().await;
    let q = Q::new("big.example.com.", RecordType::TXT)
        .edns(512)
        .bytes();
    let raw = s.udp_raw(&q).await.expect("reply");
    assert!(raw.len() <= 512, "the reply fits the client's buffer");
    let m = hickory_proto::op::Message::from_vec(&raw).expect("decode");
    assert!(m.metadata.truncation, "TC set");
    assert!(m.answers.is_empty());

    let m = s
        .udp(
            &Q::new("big.example.com.", RecordType::TXT)
                .edns(4096)
                .bytes(),
        )
        .await;
    assert!(!m.metadata.truncation, "a 4096-octet buffer takes it");
    assert_eq!(m.answers.len(), 1);

    let no_edns = s
        .udp_raw(&Q::new("big.example.com.", RecordType::TXT).bytes())
        .await;
    assert!(no_edns.expect("reply").len() <= 512, "512 without EDNS");

    let m = s.tcp_pipelined(&[q]).await;
    assert!(!m[0].metadata.truncation);
    assert_eq!(m[0].answers.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn tcp_takes_several_queries_on_one_connection() {
    let s = server().await;
    let qs: Vec<Vec<u8>> = (0..5u16)
        .map(|i| {
            let name = if i % 2 == 0 {
                "www.example.com."
            } else {
                "nope.example.com."
            };
            Q::new(name, RecordType::A).id(100 + i).bytes()
        })
        .collect();
    let replies = s.tcp_pipelined(&qs).await;
    for (i, m) in replies.iter().enumerate() {
        assert_eq!(m.metadata.id, 100 + i as u16);
        let want = if i % 2 == 0 {
            ResponseCode::NoError
        } else {
            ResponseCode::NXDomain
        };
        assert_eq!(m.metadata.response_code, want);
    }
    s.stop().await;
}

#[tokio::test]
async fn query_name_case_is_preserved() {
    let s = server().await;
    let m = s
        .udp(&Q::new("WwW.ExAmPlE.cOm.", RecordType::A).bytes())
        .await;
    assert_eq!(m.queries[0].name().to_ascii(), "WwW.ExAmPlE.cOm.");
    assert_eq!(m.answers[0].name.to_ascii(), "WwW.ExAmPlE.cOm.");
    let m = s
        .tcp_pipelined(&[Q::new("WWW.EXAMPLE.COM.", RecordType::A).bytes()])
        .await;
    assert_eq!(m[0].queries[0].name().to_ascii(), "WWW.EXAMPLE.COM.");
    s.stop().await;
}

#[tokio::test]
async fn the_most_specific_zone_answers() {
    let s = server().await;
    let m = s
        .udp(&Q::new("www.sub.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(answer_strings(&m), ["203.0.113.7"]);
    assert!(m.metadata.authoritative);
    let m = s
        .udp(&Q::new("sub.example.com.", RecordType::SOA).bytes())
        .await;
    match &m.answers[0].data {
        RData::SOA(soa) => assert_eq!(soa.serial, 3, "the child zone's SOA"),
        other => panic!("expected SOA, got {other:?}"),
    }
    s.stop().await;
}

#[tokio::test]
async fn delegations_are_referrals_with_glue() {
    let s = server().await;
    let m = s
        .udp(&Q::new("host.delegated.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authoritative, "a referral is not authoritative");
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::NS);
    let glue: Vec<String> = m.additionals.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(glue, ["192.0.2.200"]);
    s.stop().await;
}

#[tokio::test]
async fn mx_answers_carry_in_zone_addresses() {
    let s = server().await;
    let m = s.udp(&Q::new("example.com.", RecordType::MX).bytes()).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.additionals.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn services_answer_their_first_datacenter_until_steered() {
    let s = server().await;
    let m = s
        .udp(&Q::new("geo.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(answer_strings(&m), ["198.51.100.1"]);
    assert_eq!(m.answers[0].ttl, 20);
    let m = s
        .udp(&Q::new("geo.example.com.", RecordType::AAAA).bytes())
        .await;
    assert_eq!(answer_strings(&m), ["2001:db8:e::1"]);
    s.stop().await;
}

#[tokio::test]
async fn malformed_packets_get_formerr_or_nothing() {
    let s = server().await;
    // Shorter than a header: dropped.
    assert!(s.udp_raw(&[1, 2, 3]).await.is_none());
    // Two questions: FORMERR.
    let mut q = Q::new("www.example.com.", RecordType::A).bytes();
    q[5] = 2;
    let m = s.udp(&q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // The server still answers afterwards.
    let m = s
        .udp(&Q::new("www.example.com.", RecordType::A).bytes())
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    s.stop().await;
}

#[tokio::test]
async fn serves_ipv4_and_ipv6_on_udp_and_tcp() {
    let opts = meridian::dns::DnsOptions {
        listen: vec![
            "127.0.0.1:0".parse().expect("v4"),
            "[::1]:0".parse().expect("v6"),
        ],
        ..Default::default()
    };
    let s = TestDns::start_opts(
        &data_dir().join("zones"),
        meridian::dns::first_datacenter_steering(),
        opts,
    )
    .await;
    let addrs = s.local_addrs();
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6());
    for a in addrs {
        let q = Q::new("www.example.com.", RecordType::A).bytes();
        let m = s.at(a).udp(&q).await;
        assert_eq!(m.answers.len(), 2, "UDP at {a}");
        let m = s.at(a).tcp_pipelined(&[q]).await;
        assert_eq!(m[0].answers.len(), 2, "TCP at {a}");
    }
    s.stop().await;
}

#[tokio::test]
async fn idle_tcp_connections_are_closed() {
    use tokio::io::AsyncReadExt;
    let opts = meridian::dns::DnsOptions {
        tcp_idle: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let s = TestDns::start_opts(
        &data_dir().join("zones"),
        meridian::dns::first_datacenter_steering(),
        opts,
    )
    .await;
    // A query first: the connection is used, then left idle.
    let m = s
        .tcp_pipelined(&[Q::new("www.example.com.", RecordType::A).bytes()])
        .await;
    assert_eq!(m[0].answers.len(), 2);
    let mut c = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("the server closes an idle connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without data");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    s.stop().await;
}
