//! Behaviour of the FIB's nexthop groups and writer API: route resolution,
//! interning and sharing, in-place and derived group changes, resilient
//! continuity, atomic publication, concurrency, IPv6, validation; and the
//! static neighbour table.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dataplane::fib::lpm4::Lpm4Config;
use dataplane::fib::lpm6::Lpm6Config;
use dataplane::fib::table::{
    self, FibConfig, FibReader, FibTableError, FibUpdate, FibWriter, GroupPolicy, Nexthop, Prefix,
};
use dataplane::fib::FibError;
use dataplane::neigh::{Neighbour, NeighbourTable, StaticNeighbours};
use dataplane::tracker::{BreakKind, FlowTracker, Observation, TrackerConfig};
use hashing::select::SelectError;
use hashing::{Algorithm, FlowKey, MemberId};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const SEC: u64 = 1_000_000_000;

fn config() -> FibConfig {
    FibConfig {
        lpm4: Lpm4Config { tbl8_groups: 64 },
        lpm6: Lpm6Config { groups: 256 },
        grace: Duration::from_millis(20),
        ..FibConfig::default()
    }
}

fn fib() -> (FibWriter, FibReader) {
    table::new(config())
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn nh(id: MemberId) -> Nexthop {
    Nexthop::new(id, IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)))
}

fn nhs(ids: &[MemberId]) -> Vec<Nexthop> {
    ids.iter().map(|&i| nh(i)).collect()
}

fn set(prefix: &str, ids: &[MemberId]) -> FibUpdate {
    FibUpdate::SetRoute {
        prefix: p(prefix),
        nexthops: nhs(ids),
        policy: None,
    }
}

fn set_with(prefix: &str, ids: &[MemberId], policy: GroupPolicy) -> FibUpdate {
    FibUpdate::SetRoute {
        prefix: p(prefix),
        nexthops: nhs(ids),
        policy: Some(policy),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `n` TCP flows towards `dst` from random sources and ports.
fn flows(dst: IpAddr, n: usize, seed: u64) -> Vec<FlowKey> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let src = match dst {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>())),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>())),
            };
            FlowKey::tcp(src, rng.gen_range(1024..65535), dst, 443)
        })
        .collect()
}

/// Each flow's member in the currently published FIB.
fn mapping(reader: &FibReader, keys: &[FlowKey]) -> Vec<Option<MemberId>> {
    let snap = reader.snapshot();
    keys.iter()
        .map(|k| snap.lookup(k.dst).and_then(|g| g.select(k)).map(|n| n.id))
        .collect()
}

#[test]
fn a_route_resolves_to_its_group_and_a_flow_to_a_nexthop() {
    let (mut w, r) = fib();
    let applied = w.apply(&[set("203.0.113.10/32", &[1, 2, 3])], 0).unwrap();
    assert_eq!(applied.created.len(), 1);
    assert!(applied.changes.is_empty());
    let snap = r.snapshot();
    let group = snap.lookup(ip("203.0.113.10")).expect("routed");
    assert_eq!(group.id(), applied.created[0]);
    assert_eq!(group.member_ids(), vec![1, 2, 3]);
    assert_eq!(group.policy().algorithm, Algorithm::Resilient);
    assert!(snap.lookup(ip("203.0.113.11")).is_none());
    let mut seen = std::collections::HashSet::new();
    for k in flows(ip("203.0.113.10"), 1000, 1) {
        let n = group.select(&k).expect("a nexthop");
        assert_eq!(*n, nh(n.id));
        assert_eq!(group.select(&k), Some(n), "deterministic");
        seen.insert(n.id);
    }
    assert_eq!(seen.len(), 3, "flows spread over every nexthop");
}

#[test]
fn identical_sets_share_one_group_and_different_policies_do_not() {
    let (mut w, r) = fib();
    let maglev = GroupPolicy {
        algorithm: Algorithm::Maglev,
        ..GroupPolicy::default()
    };
    w.apply(
        &[
            set("198.51.100.1/32", &[1, 2]),
            // Order of the nexthops does not matter.
            set("198.51.100.2/32", &[2, 1]),
            set_with("198.51.100.3/32", &[1, 2], maglev),
        ],
        0,
    )
    .unwrap();
    let a = w.route(p("198.51.100.1/32")).unwrap();
    let b = w.route(p("198.51.100.2/32")).unwrap();
    let c = w.route(p("198.51.100.3/32")).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(w.group_refs(a), 2);
    assert_eq!(w.group_refs(c), 1);
    assert_eq!(w.group_count(), 2);
    assert_eq!(r.snapshot().table().len(), 2);

    // Removing one sharer drops the count; removing both frees the group.
    let applied = w
        .apply(
            &[FibUpdate::RemoveRoute {
                prefix: p("198.51.100.1/32"),
            }],
            0,
        )
        .unwrap();
    assert!(applied.freed.is_empty());
    assert_eq!(w.group_refs(a), 1);
    let applied = w.apply(&[set("198.51.100.2/32", &[])], 0).unwrap();
    assert_eq!(applied.freed, vec![a], "an empty nexthop list removes");
    assert_eq!(w.route(p("198.51.100.2/32")), None);
    assert!(r.snapshot().lookup(ip("198.51.100.2")).is_none());
}

#[test]
fn removing_a_node_from_an_unshared_group_keeps_its_id_and_lpm_entry() {
    let (mut w, r) = fib();
    w.apply(&[set("203.0.113.10/32", &[1, 2, 3])], 0).unwrap();
    let id = w.route(p("203.0.113.10/32")).unwrap();
    let before = r.snapshot().group(id).unwrap().generation();
    let applied = w.apply(&[set("203.0.113.10/32", &[1, 2])], SEC).unwrap();
    assert_eq!(w.route(p("203.0.113.10/32")), Some(id));
    assert_eq!(applied.lpm_writes, 0, "the LPM is not touched");
    assert!(applied.created.is_empty() && applied.freed.is_empty());
    let snap = r.snapshot();
    assert_eq!(snap.lookup_id(ip("203.0.113.10")), Some(id));
    let group = snap.lookup(ip("203.0.113.10")).unwrap();
    assert_eq!(group.id(), id);
    assert_eq!(group.generation(), before + 1);
    assert_eq!(group.member_ids(), vec![1, 2]);
}

#[test]
fn resilient_removal_moves_only_the_removed_members_flows() {
    let (mut w, r) = fib();
    w.apply(&[set("203.0.113.10/32", &[1, 2, 3, 4])], 0)
        .unwrap();
    let keys = flows(ip("203.0.113.10"), 10_000, 2);
    let before = mapping(&r, &keys);
    w.apply(&[set("203.0.113.10/32", &[1, 2, 4])], SEC).unwrap();
    let after = mapping(&r, &keys);
    let mut moved_from_3 = 0;
    for (b, a) in before.iter().zip(&after) {
        let (b, a) = (b.unwrap(), a.unwrap());
        if b == 3 {
            assert_ne!(a, 3);
            moved_from_3 += 1;
        } else {
            assert_eq!(a, b, "a flow of a remaining member moved");
        }
    }
    assert!(moved_from_3 > 1000, "member 3 had about a quarter");
}

#[test]
fn a_shared_group_split_by_per_route_withdrawal_converges_back_to_one_group() {
    let (mut w, r) = fib();
    let routes = ["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"];
    let updates: Vec<_> = routes.iter().map(|rt| set(rt, &[1, 2, 3])).collect();
    w.apply(&updates, 0).unwrap();
    let shared = w.route(p(routes[0])).unwrap();
    assert_eq!(w.group_refs(shared), 3);

    let keys: Vec<Vec<FlowKey>> = (0..3)
        .map(|i| flows(ip(&format!("192.0.2.{}", i + 1)), 3000, 10 + i))
        .collect();
    let before: Vec<_> = keys.iter().map(|k| mapping(&r, k)).collect();

    // The node withdraws route by route, one batch each.
    let first = w.apply(&[set(routes[0], &[1, 2])], SEC).unwrap();
    let derived = w.route(p(routes[0])).unwrap();
    assert_ne!(derived, shared, "a shared group is not changed in place");
    assert_eq!(first.created, vec![derived]);
    assert_eq!(w.route(p(routes[1])), Some(shared));
    assert_eq!(w.group_refs(shared), 2);

    let second = w.apply(&[set(routes[1], &[1, 2])], 2 * SEC).unwrap();
    assert!(second.created.is_empty(), "joins the derived group");
    assert_eq!(w.route(p(routes[1])), Some(derived));
    let third = w.apply(&[set(routes[2], &[1, 2])], 3 * SEC).unwrap();
    assert_eq!(third.freed, vec![shared]);
    assert_eq!(w.group_refs(derived), 3);
    assert_eq!(w.group_count(), 1);
    for rt in routes {
        assert_eq!(w.route(p(rt)), Some(derived));
    }

    // Resilient continuity on every route: only member 3's flows moved.
    for (k, b) in keys.iter().zip(&before) {
        let a = mapping(&r, k);
        for (b, a) in b.iter().zip(&a) {
            if *b != Some(3) {
                assert_eq!(a, b);
            } else {
                assert!(a.is_some() && *a != Some(3));
            }
        }
    }

    // A node joining later changes the now unshared-by-others group in place
    // when every route gains it in one batch.
    let updates: Vec<_> = routes.iter().map(|rt| set(rt, &[1, 2, 3])).collect();
    let back = w.apply(&updates, 4 * SEC).unwrap();
    assert_eq!(back.lpm_writes, 0);
    assert_eq!(back.changes.len(), 1);
    assert_eq!(w.route(p(routes[2])), Some(derived));
}

#[test]
fn a_shared_group_losing_a_node_on_every_route_in_one_batch_changes_in_place() {
    let (mut w, r) = fib();
    let routes = ["192.0.2.1/32", "192.0.2.2/32", "2001:db8::1/128"];
    let updates: Vec<_> = routes.iter().map(|rt| set(rt, &[1, 2, 3])).collect();
    w.apply(&updates, 0).unwrap();
    let g = w.route(p(routes[0])).unwrap();
    let updates: Vec<_> = routes.iter().map(|rt| set(rt, &[1, 3])).collect();
    let applied = w.apply(&updates, SEC).unwrap();
    assert_eq!(applied.lpm_writes, 0);
    assert_eq!(applied.changes.len(), 1);
    assert_eq!(applied.changes[0].group, g);
    for rt in routes {
        assert_eq!(w.route(p(rt)), Some(g));
    }
    assert_eq!(
        r.snapshot().lookup(ip("2001:db8::1")).unwrap().member_ids(),
        vec![1, 3]
    );
}

#[test]
fn applied_changes_carry_members_before_and_after() {
    let (mut w, _r) = fib();
    w.apply(
        &[
            set("203.0.113.1/32", &[1, 2, 3]),
            set("203.0.113.2/32", &[4, 5]),
            set("203.0.113.3/32", &[4, 5]),
        ],
        0,
    )
    .unwrap();
    let g1 = w.route(p("203.0.113.1/32")).unwrap();
    let applied = w
        .apply(
            &[
                set("203.0.113.1/32", &[1, 3, 7]),
                set("203.0.113.2/32", &[5]),
            ],
            5 * SEC,
        )
        .unwrap();
    assert_eq!(applied.changes.len(), 2);
    let c1 = &applied.changes[0];
    assert_eq!((c1.group, c1.time), (g1, 5 * SEC));
    assert_eq!(c1.members_before, vec![1, 2, 3]);
    assert_eq!(c1.members_after, vec![1, 3, 7]);
    let c2 = &applied.changes[1];
    assert_eq!(Some(c2.group), w.route(p("203.0.113.2/32")));
    assert_eq!(c2.members_before, vec![4, 5]);
    assert_eq!(c2.members_after, vec![5]);
    // A no-op batch changes nothing.
    let again = w
        .apply(&[set("203.0.113.1/32", &[7, 3, 1])], 6 * SEC)
        .unwrap();
    assert!(again.changes.is_empty() && again.lpm_writes == 0);
}

#[test]
fn a_batch_is_published_atomically() {
    let (mut w, r) = fib();
    w.apply(
        &[
            set("203.0.113.1/32", &[1, 2, 3]),
            set("203.0.113.2/32", &[4, 5, 6]),
        ],
        0,
    )
    .unwrap();
    let old = r.snapshot();
    w.apply(
        &[
            set("203.0.113.1/32", &[1, 2]),
            set("203.0.113.2/32", &[4, 5]),
            set("203.0.113.3/32", &[8, 9]),
        ],
        SEC,
    )
    .unwrap();
    let new = r.snapshot();
    let members = |s: &table::FibSnapshot<'_>, a: &str| s.lookup(ip(a)).map(|g| g.member_ids());
    assert_eq!(members(&old, "203.0.113.1"), Some(vec![1, 2, 3]));
    assert_eq!(members(&old, "203.0.113.2"), Some(vec![4, 5, 6]));
    assert_eq!(members(&old, "203.0.113.3"), None);
    assert_eq!(members(&new, "203.0.113.1"), Some(vec![1, 2]));
    assert_eq!(members(&new, "203.0.113.2"), Some(vec![4, 5]));
    assert_eq!(members(&new, "203.0.113.3"), Some(vec![8, 9]));
    drop(old);
}

#[test]
fn a_reader_always_finds_a_group_for_a_routed_address_while_the_writer_applies() {
    let (mut w, r) = table::new(FibConfig {
        grace: Duration::from_secs(5),
        ..config()
    });
    let stable = ["198.51.100.1/32", "198.51.100.2/32", "198.51.100.0/24"];
    let v6 = "2001:db8:1::/48";
    let mut initial: Vec<_> = stable.iter().map(|rt| set(rt, &[1, 2, 3, 4])).collect();
    initial.push(set(v6, &[1, 2, 3, 4]));
    w.apply(&initial, 0).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let reader = {
        let (r, stop, lookups) = (r.clone(), Arc::clone(&stop), Arc::clone(&lookups));
        std::thread::spawn(move || {
            let addrs = [
                ip("198.51.100.1"),
                ip("198.51.100.2"),
                ip("198.51.100.77"),
                ip("2001:db8:1::5"),
                // Routed by the churning /25 or, without it, by the /24.
                ip("198.51.100.200"),
            ];
            let keys: Vec<FlowKey> = addrs.iter().flat_map(|&a| flows(a, 16, 3)).collect();
            let mut misses = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Hold each snapshot for a while, as a worker does a batch.
                let snap = r.snapshot();
                for _ in 0..20 {
                    for k in &keys {
                        match snap.lookup(k.dst).and_then(|g| g.select(k)) {
                            Some(_) => {}
                            None => misses += 1,
                        }
                    }
                }
                lookups.fetch_add(20 * keys.len() as u64, Ordering::Relaxed);
            }
            misses
        })
    };
    let mut rng = Pcg64::seed_from_u64(4);
    for i in 0..300u64 {
        // Random non-empty subsets, per route: splits, joins, in-place
        // changes and repoints, plus a churning extra route.
        let mut updates = Vec::new();
        for rt in stable.iter().chain([&v6]) {
            let ids: Vec<MemberId> = (1..=4).filter(|_| rng.gen_bool(0.7)).collect();
            let ids = if ids.is_empty() { vec![2] } else { ids };
            updates.push(set(rt, &ids));
        }
        // A policy change repoints the route to a fresh group every batch.
        let algorithm = if i % 2 == 0 {
            Algorithm::Maglev
        } else {
            Algorithm::Rendezvous
        };
        updates.push(set_with(
            "198.51.100.2/32",
            &[1, 2],
            GroupPolicy {
                algorithm,
                ..GroupPolicy::default()
            },
        ));
        if i % 2 == 0 {
            updates.push(set("198.51.100.128/25", &[9]));
        } else {
            updates.push(FibUpdate::RemoveRoute {
                prefix: p("198.51.100.128/25"),
            });
        }
        w.apply(&updates, i * SEC).unwrap();
        if i % 3 == 0 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let misses = reader.join().expect("the reader did not panic");
    assert_eq!(misses, 0);
    assert!(lookups.load(Ordering::Relaxed) > 0);
}

#[test]
fn ipv6_routes_work_the_same() {
    let (mut w, r) = fib();
    w.apply(
        &[
            set("2001:db8::/32", &[1, 2, 3]),
            set("2001:db8:5::/48", &[1, 2, 3]),
        ],
        0,
    )
    .unwrap();
    let g = w.route(p("2001:db8::/32")).unwrap();
    assert_eq!(w.route(p("2001:db8:5::/48")), Some(g));
    let keys = flows(ip("2001:db8:1::1"), 5000, 5);
    let before = mapping(&r, &keys);
    assert!(before.iter().all(Option::is_some));
    w.apply(
        &[
            set("2001:db8::/32", &[1, 3]),
            set("2001:db8:5::/48", &[1, 3]),
        ],
        SEC,
    )
    .unwrap();
    assert_eq!(w.route(p("2001:db8::/32")), Some(g));
    let after = mapping(&r, &keys);
    for (b, a) in before.iter().zip(&after) {
        if *b != Some(2) {
            assert_eq!(a, b);
        }
    }
    assert!(r.snapshot().lookup(ip("2001:db9::1")).is_none());
}

#[test]
fn validation_errors_leave_the_fib_unchanged() {
    let (mut w, r) = fib();
    w.apply(&[set("203.0.113.1/32", &[1, 2, 3])], 0).unwrap();
    let g = w.route(p("203.0.113.1/32")).unwrap();
    let jump = GroupPolicy {
        algorithm: Algorithm::Jump,
        ..GroupPolicy::default()
    };
    let weighted = FibUpdate::SetRoute {
        prefix: p("203.0.113.4/32"),
        nexthops: vec![nh(1), Nexthop::weighted(2, ip("10.0.0.2"), 3)],
        policy: Some(jump),
    };
    let zero = FibUpdate::SetRoute {
        prefix: p("203.0.113.4/32"),
        nexthops: vec![Nexthop::weighted(2, ip("10.0.0.2"), 0)],
        policy: None,
    };
    let dup = FibUpdate::SetRoute {
        prefix: p("203.0.113.4/32"),
        nexthops: vec![nh(1), nh(1)],
        policy: None,
    };
    let bad_len = FibUpdate::SetRoute {
        prefix: Prefix::V4(Ipv4Addr::new(10, 0, 0, 0), 33),
        nexthops: nhs(&[1]),
        policy: None,
    };
    let bad_param = set_with(
        "203.0.113.4/32",
        &[1, 2],
        GroupPolicy {
            algorithm: Algorithm::Maglev,
            params: hashing::SelectorParams {
                maglev_table_size: 100,
                ..Default::default()
            },
            ..GroupPolicy::default()
        },
    );
    let cases = [
        (weighted, "weights"),
        (zero, "zero"),
        (dup, "duplicate"),
        (bad_len, "length"),
        (bad_param, "param"),
    ];
    for (bad, what) in cases {
        // Good updates around the bad one must not be applied either.
        let batch = [
            set("203.0.113.1/32", &[1, 2]),
            set("203.0.113.2/32", &[5, 6]),
            FibUpdate::SetDefaultPolicy(jump),
            bad,
        ];
        let err = w.apply(&batch, SEC).unwrap_err();
        match (&err, what) {
            (
                FibTableError::Nexthops {
                    index: 3,
                    source: SelectError::WeightsUnsupported(Algorithm::Jump),
                    ..
                },
                "weights",
            )
            | (
                FibTableError::Nexthops {
                    source: SelectError::ZeroWeight(2),
                    ..
                },
                "zero",
            )
            | (
                FibTableError::Nexthops {
                    source: SelectError::DuplicateMember(1),
                    ..
                },
                "duplicate",
            )
            | (FibTableError::PrefixLength { len: 33, .. }, "length")
            | (
                FibTableError::Nexthops {
                    source: SelectError::InvalidParam(_),
                    ..
                },
                "param",
            ) => {}
            _ => panic!("{what}: unexpected error {err:?}"),
        }
        assert!(!err.to_string().is_empty());
        assert_eq!(w.route(p("203.0.113.1/32")), Some(g));
        assert_eq!(w.route(p("203.0.113.2/32")), None);
        assert_eq!(w.default_policy().algorithm, Algorithm::Resilient);
        assert_eq!(w.group_count(), 1);
        let snap = r.snapshot();
        assert_eq!(snap.table().len(), 1);
        let group = snap.lookup(ip("203.0.113.1")).unwrap();
        assert_eq!((group.generation(), group.member_ids()), (0, vec![1, 2, 3]));
        assert!(snap.lookup(ip("203.0.113.2")).is_none());
    }
    // The writer still works afterwards.
    w.apply(&[set("203.0.113.2/32", &[5, 6])], 2 * SEC).unwrap();
    assert!(r.snapshot().lookup(ip("203.0.113.2")).is_some());
}

#[test]
fn a_refused_batch_drops_the_references_it_added() {
    let (mut w, _r) = fib();
    w.apply(&[set("203.0.113.1/32", &[1, 2])], 0).unwrap();
    let g = w.route(p("203.0.113.1/32")).unwrap();
    let bad_param = set_with(
        "203.0.113.9/32",
        &[1, 2],
        GroupPolicy {
            algorithm: Algorithm::Maglev,
            params: hashing::SelectorParams {
                maglev_table_size: 100,
                ..Default::default()
            },
            ..GroupPolicy::default()
        },
    );
    // Two routes join `g`, then the batch is refused.
    let batch = [
        set("203.0.113.2/32", &[1, 2]),
        set("203.0.113.3/32", &[2, 1]),
        bad_param,
    ];
    w.apply(&batch, SEC).unwrap_err();
    assert_eq!(w.group_refs(g), 1);
    assert_eq!(w.route(p("203.0.113.2/32")), None);
    assert_eq!(w.group_count(), 1);
    // Releasing the one route frees the group.
    let applied = w
        .apply(
            &[FibUpdate::RemoveRoute {
                prefix: p("203.0.113.1/32"),
            }],
            2 * SEC,
        )
        .unwrap();
    assert_eq!(applied.freed, vec![g]);
    assert_eq!(w.group_count(), 0);
}

#[test]
fn an_lpm_refusal_rolls_the_batch_back() {
    let (mut w, r) = table::new(FibConfig {
        lpm4: Lpm4Config { tbl8_groups: 1 },
        ..config()
    });
    w.apply(&[set("203.0.113.1/32", &[1, 2])], 0).unwrap();
    // A /32 in another /24 needs a second tbl8 group, which does not exist.
    let err = w
        .apply(
            &[
                set("203.0.113.1/32", &[1]),
                set("192.0.2.0/24", &[3]),
                set("198.51.100.7/32", &[4]),
            ],
            SEC,
        )
        .unwrap_err();
    assert!(matches!(
        err,
        FibTableError::Lpm {
            source: FibError::OutOfGroups { .. },
            ..
        }
    ));
    let snap = r.snapshot();
    assert_eq!(
        snap.lookup(ip("203.0.113.1")).unwrap().member_ids(),
        vec![1, 2]
    );
    assert!(snap.lookup(ip("192.0.2.1")).is_none());
    assert!(snap.lookup(ip("198.51.100.7")).is_none());
    assert_eq!(w.route_count(), 1);
    drop(snap);
    w.apply(&[set("192.0.2.0/24", &[3])], 2 * SEC).unwrap();
    assert!(r.snapshot().lookup(ip("192.0.2.1")).is_some());
}

#[test]
fn group_ids_are_exhausted_with_a_typed_error() {
    let (mut w, _r) = table::new(FibConfig {
        max_groups: 2,
        ..config()
    });
    let err = w
        .apply(
            &[
                set("203.0.113.1/32", &[1]),
                set("203.0.113.2/32", &[2]),
                set("203.0.113.3/32", &[3]),
            ],
            0,
        )
        .unwrap_err();
    assert_eq!(err, FibTableError::GroupsExhausted { max: 2 });
    assert_eq!(w.route_count(), 0);
    // Freed ids are reused once no reader holds the tables that had them.
    w.apply(
        &[set("203.0.113.1/32", &[1]), set("203.0.113.2/32", &[2])],
        0,
    )
    .unwrap();
    w.apply(&[set("203.0.113.1/32", &[])], 0).unwrap();
    w.apply(&[], 0).unwrap();
    w.apply(&[set("203.0.113.3/32", &[3])], 0).unwrap();
    assert_eq!(w.group_count(), 2);
}

#[test]
fn prefixes_parse_and_display() {
    assert_eq!(
        p("203.0.113.10/32"),
        Prefix::V4(Ipv4Addr::new(203, 0, 113, 10), 32)
    );
    assert_eq!(p("203.0.113.10"), p("203.0.113.10/32"));
    assert_eq!(p("2001:db8::/32").to_string(), "2001:db8::/32");
    assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
    for bad in [
        "10.0.0.0/33",
        "2001:db8::/129",
        "10.0.0/8",
        "10.0.0.0/",
        "x/1",
        "1.2.3.4/+1",
    ] {
        assert!(bad.parse::<Prefix>().is_err(), "{bad}");
    }
    // Host bits are ignored: both name one route.
    let (mut w, _r) = fib();
    w.apply(&[set("10.1.2.3/8", &[1])], 0).unwrap();
    assert!(w.route(p("10.0.0.0/8")).is_some());
}

#[test]
fn static_neighbours_resolve_remove_and_record_requests() {
    let table = StaticNeighbours::new();
    let a = ip("10.0.0.1");
    let b = ip("fe80::1");
    let n = Neighbour {
        mac: [2, 0, 0, 0, 0, 1],
        port: 3,
    };
    assert_eq!(table.resolve(a), None);
    table.request(a);
    assert!(table.was_requested(a));
    assert_eq!(table.insert(a, n), None);
    assert_eq!(table.resolve(a), Some(n));
    table.request(a); // resolved: not recorded again
    table.request(b);
    assert_eq!(table.take_requests(), vec![a, b]);
    assert!(table.requests().is_empty());
    assert_eq!(table.len(), 1);
    assert_eq!(table.remove(a), Some(n));
    assert_eq!(table.resolve(a), None);
    assert!(table.is_empty());
    // Through the trait object, as the pipeline will hold it.
    let dynamic: Arc<dyn NeighbourTable> = Arc::new(StaticNeighbours::new());
    dynamic.request(b);
    assert_eq!(dynamic.resolve(b), None);
}

/// Any 64-bit hash of the flow key, as the tracker's fingerprint.
fn fingerprint(key: &FlowKey) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Feeds one packet per flow through a snapshot lookup into the tracker;
/// returns each flow's (group, member) and observation.
fn observe_all(
    reader: &FibReader,
    tracker: &mut FlowTracker,
    keys: &[FlowKey],
    now: u64,
) -> Vec<((u32, MemberId), Observation)> {
    let snap = reader.snapshot();
    keys.iter()
        .map(|k| {
            let g = snap.lookup(k.dst).expect("routed");
            let m = g.select(k).expect("a nexthop").id;
            ((g.id(), m), tracker.observe(fingerprint(k), g.id(), m, now))
        })
        .collect()
}

#[test]
fn a_derived_group_split_off_a_shared_one_reports_exactly_the_moved_flows_to_the_tracker() {
    let (mut w, r) = fib();
    let (a, b) = ("198.51.100.1/32", "198.51.100.2/32");
    w.apply(&[set(a, &[1, 2, 3, 4]), set(b, &[1, 2, 3, 4])], 0)
        .unwrap();
    let shared = w.route(p(a)).unwrap();
    assert_eq!(w.route(p(b)), Some(shared));
    let mut t = FlowTracker::new(TrackerConfig::new(1 << 16, 60 * SEC)).unwrap();
    let keys_a = flows(ip("198.51.100.1"), 5000, 31);
    let keys_b = flows(ip("198.51.100.2"), 5000, 32);
    let before = observe_all(&r, &mut t, &keys_a, 0);
    let before_b = observe_all(&r, &mut t, &keys_b, 0);
    assert!(before.iter().all(|(_, o)| *o == Observation::New));

    // Member 3 withdrawn on route A only: a derived group under a new id.
    let applied = w.apply(&[set(a, &[1, 2, 4])], SEC).unwrap();
    let derived = w.route(p(a)).unwrap();
    assert_ne!(derived, shared);
    assert_eq!(w.route(p(b)), Some(shared));
    assert_eq!(applied.changes.len(), 1);
    let c = &applied.changes[0];
    assert_eq!((c.group, c.derived_from), (derived, Some(shared)));
    assert_eq!(
        (c.members_before.clone(), c.members_after.clone()),
        (vec![1, 2, 3, 4], vec![1, 2, 4])
    );
    let ev = t.group_changed(c.clone());

    let after = observe_all(&r, &mut t, &keys_a, 2 * SEC);
    let mut moved = 0u64;
    for (((g0, m0), _), ((g1, m1), obs)) in before.iter().zip(&after) {
        assert_eq!((*g0, *g1), (shared, derived));
        if m0 == m1 {
            assert_eq!(*obs, Observation::Continued);
        } else {
            // Resilient: only member 3's flows move.
            assert_eq!(*m0, 3);
            moved += 1;
            assert_eq!(
                *obs,
                Observation::Broken {
                    kind: BreakKind::Unavoidable,
                    event: Some(ev)
                }
            );
        }
    }
    assert!(moved > 800, "member 3 had about a quarter of 5000 flows");
    let report = t.reports().into_iter().find(|x| x.event == ev).unwrap();
    assert_eq!((report.unavoidable, report.collateral), (moved, 0));
    assert_eq!(report.live_flows, 10_000, "the parent's flows, both routes");
    let stats = t.stats();
    assert_eq!((stats.breaks, stats.regrouped), (moved, 0));

    // Route B withdraws member 3 later and joins the derived group: the join
    // is announced with the lineage, and B's moves are attributed to it.
    let joined = w.apply(&[set(b, &[1, 2, 4])], 3 * SEC).unwrap();
    assert_eq!(w.route(p(b)), Some(derived));
    assert!(joined.created.is_empty());
    assert_eq!(joined.freed, vec![shared]);
    assert_eq!(joined.changes.len(), 1);
    let c = &joined.changes[0];
    assert_eq!((c.group, c.derived_from), (derived, Some(shared)));
    let ev_join = t.group_changed(c.clone());
    let after_b = observe_all(&r, &mut t, &keys_b, 4 * SEC);
    let mut moved_b = 0u64;
    for (((_, m0), _), ((g1, m1), obs)) in before_b.iter().zip(&after_b) {
        assert_eq!(*g1, derived);
        if m0 == m1 {
            assert_eq!(*obs, Observation::Continued);
        } else {
            assert_eq!(*m0, 3);
            moved_b += 1;
            assert_eq!(
                *obs,
                Observation::Broken {
                    kind: BreakKind::Unavoidable,
                    event: Some(ev_join)
                }
            );
        }
    }
    assert!(moved_b > 800);
    let stats = t.stats();
    assert_eq!((stats.breaks, stats.regrouped), (moved + moved_b, 0));
    let report = t
        .reports()
        .into_iter()
        .find(|x| x.event == ev_join)
        .unwrap();
    assert_eq!((report.unavoidable, report.collateral), (moved_b, 0));
    assert_eq!(
        report.live_flows, 5000,
        "route B's flows, still in the parent"
    );
    // Route A's flows are untouched by B's join.
    let again = observe_all(&r, &mut t, &keys_a, 5 * SEC);
    assert!(again.iter().all(|(_, o)| *o == Observation::Continued));
}

#[test]
fn routes_joining_a_derived_group_created_in_the_same_batch_announce_it_once() {
    let (mut w, _r) = fib();
    let routes = ["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"];
    let updates: Vec<_> = routes.iter().map(|rt| set(rt, &[1, 2, 3])).collect();
    w.apply(&updates, 0).unwrap();
    let shared = w.route(p(routes[0])).unwrap();
    let applied = w
        .apply(&[set(routes[0], &[1, 2]), set(routes[1], &[1, 2])], SEC)
        .unwrap();
    let derived = w.route(p(routes[0])).unwrap();
    assert_eq!(w.route(p(routes[1])), Some(derived));
    assert_eq!(applied.changes.len(), 1);
    assert_eq!(applied.changes[0].derived_from, Some(shared));
    // In-place changes name no parent.
    let in_place = w
        .apply(&[set(routes[0], &[1]), set(routes[1], &[1])], 2 * SEC)
        .unwrap();
    assert_eq!(in_place.changes.len(), 1);
    assert_eq!(
        (in_place.changes[0].group, in_place.changes[0].derived_from),
        (derived, None)
    );
}

/// A resilient group with 64 buckets and the given idle timer (no forcing).
fn resilient_policy(idle: u64) -> GroupPolicy {
    let mut policy = GroupPolicy {
        algorithm: Algorithm::Resilient,
        ..GroupPolicy::default()
    };
    policy.params.resilient.buckets = 64;
    policy.params.resilient.idle_timer = idle;
    policy.params.resilient.unbalanced_timer = 0;
    policy
}

/// Each flow's member, marking its bucket busy at `now` (as forwarding does).
fn forward_all(reader: &FibReader, keys: &[FlowKey], now: u64) -> Vec<MemberId> {
    let snap = reader.snapshot();
    keys.iter()
        .map(|k| snap.lookup(k.dst).unwrap().select_at(k, now).unwrap().id)
        .collect()
}

#[test]
fn a_member_added_to_a_busy_resilient_group_gets_buckets_only_once_they_go_idle() {
    let (mut w, r) = fib();
    let policy = resilient_policy(10 * SEC);
    let prefix = "203.0.113.20/32";
    w.apply(&[set_with(prefix, &[1, 2], policy)], 0).unwrap();
    let keys = flows(ip("203.0.113.20"), 4_000, 7);
    let gid = w.route(p(prefix)).unwrap();
    let resilient = |r: &FibReader| {
        let snap = r.snapshot();
        let g = snap.group(gid).unwrap();
        let hashing::AnySelector::Resilient(res) = g.selector() else {
            panic!("not resilient")
        };
        (res.clone(), g.hasher().clone())
    };
    // Flows in even buckets keep sending; those in odd buckets stop at 1 s.
    let (res, hasher) = resilient(&r);
    let (busy, quiet): (Vec<FlowKey>, Vec<FlowKey>) = keys
        .iter()
        .partition(|k| res.bucket_index(hasher.hash(k)) % 2 == 0);
    assert!(busy.len() > 1_000 && quiet.len() > 1_000);
    let busy_start = forward_all(&r, &busy, 0);
    let quiet_start = forward_all(&r, &quiet, 0);

    // Member 3 joins: every bucket is busy, so nothing moves yet.
    w.apply(&[set_with(prefix, &[1, 2, 3], policy)], SEC)
        .unwrap();
    assert_eq!(w.route(p(prefix)), Some(gid), "changed in place");
    assert_eq!(forward_all(&r, &busy, SEC), busy_start);
    assert_eq!(forward_all(&r, &quiet, SEC), quiet_start);
    for t in [2, 5, 9, 10] {
        let up = w.upkeep(t * SEC);
        assert!(up.migrated.is_empty(), "moved at {t}s: {up:?}");
        assert_eq!(up.next, Some(11 * SEC), "odd buckets go idle at 11 s");
        assert_eq!(forward_all(&r, &busy, t * SEC), busy_start);
    }

    // At 11 s the odd buckets are idle: the group publishes again with
    // member 3 owning some of them, and only their flows move.
    let up = w.upkeep(11 * SEC);
    assert_eq!(up.migrated.len(), 1);
    assert_eq!(up.migrated[0].0, gid);
    assert_eq!(
        mapping(&r, &busy),
        busy_start.iter().map(|&m| Some(m)).collect::<Vec<_>>()
    );
    let quiet_after = mapping(&r, &quiet);
    let moved: Vec<_> = quiet_after
        .iter()
        .zip(&quiet_start)
        .filter(|(a, b)| a.unwrap() != **b)
        .collect();
    assert!(!moved.is_empty());
    assert!(
        moved.iter().all(|(a, _)| **a == Some(3)),
        "a flow moved elsewhere than to 3"
    );
    let (res, _) = resilient(&r);
    assert_eq!(res.buckets_per_member()[2], up.migrated[0].1);
    assert!(res.buckets_per_member()[2] <= 21);

    // Once the even buckets go quiet too, upkeep finishes the balance and
    // then has nothing left to do.
    w.upkeep(30 * SEC);
    let (res, _) = resilient(&r);
    let counts = res.buckets_per_member().to_vec();
    assert!(counts.iter().all(|&c| (21..=22).contains(&c)), "{counts:?}");
    assert_eq!(w.upkeep(40 * SEC), Default::default());
}

#[test]
fn upkeep_without_a_resilient_group_publishes_nothing() {
    let (mut w, r) = fib();
    w.apply(&[set("203.0.113.30/32", &[1, 2, 3])], 0).unwrap();
    let before = r.snapshot().table().iter().next().unwrap().clone();
    assert_eq!(w.upkeep(100 * SEC), Default::default());
    let after = r.snapshot().table().iter().next().unwrap().clone();
    assert!(Arc::ptr_eq(&before, &after), "the table was republished");
}
