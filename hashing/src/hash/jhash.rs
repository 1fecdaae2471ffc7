//! Bob Jenkins' lookup3 hash exactly as Linux's `include/linux/jhash.h`
//! defines `jhash`, `jhash2` and `jhash_{1,2,3}words` (on a little-endian
//! CPU, which is what `hashlittle` in lookup3.c also computes).

/// Linux's `JHASH_INITVAL`, lookup3's arbitrary starting value.
pub const JHASH_INITVAL: u32 = 0xdead_beef;

/// `__jhash_mix`: mixes three 32-bit values reversibly.
#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// `__jhash_final`: final mixing of three 32-bit values into `c`.
#[inline(always)]
fn final_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

/// Reads a little-endian `u32` from a slice of exactly four bytes.
#[inline(always)]
fn le32(bytes: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(bytes);
    u32::from_le_bytes(w)
}

/// Linux `jhash(key, length, initval)`: lookup3 over a byte string.
///
/// Whole 12-byte blocks are read as little-endian words (Linux reads them in
/// CPU order; every platform ecmpd models is little-endian), except the last
/// block, which is added byte by byte and always goes through the final mix
/// unless it is empty. As in Linux, the length enters the state as a `u32`
/// (it wraps for inputs of 4 GiB or more).
#[inline]
pub fn jhash(key: &[u8], initval: u32) -> u32 {
    let init = JHASH_INITVAL
        .wrapping_add(key.len() as u32)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);

    // All but the last block: Linux loops `while (length > 12)`, so a final
    // block of exactly 12 bytes goes to the tail, not through `mix`.
    let mut rest = key;
    while rest.len() > 12 {
        let (block, tail) = rest.split_at(12);
        a = a.wrapping_add(le32(&block[0..4]));
        b = b.wrapping_add(le32(&block[4..8]));
        c = c.wrapping_add(le32(&block[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = tail;
    }
    if rest.is_empty() {
        return c;
    }

    // Last block (1..=12 bytes): the byte-wise switch with fall-through is
    // the same as adding the little-endian words of the zero-padded block.
    let mut last = [0u8; 12];
    last[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(le32(&last[0..4]));
    b = b.wrapping_add(le32(&last[4..8]));
    c = c.wrapping_add(le32(&last[8..12]));
    final_mix(a, b, c)
}

/// Linux `jhash2(k, length, initval)`: lookup3 over 32-bit words (the words'
/// values, not their byte order, enter the hash).
#[inline]
pub fn jhash2(words: &[u32], initval: u32) -> u32 {
    let init = JHASH_INITVAL
        .wrapping_add((words.len() as u32) << 2)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);

    let mut rest = words;
    while rest.len() > 3 {
        a = a.wrapping_add(rest[0]);
        b = b.wrapping_add(rest[1]);
        c = c.wrapping_add(rest[2]);
        mix(&mut a, &mut b, &mut c);
        rest = &rest[3..];
    }
    match *rest {
        [x, y, z] => final_mix(a.wrapping_add(x), b.wrapping_add(y), c.wrapping_add(z)),
        [x, y] => final_mix(a.wrapping_add(x), b.wrapping_add(y), c),
        [x] => final_mix(a.wrapping_add(x), b, c),
        _ => c,
    }
}

/// Linux `__jhash_nwords`: the shared body of `jhash_{1,2,3}words`.
#[inline(always)]
fn jhash_nwords(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    final_mix(
        a.wrapping_add(initval),
        b.wrapping_add(initval),
        c.wrapping_add(initval),
    )
}

/// Linux `jhash_3words(a, b, c, initval)`; equal to [`jhash2`] of
/// `[a, b, c]`, and to [`jhash`] of their 12 little-endian bytes.
#[inline]
pub fn jhash_3words(a: u32, b: u32, c: u32, initval: u32) -> u32 {
    jhash_nwords(
        a,
        b,
        c,
        initval.wrapping_add(JHASH_INITVAL).wrapping_add(3 << 2),
    )
}

/// Linux `jhash_2words(a, b, initval)`; equal to [`jhash2`] of `[a, b]`.
#[inline]
pub fn jhash_2words(a: u32, b: u32, initval: u32) -> u32 {
    jhash_nwords(
        a,
        b,
        0,
        initval.wrapping_add(JHASH_INITVAL).wrapping_add(2 << 2),
    )
}

/// Linux `jhash_1word(a, initval)`; equal to [`jhash2`] of `[a]`.
#[inline]
pub fn jhash_1word(a: u32, initval: u32) -> u32 {
    jhash_nwords(
        a,
        0,
        0,
        initval.wrapping_add(JHASH_INITVAL).wrapping_add(1 << 2),
    )
}
