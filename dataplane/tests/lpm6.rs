//! Behaviour of the IPv6 longest-prefix-match table: longest match, removal,
//! masking, errors, group accounting, a model check against a naive table and
//! a concurrent reader.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dataplane::fib::lpm6::{
    self, synthetic_bgp6_table, Lpm6Config, Lpm6Reader, Lpm6Writer, MAX_VALUE, NO_ROUTE,
};
use dataplane::fib::FibError;
use proptest::prelude::*;

fn table(groups: u32) -> (Lpm6Writer, Lpm6Reader) {
    lpm6::new(Lpm6Config { groups })
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn mask(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

fn last(addr: u128, len: u8) -> u128 {
    if len == 0 {
        u128::MAX
    } else {
        mask(addr, len) | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
}

/// Naive reference: the longest stored prefix containing `addr`, by scanning.
fn naive(routes: &HashMap<(u128, u8), u32>, addr: u128) -> Option<u32> {
    routes
        .iter()
        .filter(|(&(p, l), _)| mask(addr, l) == p)
        .max_by_key(|(&(_, l), _)| l)
        .map(|(_, &v)| v)
}

const X: &str = "2001:db8:1234:5678:9abc:def0:1357:9bdf";

fn nested() -> Vec<(u8, u32)> {
    vec![
        (0, 1),
        (16, 2),
        (24, 3),
        (32, 4),
        (48, 5),
        (56, 6),
        (64, 7),
        (127, 8),
        (128, 9),
    ]
}

/// An address sharing exactly the first `len` bits with `x` (the bit after
/// them flipped).
fn diverging_after(x: u128, len: u8) -> u128 {
    x ^ (1u128 << (127 - u32::from(len)))
}

#[test]
fn longest_match_picks_the_most_specific_of_nested_prefixes() {
    let (mut w, r) = table(64);
    let x = u128::from(a(X));
    for (len, v) in nested() {
        assert_eq!(w.insert(a(X), len, v), Ok(None));
    }
    assert_eq!(w.len(), 9);
    assert_eq!(r.lookup(x), Some(9));
    assert_eq!(r.lookup_addr(a(X)), Some(9));
    let lens = nested();
    for pair in lens.windows(2) {
        let (len, v) = pair[0];
        let (next_len, _) = pair[1];
        // Shares `len`.. bits but not `next_len` bits: answer is the /len.
        let probe = diverging_after(x, next_len - 1);
        assert_eq!(r.lookup(probe), Some(v), "/{len} for {probe:x}");
    }
    // First and last address of each prefix other than the ones ending at x.
    assert_eq!(r.lookup(0), Some(1));
    assert_eq!(r.lookup(u128::MAX), Some(1));
    let addrs = [
        x,
        0,
        u128::MAX,
        diverging_after(x, 20),
        diverging_after(x, 60),
    ];
    let mut out = [0u32; 5];
    r.lookup_batch(&addrs, &mut out);
    assert_eq!(out, [9, 1, 1, 2, 6]);
}

#[test]
fn lookup_batch_reports_no_route_with_the_sentinel() {
    let (mut w, r) = table(16);
    w.insert(a("2001:db8::"), 32, 7).unwrap();
    let addrs = [u128::from(a("2001:db8::1")), u128::from(a("2001:db9::1"))];
    let mut out = [0u32; 2];
    r.lookup_batch(&addrs, &mut out);
    assert_eq!(out, [7, NO_ROUTE]);
    assert_eq!(r.lookup(addrs[1]), None);
}

#[test]
fn removal_restores_the_covering_route_at_every_level() {
    let (mut w, r) = table(64);
    let x = u128::from(a(X));
    for (len, v) in nested() {
        w.insert(a(X), len, v).unwrap();
    }
    // Remove from the most specific down: x falls back step by step.
    let lens = nested();
    for i in (1..lens.len()).rev() {
        assert_eq!(w.remove(a(X), lens[i].0), Ok(Some(lens[i].1)));
        assert_eq!(
            r.lookup(x),
            Some(lens[i - 1].1),
            "after removing /{}",
            lens[i].0
        );
    }
    // Removing a middle prefix leaves the more-specifics and exposes the
    // covering one only where nothing more specific exists.
    for (len, v) in nested() {
        w.insert(a(X), len, v).unwrap();
    }
    for (removed, covering) in [(32u8, 3u32), (56, 5), (127, 7), (16, 1)] {
        assert!(w.remove(a(X), removed).unwrap().is_some());
        assert_eq!(r.lookup(x), Some(9));
        let probe = diverging_after(x, removed);
        assert_eq!(
            r.lookup(probe),
            Some(covering),
            "inside the removed /{removed}"
        );
    }
    assert_eq!(w.remove(a(X), 0), Ok(Some(1)));
    assert_eq!(r.lookup(u128::MAX), None);
    assert_eq!(w.remove(a(X), 0), Ok(None));
    assert_eq!(r.lookup(x), Some(9));
}

#[test]
fn host_bits_are_masked_on_insert_get_and_remove() {
    let (mut w, r) = table(16);
    assert_eq!(w.insert(a("2001:db8:ffff::1"), 32, 5), Ok(None));
    assert_eq!(w.get(a("2001:db8::"), 32), Some(5));
    assert_eq!(w.get(a("2001:db8:1::"), 32), Some(5));
    assert_eq!(r.lookup_addr(a("2001:db8::")), Some(5));
    assert_eq!(w.insert(a("2001:db8::abcd"), 32, 6), Ok(Some(5)));
    assert_eq!(w.len(), 1);
    assert_eq!(w.remove(a("2001:db8:9::"), 32), Ok(Some(6)));
    assert!(w.is_empty());
    assert_eq!(r.lookup_addr(a("2001:db8::")), None);
}

#[test]
fn length_above_128_and_value_above_max_are_rejected() {
    let (mut w, r) = table(16);
    assert!(matches!(
        w.insert(a("::"), 129, 1),
        Err(FibError::PrefixLength {
            len: 129,
            max: 128,
            ..
        })
    ));
    assert!(matches!(
        w.remove(a("::"), 200),
        Err(FibError::PrefixLength { .. })
    ));
    assert_eq!(w.get(a("::"), 255), None);
    assert_eq!(
        w.insert(a("2001:db8::"), 32, MAX_VALUE + 1),
        Err(FibError::ValueTooLarge {
            value: MAX_VALUE + 1,
            max: MAX_VALUE
        })
    );
    assert!(w.insert(a("2001:db8::"), 32, u32::MAX).is_err());
    assert!(w.is_empty());
    assert_eq!(r.lookup_addr(a("2001:db8::")), None);
    assert_eq!(w.insert(a("2001:db8::"), 128, MAX_VALUE), Ok(None));
    assert_eq!(r.lookup_addr(a("2001:db8::")), Some(MAX_VALUE));
}

#[test]
fn out_of_groups_leaves_the_table_consistent() {
    let (mut w, r) = table(4);
    w.insert(a("2001:db8::"), 32, 1).unwrap();
    w.insert(a("2001:db8:1::"), 48, 2).unwrap();
    assert_eq!(w.groups_in_use(), 3);
    // A /128 elsewhere would need 13 groups.
    let err = w.insert(a("2001:db9::1"), 128, 3);
    assert!(matches!(err, Err(FibError::OutOfGroups { groups: 4, .. })));
    assert_eq!(w.groups_in_use(), 3);
    assert_eq!(w.len(), 2);
    assert_eq!(w.get(a("2001:db9::1"), 128), None);
    assert_eq!(r.lookup_addr(a("2001:db9::1")), None);
    // A /128 below the existing /48 needs 10 more groups: also refused.
    assert!(w.insert(a("2001:db8:1::1"), 128, 3).is_err());
    assert_eq!(r.lookup_addr(a("2001:db8:1::1")), Some(2));
    assert_eq!(r.lookup_addr(a("2001:db8:2::1")), Some(1));
    // What fits still works, and replacing a value needs no group.
    assert_eq!(w.insert(a("2001:db8:1:100::"), 56, 4), Ok(None));
    assert_eq!(w.groups_in_use(), 4);
    assert_eq!(w.insert(a("2001:db8:1::"), 48, 5), Ok(Some(2)));
    assert_eq!(r.lookup_addr(a("2001:db8:1::1")), Some(5));
    assert_eq!(r.lookup_addr(a("2001:db8:1:100::1")), Some(4));
    assert!(w.insert(a("2001:db8:2:100::"), 56, 4).is_err());
    assert_eq!(r.lookup_addr(a("2001:db8:2:100::1")), Some(1));
}

#[test]
fn uniform_groups_collapse_and_are_reused_after_release_quarantine() {
    let (mut w, r) = table(3);
    w.insert(a("2001:db8:1::"), 48, 7).unwrap();
    assert_eq!(w.groups_in_use(), 3);
    assert_eq!(w.remove(a("2001:db8:1::"), 48), Ok(Some(7)));
    assert_eq!(r.lookup_addr(a("2001:db8:1::1")), None);
    // Collapsed but still quarantined.
    assert_eq!(w.groups_in_use(), 3);
    assert_eq!(w.groups_in_quarantine(), 3);
    assert!(matches!(
        w.insert(a("2001:db8:2::"), 48, 8),
        Err(FibError::OutOfGroups { .. })
    ));
    w.release_quarantine();
    assert_eq!(w.groups_in_use(), 0);
    assert_eq!(w.insert(a("2001:db8:2::"), 48, 8), Ok(None));
    assert_eq!(r.lookup_addr(a("2001:db8:2::1")), Some(8));
    assert_eq!(r.lookup_addr(a("2001:db8:1::1")), None);

    // Filling all 256 /32s of a /24 with one value collapses their group;
    // removing one of them expands it again.
    let (mut w, r) = table(2);
    for i in 0..256u128 {
        let p = Ipv6Addr::from((0x2001_0d00u128 | i) << 96);
        w.insert(p, 32, 9).unwrap();
    }
    assert_eq!(w.groups_in_quarantine(), 1);
    assert_eq!(r.lookup_addr(a("2001:d42::1")), Some(9));
    w.insert(a("2001:d00::"), 24, 1).unwrap();
    assert_eq!(r.lookup_addr(a("2001:d42::1")), Some(9));
    assert_eq!(w.remove(a("2001:d42::"), 32), Ok(Some(9)));
    assert_eq!(r.lookup_addr(a("2001:d42::1")), Some(1));
    assert_eq!(r.lookup_addr(a("2001:d43::1")), Some(9));
    assert_eq!(w.groups_in_use(), 2);
}

#[test]
fn synthetic_table_is_deterministic_with_the_requested_length_mix() {
    let t = synthetic_bgp6_table(20_000, 7);
    assert_eq!(t.len(), 20_000);
    assert_eq!(t, synthetic_bgp6_table(20_000, 7));
    assert_ne!(t, synthetic_bgp6_table(20_000, 8));
    let share = |len: u8| t.iter().filter(|e| e.1 == len).count() as f64 / t.len() as f64;
    assert!((share(48) - 0.45).abs() < 0.03, "{}", share(48));
    assert!((share(32) - 0.20).abs() < 0.03, "{}", share(32));
    assert!((share(64) - 0.04).abs() < 0.02, "{}", share(64));
    assert!(t.iter().any(|e| e.1 == 128));

    let (mut w, r) = table(1 << 15);
    let mut by_len: Vec<HashMap<u128, u32>> = vec![HashMap::new(); 129];
    for &(p, len, v) in &t {
        assert_eq!(w.insert(p, len, v), Ok(None));
        by_len[usize::from(len)].insert(u128::from(p), v);
    }
    let reference = |addr: u128| {
        (0..=128u8)
            .rev()
            .find_map(|l| by_len[usize::from(l)].get(&mask(addr, l)).copied())
    };
    for &(p, len, _) in &t {
        let first = u128::from(p);
        assert_eq!(r.lookup(first), reference(first));
        assert_eq!(r.lookup(last(first, len)), reference(last(first, len)));
    }
}

#[derive(Debug, Clone)]
enum Step {
    Insert(u128, u8, u32),
    /// Remove the n-th (modulo) currently stored prefix.
    Remove(usize),
}

fn address() -> impl Strategy<Value = u128> {
    // Few bases and perturbations below a random bit, so prefixes nest.
    let bases = [
        u128::from(a("2001:db8:1234:5678:9abc:def0:1357:9bdf")),
        u128::from(a("2001:db8:12ff::")),
        u128::from(a("2a00:1450::ffff")),
    ];
    (0..3usize, any::<u128>(), 0u32..128).prop_map(move |(b, r, k)| bases[b] ^ (r >> k))
}

fn length() -> impl Strategy<Value = u8> {
    prop_oneof![
        1 => 0u8..20,
        16 => 20u8..=64,
        3 => 65u8..=128,
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (address(), length(), 0u32..8).prop_map(|(p, l, v)| Step::Insert(p, l, v)),
        1 => any::<usize>().prop_map(Step::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn matches_a_naive_table_after_random_inserts_and_removes(
        steps in prop::collection::vec(step(), 1..80),
        probes in prop::collection::vec(address(), 64),
    ) {
        let (mut w, r) = table(1 << 12);
        let mut model: HashMap<(u128, u8), u32> = HashMap::new();
        for s in steps {
            match s {
                Step::Insert(p, l, v) => {
                    let prev = w.insert(Ipv6Addr::from(p), l, v).unwrap();
                    prop_assert_eq!(prev, model.insert((mask(p, l), l), v));
                }
                Step::Remove(n) => {
                    if model.is_empty() {
                        continue;
                    }
                    let mut keys: Vec<_> = model.keys().copied().collect();
                    keys.sort_unstable();
                    let (p, l) = keys[n % keys.len()];
                    // Host bits set on purpose.
                    let prev = w.remove(Ipv6Addr::from(p | u128::MAX.checked_shr(u32::from(l)).unwrap_or(0)), l).unwrap();
                    prop_assert_eq!(prev, model.remove(&(p, l)));
                }
            }
        }
        prop_assert_eq!(w.len(), model.len());
        let mut checks: Vec<u128> = probes;
        for &(p, l) in model.keys() {
            checks.push(p);
            checks.push(last(p, l));
        }
        let mut out = vec![0u32; checks.len()];
        r.lookup_batch(&checks, &mut out);
        for (&addr, &got) in checks.iter().zip(&out) {
            let want = naive(&model, addr);
            prop_assert_eq!(r.lookup(addr), want, "{:x}", addr);
            prop_assert_eq!(got, want.unwrap_or(NO_ROUTE));
        }
        // Removing everything collapses every group.
        let keys: Vec<_> = model.keys().copied().collect();
        for (p, l) in keys {
            prop_assert!(w.remove(Ipv6Addr::from(p), l).unwrap().is_some());
        }
        w.release_quarantine();
        prop_assert_eq!(w.groups_in_use(), 0);
        prop_assert!(w.is_empty());
        for &addr in &checks {
            prop_assert_eq!(r.lookup(addr), None);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn a_tiny_group_pool_refuses_updates_without_breaking_the_table(
        steps in prop::collection::vec(step(), 1..60),
        probes in prop::collection::vec(address(), 32),
    ) {
        let (mut w, r) = table(6);
        let mut model: HashMap<(u128, u8), u32> = HashMap::new();
        let mut refused = 0;
        for s in steps {
            let result = match s {
                Step::Insert(p, l, v) => w
                    .insert(Ipv6Addr::from(p), l, v)
                    .map(|prev| (prev, model.insert((mask(p, l), l), v))),
                Step::Remove(n) => {
                    let mut keys: Vec<_> = model.keys().copied().collect();
                    if keys.is_empty() {
                        continue;
                    }
                    keys.sort_unstable();
                    let (p, l) = keys[n % keys.len()];
                    w.remove(Ipv6Addr::from(p), l).map(|prev| (prev, model.remove(&(p, l))))
                }
            };
            match result {
                Ok((got, want)) => prop_assert_eq!(got, want),
                Err(e) => {
                    let out_of_groups = matches!(e, FibError::OutOfGroups { groups: 6, .. });
                    prop_assert!(out_of_groups, "{:?}", e);
                    refused += 1;
                }
            }
            if refused % 4 == 3 {
                w.release_quarantine();
            }
            prop_assert!(w.groups_in_use() <= 6);
        }
        prop_assert_eq!(w.len(), model.len());
        let mut checks = probes;
        for &(p, l) in model.keys() {
            checks.push(p);
            checks.push(last(p, l));
        }
        for &addr in &checks {
            prop_assert_eq!(r.lookup(addr), naive(&model, addr), "{:x}", addr);
        }
    }
}

#[test]
fn concurrent_reader_sees_only_the_old_or_new_answer() {
    const A: u32 = 100;
    const B: u32 = 200;
    const C: u32 = 300;
    let (mut w, r) = table(256);
    let x = u128::from(a("2001:db8:aa:bb:cc:dd:ee:ff"));
    // y sits next to x and always answers A.
    let y = x ^ (1 << 91);
    w.insert(Ipv6Addr::from(x), 32, A).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let reader = {
        let (done, lookups, r) = (Arc::clone(&done), Arc::clone(&lookups), r.clone());
        std::thread::spawn(move || {
            let mut seen_b = 0u64;
            let mut out = [0u32; 4];
            while !done.load(Ordering::Acquire) {
                let vx = r.lookup(x);
                let vy = r.lookup(y);
                r.lookup_batch(&[y, x, y, x], &mut out);
                assert!(out[1] == A || out[1] == B, "batch x answered {}", out[1]);
                assert_eq!([out[0], out[2]], [A, A], "batch y");
                assert!(out[3] == A || out[3] == B, "batch x answered {}", out[3]);
                assert!(vx == Some(A) || vx == Some(B), "x answered {vx:?}");
                assert_eq!(vy, Some(A), "y");
                seen_b += u64::from(vx == Some(B));
                lookups.fetch_add(1, Ordering::Release);
            }
            assert_eq!(r.lookup(x), Some(B));
            seen_b
        })
    };
    let grace = |lookups: &AtomicU64| {
        // Wait until the reader has started and finished a fresh lookup.
        let start = lookups.load(Ordering::Acquire);
        while lookups.load(Ordering::Acquire) < start + 2 {
            std::thread::yield_now();
        }
    };
    for round in 0..300u32 {
        // x's answer toggles between A and B through more-specifics of
        // different lengths.
        let len = [48u8, 64, 100, 128][round as usize % 4];
        w.insert(Ipv6Addr::from(x), len, B).unwrap();
        // More-specifics next to x and y, and unrelated prefixes.
        for (p, l) in [(x ^ 1, 128u8), (x ^ (1 << 20), 108), (y ^ (1 << 66), 64)] {
            w.insert(Ipv6Addr::from(p), l, C).unwrap();
        }
        w.insert(Ipv6Addr::from(x), 40, A).unwrap();
        w.insert(a("2a00::"), 24 + (round % 40) as u8, C).unwrap();
        w.remove(Ipv6Addr::from(x), len).unwrap();
        for (p, l) in [(x ^ 1, 128u8), (x ^ (1 << 20), 108), (y ^ (1 << 66), 64)] {
            w.remove(Ipv6Addr::from(p), l).unwrap();
        }
        w.remove(Ipv6Addr::from(x), 40).unwrap();
        w.remove(a("2a00::"), 24 + (round % 40) as u8).unwrap();
        if round % 10 == 9 {
            grace(&lookups);
            w.release_quarantine();
        }
    }
    w.insert(Ipv6Addr::from(x), 56, B).unwrap();
    grace(&lookups);
    done.store(true, Ordering::Release);
    reader.join().unwrap();
    assert_eq!(w.len(), 2);
}
