//! Disruption analysis: how many flows of a population a change of the member
//! set breaks, split into unavoidable and collateral, and how evenly a group
//! spreads the load.
//!
//! A flow *breaks* at a step when the member it maps to differs from the one it
//! used so far; it is counted once, at its first break. The break is
//! *unavoidable* when the flow's member has left the group, *collateral* when
//! that member is still there. Ideal resilient hashing has zero collateral on
//! removal.
//!
//! The analysis is a snapshot: after each step the selector is given time to
//! settle with no traffic noted, so a resilient group migrates every
//! overweight bucket (its idle timer has run out). The emulator models time.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::select::{
    Algorithm, AnySelector, Member, MemberId, SelectError, Selector, SelectorParams,
};

/// A change of a group's member set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// One member leaves (a node fails or is drained).
    Remove,
    /// One member joins (a node is added).
    Add,
    /// One member leaves and comes back (a node restarts).
    Flap,
    /// One member's weight goes from 1 to 2.
    Weight,
}

impl Change {
    pub const ALL: [Change; 4] = [Change::Remove, Change::Add, Change::Flap, Change::Weight];

    pub const fn name(self) -> &'static str {
        match self {
            Change::Remove => "remove",
            Change::Add => "add",
            Change::Flap => "flap",
            Change::Weight => "weight",
        }
    }

    /// What the change does, for reports.
    pub const fn describe(self) -> &'static str {
        match self {
            Change::Remove => "one of N members leaves",
            Change::Add => "a member joins a group of N",
            Change::Flap => "one of N members leaves and comes back",
            Change::Weight => "one of N members' weight goes from 1 to 2",
        }
    }

    /// The smallest fraction of flows any algorithm must move for this change
    /// on a balanced group of `n` equal members.
    pub fn ideal(self, n: usize) -> f64 {
        let n = n as f64;
        match self {
            Change::Remove | Change::Flap => 1.0 / n,
            Change::Add => 1.0 / (n + 1.0),
            Change::Weight => 2.0 / (n + 1.0) - 1.0 / n,
        }
    }

    /// Whether `algorithm` can undergo this change.
    pub fn applies_to(self, algorithm: Algorithm) -> bool {
        self != Change::Weight || algorithm.supports_weights()
    }

    /// The concrete member-set sequences this change stands for on a group of
    /// `n` members (ids 1..=n, weight 1). Changes that hit one member are tried
    /// at up to four positions spread over the group (first, a third, two
    /// thirds, last), because position matters to some algorithms
    /// (hash-threshold loses far more when an end member leaves).
    pub fn scenarios(self, n: usize) -> Vec<Scenario> {
        let members: Vec<Member> = (1..=n as MemberId).map(Member::new).collect();
        if self == Change::Add {
            let mut after = members.clone();
            after.push(Member::new(n as MemberId + 1));
            return vec![Scenario {
                members,
                steps: vec![after],
                touched: n,
            }];
        }
        let mut positions: Vec<usize> = [0, n / 3, 2 * n / 3, n.saturating_sub(1)]
            .into_iter()
            .filter(|&p| p < n)
            .collect();
        positions.dedup();
        positions
            .into_iter()
            .map(|p| {
                let without: Vec<Member> = members
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != p)
                    .map(|(_, m)| *m)
                    .collect();
                let steps = match self {
                    Change::Remove => vec![without],
                    Change::Flap => vec![without, members.clone()],
                    Change::Weight => {
                        let mut heavier = members.clone();
                        heavier[p].weight = 2;
                        vec![heavier]
                    }
                    Change::Add => unreachable!("handled above"),
                };
                Scenario {
                    members: members.clone(),
                    steps,
                    touched: p,
                }
            })
            .collect()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a change name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown change '{given}': choose from remove, add, flap, weight")]
pub struct ParseChangeError {
    pub given: String,
}

impl FromStr for Change {
    type Err = ParseChangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Change::ALL
            .into_iter()
            .find(|c| c.name() == t)
            .ok_or(ParseChangeError {
                given: s.to_string(),
            })
    }
}

/// A starting member set and the member sets it goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub members: Vec<Member>,
    pub steps: Vec<Vec<Member>>,
    /// Position of the member the change hits (the group size for `Add`).
    pub touched: usize,
}

/// How many flows one scenario broke.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Disruption {
    /// Fraction of flows that broke (= unavoidable + collateral).
    pub remapped: f64,
    /// Fraction of flows that broke because their member left.
    pub unavoidable: f64,
    /// Fraction of flows that broke although their member stayed.
    pub collateral: f64,
    /// Fraction of bytes carried by the flows that broke.
    pub remapped_bytes: f64,
}

impl Disruption {
    /// The mean of several scenarios' disruptions.
    pub fn mean(items: &[Disruption]) -> Disruption {
        if items.is_empty() {
            return Disruption::default();
        }
        let n = items.len() as f64;
        let sum = |f: fn(&Disruption) -> f64| items.iter().map(f).sum::<f64>() / n;
        Disruption {
            remapped: sum(|d| d.remapped),
            unavoidable: sum(|d| d.unavoidable),
            collateral: sum(|d| d.collateral),
            remapped_bytes: sum(|d| d.remapped_bytes),
        }
    }
}

/// How evenly a group spreads load, relative to each member's weight share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Balance {
    /// The most loaded member's load over its fair share (1.0 is perfect).
    pub max_over_mean: f64,
    /// Coefficient of variation of load over fair share (0.0 is perfect).
    pub cv: f64,
}

/// A flow population reduced to what the analysis needs: each flow's hash
/// and its weight (bytes) for balance.
#[derive(Clone, Copy, Debug)]
pub struct Population<'a> {
    pub hashes: &'a [u32],
    pub weights: &'a [u64],
}

impl<'a> Population<'a> {
    /// `weights` must be as long as `hashes`, or empty for equal weights.
    pub fn new(hashes: &'a [u32], weights: &'a [u64]) -> Self {
        debug_assert!(weights.is_empty() || weights.len() == hashes.len());
        Population { hashes, weights }
    }

    fn weight(&self, i: usize) -> u64 {
        self.weights.get(i).copied().unwrap_or(1)
    }
}

/// Load balance of `selector` over the population, by weight (bytes).
pub fn balance(selector: &AnySelector, population: Population<'_>) -> Balance {
    let members = selector.members();
    if members.is_empty() || population.hashes.is_empty() {
        return Balance::default();
    }
    let index: std::collections::HashMap<MemberId, usize> =
        members.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
    let mut load = vec![0f64; members.len()];
    let mut total = 0f64;
    for (i, &h) in population.hashes.iter().enumerate() {
        let w = population.weight(i) as f64;
        total += w;
        if let Some(slot) = selector.select(h).and_then(|id| index.get(&id)) {
            load[*slot] += w;
        }
    }
    let weight_sum: f64 = members.iter().map(|m| f64::from(m.weight)).sum();
    let relative: Vec<f64> = members
        .iter()
        .zip(&load)
        .map(|(m, l)| l / (total * f64::from(m.weight) / weight_sum))
        .collect();
    let mean = relative.iter().sum::<f64>() / relative.len() as f64;
    let var = relative.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / relative.len() as f64;
    Balance {
        max_over_mean: relative.iter().cloned().fold(0.0, f64::max) / mean,
        cv: var.sqrt() / mean,
    }
}

/// The time the analysis gives a selector to settle after each step: longer
/// than a resilient group's idle and unbalanced timers.
fn settle_interval(params: &SelectorParams) -> u64 {
    params
        .resilient
        .idle_timer
        .saturating_add(params.resilient.unbalanced_timer)
        .saturating_add(1_000_000_000)
}

/// Run one scenario over the population and count the breaks.
pub fn measure(
    algorithm: Algorithm,
    params: &SelectorParams,
    scenario: &Scenario,
    population: Population<'_>,
) -> Result<Disruption, SelectError> {
    let interval = settle_interval(params);
    let mut now = 0u64;
    let mut selector = AnySelector::new(algorithm, params, &scenario.members, now)?;
    let mut current: Vec<Option<MemberId>> = population
        .hashes
        .iter()
        .map(|&h| selector.select(h))
        .collect();
    let mut broken = vec![false; population.hashes.len()];
    let (mut unavoidable, mut collateral) = (0usize, 0usize);
    let mut broken_bytes = 0u128;
    let mut total_bytes = 0u128;
    for i in 0..population.hashes.len() {
        total_bytes += u128::from(population.weight(i));
    }
    for step in &scenario.steps {
        now = now.saturating_add(interval);
        let mut next = selector.clone();
        next.set_members(step, now)?;
        next.upkeep(now.saturating_add(interval));
        now = now.saturating_add(interval);
        let present: HashSet<MemberId> = step.iter().map(|m| m.id).collect();
        for (i, &h) in population.hashes.iter().enumerate() {
            if broken[i] {
                continue;
            }
            let new = next.select(h);
            if new == current[i] {
                continue;
            }
            broken[i] = true;
            broken_bytes += u128::from(population.weight(i));
            match current[i] {
                Some(old) if present.contains(&old) => collateral += 1,
                _ => unavoidable += 1,
            }
            current[i] = new;
        }
        selector = next;
    }
    let n = population.hashes.len().max(1) as f64;
    Ok(Disruption {
        remapped: (unavoidable + collateral) as f64 / n,
        unavoidable: unavoidable as f64 / n,
        collateral: collateral as f64 / n,
        remapped_bytes: if total_bytes == 0 {
            0.0
        } else {
            broken_bytes as f64 / total_bytes as f64
        },
    })
}

/// The disruption of `change` on a group of `n` members, averaged over the
/// scenarios the change stands for; `None` when the change does not apply to
/// the algorithm (weights on an algorithm without weights).
pub fn analyse(
    algorithm: Algorithm,
    params: &SelectorParams,
    change: Change,
    n: usize,
    population: Population<'_>,
) -> Result<Option<Disruption>, SelectError> {
    if !change.applies_to(algorithm) {
        return Ok(None);
    }
    let results = change
        .scenarios(n)
        .iter()
        .map(|s| measure(algorithm, params, s, population))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Disruption::mean(&results)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Weyl sequence: exactly uniform in the low bits (what modulo reads)
    /// and evenly spread in the high bits (what hash-threshold reads).
    fn grid() -> Vec<u32> {
        (0..(1u32 << 20))
            .map(|i| i.wrapping_mul(0x9e37_79b1))
            .collect()
    }

    #[test]
    fn scenarios_hit_spread_positions_and_add_appends() {
        let s = Change::Remove.scenarios(8);
        let touched: Vec<usize> = s.iter().map(|s| s.touched).collect();
        assert_eq!(touched, vec![0, 2, 5, 7]);
        assert!(s.iter().all(|s| s.steps[0].len() == 7));
        let add = Change::Add.scenarios(3);
        assert_eq!(add.len(), 1);
        assert_eq!(add[0].steps[0].last().unwrap().id, 4);
        let flap = Change::Flap.scenarios(2);
        assert_eq!(flap.len(), 2);
        assert_eq!(flap[0].steps[1], flap[0].members);
    }

    #[test]
    fn ideal_fractions_follow_theory() {
        assert!((Change::Remove.ideal(4) - 0.25).abs() < 1e-12);
        assert!((Change::Add.ideal(4) - 0.2).abs() < 1e-12);
        assert!((Change::Weight.ideal(3) - (0.5 - 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn breakage_is_split_into_unavoidable_and_collateral() {
        // Modulo-N removing the last of 4 on an exact grid: flows of the
        // removed member (1/4) are unavoidable; of the other 3/4, only those
        // with h % 3 == h % 4 stay.
        let hashes = grid();
        let pop = Population::new(&hashes, &[]);
        let scenario = &Change::Remove.scenarios(4)[3];
        let d = measure(
            Algorithm::ModuloN,
            &SelectorParams::default(),
            scenario,
            pop,
        )
        .unwrap();
        assert!((d.unavoidable - 0.25).abs() < 1e-3, "{d:?}");
        assert!((d.remapped - d.unavoidable - d.collateral).abs() < 1e-12);
        assert!(d.collateral > 0.4, "{d:?}");
    }

    #[test]
    fn a_flap_counts_each_flow_once() {
        // Modulo-N returns to the original mapping after a flap, but the
        // flows that moved while the member was away broke.
        let hashes = grid();
        let pop = Population::new(&hashes, &[]);
        let remove = analyse(
            Algorithm::ModuloN,
            &SelectorParams::default(),
            Change::Remove,
            4,
            pop,
        )
        .unwrap()
        .unwrap();
        let flap = analyse(
            Algorithm::ModuloN,
            &SelectorParams::default(),
            Change::Flap,
            4,
            pop,
        )
        .unwrap()
        .unwrap();
        assert!((remove.remapped - flap.remapped).abs() < 1e-9);
    }

    #[test]
    fn weight_change_does_not_apply_to_algorithms_without_weights() {
        let hashes = grid();
        let pop = Population::new(&hashes, &[]);
        let none = analyse(
            Algorithm::Jump,
            &SelectorParams::default(),
            Change::Weight,
            4,
            pop,
        );
        assert_eq!(none, Ok(None));
    }

    #[test]
    fn balance_is_relative_to_weight_share() {
        let hashes = grid();
        let pop = Population::new(&hashes, &[]);
        let even = AnySelector::new(
            Algorithm::ModuloN,
            &SelectorParams::default(),
            &[Member::new(1), Member::new(2)],
            0,
        )
        .unwrap();
        let b = balance(&even, pop);
        assert!((b.max_over_mean - 1.0).abs() < 1e-9 && b.cv < 1e-9, "{b:?}");
        // Put all weight on the flows of one member: maximal imbalance.
        let weights: Vec<u64> = hashes.iter().map(|h| u64::from(h % 2 == 0) * 10).collect();
        let skewed = balance(&even, Population::new(&hashes, &weights));
        assert!((skewed.max_over_mean - 2.0).abs() < 1e-9, "{skewed:?}");
    }
}
