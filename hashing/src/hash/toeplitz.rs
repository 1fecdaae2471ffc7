//! The Toeplitz hash that NICs use for Receive Side Scaling (RSS), computed
//! with per-byte-position lookup tables so that hashing costs one table load
//! and one XOR per input byte.

use super::siphash::splitmix64;

/// Length of an RSS key in bytes (the Microsoft/Intel standard size).
pub const KEY_LEN: usize = 40;

/// Input bytes the key can influence: bit `i` of the input selects the 32
/// key bits starting at bit `i`, so bytes `0..MAX_INPUT` see at least one key
/// bit and later bytes see none (see [`Toeplitz`] for the exact rule).
pub const MAX_INPUT: usize = KEY_LEN;

/// Microsoft's default RSS key, the key most NICs ship with.
pub const MICROSOFT_RSS_KEY: [u8; KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The RSS key for a router seed.
///
/// Seed 0 gives [`MICROSOFT_RSS_KEY`] unchanged. Any other seed gives the
/// Microsoft key XORed with the first five SplitMix64 outputs of the seed
/// (big-endian bytes). Distinct seeds give distinct keys (the first output is
/// a bijection of the seed) and no nonzero seed gives the Microsoft key.
pub fn key_for_seed(seed: u64) -> [u8; KEY_LEN] {
    let mut key = MICROSOFT_RSS_KEY;
    if seed == 0 {
        return key;
    }
    let mut state = seed;
    for chunk in key.chunks_exact_mut(8) {
        let mask = splitmix64(&mut state).to_be_bytes();
        for (k, m) in chunk.iter_mut().zip(mask) {
            *k ^= m;
        }
    }
    key
}

/// A Toeplitz hasher for one 40-byte key.
///
/// The hash of an input is the XOR, over every set input bit `i` (counting
/// from the most significant bit of the first byte), of the 32 key bits
/// starting at key bit `i`. This is Microsoft's definition ("shift K left one
/// bit per input bit"), in which the key is followed by zero bits once it has
/// been shifted out. Consequently, with a 40-byte key:
///
/// * inputs of up to 36 bytes (an IPv6 4-tuple) use full 32-bit key windows,
///   exactly as RSS hardware does;
/// * bytes 36..40 (after the first bit of byte 36) use windows that run off
///   the end of the key and are zero-filled, so they influence fewer and
///   fewer output bits (NICs do not define these inputs; zero-filling is what
///   Microsoft's shift-the-key definition gives). The protocol byte of an
///   IPv6 5-tuple is byte 36;
/// * bytes from 40 on are ignored (their windows are all zero). For IPv6
///   this loses an ingress port hashed after a 5-tuple and flow label, and a
///   flow label after a 5-tuple (bytes 37..40) is only partly hashed.
///
/// `hash` never panics, whatever the input length.
#[derive(Clone)]
pub struct Toeplitz {
    key: [u8; KEY_LEN],
    /// `tables[p][b]`: the hash contribution of byte value `b` at input
    /// position `p`.
    tables: [[u32; 256]; MAX_INPUT],
}

impl Toeplitz {
    /// Precomputes the per-position tables for `key` (40 KiB).
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let mut tables = [[0u32; 256]; MAX_INPUT];
        for (p, table) in tables.iter_mut().enumerate() {
            // Key bits 8p .. 8p+64 (zero past the key) as a big-endian u64:
            // the 32-bit window of input bit j of byte p is bits j..j+32.
            let mut window = [0u8; 8];
            let avail = &key[p..KEY_LEN.min(p + 8)];
            window[..avail.len()].copy_from_slice(avail);
            let window = u64::from_be_bytes(window);
            // bit_value[j]: contribution of bit (7 - j) of the byte, i.e. the
            // j-th bit counting from the most significant.
            let mut bit_value = [0u32; 8];
            for (j, v) in bit_value.iter_mut().enumerate() {
                *v = ((window << j) >> 32) as u32;
            }
            for b in 1..256usize {
                // Linear in the input: b = (b with its lowest set bit
                // cleared) XOR (that bit).
                let low = b.trailing_zeros() as usize;
                table[b] = table[b & (b - 1)] ^ bit_value[7 - low];
            }
        }
        Toeplitz { key: *key, tables }
    }

    /// The key this hasher was built from.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The Toeplitz hash of `input`; bytes from [`MAX_INPUT`] on are ignored.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input
            .iter()
            .zip(self.tables.iter())
            .fold(0, |h, (&byte, table)| h ^ table[usize::from(byte)])
    }
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Toeplitz(key=")?;
        for b in &self.key {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}
