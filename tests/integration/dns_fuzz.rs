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
        Zones::load(
            &data_dir().join("zones"),
            meridian::dns::first_datacenter_steering(),
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
