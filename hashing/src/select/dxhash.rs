//! DxHash (Dong & Wang, "DxHash: A Scalable Consistent Hash Based on the
//! Pseudo-Random Sequence"): members hold buckets of a power-of-two array and a
//! flow goes to the first active bucket of a pseudo-random sequence seeded by
//! its hash, so removal moves only the removed member's flows, addition moves
//! flows only onto the new member, and shares are uniform; only doubling the
//! array (more members than buckets) remaps (~half of all flows).

use std::collections::{HashMap, HashSet};

use super::{
    mix64, validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector,
    SelectorParams,
};

/// Largest bucket array (and so largest group) DxHash accepts.
pub const MAX_CAPACITY: u32 = 1 << 20;

/// Stride between the counters that seed successive sequence elements.
const SEQ_STRIDE: u64 = 0xd1b5_4a32_d192_ed03;

/// DxHash over a bucket array of power-of-two capacity.
///
/// * Lookup: `x_0 = mix64(hash ^ mix64(seed))`, `x_j = mix64(x_0 + j x
///   STRIDE)`; each `x_j` gives two probes (its low and high 32 bits, masked
///   to the capacity). The first active bucket wins. After `8 x capacity`
///   probes (probability ~`e^-(8 x members)`) a deterministic wrap-around
///   scan from the last probe takes over, so lookup always terminates and the
///   mapping stays consistent (the result is still "the first active bucket
///   of a sequence fixed by the hash").
/// * Removal deactivates the member's bucket and pushes it on a stack of
///   free buckets; nothing else moves.
/// * Addition activates, in order of preference: the member's own former
///   bucket if it is still free (so a flap restores its flows exactly even
///   when other changes came in between), else the most recently freed
///   bucket, else the lowest never-used bucket. Activating a bucket only
///   takes flows onto it.
/// * When every bucket is active and one more member joins, the capacity
///   doubles; probes use one more bit, so roughly half of all flows move.
///
/// Expected probes per lookup are `capacity / members` (1 to 2 with the
/// default capacity); the array is never shrunk, so a group that loses most
/// of its members probes more.
#[derive(Clone, Debug)]
pub struct DxHash {
    members: Vec<Member>,
    seed_mix: u64,
    /// `capacity - 1`; capacity is `buckets.len()`, a power of two >= 2.
    mask: u32,
    /// The member holding each bucket; `None` = inactive.
    buckets: Vec<Option<MemberId>>,
    /// Free (deactivated) buckets with the member that last held them, most
    /// recently freed last.
    free: Vec<(u32, MemberId)>,
    /// Member id -> its former bucket, for every entry of `free`.
    former: HashMap<MemberId, u32>,
    /// Lowest bucket never used; all buckets at or above it are inactive.
    next_unused: u32,
    /// Number of active buckets (= members).
    active: u32,
}

/// The initial capacity for `members` members: `requested` (0 = twice the
/// members) rounded up to a power of two, at least 2 and at least `members`.
pub(super) fn initial_capacity(
    algorithm: Algorithm,
    requested: u32,
    members: usize,
) -> Result<u32, SelectError> {
    if requested > MAX_CAPACITY {
        return Err(SelectError::InvalidParam(format!(
            "{algorithm} capacity {requested} exceeds the maximum {MAX_CAPACITY}"
        )));
    }
    check_group_size(algorithm, members)?;
    let members = members as u32;
    let wanted = if requested == 0 {
        members.saturating_mul(2)
    } else {
        requested
    };
    Ok(wanted
        .max(members)
        .max(2)
        .checked_next_power_of_two()
        .unwrap_or(MAX_CAPACITY)
        .min(MAX_CAPACITY))
}

pub(super) fn check_group_size(algorithm: Algorithm, members: usize) -> Result<(), SelectError> {
    if members > MAX_CAPACITY as usize {
        return Err(SelectError::TooManyMembers {
            algorithm,
            max: MAX_CAPACITY as usize,
            given: members,
        });
    }
    Ok(())
}

impl DxHash {
    pub fn new(
        params: &SelectorParams,
        members: &[Member],
        _now: Nanos,
    ) -> Result<Self, SelectError> {
        validate_members(Algorithm::DxHash, members)?;
        let capacity = initial_capacity(Algorithm::DxHash, params.capacity, members.len())?;
        let mut buckets = vec![None; capacity as usize];
        for (slot, m) in buckets.iter_mut().zip(members) {
            *slot = Some(m.id);
        }
        Ok(DxHash {
            members: members.to_vec(),
            seed_mix: mix64(params.seed),
            mask: capacity - 1,
            buckets,
            free: Vec::new(),
            former: HashMap::new(),
            next_unused: members.len() as u32,
            active: members.len() as u32,
        })
    }

    /// Current size of the bucket array.
    pub fn capacity(&self) -> u32 {
        self.mask + 1
    }

    fn deactivate(&mut self, id: MemberId, bucket: u32) {
        if let Some(slot) = self.buckets.get_mut(bucket as usize) {
            *slot = None;
            self.free.push((bucket, id));
            self.former.insert(id, bucket);
            self.active -= 1;
        }
    }

    fn activate(&mut self, id: MemberId) {
        let bucket = if let Some(b) = self.former.remove(&id) {
            // Still free (entries leave `former` when their bucket is reused).
            if let Some(pos) = self.free.iter().rposition(|&(fb, _)| fb == b) {
                self.free.remove(pos);
            }
            b
        } else if let Some((b, previous)) = self.free.pop() {
            self.former.remove(&previous);
            b
        } else {
            if self.next_unused > self.mask {
                // Every bucket is active: double (remaps ~half the flows).
                let capacity = (self.mask + 1) * 2;
                self.buckets.resize(capacity as usize, None);
                self.mask = capacity - 1;
            }
            self.next_unused += 1;
            self.next_unused - 1
        };
        if let Some(slot) = self.buckets.get_mut(bucket as usize) {
            *slot = Some(id);
            self.active += 1;
        }
    }

    /// Fallback after the probe budget: first active bucket from `start` on,
    /// wrapping.
    #[cold]
    fn scan_from(&self, start: usize) -> Option<MemberId> {
        let start = start.min(self.buckets.len());
        self.buckets[start..]
            .iter()
            .chain(&self.buckets[..start])
            .find_map(|&slot| slot)
    }
}

impl Selector for DxHash {
    fn algorithm(&self) -> Algorithm {
        Algorithm::DxHash
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        if self.active == 0 {
            return None;
        }
        let first = mix64(u64::from(hash) ^ self.seed_mix);
        let mut x = first;
        let mut b = 0usize;
        // Two probes per element: 8 x capacity probes in all.
        let rounds = self.buckets.len() as u64 * 4;
        for j in 1..=rounds {
            b = (x as u32 & self.mask) as usize;
            if let Some(&Some(id)) = self.buckets.get(b) {
                return Some(id);
            }
            b = ((x >> 32) as u32 & self.mask) as usize;
            if let Some(&Some(id)) = self.buckets.get(b) {
                return Some(id);
            }
            x = mix64(first.wrapping_add(j.wrapping_mul(SEQ_STRIDE)));
        }
        self.scan_from(b)
    }

    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        validate_members(Algorithm::DxHash, members)?;
        check_group_size(Algorithm::DxHash, members.len())?;
        let new_ids: HashSet<MemberId> = members.iter().map(|m| m.id).collect();
        let bucket_of: HashMap<MemberId, u32> = self
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(b, slot)| slot.map(|id| (id, b as u32)))
            .collect();

        let old = std::mem::take(&mut self.members);
        for m in &old {
            if !new_ids.contains(&m.id) {
                if let Some(&b) = bucket_of.get(&m.id) {
                    self.deactivate(m.id, b);
                }
            }
        }
        for m in members {
            if !bucket_of.contains_key(&m.id) {
                self.activate(m.id);
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

    fn build(ids: &[MemberId]) -> DxHash {
        DxHash::new(&SelectorParams::default(), &group(ids), 0).unwrap()
    }

    fn check_invariants(s: &DxHash) {
        assert!(s.buckets.len().is_power_of_two());
        assert_eq!(s.mask as usize, s.buckets.len() - 1);
        let active: Vec<MemberId> = s.buckets.iter().filter_map(|&x| x).collect();
        assert_eq!(active.len() as u32, s.active);
        let mut sorted = active.clone();
        sorted.sort_unstable();
        let mut ids: Vec<MemberId> = s.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        assert_eq!(sorted, ids);
        assert!(s.buckets[s.next_unused as usize..]
            .iter()
            .all(Option::is_none));
        for &(b, id) in &s.free {
            assert!(s.buckets[b as usize].is_none());
            assert_eq!(s.former.get(&id), Some(&b));
        }
        assert_eq!(s.former.len(), s.free.len());
    }

    #[test]
    fn dxhash_default_capacity_is_a_power_of_two_at_least_twice_the_members() {
        assert_eq!(build(&[]).capacity(), 2);
        assert_eq!(build(&[1]).capacity(), 2);
        assert_eq!(build(&[1, 2, 3]).capacity(), 8);
        assert_eq!(build(&(0..64).collect::<Vec<_>>()).capacity(), 128);
        let p = SelectorParams {
            capacity: 100,
            ..SelectorParams::default()
        };
        assert_eq!(DxHash::new(&p, &group(&[1]), 0).unwrap().capacity(), 128);
        let p = SelectorParams {
            capacity: 4,
            ..SelectorParams::default()
        };
        assert_eq!(
            DxHash::new(&p, &group(&[1, 2, 3, 4, 5]), 0)
                .unwrap()
                .capacity(),
            8
        );
        let p = SelectorParams {
            capacity: MAX_CAPACITY + 1,
            ..SelectorParams::default()
        };
        assert!(matches!(
            DxHash::new(&p, &group(&[1]), 0),
            Err(SelectError::InvalidParam(_))
        ));
    }

    #[test]
    fn dxhash_empty_group_selects_none() {
        let mut s = build(&[]);
        assert_eq!(s.select(0), None);
        s.set_members(&group(&[3]), 0).unwrap();
        for h in population(1000, 1) {
            assert_eq!(s.select(h), Some(3));
        }
        s.set_members(&[], 0).unwrap();
        assert_eq!(s.select(5), None);
        check_invariants(&s);
    }

    #[test]
    fn dxhash_rejects_weights_without_changing_state() {
        let mut s = build(&[1, 2]);
        assert!(matches!(
            s.set_members(&[Member::weighted(1, 3)], 0),
            Err(SelectError::WeightsUnsupported(Algorithm::DxHash))
        ));
        assert_eq!(s.members(), group(&[1, 2]).as_slice());
        check_invariants(&s);
    }

    #[test]
    fn dxhash_balance_is_uniform_over_members() {
        let ids: Vec<MemberId> = (0..20).collect();
        let s = build(&ids);
        let hashes = population(200_000, 2);
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
    fn dxhash_removal_moves_only_the_removed_members_flows() {
        let hashes = population(20_000, 3);
        let mut s = build(&[1, 2, 3, 4, 5, 6]);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 4, 5, 6]), 0).unwrap();
        let after = mapping(&s, &hashes);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b != a, *b == Some(3));
            moved += usize::from(b != a);
        }
        // The removed member's flows spread evenly over the others.
        assert!((moved as f64 / 20_000.0 - 1.0 / 6.0).abs() < 0.02);
    }

    #[test]
    fn dxhash_addition_moves_flows_only_onto_the_new_member() {
        let hashes = population(20_000, 4);
        let mut s = build(&[1, 2, 3, 4]);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[9, 1, 2, 3, 4]), 0).unwrap();
        let after = mapping(&s, &hashes);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*a, Some(9));
                moved += 1;
            }
        }
        assert!((moved as f64 / 20_000.0 - 0.2).abs() < 0.02);
    }

    #[test]
    fn dxhash_flap_restores_the_original_mapping() {
        let hashes = population(20_000, 5);
        let ids = [1, 2, 3, 4, 5];
        let mut s = build(&ids);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 4, 5]), 0).unwrap();
        s.set_members(&group(&ids), 0).unwrap();
        assert_eq!(mapping(&s, &hashes), before);
        check_invariants(&s);
    }

    #[test]
    fn dxhash_interleaved_flaps_restore_the_original_mapping() {
        let hashes = population(20_000, 6);
        let ids = [1, 2, 3, 4, 5];
        let mut s = build(&ids);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 4, 5]), 0).unwrap(); // 3 leaves
        s.set_members(&group(&[1, 4, 5]), 0).unwrap(); // 2 leaves
        s.set_members(&group(&[1, 3, 4, 5]), 0).unwrap(); // 3 returns (not LIFO)
        s.set_members(&group(&[1, 3, 4, 5, 2]), 0).unwrap(); // 2 returns
        assert_eq!(mapping(&s, &hashes), before);
        check_invariants(&s);
    }

    #[test]
    fn dxhash_new_member_takes_the_most_recently_freed_bucket() {
        let mut s = build(&[1, 2, 3, 4]);
        let b2 = s.buckets.iter().position(|&x| x == Some(2)).unwrap();
        let b3 = s.buckets.iter().position(|&x| x == Some(3)).unwrap();
        s.set_members(&group(&[1, 4]), 0).unwrap(); // 2 then 3 freed
        s.set_members(&group(&[1, 4, 7]), 0).unwrap();
        assert_eq!(s.buckets[b3], Some(7));
        s.set_members(&group(&[1, 4, 7, 8]), 0).unwrap();
        assert_eq!(s.buckets[b2], Some(8));
        s.set_members(&group(&[1, 4, 7, 8, 9]), 0).unwrap();
        assert_eq!(s.buckets[4], Some(9)); // lowest never used
                                           // Neither 2 nor 3 can reclaim their buckets now; they get fresh ones.
        s.set_members(&group(&[1, 4, 7, 8, 9, 2]), 0).unwrap();
        assert_eq!(s.buckets[5], Some(2));
        check_invariants(&s);
    }

    #[test]
    fn dxhash_doubling_keeps_about_half_the_flows() {
        let hashes = population(20_000, 7);
        let p = SelectorParams {
            capacity: 4,
            ..SelectorParams::default()
        };
        let mut s = DxHash::new(&p, &group(&[1, 2, 3, 4]), 0).unwrap();
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 3, 4, 5]), 0).unwrap();
        assert_eq!(s.capacity(), 8);
        let after = mapping(&s, &hashes);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let frac = moved as f64 / hashes.len() as f64;
        assert!(frac < 0.65, "doubling moved {frac}");
        check_invariants(&s);
    }

    #[test]
    fn dxhash_sparse_group_still_finds_its_member() {
        let p = SelectorParams {
            capacity: 1 << 12,
            ..SelectorParams::default()
        };
        let ids: Vec<MemberId> = (0..5).collect();
        let mut s = DxHash::new(&p, &group(&ids), 0).unwrap();
        s.set_members(&group(&[3]), 0).unwrap();
        for h in population(2_000, 8) {
            assert_eq!(s.select(h), Some(3));
        }
    }

    #[test]
    fn dxhash_fallback_scan_returns_the_first_active_bucket_after_start() {
        let mut s = build(&[1, 2, 3]);
        s.set_members(&group(&[3]), 0).unwrap();
        let b3 = s.buckets.iter().position(|&x| x == Some(3)).unwrap();
        for start in 0..s.buckets.len() + 2 {
            assert_eq!(s.scan_from(start), Some(3));
        }
        assert_eq!(s.buckets[b3], Some(3));
    }

    /// 50 random steps of removals and additions over a group of up to 64,
    /// checked against 20k fixed hashes: a flow moves only if its member
    /// left or it lands on a joining member (capacity is large enough that
    /// no doubling happens).
    #[test]
    fn dxhash_random_changes_keep_minimal_disruption_at_every_step() {
        let ids: Vec<MemberId> = (0..20).collect();
        let p = SelectorParams {
            capacity: 64,
            ..SelectorParams::default()
        };
        let mut s = DxHash::new(&p, &group(&ids), 0).unwrap();
        random_changes_move_only(&mut s, 9, |_, s| {
            assert_eq!(s.capacity(), 64);
            check_invariants(s);
            HashSet::new()
        });
    }

    #[test]
    fn dxhash_growth_from_empty_to_many_members_keeps_invariants() {
        let mut s = build(&[]);
        let mut ids = Vec::new();
        for id in 0..300 {
            ids.push(id);
            s.set_members(&group(&ids), 0).unwrap();
        }
        assert_eq!(s.capacity(), 512);
        check_invariants(&s);
        let hashes = population(1_000, 11);
        assert!(hashes.iter().all(|&h| s.select(h).is_some()));
    }
}
