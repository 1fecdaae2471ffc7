//! Jump consistent hash (Lamping & Veach 2014) over slots `0..n`, with a slot ->
//! member indirection so that any member, not just the last, can leave: adding
//! a member moves ~1/(n+1) of flows, all onto it; removing the member in slot
//! `i` moves the last slot's member into slot `i`, so besides the removed
//! member's own ~1/n of flows at most the last slot's share, ~1/n, moves as
//! collateral (total moved <= ~2/n; exactly ~1/n when the removed member held
//! the last slot).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::{
    mix64, validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector,
    SelectorParams,
};

/// Jump consistent hash plus a slot indirection.
///
/// `slots[j]` is the member that owns jump bucket `j`. Changes are applied one
/// at a time, removals first (in the previous group order), then additions
/// (in the new group order):
///
/// * addition: push the new member as slot `n` (jump moves ~1/(n+1) of
///   flows from every slot onto slot `n`, i.e. only onto the new member);
/// * removal of the member in slot `i`: `slots.swap_remove(i)`. Flows of slot
///   `i` (the removed member) now go to the former last member; flows of the
///   old last slot `n-1` are spread by jump over slots `0..n-1`, i.e. they
///   move unless they land on slot `i`. Collateral: the last slot's share,
///   ~1/n x (n-2)/(n-1).
///
/// A flap (remove then re-add) of a member that was not in the last slot
/// does not restore the mapping: it ends up swapped with the former last
/// member (both their ~1/n shares end on the other one).
#[derive(Clone, Debug)]
pub struct JumpHash {
    members: Vec<Member>,
    slots: Vec<MemberId>,
}

impl JumpHash {
    pub fn new(
        _params: &SelectorParams,
        members: &[Member],
        _now: Nanos,
    ) -> Result<Self, SelectError> {
        validate_members(Algorithm::Jump, members)?;
        Ok(JumpHash {
            members: members.to_vec(),
            slots: members.iter().map(|m| m.id).collect(),
        })
    }
}

/// Lamping & Veach's jump consistent hash: the bucket in `0..buckets` for
/// `key`; 0 when `buckets` is 0 (callers check first).
///
/// Signed integers on purpose: i64 <-> f64 conversions are single
/// instructions on x86-64, u64 ones are not, and they are on the loop's
/// critical path.
#[inline]
fn jump_consistent_hash(mut key: u64, buckets: i64) -> i64 {
    let mut b: i64 = 0;
    let mut j: i64 = 0;
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // (b + 1) * 2^31 / (next 31 random bits + 1): the next bucket at which
        // this key would jump. The float to int cast saturates, never UB.
        j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) as i64 + 1) as f64)) as i64;
    }
    b
}

impl Selector for JumpHash {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Jump
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        let n = self.slots.len() as i64;
        if n == 0 {
            return None;
        }
        let slot = jump_consistent_hash(mix64(u64::from(hash)), n);
        self.slots.get(slot as usize).copied()
    }

    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        validate_members(Algorithm::Jump, members)?;
        let new_ids: HashSet<MemberId> = members.iter().map(|m| m.id).collect();
        let mut slot_of: HashMap<MemberId, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();

        for m in &self.members {
            if new_ids.contains(&m.id) {
                continue;
            }
            if let Some(i) = slot_of.remove(&m.id) {
                self.slots.swap_remove(i);
                if let Some(&moved) = self.slots.get(i) {
                    slot_of.insert(moved, i);
                }
            }
        }
        for m in members {
            if let Entry::Vacant(e) = slot_of.entry(m.id) {
                e.insert(self.slots.len());
                self.slots.push(m.id);
            }
        }
        self.members = members.to_vec();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{group, mapping, population, random_changes_move_only};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    fn build(ids: &[MemberId]) -> JumpHash {
        JumpHash::new(&SelectorParams::default(), &group(ids), 0).unwrap()
    }

    #[test]
    fn jump_function_is_in_range_and_monotone_in_n() {
        assert_eq!(jump_consistent_hash(0, 1), 0);
        assert_eq!(jump_consistent_hash(0, 100), 0);
        for key in [1u64, 0xdead_beef, u64::MAX, 1 << 40] {
            for n in 1..200i64 {
                let b = jump_consistent_hash(key, n);
                assert!(b < n);
                // Monotone: growing to n+1 keeps the bucket or moves to n.
                let b2 = jump_consistent_hash(key, n + 1);
                assert!(b2 == b || b2 == n, "key {key} n {n}: {b} -> {b2}");
            }
        }
    }

    #[test]
    fn jump_empty_group_selects_none_and_single_member_gets_everything() {
        let mut s = build(&[]);
        assert_eq!(s.select(0), None);
        assert_eq!(s.select(u32::MAX), None);
        s.set_members(&group(&[42]), 0).unwrap();
        for h in population(1000, 1) {
            assert_eq!(s.select(h), Some(42));
        }
        s.set_members(&[], 0).unwrap();
        assert_eq!(s.select(7), None);
    }

    #[test]
    fn jump_rejects_weights_and_duplicates_without_changing_state() {
        let mut s = build(&[1, 2, 3]);
        let before = mapping(&s, &population(1000, 2));
        assert!(matches!(
            s.set_members(&[Member::weighted(1, 2)], 0),
            Err(SelectError::WeightsUnsupported(Algorithm::Jump))
        ));
        assert!(matches!(
            s.set_members(&group(&[1, 1]), 0),
            Err(SelectError::DuplicateMember(1))
        ));
        assert_eq!(mapping(&s, &population(1000, 2)), before);
        assert_eq!(s.members(), group(&[1, 2, 3]).as_slice());
    }

    #[test]
    fn jump_balance_is_uniform_over_members() {
        let ids: Vec<MemberId> = (100..116).collect();
        let s = build(&ids);
        let hashes = population(200_000, 3);
        let mut counts: HashMap<MemberId, usize> = HashMap::new();
        for &h in &hashes {
            *counts.entry(s.select(h).unwrap()).or_default() += 1;
        }
        let expect = hashes.len() as f64 / ids.len() as f64;
        for id in &ids {
            let c = counts[id] as f64;
            assert!(
                (c / expect - 1.0).abs() < 0.04,
                "member {id}: {c} vs {expect}"
            );
        }
    }

    #[test]
    fn jump_adding_a_member_moves_about_one_over_n_plus_one() {
        let hashes = population(20_000, 4);
        for n in [1u32, 4, 10, 31] {
            let ids: Vec<MemberId> = (0..n).collect();
            let mut s = build(&ids);
            let before = mapping(&s, &hashes);
            let mut grown = ids.clone();
            grown.insert(0, 999); // group order must not matter
            s.set_members(&group(&grown), 0).unwrap();
            let after = mapping(&s, &hashes);
            let mut moved = 0;
            for (b, a) in before.iter().zip(&after) {
                if b != a {
                    assert_eq!(*a, Some(999), "a flow moved to an old member");
                    moved += 1;
                }
            }
            let frac = moved as f64 / hashes.len() as f64;
            let expect = 1.0 / f64::from(n + 1);
            assert!(
                (frac - expect).abs() < 0.02,
                "n {n}: moved {frac}, expected {expect}"
            );
        }
    }

    #[test]
    fn jump_removing_the_last_slot_moves_only_its_flows() {
        let hashes = population(20_000, 5);
        let mut s = build(&[10, 11, 12, 13, 14]);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[10, 11, 12, 13]), 0).unwrap();
        let after = mapping(&s, &hashes);
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*b, Some(14));
            }
        }
    }

    #[test]
    fn jump_removal_collateral_is_bounded_by_the_last_slots_share() {
        let hashes = population(20_000, 6);
        let ids: Vec<MemberId> = (0..10).collect();
        let mut s = build(&ids);
        let before = mapping(&s, &hashes);
        // Member 3 is in slot 3; member 9 holds the last slot and moves into 3.
        s.set_members(&group(&[0, 1, 2, 4, 5, 6, 7, 8, 9]), 0)
            .unwrap();
        assert_eq!(s.slots[3], 9);
        let after = mapping(&s, &hashes);
        let (mut own, mut collateral) = (0usize, 0usize);
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                match *b {
                    Some(3) => own += 1,
                    Some(9) => collateral += 1,
                    other => panic!("flow of {other:?} moved"),
                }
            }
        }
        let total = hashes.len() as f64;
        assert!((own as f64 / total - 0.1).abs() < 0.015);
        // Last slot's share x (n-2)/(n-1) = 0.1 x 8/9.
        assert!((collateral as f64 / total - 0.1 * 8.0 / 9.0).abs() < 0.015);
    }

    #[test]
    fn jump_flap_of_the_last_member_restores_the_mapping() {
        let hashes = population(5_000, 7);
        let ids = [5, 6, 7, 8];
        let mut s = build(&ids);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[5, 6, 7]), 0).unwrap();
        s.set_members(&group(&ids), 0).unwrap();
        assert_eq!(mapping(&s, &hashes), before);
    }

    #[test]
    fn jump_reordering_the_group_moves_nothing() {
        let hashes = population(5_000, 8);
        let mut s = build(&[1, 2, 3, 4]);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[4, 3, 2, 1]), 0).unwrap();
        assert_eq!(mapping(&s, &hashes), before);
        assert_eq!(s.members(), group(&[4, 3, 2, 1]).as_slice());
    }

    /// 50 random steps (several removals and additions at once) over a group
    /// of up to 64: a flow moves only if its member left, it lands on a
    /// joining member, or its member was relocated to another slot by a
    /// removal (the documented collateral).
    #[test]
    fn jump_random_changes_move_only_removed_added_or_relocated_flows() {
        let ids: Vec<MemberId> = (0..20).collect();
        let mut s = build(&ids);
        random_changes_move_only(&mut s, 9, |before, after| {
            // Every member is reachable through exactly one slot.
            let mut slots = after.slots.clone();
            slots.sort_unstable();
            let mut members: Vec<MemberId> = after.members().iter().map(|m| m.id).collect();
            members.sort_unstable();
            assert_eq!(slots, members);
            // Members that a removal moved to another slot may lose flows.
            after
                .slots
                .iter()
                .enumerate()
                .filter(|&(i, id)| {
                    before
                        .slots
                        .iter()
                        .position(|x| x == id)
                        .is_some_and(|j| j != i)
                })
                .map(|(_, &id)| id)
                .collect()
        });
    }

    #[test]
    fn jump_single_removals_in_sequence_stay_within_two_over_n() {
        let hashes = population(20_000, 11);
        let mut rng = Pcg64::seed_from_u64(12);
        let mut ids: Vec<MemberId> = (0..64).collect();
        let mut s = build(&ids);
        while ids.len() > 2 {
            let n = ids.len() as f64;
            let before = mapping(&s, &hashes);
            ids.remove(rng.gen_range(0..ids.len()));
            s.set_members(&group(&ids), 0).unwrap();
            let after = mapping(&s, &hashes);
            let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
            let frac = moved as f64 / hashes.len() as f64;
            assert!(frac <= 2.0 / n + 0.02, "n {n}: moved {frac}");
        }
    }
}
