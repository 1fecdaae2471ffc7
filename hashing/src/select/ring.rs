//! Consistent-hash ring with virtual nodes (Karger et al.; ketama-style): each
//! member owns `ring_vnodes x weight` points placed only by (seed, member id,
//! vnode index), and a flow goes to the first point at or after its hash,
//! so removing a member moves only its flows and adding one moves flows only
//! onto it; shares are proportional to weight up to the ~1/sqrt(points)
//! spread of random placement.

use std::fmt;

use super::{
    mix64, validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector,
    SelectorParams,
};

/// Most points a ring may hold (8 bytes each plus a 4-byte index entry).
const MAX_POINTS: u64 = 1 << 22;

/// Most bits of the hash used to index the point array directly.
const MAX_INDEX_BITS: u32 = 20;

/// A built ring: sorted points, their index, and the index shift.
type Layout = (Vec<(u32, MemberId)>, Vec<u32>, u32);

/// Consistent-hash ring. Stateless across changes: the ring is rebuilt from
/// the member list, and since a point's position depends only on the seed,
/// the member id and the vnode index, a rebuild moves exactly the flows
/// whose nearest point was added or removed.
#[derive(Clone)]
pub struct Ring {
    members: Vec<Member>,
    vnodes: u32,
    seed_mix: u64,
    /// `(point, owner)`, sorted; equal points are ordered by owner id so the
    /// order never depends on the group order.
    points: Vec<(u32, MemberId)>,
    /// `index[i]` is the first position in `points` whose point's top
    /// `32 - shift` bits are >= `i`; `2^(32 - shift) + 1` entries. Narrows the
    /// search for a hash to the points sharing its top bits (~1 on average).
    index: Vec<u32>,
    shift: u32,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("members", &self.members)
            .field("vnodes", &self.vnodes)
            .field("points", &self.points.len())
            .field("index_bits", &(32 - self.shift))
            .finish()
    }
}

/// A member's `vnode`-th point on the ring.
#[inline]
fn ring_point(seed_mix: u64, id: MemberId, vnode: u32) -> u32 {
    let x = seed_mix ^ ((u64::from(id) << 32) | u64::from(vnode));
    (mix64(x) >> 32) as u32
}

impl Ring {
    pub fn new(
        params: &SelectorParams,
        members: &[Member],
        _now: Nanos,
    ) -> Result<Self, SelectError> {
        if params.ring_vnodes == 0 {
            return Err(SelectError::InvalidParam(
                "ring_vnodes must be at least 1".to_string(),
            ));
        }
        let mut ring = Ring {
            members: Vec::new(),
            vnodes: params.ring_vnodes,
            seed_mix: mix64(params.seed),
            points: Vec::new(),
            index: Vec::new(),
            shift: 31,
        };
        ring.set_members(members, 0)?;
        Ok(ring)
    }

    /// Number of points on the ring (`ring_vnodes x` total weight).
    pub fn points(&self) -> usize {
        self.points.len()
    }

    fn build(&self, members: &[Member]) -> Result<Layout, SelectError> {
        let total_weight: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
        let total = total_weight.saturating_mul(u64::from(self.vnodes));
        if total > MAX_POINTS {
            return Err(SelectError::InvalidParam(format!(
                "ring would need {total} points (ring_vnodes {} x total weight {total_weight}); at most {MAX_POINTS}",
                self.vnodes
            )));
        }
        let mut points = Vec::with_capacity(total as usize);
        for m in members {
            // total <= MAX_POINTS, so each member's count fits in u32.
            let count = m.weight.saturating_mul(self.vnodes);
            points.extend((0..count).map(|v| (ring_point(self.seed_mix, m.id, v), m.id)));
        }
        points.sort_unstable();

        let bits = (usize::BITS - 1)
            .saturating_sub(points.len().max(1).leading_zeros())
            .clamp(1, MAX_INDEX_BITS);
        let shift = 32 - bits;
        let slots = 1usize << bits;
        let mut index = Vec::with_capacity(slots + 1);
        let mut pos = 0usize;
        for i in 0..=slots {
            while pos < points.len() && ((points[pos].0 >> shift) as usize) < i {
                pos += 1;
            }
            index.push(pos as u32);
        }
        Ok((points, index, shift))
    }
}

impl Selector for Ring {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Ring
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        let i = (hash >> self.shift) as usize;
        let lo = *self.index.get(i)? as usize;
        let hi = *self.index.get(i + 1)? as usize;
        let within = self.points.get(lo..hi)?.partition_point(|&(p, _)| p < hash);
        // Past the last point: wrap around to the first.
        let &(_, id) = self
            .points
            .get(lo + within)
            .or_else(|| self.points.first())?;
        Some(id)
    }

    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        validate_members(Algorithm::Ring, members)?;
        let (points, index, shift) = self.build(members)?;
        self.members = members.to_vec();
        self.points = points;
        self.index = index;
        self.shift = shift;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{group, mapping, population, random_changes_move_only};
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn build(members: &[Member]) -> Ring {
        Ring::new(&SelectorParams::default(), members, 0).unwrap()
    }

    /// The definition: first point >= hash, wrapping, by plain binary search.
    fn reference(s: &Ring, hash: u32) -> Option<MemberId> {
        let i = s.points.partition_point(|&(p, _)| p < hash);
        s.points.get(i).or(s.points.first()).map(|&(_, id)| id)
    }

    #[test]
    fn ring_lookup_matches_the_first_point_at_or_after_the_hash() {
        for n in [1u32, 2, 7, 64] {
            let ids: Vec<MemberId> = (0..n).collect();
            let s = build(&group(&ids));
            assert_eq!(s.points(), 160 * n as usize);
            let mut probes = population(20_000, 1);
            // Edges: exactly on points, just after, and the ends.
            probes.extend(s.points.iter().flat_map(|&(p, _)| [p, p.wrapping_add(1)]));
            probes.extend([0, 1, u32::MAX, u32::MAX - 1]);
            for h in probes {
                assert_eq!(s.select(h), reference(&s, h), "n {n} hash {h}");
            }
        }
    }

    #[test]
    fn ring_hash_past_the_last_point_wraps_to_the_first() {
        let s = build(&group(&[1, 2, 3]));
        let (last, _) = *s.points.last().unwrap();
        let (_, first_owner) = s.points[0];
        if last < u32::MAX {
            assert_eq!(s.select(last + 1), Some(first_owner));
        }
        assert_eq!(s.select(u32::MAX), reference(&s, u32::MAX));
    }

    #[test]
    fn ring_empty_group_selects_none() {
        let mut s = build(&[]);
        assert_eq!(s.select(0), None);
        assert_eq!(s.select(u32::MAX), None);
        s.set_members(&group(&[9]), 0).unwrap();
        assert_eq!(s.select(12345), Some(9));
        s.set_members(&[], 0).unwrap();
        assert_eq!(s.select(12345), None);
    }

    #[test]
    fn ring_rejects_zero_vnodes_and_oversized_rings() {
        let params = SelectorParams {
            ring_vnodes: 0,
            ..SelectorParams::default()
        };
        assert!(matches!(
            Ring::new(&params, &group(&[1]), 0),
            Err(SelectError::InvalidParam(_))
        ));
        let mut s = build(&group(&[1, 2]));
        let before = mapping(&s, &population(1000, 2));
        assert!(matches!(
            s.set_members(&[Member::weighted(1, u32::MAX)], 0),
            Err(SelectError::InvalidParam(_))
        ));
        assert_eq!(mapping(&s, &population(1000, 2)), before);
    }

    #[test]
    fn ring_placement_depends_on_ids_not_group_order() {
        let hashes = population(10_000, 3);
        let a = build(&group(&[1, 2, 3, 4]));
        let b = build(&group(&[4, 2, 1, 3]));
        assert_eq!(mapping(&a, &hashes), mapping(&b, &hashes));
    }

    #[test]
    fn ring_seed_changes_placement() {
        let hashes = population(10_000, 4);
        let a = build(&group(&[1, 2, 3, 4]));
        let params = SelectorParams {
            seed: 77,
            ..SelectorParams::default()
        };
        let b = Ring::new(&params, &group(&[1, 2, 3, 4]), 0).unwrap();
        let same = mapping(&a, &hashes)
            .iter()
            .zip(mapping(&b, &hashes))
            .filter(|(x, y)| **x == *y)
            .count();
        assert!(same < 4_000, "{same} of 10000 unchanged under a new seed");
    }

    #[test]
    fn ring_balance_is_within_vnode_spread() {
        let ids: Vec<MemberId> = (0..16).collect();
        let s = build(&group(&ids));
        let hashes = population(200_000, 5);
        let mut counts: HashMap<MemberId, usize> = HashMap::new();
        for &h in &hashes {
            *counts.entry(s.select(h).unwrap()).or_default() += 1;
        }
        let expect = hashes.len() as f64 / ids.len() as f64;
        for id in &ids {
            let c = counts[id] as f64;
            // 160 points per member: standard deviation of a share ~8%.
            assert!(
                (c / expect - 1.0).abs() < 0.3,
                "member {id}: {c} vs {expect}"
            );
        }
    }

    #[test]
    fn ring_weights_give_proportional_share() {
        let members = [
            Member::weighted(1, 1),
            Member::weighted(2, 2),
            Member::weighted(3, 4),
            Member::weighted(4, 1),
        ];
        let s = build(&members);
        assert_eq!(s.points(), 160 * 8);
        let hashes = population(200_000, 6);
        let mut counts: HashMap<MemberId, usize> = HashMap::new();
        for &h in &hashes {
            *counts.entry(s.select(h).unwrap()).or_default() += 1;
        }
        for m in &members {
            let expect = hashes.len() as f64 * f64::from(m.weight) / 8.0;
            let c = counts[&m.id] as f64;
            assert!(
                (c / expect - 1.0).abs() < 0.25,
                "member {}: {c} vs {expect}",
                m.id
            );
        }
    }

    #[test]
    fn ring_removal_moves_only_the_removed_members_flows() {
        let hashes = population(20_000, 7);
        let mut s = build(&group(&[1, 2, 3, 4, 5]));
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 4, 5]), 0).unwrap();
        let after = mapping(&s, &hashes);
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*b, Some(3));
            } else {
                assert_ne!(*b, Some(3));
            }
        }
    }

    #[test]
    fn ring_addition_moves_flows_only_onto_the_new_member() {
        let hashes = population(20_000, 8);
        let mut s = build(&group(&[1, 2, 3, 4]));
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 2, 3, 4, 5]), 0).unwrap();
        let after = mapping(&s, &hashes);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*a, Some(5));
                moved += 1;
            }
        }
        let frac = moved as f64 / hashes.len() as f64;
        assert!((frac - 0.2).abs() < 0.06, "moved {frac}");
    }

    #[test]
    fn ring_weight_increase_moves_flows_only_onto_that_member() {
        let hashes = population(20_000, 9);
        let mut s = build(&group(&[1, 2, 3]));
        let before = mapping(&s, &hashes);
        s.set_members(&[Member::new(1), Member::weighted(2, 3), Member::new(3)], 0)
            .unwrap();
        let after = mapping(&s, &hashes);
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*a, Some(2));
            }
        }
    }

    #[test]
    fn ring_flap_restores_the_original_mapping() {
        let hashes = population(20_000, 10);
        let ids = group(&[1, 2, 3, 4]);
        let mut s = build(&ids);
        let before = mapping(&s, &hashes);
        s.set_members(&group(&[1, 3, 4]), 0).unwrap();
        s.set_members(&group(&[1, 3]), 0).unwrap();
        s.set_members(&ids, 0).unwrap();
        assert_eq!(mapping(&s, &hashes), before);
    }

    /// 50 random steps of removals and additions over a group of up to 64,
    /// checked against 20k fixed hashes: a flow moves only if its member
    /// left or it lands on a joining member.
    #[test]
    fn ring_random_changes_keep_minimal_disruption_at_every_step() {
        let ids: Vec<MemberId> = (0..20).collect();
        let mut s = build(&group(&ids));
        random_changes_move_only(&mut s, 11, |_, _| HashSet::new());
    }
}
