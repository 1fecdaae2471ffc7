//! Maglev hashing (Eisenbud et al., NSDI 2016): a prime-sized lookup table
//! filled from per-member permutations, giving near-equal (or weighted) shares
//! and little collateral movement when a member leaves (at most 2% of flows
//! for M = 65537, unless two members' permutations are related: see
//! [`Maglev::removal_collateral_bound`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::modulo::FastMod;
use super::{
    mix64, validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector,
    SelectorParams,
};

/// Largest table accepted (2^24 entries, 64 MiB).
pub const MAX_TABLE_SIZE: u32 = 1 << 24;

/// Marks an unfilled entry while the table is built.
const EMPTY: u32 = u32::MAX;

/// Maglev's lookup table.
///
/// The table has `M = params.maglev_table_size` entries (prime, more than the
/// number of members, at most 2^24). Member `id` gets a permutation of the
/// entries from `offset = h1 % M` and `skip = h2 % (M - 1) + 1`, where `h1`
/// and `h2` are two independent derivations from `params.seed` and the id
/// (`mix64(seed + mix64(2 id))` and `mix64(seed + mix64(2 id + 1))`). Members
/// then take turns, each claiming the next still-empty entry of its
/// permutation, until the table is full. A flow goes to `table[hash % M]`.
///
/// Weights: the filling proceeds in rounds; in round `r` (from 1) member `i`
/// takes a turn, in group order, only while `placed_i * max_w < r * w_i`. A
/// member of the largest weight thus claims one entry per round and the
/// others proportionally fewer, so every member's table share is within about
/// one entry of `w_i / W` (every member claims at least one entry). With equal
/// weights this is exactly the paper's round robin. The turns are ordered
/// with a heap (O(M log N)), so skewed weights do not cost extra rounds.
///
/// The table is rebuilt from scratch by [`Selector::set_members`]; Maglev keeps
/// no state across changes, its consistency comes from the permutations: a
/// member keeps most of the entries its permutation reaches early.
///
/// Removal (measured over every entry of an M = 65537 table, N = 2..=64
/// members with random ids and seeds, every member removed in turn, about
/// 400 000 removals): the fraction of all flows that move although their
/// member stays has a median of 0.4% and a 99.9th percentile of 1.1%, but a
/// heavy tail, caused by *related permutations*. Two members whose skips are
/// equal walk the same cycle of entries from different offsets, so any change
/// re-interleaves their claims and can swap much of their entries between
/// them; skips that are multiples of each other (`s_b = ±c s_a mod M`, small
/// `c`) do the same more weakly, roughly in proportion to `1/c`. Measured worst cases:
///
/// * no two skips related by `±c` or `±1/c` with `c <= 8`
///   ([`Maglev::has_related_permutations`] false): 1.7% of flows (at N = 16);
///   documented bound [`Maglev::REMOVAL_COLLATERAL_BOUND`] = 2%;
/// * related skips (a given pair is related with probability about
///   30 / M; some pair is, in ~5% of 16-member and ~60% of 64-member groups):
///   up to 26% of flows with two equal skips in a group of 4 (8% for
///   `c = 2`, 4% for `c = 3, 4`), which is about one member's share; bound
///   `2% + 2/N` (the colliding pair's share).
///
/// [`Maglev::removal_collateral_bound`] gives the bound that applies to a group.
#[derive(Clone, Debug)]
pub struct Maglev {
    members: Vec<Member>,
    seed: u64,
    size: u32,
    modulus: FastMod,
    /// Member id per entry; empty when the group is empty.
    table: Vec<MemberId>,
}

impl Maglev {
    /// Upper bound on the fraction of all flows that move although their
    /// member stays, when one member is removed from a group of 2..=64
    /// members without related permutations, for the default table size
    /// 65537 (measured worst case 1.7%).
    pub const REMOVAL_COLLATERAL_BOUND: f64 = 0.02;

    /// Largest multiplier `c` for which skips `s_b = ±c s_a` or `±s_a / c`
    /// (mod M) count as related.
    pub const RELATED_SKIP_MULTIPLIER: u64 = 8;

    pub fn new(
        params: &SelectorParams,
        members: &[Member],
        _now: Nanos,
    ) -> Result<Self, SelectError> {
        let size = params.maglev_table_size;
        if size > MAX_TABLE_SIZE {
            return Err(SelectError::InvalidParam(format!(
                "maglev table size {size} is larger than the maximum {MAX_TABLE_SIZE}"
            )));
        }
        if !is_prime(size) {
            return Err(SelectError::InvalidParam(format!(
                "maglev table size must be prime, {size} is not"
            )));
        }
        let mut s = Maglev {
            members: Vec::new(),
            seed: params.seed,
            size,
            modulus: FastMod::new(size),
            table: Vec::new(),
        };
        s.rebuild(members)?;
        Ok(s)
    }

    /// The table size M.
    pub fn table_size(&self) -> u32 {
        self.size
    }

    /// Table entries held by each member, aligned with [`Selector::members`].
    pub fn entries_per_member(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.members.len()];
        let index: std::collections::HashMap<MemberId, usize> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id, i))
            .collect();
        for id in &self.table {
            if let Some(&i) = index.get(id) {
                counts[i] += 1;
            }
        }
        counts
    }

    /// Whether two members' permutations are related: their skips satisfy
    /// `s_b = ±c s_a` or `s_a = ±c s_b` (mod M) for some `c` in
    /// `1..=RELATED_SKIP_MULTIPLIER`. O(N^2); for reports and tests.
    pub fn has_related_permutations(&self) -> bool {
        let m = u64::from(self.size);
        if self.members.len() < 2 || m < 3 {
            return self.members.len() >= 2;
        }
        let mut related: Vec<u64> = Vec::new();
        for c in 1..=Self::RELATED_SKIP_MULTIPLIER.min(m - 1) {
            let ic = mod_inverse(c, m);
            related.extend([c, m - c, ic, m - ic]);
        }
        let skips: Vec<u64> = self
            .members
            .iter()
            .map(|mem| u64::from(self.permutation(mem.id).1))
            .collect();
        let inverses: Vec<u64> = skips.iter().map(|&s| mod_inverse(s, m)).collect();
        for (a, &inverse) in inverses.iter().enumerate() {
            for &skip in &skips[a + 1..] {
                if related.contains(&(skip * inverse % m)) {
                    return true;
                }
            }
        }
        false
    }

    /// The documented bound on the fraction of flows that move although their
    /// member stays when one member of this group is removed (measured for
    /// M = 65537 and up to 64 members): [`Maglev::REMOVAL_COLLATERAL_BOUND`],
    /// plus `2 / N` for a group with related permutations.
    pub fn removal_collateral_bound(&self) -> f64 {
        if self.has_related_permutations() {
            Self::REMOVAL_COLLATERAL_BOUND + 2.0 / self.members.len() as f64
        } else {
            Self::REMOVAL_COLLATERAL_BOUND
        }
    }

    /// A member id's permutation of the table, `(offset, skip)`, under this
    /// selector's seed and table size.
    pub fn permutation(&self, id: MemberId) -> (u32, u32) {
        let m = u64::from(self.size);
        let id = u64::from(id);
        let h1 = mix64(self.seed.wrapping_add(mix64(id << 1)));
        let h2 = mix64(self.seed.wrapping_add(mix64((id << 1) | 1)));
        let offset = h1 % m;
        let skip = if m > 1 { h2 % (m - 1) + 1 } else { 1 };
        (offset as u32, skip as u32)
    }

    fn rebuild(&mut self, members: &[Member]) -> Result<(), SelectError> {
        validate_members(Algorithm::Maglev, members)?;
        if members.len() >= self.size as usize {
            return Err(SelectError::TooManyMembers {
                algorithm: Algorithm::Maglev,
                max: self.size as usize - 1,
                given: members.len(),
            });
        }
        let n = members.len();
        let size = self.size;
        let mut table = Vec::new();
        if n > 0 {
            table = vec![EMPTY; size as usize];
            let (mut pos, skip): (Vec<u32>, Vec<u32>) =
                members.iter().map(|m| self.permutation(m.id)).unzip();
            // Member i claims the next empty entry of its permutation.
            let mut claim = |i: usize| {
                let mut c = pos[i];
                while table[c as usize] != EMPTY {
                    c += skip[i];
                    if c >= size {
                        c -= size;
                    }
                }
                table[c as usize] = i as u32;
                c += skip[i];
                if c >= size {
                    c -= size;
                }
                pos[i] = c;
            };
            let equal = members.iter().all(|m| m.weight == members[0].weight);
            if equal {
                let mut filled = 0u32;
                'fill: loop {
                    for i in 0..n {
                        claim(i);
                        filled += 1;
                        if filled == size {
                            break 'fill;
                        }
                    }
                }
            } else {
                // Member i's k-th claim (k from 1) happens in round
                // floor((k - 1) * max_w / w_i) + 1; within a round, group order.
                // Bounds: placed <= M <= 2^24, weights < 2^32: fits u64.
                let max_w = members
                    .iter()
                    .map(|m| u64::from(m.weight))
                    .max()
                    .unwrap_or(1);
                let mut placed = vec![0u64; n];
                let mut turns: BinaryHeap<Reverse<(u64, usize)>> =
                    (0..n).map(|i| Reverse((1, i))).collect();
                for _ in 0..size {
                    let Some(Reverse((_, i))) = turns.pop() else {
                        break;
                    };
                    claim(i);
                    placed[i] += 1;
                    let round = placed[i] * max_w / u64::from(members[i].weight) + 1;
                    turns.push(Reverse((round, i)));
                }
            }
            for e in &mut table {
                *e = members[*e as usize].id;
            }
        }
        self.members = members.to_vec();
        self.table = table;
        Ok(())
    }
}

/// `a^-1 mod m` for a prime `m < 2^32` and `a` not a multiple of `m`
/// (Fermat: `a^(m-2)`).
fn mod_inverse(a: u64, m: u64) -> u64 {
    let (mut result, mut base, mut exp) = (1u64, a % m, m - 2);
    while exp > 0 {
        if exp & 1 == 1 {
            result = result * base % m;
        }
        base = base * base % m;
        exp >>= 1;
    }
    result
}

/// Deterministic primality by trial division (n < 2^32: at most 2^16 steps).
fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n % 2 == 0 {
        return false;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

impl Selector for Maglev {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Maglev
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        self.table.get(self.modulus.rem(hash) as usize).copied()
    }

    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        self.rebuild(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(size: u32, seed: u64) -> SelectorParams {
        SelectorParams {
            maglev_table_size: size,
            seed,
            ..SelectorParams::default()
        }
    }

    fn members(n: u32) -> Vec<Member> {
        (0..n).map(|i| Member::new(1000 + i)).collect()
    }

    #[test]
    fn primality() {
        let primes = [2u32, 3, 5, 7, 251, 65_521, 65_537, 16_777_213];
        let composites = [0u32, 1, 4, 9, 65_535, 65_539 * 3, 16_777_215, u32::MAX];
        assert!(primes.iter().all(|&p| is_prime(p)));
        assert!(composites.iter().all(|&c| !is_prime(c)));
    }

    #[test]
    fn table_size_must_be_prime_and_not_too_large() {
        for size in [0, 1, 4, 65_536, MAX_TABLE_SIZE + 43] {
            let e = Maglev::new(&params(size, 0), &members(1), 0).unwrap_err();
            assert!(matches!(e, SelectError::InvalidParam(_)), "{size}: {e:?}");
        }
        assert!(Maglev::new(&params(2, 0), &members(1), 0).is_ok());
    }

    #[test]
    fn the_table_must_have_more_entries_than_members() {
        let e = Maglev::new(&params(7, 0), &members(7), 0).unwrap_err();
        assert_eq!(
            e,
            SelectError::TooManyMembers {
                algorithm: Algorithm::Maglev,
                max: 6,
                given: 7
            }
        );
        let mut s = Maglev::new(&params(7, 0), &members(6), 0).unwrap();
        let counts = s.entries_per_member();
        assert_eq!(counts.iter().sum::<u32>(), 7);
        assert!(counts.iter().all(|&c| c >= 1), "{counts:?}");
        assert!(s.set_members(&members(8), 0).is_err());
        assert_eq!(s.members().len(), 6);
    }

    #[test]
    fn equal_members_get_equal_shares_within_one_entry() {
        let s = Maglev::new(&params(65_537, 0), &members(64), 0).unwrap();
        let counts = s.entries_per_member();
        assert_eq!(counts.iter().sum::<u32>(), 65_537);
        assert!(counts.iter().all(|&c| c == 1024 || c == 1025), "{counts:?}");
    }

    #[test]
    fn weighted_shares_follow_weights() {
        let m: Vec<_> = (0..16).map(|i| Member::weighted(i, 1 + i % 8)).collect();
        let s = Maglev::new(&params(65_537, 3), &m, 0).unwrap();
        let total: u32 = m.iter().map(|m| m.weight).sum();
        for (c, mem) in s.entries_per_member().iter().zip(&m) {
            let want = 65_537.0 * f64::from(mem.weight) / f64::from(total);
            assert!((f64::from(*c) - want).abs() <= 1.5, "{c} vs {want}");
        }
    }

    #[test]
    fn skewed_weights_build_quickly_and_every_member_gets_an_entry() {
        let mut m: Vec<_> = (0..1000).map(Member::new).collect();
        m.push(Member::weighted(5000, u32::MAX));
        let s = Maglev::new(&params(65_537, 0), &m, 0).unwrap();
        let counts = s.entries_per_member();
        assert!(counts[..1000].iter().all(|&c| c == 1));
        assert_eq!(counts[1000], 65_537 - 1000);
    }

    #[test]
    fn lookup_is_table_at_hash_mod_m() {
        let s = Maglev::new(&params(13, 9), &members(3), 0).unwrap();
        for h in [0u32, 5, 12, 13, 1000, u32::MAX] {
            assert_eq!(s.select(h), Some(s.table[(h % 13) as usize]));
        }
    }

    #[test]
    fn empty_group_selects_nothing() {
        let mut s = Maglev::new(&params(65_537, 0), &[], 0).unwrap();
        assert_eq!(s.select(1), None);
        s.set_members(&members(2), 0).unwrap();
        assert!(s.select(1).is_some());
    }

    fn collateral(before: &Maglev, after: &Maglev, gone: MemberId) -> f64 {
        let moved = before
            .table
            .iter()
            .zip(&after.table)
            .filter(|(a, b)| **a != gone && a != b)
            .count();
        moved as f64 / before.table.len() as f64
    }

    #[test]
    fn removal_collateral_stays_within_the_documented_bound() {
        // A sample of the measurement behind REMOVAL_COLLATERAL_BOUND.
        for n in [2u32, 5, 16, 33, 64] {
            let m = members(n);
            let before = Maglev::new(&params(65_537, 1), &m, 0).unwrap();
            for k in [0, n as usize / 2, n as usize - 1] {
                let mut rest = m.clone();
                let gone = rest.remove(k).id;
                let after = Maglev::new(&params(65_537, 1), &rest, 0).unwrap();
                let frac = collateral(&before, &after, gone);
                assert!(
                    frac <= before.removal_collateral_bound(),
                    "n {n} k {k}: {frac}"
                );
            }
        }
    }

    #[test]
    fn a_shared_skip_is_the_documented_exception() {
        // Members 1152494179 and 278388499 share skip 62754 under seed 100.
        let ids = [
            3_563_710_349,
            2_471_327_490,
            1_896_770_924,
            515_287_734,
            1_152_494_179,
            4_176_490_999,
            1_033_587_796,
            153_219_020,
            278_388_499,
        ];
        let m: Vec<_> = ids.iter().map(|&i| Member::new(i)).collect();
        let before = Maglev::new(&params(65_537, 100), &m, 0).unwrap();
        assert_eq!(before.permutation(ids[4]).1, before.permutation(ids[8]).1);
        assert!(before.has_related_permutations());
        let mut rest = m.clone();
        let gone = rest.remove(3).id;
        let after = Maglev::new(&params(65_537, 100), &rest, 0).unwrap();
        let frac = collateral(&before, &after, gone);
        assert!(frac > Maglev::REMOVAL_COLLATERAL_BOUND, "{frac}");
        assert!(frac <= before.removal_collateral_bound(), "{frac}");
        // Without one of the pair, the group's permutations are unrelated.
        let mut no_pair = m.clone();
        no_pair.remove(8);
        let unrelated = Maglev::new(&params(65_537, 100), &no_pair, 0).unwrap();
        assert!(!unrelated.has_related_permutations());
    }

    #[test]
    fn related_permutations_are_detected() {
        const M: u64 = 65_537;
        let probe = Maglev::new(&params(65_537, 0), &[], 0).unwrap();
        let skip = |id: u32| u64::from(probe.permutation(id).1);
        let base = skip(1);
        // Equal, opposite, double and one-eighth skips are related; 9x is not.
        for (mult, related) in [
            (1, true),
            (M - 1, true),
            (2, true),
            (mod_inverse(8, M), true),
            (9, false),
        ] {
            let want = base * mult % M;
            let id = (2u32..).find(|&id| skip(id) == want).unwrap();
            let pair = [Member::new(1), Member::new(id)];
            let s = Maglev::new(&params(65_537, 0), &pair, 0).unwrap();
            assert_eq!(s.has_related_permutations(), related, "multiplier {mult}");
        }
        assert_eq!(mod_inverse(3, M) * 3 % M, 1);
        assert_eq!(mod_inverse(M - 1, M), M - 1);
    }
}
