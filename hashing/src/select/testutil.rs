//! Helpers shared by the selectors' unit tests: groups, fixed hash
//! populations, mappings, and a random walk of membership changes that checks
//! minimal disruption at every step.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use super::{Member, MemberId, Selector};

/// Members with these ids, weight 1, in this order.
pub fn group(ids: &[MemberId]) -> Vec<Member> {
    ids.iter().map(|&id| Member::new(id)).collect()
}

/// `n` uniform 32-bit hashes, the same for a seed.
pub fn population(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..n).map(|_| rng.gen()).collect()
}

/// The member each hash maps to.
pub fn mapping(s: &impl Selector, hashes: &[u32]) -> Vec<Option<MemberId>> {
    hashes.iter().map(|&h| s.select(h)).collect()
}

/// Drives `s` (built over ids 0..20) through 50 random steps of one to three
/// removals or additions, over a group of up to 64 with ids below 100 that may
/// return, and checks against 20k fixed hashes that a flow moves only if its
/// member left or it lands on a member that joined. `check` sees the selector
/// before and after each step, asserts the algorithm's own invariants and
/// returns the members whose flows may also move (jump's relocated member).
pub fn random_changes_move_only<S: Selector + Clone>(
    s: &mut S,
    seed: u64,
    mut check: impl FnMut(&S, &S) -> HashSet<MemberId>,
) {
    let hashes = population(20_000, seed);
    let mut rng = Pcg64::seed_from_u64(seed + 1);
    let mut ids: Vec<MemberId> = s.members().iter().map(|m| m.id).collect();
    for step in 0..50 {
        let before = mapping(s, &hashes);
        let previous = s.clone();
        let mut removed = HashSet::new();
        let mut added = HashSet::new();
        for _ in 0..rng.gen_range(1..=3) {
            if ids.is_empty() || (ids.len() < 64 && rng.gen_bool(0.5)) {
                let id = loop {
                    let id = rng.gen_range(0..100);
                    if !ids.contains(&id) {
                        break id;
                    }
                };
                ids.insert(rng.gen_range(0..=ids.len()), id);
                if !removed.remove(&id) {
                    added.insert(id);
                }
            } else {
                let id = ids.remove(rng.gen_range(0..ids.len()));
                if !added.remove(&id) {
                    removed.insert(id);
                }
            }
        }
        s.set_members(&group(&ids), 0).unwrap();
        let movable = check(&previous, s);
        let after = mapping(s, &hashes);
        for (b, a) in before.iter().zip(&after) {
            if b == a {
                continue;
            }
            let from_ok = match b {
                Some(m) => removed.contains(m) || movable.contains(m),
                None => true,
            };
            let to_added = a.is_some_and(|m| added.contains(&m));
            assert!(from_ok || to_added, "step {step}: {b:?} -> {a:?}");
        }
    }
}
