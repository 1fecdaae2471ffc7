//! SipHash-2-4 flow hash as Linux's `flow_hash_from_keys` computes it: keyed
//! SipHash over the (consistently ordered) flow fields, truncated to the low
//! 32 bits, with 0 replaced by 1.

use siphasher::sip::SipHasher24;

/// Advances a SplitMix64 generator and returns its next output.
///
/// This is the seed expander every seeded hash in [`crate::hash`] uses to
/// turn a router's 64-bit seed into key material (SipHash keys, Toeplitz
/// keys, CRC initial values). SplitMix64 is a bijective mixer of a Weyl
/// sequence, so distinct seeds give distinct first outputs.
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SipHash-2-4 with a key derived from a seed, folded to 32 bits like Linux.
///
/// The 128-bit key is `(k0, k1)` = the first two SplitMix64 outputs of the
/// seed, so seed 0 uses the fixed key [`LinuxSipHash::SEED0_KEYS`]. (Linux
/// draws its `flow_keys` SipHash key at random on boot; ecmpd derives it from
/// the seed instead so that runs are reproducible.)
///
/// Only the algorithm matches Linux: Linux hashes the in-memory layout of its
/// `struct flow_keys`, while ecmpd hashes the serialised [`crate::HashInput`],
/// so absolute hash values differ from a kernel's even with the same key.
#[derive(Clone)]
pub struct LinuxSipHash {
    hasher: SipHasher24,
}

impl LinuxSipHash {
    /// The `(k0, k1)` key seed 0 gives: the first two SplitMix64 outputs of 0.
    pub const SEED0_KEYS: (u64, u64) = (0xe220_a839_7b1d_cdaf, 0x6e78_9e6a_a1b9_65f4);

    /// The hasher for a router seed (see the type docs for the key schedule).
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        let k0 = splitmix64(&mut state);
        let k1 = splitmix64(&mut state);
        Self::with_keys(k0, k1)
    }

    /// The hasher for an explicit SipHash key, `k0` and `k1` being the
    /// little-endian halves of the 16-byte key as in the SipHash paper.
    pub fn with_keys(k0: u64, k1: u64) -> Self {
        LinuxSipHash {
            hasher: SipHasher24::new_with_keys(k0, k1),
        }
    }

    /// The key in use, as `(k0, k1)`.
    pub fn keys(&self) -> (u64, u64) {
        self.hasher.keys()
    }

    /// Plain SipHash-2-4 of `input` under this hasher's key (64-bit output).
    #[inline]
    pub fn siphash24(&self, input: &[u8]) -> u64 {
        self.hasher.hash(input)
    }

    /// The 32-bit flow hash of `input`: [`LinuxSipHash::siphash24`] folded
    /// with [`fold_like_linux`].
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        fold_like_linux(self.siphash24(input))
    }
}

/// Folds a 64-bit SipHash to a flow hash the way Linux's
/// `__flow_hash_from_keys` does: keep the low 32 bits (the implicit `u64` to
/// `u32` conversion) and return 1 instead of 0, because 0 means "no hash" in
/// `skb->hash`.
#[inline]
pub const fn fold_like_linux(h: u64) -> u32 {
    let h = h as u32;
    if h == 0 {
        1
    } else {
        h
    }
}
