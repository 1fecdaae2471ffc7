//! AnchorHash (Mendelson, Vargaftik, Barabash, Lorenz, Keslassy, Orda, IEEE/ACM
//! ToN 2021) over an anchor set of `a` buckets of which the members hold the
//! working ones: flows are spread uniformly over the working buckets, removing
//! a member moves only its flows, adding one moves flows only onto it, and a
//! flap restores the mapping; only growing past `a` members remaps (~half).

use std::collections::HashSet;

use super::dxhash::{check_group_size, initial_capacity};
use super::{
    mix64, validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector,
    SelectorParams,
};

/// Odd constant separating the per-bucket hashes `h_b`.
const BUCKET_STRIDE: u64 = 0x9fb2_1c65_1e98_df25;

/// AnchorHash, with the paper's state (Algorithm 2, "implementation"):
///
/// * `anchor[b]` (the paper's `A`): 0 if `b` is working, else the size of
///   the working set just after `b` was removed;
/// * `succ[b]` (`K`): the bucket that replaced `b` in `W` when `b` was
///   removed (followed to find `W_b[h]`);
/// * `working[i]` (`W`): the working buckets in positions `0..n`;
/// * `last[b]` (`L`): `b`'s most recent position in `W`;
/// * `removed` (`R`): removed buckets, most recent last;
/// * `n` (`N`): the size of the working set.
///
/// Hashes: `k = mix64(hash ^ mix64(seed))`; `hash(k) mod a` uses the low bits
/// of `k` (the anchor size is a power of two); `h_b(k) mod A[b]` is the
/// multiply-shift range reduction of the high 32 bits of
/// `mix64(k + (b + 1) x stride)`.
///
/// Buckets are bound to member ids (the paper's wrapper `M`): the initial
/// members take buckets `0..n` in group order, a removal is `REMOVEBUCKET`
/// of the member's bucket, an addition is `ADDBUCKET` (which pops the most
/// recently removed bucket, so a flap in LIFO order restores the mapping
/// exactly) bound to the new id. When every bucket is working and another
/// member joins, the anchor is rebuilt at twice the size keeping every
/// member's bucket; the new half starts removed, so about half of all flows
/// move.
#[derive(Clone, Debug)]
pub struct AnchorHash {
    members: Vec<Member>,
    seed_mix: u64,
    anchor: Vec<u32>,
    succ: Vec<u32>,
    working: Vec<u32>,
    last: Vec<u32>,
    removed: Vec<u32>,
    n: u32,
    /// The member bound to each bucket (meaningful for working buckets).
    bucket_member: Vec<MemberId>,
}

impl AnchorHash {
    pub fn new(
        params: &SelectorParams,
        members: &[Member],
        _now: Nanos,
    ) -> Result<Self, SelectError> {
        validate_members(Algorithm::AnchorHash, members)?;
        let capacity = initial_capacity(Algorithm::AnchorHash, params.capacity, members.len())?;
        let mut s = AnchorHash {
            members: members.to_vec(),
            seed_mix: mix64(params.seed),
            anchor: Vec::new(),
            succ: Vec::new(),
            working: Vec::new(),
            last: Vec::new(),
            removed: Vec::new(),
            n: 0,
            bucket_member: vec![0; capacity as usize],
        };
        s.init_anchor(capacity, members.len() as u32);
        for (slot, m) in s.bucket_member.iter_mut().zip(members) {
            *slot = m.id;
        }
        Ok(s)
    }

    /// Size of the anchor set `a`.
    pub fn capacity(&self) -> u32 {
        self.anchor.len() as u32
    }

    /// INITANCHOR(a, w).
    fn init_anchor(&mut self, a: u32, w: u32) {
        self.anchor = vec![0; a as usize];
        self.succ = (0..a).collect();
        self.working = (0..a).collect();
        self.last = (0..a).collect();
        self.removed = Vec::with_capacity(a as usize);
        self.n = w;
        for b in (w..a).rev() {
            self.removed.push(b);
            self.anchor[b as usize] = b;
        }
    }

    /// GETBUCKET(k): the working bucket for a hash. Needs `n >= 1`.
    #[inline]
    fn get_bucket(&self, hash: u32) -> usize {
        let key = mix64(u64::from(hash) ^ self.seed_mix);
        let mask = self.anchor.len() - 1; // power of two
        let mut b = key as usize & mask;
        loop {
            let ab = self.anchor[b];
            if ab == 0 {
                return b;
            }
            // h_b(k) mod A[b]
            let hb = mix64(key.wrapping_add((b as u64 + 1).wrapping_mul(BUCKET_STRIDE)));
            let mut h = (((hb >> 32) * u64::from(ab)) >> 32) as usize;
            // W_b[h] != h while h was removed before b: follow successors.
            while self.anchor[h] >= ab {
                h = self.succ[h] as usize;
            }
            b = h;
        }
    }

    /// ADDBUCKET(): reactivates the most recently removed bucket. Needs
    /// `n < a` (so `removed` is not empty).
    fn add_bucket(&mut self) -> Option<u32> {
        let b = self.removed.pop()?;
        let n = self.n as usize;
        self.anchor[b as usize] = 0;
        self.last[self.working[n] as usize] = self.n;
        self.working[self.last[b as usize] as usize] = b;
        self.succ[b as usize] = b;
        self.n += 1;
        Some(b)
    }

    /// REMOVEBUCKET(b) for a working bucket `b`.
    fn remove_bucket(&mut self, b: u32) {
        let bu = b as usize;
        self.removed.push(b);
        self.n -= 1;
        let n = self.n as usize;
        self.anchor[bu] = self.n;
        let tail = self.working[n];
        self.working[self.last[bu] as usize] = tail;
        self.succ[bu] = tail;
        self.last[tail as usize] = self.last[bu];
    }

    /// Every bucket is working: rebuild at twice the size, every member
    /// keeping its bucket and the new half starting removed.
    fn double(&mut self) {
        let a = self.capacity();
        self.init_anchor(a * 2, a);
        self.bucket_member.resize(a as usize * 2, 0);
    }
}

impl Selector for AnchorHash {
    fn algorithm(&self) -> Algorithm {
        Algorithm::AnchorHash
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        if self.n == 0 {
            return None;
        }
        self.bucket_member.get(self.get_bucket(hash)).copied()
    }

    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        validate_members(Algorithm::AnchorHash, members)?;
        check_group_size(Algorithm::AnchorHash, members.len())?;
        let new_ids: HashSet<MemberId> = members.iter().map(|m| m.id).collect();
        let mut current: HashSet<MemberId> = HashSet::with_capacity(self.members.len());
        let working = self.working.get(..self.n as usize).unwrap_or_default();
        let mut leaving = Vec::new();
        for &b in working {
            let id = self.bucket_member[b as usize];
            current.insert(id);
            if !new_ids.contains(&id) {
                leaving.push((id, b));
            }
        }
        // Removals in the previous group order, so the removal order (and so
        // the state) does not depend on bucket positions.
        let position: std::collections::HashMap<MemberId, usize> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id, i))
            .collect();
        leaving.sort_by_key(|(id, _)| position.get(id).copied().unwrap_or(usize::MAX));
        for (_, b) in leaving {
            self.remove_bucket(b);
        }
        for m in members {
            if current.contains(&m.id) {
                continue;
            }
            if self.removed.is_empty() {
                self.double();
            }
            if let Some(b) = self.add_bucket() {
                self.bucket_member[b as usize] = m.id;
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
    use std::collections::HashMap;

    fn build(ids: &[MemberId]) -> AnchorHash {
        AnchorHash::new(&SelectorParams::default(), &group(ids), 0).unwrap()
    }

    fn with_capacity(capacity: u32, ids: &[MemberId]) -> AnchorHash {
        let p = SelectorParams {
            capacity,
            ..SelectorParams::default()
        };
        AnchorHash::new(&p, &group(ids), 0).unwrap()
    }

    /// The paper's invariants: W[0..n] are exactly the working buckets,
    /// L inverts W on them, R holds exactly the removed buckets, and
    /// members are bound one-to-one to the working buckets.
    fn check_invariants(s: &AnchorHash) {
        let a = s.anchor.len();
        assert!(a.is_power_of_two());
        let n = s.n as usize;
        assert_eq!(n, s.members.len());
        assert_eq!(s.removed.len(), a - n);
        let working: HashSet<u32> = s.working[..n].iter().copied().collect();
        assert_eq!(working.len(), n);
        for (i, &b) in s.working[..n].iter().enumerate() {
            assert_eq!(s.anchor[b as usize], 0, "W holds removed bucket {b}");
            assert_eq!(s.last[b as usize] as usize, i);
        }
        for &b in &s.removed {
            assert!(!working.contains(&b));
            assert!(s.anchor[b as usize] > 0 || n == 0);
        }
        let mut bound: Vec<MemberId> = s.working[..n]
            .iter()
            .map(|&b| s.bucket_member[b as usize])
            .collect();
        bound.sort_unstable();
        let mut ids: Vec<MemberId> = s.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        assert_eq!(bound, ids);
    }

    /// The paper's definition of the result, computed the slow way: replay
    /// removals (b, |W_b|) from a fresh anchor, then follow
    /// b <- W_b[h_b(k) mod |W_b|] until b is working, where W_b is the
    /// working array right after b's removal.
    #[test]
    fn anchorhash_matches_the_working_set_snapshots_definition() {
        let mut s = with_capacity(32, &(0..20).collect::<Vec<_>>());
        let mut snapshots: HashMap<u32, Vec<u32>> = HashMap::new();
        for b in 20..32 {
            // initial removals: W_b = 0..b
            snapshots.insert(b, (0..b).collect());
        }
        let mut rng = Pcg64::seed_from_u64(1);
        let mut ids: Vec<MemberId> = (0..20).collect();
        for _ in 0..10 {
            let id = ids.remove(rng.gen_range(0..ids.len()));
            let b = s.working[..s.n as usize]
                .iter()
                .copied()
                .find(|&b| s.bucket_member[b as usize] == id)
                .unwrap();
            s.set_members(&group(&ids), 0).unwrap();
            snapshots.insert(b, s.working[..s.n as usize].to_vec());
        }
        for h in population(20_000, 2) {
            let key = mix64(u64::from(h) ^ s.seed_mix);
            let mut b = (key as usize) & (s.anchor.len() - 1);
            while s.anchor[b] > 0 {
                let wb = &snapshots[&(b as u32)];
                assert_eq!(wb.len(), s.anchor[b] as usize);
                let hb = mix64(key.wrapping_add((b as u64 + 1).wrapping_mul(BUCKET_STRIDE)));
                let i = (((hb >> 32) * wb.len() as u64) >> 32) as usize;
                b = wb[i] as usize;
            }
            assert_eq!(s.get_bucket(h), b);
        }
    }

    #[test]
    fn anchorhash_default_capacity_is_a_power_of_two_at_least_twice_the_members() {
        assert_eq!(build(&[]).capacity(), 2);
        assert_eq!(build(&[1]).capacity(), 2);
        assert_eq!(build(&[1, 2, 3]).capacity(), 8);
        assert_eq!(with_capacity(100, &[1]).capacity(), 128);
        assert_eq!(with_capacity(2, &[1, 2, 3]).capacity(), 4);
    }

    #[test]
    fn anchorhash_empty_group_selects_none() {
        let mut s = build(&[]);
        assert_eq!(s.select(0), None);
        s.set_members(&group(&[4]), 0).unwrap();
        for h in population(1000, 3) {
            assert_eq!(s.select(h), Some(4));
        }
        s.set_members(&[], 0).unwrap();
        assert_eq!(s.select(0), None);
        s.set_members(&group(&[5, 6]), 0).unwrap();
        check_invariants(&s);
        assert!(population(1000, 3).iter().all(|&h| s.select(h).is_some()));
    }

    #[test]
    fn anchorhash_rejects_weights_without_changing_state() {
        let mut s = build(&[1, 2]);
        assert!(matches!(
            s.set_members(&[Member::weighted(1, 3)], 0),
            Err(SelectError::WeightsUnsupported(Algorithm::AnchorHash))
        ));
        check_invariants(&s);
    }

    fn assert_balanced(s: &AnchorHash, tolerance: f64) {
        let hashes = population(200_000, 4);
        let mut counts: HashMap<MemberId, usize> = HashMap::new();
        for &h in &hashes {
            *counts.entry(s.select(h).unwrap()).or_default() += 1;
        }
        let expect = hashes.len() as f64 / s.members.len() as f64;
        for m in &s.members {
            let c = counts.get(&m.id).copied().unwrap_or(0) as f64;
            assert!(
                (c / expect - 1.0).abs() < tolerance,
                "member {}: {c} vs {expect}",
                m.id
            );
        }
    }

    #[test]
    fn anchorhash_balance_gives_each_working_bucket_one_over_n() {
        assert_balanced(&build(&(0..10).collect::<Vec<_>>()), 0.04);
        // Sparse anchor: most buckets removed at init.
        assert_balanced(&with_capacity(1024, &(0..10).collect::<Vec<_>>()), 0.04);
    }

    #[test]
    fn anchorhash_balance_holds_after_random_removals() {
        let mut rng = Pcg64::seed_from_u64(5);
        let mut ids: Vec<MemberId> = (0..64).collect();
        let mut s = build(&ids);
        while ids.len() > 12 {
            ids.remove(rng.gen_range(0..ids.len()));
            s.set_members(&group(&ids), 0).unwrap();
        }
        check_invariants(&s);
        assert_balanced(&s, 0.06);
    }

    #[test]
    fn anchorhash_removal_moves_only_the_removed_members_flows() {
        let hashes = population(20_000, 6);
        let mut s = build(&[1, 2, 3, 4, 5, 6]);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 3, 5, 6]), 0).unwrap();
        let after = mapping(&s, &hashes);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b != a, *b == Some(4));
            moved += usize::from(b != a);
        }
        assert!((moved as f64 / 20_000.0 - 1.0 / 6.0).abs() < 0.02);
        // ...and they spread evenly over the remaining five.
        let mut to: HashMap<MemberId, usize> = HashMap::new();
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                *to.entry(a.unwrap()).or_default() += 1;
            }
        }
        for c in to.values() {
            assert!((*c as f64 / moved as f64 - 0.2).abs() < 0.04);
        }
    }

    #[test]
    fn anchorhash_addition_moves_flows_only_onto_the_new_member() {
        let hashes = population(20_000, 7);
        let mut s = build(&[1, 2, 3, 4]);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 3, 4, 10]), 0).unwrap();
        let after = mapping(&s, &hashes);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*a, Some(10));
                moved += 1;
            }
        }
        assert!((moved as f64 / 20_000.0 - 0.2).abs() < 0.02);
    }

    #[test]
    fn anchorhash_flap_restores_the_original_mapping() {
        let hashes = population(20_000, 8);
        let ids = [1, 2, 3, 4, 5, 6, 7];
        let mut s = build(&ids);
        let before_state = (s.anchor.clone(), s.working.clone(), s.last.clone());
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 4, 5, 6, 7]), 0).unwrap();
        s.set_members(&group(&[1, 2, 4, 6, 7]), 0).unwrap();
        // LIFO: 5 returns, then 3.
        s.set_members(&group(&[1, 2, 4, 5, 6, 7]), 0).unwrap();
        s.set_members(&group(&ids), 0).unwrap();
        assert_eq!(mapping(&s, &hashes), before);
        assert_eq!(
            (s.anchor.clone(), s.working.clone(), s.last.clone()),
            before_state
        );
        check_invariants(&s);
    }

    #[test]
    fn anchorhash_reordering_the_group_moves_nothing() {
        let hashes = population(5_000, 9);
        let mut s = build(&[1, 2, 3, 4]);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[3, 1, 4, 2]), 0).unwrap();
        assert_eq!(mapping(&s, &hashes), before);
    }

    #[test]
    fn anchorhash_doubling_keeps_buckets_and_about_half_the_flows() {
        let hashes = population(20_000, 10);
        let mut s = with_capacity(4, &[1, 2, 3, 4]);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 3, 4, 5]), 0).unwrap();
        assert_eq!(s.capacity(), 8);
        check_invariants(&s);
        for (i, id) in [1, 2, 3, 4, 5].into_iter().enumerate() {
            assert_eq!(s.bucket_member[i], id);
        }
        let after = mapping(&s, &hashes);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let frac = moved as f64 / hashes.len() as f64;
        assert!(frac < 0.6, "doubling moved {frac}");
    }

    #[test]
    fn anchorhash_growth_from_empty_to_many_members_keeps_invariants() {
        let mut s = build(&[]);
        let mut ids = Vec::new();
        for id in 0..300 {
            ids.push(id);
            s.set_members(&group(&ids), 0).unwrap();
            check_invariants(&s);
        }
        assert_eq!(s.capacity(), 512);
        assert_balanced(&s, 0.2);
    }

    /// 50 random steps of removals and additions over a group of up to 64,
    /// checked against 20k fixed hashes: a flow moves only if its member
    /// left or it lands on a joining member.
    #[test]
    fn anchorhash_random_changes_keep_minimal_disruption_at_every_step() {
        let ids: Vec<MemberId> = (0..20).collect();
        let mut s = with_capacity(64, &ids);
        random_changes_move_only(&mut s, 11, |_, s| {
            assert_eq!(s.capacity(), 64);
            check_invariants(s);
            HashSet::new()
        });
    }
}
