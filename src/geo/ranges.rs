//! Flat sorted range tables: the compiled form of a GeoIP database and of a zone's overrides.
//!
//! The address space (32 bits for IPv4, 128 for IPv6) is cut into a *partition*: consecutive
//! ranges that cover it without gaps, each with one `u32` value (a location id, or [`NONE`] for
//! "not mapped here"). Adjacent ranges with the same value are merged, so a lookup finds the
//! widest run of addresses with one answer, which is what the ECS scope must describe.
//!
//! Lookup is a 16-bit first-level index (the range holding the first address of each /16 for
//! IPv4, or each /16 of IPv6) followed by a binary search inside the bucket: a few probes into
//! two flat arrays, no allocation, no pointer chasing.

use std::collections::BTreeMap;
use std::fmt;

/// "Nothing here": a database gap, or an override table that does not cover the address.
pub(crate) const NONE: u32 = u32::MAX;

/// Width of an address key.
pub(crate) trait Key: Copy + Ord + fmt::Debug + Send + Sync + 'static {
    /// Bits in the address.
    const BITS: u32;
    /// Truncating conversion from the build-time representation.
    fn from_u128(v: u128) -> Self;
    /// The top 16 bits: the first-level bucket.
    fn bucket(self) -> usize;
    /// Leading zero bits of `self ^ other`.
    fn common_prefix(self, other: Self) -> u32;
    /// `self - 1`; callers never pass 0.
    fn pred(self) -> Self;
    /// True for the all-zero address.
    fn is_zero(self) -> bool;
}

impl Key for u32 {
    const BITS: u32 = 32;
    fn from_u128(v: u128) -> Self {
        v as u32
    }
    #[inline]
    fn bucket(self) -> usize {
        (self >> 16) as usize
    }
    #[inline]
    fn common_prefix(self, other: Self) -> u32 {
        (self ^ other).leading_zeros()
    }
    #[inline]
    fn pred(self) -> Self {
        self.wrapping_sub(1)
    }
    #[inline]
    fn is_zero(self) -> bool {
        self == 0
    }
}

impl Key for u128 {
    const BITS: u32 = 128;
    fn from_u128(v: u128) -> Self {
        v
    }
    #[inline]
    fn bucket(self) -> usize {
        (self >> 112) as usize
    }
    #[inline]
    fn common_prefix(self, other: Self) -> u32 {
        (self ^ other).leading_zeros()
    }
    #[inline]
    fn pred(self) -> Self {
        self.wrapping_sub(1)
    }
    #[inline]
    fn is_zero(self) -> bool {
        self == 0
    }
}

/// The largest address of a `bits`-wide space.
pub(crate) fn space_max(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// First and last address of `start/prefix` in a `bits`-wide space (host bits of `start` are
/// cleared).
pub(crate) fn net_bounds(bits: u32, start: u128, prefix: u8) -> (u128, u128) {
    let host = if u32::from(prefix) >= bits {
        0
    } else {
        space_max(bits) >> prefix
    };
    let first = start & !host & space_max(bits);
    (first, first | host)
}

/// A partition of a `bits`-wide space under construction (always in `u128`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partition {
    bits: u32,
    /// Start of each range; `starts[0] == 0`, strictly increasing.
    starts: Vec<u128>,
    vals: Vec<u32>,
}

impl Partition {
    /// One range over the whole space.
    pub(crate) fn uniform(bits: u32, val: u32) -> Self {
        Partition {
            bits,
            starts: vec![0],
            vals: vec![val],
        }
    }

    /// From disjoint `(first, last, value)` ranges in any order; gaps get [`NONE`].
    /// Returns the first overlapping pair when two ranges overlap.
    pub(crate) fn from_disjoint(
        bits: u32,
        mut ranges: Vec<(u128, u128, u32)>,
    ) -> Result<Self, (u128, u128)> {
        ranges.sort_unstable_by_key(|r| r.0);
        let mut p = Partition {
            bits,
            starts: Vec::with_capacity(ranges.len() * 2 + 1),
            vals: Vec::with_capacity(ranges.len() * 2 + 1),
        };
        let mut next = 0u128; // first address not yet covered
        let mut covered_all = false;
        for (first, last, val) in ranges {
            if covered_all || first < next {
                return Err((first, last));
            }
            if first > next {
                p.push(next, NONE);
            }
            p.push(first, val);
            if last == space_max(bits) {
                covered_all = true;
            } else {
                next = last + 1;
            }
        }
        if !covered_all {
            p.push(next, NONE);
        }
        Ok(p)
    }

    /// From networks that may nest: a longer prefix wins over a shorter one it lies in; at equal
    /// length the later entry wins. Uncovered space gets `base`.
    pub(crate) fn paint(bits: u32, nets: &[(u128, u8, u32)], base: u32) -> Self {
        let mut order: Vec<&(u128, u8, u32)> = nets.iter().collect();
        order.sort_by_key(|n| n.1);
        let mut map = BTreeMap::new();
        map.insert(0u128, base);
        for &&(start, prefix, val) in &order {
            let (first, last) = net_bounds(bits, start, prefix);
            let after = (last < space_max(bits)).then(|| value_at(&map, last + 1));
            let inside: Vec<u128> = map.range(first..=last).map(|(k, _)| *k).collect();
            for k in inside {
                map.remove(&k);
            }
            map.insert(first, val);
            if let Some(a) = after {
                map.entry(last + 1).or_insert(a);
            }
        }
        let mut p = Partition {
            bits,
            starts: Vec::with_capacity(map.len()),
            vals: Vec::with_capacity(map.len()),
        };
        for (s, v) in map {
            p.push(s, v);
        }
        p
    }

    /// `top` where it is not [`NONE`], else `bottom`. Both must have the same width.
    pub(crate) fn overlay(top: &Partition, bottom: &Partition) -> Partition {
        debug_assert_eq!(top.bits, bottom.bits);
        let mut out = Partition {
            bits: top.bits,
            starts: Vec::with_capacity(top.starts.len() + bottom.starts.len()),
            vals: Vec::with_capacity(top.starts.len() + bottom.starts.len()),
        };
        let (mut i, mut j) = (0usize, 0usize);
        let mut pos = 0u128;
        loop {
            let v = if top.vals[i] != NONE {
                top.vals[i]
            } else {
                bottom.vals[j]
            };
            out.push(pos, v);
            let nt = top.starts.get(i + 1).copied();
            let nb = bottom.starts.get(j + 1).copied();
            pos = match (nt, nb) {
                (None, None) => break,
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (Some(a), Some(b)) => a.min(b),
            };
            if nt == Some(pos) {
                i += 1;
            }
            if nb == Some(pos) {
                j += 1;
            }
        }
        out
    }

    /// Appends a range, merging it into the previous one when the value is the same.
    fn push(&mut self, start: u128, val: u32) {
        if self.vals.last() == Some(&val) {
            return;
        }
        self.starts.push(start);
        self.vals.push(val);
    }

    /// Number of ranges.
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }
}

fn value_at(map: &BTreeMap<u128, u32>, addr: u128) -> u32 {
    map.range(..=addr).next_back().map_or(NONE, |(_, v)| *v)
}

/// One range of a compiled table: start and value side by side, so the probe that finds the
/// range has already brought its value (and usually the next start) into the cache.
#[derive(Clone, Copy)]
struct Entry<K> {
    start: K,
    val: u32,
}

/// A compiled, read-only partition with a first-level index.
pub(crate) struct RangeTable<K> {
    entries: Box<[Entry<K>]>,
    /// `index[b]`: the range holding the first address of bucket `b`; `index[65536]` is the last
    /// range.
    index: Box<[u32]>,
}

impl<K: Key> RangeTable<K> {
    /// Compiles a partition whose width matches `K`.
    pub(crate) fn new(p: &Partition) -> Self {
        assert_eq!(p.bits, K::BITS, "partition width does not match the table");
        assert!(p.len() < u32::MAX as usize, "too many ranges");
        let entries: Box<[Entry<K>]> = p
            .starts
            .iter()
            .zip(&p.vals)
            .map(|(&s, &val)| Entry {
                start: K::from_u128(s),
                val,
            })
            .collect();
        let shift = K::BITS - 16;
        let mut index = Vec::with_capacity(65537);
        let mut r = 0usize;
        for b in 0..65536u128 {
            let first = b << shift;
            while r + 1 < p.starts.len() && p.starts[r + 1] <= first {
                r += 1;
            }
            index.push(r as u32);
        }
        index.push((p.len() - 1) as u32);
        RangeTable {
            entries,
            index: index.into_boxed_slice(),
        }
    }

    /// The value of the range holding `a`, and the shortest prefix length `p` such that the
    /// aligned `/p` block around `a` lies inside that range.
    #[inline]
    pub(crate) fn find(&self, a: K) -> (u32, u8) {
        let b = a.bucket();
        let lo = self.index[b] as usize;
        let hi = self.index[b + 1] as usize;
        let bucket = &self.entries[lo..=hi];
        // entries[lo].start <= a by construction of the index, so the partition point is at
        // least 1.
        let i = lo + bucket.partition_point(|e| e.start <= a) - 1;
        let e = self.entries[i];
        let below = if e.start.is_zero() {
            0
        } else {
            a.common_prefix(e.start.pred()) + 1
        };
        let above = match self.entries.get(i + 1) {
            Some(next) => a.common_prefix(next.start) + 1,
            None => 0,
        };
        (e.val, below.max(above) as u8)
    }

    /// Number of ranges.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<K> fmt::Debug for RangeTable<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeTable")
            .field("ranges", &self.entries.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> u128 {
        u128::from(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()))
    }

    fn ip(s: &str) -> u32 {
        s.parse::<std::net::Ipv4Addr>().unwrap().into()
    }

    #[test]
    fn gaps_are_none_and_scope_is_the_widest_block() {
        let p = Partition::from_disjoint(
            32,
            vec![
                (v4("10.0.0.0"), v4("10.255.255.255"), 1),
                (v4("11.0.0.0"), v4("11.0.0.255"), 2),
            ],
        )
        .unwrap();
        let t = RangeTable::<u32>::new(&p);
        assert_eq!(t.find(ip("10.1.2.3")), (1, 8));
        assert_eq!(t.find(ip("11.0.0.9")), (2, 24));
        // 100.64.1.0 lies in the gap 11.0.1.0..=255.255.255.255; the widest aligned block
        // around it inside that gap is 64.0.0.0/2.
        assert_eq!(t.find(ip("100.64.1.0")), (NONE, 2));
        assert_eq!(t.find(ip("0.0.0.1")), (NONE, 5));
        assert_eq!(t.find(ip("255.255.255.255")), (NONE, 1));
    }

    #[test]
    fn adjacent_equal_values_merge() {
        let p = Partition::from_disjoint(
            32,
            vec![
                (v4("10.0.0.0"), v4("10.0.0.255"), 7),
                (v4("10.0.1.0"), v4("10.0.1.255"), 7),
            ],
        )
        .unwrap();
        assert_eq!(p.len(), 3);
        let t = RangeTable::<u32>::new(&p);
        assert_eq!(t.find(ip("10.0.1.1")), (7, 23));
    }

    #[test]
    fn overlaps_are_reported() {
        let r = Partition::from_disjoint(
            32,
            vec![
                (v4("10.0.0.0"), v4("10.255.255.255"), 1),
                (v4("10.1.0.0"), v4("10.1.255.255"), 2),
            ],
        );
        assert!(r.is_err());
    }

    #[test]
    fn paint_lets_longer_prefixes_win() {
        let p = Partition::paint(32, &[(v4("10.1.0.0"), 16, 2), (v4("10.0.0.0"), 8, 1)], NONE);
        let t = RangeTable::<u32>::new(&p);
        assert_eq!(t.find(ip("10.1.9.9")), (2, 16));
        // 10.0.0.0/16 is left of the hole: its widest block is 10.0.0.0/16.
        assert_eq!(t.find(ip("10.0.9.9")), (1, 16));
        assert_eq!(t.find(ip("10.200.0.1")), (1, 9));
        assert_eq!(t.find(ip("9.0.0.1")), (NONE, 7));
    }

    #[test]
    fn overlay_prefers_the_top() {
        let bottom = Partition::paint(32, &[(v4("10.0.0.0"), 8, 1)], NONE);
        let top = Partition::paint(32, &[(v4("10.5.0.0"), 16, 9)], NONE);
        let o = Partition::overlay(&top, &bottom);
        let t = RangeTable::<u32>::new(&o);
        assert_eq!(t.find(ip("10.5.0.1")).0, 9);
        assert_eq!(t.find(ip("10.6.0.1")).0, 1);
        assert_eq!(t.find(ip("11.0.0.1")).0, NONE);
        assert_eq!(o.len(), 5);
    }

    #[test]
    fn ipv6_tables_and_full_space_ranges() {
        let p = Partition::paint(128, &[(0x2001_0db8u128 << 96, 32, 3)], NONE);
        let t = RangeTable::<u128>::new(&p);
        assert_eq!(t.find((0x2001_0db8u128 << 96) | 1), (3, 32));
        let u = RangeTable::<u128>::new(&Partition::uniform(128, 4));
        assert_eq!(u.find(u128::MAX), (4, 0));
        assert_eq!(u.find(0), (4, 0));
        let full = Partition::from_disjoint(32, vec![(0, u128::from(u32::MAX), 5)]).unwrap();
        assert_eq!(RangeTable::<u32>::new(&full).find(7), (5, 0));
    }
}
