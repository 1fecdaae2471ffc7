//! Behaviour of the DIR-24-8 IPv4 longest-prefix-match table: longest match,
//! removal restoring covering routes, errors, tbl8 group lifecycle, agreement
//! with a naive reference, and reader consistency during concurrent updates.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dataplane::fib::lpm4::{
    self, synthetic_bgp_table, Lpm4Config, Lpm4Reader, Lpm4Update, Lpm4Writer, MAX_VALUE, NO_ROUTE,
};
use dataplane::fib::FibError;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

fn table(groups: u32) -> (Lpm4Writer, Lpm4Reader) {
    lpm4::new(Lpm4Config {
        tbl8_groups: groups,
    })
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn a(s: &str) -> u32 {
    u32::from(ip(s))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

/// A linear-search reference: (masked prefix, len, value).
#[derive(Default, Debug)]
struct Naive(Vec<(u32, u8, u32)>);

impl Naive {
    fn insert(&mut self, p: u32, len: u8, v: u32) -> Option<u32> {
        let p = p & mask(len);
        for e in &mut self.0 {
            if e.0 == p && e.1 == len {
                return Some(std::mem::replace(&mut e.2, v));
            }
        }
        self.0.push((p, len, v));
        None
    }

    fn remove(&mut self, p: u32, len: u8) -> Option<u32> {
        let p = p & mask(len);
        let i = self.0.iter().position(|e| e.0 == p && e.1 == len)?;
        Some(self.0.swap_remove(i).2)
    }

    fn lookup(&self, addr: u32) -> Option<u32> {
        self.0
            .iter()
            .filter(|e| addr & mask(e.1) == e.0)
            .max_by_key(|e| e.1)
            .map(|e| e.2)
    }
}

#[test]
fn longest_match_wins_across_lengths() {
    let (mut w, r) = table(16);
    w.insert(ip("0.0.0.0"), 0, 1).unwrap();
    w.insert(ip("10.0.0.0"), 8, 8).unwrap();
    w.insert(ip("10.1.0.0"), 16, 16).unwrap();
    w.insert(ip("10.1.2.0"), 24, 24).unwrap();
    w.insert(ip("10.1.2.128"), 25, 25).unwrap();
    w.insert(ip("10.1.2.200"), 32, 32).unwrap();
    assert_eq!(r.lookup(a("11.0.0.1")), Some(1));
    assert_eq!(r.lookup(a("10.200.0.1")), Some(8));
    assert_eq!(r.lookup(a("10.1.200.1")), Some(16));
    assert_eq!(r.lookup(a("10.1.2.1")), Some(24));
    assert_eq!(r.lookup(a("10.1.2.127")), Some(24));
    assert_eq!(r.lookup(a("10.1.2.128")), Some(25));
    assert_eq!(r.lookup(a("10.1.2.199")), Some(25));
    assert_eq!(r.lookup(a("10.1.2.200")), Some(32));
    assert_eq!(r.lookup(a("10.1.2.201")), Some(25));
    assert_eq!(r.lookup(a("10.1.3.0")), Some(16));
    assert_eq!(w.len(), 6);
    // Inserting a shorter prefix afterwards does not overwrite more-specifics.
    w.insert(ip("10.1.0.0"), 12, 12).unwrap();
    assert_eq!(r.lookup(a("10.1.2.200")), Some(32));
    assert_eq!(r.lookup(a("10.1.2.1")), Some(24));
    assert_eq!(r.lookup(a("10.2.0.0")), Some(12));
    assert_eq!(r.lookup(a("10.16.0.0")), Some(8));
}

#[test]
fn insert_returns_previous_value_and_get_is_exact() {
    let (mut w, r) = table(4);
    assert!(w.is_empty());
    assert_eq!(w.insert(ip("10.1.2.0"), 24, 5), Ok(None));
    assert_eq!(w.insert(ip("10.1.2.0"), 24, 6), Ok(Some(5)));
    assert_eq!(w.insert(ip("10.1.2.0"), 24, 6), Ok(Some(6)));
    assert_eq!(w.get(ip("10.1.2.0"), 24), Some(6));
    assert_eq!(w.get(ip("10.1.2.0"), 23), None);
    assert_eq!(w.get(ip("10.1.2.0"), 40), None);
    assert_eq!(r.lookup(a("10.1.2.9")), Some(6));
    assert_eq!(w.len(), 1);
    assert_eq!(w.remove(ip("10.1.2.0"), 24), Ok(Some(6)));
    assert_eq!(w.remove(ip("10.1.2.0"), 24), Ok(None));
    assert!(w.is_empty());
    assert_eq!(r.lookup(a("10.1.2.9")), None);
}

#[test]
fn removal_restores_the_covering_route() {
    let (mut w, r) = table(4);
    w.insert(ip("10.0.0.0"), 8, 8).unwrap();
    w.insert(ip("10.1.0.0"), 16, 16).unwrap();
    w.insert(ip("10.1.2.0"), 24, 24).unwrap();
    assert_eq!(w.remove(ip("10.1.2.0"), 24), Ok(Some(24)));
    assert_eq!(r.lookup(a("10.1.2.3")), Some(16));
    assert_eq!(w.remove(ip("10.1.0.0"), 16), Ok(Some(16)));
    assert_eq!(r.lookup(a("10.1.2.3")), Some(8));
    assert_eq!(w.remove(ip("10.0.0.0"), 8), Ok(Some(8)));
    assert_eq!(r.lookup(a("10.1.2.3")), None);
}

#[test]
fn removal_inside_a_tbl8_group_restores_the_covering_route() {
    let (mut w, r) = table(4);
    w.insert(ip("10.1.2.0"), 24, 24).unwrap();
    w.insert(ip("10.1.2.0"), 26, 26).unwrap();
    w.insert(ip("10.1.2.0"), 28, 28).unwrap();
    w.insert(ip("10.1.2.5"), 32, 32).unwrap();
    assert_eq!(r.lookup(a("10.1.2.5")), Some(32));
    assert_eq!(w.remove(ip("10.1.2.0"), 28), Ok(Some(28)));
    assert_eq!(r.lookup(a("10.1.2.5")), Some(32));
    assert_eq!(r.lookup(a("10.1.2.4")), Some(26));
    assert_eq!(w.remove(ip("10.1.2.5"), 32), Ok(Some(32)));
    assert_eq!(r.lookup(a("10.1.2.5")), Some(26));
    assert_eq!(r.lookup(a("10.1.2.64")), Some(24));
    assert_eq!(w.tbl8_groups_in_use(), 1);
    assert_eq!(w.remove(ip("10.1.2.0"), 26), Ok(Some(26)));
    assert_eq!(r.lookup(a("10.1.2.5")), Some(24));
    assert_eq!(w.tbl8_groups_in_use(), 0);
}

#[test]
fn removing_the_covering_route_keeps_more_specifics() {
    let (mut w, r) = table(4);
    w.insert(ip("0.0.0.0"), 0, 1).unwrap();
    w.insert(ip("10.0.0.0"), 8, 8).unwrap();
    w.insert(ip("10.1.0.0"), 16, 16).unwrap();
    w.insert(ip("10.1.2.128"), 25, 25).unwrap();
    assert_eq!(w.remove(ip("10.0.0.0"), 8), Ok(Some(8)));
    assert_eq!(r.lookup(a("10.1.2.200")), Some(25));
    assert_eq!(r.lookup(a("10.1.2.1")), Some(16));
    assert_eq!(r.lookup(a("10.2.0.0")), Some(1));
    assert_eq!(w.remove(ip("10.1.0.0"), 16), Ok(Some(16)));
    // The /24 under the /25 is in a tbl8 group: its other half falls back too.
    assert_eq!(r.lookup(a("10.1.2.200")), Some(25));
    assert_eq!(r.lookup(a("10.1.2.1")), Some(1));
    assert_eq!(w.remove(ip("0.0.0.0"), 0), Ok(Some(1)));
    assert_eq!(r.lookup(a("10.1.2.1")), None);
    assert_eq!(r.lookup(a("10.1.2.129")), Some(25));
}

#[test]
fn default_route_matches_every_address() {
    let (mut w, r) = table(4);
    assert_eq!(r.lookup(0), None);
    w.insert(ip("0.0.0.0"), 0, 7).unwrap();
    for addr in [0, 1, a("10.1.2.3"), a("192.168.0.1"), u32::MAX] {
        assert_eq!(r.lookup(addr), Some(7));
    }
    w.insert(ip("255.255.255.255"), 32, 9).unwrap();
    assert_eq!(r.lookup(u32::MAX), Some(9));
    assert_eq!(r.lookup(u32::MAX - 1), Some(7));
    w.remove(ip("0.0.0.0"), 0).unwrap();
    assert_eq!(r.lookup(0), None);
    assert_eq!(r.lookup(u32::MAX), Some(9));
}

#[test]
fn host_bits_beyond_the_length_are_masked() {
    let (mut w, r) = table(4);
    assert_eq!(w.insert(ip("10.1.2.3"), 8, 8), Ok(None));
    assert_eq!(w.get(ip("10.0.0.0"), 8), Some(8));
    assert_eq!(w.get(ip("10.255.255.255"), 8), Some(8));
    assert_eq!(r.lookup(a("10.200.0.1")), Some(8));
    assert_eq!(w.insert(ip("10.1.2.3"), 25, 25), Ok(None));
    assert_eq!(r.lookup(a("10.1.2.0")), Some(25));
    assert_eq!(w.remove(ip("10.9.9.9"), 8), Ok(Some(8)));
    assert_eq!(w.remove(ip("10.1.2.127"), 25), Ok(Some(25)));
    assert!(w.is_empty());
}

#[test]
fn prefix_length_over_32_and_too_large_value_are_errors() {
    let (mut w, r) = table(4);
    let bad_len = FibError::PrefixLength {
        family: "IPv4",
        len: 33,
        max: 32,
    };
    assert_eq!(w.insert(ip("10.0.0.0"), 33, 1), Err(bad_len.clone()));
    assert_eq!(w.remove(ip("10.0.0.0"), 33), Err(bad_len));
    assert!(matches!(
        w.insert(ip("10.0.0.0"), 255, 1),
        Err(FibError::PrefixLength { len: 255, .. })
    ));
    assert_eq!(
        w.insert(ip("10.0.0.0"), 8, MAX_VALUE + 1),
        Err(FibError::ValueTooLarge {
            value: MAX_VALUE + 1,
            max: MAX_VALUE
        })
    );
    assert_eq!(w.insert(ip("10.0.0.0"), 8, u32::MAX).ok(), None);
    assert_eq!(w.insert(ip("10.0.0.0"), 8, MAX_VALUE), Ok(None));
    assert_eq!(r.lookup(a("10.0.0.1")), Some(MAX_VALUE));
    assert_eq!(w.len(), 1);
}

#[test]
fn out_of_groups_with_a_tiny_pool_leaves_the_table_consistent() {
    let (mut w, r) = table(2);
    w.insert(ip("10.0.0.0"), 8, 8).unwrap();
    w.insert(ip("10.0.1.0"), 25, 1).unwrap();
    w.insert(ip("10.0.2.0"), 25, 2).unwrap();
    assert_eq!(w.tbl8_groups_in_use(), 2);
    assert_eq!(
        w.insert(ip("10.0.3.0"), 25, 3),
        Err(FibError::OutOfGroups {
            family: "IPv4",
            groups: 2
        })
    );
    assert_eq!(w.get(ip("10.0.3.0"), 25), None);
    assert_eq!(w.len(), 3);
    assert_eq!(w.tbl8_groups_in_use(), 2);
    assert_eq!(r.lookup(a("10.0.3.1")), Some(8));
    assert_eq!(r.lookup(a("10.0.1.1")), Some(1));
    assert_eq!(r.lookup(a("10.0.2.1")), Some(2));
    // Existing groups and short prefixes still accept updates.
    w.insert(ip("10.0.1.128"), 26, 4).unwrap();
    w.insert(ip("10.0.3.0"), 24, 5).unwrap();
    assert_eq!(r.lookup(a("10.0.1.130")), Some(4));
    assert_eq!(r.lookup(a("10.0.3.1")), Some(5));
    // A pool of zero groups refuses every long prefix.
    let (mut w0, r0) = table(0);
    assert!(matches!(
        w0.insert(ip("10.0.0.1"), 32, 1),
        Err(FibError::OutOfGroups { groups: 0, .. })
    ));
    assert!(w0.is_empty());
    assert_eq!(r0.lookup(a("10.0.0.1")), None);
}

#[test]
fn tbl8_groups_collapse_and_are_reused_after_release_quarantine() {
    let (mut w, r) = table(2);
    w.insert(ip("10.0.1.0"), 24, 24).unwrap();
    w.insert(ip("10.0.1.0"), 25, 1).unwrap();
    w.insert(ip("10.0.2.0"), 25, 2).unwrap();
    assert_eq!(w.tbl8_groups_in_use(), 2);
    // Collapse the first group: its /24 goes back to a plain tbl24 entry.
    w.remove(ip("10.0.1.0"), 25).unwrap();
    assert_eq!(r.lookup(a("10.0.1.1")), Some(24));
    assert_eq!(w.tbl8_groups_in_use(), 1);
    assert_eq!(w.tbl8_groups_quarantined(), 1);
    // The quarantined group is not reused yet.
    assert!(matches!(
        w.insert(ip("10.0.3.0"), 25, 3),
        Err(FibError::OutOfGroups { .. })
    ));
    w.release_quarantine();
    assert_eq!(w.tbl8_groups_quarantined(), 0);
    w.insert(ip("10.0.3.0"), 25, 3).unwrap();
    assert_eq!(w.tbl8_groups_in_use(), 2);
    assert_eq!(r.lookup(a("10.0.3.1")), Some(3));
    assert_eq!(r.lookup(a("10.0.3.200")), None);
    assert_eq!(r.lookup(a("10.0.1.1")), Some(24));
    assert_eq!(r.lookup(a("10.0.2.1")), Some(2));
}

#[test]
fn lookup_batch_matches_lookup_and_handles_mismatched_lengths() {
    let (mut w, r) = table(64);
    for (p, l, v) in synthetic_bgp_table(2_000, 3) {
        w.insert(p, l, v).unwrap();
    }
    let mut rng = Pcg64::seed_from_u64(9);
    let addrs: Vec<u32> = (0..1000).map(|_| rng.gen()).collect();
    let mut out = vec![0; 1000];
    r.lookup_batch(&addrs, &mut out);
    for (&addr, &got) in addrs.iter().zip(&out) {
        assert_eq!(r.lookup(addr).unwrap_or(NO_ROUTE), got);
    }
    let mut short = vec![123; 10];
    r.lookup_batch(&addrs, &mut short);
    assert_eq!(&short[..], &out[..10]);
    let mut long = vec![123; 2000];
    r.lookup_batch(&addrs, &mut long);
    assert_eq!(&long[..1000], &out[..]);
    assert!(long[1000..].iter().all(|&v| v == 123));
}

#[test]
fn apply_runs_updates_in_order_and_reports_the_failing_index() {
    let (mut w, r) = table(1);
    let updates = [
        Lpm4Update::Insert {
            prefix: ip("10.0.0.0"),
            len: 8,
            value: 1,
        },
        Lpm4Update::Insert {
            prefix: ip("10.0.0.0"),
            len: 25,
            value: 2,
        },
        Lpm4Update::Remove {
            prefix: ip("10.0.0.0"),
            len: 8,
        },
        Lpm4Update::Insert {
            prefix: ip("10.0.1.0"),
            len: 25,
            value: 3,
        },
    ];
    let (index, err) = w.apply(&updates).unwrap_err();
    assert_eq!(index, 3);
    assert!(matches!(err, FibError::OutOfGroups { .. }));
    assert_eq!(r.lookup(a("10.0.0.1")), Some(2));
    assert_eq!(r.lookup(a("10.0.0.129")), None);
    assert_eq!(w.len(), 1);
}

#[test]
fn reader_is_clone_send_sync_and_writer_is_send() {
    fn assert_reader<T: Clone + Send + Sync + 'static>() {}
    fn assert_writer<T: Send + 'static>() {}
    assert_reader::<Lpm4Reader>();
    assert_writer::<Lpm4Writer>();
    let (w, r) = table(1 << 14);
    assert_eq!(r.memory_bytes(), (1 << 24) * 4 + (1 << 14) * 256 * 4);
    assert_eq!(w.reader().memory_bytes(), r.memory_bytes());
    assert_eq!(w.tbl8_groups(), 1 << 14);
}

/// Checks `r` against `reference` at random addresses and at the first and
/// last address of every prefix and just outside them.
fn check_against(r: &Lpm4Reader, reference: &Naive, rng: &mut Pcg64) {
    let mut addrs: Vec<u32> = (0..64).map(|_| rng.gen()).collect();
    for &(p, len, _) in &reference.0 {
        let last = p | !mask(len);
        addrs.extend([p, last, p.wrapping_sub(1), last.wrapping_add(1)]);
    }
    let mut out = vec![0; addrs.len()];
    r.lookup_batch(&addrs, &mut out);
    for (&addr, &got) in addrs.iter().zip(&out) {
        let want = reference.lookup(addr);
        assert_eq!(r.lookup(addr), want, "address {}", Ipv4Addr::from(addr));
        assert_eq!(
            got,
            want.unwrap_or(NO_ROUTE),
            "batch {}",
            Ipv4Addr::from(addr)
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, u8, u32),
    RemoveExisting(usize),
    RemoveAny(u32, u8),
}

fn addr_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        1 => any::<u32>(),
        3 => any::<u16>().prop_map(|x| 0x0A00_0000 | u32::from(x)),
        3 => any::<u8>().prop_map(|x| 0x0A00_0100 | u32::from(x)),
        1 => any::<u8>().prop_map(|x| 0x0A00_0200 | u32::from(x)),
    ]
}

fn len_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![1 => 0..=7u8, 4 => 8..=15u8, 40 => 16..=32u8]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (addr_strategy(), len_strategy(), 0..8u32).prop_map(|(p, l, v)| Op::Insert(p, l, v)),
        2 => any::<usize>().prop_map(Op::RemoveExisting),
        1 => (addr_strategy(), len_strategy()).prop_map(|(p, l)| Op::RemoveAny(p, l)),
    ]
}

static SHARED: Mutex<Option<(Lpm4Writer, Lpm4Reader)>> = Mutex::new(None);

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn matches_naive_reference_after_random_inserts_and_removes(
        ops in proptest::collection::vec(op_strategy(), 1..60),
        seed in any::<u64>(),
    ) {
        // Building a 64 MiB table costs ~0.4 s in debug builds, so cases share
        // one; each case empties it again (a failed case leaves it non-empty
        // and the next case starts afresh).
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let stale = match shared.as_ref() {
            Some((w, _)) => !w.is_empty() || w.tbl8_groups_in_use() != 0,
            None => true,
        };
        if stale {
            *shared = Some(table(8));
        }
        let Some((w, r)) = shared.as_mut() else { unreachable!() };
        let mut reference = Naive::default();
        let mut rng = Pcg64::seed_from_u64(seed);
        for op in ops {
            match op {
                Op::Insert(p, l, v) => match w.insert(Ipv4Addr::from(p), l, v) {
                    Ok(prev) => prop_assert_eq!(prev, reference.insert(p, l, v)),
                    Err(FibError::OutOfGroups { .. }) => prop_assert!(l > 24),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                },
                Op::RemoveExisting(i) => {
                    if !reference.0.is_empty() {
                        let (p, l, _) = reference.0[i % reference.0.len()];
                        let want = reference.remove(p, l);
                        prop_assert_eq!(w.remove(Ipv4Addr::from(p), l), Ok(want));
                    }
                }
                Op::RemoveAny(p, l) => {
                    let want = reference.remove(p, l);
                    prop_assert_eq!(w.remove(Ipv4Addr::from(p), l), Ok(want));
                }
            }
            prop_assert_eq!(w.len(), reference.0.len());
            if rng.gen_ratio(1, 4) {
                w.release_quarantine();
            }
        }
        check_against(r, &reference, &mut rng);
        for &(p, l, v) in &reference.0 {
            prop_assert_eq!(w.get(Ipv4Addr::from(p), l), Some(v));
        }
        // Removing everything empties the table and frees every group.
        for (p, l, _) in std::mem::take(&mut reference.0) {
            w.remove(Ipv4Addr::from(p), l).unwrap();
        }
        prop_assert!(w.is_empty());
        prop_assert_eq!(w.tbl8_groups_in_use(), 0);
        check_against(r, &reference, &mut rng);
    }
}

#[test]
fn concurrent_reader_only_sees_the_old_or_new_answer() {
    const A: u32 = 100;
    const B: u32 = 200;
    let (mut w, r) = table(4);
    let target = a("10.1.2.3");
    w.insert(ip("10.0.0.0"), 8, A).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        std::thread::spawn(move || {
            let (mut seen_a, mut seen_b) = (0u64, 0u64);
            let mut out = [0u32; 4];
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    match r.lookup(target) {
                        Some(A) => seen_a += 1,
                        Some(B) => seen_b += 1,
                        other => panic!("reader saw {other:?}"),
                    }
                }
                r.lookup_batch(&[target; 4], &mut out);
                for v in out {
                    assert!(v == A || v == B, "batch saw {v}");
                }
                done.fetch_add(1, Ordering::Release);
            }
            (seen_a, seen_b)
        })
    };
    // Waits until the reader has completed every lookup it had started.
    let quiesce = |w: &mut Lpm4Writer| {
        let start = done.load(Ordering::Acquire);
        while done.load(Ordering::Acquire) < start + 2 && !reader.is_finished() {
            std::hint::spin_loop();
        }
        w.release_quarantine();
    };
    // Run for a fixed wall-clock time so release and debug builds both give
    // the reader many chances to land inside an update.
    let started = std::time::Instant::now();
    let mut round = 0u32;
    while round < 200 || started.elapsed() < std::time::Duration::from_millis(1500) {
        round += 1;
        let v = if round % 2 == 0 { B } else { A };
        // Leave a foreign value (12) in a quarantined group, then release it
        // so the next group allocated (for the target's /24) reuses it.
        w.insert(ip("192.168.0.0"), 16, 12).unwrap();
        w.insert(ip("192.168.5.0"), 25, 13).unwrap();
        w.remove(ip("192.168.5.0"), 25).unwrap();
        quiesce(&mut w);
        // A more-specific inside a tbl8 group, created and collapsed.
        w.insert(ip("10.1.2.0"), 25, v).unwrap();
        w.insert(ip("10.1.2.128"), 25, 7).unwrap();
        w.insert(ip("10.1.3.0"), 26, 9).unwrap();
        w.remove(ip("10.1.2.0"), 25).unwrap();
        w.remove(ip("10.1.2.128"), 25).unwrap();
        // A more-specific through tbl24 only, and unrelated prefixes.
        w.insert(ip("10.1.0.0"), 16, v).unwrap();
        w.insert(ip("10.1.2.4"), 30, 11).unwrap();
        w.remove(ip("10.1.0.0"), 16).unwrap();
        w.insert(ip("10.1.2.3"), 32, B).unwrap();
        w.remove(ip("10.1.2.3"), 32).unwrap();
        w.remove(ip("10.1.2.4"), 30).unwrap();
        w.remove(ip("10.1.3.0"), 26).unwrap();
        w.remove(ip("192.168.0.0"), 16).unwrap();
        quiesce(&mut w);
    }
    stop.store(true, Ordering::Relaxed);
    let (seen_a, seen_b) = reader.join().expect("reader thread");
    assert!(seen_a + seen_b > 0);
    assert_eq!(w.len(), 1);
}

fn lookup_ref(reference: &[HashMap<u32, u32>], addr: u32) -> Option<u32> {
    (0..=32u8)
        .rev()
        .find_map(|l| reference[usize::from(l)].get(&(addr & mask(l))).copied())
}

fn check_synthetic(n: usize, seed: u64) {
    let routes = synthetic_bgp_table(n, seed);
    assert_eq!(routes.len(), n);
    let (mut w, r) = lpm4::new(Lpm4Config::default());
    let mut reference: Vec<HashMap<u32, u32>> = vec![HashMap::new(); 33];
    for &(p, l, v) in &routes {
        assert_eq!(w.insert(p, l, v), Ok(None));
        reference[usize::from(l)].insert(u32::from(p), v);
    }
    assert_eq!(w.len(), n);
    let mut rng = Pcg64::seed_from_u64(seed ^ 0x5555);
    let mut addrs: Vec<u32> = (0..20_000).map(|_| rng.gen()).collect();
    for _ in 0..20_000 {
        let (p, l, _) = routes[rng.gen_range(0..routes.len())];
        addrs.push(u32::from(p) | (rng.gen::<u32>() & !mask(l)));
    }
    let mut out = vec![0; addrs.len()];
    r.lookup_batch(&addrs, &mut out);
    for (&addr, &got) in addrs.iter().zip(&out) {
        assert_eq!(
            got,
            lookup_ref(&reference, addr).unwrap_or(NO_ROUTE),
            "{}",
            Ipv4Addr::from(addr)
        );
    }
    // Remove half, then check again.
    for &(p, l, _) in routes.iter().step_by(2) {
        w.remove(p, l).unwrap();
        reference[usize::from(l)].remove(&u32::from(p));
    }
    r.lookup_batch(&addrs, &mut out);
    for (&addr, &got) in addrs.iter().zip(&out) {
        assert_eq!(
            got,
            lookup_ref(&reference, addr).unwrap_or(NO_ROUTE),
            "{}",
            Ipv4Addr::from(addr)
        );
    }
}

#[test]
fn synthetic_bgp_table_of_100k_matches_hashmap_reference() {
    check_synthetic(100_000, 1);
}

#[test]
fn synthetic_bgp_table_of_900k_matches_hashmap_reference() {
    check_synthetic(900_000, 2);
}

#[test]
fn synthetic_bgp_table_is_deterministic_with_the_intended_mix() {
    let t = synthetic_bgp_table(50_000, 7);
    assert_eq!(t, synthetic_bgp_table(50_000, 7));
    let share =
        |f: &dyn Fn(u8) -> bool| t.iter().filter(|e| f(e.1)).count() as f64 / t.len() as f64;
    assert!((share(&|l| l == 24) - 0.60).abs() < 0.02);
    assert!((share(&|l| l > 24) - 0.04).abs() < 0.01);
    assert!(t
        .iter()
        .all(|&(p, l, v)| u32::from(p) & !mask(l) == 0 && v < 4096 && l >= 8));
}

#[test]
fn debug_output_is_a_short_summary() {
    let (mut w, r) = table(4);
    w.insert(ip("10.0.0.0"), 25, 1).unwrap();
    let (dw, dr) = (format!("{w:?}"), format!("{r:?}"));
    assert!(dw.contains("routes: 1") && dw.len() < 200, "{dw}");
    assert!(dr.len() < 200, "{dr}");
}
