//! Modulo-N selection: `slots[hash % slots.len()]`, where the slot vector
//! holds member `i` `weight_i` times, contiguously and in group order; exact
//! shares on slots, but almost every flow moves when the group changes.

use super::{
    validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector, SelectorParams,
};

/// Largest slot vector that is materialised for O(1) lookup; heavier groups
/// look the slot up by binary search over cumulative weights (same mapping).
const MAX_SLOT_TABLE: u64 = 1 << 16;

/// `a % d` for a fixed 32-bit divisor without a division instruction
/// (Lemire, Kaser & Kurz, "Faster remainder by direct computation", 2019).
/// Exact for every `a: u32` and every `d >= 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FastMod {
    magic: u64,
    d: u32,
}

impl FastMod {
    /// `d` must be >= 1 (callers guarantee it; 0 is treated as 1).
    pub(crate) const fn new(d: u32) -> Self {
        let d = if d == 0 { 1 } else { d };
        // For d == 1 this wraps to 0, which makes `rem` return 0: correct.
        FastMod {
            magic: (u64::MAX / d as u64).wrapping_add(1),
            d,
        }
    }

    #[inline(always)]
    pub(crate) const fn rem(self, a: u32) -> u32 {
        let low = self.magic.wrapping_mul(a as u64);
        ((low as u128 * self.d as u128) >> 64) as u32
    }
}

/// `members[hash % len]`, weighted by replication.
///
/// Weights are honoured by replication: conceptually the group is a slot
/// vector in which member `i` appears `weight_i` times, contiguously and in
/// group order, and a flow goes to `slots[hash % total_weight]`. When every
/// weight is 1 this is plain `members[hash % N]`. Up to 65 536 slots the vector
/// is materialised (one load per lookup); beyond that the slot's owner is found
/// by binary search over the cumulative weights, which gives the same mapping
/// without the memory (so weights up to `u32::MAX` are fine).
#[derive(Clone, Debug)]
pub struct ModuloN {
    members: Vec<Member>,
    /// Total weight (= number of conceptual slots).
    total: u64,
    /// `total` as a fast divisor when it fits 32 bits.
    modulus: Option<FastMod>,
    /// Materialised slot vector (member indices), empty when not used.
    slots: Vec<u32>,
    /// Exclusive end of each member's slot range (cumulative weights).
    ends: Vec<u64>,
    /// All weights are 1: `members[hash % N]` directly.
    unweighted: bool,
}

impl ModuloN {
    pub fn new(
        _params: &SelectorParams,
        members: &[Member],
        _now: Nanos,
    ) -> Result<Self, SelectError> {
        let mut s = ModuloN {
            members: Vec::new(),
            total: 0,
            modulus: None,
            slots: Vec::new(),
            ends: Vec::new(),
            unweighted: true,
        };
        s.rebuild(members)?;
        Ok(s)
    }

    fn rebuild(&mut self, members: &[Member]) -> Result<(), SelectError> {
        validate_members(Algorithm::ModuloN, members)?;
        let mut ends = Vec::with_capacity(members.len());
        let mut total = 0u64;
        for m in members {
            total += u64::from(m.weight);
            ends.push(total);
        }
        let unweighted = members.iter().all(|m| m.weight == 1);
        let slots = if !unweighted && total <= MAX_SLOT_TABLE {
            let mut v = Vec::with_capacity(total as usize);
            for (i, m) in members.iter().enumerate() {
                v.extend(std::iter::repeat(i as u32).take(m.weight as usize));
            }
            v
        } else {
            Vec::new()
        };
        self.members = members.to_vec();
        self.total = total;
        self.modulus = u32::try_from(total)
            .ok()
            .filter(|&t| t > 0)
            .map(FastMod::new);
        self.slots = slots;
        self.ends = ends;
        self.unweighted = unweighted;
        Ok(())
    }

    /// Number of conceptual slots (the sum of the weights).
    pub fn slot_count(&self) -> u64 {
        self.total
    }

    #[inline]
    fn slot_of(&self, hash: u32) -> u64 {
        match self.modulus {
            Some(m) => u64::from(m.rem(hash)),
            // total > u32::MAX: every 32-bit hash is already below it.
            None => u64::from(hash),
        }
    }
}

impl Selector for ModuloN {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ModuloN
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        if self.members.is_empty() {
            return None;
        }
        let slot = self.slot_of(hash);
        let index = if self.unweighted {
            slot as usize
        } else if !self.slots.is_empty() {
            *self.slots.get(slot as usize)? as usize
        } else {
            self.ends.partition_point(|&end| end <= slot)
        };
        self.members.get(index).map(|m| m.id)
    }

    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        self.rebuild(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<Member> {
        (0..n).map(|i| Member::new(100 + i)).collect()
    }

    #[test]
    fn fast_mod_matches_the_remainder_operator() {
        let divisors = [
            1u32,
            2,
            3,
            7,
            128,
            65_535,
            65_537,
            1 << 31,
            u32::MAX - 1,
            u32::MAX,
        ];
        let mut x = 0x1234_5678_u32;
        for &d in &divisors {
            let fm = FastMod::new(d);
            for a in [
                0,
                1,
                d.wrapping_sub(1),
                d,
                d.wrapping_add(1),
                u32::MAX,
                u32::MAX - 1,
            ] {
                assert_eq!(fm.rem(a), a % d, "{a} % {d}");
            }
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                assert_eq!(fm.rem(x), x % d, "{x} % {d}");
            }
        }
    }

    #[test]
    fn unweighted_is_plain_hash_mod_n() {
        let m = ids(5);
        let s = ModuloN::new(&SelectorParams::default(), &m, 0).unwrap();
        for h in [0u32, 1, 4, 5, 99, u32::MAX] {
            assert_eq!(s.select(h), Some(m[(h % 5) as usize].id));
        }
    }

    #[test]
    fn weights_replicate_members_contiguously_in_group_order() {
        let m = [
            Member::weighted(7, 2),
            Member::weighted(8, 1),
            Member::weighted(9, 3),
        ];
        let s = ModuloN::new(&SelectorParams::default(), &m, 0).unwrap();
        let got: Vec<_> = (0..12).map(|h| s.select(h).unwrap()).collect();
        assert_eq!(got, [7, 7, 8, 9, 9, 9, 7, 7, 8, 9, 9, 9]);
    }

    #[test]
    fn heavy_weights_use_the_same_mapping_without_a_slot_table() {
        // Total 2^16 + 1 slots: binary-search path. Compare against the definition.
        let m = [
            Member::weighted(1, 1 << 15),
            Member::weighted(2, 1),
            Member::weighted(3, 1 << 15),
        ];
        let s = ModuloN::new(&SelectorParams::default(), &m, 0).unwrap();
        assert!(s.slots.is_empty());
        let total = (1u32 << 16) + 1;
        for h in (0..u32::MAX).step_by(9_973).chain([u32::MAX]) {
            let slot = h % total;
            let want = if slot < 1 << 15 {
                1
            } else if slot == 1 << 15 {
                2
            } else {
                3
            };
            assert_eq!(s.select(h), Some(want), "hash {h}");
        }
    }

    #[test]
    fn maximal_weights_do_not_overflow() {
        let m: Vec<_> = (0..4).map(|i| Member::weighted(i, u32::MAX)).collect();
        let s = ModuloN::new(&SelectorParams::default(), &m, 0).unwrap();
        assert_eq!(s.slot_count(), 4 * u64::from(u32::MAX));
        // Every hash is below the total: slot = hash, all in member 0 or 1.
        assert_eq!(s.select(0), Some(0));
        assert_eq!(s.select(u32::MAX - 1), Some(0));
        assert_eq!(s.select(u32::MAX), Some(1));
    }

    #[test]
    fn empty_group_selects_nothing() {
        let mut s = ModuloN::new(&SelectorParams::default(), &[], 0).unwrap();
        assert_eq!(s.select(42), None);
        s.set_members(&ids(3), 0).unwrap();
        assert!(s.select(42).is_some());
        s.set_members(&[], 0).unwrap();
        assert_eq!(s.select(42), None);
    }

    #[test]
    fn invalid_members_are_rejected_and_leave_the_selector_unchanged() {
        let mut s = ModuloN::new(&SelectorParams::default(), &ids(3), 0).unwrap();
        let dup = [Member::new(1), Member::new(1)];
        assert_eq!(s.set_members(&dup, 0), Err(SelectError::DuplicateMember(1)));
        let zero = [Member::weighted(1, 0)];
        assert_eq!(s.set_members(&zero, 0), Err(SelectError::ZeroWeight(1)));
        assert_eq!(s.members(), &ids(3)[..]);
    }
}
