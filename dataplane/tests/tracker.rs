//! Behaviour of the flow tracker: break classification, attribution to group
//! changes, idle expiry, bounded memory, merging, and agreement with a direct
//! comparison of selector mappings.

use std::collections::HashSet;

use dataplane::tracker::{
    merge_reports, BreakKind, BreakageReport, EventId, FlowTracker, GroupChange, Observation,
    TrackerConfig, TrackerError,
};
use hashing::{Algorithm, AnySelector, Member, MemberId, Selector, SelectorParams};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const SEC: u64 = 1_000_000_000;

fn tracker(capacity: usize) -> FlowTracker {
    FlowTracker::new(TrackerConfig::new(capacity, 10 * SEC)).unwrap()
}

fn change(time: u64, group: u32, before: &[MemberId], after: &[MemberId]) -> GroupChange {
    GroupChange {
        time,
        group,
        members_before: before.to_vec(),
        members_after: after.to_vec(),
        derived_from: None,
    }
}

/// `group` derived from `parent` (created, or joined by another route).
fn derived(
    time: u64,
    group: u32,
    parent: u32,
    before: &[MemberId],
    after: &[MemberId],
) -> GroupChange {
    GroupChange {
        derived_from: Some(parent),
        ..change(time, group, before, after)
    }
}

fn report(t: &FlowTracker, event: EventId) -> BreakageReport {
    t.reports()
        .into_iter()
        .find(|r| r.event == event)
        .expect("event reported")
}

#[test]
fn config_is_validated_and_capacity_rounded_up() {
    let bad = |capacity, idle_timeout, ways| {
        FlowTracker::new(TrackerConfig {
            capacity,
            idle_timeout,
            ways,
        })
        .unwrap_err()
    };
    assert_eq!(bad(0, SEC, 8), TrackerError::ZeroCapacity);
    assert_eq!(bad(16, SEC, 0), TrackerError::Ways(0));
    assert_eq!(bad(16, SEC, 65), TrackerError::Ways(65));
    assert_eq!(bad(16, 0, 8), TrackerError::ZeroIdleTimeout);
    assert!(matches!(
        bad(usize::MAX, SEC, 8),
        TrackerError::CapacityTooLarge(_)
    ));
    assert!(!TrackerError::ZeroCapacity.to_string().is_empty());
    let t = FlowTracker::new(TrackerConfig {
        capacity: 100,
        idle_timeout: SEC,
        ways: 4,
    })
    .unwrap();
    assert_eq!(t.capacity(), 128); // 25 sets -> 32 sets of 4
    assert_eq!(t.table_bytes(), 128 * 32);
    assert_eq!(tracker(1 << 20).capacity(), 1 << 20);
}

#[test]
fn a_flow_that_keeps_its_member_never_breaks() {
    let mut t = tracker(1024);
    assert_eq!(t.observe(42, 1, 7, 0), Observation::New);
    t.group_changed(change(SEC, 1, &[7, 8], &[7, 8, 9]));
    for i in 1..100 {
        assert_eq!(t.observe(42, 1, 7, i * SEC / 10), Observation::Continued);
    }
    let s = t.stats();
    assert_eq!((s.new_flows, s.breaks, s.tracked), (1, 0, 1));
    let r = &t.reports()[0];
    assert_eq!((r.live_flows, r.unavoidable, r.collateral), (1, 0, 0));
}

#[test]
fn a_flow_whose_member_left_breaks_once_unavoidably_attributed_to_that_event() {
    let mut t = tracker(1024);
    t.observe(42, 1, 3, 0);
    let ev = t.group_changed(change(SEC, 1, &[1, 2, 3], &[1, 2]));
    assert_eq!(
        t.observe(42, 1, 1, 2 * SEC),
        Observation::Broken {
            kind: BreakKind::Unavoidable,
            event: Some(ev)
        }
    );
    // The entry follows the flow to its new member.
    assert_eq!(t.observe(42, 1, 1, 3 * SEC), Observation::Continued);
    let r = report(&t, ev);
    assert_eq!((r.time, r.group), (SEC, 1));
    assert_eq!(
        (r.members_before, r.members_after),
        (vec![1, 2, 3], vec![1, 2])
    );
    assert_eq!((r.live_flows, r.unavoidable, r.collateral), (1, 1, 0));
    assert_eq!(t.stats().breaks, 1);
}

#[test]
fn a_flow_moved_while_its_member_stayed_is_collateral() {
    let mut t = tracker(1024);
    t.observe(42, 1, 2, 0);
    let ev = t.group_changed(change(SEC, 1, &[1, 2, 3], &[1, 2]));
    assert_eq!(
        t.observe(42, 1, 1, 2 * SEC),
        Observation::Broken {
            kind: BreakKind::Collateral,
            event: Some(ev)
        }
    );
    let r = report(&t, ev);
    assert_eq!((r.unavoidable, r.collateral), (0, 1));
}

#[test]
fn a_flow_breaking_twice_under_one_change_is_reported_once() {
    let mut t = tracker(1024);
    t.observe(42, 1, 2, 0);
    let ev = t.group_changed(change(SEC, 1, &[1, 2], &[1, 2]));
    assert!(matches!(
        t.observe(42, 1, 1, 2 * SEC),
        Observation::Broken { .. }
    ));
    assert!(matches!(
        t.observe(42, 1, 2, 3 * SEC),
        Observation::Broken { .. }
    ));
    let r = report(&t, ev);
    assert_eq!((r.unavoidable, r.collateral), (0, 1));
    assert_eq!(t.stats().breaks, 2);
    // A later change can break it again, counted there.
    let ev2 = t.group_changed(change(4 * SEC, 1, &[1, 2], &[1]));
    assert!(matches!(
        t.observe(42, 1, 1, 5 * SEC),
        Observation::Broken {
            kind: BreakKind::Unavoidable,
            ..
        }
    ));
    assert_eq!(report(&t, ev2).unavoidable, 1);
    assert_eq!(report(&t, ev).unavoidable, 0);
}

#[test]
fn a_move_in_a_group_without_recorded_change_is_collateral_without_event() {
    let mut t = tracker(1024);
    t.observe(42, 5, 1, 0);
    assert_eq!(
        t.observe(42, 5, 2, SEC),
        Observation::Broken {
            kind: BreakKind::Collateral,
            event: None
        }
    );
    assert_eq!(t.stats().breaks, 1);
    assert!(t.reports().is_empty());
}

#[test]
fn a_flow_idle_longer_than_idle_timeout_is_new_not_broken() {
    let mut t = tracker(1024);
    t.observe(42, 1, 3, 0);
    let ev = t.group_changed(change(SEC, 1, &[1, 2, 3], &[1, 2]));
    // Exactly the idle timeout is still live; one nanosecond more is not.
    t.observe(43, 1, 3, 0);
    assert!(matches!(
        t.observe(43, 1, 1, 10 * SEC),
        Observation::Broken { .. }
    ));
    assert_eq!(t.observe(42, 1, 1, 10 * SEC + 1), Observation::New);
    let s = t.stats();
    assert_eq!((s.expired, s.new_flows, s.breaks), (1, 3, 1));
    assert_eq!(report(&t, ev).unavoidable, 1);
}

#[test]
fn a_flow_seen_in_another_group_is_new_and_counted_as_regrouped() {
    let mut t = tracker(1024);
    t.observe(42, 1, 3, 0);
    t.group_changed(change(SEC, 2, &[3], &[4]));
    assert_eq!(t.observe(42, 2, 4, 2 * SEC), Observation::New);
    assert_eq!(t.observe(42, 2, 4, 3 * SEC), Observation::Continued);
    let s = t.stats();
    assert_eq!(
        (s.regrouped, s.breaks, s.new_flows, s.tracked),
        (1, 0, 2, 1)
    );
}

#[test]
fn live_flows_at_a_change_counts_only_non_idle_flows_of_that_group() {
    let mut t = tracker(1024);
    t.observe(1, 1, 1, 0); // idle for 20 s at the change
    t.observe(2, 1, 1, 15 * SEC);
    t.observe(3, 1, 2, 19 * SEC);
    t.observe(4, 2, 1, 19 * SEC); // another group
    t.observe(5, 1, 1, 10 * SEC); // exactly idle_timeout old: live
    let ev = t.group_changed(change(20 * SEC, 1, &[1, 2], &[1]));
    assert_eq!(report(&t, ev).live_flows, 3);
    let ev2 = t.group_changed(change(20 * SEC, 2, &[1], &[1, 2]));
    assert_eq!(report(&t, ev2).live_flows, 1);
}

#[test]
fn breaks_are_attributed_to_the_latest_change_of_their_group_only() {
    let mut t = tracker(1024);
    t.observe(1, 1, 3, 0);
    t.observe(2, 2, 3, 0);
    let first = t.group_changed(change(SEC, 1, &[1, 2, 3], &[1, 2]));
    // Flow 1 is idle across two changes of group 1.
    let second = t.group_changed(change(2 * SEC, 1, &[1, 2], &[1, 2, 4]));
    let other = t.group_changed(change(3 * SEC, 2, &[3, 5], &[3, 5, 6]));
    assert_eq!(
        t.observe(1, 1, 4, 4 * SEC),
        Observation::Broken {
            kind: BreakKind::Unavoidable,
            event: Some(second)
        }
    );
    assert_eq!(
        t.observe(2, 2, 6, 4 * SEC),
        Observation::Broken {
            kind: BreakKind::Collateral,
            event: Some(other)
        }
    );
    let r1 = report(&t, first);
    let r2 = report(&t, second);
    let r3 = report(&t, other);
    assert_eq!((r1.unavoidable, r1.collateral), (0, 0));
    assert_eq!((r2.unavoidable, r2.collateral), (1, 0));
    assert_eq!((r3.unavoidable, r3.collateral), (0, 1));
    assert_eq!(
        t.reports().iter().map(|r| r.event).collect::<Vec<_>>(),
        vec![EventId(0), EventId(1), EventId(2)]
    );
}

#[test]
fn eviction_keeps_memory_bounded_and_evicts_the_least_recently_seen() {
    // 4 sets of 2 ways: fingerprints with equal low two bits share a set.
    let mut t = FlowTracker::new(TrackerConfig {
        capacity: 8,
        idle_timeout: 100 * SEC,
        ways: 2,
    })
    .unwrap();
    let fp = |i: u64| (i << 2) | 1; // all in set 1
    t.observe(fp(1), 1, 1, 1);
    t.observe(fp(2), 1, 1, 2);
    assert_eq!(t.observe(fp(1), 1, 1, 3), Observation::Continued); // 2 is now LRU
    assert_eq!(t.observe(fp(3), 1, 1, 4), Observation::New); // evicts 2
    assert_eq!(t.stats().evictions, 1);
    assert_eq!(t.observe(fp(1), 1, 1, 5), Observation::Continued);
    assert_eq!(t.observe(fp(3), 1, 1, 6), Observation::Continued);
    assert_eq!(t.observe(fp(2), 1, 2, 7), Observation::New); // forgotten, no break
    assert_eq!(t.stats().evictions, 2);
    assert_eq!(t.stats().breaks, 0);

    // Many more flows than slots: never more than capacity tracked.
    let mut rng = Pcg64::seed_from_u64(7);
    for i in 0..10_000u64 {
        t.observe(rng.gen(), 1, 1, 10 + i);
    }
    let s = t.stats();
    assert_eq!(s.tracked, 8);
    assert!(s.evictions >= 10_000 - 8, "{s:?}");
    assert_eq!(t.table_bytes(), 8 * 32);
}

#[test]
fn expired_entries_are_reused_before_live_ones_are_evicted() {
    let mut t = FlowTracker::new(TrackerConfig {
        capacity: 2,
        idle_timeout: 10,
        ways: 2,
    })
    .unwrap();
    t.observe(2, 1, 1, 0);
    t.observe(4, 1, 1, 15);
    assert_eq!(t.observe(6, 1, 1, 20), Observation::New); // flow 2 expired
    let s = t.stats();
    assert_eq!((s.expired, s.evictions, s.tracked), (1, 0, 2));
    assert_eq!(t.observe(4, 1, 1, 21), Observation::Continued);
}

#[test]
fn fingerprint_zero_is_tracked() {
    let mut t = tracker(16);
    assert_eq!(t.observe(0, 1, 1, 0), Observation::New);
    assert_eq!(t.observe(0, 1, 1, 1), Observation::Continued);
}

#[test]
fn merge_reports_sums_workers_by_event() {
    let mut workers: Vec<FlowTracker> = (0..3).map(|_| tracker(1024)).collect();
    for (w, t) in workers.iter_mut().enumerate() {
        for f in 1..=w as u64 + 1 {
            t.observe(f, 1, 3, 0);
            t.observe(100 + f, 1, 2, 0);
        }
        t.group_changed(change(SEC, 1, &[1, 2, 3], &[1, 2]));
        t.group_changed(change(SEC, 2, &[1], &[2]));
        for f in 1..=w as u64 + 1 {
            t.observe(f, 1, 1, 2 * SEC);
            t.observe(100 + f, 1, 1, 2 * SEC);
        }
    }
    let per_worker: Vec<Vec<BreakageReport>> = workers.iter().map(|t| t.reports()).collect();
    let merged = merge_reports(&per_worker);
    assert_eq!(merged.len(), 2);
    let m = &merged[0];
    assert_eq!((m.event, m.group, m.time), (EventId(0), 1, SEC));
    // Workers hold 1, 2 and 3 flows on each of members 3 and 2.
    assert_eq!((m.live_flows, m.unavoidable, m.collateral), (12, 6, 6));
    assert_eq!(merged[1].event, EventId(1));
    assert_eq!(merged[1].live_flows, 0);
    assert!(merge_reports(&[]).is_empty());
}

/// Observe `n` random flows on `algorithm` with 8 members, remove member 3 and
/// observe them again; the tracker must agree exactly with comparing the
/// mappings directly. Returns (flows, unavoidable, collateral).
fn scenario(algorithm: Algorithm) -> (u64, u64, u64) {
    const N: usize = 20_000;
    let mut rng = Pcg64::seed_from_u64(0x7ac4e5);
    let mut seen = HashSet::new();
    let flows: Vec<(u64, u32)> = std::iter::from_fn(|| Some((rng.gen::<u64>(), rng.gen::<u32>())))
        .filter(|(fp, _)| seen.insert(*fp))
        .take(N)
        .collect();
    let params = SelectorParams::default();
    let before: Vec<Member> = (1..=8).map(Member::new).collect();
    let after: Vec<Member> = before.iter().copied().filter(|m| m.id != 3).collect();
    let old = AnySelector::new(algorithm, &params, &before, 0).unwrap();
    let mut new = old.clone();
    new.set_members(&after, 2 * SEC).unwrap();
    new.upkeep(2 * SEC);

    let mut t = FlowTracker::new(TrackerConfig::new(1 << 18, 10 * SEC)).unwrap();
    for &(fp, h) in &flows {
        old.note_activity(h, SEC);
        assert_eq!(
            t.observe(fp, 9, old.select(h).unwrap(), SEC),
            Observation::New
        );
    }
    let ids = |m: &[Member]| m.iter().map(|m| m.id).collect::<Vec<_>>();
    let ev = t.group_changed(change(2 * SEC, 9, &ids(&before), &ids(&after)));
    let (mut unavoidable, mut collateral) = (0u64, 0u64);
    for &(fp, h) in &flows {
        let (was, is) = (old.select(h).unwrap(), new.select(h).unwrap());
        let obs = t.observe(fp, 9, is, 3 * SEC);
        if was == is {
            assert_eq!(obs, Observation::Continued);
        } else if was == 3 {
            unavoidable += 1;
            assert!(matches!(
                obs,
                Observation::Broken {
                    kind: BreakKind::Unavoidable,
                    ..
                }
            ));
        } else {
            collateral += 1;
            assert!(matches!(
                obs,
                Observation::Broken {
                    kind: BreakKind::Collateral,
                    ..
                }
            ));
        }
    }
    let r = report(&t, ev);
    assert_eq!(t.stats().evictions, 0);
    assert_eq!(r.live_flows, N as u64);
    assert_eq!((r.unavoidable, r.collateral), (unavoidable, collateral));
    assert_eq!(t.stats().breaks, unavoidable + collateral);
    eprintln!(
        "{algorithm}: {N} flows, {} unavoidable, {} collateral",
        r.unavoidable, r.collateral
    );
    (N as u64, r.unavoidable, r.collateral)
}

#[test]
fn modulo_removal_report_equals_direct_comparison() {
    let (n, unavoidable, collateral) = scenario(Algorithm::ModuloN);
    let (n, u, c) = (
        n as f64,
        unavoidable as f64 / n as f64,
        collateral as f64 / n as f64,
    );
    assert!((u - 1.0 / 8.0).abs() < 0.02, "unavoidable {u} of {n}");
    assert!((c - 3.0 / 4.0).abs() < 0.03, "collateral {c}");
    assert!((u + c - 7.0 / 8.0).abs() < 0.03, "broken {}", u + c);
}

#[test]
fn resilient_removal_report_equals_direct_comparison_with_no_collateral() {
    let (n, unavoidable, collateral) = scenario(Algorithm::Resilient);
    assert_eq!(collateral, 0);
    let u = unavoidable as f64 / n as f64;
    assert!((u - 1.0 / 8.0).abs() < 0.02, "unavoidable {u}");
}

#[test]
fn a_flow_moving_to_a_group_derived_from_its_own_on_the_same_member_continues() {
    let mut t = tracker(1024);
    t.observe(42, 1, 2, 0);
    let ev = t.group_changed(derived(SEC, 5, 1, &[1, 2, 3], &[1, 2]));
    assert_eq!(t.observe(42, 5, 2, 2 * SEC), Observation::Continued);
    // The entry now belongs to the derived group.
    assert_eq!(t.observe(42, 5, 2, 3 * SEC), Observation::Continued);
    let s = t.stats();
    assert_eq!((s.breaks, s.regrouped, s.new_flows), (0, 0, 1));
    let r = report(&t, ev);
    assert_eq!((r.group, r.derived_from), (5, Some(1)));
    // The flows at risk are the parent's.
    assert_eq!((r.live_flows, r.unavoidable, r.collateral), (1, 0, 0));
}

#[test]
fn a_flow_moving_to_a_derived_group_off_a_member_that_left_is_unavoidable_for_the_derivation() {
    let mut t = tracker(1024);
    t.observe(42, 1, 3, 0);
    let other = t.group_changed(change(SEC / 2, 1, &[1, 2, 3, 4], &[1, 2, 3]));
    let ev = t.group_changed(derived(SEC, 5, 1, &[1, 2, 3], &[1, 2]));
    assert_eq!(
        t.observe(42, 5, 1, 2 * SEC),
        Observation::Broken {
            kind: BreakKind::Unavoidable,
            event: Some(ev)
        }
    );
    assert_eq!(t.observe(42, 5, 1, 3 * SEC), Observation::Continued);
    let r = report(&t, ev);
    assert_eq!((r.unavoidable, r.collateral), (1, 0));
    let r = report(&t, other);
    assert_eq!((r.unavoidable, r.collateral), (0, 0));
    let s = t.stats();
    assert_eq!((s.breaks, s.regrouped), (1, 0));
}

#[test]
fn a_flow_moving_to_a_derived_group_off_a_member_that_stayed_is_collateral_for_the_derivation() {
    let mut t = tracker(1024);
    t.observe(42, 1, 2, 0);
    let ev = t.group_changed(derived(SEC, 5, 1, &[1, 2, 3], &[1, 2]));
    assert_eq!(
        t.observe(42, 5, 1, 2 * SEC),
        Observation::Broken {
            kind: BreakKind::Collateral,
            event: Some(ev)
        }
    );
    let r = report(&t, ev);
    assert_eq!((r.unavoidable, r.collateral), (0, 1));
}

#[test]
fn a_flow_moving_to_an_unrelated_group_is_still_regrouped() {
    let mut t = tracker(1024);
    t.observe(42, 1, 3, 0);
    t.observe(43, 7, 3, 0);
    // Group 5 derives from 7, not from 1; group 6 changed in place.
    let ev = t.group_changed(derived(SEC, 5, 7, &[3, 4], &[4]));
    t.group_changed(change(SEC, 6, &[1, 3], &[1]));
    assert_eq!(t.observe(42, 5, 4, 2 * SEC), Observation::New);
    assert_eq!(t.observe(42, 6, 1, 2 * SEC), Observation::New);
    // The flow of the parent does follow its lineage.
    assert_eq!(
        t.observe(43, 5, 4, 2 * SEC),
        Observation::Broken {
            kind: BreakKind::Unavoidable,
            event: Some(ev)
        }
    );
    let s = t.stats();
    assert_eq!((s.regrouped, s.breaks), (2, 1));
    assert_eq!(report(&t, ev).unavoidable, 1);
}

#[test]
fn a_flow_idle_across_two_derivations_is_attributed_to_the_later_one() {
    let mut t = tracker(1024);
    t.observe(42, 1, 3, 0);
    t.observe(43, 5, 1, SEC); // keeps group 5 live for its link
    let first = t.group_changed(derived(SEC, 5, 1, &[1, 2, 3], &[1, 2, 3, 4]));
    let second = t.group_changed(derived(2 * SEC, 6, 5, &[1, 2, 3, 4], &[1, 2, 4]));
    assert_eq!(
        t.observe(42, 6, 4, 3 * SEC),
        Observation::Broken {
            kind: BreakKind::Unavoidable,
            event: Some(second)
        }
    );
    assert_eq!(report(&t, first).unavoidable, 0);
    assert_eq!(report(&t, second).unavoidable, 1);
}

#[test]
fn a_join_announces_lineage_without_taking_over_the_derived_groups_own_breaks() {
    let mut t = tracker(1024);
    t.observe(1, 1, 1, 0);
    let created = t.group_changed(derived(SEC, 5, 1, &[1, 2, 3], &[1, 2]));
    assert_eq!(t.observe(1, 5, 1, 2 * SEC), Observation::Continued);
    // A flow of another route of group 1, then that route joins group 5.
    t.observe(2, 1, 3, 2 * SEC);
    t.observe(3, 5, 2, 2 * SEC);
    let joined = t.group_changed(derived(3 * SEC, 5, 1, &[1, 2, 3], &[1, 2]));
    assert_eq!(
        t.observe(2, 5, 2, 4 * SEC),
        Observation::Broken {
            kind: BreakKind::Unavoidable,
            event: Some(joined)
        }
    );
    // A flow already in group 5 moving later is the creation's.
    assert_eq!(
        t.observe(3, 5, 1, 4 * SEC),
        Observation::Broken {
            kind: BreakKind::Collateral,
            event: Some(created)
        }
    );
    let r = report(&t, joined);
    assert_eq!((r.live_flows, r.unavoidable, r.collateral), (1, 1, 0));
}

#[test]
fn lineage_is_forgotten_once_the_parent_has_no_live_flows() {
    let mut t = tracker(1024);
    t.observe(42, 1, 3, 0);
    t.group_changed(derived(SEC, 5, 1, &[1, 2, 3], &[1, 2]));
    assert_eq!(t.lineage_links(), 1);
    // Past the idle timeout nothing of group 1 is live: the next event prunes.
    t.group_changed(change(20 * SEC, 9, &[1], &[2]));
    assert_eq!(t.lineage_links(), 0);
    // A link whose parent has no live flow is not kept at all.
    t.group_changed(derived(21 * SEC, 6, 2, &[1, 2], &[1]));
    assert_eq!(t.lineage_links(), 0);
}

#[test]
fn lineage_is_bounded_by_the_number_of_events() {
    use dataplane::tracker::LINEAGE_EVENTS;
    let mut t = tracker(1 << 16);
    for i in 0..(LINEAGE_EVENTS as u64 + 100) {
        let parent = i as u32;
        t.observe(i + 1, parent, 1, i);
        t.group_changed(derived(i, parent + 1_000_000, parent, &[1, 2], &[1]));
        assert!(t.lineage_links() <= LINEAGE_EVENTS as usize);
    }
    assert_eq!(t.lineage_links(), LINEAGE_EVENTS as usize);
}

#[test]
fn a_freed_group_id_reused_for_another_group_neither_breaks_nor_joins_flows() {
    let mut t = tracker(1024);
    // Flows 1..=3 in group 7 on members 1, 2, 3; group 9 derived from 7.
    for (fp, m) in [(1, 1), (2, 2), (3, 3)] {
        assert_eq!(t.observe(fp, 7, m, SEC), Observation::New);
    }
    t.group_changed(derived(SEC, 9, 7, &[1, 2, 3], &[1, 2]));
    assert_eq!(t.lineage_links(), 1);

    // Group 7 is freed at 2 s and its id reused for an unrelated group
    // whose members happen to be 4 and 5.
    t.group_freed(7, 2 * SEC);
    assert_eq!(t.lineage_links(), 0, "the link from 9 to 7 is forgotten");
    let before = t.stats();
    // Flow 1 shows up in the new group 7 on member 4: a new flow, not a break.
    assert_eq!(t.observe(1, 7, 4, 3 * SEC), Observation::New);
    // Flow 2 shows up in group 9 (no longer linked to 7): new as well.
    assert_eq!(t.observe(2, 9, 2, 3 * SEC), Observation::New);
    // Flow 3 on its old member in the new group: nothing to tell, it continues.
    assert_eq!(t.observe(3, 7, 3, 3 * SEC), Observation::Continued);
    let after = t.stats();
    assert_eq!(after.breaks, before.breaks);
    assert_eq!(after.regrouped, before.regrouped + 2);

    // Flows of the new incarnation break as usual.
    assert_eq!(
        t.observe(1, 7, 5, 4 * SEC),
        Observation::Broken {
            kind: BreakKind::Collateral,
            event: None
        }
    );
}

#[test]
fn records_of_frees_are_dropped_after_the_idle_timeout() {
    let mut t = tracker(1024);
    assert_eq!(t.observe(1, 7, 1, 0), Observation::New);
    t.group_freed(7, SEC);
    t.group_freed(8, 5 * SEC);
    assert_eq!(t.freed_records(), 2);
    // 11 s after the first free, every entry it could concern has expired
    // (idle timeout 10 s): the next free drops its record.
    t.group_freed(9, 12 * SEC);
    assert_eq!(t.freed_records(), 2, "7 dropped; 8 and 9 kept");
    // A flow of group 7 stored after its free is unaffected by it.
    assert_eq!(t.observe(2, 7, 1, 12 * SEC), Observation::New);
    assert!(matches!(
        t.observe(2, 7, 2, 13 * SEC),
        Observation::Broken { .. }
    ));
}
