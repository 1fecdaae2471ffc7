//! Rendezvous (highest-random-weight) hashing: every member scores every flow
//! and the best score wins, so removing a member moves only its own flows and
//! adding one moves flows only onto it; weighted by Schindelhauer & Resch's
//! logarithmic method. O(N) per lookup.

use super::{
    mix64, validate_members, Algorithm, Member, MemberId, Nanos, SelectError, Selector,
    SelectorParams,
};

/// 2^-53, to turn 53 random bits into a fraction.
const TWO_POW_MINUS_53: f64 = 1.0 / (1u64 << 53) as f64;

/// Highest random weight over all members.
///
/// Each member has a precomputed key `mix64(mix64(id) ^ seed)`. A flow's hash
/// is spread to 64 bits once (`k = mix64(hash)`), and member `i` scores
/// `x_i = mix64(k ^ key_i)`.
///
/// * All weights equal (in particular all 1): the member with the largest
///   `x_i` wins, ties to the lower index; integer work only.
/// * Otherwise (Schindelhauer & Resch, "Weighted distributed hash tables",
///   SPAA 2005; the "logarithmic method"): with `u_i = ((x_i >> 11) + 1) / 2^53`
///   in (0, 1], member `i`'s score is `-w_i / ln(u_i)`, and the highest
///   score wins. Member `i` then wins with probability exactly `w_i / W`. The
///   code minimises the reciprocal, `-ln(u_i) / w_i`, which orders the
///   members the same way without dividing by `ln(1) = 0`; ties go to the
///   lower index.
///
/// The winner among a set is still the winner among any subset that contains
/// it, so removing a member moves only the flows it had, and adding one moves
/// flows only onto the newcomer (exactly, not just on average).
#[derive(Clone, Debug)]
pub struct Rendezvous {
    members: Vec<Member>,
    seed: u64,
    /// Per-member key, group order.
    keys: Vec<u64>,
    /// Per-member `1 / weight`, group order (weighted path only).
    inv_weights: Vec<f64>,
    /// All weights are equal: integer scores.
    uniform: bool,
}

impl Rendezvous {
    pub fn new(
        params: &SelectorParams,
        members: &[Member],
        _now: Nanos,
    ) -> Result<Self, SelectError> {
        let mut s = Rendezvous {
            members: Vec::new(),
            seed: params.seed,
            keys: Vec::new(),
            inv_weights: Vec::new(),
            uniform: true,
        };
        s.rebuild(members)?;
        Ok(s)
    }

    fn rebuild(&mut self, members: &[Member]) -> Result<(), SelectError> {
        validate_members(Algorithm::Rendezvous, members)?;
        self.keys = members
            .iter()
            .map(|m| mix64(mix64(u64::from(m.id)) ^ self.seed))
            .collect();
        self.inv_weights = members.iter().map(|m| 1.0 / f64::from(m.weight)).collect();
        self.uniform = members.iter().all(|m| m.weight == members[0].weight);
        self.members = members.to_vec();
        Ok(())
    }

    #[inline]
    fn winner(&self, hash: u32) -> Option<usize> {
        if self.keys.is_empty() {
            return None;
        }
        let k = mix64(u64::from(hash));
        let mut best = 0;
        if self.uniform {
            let mut best_score = 0u64;
            for (i, &key) in self.keys.iter().enumerate() {
                let score = mix64(k ^ key);
                if i == 0 || score > best_score {
                    best = i;
                    best_score = score;
                }
            }
        } else {
            let mut best_cost = f64::INFINITY;
            for (i, (&key, &inv_w)) in self.keys.iter().zip(&self.inv_weights).enumerate() {
                let x = mix64(k ^ key);
                let u = ((x >> 11) + 1) as f64 * TWO_POW_MINUS_53;
                // -ln(u) / w: in [0, 37 / w]; never NaN or infinite.
                let cost = -u.ln() * inv_w;
                if i == 0 || cost < best_cost {
                    best = i;
                    best_cost = cost;
                }
            }
        }
        Some(best)
    }
}

impl Selector for Rendezvous {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Rendezvous
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        let i = self.winner(hash)?;
        self.members.get(i).map(|m| m.id)
    }

    fn set_members(&mut self, members: &[Member], _now: Nanos) -> Result<(), SelectError> {
        self.rebuild(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(m: &[Member], seed: u64) -> Rendezvous {
        Rendezvous::new(
            &SelectorParams {
                seed,
                ..SelectorParams::default()
            },
            m,
            0,
        )
        .unwrap()
    }

    /// A spread of 200 000 hashes.
    fn hashes() -> impl Iterator<Item = u32> {
        (0..200_000u32).map(|i| i.wrapping_mul(0x9e37_79b1))
    }

    #[test]
    fn equal_members_share_evenly() {
        let m: Vec<_> = (0..8).map(Member::new).collect();
        let s = build(&m, 0);
        let mut counts = [0u32; 8];
        for h in hashes() {
            counts[s.select(h).unwrap() as usize] += 1;
        }
        for c in counts {
            assert!(
                (f64::from(c) / 200_000.0 - 0.125).abs() < 0.005,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn weighted_members_share_by_weight() {
        let m = [
            Member::weighted(0, 1),
            Member::weighted(1, 2),
            Member::weighted(2, 5),
        ];
        let s = build(&m, 7);
        let mut counts = [0u32; 3];
        for h in hashes() {
            counts[s.select(h).unwrap() as usize] += 1;
        }
        for (c, w) in counts.iter().zip([1.0, 2.0, 5.0]) {
            assert!(
                (f64::from(*c) / 200_000.0 - w / 8.0).abs() < 0.006,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn equal_weights_other_than_one_map_like_weight_one() {
        let ones: Vec<_> = (0..5).map(Member::new).collect();
        let twos: Vec<_> = (0..5).map(|i| Member::weighted(i, 2)).collect();
        let (a, b) = (build(&ones, 3), build(&twos, 3));
        assert!(hashes().all(|h| a.select(h) == b.select(h)));
    }

    #[test]
    fn removal_moves_only_the_removed_members_flows_also_weighted() {
        let m: Vec<_> = (0..6).map(|i| Member::weighted(i, 1 + i)).collect();
        let before = build(&m, 11);
        let mut rest = m.clone();
        rest.remove(2);
        let after = build(&rest, 11);
        for h in hashes() {
            let (x, y) = (before.select(h).unwrap(), after.select(h).unwrap());
            assert!(x == 2 || x == y, "hash {h}: {x} -> {y}");
        }
    }

    #[test]
    fn the_seed_changes_the_mapping() {
        let m: Vec<_> = (0..4).map(Member::new).collect();
        let (a, b) = (build(&m, 1), build(&m, 2));
        let differ = hashes().filter(|&h| a.select(h) != b.select(h)).count();
        assert!(differ > 200_000 / 2, "{differ}");
    }

    #[test]
    fn maximal_weights_and_empty_groups_are_fine() {
        let m = [Member::weighted(1, u32::MAX), Member::weighted(2, 1)];
        let s = build(&m, 0);
        assert!(hashes().take(1000).all(|h| s.select(h).is_some()));
        assert_eq!(build(&[], 0).select(5), None);
    }
}
