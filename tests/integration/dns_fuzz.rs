//! Random and mutated packets through the request path: never a panic; every reply decodes and
//! answers the same ID, or there is no reply.

use std::net::IpAddr;
use std::sync::OnceLock;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use meridian::dns::{Catalog, Zones, answer_packet};
use proptest::prelude::*;

use crate::support::dns::{Q, data_dir};

fn catalog() -> &'static Zones {
    static Z: OnceLock<Zones> = OnceLock::new();
    Z.get_or_init(|| {
        let metrics =
            meridian::dns::DnsMetrics::new(&prometheus::Registry::new()).expect("metrics");
        Zones::load(
            &data_dir().join("zones"),
            meridian::dns::first_datacenter_steering(),
            metrics,
        )
        .expect("zones")
    })
}

fn with_catalog<R>(f: impl FnOnce(&Catalog) -> R) -> R {
    f(&catalog().catalog())
}

fn seeds() -> Vec<Vec<u8>> {
    let names = [
        "www.example.com.",
        "alias.example.com.",
        "x.wild.example.com.",
        "big.example.com.",
        "geo.example.com.",
        "www.sub.example.com.",
        "host.delegated.example.com.",
        "nope.example.org.",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::ANY,
        RecordType::TXT,
    ];
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let t = types[i % types.len()];
        out.push(Q::new(n, t).bytes());
        out.push(Q::new(n, t).edns(512).bytes());
        out.push(Q::new(n, t).ecs("192.0.2.0/24").bytes());
        out.push(Q::new(n, t).ecs("2001:db8::/56").bytes());
    }
    out
}

fn check(packet: &[u8]) -> Result<(), TestCaseError> {
    let reply = with_catalog(|c| answer_packet(c, packet, IpAddr::from([192, 0, 2, 1]), 1232));
    if let Some(r) = reply {
        prop_assert!(r.len() >= 12, "reply shorter than a header");
        prop_assert!(r.len() <= 1232, "reply over the UDP limit: {}", r.len());
        let m = Message::from_vec(&r);
        prop_assert!(m.is_ok(), "reply does not decode: {:?}", m.err());
        prop_assert_eq!(&r[..2], &packet[..2], "reply ID differs");
        prop_assert!(r[2] & 0x80 != 0, "QR not set");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_bytes_never_panic(p in proptest::collection::vec(any::<u8>(), 0..600)) {
        let reply = with_catalog(|c| answer_packet(c, &p, IpAddr::from([192, 0, 2, 1]), 1232));
        if let Some(r) = reply {
            prop_assert!(Message::from_vec(&r).is_ok());
        }
    }

    #[test]
    fn mutated_queries_get_well_formed_replies(
        seed in 0usize..32,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        tail in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let seeds = seeds();
        let mut p = seeds[seed % seeds.len()].clone();
        for (at, v) in flips {
            let i = at % p.len();
            p[i] = v;
        }
        if let Some(c) = cut {
            p.truncate(c % (p.len() + 1));
        }
        p.extend(tail);
        if p.len() >= 2 {
            check(&p)?;
        }
    }
}

fn arb_query() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "www.example.com.",
        "WWW.example.COM.",
        "alias.example.com.",
        "outside.example.com.",
        "a.wild.example.com.",
        "b.c.WILD.example.com.",
        "ent.example.com.",
        "deep.ent.example.com.",
        "example.com.",
        "mail.example.com.",
        "big.example.com.",
        "geo.example.com.",
        "nope.example.com.",
        "x.nope.example.com.",
        "www.sub.example.com.",
        "sub.example.com.",
        "host.delegated.example.com.",
        "ns1.example.com.",
        "ns2.example.com.",
        "www.example.org.",
        ".",
    ]);
    let types = prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
        RecordType::NS,
        RecordType::SOA,
        RecordType::CNAME,
        RecordType::CAA,
        RecordType::SRV,
        RecordType::PTR,
        RecordType::ANY,
    ]);
    let ecs = prop::option::of(prop::sample::select(vec![
        "192.0.2.0/24",
        "10.1.0.0/16",
        "0.0.0.0/0",
        "2001:db8::/56",
        "198.51.100.77/32",
    ]));
    (
        names,
        types,
        prop::option::of(prop::sample::select(vec![512u16, 1232, 4096])),
        ecs,
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(|(n, t, payload, ecs, id, rd)| {
            let mut q = Q::new(n, t).id(id);
            q.msg.metadata.recursion_desired = rd;
            if let Some(p) = payload {
                q = q.edns(p);
            }
            if let Some(e) = ecs {
                q = q.ecs(e);
            }
            q.bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The UDP fast path and the general path give the same reply to every query.
    #[test]
    fn fast_path_agrees_with_the_general_path(q in arb_query()) {
        let src = IpAddr::from([192, 0, 2, 1]);
        let (fast, general) = with_catalog(|c| {
            (
                meridian::dns::answer_packet(c, &q, src, 1232),
                meridian::dns::answer_packet_general(c, &q, src, 1232),
            )
        });
        let fast = fast.expect("a reply");
        let general = general.expect("a reply");
        prop_assert!(fast.len() <= general.len() + 64);
        let f = Message::from_vec(&fast).expect("fast reply decodes");
        let g = Message::from_vec(&general).expect("general reply decodes");
        prop_assert_eq!(f, g);
    }
}
