//! The disruption analysis agrees with theory where theory is exact: modulo-N
//! moves (N-1)/N on removal, resilient buckets move exactly the removed
//! member's share with zero collateral, jump hash moves 1/(N+1) on addition,
//! hash-threshold loses more at the ends than in the middle.

use std::net::{IpAddr, Ipv4Addr};

use hashing::disrupt::{analyse, measure, Change, Population};
use hashing::{
    Algorithm, FieldSelection, FlowHasher, FlowKey, HashFields, HashFunction, SelectorParams,
};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Hashes of `n` random TCP flows to one service IP, 5-tuple, xxh3.
fn flow_hashes(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let hasher = FlowHasher::new(
        HashFunction::Xxh3,
        FieldSelection::new(HashFields::L4),
        seed,
    );
    let service = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
    (0..n)
        .map(|_| {
            let key = FlowKey::tcp(
                IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
                rng.gen_range(32768..61000),
                service,
                443,
            );
            hasher.hash(&key)
        })
        .collect()
}

const FLOWS: usize = 100_000;
/// Four standard errors of a fraction near 1/2 over FLOWS independent flows.
const TOLERANCE: f64 = 4.0 * 0.5 / 316.0;

#[test]
fn modulo_n_moves_n_minus_one_over_n_when_one_leaves() {
    let hashes = flow_hashes(FLOWS, 7);
    for n in [2usize, 3, 4, 8, 16, 32, 64] {
        let d = analyse(
            Algorithm::ModuloN,
            &SelectorParams::default(),
            Change::Remove,
            n,
            Population::new(&hashes, &[]),
        )
        .unwrap()
        .unwrap();
        let expected = (n as f64 - 1.0) / n as f64;
        assert!(
            (d.remapped - expected).abs() < TOLERANCE,
            "n={n}: {d:?} vs {expected}"
        );
        assert!(
            (d.unavoidable - 1.0 / n as f64).abs() < TOLERANCE,
            "n={n}: {d:?}"
        );
    }
}

#[test]
fn resilient_moves_exactly_the_removed_members_share_with_zero_collateral() {
    let hashes = flow_hashes(FLOWS, 8);
    let params = SelectorParams::default();
    for n in [2usize, 3, 4, 8, 16, 32, 64] {
        let d = analyse(
            Algorithm::Resilient,
            &params,
            Change::Remove,
            n,
            Population::new(&hashes, &[]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(d.collateral, 0.0, "n={n}: {d:?}");
        assert!(
            (d.remapped - 1.0 / n as f64).abs() < TOLERANCE,
            "n={n}: {d:?}"
        );
    }
}

#[test]
fn jump_hash_moves_one_over_n_plus_one_when_one_joins() {
    let hashes = flow_hashes(FLOWS, 9);
    for n in [2usize, 4, 8, 16, 32, 64] {
        let d = analyse(
            Algorithm::Jump,
            &SelectorParams::default(),
            Change::Add,
            n,
            Population::new(&hashes, &[]),
        )
        .unwrap()
        .unwrap();
        let expected = 1.0 / (n as f64 + 1.0);
        assert!(
            (d.remapped - expected).abs() < TOLERANCE,
            "n={n}: {d:?} vs {expected}"
        );
    }
}

#[test]
fn hash_threshold_loses_half_at_the_end_of_three_and_a_third_in_the_middle() {
    // The reference figures of Linux as the router (TESTBED-NOTES): removing an
    // end member of 3 breaks about 50%, half of it collateral; the middle one
    // about 33%, none collateral.
    let hashes = flow_hashes(FLOWS, 10);
    let pop = Population::new(&hashes, &[]);
    let scenarios = Change::Remove.scenarios(3);
    let params = SelectorParams::default();
    let end = measure(Algorithm::HashThreshold, &params, &scenarios[2], pop).unwrap();
    let middle = measure(Algorithm::HashThreshold, &params, &scenarios[1], pop).unwrap();
    assert_eq!(scenarios[1].touched, 1);
    assert!((end.remapped - 0.5).abs() < TOLERANCE, "{end:?}");
    assert!((end.collateral - 1.0 / 6.0).abs() < TOLERANCE, "{end:?}");
    assert!(
        (middle.remapped - 1.0 / 3.0).abs() < TOLERANCE,
        "{middle:?}"
    );
    assert_eq!(middle.collateral, 0.0, "{middle:?}");
}

#[test]
fn consistent_algorithms_have_no_collateral_on_removal_and_modulo_has_plenty() {
    let hashes = flow_hashes(50_000, 11);
    let pop = Population::new(&hashes, &[]);
    let params = SelectorParams::default();
    for alg in [
        Algorithm::Resilient,
        Algorithm::Rendezvous,
        Algorithm::Ring,
        Algorithm::DxHash,
        Algorithm::AnchorHash,
    ] {
        for n in [3usize, 8, 33] {
            let d = analyse(alg, &params, Change::Remove, n, pop)
                .unwrap()
                .unwrap();
            assert_eq!(d.collateral, 0.0, "{alg} n={n}: {d:?}");
        }
    }
    let modulo = analyse(Algorithm::ModuloN, &params, Change::Remove, 8, pop)
        .unwrap()
        .unwrap();
    assert!(modulo.collateral > 0.7, "{modulo:?}");
}

#[test]
fn identical_seeds_give_identical_figures() {
    let a = flow_hashes(20_000, 12);
    let b = flow_hashes(20_000, 12);
    assert_eq!(a, b);
    let params = SelectorParams {
        seed: 5,
        ..SelectorParams::default()
    };
    for alg in Algorithm::ALL {
        for change in Change::ALL {
            let x = analyse(alg, &params, change, 8, Population::new(&a, &[])).unwrap();
            let y = analyse(alg, &params, change, 8, Population::new(&b, &[])).unwrap();
            assert_eq!(x, y, "{alg} {change}");
        }
    }
}

#[test]
fn one_hundred_thousand_flows_give_figures_stable_to_half_a_point() {
    // Two independent populations of the default size: every algorithm's
    // breakage on removal agrees within 0.5 point, the stability the
    // comparison report promises at its default flow count.
    let a = flow_hashes(FLOWS, 101);
    let b = flow_hashes(FLOWS, 202);
    let params = SelectorParams::default();
    for alg in Algorithm::ALL {
        for n in [4usize, 16, 64] {
            let x = analyse(alg, &params, Change::Remove, n, Population::new(&a, &[]))
                .unwrap()
                .unwrap();
            let y = analyse(alg, &params, Change::Remove, n, Population::new(&b, &[]))
                .unwrap()
                .unwrap();
            assert!(
                (x.remapped - y.remapped).abs() < 0.005,
                "{alg} n={n}: {:.4} vs {:.4}",
                x.remapped,
                y.remapped
            );
        }
    }
}
