//! EDNS Client Subnet (RFC 7871) over UDP.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::dns::{Q, TestDns, data_dir, query_with_raw_opt, reply_ecs};

fn ecs_option(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 8];
    o.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
    o.extend_from_slice(&family.to_be_bytes());
    o.extend_from_slice(&[source, scope]);
    o.extend_from_slice(addr);
    o
}

#[tokio::test]
async fn ecs_is_echoed_with_a_scope() {
    let s = TestDns::start(&data_dir().join("zones")).await;
    let m = s
        .udp(
            &Q::new("geo.example.com.", RecordType::A)
                .ecs("192.0.2.0/24")
                .bytes(),
        )
        .await;
    let (source, scope, addr) = reply_ecs(&m).expect("ECS echoed");
    assert_eq!(source, 24);
    assert_eq!(addr.to_string(), "192.0.2.0");
    assert_eq!(
        scope, 0,
        "first-datacenter steering does not depend on the client"
    );

    let m = s
        .udp(
            &Q::new("www.example.com.", RecordType::A)
                .ecs("2001:db8:1::/48")
                .bytes(),
        )
        .await;
    let (source, scope, addr) = reply_ecs(&m).expect("ECS echoed");
    assert_eq!(
        (source, scope),
        (48, 0),
        "static records answer with scope 0"
    );
    assert_eq!(addr.to_string(), "2001:db8:1::");
    s.stop().await;
}

#[tokio::test]
async fn no_ecs_in_replies_to_queries_without_it() {
    let s = TestDns::start(&data_dir().join("zones")).await;
    let m = s
        .udp(&Q::new("geo.example.com.", RecordType::A).edns(1232).bytes())
        .await;
    assert!(m.edns.is_some(), "EDNS answered with EDNS");
    assert!(reply_ecs(&m).is_none());
    let m = s
        .udp(&Q::new("geo.example.com.", RecordType::A).bytes())
        .await;
    assert!(m.edns.is_none(), "no OPT without EDNS");
    s.stop().await;
}

#[tokio::test]
async fn each_malformed_ecs_gets_formerr() {
    let s = TestDns::start(&data_dir().join("zones")).await;
    let cases: [(&str, Vec<u8>); 6] = [
        ("non-zero scope", ecs_option(1, 24, 16, &[192, 0, 2])),
        ("unknown family", ecs_option(7, 24, 0, &[192, 0, 2])),
        (
            "IPv4 source over 32",
            ecs_option(1, 33, 0, &[192, 0, 2, 1, 0]),
        ),
        ("IPv6 source over 128", ecs_option(2, 129, 0, &[0x20; 17])),
        (
            "length not matching the prefix",
            ecs_option(1, 16, 0, &[192, 0, 2]),
        ),
        ("bits beyond the prefix", ecs_option(1, 22, 0, &[192, 0, 3])),
    ];
    for (what, opt) in cases {
        let q = query_with_raw_opt("geo.example.com.", &opt);
        let m = s.udp(&q).await;
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "{what}");
        assert!(m.answers.is_empty(), "{what}");
        assert!(reply_ecs(&m).is_none(), "{what}: no ECS echoed in FORMERR");
        // Over TCP too, whichever decoder sees it first.
        let t = s.tcp_pipelined(&[q]).await;
        assert_eq!(
            t[0].metadata.response_code,
            ResponseCode::FormErr,
            "{what} (TCP)"
        );
    }
    s.stop().await;
}
