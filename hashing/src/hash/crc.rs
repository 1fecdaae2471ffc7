//! Table-driven ("slicing-by-8") CRC-32 (IEEE) and the two 16-bit switch-ASIC
//! CRCs, CRC-16-CCITT and CRC-16-BISYNC; 8 KiB of static tables each.

use super::siphash::splitmix64;
use super::HashFunction;

/// Bytes per table step (the update loops below are written out for 8).
///
/// Measured on CRC-32 of 13- and 37-byte inputs (IPv4 and IPv6 5-tuples):
/// slicing-by-8 plus one 4-byte step took 4.2 / 11.1 ns, a bytewise table
/// 10.8 / 44.3 ns, slicing-by-16 11.4 / 10.3 ns, and the `crc` crate 11.2 /
/// 12.1 ns (its `Table<16>`, which is bytewise below 16 bytes).
const SLICE: usize = 8;

/// CRC-32 (IEEE 802.3) polynomial 0x04C11DB7, bit-reversed for the reflected
/// register.
const CRC32_POLY_REFLECTED: u32 = 0xedb8_8320;
/// CRC-16-BISYNC (CRC-16/ARC) polynomial 0x8005, bit-reversed.
const CRC16_BISYNC_POLY_REFLECTED: u32 = 0xa001;
/// CRC-16-CCITT polynomial 0x1021, aligned to the top of a 32-bit register.
const CRC16_CCITT_POLY_TOP: u32 = 0x1021 << 16;

/// The standard initial register value of CRC-32 (seed 0).
pub const CRC32_INIT: u32 = 0xffff_ffff;
/// The standard initial register value of CRC-16-CCITT (seed 0).
pub const CRC16_CCITT_INIT: u16 = 0xffff;
/// The standard initial register value of CRC-16-BISYNC (seed 0).
pub const CRC16_BISYNC_INIT: u16 = 0x0000;

/// Tables for a reflected (LSB-first) CRC of width up to 32: `t[k][b]` is the
/// register after byte `b` followed by `k` zero bytes.
const fn reflected_tables(poly: u32) -> [[u32; 256]; SLICE] {
    let mut t = [[0u32; 256]; SLICE];
    let mut b = 0;
    while b < 256 {
        let mut c = b as u32;
        let mut i = 0;
        while i < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
            i += 1;
        }
        t[0][b] = c;
        b += 1;
    }
    let mut k = 1;
    while k < SLICE {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

/// Tables for a non-reflected (MSB-first) CRC whose register is aligned to
/// the top of a `u32` (so a 16-bit CRC lives in bits 16..32).
const fn msb_first_tables(poly_top: u32) -> [[u32; 256]; SLICE] {
    let mut t = [[0u32; 256]; SLICE];
    let mut b = 0;
    while b < 256 {
        let mut c = (b as u32) << 24;
        let mut i = 0;
        while i < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ poly_top
            } else {
                c << 1
            };
            i += 1;
        }
        t[0][b] = c;
        b += 1;
    }
    let mut k = 1;
    while k < SLICE {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev << 8) ^ t[0][(prev >> 24) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

static CRC32_TABLES: [[u32; 256]; SLICE] = reflected_tables(CRC32_POLY_REFLECTED);
static CRC16_BISYNC_TABLES: [[u32; 256]; SLICE] = reflected_tables(CRC16_BISYNC_POLY_REFLECTED);
static CRC16_CCITT_TABLES: [[u32; 256]; SLICE] = msb_first_tables(CRC16_CCITT_POLY_TOP);

/// Runs a reflected CRC register over `bytes`: 8 bytes per step, then one
/// 4-byte step, then single bytes (a 13-byte IPv4 5-tuple is 8 + 4 + 1).
#[inline(always)]
fn update_reflected(mut crc: u32, t: &[[u32; 256]; SLICE], bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(SLICE);
    for c in &mut chunks {
        let x = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = t[7][(x & 0xff) as usize]
            ^ t[6][((x >> 8) & 0xff) as usize]
            ^ t[5][((x >> 16) & 0xff) as usize]
            ^ t[4][(x >> 24) as usize]
            ^ t[3][usize::from(c[4])]
            ^ t[2][usize::from(c[5])]
            ^ t[1][usize::from(c[6])]
            ^ t[0][usize::from(c[7])];
    }
    let mut rest = chunks.remainder();
    if let [b0, b1, b2, b3, tail @ ..] = rest {
        let x = crc ^ u32::from_le_bytes([*b0, *b1, *b2, *b3]);
        crc = t[3][(x & 0xff) as usize]
            ^ t[2][((x >> 8) & 0xff) as usize]
            ^ t[1][((x >> 16) & 0xff) as usize]
            ^ t[0][(x >> 24) as usize];
        rest = tail;
    }
    for &byte in rest {
        crc = t[0][usize::from(crc as u8 ^ byte)] ^ (crc >> 8);
    }
    crc
}

/// Runs a top-aligned MSB-first CRC register over `bytes`, stepping like
/// [`update_reflected`].
#[inline(always)]
fn update_msb_first(mut crc: u32, t: &[[u32; 256]; SLICE], bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(SLICE);
    for c in &mut chunks {
        let x = crc ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        crc = t[7][(x >> 24) as usize]
            ^ t[6][((x >> 16) & 0xff) as usize]
            ^ t[5][((x >> 8) & 0xff) as usize]
            ^ t[4][(x & 0xff) as usize]
            ^ t[3][usize::from(c[4])]
            ^ t[2][usize::from(c[5])]
            ^ t[1][usize::from(c[6])]
            ^ t[0][usize::from(c[7])];
    }
    let mut rest = chunks.remainder();
    if let [b0, b1, b2, b3, tail @ ..] = rest {
        let x = crc ^ u32::from_be_bytes([*b0, *b1, *b2, *b3]);
        crc = t[3][(x >> 24) as usize]
            ^ t[2][((x >> 16) & 0xff) as usize]
            ^ t[1][((x >> 8) & 0xff) as usize]
            ^ t[0][(x & 0xff) as usize];
        rest = tail;
    }
    for &byte in rest {
        crc = t[0][usize::from((crc >> 24) as u8 ^ byte)] ^ (crc << 8);
    }
    crc
}

/// A nonzero value derived from `seed`, at most `mask` wide.
fn seed_delta(seed: u64, mask: u32) -> u32 {
    let mut state = seed;
    let z = splitmix64(&mut state);
    let d = (z ^ (z >> 32)) as u32 & mask;
    if d == 0 {
        // One seed in 2^16 (CRC-16) would otherwise keep the standard init.
        0x5eed & mask
    } else {
        d
    }
}

/// The initial CRC-32 register for a router seed: [`CRC32_INIT`] for seed 0,
/// otherwise [`CRC32_INIT`] XOR a nonzero SplitMix64-derived value.
///
/// Because CRCs are affine, for inputs of one length a different initial
/// value XORs every hash with the same constant: it relabels buckets but does
/// not regroup flows, much like seeding a real ASIC's CRC.
pub fn crc32_init(seed: u64) -> u32 {
    if seed == 0 {
        CRC32_INIT
    } else {
        CRC32_INIT ^ seed_delta(seed, u32::MAX)
    }
}

/// CRC-32 (IEEE 802.3: polynomial 0x04C11DB7, reflected, xorout 0xFFFFFFFF)
/// of `input`, starting from the register value `init`.
///
/// `init` is the value of the reflected shift register before the first
/// byte, i.e. the bit reversal of the RevEng catalogue's `Init` parameter;
/// both are 0xFFFFFFFF for the standard CRC-32, whose check value (the CRC of
/// `b"123456789"`) is 0xCBF43926.
#[inline]
pub fn crc32(init: u32, input: &[u8]) -> u32 {
    update_reflected(init, &CRC32_TABLES, input) ^ 0xffff_ffff
}

/// The initial CRC-16 register of `function` for a router seed: the standard
/// value for seed 0 ([`CRC16_BISYNC_INIT`] for [`HashFunction::Crc16Bisync`],
/// [`CRC16_CCITT_INIT`] for every other function), otherwise that value XOR a
/// nonzero SplitMix64-derived value. The CRC-32 remark on seeds applies.
pub fn crc16_init(function: HashFunction, seed: u64) -> u16 {
    let standard = match function {
        HashFunction::Crc16Bisync => CRC16_BISYNC_INIT,
        _ => CRC16_CCITT_INIT,
    };
    if seed == 0 {
        standard
    } else {
        standard ^ seed_delta(seed, 0xffff) as u16
    }
}

/// A 16-bit CRC of `input` from the register value `init`.
///
/// [`HashFunction::Crc16Bisync`] is CRC-16/ARC (polynomial 0x8005,
/// reflected, no xorout; check value 0xBB3D), for which `init` is the
/// reflected register (the bit reversal of RevEng's `Init`). Every other
/// function, [`HashFunction::Crc16Ccitt`] included, is CRC-16/IBM-3740 alias
/// "CCITT-FALSE" (polynomial 0x1021, not reflected, no xorout; check value
/// 0x29B1), for which `init` is RevEng's `Init` as is.
#[inline]
pub fn crc16(function: HashFunction, init: u16, input: &[u8]) -> u16 {
    match function {
        HashFunction::Crc16Bisync => {
            update_reflected(u32::from(init), &CRC16_BISYNC_TABLES, input) as u16
        }
        _ => (update_msb_first(u32::from(init) << 16, &CRC16_CCITT_TABLES, input) >> 16) as u16,
    }
}
