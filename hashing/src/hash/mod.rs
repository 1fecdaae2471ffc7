//! Flow hash functions that real routers, switch ASICs and NICs use.
//!
//! [`FlowHasher`] combines a [`HashFunction`], the fields to hash and a
//! per-router seed, and maps a [`FlowKey`] to a 32-bit hash that selectors
//! consume. Functions with a 16-bit output (CRC16, the CRC32 halves) have it
//! replicated into both halves of the 32-bit value, so that consumers of the
//! low bits (modulo) and of the high bits (hash-threshold) both see the
//! 16 bits an ASIC would use.
//!
//! Seed 0 gives each function's canonical form (the Microsoft RSS key for
//! Toeplitz, the standard initial values for the CRCs), which the published
//! test vectors are checked against.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::key::{FieldSelection, FlowKey, HashFields, HashInput};

pub mod crc;
pub mod jhash;
pub mod siphash;
pub mod toeplitz;
pub mod xxh3;

/// The hash functions ecmpd can emulate, plus a fast default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashFunction {
    /// Toeplitz (RSS), Microsoft's default 40-byte key at seed 0.
    Toeplitz,
    /// CRC-32 (IEEE 802.3, reflected).
    Crc32,
    /// The upper 16 bits of CRC-32, as some ASICs take them.
    Crc32Hi16,
    /// The lower 16 bits of CRC-32.
    Crc32Lo16,
    /// CRC-16-CCITT (poly 0x1021, init 0xFFFF), a switch-ASIC hash.
    Crc16Ccitt,
    /// CRC-16-BISYNC (CRC-16/ARC, poly 0x8005), a switch-ASIC hash.
    Crc16Bisync,
    /// Bob Jenkins' lookup3 `jhash`, as Linux, Katran and Cilium use it.
    Jhash,
    /// SipHash-2-4 over the consistently ordered (sorted) keys, as Linux's
    /// `flow_hash_from_keys` does; always symmetric.
    SipHash,
    /// XXH3-64, low 32 bits: ecmpd's fast default. Chosen over ahash
    /// because its output is specified and identical on every machine and
    /// version (ahash's is not), so reports are reproducible from a seed.
    Xxh3,
}

impl HashFunction {
    pub const ALL: [HashFunction; 9] = [
        HashFunction::Toeplitz,
        HashFunction::Crc32,
        HashFunction::Crc32Hi16,
        HashFunction::Crc32Lo16,
        HashFunction::Crc16Ccitt,
        HashFunction::Crc16Bisync,
        HashFunction::Jhash,
        HashFunction::SipHash,
        HashFunction::Xxh3,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            HashFunction::Toeplitz => "toeplitz",
            HashFunction::Crc32 => "crc32",
            HashFunction::Crc32Hi16 => "crc32-hi16",
            HashFunction::Crc32Lo16 => "crc32-lo16",
            HashFunction::Crc16Ccitt => "crc16-ccitt",
            HashFunction::Crc16Bisync => "crc16-bisync",
            HashFunction::Jhash => "jhash",
            HashFunction::SipHash => "siphash",
            HashFunction::Xxh3 => "xxh3",
        }
    }

    /// Bits of real output (16 or 32).
    pub const fn bits(self) -> u32 {
        match self {
            HashFunction::Crc32Hi16
            | HashFunction::Crc32Lo16
            | HashFunction::Crc16Ccitt
            | HashFunction::Crc16Bisync => 16,
            _ => 32,
        }
    }
}

impl fmt::Display for HashFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a hash-function name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash function '{given}': choose from toeplitz, crc32, crc32-hi16, crc32-lo16, crc16-ccitt, crc16-bisync, jhash, siphash, xxh3")]
pub struct ParseHashError {
    pub given: String,
}

impl FromStr for HashFunction {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        HashFunction::ALL
            .into_iter()
            .find(|f| f.name() == t)
            .or(match t.as_str() {
                "rss" => Some(HashFunction::Toeplitz),
                "lookup3" => Some(HashFunction::Jhash),
                "linux" | "linux-siphash" => Some(HashFunction::SipHash),
                "crc16" => Some(HashFunction::Crc16Ccitt),
                _ => None,
            })
            .ok_or(ParseHashError {
                given: s.to_string(),
            })
    }
}

/// Per-function state derived once from the seed.
#[derive(Clone)]
enum State {
    Toeplitz(Box<toeplitz::Toeplitz>),
    Crc32(u32),
    Crc16(u16),
    Jhash(u32),
    SipHash(siphash::LinuxSipHash),
    Xxh3(u64),
}

/// A hash function, the fields it hashes, and the router's seed.
#[derive(Clone)]
pub struct FlowHasher {
    function: HashFunction,
    selection: FieldSelection,
    seed: u64,
    state: State,
}

impl fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowHasher")
            .field("function", &self.function)
            .field("selection", &self.selection)
            .field("seed", &self.seed)
            .finish()
    }
}

impl FlowHasher {
    /// Linux's SipHash always orders keys consistently, so `SipHash` forces
    /// `selection.symmetric`.
    pub fn new(function: HashFunction, mut selection: FieldSelection, seed: u64) -> Self {
        let state = match function {
            HashFunction::Toeplitz => State::Toeplitz(Box::new(toeplitz::Toeplitz::new(
                &toeplitz::key_for_seed(seed),
            ))),
            HashFunction::Crc32 | HashFunction::Crc32Hi16 | HashFunction::Crc32Lo16 => {
                State::Crc32(crc::crc32_init(seed))
            }
            HashFunction::Crc16Ccitt | HashFunction::Crc16Bisync => {
                State::Crc16(crc::crc16_init(function, seed))
            }
            // Seed 0 is Linux's initval 0; other seeds are spread so that no
            // two seeds share an initval by construction.
            HashFunction::Jhash => State::Jhash(if seed == 0 {
                0
            } else {
                siphash::splitmix64(&mut seed.clone()) as u32
            }),
            HashFunction::SipHash => {
                selection.symmetric = true;
                State::SipHash(siphash::LinuxSipHash::new(seed))
            }
            HashFunction::Xxh3 => State::Xxh3(seed),
        };
        FlowHasher {
            function,
            selection,
            seed,
            state,
        }
    }

    pub fn function(&self) -> HashFunction {
        self.function
    }

    pub fn selection(&self) -> FieldSelection {
        self.selection
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The flow's 32-bit hash (16-bit functions replicated into both halves).
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u32 {
        self.hash_input(&self.selection.input(key))
    }

    /// The same hash as [`hash`](Self::hash) of the IPv4 key `FlowKey {
    /// src, dst, proto, src_port, dst_port, flow_label: 0, ingress_port }`,
    /// without building it; XXH3 over the 5-tuple (the default policy) is
    /// computed from the fields in registers ([`xxh3::five_tuple_v4`]).
    #[inline]
    pub fn hash_v4(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
        proto: u8,
        ingress_port: u32,
    ) -> u32 {
        if let State::Xxh3(seed) = self.state {
            if self.selection.fields == HashFields::L4 {
                // As `FieldSelection::input`'s symmetric order.
                let swap = self.selection.symmetric && (dst, dst_port) < (src, src_port);
                let h = if swap {
                    xxh3::five_tuple_v4(dst, src, dst_port, src_port, proto, seed)
                } else {
                    xxh3::five_tuple_v4(src, dst, src_port, dst_port, proto, seed)
                };
                return h as u32;
            }
        }
        let input = self
            .selection
            .input_v4(src, dst, src_port, dst_port, proto, ingress_port);
        self.hash_input(&input)
    }

    /// The hash of already serialised fields.
    #[inline]
    pub fn hash_input(&self, input: &HashInput) -> u32 {
        let raw = self.raw(input.as_bytes());
        if self.function.bits() == 16 {
            (raw & 0xffff) | (raw << 16)
        } else {
            raw
        }
    }

    /// The function's own output over `bytes` (16-bit functions in the low
    /// half), for checking against published test vectors.
    #[inline]
    pub fn raw(&self, bytes: &[u8]) -> u32 {
        match &self.state {
            State::Toeplitz(t) => t.hash(bytes),
            State::Crc32(init) => {
                let c = crc::crc32(*init, bytes);
                match self.function {
                    HashFunction::Crc32Hi16 => c >> 16,
                    HashFunction::Crc32Lo16 => c & 0xffff,
                    _ => c,
                }
            }
            State::Crc16(init) => u32::from(crc::crc16(self.function, *init, bytes)),
            State::Jhash(initval) => jhash::jhash(bytes, *initval),
            State::SipHash(s) => s.hash(bytes),
            // The low half: XXH3's final xorshift already folded the high
            // half in, and folding again (h ^ h >> 32) would undo it.
            State::Xxh3(seed) => xxhash_rust::xxh3::xxh3_64_with_seed(bytes, *seed) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::key::FieldMask;

    proptest::proptest! {
        #[test]
        fn hash_v4_equals_hash_of_the_same_key(
            src in proptest::prelude::any::<u32>(),
            dst in proptest::prelude::any::<u32>(),
            sport in proptest::prelude::any::<u16>(),
            dport in proptest::prelude::any::<u16>(),
            proto in proptest::prelude::any::<u8>(),
            ingress in proptest::prelude::any::<u32>(),
            seed in proptest::prelude::any::<u64>(),
            function in 0usize..HashFunction::ALL.len(),
            named in 0usize..4,
            symmetric in proptest::prelude::any::<bool>(),
        ) {
            let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let key = FlowKey {
                proto,
                ingress_port: ingress,
                ..FlowKey::tcp(IpAddr::V4(s), sport, IpAddr::V4(d), dport)
            };
            let all = [
                HashFields::L3,
                HashFields::L3Proto,
                HashFields::L4,
                HashFields::Custom(FieldMask::ALL),
            ];
            let selection = FieldSelection::new(all[named]).symmetric(symmetric);
            let hasher = FlowHasher::new(HashFunction::ALL[function], selection, seed);
            proptest::prop_assert_eq!(
                hasher.hash_v4(s, d, sport, dport, proto, ingress),
                hasher.hash(&key)
            );
        }
    }
}
