//! Consistent hashing with a Maglev lookup table (Eisenbud et al., NSDI 2016), weighted, with
//! optional bounded loads (Mirrokni et al., 2016).
//!
//! Maglev gives every server its share of a prime-sized table to within one slot, which a ring
//! with a hundred points per server cannot (its shares vary by ~10 %). A key is looked up by a
//! fixed sequence of probes into the table; the first *eligible* server wins. Because the table is
//! built from the full server set and ineligible servers are skipped rather than removed, taking
//! a server down moves exactly the keys it held and no others. The same probe sequence gives an
//! ordered list of distinct fallbacks (the DNS side answers with several datacenters).

use super::hash::{DEFAULT_SEED, hash_bytes, hash_u64, reduce};

/// Probes into the table before falling back to a scan of every server.
const PROBES: u64 = 32;
/// Table sizes: the smallest prime here with more than `SLOTS_PER_UNIT` slots per unit of weight.
/// A fixed ladder rather than "next prime above" so that adding one server keeps the table size
/// (a new size would remap every key). The first size is large because Maglev's extra
/// disruption shrinks with the table: with 65 537 slots adding a 29th server moved 1.11/(N+1)
/// of the keys, with 1 048 573 at most 1.05/(N+1) for 3–50 servers.
const TABLE_SIZES: [usize; 2] = [1_048_573, 4_194_301];
/// Table slots per unit of weight (the issue asks for > 100 per server).
const SLOTS_PER_UNIT: usize = 128;
/// Weight units kept after reducing by the common divisor; larger sums are scaled down.
const MAX_UNITS: u64 = 1 << 15;

/// A Maglev table over servers given as `(id, weight)`; ids decide the placement, so the same
/// ids give the same table in every process.
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Vec<u16>,
    servers: usize,
}

impl Maglev {
    /// Most servers in one table.
    pub const MAX_SERVERS: usize = u16::MAX as usize;

    /// Builds the table. Servers of weight 0 hold no slots (but stay reachable as fallbacks);
    /// servers past [`Self::MAX_SERVERS`] are ignored.
    pub fn new<K: AsRef<[u8]>>(servers: &[(K, u32)]) -> Self {
        let units: u64 = normalise(&servers.iter().map(|s| s.1).collect::<Vec<_>>())
            .iter()
            .map(|&u| u64::from(u))
            .sum();
        let m = TABLE_SIZES
            .iter()
            .copied()
            .find(|&m| m as u64 > units * SLOTS_PER_UNIT as u64)
            .unwrap_or(TABLE_SIZES[TABLE_SIZES.len() - 1]);
        Self::with_table_size(servers, m)
    }

    /// Builds a table of `m` slots (`m` should be a prime well above 100 × the weight units).
    /// Smaller tables build faster but move a few more keys between surviving servers when a
    /// server is added; [`Maglev::new`] picks a size that keeps that under 10 %.
    pub fn with_table_size<K: AsRef<[u8]>>(servers: &[(K, u32)], m: usize) -> Self {
        let servers = &servers[..servers.len().min(Self::MAX_SERVERS)];
        let units = normalise(&servers.iter().map(|s| s.1).collect::<Vec<_>>());
        let total: usize = units.iter().map(|&u| u as usize).sum();
        if total == 0 || m < 2 {
            return Maglev {
                table: Vec::new(),
                servers: servers.len(),
            };
        }
        // Each server walks its own permutation of the slots (offset, offset + skip, ...),
        // claiming the next free slot once per unit of weight per round.
        let mut pos: Vec<usize> = Vec::with_capacity(servers.len());
        let mut skips: Vec<usize> = Vec::with_capacity(servers.len());
        for (id, _) in servers {
            let id = id.as_ref();
            pos.push((hash_bytes(DEFAULT_SEED, id) % m as u64) as usize);
            skips.push((hash_bytes(DEFAULT_SEED ^ 0x5bd1_e995, id) % (m as u64 - 1)) as usize + 1);
        }
        let mut table = vec![u16::MAX; m];
        let mut filled = 0;
        'fill: loop {
            for i in 0..servers.len() {
                for _ in 0..units[i] {
                    let (mut p, skip) = (pos[i], skips[i]);
                    while table[p] != u16::MAX {
                        p = advance(p, skip, m);
                    }
                    table[p] = i as u16;
                    pos[i] = advance(p, skip, m);
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Maglev {
            table,
            servers: servers.len(),
        }
    }

    /// Number of servers the table was built from.
    pub fn len(&self) -> usize {
        self.servers
    }

    /// True when built from no servers.
    pub fn is_empty(&self) -> bool {
        self.servers == 0
    }

    /// The lookup table (server index per slot); its length is prime.
    pub fn table(&self) -> &[u16] {
        &self.table
    }

    /// The server for a key hash: the first eligible server in the key's probe sequence.
    pub fn pick(&self, key: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        self.order(key).find(|&i| eligible(i))
    }

    /// Up to `max` distinct eligible servers in the key's preference order, appended to `out`.
    pub fn candidates(
        &self,
        key: u64,
        max: usize,
        eligible: impl Fn(usize) -> bool,
        out: &mut Vec<usize>,
    ) {
        let start = out.len();
        for i in self.order(key) {
            if out.len() - start >= max {
                break;
            }
            if eligible(i) && !out[start..].contains(&i) {
                out.push(i);
            }
        }
    }

    /// Bounded loads: the first eligible server in the key's order whose load is below
    /// `⌈c × (total + 1) / eligible servers⌉`. `load(i)` is server i's current load and `total`
    /// the sum over eligible servers. Some server is always below the cap, so this returns
    /// `None` only when no server is eligible.
    pub fn pick_bounded(
        &self,
        key: u64,
        c: f64,
        total: u64,
        eligible: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> u64,
    ) -> Option<usize> {
        let m = (0..self.servers).filter(|&i| eligible(i)).count();
        if m == 0 {
            return None;
        }
        let cap = (c.max(1.0) * (total + 1) as f64 / m as f64).ceil() as u64;
        self.order(key)
            .find(|&i| eligible(i) && load(i) < cap)
            .or_else(|| (0..self.servers).find(|&i| eligible(i)))
    }

    /// The key's preference order: table probes, then every server from the first probe's
    /// server on (so every server is reachable). May repeat servers.
    fn order(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let n = self.servers;
        let m = self.table.len();
        let probes = (0..if m == 0 { 0 } else { PROBES }).map(move |p| {
            let h = if p == 0 { key } else { hash_u64(key, p) };
            self.table[reduce(h, m)] as usize
        });
        let first = if m == 0 {
            0
        } else {
            self.table[reduce(key, m)] as usize
        };
        probes.chain((0..n).map(move |k| (first + k) % n))
    }
}

#[inline(always)]
fn advance(pos: usize, skip: usize, m: usize) -> usize {
    let next = pos + skip;
    if next >= m { next - m } else { next }
}

fn normalise(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().fold(0u32, |g, &w| gcd(g, w)).max(1);
    let w: Vec<u32> = weights.iter().map(|&w| w / g).collect();
    let total: u64 = w.iter().map(|&x| u64::from(x)).sum();
    if total <= MAX_UNITS {
        return w;
    }
    w.iter()
        .map(|&x| match x {
            0 => 0,
            x => ((u64::from(x) * MAX_UNITS / total) as u32).max(1),
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
#[path = "maglev_tests.rs"]
mod tests;
