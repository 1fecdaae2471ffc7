//! XXH3-64 of a serialised IPv4 5-tuple (13 bytes) computed from the header
//! fields in registers: the same value as `xxhash_rust::xxh3::
//! xxh3_64_with_seed` over the bytes `FieldSelection::input` writes, without
//! writing and re-reading them (reading back bytes just written one field at
//! a time defeats the CPU's store-to-load forwarding).

use std::net::Ipv4Addr;

/// XXH3's default secret, bytes 24..56: the four words its 9-16 byte path
/// reads.
const SECRET_24: u64 = u64::from_le_bytes([0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f]);
const SECRET_32: u64 = u64::from_le_bytes([0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78]);
const SECRET_40: u64 = u64::from_le_bytes([0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21]);
const SECRET_48: u64 = u64::from_le_bytes([0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e]);

/// XXH3-64 (seeded) of the 13 bytes `src, dst, src_port, dst_port, proto` in
/// network byte order.
#[inline]
pub fn five_tuple_v4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    proto: u8,
    seed: u64,
) -> u64 {
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    let [a0, a1] = src_port.to_be_bytes();
    let [b0, b1] = dst_port.to_be_bytes();
    // XXH3's 9-16 byte path: the first and the last 8 bytes, little endian.
    let first = u64::from_le_bytes([s0, s1, s2, s3, d0, d1, d2, d3]);
    let last = u64::from_le_bytes([d1, d2, d3, a0, a1, b0, b1, proto]);
    let lo = first ^ (SECRET_24 ^ SECRET_32).wrapping_add(seed);
    let hi = last ^ (SECRET_40 ^ SECRET_48).wrapping_sub(seed);
    let product = u128::from(lo) * u128::from(hi);
    let acc = 13u64
        .wrapping_add(lo.swap_bytes())
        .wrapping_add(hi)
        .wrapping_add(product as u64 ^ (product >> 64) as u64);
    // avalanche
    let acc = acc ^ (acc >> 37);
    let acc = acc.wrapping_mul(0x1656_6791_9e37_79f9);
    acc ^ (acc >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn equals_the_library_over_the_serialised_bytes(
            src in proptest::prelude::any::<u32>(),
            dst in proptest::prelude::any::<u32>(),
            sport in proptest::prelude::any::<u16>(),
            dport in proptest::prelude::any::<u16>(),
            proto in proptest::prelude::any::<u8>(),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&src.to_be_bytes());
            bytes.extend_from_slice(&dst.to_be_bytes());
            bytes.extend_from_slice(&sport.to_be_bytes());
            bytes.extend_from_slice(&dport.to_be_bytes());
            bytes.push(proto);
            let fast = five_tuple_v4(src.into(), dst.into(), sport, dport, proto, seed);
            proptest::prop_assert_eq!(fast, xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, seed));
        }
    }

    #[test]
    fn seeds_zero_and_one_match_the_library() {
        let bytes = [10, 0, 0, 1, 192, 168, 1, 9, 0x30, 0x39, 0x01, 0xbb, 6];
        for seed in [0, 1, u64::MAX] {
            assert_eq!(
                five_tuple_v4(
                    Ipv4Addr::new(10, 0, 0, 1),
                    Ipv4Addr::new(192, 168, 1, 9),
                    12345,
                    443,
                    6,
                    seed
                ),
                xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, seed)
            );
        }
    }
}
