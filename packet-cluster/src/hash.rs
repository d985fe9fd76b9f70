//! A fast hasher for the maps keyed by ids (session ids, node ids, frame addresses) that the cluster touches once
//! per delivery. std's SipHash guards against keys chosen to collide; these keys are ours (gateway counters, block
//! addresses), not a client's, and SipHash's ~20 ns per lookup was a third of a shard's CPU per delivery.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-xorshift over the integers written (a SplitMix64 finish per word).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_add(0x9e37_79b9_7f4a_7c15).rotate_left(23);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A `HashMap` with [`IdHasher`].
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(value: T) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(value)
    }

    #[test]
    fn nearby_ids_spread_over_the_low_bits() {
        // HashMap picks buckets from the low bits: consecutive session ids and 64-byte-aligned addresses must not
        // pile into few buckets.
        for keys in [(0..4096u64).collect::<Vec<_>>(), (0..4096u64).map(|i| 0x7f00_0000_0000 + i * 64).collect()] {
            let buckets: std::collections::HashSet<u64> = keys.iter().map(|&k| hash(k) & 1023).collect();
            assert!(buckets.len() > 900, "{} of 1024 buckets used", buckets.len());
        }
        assert_ne!(hash((1u32, 2u32)), hash((2u32, 1u32)));
    }
}
