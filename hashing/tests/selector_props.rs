//! Property tests for every nexthop selector, written against the `Selector`
//! trait (plus the inspection APIs of the table-based ones): every flow maps to
//! a member, mappings are deterministic, a change of the group moves only what
//! each algorithm promises, weights are honoured and seeds matter.
//!
//! Flows are a fixed population of 20 000 hashes from a seeded PCG, except
//! where a table can be enumerated exactly (hashes `0..M` hit every Maglev entry,
//! every resilient bucket, every modulo slot exactly once).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use hashing::select::{
    Algorithm, AnySelector, HashThreshold, Maglev, Member, MemberId, Nanos, Resilient,
    ResilientParams, SelectError, Selector, SelectorParams,
};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const POPULATION: usize = 20_000;
const SECOND: Nanos = 1_000_000_000;

/// The fixed flow population.
fn hashes() -> &'static [u32] {
    static HASHES: OnceLock<Vec<u32>> = OnceLock::new();
    HASHES.get_or_init(|| {
        let mut rng = Pcg64::seed_from_u64(0x0ec3_9d5e_1ec7);
        (0..POPULATION).map(|_| rng.gen()).collect()
    })
}

/// Modest case counts, and no regression files written next to the tests.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Distinct member ids in a random group order.
fn ids(size: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<MemberId>> {
    prop::collection::btree_set(any::<u32>(), size)
        .prop_map(|s| s.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
}

/// A group with weights 1..=8.
fn weighted(size: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<Member>> {
    ids(size).prop_flat_map(|ids| {
        let n = ids.len();
        prop::collection::vec(1u32..=8, n).prop_map(move |w| {
            ids.iter()
                .zip(w)
                .map(|(&id, w)| Member::weighted(id, w))
                .collect::<Vec<_>>()
        })
    })
}

fn unweighted(ids: &[MemberId]) -> Vec<Member> {
    ids.iter().map(|&id| Member::new(id)).collect()
}

/// The weighted group where the algorithm supports weights, else all 1.
fn for_algorithm(algorithm: Algorithm, members: &[Member]) -> Vec<Member> {
    if algorithm.supports_weights() {
        members.to_vec()
    } else {
        members.iter().map(|m| Member::new(m.id)).collect()
    }
}

fn params(seed: u64) -> SelectorParams {
    SelectorParams {
        seed,
        ..SelectorParams::default()
    }
}

fn build(algorithm: Algorithm, params: &SelectorParams, members: &[Member]) -> AnySelector {
    AnySelector::new(algorithm, params, members, 0)
        .unwrap_or_else(|e| panic!("{algorithm}: building {members:?}: {e}"))
}

fn mapping(s: &impl Selector) -> Vec<Option<MemberId>> {
    hashes().iter().map(|&h| s.select(h)).collect()
}

/// Mapping of the hashes `0..n` (for enumerating tables exactly).
fn mapping_upto(s: &impl Selector, n: u32) -> Vec<Option<MemberId>> {
    (0..n).map(|h| s.select(h)).collect()
}

/// What a change did to a mapping.
#[derive(Debug, Default)]
struct Moves {
    /// Flows whose member changed.
    moved: usize,
    /// Moved flows whose old member is still in the group, by old member.
    collateral: BTreeMap<MemberId, usize>,
    /// New members of the moved flows.
    destinations: BTreeSet<MemberId>,
}

impl Moves {
    fn collateral(&self) -> usize {
        self.collateral.values().sum()
    }
}

fn moves(before: &[Option<MemberId>], after: &[Option<MemberId>], group: &[Member]) -> Moves {
    let stayed: BTreeSet<MemberId> = group.iter().map(|m| m.id).collect();
    let mut m = Moves::default();
    for (a, b) in before.iter().zip(after) {
        if a != b {
            m.moved += 1;
            if let Some(b) = b {
                m.destinations.insert(*b);
            }
            if let Some(a) = a.filter(|a| stayed.contains(a)) {
                *m.collateral.entry(a).or_default() += 1;
            }
        }
    }
    m
}

/// Build on `before`, publish a clone, change the clone to `after` at `now`:
/// the mappings before and after, over the population (or `0..upto`).
fn change(
    algorithm: Algorithm,
    params: &SelectorParams,
    before: &[Member],
    after: &[Member],
    now: Nanos,
    upto: Option<u32>,
) -> (Vec<Option<MemberId>>, Vec<Option<MemberId>>) {
    let published = build(algorithm, params, before);
    let mut next = published.clone();
    next.set_members(after, now)
        .unwrap_or_else(|e| panic!("{algorithm}: set_members {after:?}: {e}"));
    let map = |s: &AnySelector| match upto {
        Some(n) => mapping_upto(s, n),
        None => mapping(s),
    };
    (map(&published), map(&next))
}

/// Six standard deviations of a share `p` estimated from `n` samples, plus slack.
fn statistical_tolerance(p: f64, n: usize) -> f64 {
    6.0 * (p * (1.0 - p) / n as f64).sqrt() + 0.002
}

fn shares(map: &[Option<MemberId>]) -> BTreeMap<MemberId, f64> {
    let mut counts = BTreeMap::new();
    for id in map.iter().flatten() {
        *counts.entry(*id).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .map(|(id, c)| (id, c as f64 / map.len() as f64))
        .collect()
}

fn total_weight(members: &[Member]) -> f64 {
    members.iter().map(|m| f64::from(m.weight)).sum()
}

// ---------------------------------------------------------------------------
// Every algorithm
// ---------------------------------------------------------------------------

#[test]
fn every_algorithm_selects_nothing_for_an_empty_group() {
    for algorithm in Algorithm::ALL {
        let mut s = build(algorithm, &params(0), &[]);
        assert!(s.members().is_empty(), "{algorithm}");
        assert!(
            hashes().iter().all(|&h| s.select(h).is_none()),
            "{algorithm}"
        );
        s.set_members(&unweighted(&[3, 1, 2]), SECOND).unwrap();
        assert!(
            hashes().iter().all(|&h| s.select(h).is_some()),
            "{algorithm}"
        );
        s.set_members(&[], 2 * SECOND).unwrap();
        assert!(
            hashes().iter().all(|&h| s.select(h).is_none()),
            "{algorithm}"
        );
        s.set_members(&unweighted(&[9]), 3 * SECOND).unwrap();
        assert!(
            hashes().iter().all(|&h| s.select(h) == Some(9)),
            "{algorithm}"
        );
    }
}

#[test]
fn algorithms_without_weight_support_reject_weights() {
    let m = [Member::new(1), Member::weighted(2, 2)];
    for algorithm in Algorithm::ALL {
        let got = AnySelector::new(algorithm, &params(0), &m, 0);
        if algorithm.supports_weights() {
            assert!(got.is_ok(), "{algorithm}: {got:?}");
        } else {
            assert_eq!(got.unwrap_err(), SelectError::WeightsUnsupported(algorithm));
        }
    }
}

#[test]
fn every_algorithm_rejects_duplicate_and_zero_weight_members() {
    for algorithm in Algorithm::ALL {
        let dup = [Member::new(4), Member::new(4)];
        let e = AnySelector::new(algorithm, &params(0), &dup, 0).unwrap_err();
        assert_eq!(e, SelectError::DuplicateMember(4), "{algorithm}");
        let zero = [Member::weighted(4, 0)];
        let e = AnySelector::new(algorithm, &params(0), &zero, 0).unwrap_err();
        assert_eq!(e, SelectError::ZeroWeight(4), "{algorithm}");
        let mut s = build(algorithm, &params(0), &unweighted(&[1, 2]));
        assert!(s.set_members(&dup, SECOND).is_err(), "{algorithm}");
        assert!(
            s.set_members(&unweighted(&[1, 2, 3]), SECOND).is_ok(),
            "{algorithm}"
        );
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn every_algorithm_selects_a_member_of_a_nonempty_group(
        members in weighted(1..=64),
        seed in any::<u64>(),
    ) {
        let ids: BTreeSet<MemberId> = members.iter().map(|m| m.id).collect();
        for algorithm in Algorithm::ALL {
            let s = build(algorithm, &params(seed), &for_algorithm(algorithm, &members));
            prop_assert_eq!(s.algorithm(), algorithm);
            prop_assert_eq!(s.members().len(), members.len());
            for &h in hashes() {
                let got = s.select(h);
                prop_assert!(
                    got.is_some_and(|id| ids.contains(&id)),
                    "{}: hash {} -> {:?}", algorithm, h, got
                );
            }
        }
    }

    #[test]
    fn every_algorithm_maps_identically_for_identical_params_and_members_and_across_clones(
        members in weighted(1..=64),
        seed in any::<u64>(),
    ) {
        for algorithm in Algorithm::ALL {
            let m = for_algorithm(algorithm, &members);
            let a = build(algorithm, &params(seed), &m);
            let b = build(algorithm, &params(seed), &m);
            let first = mapping(&a);
            prop_assert!(first == mapping(&b), "{}: two builds differ", algorithm);
            prop_assert!(first == mapping(&a.clone()), "{}: clone differs", algorithm);
        }
    }

    #[test]
    fn setting_the_same_members_again_changes_nothing(
        pool in weighted(2..=64),
        keep in prop::collection::vec(any::<bool>(), 64),
        seed in any::<u64>(),
    ) {
        let before: Vec<Member> = pool.iter().zip(&keep).filter(|(_, k)| **k).map(|(m, _)| *m).collect();
        for algorithm in Algorithm::ALL {
            let mut s = build(algorithm, &params(seed), &for_algorithm(algorithm, &before));
            let after = for_algorithm(algorithm, &pool);
            s.set_members(&after, SECOND).unwrap();
            let once = mapping(&s);
            s.set_members(&after, SECOND).unwrap();
            prop_assert!(once == mapping(&s), "{}: repeating set_members moved flows", algorithm);
        }
    }

    /// Modulo, hash-threshold, Maglev, rendezvous and the ring keep no state
    /// across changes: changing a built selector is the same as building anew.
    #[test]
    fn history_free_algorithms_after_set_members_equal_a_fresh_build(
        pool in weighted(1..=64),
        in_a in prop::collection::vec(any::<bool>(), 64),
        in_b in prop::collection::vec(any::<bool>(), 64),
        seed in any::<u64>(),
    ) {
        let pick = |mask: &[bool]| -> Vec<Member> {
            pool.iter().zip(mask).filter(|(_, k)| **k).map(|(m, _)| *m).collect()
        };
        let (a, b) = (pick(&in_a), pick(&in_b));
        for algorithm in [
            Algorithm::ModuloN,
            Algorithm::HashThreshold,
            Algorithm::Maglev,
            Algorithm::Rendezvous,
            Algorithm::Ring,
        ] {
            let mut changed = build(algorithm, &params(seed), &a);
            changed.set_members(&b, SECOND).unwrap();
            let fresh = build(algorithm, &params(seed), &b);
            prop_assert!(mapping(&changed) == mapping(&fresh), "{}", algorithm);
            prop_assert_eq!(changed.members(), &b[..]);
        }
    }

    /// Resilient, jump, DxHash and AnchorHash carry state across changes: after
    /// any change they map every flow to a member of the new group.
    #[test]
    fn stateful_algorithms_after_set_members_map_only_to_the_new_group(
        pool in ids(1..=64),
        in_a in prop::collection::vec(any::<bool>(), 64),
        in_b in prop::collection::vec(any::<bool>(), 64),
        seed in any::<u64>(),
    ) {
        let pick = |mask: &[bool]| -> Vec<Member> {
            pool.iter().zip(mask).filter(|(_, k)| **k).map(|(&id, _)| Member::new(id)).collect()
        };
        let (a, b) = (pick(&in_a), pick(&in_b));
        let ids: BTreeSet<MemberId> = b.iter().map(|m| m.id).collect();
        for algorithm in [Algorithm::Resilient, Algorithm::Jump, Algorithm::DxHash, Algorithm::AnchorHash] {
            let (_, after) = change(algorithm, &params(seed), &a, &b, SECOND, None);
            for got in &after {
                prop_assert!(
                    if b.is_empty() { got.is_none() } else { got.is_some_and(|id| ids.contains(&id)) },
                    "{}: {:?} not in {:?}", algorithm, got, b
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Removing one member
// ---------------------------------------------------------------------------

/// The group without member `k`.
fn without(members: &[Member], k: &Index) -> (Vec<Member>, MemberId) {
    let mut rest = members.to_vec();
    let gone = rest.remove(k.index(members.len()));
    (rest, gone.id)
}

/// Asserts that removing a member moved exactly the removed member's flows.
fn assert_zero_collateral(
    algorithm: Algorithm,
    params: &SelectorParams,
    members: &[Member],
    k: &Index,
) -> Result<(), TestCaseError> {
    let (rest, gone) = without(members, k);
    let (before, after) = change(algorithm, params, members, &rest, SECOND, None);
    let m = moves(&before, &after, &rest);
    prop_assert_eq!(
        m.collateral(),
        0,
        "{}: removing {} moved {:?}",
        algorithm,
        gone,
        m.collateral
    );
    let owned = before.iter().filter(|b| **b == Some(gone)).count();
    prop_assert_eq!(
        m.moved,
        owned,
        "{}: not all of {}'s flows moved",
        algorithm,
        gone
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    /// Removal at a time when every bucket is still busy (idle timer 120 s):
    /// only the removed member's (orphaned) buckets move.
    #[test]
    fn resilient_removal_moves_only_the_removed_members_flows(
        members in weighted(2..=64),
        k in any::<Index>(),
        buckets in prop_oneof![Just(128u32), 1u32..=65_535],
    ) {
        let mut p = params(0);
        p.resilient.buckets = buckets;
        assert_zero_collateral(Algorithm::Resilient, &p, &members, &k)?;
    }

    #[test]
    fn rendezvous_removal_moves_only_the_removed_members_flows(
        members in weighted(2..=64),
        k in any::<Index>(),
        seed in any::<u64>(),
    ) {
        assert_zero_collateral(Algorithm::Rendezvous, &params(seed), &members, &k)?;
    }

    #[test]
    fn ring_removal_moves_only_the_removed_members_flows(
        members in weighted(2..=64),
        k in any::<Index>(),
        seed in any::<u64>(),
    ) {
        assert_zero_collateral(Algorithm::Ring, &params(seed), &members, &k)?;
    }

    #[test]
    fn dxhash_removal_moves_only_the_removed_members_flows(
        ids in ids(2..=64),
        k in any::<Index>(),
        seed in any::<u64>(),
    ) {
        assert_zero_collateral(Algorithm::DxHash, &params(seed), &unweighted(&ids), &k)?;
    }

    #[test]
    fn anchorhash_removal_moves_only_the_removed_members_flows(
        ids in ids(2..=64),
        k in any::<Index>(),
        seed in any::<u64>(),
    ) {
        assert_zero_collateral(Algorithm::AnchorHash, &params(seed), &unweighted(&ids), &k)?;
    }

    /// Jump moves the last slot's member into the freed slot: besides the
    /// removed member's flows, only flows of that one member move, it is the
    /// one that inherits the removed member's flows, and removing the member
    /// of the last slot moves nothing else.
    #[test]
    fn jump_removal_collateral_comes_only_from_the_member_moved_into_the_freed_slot(
        ids in ids(2..=64),
        k in any::<Index>(),
    ) {
        let members = unweighted(&ids);
        let (rest, gone) = without(&members, &k);
        let (before, after) = change(Algorithm::Jump, &params(0), &members, &rest, SECOND, None);
        let m = moves(&before, &after, &rest);
        prop_assert!(m.collateral.len() <= 1, "collateral from several members: {:?}", m.collateral);
        let last = members.last().unwrap().id;
        if gone == last {
            prop_assert_eq!(m.collateral(), 0);
        }
        if let Some((&heir, &count)) = m.collateral.iter().next() {
            prop_assert_eq!(heir, last, "collateral from a member other than the last slot's");
            let held = before.iter().filter(|b| **b == Some(heir)).count();
            prop_assert!(count <= held);
            for (b, a) in before.iter().zip(&after) {
                if *b == Some(gone) {
                    prop_assert_eq!(*a, Some(heir), "removed member's flows go to the heir");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Maglev keeps no state, so removal can move other members' entries too;
    /// measured exactly over all M = 65537 entries, the collateral stays
    /// within the bound maglev.rs documents for the group
    /// (`Maglev::REMOVAL_COLLATERAL_BOUND`, plus 2/N when two members'
    /// permutations are related).
    #[test]
    fn maglev_removal_collateral_is_within_the_documented_bound(
        ids in ids(2..=64),
        k in any::<Index>(),
        seed in any::<u64>(),
    ) {
        let members = unweighted(&ids);
        let p = params(seed);
        let bound = Maglev::new(&p, &members, 0).unwrap().removal_collateral_bound();
        let (rest, gone) = without(&members, &k);
        let (before, after) = change(Algorithm::Maglev, &p, &members, &rest, SECOND, Some(p.maglev_table_size));
        let m = moves(&before, &after, &rest);
        let fraction = m.collateral() as f64 / f64::from(p.maglev_table_size);
        prop_assert!(
            fraction <= bound,
            "removing {} of {}: collateral {} > bound {}", gone, members.len(), fraction, bound
        );
        // Every entry of the removed member moved, to a remaining member.
        prop_assert!(before.iter().zip(&after).all(|(b, a)| *b != Some(gone) || (a.is_some() && *a != Some(gone))));
    }
}

// ---------------------------------------------------------------------------
// Adding one member
// ---------------------------------------------------------------------------

/// The group with `newcomer` inserted at position `at`.
fn with(members: &[Member], newcomer: Member, at: &Index) -> Vec<Member> {
    let mut more = members.to_vec();
    more.insert(at.index(members.len() + 1), newcomer);
    more
}

/// Splits `ids` (n + 1 of them) into a group of n and a newcomer.
fn group_and_newcomer(ids: &[MemberId]) -> (Vec<Member>, Member) {
    let (last, rest) = ids.split_last().unwrap();
    (unweighted(rest), Member::new(*last))
}

/// Asserts that adding a member moved flows only onto it.
fn assert_only_onto_newcomer(
    algorithm: Algorithm,
    params: &SelectorParams,
    members: &[Member],
    newcomer: Member,
    at: &Index,
) -> Result<(), TestCaseError> {
    let more = with(members, newcomer, at);
    let (before, after) = change(algorithm, params, members, &more, SECOND, None);
    for (b, a) in before.iter().zip(&after) {
        prop_assert!(
            b == a || *a == Some(newcomer.id),
            "{}: a flow moved from {:?} to {:?}",
            algorithm,
            b,
            a
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    /// With at least N(N+1) buckets no existing member ends up underweight, so
    /// once every bucket is idle exactly the newcomer's wanted buckets move
    /// (at most ceil(B / (N + 1))), all onto it.
    #[test]
    fn resilient_addition_with_idle_buckets_moves_at_most_the_newcomers_fair_share(
        (ids, buckets) in ids(2..=64).prop_flat_map(|ids| {
            let n = ids.len() as u32 - 1;
            (Just(ids), (n * (n + 1)).max(1)..=65_535u32)
        }),
        at in any::<Index>(),
    ) {
        let (members, newcomer) = group_and_newcomer(&ids);
        let mut p = params(0);
        p.resilient.buckets = buckets;
        let more = with(&members, newcomer, &at);
        // Every bucket was last used at 0: idle when the change comes at 120 s.
        let (before, after) = change(Algorithm::Resilient, &p, &members, &more, p.resilient.idle_timer, Some(buckets));
        let m = moves(&before, &after, &more);
        let n = members.len() as u32;
        prop_assert!(m.moved as u32 <= buckets.div_ceil(n + 1), "{} buckets moved", m.moved);
        prop_assert!(m.destinations.iter().all(|&d| d == newcomer.id), "{:?}", m.destinations);
    }

    /// For any bucket count, once every bucket is idle the group balances
    /// with the fewest migrations: the sum of the underweight deficits.
    #[test]
    fn resilient_addition_with_idle_buckets_moves_the_fewest_buckets_that_balance(
        members in weighted(1..=64),
        newcomer_weight in 1u32..=8,
        at in any::<Index>(),
        buckets in prop_oneof![Just(128u32), 1u32..=65_535],
    ) {
        let newcomer = Member::weighted(
            (0u32..).find(|id| members.iter().all(|m| m.id != *id)).unwrap(),
            newcomer_weight,
        );
        let mut p = params(0);
        p.resilient.buckets = buckets;
        let before = Resilient::new(&p, &members, 0).unwrap();
        let mut after = before.clone();
        let more = with(&members, newcomer, &at);
        after.set_members(&more, p.resilient.idle_timer).unwrap();
        let had: BTreeMap<MemberId, u32> = members.iter().map(|m| m.id).zip(before.buckets_per_member().iter().copied()).collect();
        let deficit: u32 = more
            .iter()
            .zip(after.wanted_buckets())
            .map(|(m, &w)| w.saturating_sub(had.get(&m.id).copied().unwrap_or(0)))
            .sum();
        let moved = (0..buckets as usize).filter(|&b| before.bucket_owner(b) != after.bucket_owner(b)).count();
        prop_assert_eq!(moved as u32, deficit);
        prop_assert!(after.is_balanced());
        prop_assert_eq!(after.buckets_per_member(), after.wanted_buckets());
        prop_assert_eq!(after.upkeep(10 * p.resilient.idle_timer), None);
    }

    #[test]
    fn jump_addition_moves_about_one_over_n_plus_one_all_onto_the_newcomer(
        ids in ids(2..=64),
        at in any::<Index>(),
    ) {
        let (members, newcomer) = group_and_newcomer(&ids);
        let more = with(&members, newcomer, &at);
        let (before, after) = change(Algorithm::Jump, &params(0), &members, &more, SECOND, None);
        let m = moves(&before, &after, &more);
        let p = 1.0 / more.len() as f64;
        let fraction = m.moved as f64 / POPULATION as f64;
        prop_assert!((fraction - p).abs() <= statistical_tolerance(p, POPULATION), "moved {} expected {}", fraction, p);
        prop_assert!(m.destinations.iter().all(|&d| d == newcomer.id), "{:?}", m.destinations);
    }

    #[test]
    fn rendezvous_addition_moves_flows_only_onto_the_new_member(
        members in weighted(1..=63),
        weight in 1u32..=8,
        at in any::<Index>(),
        seed in any::<u64>(),
    ) {
        let id = (0u32..).find(|id| members.iter().all(|m| m.id != *id)).unwrap();
        assert_only_onto_newcomer(Algorithm::Rendezvous, &params(seed), &members, Member::weighted(id, weight), &at)?;
    }

    #[test]
    fn ring_addition_moves_flows_only_onto_the_new_member(
        members in weighted(1..=63),
        weight in 1u32..=8,
        at in any::<Index>(),
        seed in any::<u64>(),
    ) {
        let id = (0u32..).find(|id| members.iter().all(|m| m.id != *id)).unwrap();
        assert_only_onto_newcomer(Algorithm::Ring, &params(seed), &members, Member::weighted(id, weight), &at)?;
    }

    #[test]
    fn dxhash_addition_moves_flows_only_onto_the_new_member(
        ids in ids(2..=64),
        at in any::<Index>(),
        seed in any::<u64>(),
    ) {
        let (members, newcomer) = group_and_newcomer(&ids);
        assert_only_onto_newcomer(Algorithm::DxHash, &params(seed), &members, newcomer, &at)?;
    }

    #[test]
    fn anchorhash_addition_moves_flows_only_onto_the_new_member(
        ids in ids(2..=64),
        at in any::<Index>(),
        seed in any::<u64>(),
    ) {
        let (members, newcomer) = group_and_newcomer(&ids);
        assert_only_onto_newcomer(Algorithm::AnchorHash, &params(seed), &members, newcomer, &at)?;
    }
}

// ---------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn resilient_weights_are_honoured_within_one_bucket(
        members in weighted(2..=16),
        buckets in prop_oneof![Just(128u32), 1u32..=65_535],
    ) {
        let p = SelectorParams {
            resilient: ResilientParams { buckets, ..ResilientParams::default() },
            ..SelectorParams::default()
        };
        let r = Resilient::new(&p, &members, 0).unwrap();
        let total = total_weight(&members);
        for (m, &count) in members.iter().zip(r.buckets_per_member()) {
            let exact = f64::from(buckets) * f64::from(m.weight) / total;
            prop_assert!((f64::from(count) - exact).abs() < 1.0, "{:?}: {} buckets, {} exact", m, count, exact);
        }
        // The counts are what select sees: hashes 0..B hit each bucket once.
        let seen = shares(&mapping_upto(&r, buckets));
        for (m, &count) in members.iter().zip(r.buckets_per_member()) {
            let share = seen.get(&m.id).copied().unwrap_or(0.0);
            prop_assert!((share * f64::from(buckets) - f64::from(count)).abs() < 1e-6);
        }
    }

    #[test]
    fn hash_threshold_weights_are_exact_to_one_part_in_2_pow_31(
        members in weighted(2..=16),
    ) {
        let s = HashThreshold::new(&SelectorParams::default(), &members, 0).unwrap();
        let total = total_weight(&members);
        let mut start = 0u32;
        for (m, &end) in members.iter().zip(s.range_ends()) {
            let exact = f64::from(m.weight) * 2f64.powi(31) / total;
            prop_assert!((f64::from(end - start) - exact).abs() <= 1.0, "{:?}: {} vs {}", m, end - start, exact);
            // The ends are what select sees (31-bit hash = hash >> 1).
            prop_assert_eq!(s.select(start << 1), Some(m.id));
            prop_assert_eq!(s.select(((end - 1) << 1) | 1), Some(m.id));
            start = end;
        }
        prop_assert_eq!(start, 1u32 << 31);
    }

    #[test]
    fn modulo_weights_are_exact_on_slots(
        members in weighted(2..=16),
    ) {
        let s = build(Algorithm::ModuloN, &params(0), &members);
        let total: u32 = members.iter().map(|m| m.weight).sum();
        let mut counts = BTreeMap::new();
        for id in mapping_upto(&s, total).into_iter().flatten() {
            *counts.entry(id).or_insert(0u32) += 1;
        }
        for m in &members {
            prop_assert_eq!(counts.get(&m.id).copied().unwrap_or(0), m.weight);
        }
    }

    #[test]
    fn maglev_weights_are_within_one_percent_of_the_table_share(
        members in weighted(2..=16),
        seed in any::<u64>(),
    ) {
        let p = params(seed);
        let s = build(Algorithm::Maglev, &p, &members);
        let seen = shares(&mapping_upto(&s, p.maglev_table_size));
        let total = total_weight(&members);
        for m in &members {
            let share = seen.get(&m.id).copied().unwrap_or(0.0);
            let exact = f64::from(m.weight) / total;
            prop_assert!((share - exact).abs() <= 0.01, "{:?}: {} vs {}", m, share, exact);
        }
    }

    #[test]
    fn rendezvous_weights_are_honoured_within_statistical_tolerance(
        members in weighted(2..=16),
        seed in any::<u64>(),
    ) {
        let s = build(Algorithm::Rendezvous, &params(seed), &members);
        let seen = shares(&mapping(&s));
        let total = total_weight(&members);
        for m in &members {
            let share = seen.get(&m.id).copied().unwrap_or(0.0);
            let exact = f64::from(m.weight) / total;
            prop_assert!((share - exact).abs() <= statistical_tolerance(exact, POPULATION), "{:?}: {} vs {}", m, share, exact);
        }
    }

    /// A ring's shares vary twice: with the placement of its
    /// `ring_vnodes x W` points (a member's arc total is Beta-distributed,
    /// variance p(1-p)/(V+1)) and with the sample of flows.
    #[test]
    fn ring_weights_are_honoured_within_vnode_and_statistical_tolerance(
        members in weighted(2..=16),
        seed in any::<u64>(),
    ) {
        let p = params(seed);
        let s = build(Algorithm::Ring, &p, &members);
        let seen = shares(&mapping(&s));
        let total = total_weight(&members);
        let points = f64::from(p.ring_vnodes) * total;
        for m in &members {
            let share = seen.get(&m.id).copied().unwrap_or(0.0);
            let exact = f64::from(m.weight) / total;
            let sigma = (exact * (1.0 - exact) * (1.0 / (points + 1.0) + 1.0 / POPULATION as f64)).sqrt();
            prop_assert!((share - exact).abs() <= 6.0 * sigma + 0.003, "{:?}: {} vs {}", m, share, exact);
        }
    }
}

// ---------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------

/// Same seed: same mapping; another seed: a substantial share of flows (for
/// N >= 2 about 1 - 1/N of them) maps differently.
fn assert_seed_decides_the_mapping(
    algorithm: Algorithm,
    ids: &[MemberId],
    seed: u64,
    other: u64,
) -> Result<(), TestCaseError> {
    prop_assume!(seed != other);
    let members = unweighted(ids);
    let a = mapping(&build(algorithm, &params(seed), &members));
    prop_assert!(
        a == mapping(&build(algorithm, &params(seed), &members)),
        "{}: same seed, different mapping",
        algorithm
    );
    let b = mapping(&build(algorithm, &params(other), &members));
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count() as f64 / POPULATION as f64;
    prop_assert!(
        differ >= 0.25,
        "{}: seeds {} and {} differ on only {}",
        algorithm,
        seed,
        other,
        differ
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn maglev_mapping_is_decided_by_the_seed(ids in ids(2..=16), seed in any::<u64>(), other in any::<u64>()) {
        assert_seed_decides_the_mapping(Algorithm::Maglev, &ids, seed, other)?;
    }

    #[test]
    fn rendezvous_mapping_is_decided_by_the_seed(ids in ids(2..=16), seed in any::<u64>(), other in any::<u64>()) {
        assert_seed_decides_the_mapping(Algorithm::Rendezvous, &ids, seed, other)?;
    }

    #[test]
    fn ring_mapping_is_decided_by_the_seed(ids in ids(2..=16), seed in any::<u64>(), other in any::<u64>()) {
        assert_seed_decides_the_mapping(Algorithm::Ring, &ids, seed, other)?;
    }

    #[test]
    fn dxhash_mapping_is_decided_by_the_seed(ids in ids(2..=16), seed in any::<u64>(), other in any::<u64>()) {
        assert_seed_decides_the_mapping(Algorithm::DxHash, &ids, seed, other)?;
    }

    #[test]
    fn anchorhash_mapping_is_decided_by_the_seed(ids in ids(2..=16), seed in any::<u64>(), other in any::<u64>()) {
        assert_seed_decides_the_mapping(Algorithm::AnchorHash, &ids, seed, other)?;
    }

    /// Modulo, hash-threshold and resilient place members by group order
    /// alone: the seed changes nothing.
    #[test]
    fn unseeded_algorithms_ignore_the_seed(members in weighted(1..=32), seed in any::<u64>(), other in any::<u64>()) {
        for algorithm in [Algorithm::ModuloN, Algorithm::HashThreshold, Algorithm::Resilient] {
            let a = mapping(&build(algorithm, &params(seed), &members));
            let b = mapping(&build(algorithm, &params(other), &members));
            prop_assert!(a == b, "{}", algorithm);
        }
    }
}
