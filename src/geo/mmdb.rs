//! A MaxMind DB (format 2.0) writer: enough of the format to write GeoLite2-City-shaped files.
//!
//! Written here rather than taken from crates.io: the Rust writers there were young single
//! releases without a track record when this was written, and the format is small and fully
//! specified (<https://maxmind.github.io/MaxMind-DB/>). Output is deterministic (same input,
//! same bytes) so `geoip/demo.mmdb` can be checked against its CSV.
//!
//! # Layout
//!
//! ```text
//! search tree (node_count nodes, two records each) | 16 zero bytes | data section |
//! "\xAB\xCD\xEFMaxMind.com" | metadata map
//! ```
//!
//! The tree is always IPv6 (`ip_version` 6): IPv4 networks live under `::/96`, and, as in
//! MaxMind's own files, `::ffff:0:0/96`, `2002::/16` and `2001::/32` point at that same subtree
//! so readers find IPv4 data from IPv4-mapped, 6to4 and Teredo addresses. Identical records are
//! stored once. Record size is the smallest of 24, 28 and 32 bits that fits.

use std::collections::HashMap;

use ipnet::IpNet;

use super::GeoError;

/// A data-section value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// UTF-8 string.
    Str(String),
    /// IEEE 754 double.
    Double(f64),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Unsigned 64-bit integer.
    U64(u64),
    /// Boolean.
    Bool(bool),
    /// Map with string keys, written in the given order.
    Map(Vec<(String, Value)>),
    /// Array.
    Array(Vec<Value>),
}

const T_STR: u8 = 2;
const T_DOUBLE: u8 = 3;
const T_U16: u8 = 5;
const T_U32: u8 = 6;
const T_MAP: u8 = 7;
const T_U64: u8 = 9;
const T_ARRAY: u8 = 11;
const T_BOOL: u8 = 14;

impl Value {
    /// Appends the encoding of the value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Str(s) => {
                control(out, T_STR, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Double(d) => {
                control(out, T_DOUBLE, 8);
                out.extend_from_slice(&d.to_be_bytes());
            }
            Value::U16(v) => uint(out, T_U16, u64::from(*v)),
            Value::U32(v) => uint(out, T_U32, u64::from(*v)),
            Value::U64(v) => uint(out, T_U64, *v),
            Value::Bool(b) => control(out, T_BOOL, usize::from(*b)),
            Value::Map(m) => {
                control(out, T_MAP, m.len());
                for (k, v) in m {
                    Value::Str(k.clone()).encode(out);
                    v.encode(out);
                }
            }
            Value::Array(a) => {
                control(out, T_ARRAY, a.len());
                for v in a {
                    v.encode(out);
                }
            }
        }
    }
}

/// Shorthand for a map value.
pub fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// Control byte(s): type in the top three bits (extended types in a second byte), then size.
fn control(out: &mut Vec<u8>, ty: u8, size: usize) {
    let (first_ty, ext) = if ty <= 7 {
        (ty, None)
    } else {
        (0, Some(ty - 7))
    };
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 285 {
        (29, vec![(size - 29) as u8])
    } else if size < 65_821 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    };
    out.push((first_ty << 5) | size_bits);
    if let Some(e) = ext {
        out.push(e);
    }
    out.extend_from_slice(&extra);
}

fn uint(out: &mut Vec<u8>, ty: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, ty, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    Empty,
    Node(u32),
    Data(u32),
}

/// Builds a database in memory.
#[derive(Debug)]
pub struct Writer {
    database_type: String,
    description: String,
    build_epoch: u64,
    nodes: Vec<[Child; 2]>,
    data: Vec<u8>,
    offsets: HashMap<Vec<u8>, u32>,
}

/// Networks whose space is an alias of the IPv4 subtree: inserts there are refused.
const ALIASES: [(u128, u8); 3] = [
    (0xffff_u128 << 32, 96),
    (0x2002_u128 << 112, 16),
    (0x2001_0000_u128 << 96, 32),
];

impl Writer {
    /// A writer for a database of type `database_type` (e.g. `GeoLite2-City`).
    pub fn new(database_type: &str, description: &str, build_epoch: u64) -> Self {
        Writer {
            database_type: database_type.into(),
            description: description.into(),
            build_epoch,
            nodes: vec![[Child::Empty; 2]],
            data: Vec::new(),
            offsets: HashMap::new(),
        }
    }

    /// Maps `net` to `value`. A network inserted after one that contains it wins inside it;
    /// insert shorter prefixes first. IPv4 networks go under `::/96`.
    pub fn insert(&mut self, net: IpNet, value: &Value) -> Result<(), String> {
        let (addr, prefix) = match net.trunc() {
            IpNet::V4(v) => (u128::from(u32::from(v.network())), v.prefix_len() + 96),
            IpNet::V6(v) => (u128::from(v.network()), v.prefix_len()),
        };
        if prefix == 0 {
            return Err("cannot map the whole address space".into());
        }
        for (a, p) in ALIASES {
            if prefix >= p && (addr ^ a) >> (128 - u32::from(p)) == 0 {
                return Err(format!(
                    "{net} lies in an alias of the IPv4 space; write the IPv4 network instead"
                ));
            }
        }
        let data = self.intern(value)?;
        let mut node = 0usize;
        for depth in 0..prefix - 1 {
            node = self.descend(node, bit(addr, depth));
        }
        let b = bit(addr, prefix - 1);
        match self.nodes[node][b] {
            Child::Node(_) => Err(format!(
                "{net} contains a network inserted before it; insert shorter prefixes first"
            )),
            _ => {
                self.nodes[node][b] = Child::Data(data);
                Ok(())
            }
        }
    }

    fn intern(&mut self, value: &Value) -> Result<u32, String> {
        let mut buf = Vec::new();
        value.encode(&mut buf);
        if let Some(&o) = self.offsets.get(&buf) {
            return Ok(o);
        }
        let o = u32::try_from(self.data.len()).map_err(|_| "data section over 4 GiB")?;
        self.data.extend_from_slice(&buf);
        self.offsets.insert(buf, o);
        Ok(o)
    }

    /// The child node on side `b`, created (inheriting the parent's data) when missing.
    fn descend(&mut self, node: usize, b: usize) -> usize {
        match self.nodes[node][b] {
            Child::Node(n) => n as usize,
            leaf => {
                let n = self.nodes.len();
                self.nodes.push([leaf; 2]);
                self.nodes[node][b] = Child::Node(n as u32);
                n
            }
        }
    }

    /// Node at `depth` bits along `addr`, created when missing.
    fn path(&mut self, addr: u128, depth: u8) -> usize {
        let mut node = 0;
        for d in 0..depth {
            node = self.descend(node, bit(addr, d));
        }
        node
    }

    /// The finished file.
    pub fn to_bytes(mut self) -> Result<Vec<u8>, GeoError> {
        if self.build_epoch == 0 {
            return Err(GeoError::Write(
                "build_epoch 0 is refused by libmaxminddb; give a date".into(),
            ));
        }
        let v4_root = self.path(0, 96) as u32;
        for (a, p) in ALIASES {
            let parent = self.path(a, p - 1);
            self.nodes[parent][bit(a, p - 1)] = Child::Node(v4_root);
        }
        let node_count = self.nodes.len() as u64;
        let max = node_count + 16 + self.data.len() as u64;
        let record_size: u16 = match max {
            m if m < 1 << 24 => 24,
            m if m < 1 << 28 => 28,
            m if m < 1 << 32 => 32,
            _ => return Err(GeoError::Write("database over 4 GiB".into())),
        };
        let rec = |c: Child| -> u64 {
            match c {
                Child::Empty => node_count,
                Child::Node(n) => u64::from(n),
                Child::Data(o) => node_count + 16 + u64::from(o),
            }
        };
        let mut out = Vec::with_capacity(self.nodes.len() * 8 + self.data.len() + 512);
        for [l, r] in &self.nodes {
            let (l, r) = (rec(*l), rec(*r));
            match record_size {
                24 => {
                    out.extend_from_slice(&l.to_be_bytes()[5..]);
                    out.extend_from_slice(&r.to_be_bytes()[5..]);
                }
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[5..]);
                    out.push((((l >> 24) as u8 & 0x0f) << 4) | ((r >> 24) as u8 & 0x0f));
                    out.extend_from_slice(&r.to_be_bytes()[5..]);
                }
                _ => {
                    out.extend_from_slice(&l.to_be_bytes()[4..]);
                    out.extend_from_slice(&r.to_be_bytes()[4..]);
                }
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        self.metadata(node_count, record_size).encode(&mut out);
        Ok(out)
    }

    fn metadata(&self, node_count: u64, record_size: u16) -> Value {
        map([
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(self.build_epoch)),
            ("database_type", Value::Str(self.database_type.clone())),
            (
                "description",
                map([("en", Value::Str(self.description.clone()))]),
            ),
            ("ip_version", Value::U16(6)),
            ("languages", Value::Array(vec![Value::Str("en".into())])),
            ("node_count", Value::U32(node_count as u32)),
            ("record_size", Value::U16(record_size)),
        ])
    }
}

fn bit(addr: u128, depth: u8) -> usize {
    ((addr >> (127 - u32::from(depth))) & 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Rec {
        s: String,
        d: f64,
        n16: u16,
        n32: u32,
        n64: u64,
        b: bool,
        f: bool,
        a: Vec<String>,
    }

    fn rec(s: &str) -> Value {
        map([
            ("s", Value::Str(s.into())),
            ("d", Value::Double(-1.25)),
            ("n16", Value::U16(300)),
            ("n32", Value::U32(70_000)),
            ("n64", Value::U64(1 << 40)),
            ("b", Value::Bool(true)),
            ("f", Value::Bool(false)),
            ("a", Value::Array(vec![Value::Str("x".repeat(300))])),
        ])
    }

    fn lookup(r: &maxminddb::Reader<Vec<u8>>, ip: &str) -> Option<(Rec, u8)> {
        let res = r.lookup(ip.parse::<IpAddr>().unwrap()).unwrap();
        let net = res.network().unwrap();
        res.decode::<Rec>().unwrap().map(|v| (v, net.prefix()))
    }

    #[test]
    fn round_trips_through_the_maxminddb_reader() {
        let mut w = Writer::new("Test-City", "test", 42);
        w.insert("10.0.0.0/8".parse().unwrap(), &rec("ten"))
            .unwrap();
        w.insert("10.1.0.0/16".parse().unwrap(), &rec("ten-one"))
            .unwrap();
        w.insert("2001:db8::/32".parse().unwrap(), &rec("doc"))
            .unwrap();
        let long = "é".repeat(40_000);
        w.insert("192.0.2.0/24".parse().unwrap(), &rec(&long))
            .unwrap();
        let r = maxminddb::Reader::from_source(w.to_bytes().unwrap()).unwrap();
        assert_eq!(r.metadata().database_type, "Test-City");
        assert_eq!(r.metadata().build_epoch, 42);
        // The nested /16 splits the /8: 10.2.3.4 is found in 10.2.0.0/15.
        let (v, p) = lookup(&r, "10.2.3.4").unwrap();
        assert_eq!((v.s.as_str(), p), ("ten", 15));
        assert_eq!(lookup(&r, "10.128.0.1").unwrap().1, 9);
        assert_eq!(
            v,
            Rec {
                s: "ten".into(),
                ..lookup(&r, "10.9.9.9").unwrap().0
            }
        );
        assert_eq!(v.n64, 1 << 40);
        assert!(v.b && !v.f);
        assert_eq!(lookup(&r, "10.1.3.4").unwrap().0.s, "ten-one");
        assert_eq!(lookup(&r, "2001:db8::1").unwrap().0.s, "doc");
        assert_eq!(lookup(&r, "192.0.2.9").unwrap().0.s, long);
        // IPv4-mapped, 6to4 and Teredo aliases reach the IPv4 data.
        assert_eq!(lookup(&r, "::ffff:10.1.0.1").unwrap().0.s, "ten-one");
        assert_eq!(lookup(&r, "2002:a01:1::").unwrap().0.s, "ten-one");
        assert_eq!(lookup(&r, "2001:0:a01:101::").unwrap().0.s, "ten-one");
        assert!(lookup(&r, "11.0.0.1").is_none());
        r.verify().unwrap();
    }

    #[test]
    fn identical_records_are_stored_once_and_output_is_deterministic() {
        let build = || {
            let mut w = Writer::new("T", "t", 1);
            for i in 0..50u32 {
                let net = IpNet::new(IpAddr::from([10, i as u8, 0, 0]), 16).unwrap();
                w.insert(net, &rec(if i % 2 == 0 { "a" } else { "b" }))
                    .unwrap();
            }
            (w.data.len(), w.to_bytes().unwrap())
        };
        let (len, bytes) = build();
        let mut one = Vec::new();
        rec("a").encode(&mut one);
        assert!(len < 3 * one.len());
        assert_eq!(bytes, build().1);
    }

    #[test]
    fn alias_space_and_misordered_inserts_are_refused() {
        let mut w = Writer::new("T", "t", 1);
        assert!(w.insert("2002::/24".parse().unwrap(), &rec("x")).is_err());
        assert!(
            w.insert("::ffff:10.0.0.0/104".parse().unwrap(), &rec("x"))
                .is_err()
        );
        assert!(w.insert("0.0.0.0/0".parse().unwrap(), &rec("x")).is_ok());
        w.insert("10.1.0.0/16".parse().unwrap(), &rec("x")).unwrap();
        assert!(w.insert("10.0.0.0/8".parse().unwrap(), &rec("y")).is_err());
    }

    #[test]
    fn large_trees_use_wider_records() {
        let mut w = Writer::new("T", "t", 1);
        for i in 0..(1u32 << 17) {
            let net = IpNet::new(IpAddr::from((0x0b00_0000 | i).to_be_bytes()), 32).unwrap();
            w.insert(net, &Value::Str(format!("{i:0>130}"))).unwrap();
        }
        let r = maxminddb::Reader::from_source(w.to_bytes().unwrap()).unwrap();
        assert_eq!(r.metadata().record_size, 28);
        let v: String = r
            .lookup("11.1.0.5".parse().unwrap())
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(v, format!("{:0>130}", 0x1_0005));
    }
}
