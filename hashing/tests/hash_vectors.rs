//! Published test vectors for every flow hash function, plus behavioural
//! checks (determinism, seed dependence, 16-bit replication, distribution)
//! run through the public `FlowHasher` API.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashing::hash::{crc, jhash, siphash, toeplitz};
use hashing::{FieldMask, FieldSelection, FlowHasher, FlowKey, HashFields, HashFunction};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address parses")
}

/// Source address, destination address (RSS's 2-tuple).
fn two_tuple() -> FieldSelection {
    FieldSelection::new(HashFields::Custom(FieldMask::SRC_IP | FieldMask::DST_IP))
}

/// Addresses then ports, no protocol (RSS's 4-tuple).
fn four_tuple() -> FieldSelection {
    FieldSelection::new(HashFields::Custom(
        FieldMask::SRC_IP | FieldMask::DST_IP | FieldMask::SRC_PORT | FieldMask::DST_PORT,
    ))
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Microsoft's definition of the Toeplitz hash, bit by bit: for each set
/// input bit, XOR in the left-most 32 bits of K, then shift K left by one
/// (zero-filling past the end of the key).
fn toeplitz_reference(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |i: usize| -> u32 {
        if i < key.len() * 8 {
            u32::from(key[i / 8] >> (7 - i % 8)) & 1
        } else {
            0
        }
    };
    let mut result = 0u32;
    for i in 0..input.len() * 8 {
        if (input[i / 8] >> (7 - i % 8)) & 1 == 1 {
            result ^= (0..32).fold(0u32, |w, j| (w << 1) | key_bit(i + j));
        }
    }
    result
}

/// A literal transcription of Linux `jhash()` (include/linux/jhash.h),
/// including the fall-through byte switch, as an independent model.
fn jhash_reference(k: &[u8], initval: u32) -> u32 {
    fn rol(x: u32, r: u32) -> u32 {
        x.rotate_left(r)
    }
    let mut length = k.len();
    let mut a = 0xdeadbeef_u32
        .wrapping_add(length as u32)
        .wrapping_add(initval);
    let mut b = a;
    let mut c = a;
    let mut o = 0;
    let w = |o: usize| u32::from_le_bytes([k[o], k[o + 1], k[o + 2], k[o + 3]]);
    while length > 12 {
        a = a.wrapping_add(w(o));
        b = b.wrapping_add(w(o + 4));
        c = c.wrapping_add(w(o + 8));
        a = a.wrapping_sub(c);
        a ^= rol(c, 4);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a);
        b ^= rol(a, 6);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b);
        c ^= rol(b, 8);
        b = b.wrapping_add(a);
        a = a.wrapping_sub(c);
        a ^= rol(c, 16);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a);
        b ^= rol(a, 19);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b);
        c ^= rol(b, 4);
        b = b.wrapping_add(a);
        length -= 12;
        o += 12;
    }
    let byte = |i: usize| u32::from(k[o + i]);
    // switch (length) with fall-through, written as a chain of `>=` tests.
    if length >= 12 {
        c = c.wrapping_add(byte(11) << 24);
    }
    if length >= 11 {
        c = c.wrapping_add(byte(10) << 16);
    }
    if length >= 10 {
        c = c.wrapping_add(byte(9) << 8);
    }
    if length >= 9 {
        c = c.wrapping_add(byte(8));
    }
    if length >= 8 {
        b = b.wrapping_add(byte(7) << 24);
    }
    if length >= 7 {
        b = b.wrapping_add(byte(6) << 16);
    }
    if length >= 6 {
        b = b.wrapping_add(byte(5) << 8);
    }
    if length >= 5 {
        b = b.wrapping_add(byte(4));
    }
    if length >= 4 {
        a = a.wrapping_add(byte(3) << 24);
    }
    if length >= 3 {
        a = a.wrapping_add(byte(2) << 16);
    }
    if length >= 2 {
        a = a.wrapping_add(byte(1) << 8);
    }
    if length >= 1 {
        a = a.wrapping_add(byte(0));
        c ^= b;
        c = c.wrapping_sub(rol(b, 14));
        a ^= c;
        a = a.wrapping_sub(rol(c, 11));
        b ^= a;
        b = b.wrapping_sub(rol(a, 25));
        c ^= b;
        c = c.wrapping_sub(rol(b, 16));
        a ^= c;
        a = a.wrapping_sub(rol(c, 4));
        b ^= a;
        b = b.wrapping_sub(rol(a, 14));
        c ^= b;
        c = c.wrapping_sub(rol(b, 24));
    }
    c
}

fn random_v4_flow(rng: &mut Pcg64) -> FlowKey {
    let mut key = FlowKey::tcp(
        IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
        rng.gen(),
        IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
        rng.gen(),
    );
    key.proto = if rng.gen() { 6 } else { 17 };
    key
}

fn random_v6_flow(rng: &mut Pcg64) -> FlowKey {
    let mut key = FlowKey::tcp(
        IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
        rng.gen(),
        IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
        rng.gen(),
    );
    key.proto = if rng.gen() { 6 } else { 17 };
    key
}

/// Pearson's chi-square statistic of `hashes` bucketed by `bucket` into 64
/// buckets, against the uniform distribution.
fn chi_square_64(hashes: &[u32], bucket: impl Fn(u32) -> usize) -> f64 {
    let mut counts = [0u64; 64];
    for &h in hashes {
        counts[bucket(h)] += 1;
    }
    let expected = hashes.len() as f64 / 64.0;
    counts
        .iter()
        .map(|&n| {
            let d = n as f64 - expected;
            d * d / expected
        })
        .sum()
}

/// The chi-square critical value for 63 degrees of freedom at p = 1e-6
/// (131.37, computed from the regularised incomplete gamma function). A
/// uniform hash exceeds it once in a million runs; the inputs are seeded, so
/// each run is deterministic anyway.
const CHI2_63_P1E6: f64 = 131.4;

const DISTRIBUTION_FLOWS: usize = 200_000;

fn low_bucket(h: u32) -> usize {
    (h % 64) as usize
}

fn high_bucket(h: u32) -> usize {
    (h >> 26) as usize
}

fn hashes_of(function: HashFunction, flows: &[FlowKey]) -> Vec<u32> {
    let hasher = FlowHasher::new(function, FieldSelection::new(HashFields::L4), 0);
    flows.iter().map(|k| hasher.hash(k)).collect()
}

fn random_flows(n: usize, rng_seed: u64, v6: bool) -> Vec<FlowKey> {
    let mut rng = Pcg64::seed_from_u64(rng_seed);
    (0..n)
        .map(|_| {
            if v6 {
                random_v6_flow(&mut rng)
            } else {
                random_v4_flow(&mut rng)
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Toeplitz (RSS)
// ---------------------------------------------------------------------------

/// Microsoft, "Verifying the RSS Hash Calculation": (src, src port, dst,
/// dst port, hash over addresses, hash over addresses and ports).
const RSS_IPV4_VECTORS: [(&str, u16, &str, u16, u32, u32); 5] = [
    (
        "66.9.149.187",
        2794,
        "161.142.100.80",
        1766,
        0x323e8fc2,
        0x51ccc178,
    ),
    (
        "199.92.111.2",
        14230,
        "65.69.140.83",
        4739,
        0xd718262a,
        0xc626b0ea,
    ),
    (
        "24.19.198.95",
        12898,
        "12.22.207.184",
        38024,
        0xd2d0a5de,
        0x5c2b394a,
    ),
    (
        "38.27.205.30",
        48228,
        "209.142.163.6",
        2217,
        0x82989176,
        0xafc7327f,
    ),
    (
        "153.39.163.191",
        44251,
        "202.188.127.2",
        1303,
        0x5d1809c5,
        0x10e828a2,
    ),
];

const RSS_IPV6_VECTORS: [(&str, u16, &str, u16, u32, u32); 3] = [
    // Microsoft's table lists destination 3ffe:2501:200:3::1 port 1766 and
    // source 3ffe:2501:200:1fff::7 port 2794 (both values match only this way).
    (
        "3ffe:2501:200:1fff::7",
        2794,
        "3ffe:2501:200:3::1",
        1766,
        0x2cc18cd5,
        0x40207d3d,
    ),
    (
        "3ffe:501:8::260:97ff:fe40:efab",
        14230,
        "ff02::1",
        4739,
        0x0f0c461c,
        0xdde51bbf,
    ),
    (
        "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
        44251,
        "fe80::200:f8ff:fe21:67cf",
        38024,
        0x4b61e985,
        0x02d1feef,
    ),
];

fn check_rss_vectors(vectors: &[(&str, u16, &str, u16, u32, u32)]) {
    let addrs = FlowHasher::new(HashFunction::Toeplitz, two_tuple(), 0);
    let ports = FlowHasher::new(HashFunction::Toeplitz, four_tuple(), 0);
    for &(src, sport, dst, dport, want_2, want_4) in vectors {
        let key = FlowKey::tcp(ip(src), sport, ip(dst), dport);
        assert_eq!(addrs.hash(&key), want_2, "2-tuple {src} -> {dst}");
        assert_eq!(
            ports.hash(&key),
            want_4,
            "4-tuple {src}:{sport} -> {dst}:{dport}"
        );

        // The same through `raw` on hand-built bytes.
        let mut bytes = addr_bytes(ip(src));
        bytes.extend(addr_bytes(ip(dst)));
        assert_eq!(addrs.raw(&bytes), want_2, "raw 2-tuple {src} -> {dst}");
        bytes.extend(sport.to_be_bytes());
        bytes.extend(dport.to_be_bytes());
        assert_eq!(ports.raw(&bytes), want_4, "raw 4-tuple {src} -> {dst}");
    }
}

#[test]
fn toeplitz_matches_microsoft_rss_ipv4_vectors() {
    check_rss_vectors(&RSS_IPV4_VECTORS);
}

#[test]
fn toeplitz_matches_microsoft_rss_ipv6_vectors() {
    check_rss_vectors(&RSS_IPV6_VECTORS);
}

#[test]
fn toeplitz_seed_zero_is_the_microsoft_key_and_other_seeds_are_not() {
    const MS_HEX: &str =
        "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa";
    let ms: [u8; 40] = std::array::from_fn(|i| {
        u8::from_str_radix(&MS_HEX[2 * i..2 * i + 2], 16).expect("hex digit pair")
    });
    assert_eq!(toeplitz::MICROSOFT_RSS_KEY, ms);
    assert_eq!(toeplitz::key_for_seed(0), ms);
    let mut keys = vec![ms];
    for seed in [1u64, 2, 3, 42, u64::MAX] {
        let key = toeplitz::key_for_seed(seed);
        assert_eq!(
            key,
            toeplitz::key_for_seed(seed),
            "seed {seed} is deterministic"
        );
        assert!(!keys.contains(&key), "seed {seed} repeats a key");
        // Every 8-byte word of the key is perturbed, not just the first.
        for (i, (k, m)) in key.chunks(8).zip(ms.chunks(8)).enumerate() {
            assert_ne!(k, m, "seed {seed} leaves key word {i} unchanged");
        }
        keys.push(key);
    }
    // The one seed whose first SplitMix64 output is 0 keeps the first key
    // word, but its key still differs from the Microsoft key.
    let zero_first = 0x9e37_79b9_7f4a_7c15_u64.wrapping_neg();
    let key = toeplitz::key_for_seed(zero_first);
    assert_eq!(key[..8], ms[..8]);
    assert_ne!(key, ms);
}

#[test]
fn toeplitz_ignores_bytes_past_the_key_and_never_panics() {
    let t = toeplitz::Toeplitz::new(&toeplitz::MICROSOFT_RSS_KEY);
    let mut input = [0u8; 200];
    let mut rng = Pcg64::seed_from_u64(7);
    rng.fill(&mut input[..]);
    let h = t.hash(&input[..toeplitz::MAX_INPUT]);
    for len in toeplitz::MAX_INPUT..=input.len() {
        assert_eq!(
            t.hash(&input[..len]),
            h,
            "byte {len} past the key changed the hash"
        );
    }
    // Bytes 36..40 are only partly covered by the key but do count.
    let mut tweaked = input;
    tweaked[37] ^= 0x80;
    assert_ne!(t.hash(&tweaked[..40]), h);
    assert_eq!(t.hash(&[]), 0);
}

proptest! {
    #[test]
    fn toeplitz_tables_agree_with_bitwise_definition(
        key in proptest::collection::vec(any::<u8>(), 40),
        input in proptest::collection::vec(any::<u8>(), 0..=48),
    ) {
        let key: [u8; 40] = key.try_into().expect("40 bytes");
        let t = toeplitz::Toeplitz::new(&key);
        prop_assert_eq!(t.hash(&input), toeplitz_reference(&key, &input));
    }
}

// ---------------------------------------------------------------------------
// CRC
// ---------------------------------------------------------------------------

const CHECK_INPUT: &[u8] = b"123456789";

#[test]
fn crc_check_values_match_the_catalogue() {
    // RevEng catalogue check values: CRC-32/ISO-HDLC, CRC-16/IBM-3740
    // ("CCITT-FALSE") and CRC-16/ARC.
    assert_eq!(crc::crc32(crc::crc32_init(0), CHECK_INPUT), 0xcbf4_3926);
    let ccitt = crc::crc16_init(HashFunction::Crc16Ccitt, 0);
    assert_eq!(ccitt, 0xffff);
    assert_eq!(
        crc::crc16(HashFunction::Crc16Ccitt, ccitt, CHECK_INPUT),
        0x29b1
    );
    let bisync = crc::crc16_init(HashFunction::Crc16Bisync, 0);
    assert_eq!(bisync, 0x0000);
    assert_eq!(
        crc::crc16(HashFunction::Crc16Bisync, bisync, CHECK_INPUT),
        0xbb3d
    );

    // And through FlowHasher::raw at seed 0, with the CRC-32 halves.
    let raw = |f| FlowHasher::new(f, FieldSelection::new(HashFields::L4), 0).raw(CHECK_INPUT);
    assert_eq!(raw(HashFunction::Crc32), 0xcbf4_3926);
    assert_eq!(raw(HashFunction::Crc32Hi16), 0xcbf4);
    assert_eq!(raw(HashFunction::Crc32Lo16), 0x3926);
    assert_eq!(raw(HashFunction::Crc16Ccitt), 0x29b1);
    assert_eq!(raw(HashFunction::Crc16Bisync), 0xbb3d);
}

#[test]
fn crc_of_empty_input_is_the_finalised_initial_value() {
    assert_eq!(crc::crc32(crc::crc32_init(0), &[]), 0);
    assert_eq!(crc::crc16(HashFunction::Crc16Ccitt, 0xffff, &[]), 0xffff);
    assert_eq!(crc::crc16(HashFunction::Crc16Bisync, 0x1234, &[]), 0x1234);
}

proptest! {
    /// Cross-checks the slicing tables against the `crc` crate's bytewise
    /// implementation for every length (so every slice/tail split) and any
    /// initial register. `crc` takes RevEng's `Init`, which for reflected
    /// CRCs is the bit reversal of the register value.
    #[test]
    fn crc_agrees_with_crc_crate_for_any_input_and_initial_value(
        input in proptest::collection::vec(any::<u8>(), 0..=80),
        init32 in any::<u32>(),
        init16 in any::<u16>(),
    ) {
        let c32 = ::crc::Crc::<u32>::new(&::crc::CRC_32_ISO_HDLC);
        let mut d = c32.digest_with_initial(init32.reverse_bits());
        d.update(&input);
        prop_assert_eq!(crc::crc32(init32, &input), d.finalize());

        let ccitt = ::crc::Crc::<u16>::new(&::crc::CRC_16_IBM_3740);
        let mut d = ccitt.digest_with_initial(init16);
        d.update(&input);
        prop_assert_eq!(crc::crc16(HashFunction::Crc16Ccitt, init16, &input), d.finalize());

        let arc = ::crc::Crc::<u16>::new(&::crc::CRC_16_ARC);
        let mut d = arc.digest_with_initial(init16.reverse_bits());
        d.update(&input);
        prop_assert_eq!(crc::crc16(HashFunction::Crc16Bisync, init16, &input), d.finalize());
    }
}

#[test]
fn crc_seeds_change_the_initial_register_but_keep_seed_zero_standard() {
    assert_eq!(crc::crc32_init(0), crc::CRC32_INIT);
    for f in [HashFunction::Crc16Ccitt, HashFunction::Crc16Bisync] {
        let mut seen = std::collections::HashSet::new();
        for seed in 1..2000u64 {
            let init = crc::crc16_init(f, seed);
            assert_ne!(
                init,
                crc::crc16_init(f, 0),
                "{f} seed {seed} keeps the standard init"
            );
            seen.insert(init);
        }
        assert!(seen.len() > 1900, "{f}: only {} distinct inits", seen.len());
    }
    for seed in 1..2000u64 {
        assert_ne!(crc::crc32_init(seed), crc::CRC32_INIT, "seed {seed}");
    }
}

/// CRCs are affine: for inputs of one length, changing the initial value
/// XORs every hash with the same constant. A CRC seed therefore relabels
/// buckets but never separates flows that collide under another seed; this
/// pins that (real-ASIC-like) property so it is not forgotten.
#[test]
fn crc_seed_xors_every_fixed_length_hash_with_one_constant() {
    let flows = random_flows(500, 11, false);
    for f in [
        HashFunction::Crc32,
        HashFunction::Crc16Ccitt,
        HashFunction::Crc16Bisync,
    ] {
        let a = FlowHasher::new(f, FieldSelection::new(HashFields::L4), 1);
        let b = FlowHasher::new(f, FieldSelection::new(HashFields::L4), 2);
        let delta = a.hash(&flows[0]) ^ b.hash(&flows[0]);
        assert_ne!(delta, 0, "{f}");
        for k in &flows {
            assert_eq!(a.hash(k) ^ b.hash(k), delta, "{f}");
        }
    }
}

// ---------------------------------------------------------------------------
// jhash (lookup3)
// ---------------------------------------------------------------------------

#[test]
fn jhash_matches_lookup3_driver_vectors() {
    // lookup3.c driver5 (hashlittle == Linux jhash on little-endian CPUs).
    // The third is driver5's chained empty-input case: an empty key returns
    // 0xdeadbeef + initval, here 0xdeadbeef + 0xbd5b7dde (mod 2^32).
    assert_eq!(jhash::jhash(b"", 0), 0xdeadbeef);
    assert_eq!(jhash::jhash(b"", 0xdeadbeef), 0xbd5b7dde);
    assert_eq!(jhash::jhash(b"", 0xbd5b7dde), 0x9c093ccd);
    let four_score = b"Four score and seven years ago";
    assert_eq!(jhash::jhash(four_score, 0), 0x17770551);
    assert_eq!(jhash::jhash(four_score, 1), 0xcd628161);
}

/// Pins mod.rs's seed-to-initval mapping: seed 0 is lookup3's canonical
/// initval 0; other seeds go through splitmix64, so no two share an initval
/// by construction.
#[test]
fn jhash_through_flow_hasher_uses_small_seeds_as_initval() {
    let four_score = b"Four score and seven years ago";
    let raw = |seed| {
        FlowHasher::new(
            HashFunction::Jhash,
            FieldSelection::new(HashFields::L4),
            seed,
        )
        .raw(four_score)
    };
    assert_eq!(raw(0), 0x17770551);
    let initval = hashing::hash::siphash::splitmix64(&mut 1u64.clone()) as u32;
    assert_eq!(raw(1), hashing::hash::jhash::jhash(four_score, initval));
    assert_ne!(raw(1), 0xcd628161, "seed 1 is not initval 1");
}

proptest! {
    #[test]
    fn jhash_agrees_with_a_literal_transcription_of_linux(
        input in proptest::collection::vec(any::<u8>(), 0..=64),
        initval in any::<u32>(),
    ) {
        prop_assert_eq!(jhash::jhash(&input, initval), jhash_reference(&input, initval));
    }

    #[test]
    fn jhash_words_agree_with_jhash_of_little_endian_bytes(
        words in proptest::collection::vec(any::<u32>(), 0..=16),
        initval in any::<u32>(),
    ) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        prop_assert_eq!(jhash::jhash2(&words, initval), jhash::jhash(&bytes, initval));
    }

    #[test]
    fn jhash_nwords_agree_with_their_definitions(
        a in any::<u32>(), b in any::<u32>(), c in any::<u32>(), initval in any::<u32>(),
    ) {
        let bytes: Vec<u8> = [a, b, c].iter().flat_map(|w| w.to_le_bytes()).collect();
        prop_assert_eq!(jhash::jhash_3words(a, b, c, initval), jhash::jhash(&bytes, initval));
        prop_assert_eq!(jhash::jhash_3words(a, b, c, initval), jhash::jhash2(&[a, b, c], initval));
        prop_assert_eq!(jhash::jhash_2words(a, b, initval), jhash::jhash2(&[a, b], initval));
        prop_assert_eq!(jhash::jhash_1word(a, initval), jhash::jhash2(&[a], initval));
    }
}

// ---------------------------------------------------------------------------
// SipHash
// ---------------------------------------------------------------------------

#[test]
fn siphash24_matches_the_reference_vector() {
    // SipHash paper, appendix A: key 00..0f, message 00..0e (15 bytes).
    let key: Vec<u8> = (0u8..16).collect();
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
    let s = siphash::LinuxSipHash::with_keys(k0, k1);
    let msg: Vec<u8> = (0u8..15).collect();
    assert_eq!(s.siphash24(&msg), 0xa129ca6149be45e5);
    // The flow hash is its low 32 bits.
    assert_eq!(s.hash(&msg), 0x49be45e5);
}

#[test]
fn siphash_key_is_splitmix64_of_the_seed() {
    assert_eq!(
        siphash::LinuxSipHash::new(0).keys(),
        siphash::LinuxSipHash::SEED0_KEYS
    );
    // SplitMix64's published first outputs for state 0.
    assert_eq!(
        siphash::LinuxSipHash::SEED0_KEYS,
        (0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4)
    );
    assert_ne!(
        siphash::LinuxSipHash::new(1).keys(),
        siphash::LinuxSipHash::SEED0_KEYS
    );
}

#[test]
fn siphash_fold_keeps_low_bits_and_maps_zero_to_one() {
    assert_eq!(siphash::fold_like_linux(0x1234_5678_9abc_def0), 0x9abc_def0);
    assert_eq!(siphash::fold_like_linux(0xffff_ffff_0000_0000), 1);
    assert_eq!(siphash::fold_like_linux(0), 1);
    assert_eq!(siphash::fold_like_linux(1), 1);
}

#[test]
fn siphash_flow_hash_is_symmetric() {
    let hasher = FlowHasher::new(
        HashFunction::SipHash,
        FieldSelection::new(HashFields::L4),
        9,
    );
    assert!(hasher.selection().symmetric, "SipHash forces symmetric");
    let asym = FlowHasher::new(HashFunction::Jhash, FieldSelection::new(HashFields::L4), 9);
    let mut asym_differs = 0;
    for key in random_flows(1000, 5, false)
        .into_iter()
        .chain(random_flows(1000, 6, true))
    {
        assert_eq!(hasher.hash(&key), hasher.hash(&key.reversed()), "{key:?}");
        asym_differs += usize::from(asym.hash(&key) != asym.hash(&key.reversed()));
    }
    assert!(
        asym_differs > 1990,
        "the reversal must change a non-symmetric hash"
    );
}

// ---------------------------------------------------------------------------
// XXH3
// ---------------------------------------------------------------------------

#[test]
fn xxh3_64_of_empty_input_matches_the_reference() {
    const EMPTY: u64 = 0x2d06800538d394c2;
    assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), EMPTY);
    let h = FlowHasher::new(HashFunction::Xxh3, FieldSelection::new(HashFields::L4), 0);
    assert_eq!(h.raw(b""), EMPTY as u32);
}

// ---------------------------------------------------------------------------
// Behaviour of every function through FlowHasher
// ---------------------------------------------------------------------------

#[test]
fn every_function_is_deterministic_for_a_seed() {
    let flows: Vec<FlowKey> = random_flows(300, 1, false)
        .into_iter()
        .chain(random_flows(300, 2, true))
        .collect();
    for f in HashFunction::ALL {
        for seed in [0u64, 1, 0xdead_beef_cafe_f00d] {
            let a = FlowHasher::new(f, FieldSelection::new(HashFields::L4), seed);
            let b = FlowHasher::new(f, FieldSelection::new(HashFields::L4), seed);
            let c = a.clone();
            for k in &flows {
                let h = a.hash(k);
                assert_eq!(h, b.hash(k), "{f} seed {seed}: two hashers disagree");
                assert_eq!(h, c.hash(k), "{f} seed {seed}: a clone disagrees");
                assert_eq!(h, a.hash(k), "{f} seed {seed}: repeated call differs");
            }
        }
    }
}

#[test]
fn every_function_depends_on_the_seed() {
    let flows = random_flows(1000, 3, false);
    for f in HashFunction::ALL {
        for (s1, s2) in [(0u64, 1u64), (1, 2), (7, 1 << 40), (u64::MAX, 1 << 63)] {
            let a = FlowHasher::new(f, FieldSelection::new(HashFields::L4), s1);
            let b = FlowHasher::new(f, FieldSelection::new(HashFields::L4), s2);
            let same = flows.iter().filter(|k| a.hash(k) == b.hash(k)).count();
            assert!(
                same <= 10,
                "{f}: seeds {s1} and {s2} agree on {same} of 1000 flows"
            );
        }
    }
}

/// Seeds that differ only by swapping or repeating their 32-bit halves must
/// still give different hashes. Fails for jhash: `FlowHasher::new` (mod.rs)
/// folds the seed to its initval as `lo ^ hi`, so seeds `s` and `s << 32`
/// coincide and `(x << 32) | x` gives initval 0, the seed-0 hash.
#[test]
fn every_function_separates_seeds_with_the_same_xor_of_halves() {
    let flows = random_flows(1000, 8, false);
    let mut failures = Vec::new();
    for f in HashFunction::ALL {
        for (s1, s2) in [(7u64, 7u64 << 32), (0, 0x0000_0005_0000_0005)] {
            let a = FlowHasher::new(f, FieldSelection::new(HashFields::L4), s1);
            let b = FlowHasher::new(f, FieldSelection::new(HashFields::L4), s2);
            let same = flows.iter().filter(|k| a.hash(k) == b.hash(k)).count();
            if same > 10 {
                failures.push(format!(
                    "{f}: seeds {s1:#x} and {s2:#x} agree on {same} of 1000"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn sixteen_bit_functions_fill_both_halves_and_32_bit_ones_do_not() {
    let flows = random_flows(1000, 4, false);
    for f in HashFunction::ALL {
        let hasher = FlowHasher::new(f, FieldSelection::new(HashFields::L4), 3);
        let equal = flows
            .iter()
            .map(|k| hasher.hash(k))
            .filter(|h| h >> 16 == h & 0xffff)
            .count();
        if f.bits() == 16 {
            assert_eq!(equal, flows.len(), "{f}: halves differ");
            for k in &flows[..50] {
                assert_eq!(
                    hasher.hash(k) & 0xffff,
                    hasher.raw(hasher.selection().input(k).as_bytes()),
                    "{f}: the low half is the raw 16-bit value"
                );
            }
        } else {
            assert!(
                equal <= 2,
                "{f}: {equal} of 1000 32-bit hashes have equal halves"
            );
        }
    }
}

#[test]
fn every_function_accepts_any_input_length() {
    let mut rng = Pcg64::seed_from_u64(99);
    let mut bytes = vec![0u8; 300];
    rng.fill(&mut bytes[..]);
    for f in HashFunction::ALL {
        for seed in [0u64, 12345] {
            let hasher = FlowHasher::new(f, FieldSelection::new(HashFields::L4), seed);
            let mut seen = std::collections::HashSet::new();
            for len in 0..=bytes.len() {
                seen.insert(hasher.raw(&bytes[..len]));
                let input = hashing::HashInput::from_bytes(&bytes[..len]);
                let _ = hasher.hash_input(&input);
            }
            // Toeplitz stops changing after 40 bytes; everything else keeps going.
            assert!(
                seen.len() > 35,
                "{f}: only {} distinct hashes over 301 lengths",
                seen.len()
            );
        }
    }
}

/// Values this implementation produced for seed 42 when it was written: not
/// external vectors, but a guard against silently changing a seed schedule
/// (which would make old reports irreproducible).
#[test]
fn seeded_hashes_are_stable_across_versions() {
    let key = FlowKey::tcp(ip("192.0.2.10"), 40000, ip("198.51.100.20"), 443);
    let key6 = FlowKey::tcp(ip("2001:db8::10"), 40000, ip("2001:db8:1::20"), 443);
    let expected: [(HashFunction, u32, u32); 9] = [
        (HashFunction::Toeplitz, 0xa4e1acb9, 0xb9aefde8),
        (HashFunction::Crc32, 0xde08c538, 0x392b3c20),
        (HashFunction::Crc32Hi16, 0xde08de08, 0x392b392b),
        (HashFunction::Crc32Lo16, 0xc538c538, 0x3c203c20),
        (HashFunction::Crc16Ccitt, 0x4bdc4bdc, 0x85518551),
        (HashFunction::Crc16Bisync, 0x23392339, 0x463d463d),
        (HashFunction::Jhash, 0xdc7a182a, 0xc5a19ac5),
        (HashFunction::SipHash, 0x11fe2055, 0x7d355ef3),
        (HashFunction::Xxh3, 0xdc64e912, 0x65d57108),
    ];
    let mut mismatches = Vec::new();
    for (f, v4, v6) in expected {
        let hasher = FlowHasher::new(f, FieldSelection::new(HashFields::L4), 42);
        let got = (hasher.hash(&key), hasher.hash(&key6));
        if got != (v4, v6) {
            mismatches.push(format!("{f}: got ({:#010x}, {:#010x})", got.0, got.1));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn chi_square_check_rejects_broken_hashes() {
    let flows = random_flows(DISTRIBUTION_FLOWS, 20, false);
    let good = hashes_of(HashFunction::Xxh3, &flows);
    assert!(chi_square_64(&good, low_bucket) < CHI2_63_P1E6);
    // Constant.
    let constant = vec![0x1234_5678u32; flows.len()];
    assert!(chi_square_64(&constant, low_bucket) > CHI2_63_P1E6);
    // One stuck bit: half the buckets are empty.
    let stuck: Vec<u32> = good.iter().map(|h| h & !0x8000_0001).collect();
    assert!(chi_square_64(&stuck, low_bucket) > CHI2_63_P1E6);
    assert!(chi_square_64(&stuck, high_bucket) > CHI2_63_P1E6);
    // Low entropy: a sum of the key bytes (at most ~3300 values, bunched).
    let sum: Vec<u32> = flows
        .iter()
        .map(|k| {
            FieldSelection::new(HashFields::L4)
                .input(k)
                .as_bytes()
                .iter()
                .map(|&b| u32::from(b))
                .sum::<u32>()
                .wrapping_mul(0x9e37_79b9)
        })
        .collect();
    assert!(chi_square_64(&sum, high_bucket) > CHI2_63_P1E6);
    // A slight bias: 2% of hashes forced into bucket 0.
    let biased: Vec<u32> = good
        .iter()
        .enumerate()
        .map(|(i, &h)| if i % 50 == 0 { h & !63 } else { h })
        .collect();
    assert!(chi_square_64(&biased, low_bucket) > CHI2_63_P1E6);
}

fn check_distribution(v6: bool, rng_seed: u64) {
    let flows = random_flows(DISTRIBUTION_FLOWS, rng_seed, v6);
    let failures = distribution_failures(&HashFunction::ALL, &[0, 1], &flows);
    assert!(failures.is_empty(), "non-uniform buckets: {failures:#?}");
}

#[test]
fn every_function_spreads_random_ipv4_flows_evenly() {
    check_distribution(false, 2024);
}

#[test]
fn every_function_spreads_random_ipv6_flows_evenly() {
    check_distribution(true, 2025);
}

/// 16384 consecutive source hosts times 4 consecutive source ports towards one
/// server: the structured traffic (a client subnet, a few connections each)
/// on which weak mixing shows up while random 5-tuples hide it.
fn sequential_flows(v6: bool) -> Vec<FlowKey> {
    let (src, dst) = if v6 {
        (ip("2001:db8::"), ip("2001:db8:1::7"))
    } else {
        (ip("10.0.0.0"), ip("198.51.100.7"))
    };
    (0..65536u32)
        .map(|i| {
            let host = i >> 2;
            let src = match src {
                IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + host)),
                IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + u128::from(host))),
            };
            FlowKey::tcp(src, 40000 + (i & 3) as u16, dst, 443)
        })
        .collect()
}

/// Every (function, seed, bucketing) whose chi-square exceeds the bound.
fn distribution_failures(
    functions: &[HashFunction],
    seeds: &[u64],
    flows: &[FlowKey],
) -> Vec<String> {
    let mut failures = Vec::new();
    for &f in functions {
        for &seed in seeds {
            let hasher = FlowHasher::new(f, FieldSelection::new(HashFields::L4), seed);
            let hashes: Vec<u32> = flows.iter().map(|k| hasher.hash(k)).collect();
            for (name, bucket) in [
                ("h % 64", low_bucket as fn(u32) -> usize),
                ("h >> 26", high_bucket),
            ] {
                let chi2 = chi_square_64(&hashes, bucket);
                if chi2 > CHI2_63_P1E6 {
                    failures.push(format!("{f} seed {seed} {name}: chi2 = {chi2:.1}"));
                }
            }
        }
    }
    failures
}

#[test]
fn every_function_but_xxh3_spreads_sequential_hosts_and_ports_evenly() {
    let functions: Vec<HashFunction> = HashFunction::ALL
        .into_iter()
        .filter(|&f| f != HashFunction::Xxh3)
        .collect();
    for v6 in [false, true] {
        let failures = distribution_failures(&functions, &[0, 1, 2], &sequential_flows(v6));
        assert!(failures.is_empty(), "v6={v6}: {failures:#?}");
    }
}

/// Fails: `FlowHasher::raw` (mod.rs) folds XXH3-64 as `h ^ (h >> 32)`, which
/// undoes XXH3's final `h ^= h >> 32` and leaves the low half of a multiply,
/// whose low bits mix poorly: on the IPv4 set (13-byte inputs, XXH3's
/// 9..=16-byte path) `h % 64` has chi2 = 834 at seed 0, while either half of
/// `h` alone is uniform (chi2 about 50). The IPv6 set passes.
#[test]
fn xxh3_spreads_sequential_hosts_and_ports_evenly() {
    let mut failures =
        distribution_failures(&[HashFunction::Xxh3], &[0, 1, 2], &sequential_flows(false));
    failures.extend(
        distribution_failures(&[HashFunction::Xxh3], &[0, 1, 2], &sequential_flows(true))
            .into_iter()
            .map(|f| format!("IPv6 {f}")),
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
