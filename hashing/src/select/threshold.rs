//! Hash-threshold (RFC 2992) in Linux's upper-bound form: each member owns a
//! contiguous range of the 31-bit hash space proportional to its weight (exact
//! to 1/2^31); removing a member moves its range plus part of its neighbours'.

use super::{
    validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector, SelectorParams,
};

/// RFC 2992 hash-threshold, computed exactly as Linux does it
/// (`nh_hthr_group_rebalance` in `net/ipv4/nexthop.c`, `fib_rebalance` in
/// `fib_semantics.c`).
///
/// The flow hash is reduced to 31 bits (`hash >> 1`, as Linux's multipath hash
/// is). Walking the members in group order with cumulative weight `w` out of
/// `total`, member `i`'s Linux upper bound is
/// `DIV_ROUND_CLOSEST_ULL((u64)w << 31, total) - 1`, and a flow goes to the
/// first member whose upper bound is >= its 31-bit hash. This type stores the
/// exclusive range ends (`upper bound + 1`, see [`HashThreshold::range_ends`]),
/// so a member whose range rounds to nothing simply never matches, and finds
/// the member by binary search (O(log N)). Arithmetic is in `u128`, so any
/// weights up to `u32::MAX` are exact.
///
/// Removing member `k` re-spreads the whole space over the survivors: flows of
/// the removed member move, and so do flows near the boundaries that shift.
/// Removing the middle of three equal members moves exactly its third; removing
/// the last of three moves half of all flows (a sixth is collateral).
#[derive(Clone, Debug)]
pub struct HashThreshold {
    members: Vec<Member>,
    /// Exclusive end of each member's 31-bit hash range, non-decreasing; the
    /// last is 2^31 when the group is not empty.
    ends: Vec<u32>,
}

/// The size of the hash space a member range is carved from.
const SPACE: u128 = 1 << 31;

impl HashThreshold {
    pub fn new(
        _params: &SelectorParams,
        members: &[Member],
        _now: Nanos,
    ) -> Result<Self, SelectError> {
        let mut s = HashThreshold {
            members: Vec::new(),
            ends: Vec::new(),
        };
        s.rebuild(members)?;
        Ok(s)
    }

    fn rebuild(&mut self, members: &[Member]) -> Result<(), SelectError> {
        validate_members(Algorithm::HashThreshold, members)?;
        let total: u128 = members.iter().map(|m| u128::from(m.weight)).sum();
        let mut w = 0u128;
        let ends = members
            .iter()
            .map(|m| {
                w += u128::from(m.weight);
                // DIV_ROUND_CLOSEST_ULL(w << 31, total): at most 2^31.
                ((w * SPACE + total / 2) / total) as u32
            })
            .collect();
        self.members = members.to_vec();
        self.ends = ends;
        Ok(())
    }

    /// Exclusive end of each member's range of 31-bit hashes (`hash >> 1`), in
    /// group order: member `i` owns `ends[i-1]..ends[i]` (from 0 for the
    /// first). Linux's `upper_bound` is `ends[i] - 1`.
    pub fn range_ends(&self) -> &[u32] {
        &self.ends
    }
}

impl Selector for HashThreshold {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HashThreshold
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        let h31 = hash >> 1;
        let index = self.ends.partition_point(|&end| end <= h31);
        self.members.get(index).map(|m| m.id)
    }

    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        self.rebuild(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 2^12-th hash: 2^20 points spread evenly over the 32-bit space.
    fn grid() -> impl Iterator<Item = u32> {
        (0..1u32 << 20).map(|i| i << 12)
    }

    fn build(ids: &[u32]) -> HashThreshold {
        let m: Vec<_> = ids.iter().map(|&i| Member::new(i)).collect();
        HashThreshold::new(&SelectorParams::default(), &m, 0).unwrap()
    }

    /// (moved, collateral) counts over the grid between two selectors.
    fn moved(before: &HashThreshold, after: &HashThreshold) -> (u64, u64) {
        let stayed = |id: u32| after.members().iter().any(|m| m.id == id);
        let (mut moved, mut collateral) = (0, 0);
        for h in grid() {
            let (a, b) = (before.select(h).unwrap(), after.select(h).unwrap());
            if a != b {
                moved += 1;
                if stayed(a) {
                    collateral += 1;
                }
            }
        }
        (moved, collateral)
    }

    #[test]
    fn upper_bounds_match_linux() {
        let s = build(&[1, 2, 3]);
        // DIV_ROUND_CLOSEST(w << 31, 3) for w = 1, 2, 3.
        assert_eq!(s.range_ends(), &[715_827_883, 1_431_655_765, 1 << 31]);
        // Linux selects the first member with hash31 <= upper_bound (= end - 1).
        assert_eq!(s.select(715_827_882 << 1), Some(1));
        assert_eq!(s.select((715_827_882 << 1) | 1), Some(1));
        assert_eq!(s.select(715_827_883 << 1), Some(2));
        assert_eq!(s.select(1_431_655_764 << 1), Some(2));
        assert_eq!(s.select(1_431_655_765 << 1), Some(3));
        assert_eq!(s.select(u32::MAX), Some(3));
        assert_eq!(s.select(0), Some(1));
    }

    #[test]
    fn removing_the_middle_of_three_moves_exactly_its_third() {
        let before = build(&[1, 2, 3]);
        let after = build(&[1, 3]);
        let (moved, collateral) = moved(&before, &after);
        let owned_by_2 = grid().filter(|&h| before.select(h) == Some(2)).count() as u64;
        assert_eq!(collateral, 0);
        assert_eq!(moved, owned_by_2);
        let frac = moved as f64 / (1u64 << 20) as f64;
        assert!((frac - 1.0 / 3.0).abs() < 1e-5, "{frac}");
    }

    #[test]
    fn removing_the_last_of_three_moves_half_with_a_sixth_collateral() {
        let before = build(&[1, 2, 3]);
        let after = build(&[1, 2]);
        let (moved, collateral) = moved(&before, &after);
        let n = (1u64 << 20) as f64;
        let (moved, collateral) = (moved as f64 / n, collateral as f64 / n);
        assert!((moved - 0.5).abs() < 1e-5, "{moved}");
        assert!((collateral - 1.0 / 6.0).abs() < 1e-5, "{collateral}");
    }

    #[test]
    fn weights_give_proportional_ranges() {
        let m = [
            Member::weighted(1, 1),
            Member::weighted(2, 3),
            Member::weighted(3, 4),
        ];
        let s = HashThreshold::new(&SelectorParams::default(), &m, 0).unwrap();
        assert_eq!(s.range_ends(), &[1 << 28, 1 << 30, 1 << 31]);
    }

    #[test]
    fn a_member_whose_range_rounds_to_nothing_is_never_selected() {
        let m = [
            Member::weighted(1, 1),
            Member::weighted(2, u32::MAX),
            Member::weighted(3, u32::MAX),
        ];
        let s = HashThreshold::new(&SelectorParams::default(), &m, 0).unwrap();
        assert_eq!(s.range_ends()[0], 0);
        assert_eq!(s.select(0), Some(2));
        assert_eq!(s.select(u32::MAX), Some(3));
    }

    #[test]
    fn maximal_weights_do_not_overflow() {
        let m: Vec<_> = (0..1000).map(|i| Member::weighted(i, u32::MAX)).collect();
        let s = HashThreshold::new(&SelectorParams::default(), &m, 0).unwrap();
        assert_eq!(s.range_ends().last(), Some(&(1u32 << 31)));
        assert_eq!(s.select(0), Some(0));
        assert_eq!(s.select(u32::MAX), Some(999));
    }

    #[test]
    fn empty_group_selects_nothing() {
        let s = build(&[]);
        assert_eq!(s.select(0), None);
        assert_eq!(s.select(u32::MAX), None);
    }
}
