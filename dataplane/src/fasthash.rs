//! A fast hasher for the control plane's big maps (a full table's
//! prefixes, interned attributes and nexthop sets), where SipHash was a
//! tenth of the time of ingesting a table. Multiply-rotate per word with a
//! final avalanche (MurmurHash3's fmix64), seeded once per process from
//! the standard library's random keys, so bucket order still differs from
//! run to run and keys chosen by a peer cannot be aimed at one bucket
//! without knowing the seed.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A `HashMap` with [`FastState`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;
/// A `HashSet` with [`FastState`].
pub type FastSet<T> = HashSet<T, FastState>;

/// Builds [`FastHasher`]s from the process's seed.
#[derive(Clone, Copy, Debug)]
pub struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        let seed = *SEED.get_or_init(|| RandomState::new().hash_one(0x5eed_u64) | 1);
        FastState { seed }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher { h: self.seed }
    }
}

/// See the module documentation.
#[derive(Clone, Copy, Debug)]
pub struct FastHasher {
    h: u64,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.h = (self.h ^ word).wrapping_mul(K).rotate_left(29);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut k = self.h;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_neighbours_spread() {
        let s = FastState::default();
        assert_eq!(
            s.hash_one((0x0a00_0000u32, 24u8)),
            s.hash_one((0x0a00_0000u32, 24u8))
        );
        // Consecutive /24s land in distinct buckets of a 2^20-bucket table
        // and differ in the top 7 bits (hashbrown's tag) often.
        let mut buckets = FastSet::default();
        let mut tags = FastSet::default();
        for i in 0..4096u32 {
            let h = s.hash_one((0x0a00_0000u32 + (i << 8), 24u8));
            buckets.insert(h & ((1 << 20) - 1));
            tags.insert(h >> 57);
        }
        assert!(buckets.len() > 4000, "{} distinct buckets", buckets.len());
        assert_eq!(tags.len(), 128);
    }

    #[test]
    fn byte_strings_of_different_lengths_differ() {
        let s = FastState::default();
        let a: &[u8] = &[1, 2, 3];
        let b: &[u8] = &[1, 2, 3, 0];
        assert_ne!(s.hash_one(a), s.hash_one(b));
    }
}
