//! The RIB: MetalLB speakers announcing a service IP, each step of the
//! decision process, multipath, import policy, prefix limits, graceful
//! restart, IPv6 over MP_REACH, FIB batches and member ids, and random
//! sequences checked against a recomputation from scratch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use control::bgp::fsm::{Event, StalePaths};
use control::bgp::wire::attrs::{AsPath, Community, LargeCommunity, Origin, PathAttributes};
use control::bgp::wire::update::{MpNextHop, MpReach, MpUnreach};
use control::bgp::wire::{
    AfiSafi, DecodedUpdate, GracefulRestart, GracefulRestartFamily, Outcome, Update,
};
use control::rib::{
    FilterReason, ForwardingPolicies, ImportPolicy, MaxPrefix, PeerId, PeerInfo, PolicyAction,
    PolicyRule, PrefixRange, Rib, RibConfig, RibError, RibOutput, SessionCommand,
};
use dataplane::fib::lpm4::Lpm4Config;
use dataplane::fib::lpm6::Lpm6Config;
use dataplane::fib::table::{self as fibtable, FibConfig, FibUpdate, GroupPolicy, Nexthop, Prefix};
use hashing::{Algorithm, MemberId};
use proptest::prelude::*;

const LOCAL_AS: u32 = 64512;

fn t(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn bgp_id(addr: &str) -> u32 {
    match ip(addr) {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => u128::from(a) as u32,
    }
}

/// An eBGP speaker at `addr` in `asn`, its router id its address.
fn ebgp(addr: &str, asn: u32) -> PeerInfo {
    PeerInfo::new(ip(addr), asn, bgp_id(addr), false)
}

/// An iBGP speaker at `addr`.
fn ibgp(addr: &str) -> PeerInfo {
    PeerInfo::new(ip(addr), LOCAL_AS, bgp_id(addr), true)
}

/// What a MetalLB speaker sends: ORIGIN IGP, AS_PATH `asns`, NEXT_HOP.
fn attrs(asns: &[u32], next_hop: &str) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(asns.iter().copied())),
        next_hop: Some(v4(next_hop)),
        ..PathAttributes::default()
    }
}

fn accepted(update: Update) -> DecodedUpdate {
    DecodedUpdate {
        update,
        outcome: Outcome::Accept,
        problems: Vec::new(),
    }
}

/// An UPDATE announcing IPv4 `prefixes` with `attrs`.
fn announce(attrs: PathAttributes, prefixes: &[&str]) -> DecodedUpdate {
    accepted(Update {
        attributes: attrs,
        nlri: prefixes.iter().map(|p| pfx(p)).collect(),
        ..Update::default()
    })
}

/// An UPDATE withdrawing IPv4 `prefixes`.
fn withdraw(prefixes: &[&str]) -> DecodedUpdate {
    accepted(Update {
        withdrawn: prefixes.iter().map(|p| pfx(p)).collect(),
        ..Update::default()
    })
}

fn end_of_rib(family: AfiSafi) -> DecodedUpdate {
    accepted(Update::end_of_rib(family))
}

/// `peer_up` for each (id, info).
fn rib_with(config: RibConfig, peers: Vec<(u32, PeerInfo)>) -> Rib {
    let mut rib = Rib::new(config);
    for (id, info) in peers {
        rib.peer_up(PeerId(id), info, t(0));
    }
    rib
}

/// Three MetalLB speakers in one AS, as MetalLB's docs configure them.
fn three_speakers() -> Rib {
    rib_with(
        RibConfig::new(LOCAL_AS),
        vec![
            (1, ebgp("10.0.0.11", 64513)),
            (2, ebgp("10.0.0.12", 64513)),
            (3, ebgp("10.0.0.13", 64513)),
        ],
    )
}

fn send(rib: &mut Rib, peer: u32, update: &DecodedUpdate) {
    rib.apply_update(PeerId(peer), update, t(0)).unwrap();
}

/// The (member id, address) pairs of a SetRoute, sorted by address.
fn members(nexthops: &[Nexthop]) -> Vec<(MemberId, IpAddr)> {
    let mut v: Vec<_> = nexthops.iter().map(|n| (n.id, n.addr)).collect();
    v.sort_by_key(|(_, a)| *a);
    v
}

/// The only update of a batch, which must be a SetRoute for `prefix`.
fn only_set(out: &RibOutput, prefix: &str) -> Vec<(MemberId, IpAddr)> {
    match &out.fib[..] {
        [FibUpdate::SetRoute {
            prefix: p,
            nexthops,
            ..
        }] if *p == pfx(prefix) => members(nexthops),
        other => panic!("expected one SetRoute for {prefix}, got {other:?}"),
    }
}

fn addrs(set: &[(MemberId, IpAddr)]) -> Vec<IpAddr> {
    set.iter().map(|(_, a)| *a).collect()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| ip(a)).collect()
}

/// The routes a FIB holds after applying batches: prefix to nexthops.
#[derive(Debug, Default, Clone, PartialEq)]
struct FibModel {
    routes: BTreeMap<String, Vec<Nexthop>>,
    policies: BTreeMap<String, GroupPolicy>,
}

impl FibModel {
    fn apply(&mut self, updates: &[FibUpdate]) {
        for u in updates {
            match u {
                FibUpdate::SetRoute {
                    prefix,
                    nexthops,
                    policy,
                } => {
                    assert!(!nexthops.is_empty(), "SetRoute without nexthops");
                    let ids: BTreeSet<_> = nexthops.iter().map(|n| n.id).collect();
                    assert_eq!(ids.len(), nexthops.len(), "duplicate member ids");
                    self.routes.insert(prefix.to_string(), nexthops.clone());
                    self.policies
                        .insert(prefix.to_string(), policy.expect("policy named"));
                }
                FibUpdate::RemoveRoute { prefix } => {
                    self.routes.remove(&prefix.to_string());
                    self.policies.remove(&prefix.to_string());
                }
                FibUpdate::SetDefaultPolicy(_) => panic!("the RIB never sets the default"),
            }
        }
    }

    /// prefix -> sorted addresses.
    fn sets(&self) -> BTreeMap<String, Vec<IpAddr>> {
        self.routes
            .iter()
            .map(|(p, n)| {
                let mut a: Vec<IpAddr> = n.iter().map(|n| n.addr).collect();
                a.sort();
                (p.clone(), a)
            })
            .collect()
    }

    /// Every address has one id and every id one address, across routes.
    fn check_ids(&self) {
        let mut by_addr: HashMap<IpAddr, MemberId> = HashMap::new();
        let mut by_id: HashMap<MemberId, IpAddr> = HashMap::new();
        for n in self.routes.values().flatten() {
            assert_eq!(*by_addr.entry(n.addr).or_insert(n.id), n.id, "{n:?}");
            assert_eq!(*by_id.entry(n.id).or_insert(n.addr), n.addr, "{n:?}");
        }
    }
}

/// After an output, every prefix's installed set is its multipath set's
/// next hops: no change was missed.
fn check_installed_is_the_multipath_set(rib: &Rib) {
    for view in rib.routes() {
        let mut want: Vec<IpAddr> = view
            .paths
            .iter()
            .filter(|p| p.multipath)
            .filter_map(|p| p.attributes.nexthop)
            .collect();
        want.sort();
        want.dedup();
        assert_eq!(view.installed, &want[..], "{}", view.prefix);
        assert_eq!(
            view.paths.iter().filter(|p| p.best).count(),
            usize::from(!want.is_empty())
        );
        assert!(view
            .paths
            .iter()
            .all(|p| !(p.multipath && p.filtered.is_some())));
    }
}

fn rib_sets(rib: &Rib) -> BTreeMap<String, Vec<IpAddr>> {
    rib.installed_routes()
        .map(|(p, s)| (p.to_string(), s.to_vec()))
        .collect()
}

// ----- MetalLB speakers and the FIB -------------------------------------------

#[test]
fn three_speakers_announcing_a_service_make_one_route_with_three_nexthops() {
    let mut rib = three_speakers();
    for (peer, nh) in [(1, "10.0.0.11"), (2, "10.0.0.12"), (3, "10.0.0.13")] {
        send(
            &mut rib,
            peer,
            &announce(attrs(&[64513], nh), &["192.0.2.10/32"]),
        );
    }
    let out = rib.take_output();
    let set = only_set(&out, "192.0.2.10/32");
    assert_eq!(addrs(&set), ips(&["10.0.0.11", "10.0.0.12", "10.0.0.13"]));
    assert!(out.sessions.is_empty());
    match &out.fib[0] {
        FibUpdate::SetRoute { policy, .. } => assert_eq!(*policy, Some(GroupPolicy::default())),
        _ => unreachable!(),
    }

    // One node leaves: two nexthops, the survivors keep their member ids.
    send(&mut rib, 2, &withdraw(&["192.0.2.10/32"]));
    let after = only_set(&rib.take_output(), "192.0.2.10/32");
    assert_eq!(after, vec![set[0], set[2]]);

    // All leave: the route goes.
    send(&mut rib, 1, &withdraw(&["192.0.2.10/32"]));
    send(&mut rib, 3, &withdraw(&["192.0.2.10/32"]));
    let out = rib.take_output();
    assert_eq!(
        out.fib,
        vec![FibUpdate::RemoveRoute {
            prefix: pfx("192.0.2.10/32")
        }]
    );
    assert!(rib.is_empty());
    assert!(rib.take_output().is_empty());
}

#[test]
fn a_node_leaving_changes_the_real_fib_group_in_place() {
    let (mut fib, _reader) = fibtable::new(FibConfig {
        lpm4: Lpm4Config { tbl8_groups: 16 },
        lpm6: Lpm6Config { groups: 16 },
        ..FibConfig::default()
    });
    let mut rib = three_speakers();
    for (peer, nh) in [(1, "10.0.0.11"), (2, "10.0.0.12"), (3, "10.0.0.13")] {
        send(
            &mut rib,
            peer,
            &announce(attrs(&[64513], nh), &["192.0.2.10/32"]),
        );
    }
    fib.apply(&rib.take_output().fib, 0).unwrap();
    let group = fib.route(pfx("192.0.2.10/32")).unwrap();
    send(&mut rib, 2, &withdraw(&["192.0.2.10/32"]));
    let applied = fib.apply(&rib.take_output().fib, 1).unwrap();
    // Same group id, derived in place: resilient buckets of the others stay.
    assert_eq!(fib.route(pfx("192.0.2.10/32")), Some(group));
    assert_eq!(applied.changes.len(), 1);
    assert_eq!(applied.changes[0].members_before.len(), 3);
    assert_eq!(applied.changes[0].members_after.len(), 2);
    assert_eq!(applied.changes[0].derived_from, None);
}

#[test]
fn a_node_that_comes_back_gets_its_member_id_back() {
    let mut rib = three_speakers();
    for (peer, nh) in [(1, "10.0.0.11"), (2, "10.0.0.12"), (3, "10.0.0.13")] {
        send(
            &mut rib,
            peer,
            &announce(attrs(&[64513], nh), &["192.0.2.10/32"]),
        );
    }
    let before = only_set(&rib.take_output(), "192.0.2.10/32");
    rib.peer_down(PeerId(2), None, t(1));
    assert_eq!(only_set(&rib.take_output(), "192.0.2.10/32").len(), 2);
    rib.peer_up(PeerId(2), ebgp("10.0.0.12", 64513), t(2));
    send(
        &mut rib,
        2,
        &announce(attrs(&[64513], "10.0.0.12"), &["192.0.2.10/32"]),
    );
    assert_eq!(only_set(&rib.take_output(), "192.0.2.10/32"), before);
}

#[test]
fn many_services_from_the_same_speakers_share_member_ids_and_one_batch() {
    let mut rib = three_speakers();
    let services: Vec<String> = (1..=50).map(|i| format!("192.0.2.{i}/32")).collect();
    let refs: Vec<&str> = services.iter().map(String::as_str).collect();
    for (peer, nh) in [(1, "10.0.0.11"), (2, "10.0.0.12"), (3, "10.0.0.13")] {
        // MetalLB sends one prefix per UPDATE.
        for s in &refs {
            send(&mut rib, peer, &announce(attrs(&[64513], nh), &[s]));
        }
    }
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 50, "one update per prefix, not per UPDATE");
    let mut model = FibModel::default();
    model.apply(&out.fib);
    model.check_ids();
    // One attribute set per speaker, however many services.
    assert_eq!(rib.attribute_sets(), 3);
    assert_eq!(rib.nexthops_in_use(), 3);
    // Peer 3 fails: 50 updates, one batch.
    rib.peer_down(PeerId(3), None, t(1));
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 50);
    model.apply(&out.fib);
    assert!(model
        .sets()
        .values()
        .all(|s| s == &ips(&["10.0.0.11", "10.0.0.12"])));
}

#[test]
fn nothing_is_emitted_when_the_set_does_not_change() {
    let mut rib = three_speakers();
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.10/32"]),
    );
    rib.take_output();
    // The same announcement again.
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.10/32"]),
    );
    assert!(rib.take_output().is_empty());
    // A new attribute that changes nothing in the set (a community).
    let mut a = attrs(&[64513], "10.0.0.11");
    a.communities.push(Community::new(64513, 1));
    send(&mut rib, 1, &announce(a, &["192.0.2.10/32"]));
    assert!(rib.take_output().is_empty());
    // A losing path coming and going.
    send(
        &mut rib,
        2,
        &announce(attrs(&[64513, 64513], "10.0.0.12"), &["192.0.2.10/32"]),
    );
    send(&mut rib, 2, &withdraw(&["192.0.2.10/32"]));
    assert!(rib.take_output().is_empty());
    // Withdrawing what was never announced.
    send(&mut rib, 3, &withdraw(&["198.51.100.0/24"]));
    assert!(rib.take_output().is_empty());
}

#[test]
fn announce_then_withdraw_within_one_batch_emits_nothing() {
    let mut rib = three_speakers();
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.10/32"]),
    );
    send(&mut rib, 1, &withdraw(&["192.0.2.10/32"]));
    assert!(rib.take_output().is_empty());
    assert!(rib.is_empty());
}

#[test]
fn duplicate_nexthops_from_two_peers_collapse_into_one_member() {
    let mut rib = three_speakers();
    // Two sessions from one node's two addresses, same next hop.
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.10/32"]),
    );
    send(
        &mut rib,
        2,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.10/32"]),
    );
    send(
        &mut rib,
        3,
        &announce(attrs(&[64513], "10.0.0.13"), &["192.0.2.10/32"]),
    );
    let set = only_set(&rib.take_output(), "192.0.2.10/32");
    assert_eq!(addrs(&set), ips(&["10.0.0.11", "10.0.0.13"]));
    // One of the two leaving changes nothing.
    send(&mut rib, 2, &withdraw(&["192.0.2.10/32"]));
    assert!(rib.take_output().is_empty());
}

#[test]
fn updates_from_a_peer_that_is_not_up_are_refused() {
    let mut rib = three_speakers();
    let u = announce(attrs(&[64513], "10.0.0.19"), &["192.0.2.10/32"]);
    assert_eq!(
        rib.apply_update(PeerId(9), &u, t(0)),
        Err(RibError::PeerNotUp(PeerId(9)))
    );
    rib.peer_down(PeerId(1), None, t(0));
    assert!(rib.apply_update(PeerId(1), &u, t(0)).is_err());
    assert!(rib.take_output().is_empty());
}

// ----- Decision process ------------------------------------------------------

/// The best path's peer for `prefix`.
fn best(rib: &Rib, prefix: &str) -> PeerId {
    let view = rib.route(&pfx(prefix)).unwrap();
    let best: Vec<_> = view.paths.iter().filter(|p| p.best).collect();
    assert_eq!(best.len(), 1);
    best[0].peer
}

fn multipath(rib: &Rib, prefix: &str) -> Vec<PeerId> {
    let view = rib.route(&pfx(prefix)).unwrap();
    view.paths
        .iter()
        .filter(|p| p.multipath)
        .map(|p| p.peer)
        .collect()
}

const P: &str = "192.0.2.10/32";

#[test]
fn highest_local_pref_wins() {
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(1, ibgp("10.0.0.11")), (2, ibgp("10.0.0.12"))],
    );
    let mut a = attrs(&[], "10.0.0.11");
    a.local_pref = Some(100);
    let mut b = attrs(&[64999, 64998], "10.0.0.12");
    b.local_pref = Some(200);
    send(&mut rib, 1, &announce(a, &[P]));
    send(&mut rib, 2, &announce(b, &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.12"]));
}

#[test]
fn missing_local_pref_counts_as_100() {
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(1, ibgp("10.0.0.11")), (2, ibgp("10.0.0.12"))],
    );
    let mut a = attrs(&[], "10.0.0.11");
    a.local_pref = Some(99);
    send(&mut rib, 1, &announce(a, &[P]));
    send(&mut rib, 2, &announce(attrs(&[64999], "10.0.0.12"), &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
}

#[test]
fn shortest_as_path_wins_even_with_relax() {
    let mut config = RibConfig::new(LOCAL_AS);
    config.as_path_relax = true;
    let mut rib = rib_with(
        config,
        vec![(1, ebgp("10.0.0.11", 64513)), (2, ebgp("10.0.0.12", 64514))],
    );
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513, 64513], "10.0.0.11"), &[P]),
    );
    send(&mut rib, 2, &announce(attrs(&[64514], "10.0.0.12"), &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
    assert_eq!(multipath(&rib, P), vec![PeerId(2)]);
}

#[test]
fn lowest_origin_wins() {
    let mut rib = three_speakers();
    let mut a = attrs(&[64513], "10.0.0.11");
    a.origin = Some(Origin::Incomplete);
    let mut b = attrs(&[64513], "10.0.0.12");
    b.origin = Some(Origin::Egp);
    send(&mut rib, 1, &announce(a, &[P]));
    send(&mut rib, 2, &announce(b, &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
    send(&mut rib, 3, &announce(attrs(&[64513], "10.0.0.13"), &[P]));
    assert_eq!(best(&rib, P), PeerId(3));
    assert_eq!(multipath(&rib, P), vec![PeerId(3)]);
}

#[test]
fn lowest_med_wins_between_paths_from_the_same_as() {
    let mut rib = three_speakers();
    let mut a = attrs(&[64513], "10.0.0.11");
    a.med = Some(10);
    let mut b = attrs(&[64513], "10.0.0.12");
    b.med = Some(5);
    send(&mut rib, 1, &announce(a, &[P]));
    send(&mut rib, 2, &announce(b, &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
    assert_eq!(multipath(&rib, P), vec![PeerId(2)]);
    // A missing MED is 0: better than 5.
    send(&mut rib, 3, &announce(attrs(&[64513], "10.0.0.13"), &[P]));
    assert_eq!(best(&rib, P), PeerId(3));
}

#[test]
fn med_is_not_compared_between_different_ases_unless_always_compare_med() {
    let peers = || vec![(1, ebgp("10.0.0.11", 64513)), (2, ebgp("10.0.0.12", 64514))];
    let mut a = attrs(&[64513], "10.0.0.11");
    a.med = Some(50);
    let mut b = attrs(&[64514], "10.0.0.12");
    b.med = Some(0);

    // MED ignored: the lower router id (10.0.0.11) wins.
    let mut rib = rib_with(RibConfig::new(LOCAL_AS), peers());
    send(&mut rib, 1, &announce(a.clone(), &[P]));
    send(&mut rib, 2, &announce(b.clone(), &[P]));
    assert_eq!(best(&rib, P), PeerId(1));

    let mut config = RibConfig::new(LOCAL_AS);
    config.always_compare_med = true;
    let mut rib = rib_with(config, peers());
    send(&mut rib, 1, &announce(a.clone(), &[P]));
    send(&mut rib, 2, &announce(b.clone(), &[P]));
    assert_eq!(best(&rib, P), PeerId(2));

    // With relax, MEDs of different ASes do not split the multipath set;
    // with always-compare-med they do.
    let mut config = RibConfig::new(LOCAL_AS);
    config.as_path_relax = true;
    let mut rib = rib_with(config.clone(), peers());
    send(&mut rib, 1, &announce(a.clone(), &[P]));
    send(&mut rib, 2, &announce(b.clone(), &[P]));
    assert_eq!(multipath(&rib, P), vec![PeerId(1), PeerId(2)]);
    config.always_compare_med = true;
    let mut rib = rib_with(config, peers());
    send(&mut rib, 1, &announce(a, &[P]));
    send(&mut rib, 2, &announce(b, &[P]));
    assert_eq!(multipath(&rib, P), vec![PeerId(2)]);
}

#[test]
fn best_path_does_not_depend_on_arrival_order_despite_med() {
    // A (AS 1, MED 10, id .1), B (AS 1, MED 0, id .3), C (AS 2, id .2):
    // pairwise, B beats A (MED), C beats B (router id), A beats C (router
    // id). Deterministic MED: B wins AS 1, then C beats B.
    let peers = vec![
        (1, ebgp("10.0.0.1", 64601)),
        (2, ebgp("10.0.0.3", 64601)),
        (3, ebgp("10.0.0.2", 64602)),
    ];
    let mut a = attrs(&[64601], "10.0.0.1");
    a.med = Some(10);
    let b = attrs(&[64601], "10.0.0.3");
    let c = attrs(&[64602], "10.0.0.2");
    let msgs = [(1, a), (2, b), (3, c)];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let mut rib = rib_with(RibConfig::new(LOCAL_AS), peers.clone());
        for i in order {
            let (peer, at) = &msgs[i];
            send(&mut rib, *peer, &announce(at.clone(), &[P]));
        }
        assert_eq!(best(&rib, P), PeerId(3), "order {order:?}");
    }
}

#[test]
fn ebgp_wins_over_ibgp() {
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(1, ibgp("10.0.0.11")), (2, ebgp("10.0.0.12", 64513))],
    );
    // Same local pref, path length, origin, MED.
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    send(&mut rib, 2, &announce(attrs(&[64513], "10.0.0.12"), &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
    assert_eq!(multipath(&rib, P), vec![PeerId(2)], "no eBGP/iBGP mix");
}

#[test]
fn lowest_router_id_wins_and_originator_id_stands_in_for_it() {
    let mut config = RibConfig::new(LOCAL_AS);
    config.maximum_paths_ibgp = 1;
    let mut rib = rib_with(
        config,
        vec![
            (
                1,
                PeerInfo::new(ip("10.0.0.11"), LOCAL_AS, 0x0a00_0009, true),
            ),
            (
                2,
                PeerInfo::new(ip("10.0.0.12"), LOCAL_AS, 0x0a00_0005, true),
            ),
        ],
    );
    send(&mut rib, 1, &announce(attrs(&[], "10.0.0.11"), &[P]));
    send(&mut rib, 2, &announce(attrs(&[], "10.0.0.12"), &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
    // Peer 1 reflects a route whose originator has a lower id.
    let mut a = attrs(&[], "10.0.0.11");
    a.originator_id = Some(v4("10.0.0.1"));
    a.cluster_list = vec![v4("10.255.0.1")];
    send(&mut rib, 1, &announce(a, &[P]));
    assert_eq!(best(&rib, P), PeerId(1));
}

#[test]
fn shortest_cluster_list_wins() {
    let mut config = RibConfig::new(LOCAL_AS);
    config.maximum_paths_ibgp = 1;
    let mut rib = rib_with(config, vec![(1, ibgp("10.0.0.11")), (2, ibgp("10.0.0.12"))]);
    let mut a = attrs(&[], "10.0.0.11");
    a.originator_id = Some(v4("10.9.9.9"));
    a.cluster_list = vec![v4("10.255.0.1"), v4("10.255.0.2")];
    let mut b = a.clone();
    b.next_hop = Some(v4("10.0.0.12"));
    b.cluster_list = vec![v4("10.255.0.3")];
    send(&mut rib, 1, &announce(a, &[P]));
    send(&mut rib, 2, &announce(b, &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
}

#[test]
fn lowest_peer_address_breaks_the_last_tie() {
    let mut config = RibConfig::new(LOCAL_AS);
    config.maximum_paths = 1;
    // Same router id on both sessions (one node, two addresses).
    let mut rib = rib_with(
        config,
        vec![
            (1, PeerInfo::new(ip("10.0.0.21"), 64513, 7, false)),
            (2, PeerInfo::new(ip("10.0.0.20"), 64513, 7, false)),
        ],
    );
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.21"), &[P]));
    send(&mut rib, 2, &announce(attrs(&[64513], "10.0.0.20"), &[P]));
    assert_eq!(best(&rib, P), PeerId(2));
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.20"]));
}

#[test]
fn oldest_external_path_wins_only_when_enabled() {
    for (enabled, winner) in [(false, 1), (true, 2)] {
        let mut config = RibConfig::new(LOCAL_AS);
        config.maximum_paths = 1;
        config.prefer_oldest_external = enabled;
        let mut rib = rib_with(
            config,
            vec![(1, ebgp("10.0.0.11", 64513)), (2, ebgp("10.0.0.12", 64513))],
        );
        send(&mut rib, 2, &announce(attrs(&[64513], "10.0.0.12"), &[P]));
        send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
        assert_eq!(best(&rib, P), PeerId(winner), "oldest preferred: {enabled}");
    }
}

#[test]
fn own_as_in_the_path_is_a_loop_and_filtered() {
    let mut rib = three_speakers();
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513, LOCAL_AS], "10.0.0.11"), &[P]),
    );
    let view = rib.route(&pfx(P)).unwrap();
    assert_eq!(view.paths[0].filtered, Some(FilterReason::AsLoop));
    assert!(rib.take_output().is_empty());
}

#[test]
fn unusable_next_hop_keeps_the_path_out() {
    let mut rib = three_speakers();
    send(&mut rib, 1, &announce(attrs(&[64513], "0.0.0.0"), &[P]));
    send(&mut rib, 2, &announce(attrs(&[64513], "224.0.0.5"), &[P]));
    assert!(rib.take_output().is_empty());
    let view = rib.route(&pfx(P)).unwrap();
    assert!(view
        .paths
        .iter()
        .all(|p| p.filtered == Some(FilterReason::NoNexthop)));
}

#[test]
fn loopback_next_hops_of_lab_speakers_are_usable() {
    // The demo's speakers run on 127.0.0.x: their routes must be installed.
    let mut rib = three_speakers();
    send(&mut rib, 1, &announce(attrs(&[64513], "127.0.0.2"), &[P]));
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 1, "{out:?}");
}

// ----- Multipath -------------------------------------------------------------

fn speakers_in_own_ases(config: RibConfig, n: u32) -> Rib {
    let peers = (1..=n)
        .map(|i| (i, ebgp(&format!("10.0.0.{}", 10 + i), 64600 + i)))
        .collect();
    rib_with(config, peers)
}

fn announce_from_own_ases(rib: &mut Rib, n: u32, order: &[u32]) {
    for &i in order.iter().filter(|i| **i <= n) {
        let nh = format!("10.0.0.{}", 10 + i);
        send(rib, i, &announce(attrs(&[64600 + i], &nh), &[P]));
    }
}

#[test]
fn speakers_in_different_ases_need_relax_for_multipath() {
    let mut rib = speakers_in_own_ases(RibConfig::new(LOCAL_AS), 3);
    announce_from_own_ases(&mut rib, 3, &[3, 2, 1]);
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.11"]));

    let mut config = RibConfig::new(LOCAL_AS);
    config.as_path_relax = true;
    let mut rib = speakers_in_own_ases(config, 3);
    announce_from_own_ases(&mut rib, 3, &[3, 2, 1]);
    assert_eq!(
        addrs(&only_set(&rib.take_output(), P)),
        ips(&["10.0.0.11", "10.0.0.12", "10.0.0.13"])
    );
}

#[test]
fn without_relax_the_whole_as_path_must_match() {
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(1, ebgp("10.0.0.11", 64513)), (2, ebgp("10.0.0.12", 64513))],
    );
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513, 65001], "10.0.0.11"), &[P]),
    );
    send(
        &mut rib,
        2,
        &announce(attrs(&[64513, 65002], "10.0.0.12"), &[P]),
    );
    assert_eq!(multipath(&rib, P), vec![PeerId(1)]);
}

#[test]
fn maximum_paths_truncates_deterministically() {
    let mut config = RibConfig::new(LOCAL_AS);
    config.as_path_relax = true;
    config.maximum_paths = 3;
    let mut results = Vec::new();
    for order in [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [3, 5, 1, 4, 2]] {
        let mut rib = speakers_in_own_ases(config.clone(), 5);
        announce_from_own_ases(&mut rib, 5, &order);
        results.push(addrs(&only_set(&rib.take_output(), P)));
    }
    // The best (lowest router id) and the next ones by peer address.
    assert_eq!(results[0], ips(&["10.0.0.11", "10.0.0.12", "10.0.0.13"]));
    assert!(results.iter().all(|r| *r == results[0]));

    // The best path is kept even when it is not among the lowest addresses.
    let mut config = RibConfig::new(LOCAL_AS);
    config.as_path_relax = true;
    config.maximum_paths = 2;
    let mut rib = rib_with(
        config,
        vec![
            (1, PeerInfo::new(ip("10.0.0.11"), 64601, 30, false)),
            (2, PeerInfo::new(ip("10.0.0.12"), 64602, 20, false)),
            (3, PeerInfo::new(ip("10.0.0.13"), 64603, 10, false)),
        ],
    );
    announce_from_own_ases(&mut rib, 3, &[1, 2, 3]);
    assert_eq!(best(&rib, P), PeerId(3));
    assert_eq!(
        addrs(&only_set(&rib.take_output(), P)),
        ips(&["10.0.0.11", "10.0.0.13"])
    );
}

#[test]
fn maximum_paths_one_disables_multipath() {
    let mut config = RibConfig::new(LOCAL_AS);
    config.maximum_paths = 1;
    let mut rib = rib_with(
        config,
        vec![(1, ebgp("10.0.0.11", 64513)), (2, ebgp("10.0.0.12", 64513))],
    );
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    send(&mut rib, 2, &announce(attrs(&[64513], "10.0.0.12"), &[P]));
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.11"]));
}

#[test]
fn ibgp_multipath_can_be_switched_off() {
    for (max_ibgp, want) in [(128, 3), (1, 1)] {
        let mut config = RibConfig::new(LOCAL_AS);
        config.maximum_paths_ibgp = max_ibgp;
        let mut rib = rib_with(
            config,
            vec![
                (1, ibgp("10.0.0.11")),
                (2, ibgp("10.0.0.12")),
                (3, ibgp("10.0.0.13")),
            ],
        );
        for (peer, nh) in [(1, "10.0.0.11"), (2, "10.0.0.12"), (3, "10.0.0.13")] {
            let mut a = attrs(&[], nh);
            a.local_pref = Some(100);
            send(&mut rib, peer, &announce(a, &[P]));
        }
        assert_eq!(only_set(&rib.take_output(), P).len(), want);
    }
}

#[test]
fn changing_the_decision_settings_redecides_every_prefix() {
    let mut rib = speakers_in_own_ases(RibConfig::new(LOCAL_AS), 3);
    announce_from_own_ases(&mut rib, 3, &[1, 2, 3]);
    assert_eq!(only_set(&rib.take_output(), P).len(), 1);
    let mut config = rib.config().clone();
    config.as_path_relax = true;
    rib.reconfigure(config);
    assert_eq!(only_set(&rib.take_output(), P).len(), 3);
}

// ----- Import policy ---------------------------------------------------------

fn pool_policy() -> ImportPolicy {
    ImportPolicy::ranges(vec![
        // MetalLB pool 192.0.2.0/24: its /32s, or an aggregate as long as /24.
        PrefixRange::new(pfx("192.0.2.0/24")),
        // A /16 pool announced with aggregationLength 24 at most.
        PrefixRange::with_bounds(pfx("10.20.0.0/16"), Some(24), Some(32)),
    ])
}

fn policy_rib(policy: ImportPolicy) -> Rib {
    let policy = Arc::new(policy);
    rib_with(
        RibConfig::new(LOCAL_AS),
        vec![
            (1, ebgp("10.0.0.11", 64513).with_import(Arc::clone(&policy))),
            (2, ebgp("10.0.0.12", 64513).with_import(Arc::clone(&policy))),
            (3, ebgp("10.0.0.13", 64513).with_import(policy)),
        ],
    )
}

#[test]
fn a_prefix_outside_the_allowed_ranges_is_filtered_but_shown() {
    let mut rib = policy_rib(pool_policy());
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["198.51.100.7/32"]),
    );
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.7/32"]),
    );
    let out = rib.take_output();
    assert_eq!(only_set(&out, "192.0.2.7/32").len(), 1);
    let view = rib.route(&pfx("198.51.100.7/32")).unwrap();
    assert_eq!(view.paths[0].filtered, Some(FilterReason::OutsideRanges));
    assert!(!view.paths[0].best);
    assert!(view.installed.is_empty());
    let counts = rib.peer_counts(PeerId(1)).unwrap();
    assert_eq!(
        (counts.received, counts.accepted(), counts.filtered),
        (2, 1, 1)
    );
}

#[test]
fn ge_and_le_bound_the_accepted_lengths() {
    let mut rib = policy_rib(pool_policy());
    let cases = [
        ("10.20.5.0/24", true),  // aggregationLength 24 inside the /16
        ("10.20.5.9/32", true),  // a service IP
        ("10.20.0.0/16", false), // shorter than ge 24
        ("10.20.4.0/23", false),
        ("10.0.0.0/8", false), // covers the pool: a hijack
        ("192.0.2.0/24", true),
        ("192.0.2.0/23", false),
    ];
    for (p, _) in cases {
        send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[p]));
    }
    for (p, ok) in cases {
        let view = rib.route(&pfx(p)).unwrap();
        assert_eq!(view.paths[0].filtered.is_none(), ok, "{p}");
    }
    assert_eq!(
        PrefixRange::with_bounds(pfx("10.20.0.0/16"), Some(24), Some(20)).problem(),
        Some("ge 24 is above le 20: the range matches nothing".to_string())
    );
    assert_eq!(pool_policy().ranges[1].problem(), None);
}

#[test]
fn an_empty_range_list_accepts_nothing() {
    let mut rib = policy_rib(ImportPolicy::ranges(Vec::new()));
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    assert!(rib.take_output().is_empty());
}

#[test]
fn a_community_setting_local_pref_changes_the_best_path() {
    let mut policy = pool_policy();
    policy.rules.push(PolicyRule::community(
        vec![Community::new(64500, 100)],
        PolicyAction::SetLocalPref(150),
    ));
    let mut rib = policy_rib(policy);
    let mut marked = attrs(&[64513], "10.0.0.13");
    marked.communities = vec![Community::new(64500, 1), Community::new(64500, 100)];
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    send(&mut rib, 2, &announce(attrs(&[64513], "10.0.0.12"), &[P]));
    send(&mut rib, 3, &announce(marked, &[P]));
    assert_eq!(best(&rib, P), PeerId(3));
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.13"]));
    let view = rib.route(&pfx(P)).unwrap();
    let p3 = view.paths.iter().find(|p| p.peer == PeerId(3)).unwrap();
    assert_eq!(p3.attributes.attrs.local_pref, Some(150));
    assert_eq!(p3.received.attrs.local_pref, None);
}

#[test]
fn a_large_community_can_deny() {
    let mut policy = pool_policy();
    let drain: LargeCommunity = "64500:0:666".parse().unwrap();
    policy
        .rules
        .push(PolicyRule::large_community(vec![drain], PolicyAction::Deny));
    let mut rib = policy_rib(policy);
    let mut draining = attrs(&[64513], "10.0.0.12");
    draining.large_communities = vec![drain];
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    send(&mut rib, 2, &announce(draining, &[P]));
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.11"]));
    let view = rib.route(&pfx(P)).unwrap();
    assert_eq!(view.paths[1].filtered, Some(FilterReason::Denied));
    assert_eq!(rib.peer_counts(PeerId(2)).unwrap().filtered, 1);
}

#[test]
fn rules_apply_in_order_and_the_default_applies_otherwise() {
    let mut policy = pool_policy();
    let c = Community::new(64500, 7);
    policy
        .rules
        .push(PolicyRule::community(vec![c], PolicyAction::Accept));
    policy
        .rules
        .push(PolicyRule::community(vec![c], PolicyAction::Deny));
    policy.default_action = PolicyAction::Deny;
    let mut rib = policy_rib(policy);
    let mut tagged = attrs(&[64513], "10.0.0.11");
    tagged.communities = vec![c];
    send(&mut rib, 1, &announce(tagged, &[P]));
    send(&mut rib, 2, &announce(attrs(&[64513], "10.0.0.12"), &[P]));
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.11"]));
}

#[test]
fn changing_a_peers_policy_re_evaluates_its_paths_without_a_refresh() {
    let mut rib = policy_rib(pool_policy());
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["198.51.100.7/32"]),
    );
    assert!(rib.take_output().is_empty());
    let mut wider = pool_policy();
    wider.ranges.push(PrefixRange::new(pfx("198.51.100.0/24")));
    rib.set_import_policy(PeerId(1), Arc::new(wider));
    assert_eq!(only_set(&rib.take_output(), "198.51.100.7/32").len(), 1);
    assert_eq!(rib.peer_counts(PeerId(1)).unwrap().filtered, 0);
    rib.set_import_policy(PeerId(1), Arc::new(pool_policy()));
    assert_eq!(
        rib.take_output().fib,
        vec![FibUpdate::RemoveRoute {
            prefix: pfx("198.51.100.7/32")
        }]
    );
}

#[test]
fn forwarding_policy_comes_from_the_longest_covering_range() {
    let maglev = GroupPolicy {
        algorithm: Algorithm::Maglev,
        ..GroupPolicy::default()
    };
    let rendezvous = GroupPolicy {
        algorithm: Algorithm::Rendezvous,
        ..GroupPolicy::default()
    };
    let mut config = RibConfig::new(LOCAL_AS);
    config.forwarding = ForwardingPolicies::default()
        .with_range(pfx("192.0.2.0/24"), maglev)
        .with_range(pfx("192.0.2.128/25"), rendezvous);
    let mut rib = rib_with(config, vec![(1, ebgp("10.0.0.11", 64513))]);
    let prefixes = ["192.0.2.10/32", "192.0.2.200/32", "198.51.100.1/32"];
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &prefixes),
    );
    let mut model = FibModel::default();
    model.apply(&rib.take_output().fib);
    assert_eq!(model.policies["192.0.2.10/32"], maglev);
    assert_eq!(model.policies["192.0.2.200/32"], rendezvous);
    assert_eq!(model.policies["198.51.100.1/32"], GroupPolicy::default());

    // A new forwarding configuration re-programs only the routes it changes.
    rib.set_forwarding_policies(
        ForwardingPolicies::default().with_range(pfx("192.0.2.0/24"), maglev),
    );
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 1);
    model.apply(&out.fib);
    assert_eq!(model.policies["192.0.2.200/32"], maglev);
}

// ----- Prefix limits ---------------------------------------------------------

fn limited(limit: u32, warning_only: bool) -> Rib {
    rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(
            1,
            ebgp("10.0.0.11", 64513).with_max_prefix(MaxPrefix {
                limit,
                warning_only,
                hold_down: Some(t(30)),
            }),
        )],
    )
}

#[test]
fn going_over_the_prefix_limit_asks_for_a_cease() {
    let mut rib = limited(2, false);
    for p in ["192.0.2.1/32", "192.0.2.2/32"] {
        send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[p]));
    }
    assert!(
        rib.take_output().sessions.is_empty(),
        "at the limit is fine"
    );
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.3/32"]),
    );
    let out = rib.take_output();
    let cmd = SessionCommand::MaxPrefixExceeded {
        peer: PeerId(1),
        family: AfiSafi::IPV4_UNICAST,
        limit: 2,
        hold_down: Some(t(30)),
    };
    assert_eq!(out.sessions, vec![cmd.clone()]);
    assert_eq!(
        cmd.fsm_event(),
        Some(Event::MaxPrefixExceeded {
            family: AfiSafi::IPV4_UNICAST,
            limit: 2,
            hold_down: Some(t(30)),
        })
    );
    // More while the session is torn down: asked once, not installed.
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.4/32"]),
    );
    let out = rib.take_output();
    assert!(out.sessions.is_empty() && out.fib.is_empty());
    assert_eq!(
        rib.route(&pfx("192.0.2.4/32")).unwrap().paths[0].filtered,
        Some(FilterReason::OverLimit)
    );
    // Filtered prefixes do not count.
    assert_eq!(rib.peer_counts(PeerId(1)).unwrap().accepted(), 3);
    // The session goes down (max-prefix never keeps stale paths).
    rib.peer_down(PeerId(1), None, t(1));
    assert_eq!(rib.take_output().fib.len(), 3);
    assert!(rib.peer_counts(PeerId(1)).is_none());
}

#[test]
fn filtered_prefixes_do_not_count_towards_the_limit() {
    let policy = Arc::new(pool_policy());
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(
            1,
            ebgp("10.0.0.11", 64513)
                .with_import(policy)
                .with_max_prefix(MaxPrefix {
                    limit: 1,
                    warning_only: false,
                    hold_down: None,
                }),
        )],
    );
    let u = announce(
        attrs(&[64513], "10.0.0.11"),
        &["198.51.100.1/32", "198.51.100.2/32", "192.0.2.1/32"],
    );
    send(&mut rib, 1, &u);
    assert!(rib.take_output().sessions.is_empty());
}

#[test]
fn warning_only_keeps_accepting() {
    let mut rib = limited(1, true);
    let u = announce(
        attrs(&[64513], "10.0.0.11"),
        &["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"],
    );
    send(&mut rib, 1, &u);
    let out = rib.take_output();
    assert_eq!(
        out.sessions,
        vec![SessionCommand::MaxPrefixWarning {
            peer: PeerId(1),
            family: AfiSafi::IPV4_UNICAST,
            limit: 1,
            count: 2,
        }]
    );
    assert_eq!(out.sessions[0].fsm_event(), None);
    assert_eq!(out.fib.len(), 3);
}

#[test]
fn the_limit_is_per_family() {
    let mut rib = limited(1, false);
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.1/32"]),
    );
    send(
        &mut rib,
        1,
        &announce_v6(&[64513], "2001:db8::11", None, &["2001:db8:1::1/128"]),
    );
    assert!(rib.take_output().sessions.is_empty());
}

// ----- Graceful restart ------------------------------------------------------

fn gr_capability(forwarding: bool) -> GracefulRestart {
    GracefulRestart {
        restart_state: true,
        notification: true,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            family: AfiSafi::IPV4_UNICAST,
            forwarding_preserved: forwarding,
        }],
    }
}

fn stale_v4() -> StalePaths {
    StalePaths {
        restart_time: t(120),
        families: vec![AfiSafi::IPV4_UNICAST],
    }
}

/// Three FRR speakers, each announcing services .1 to .4.
fn gr_rib() -> (Rib, FibModel) {
    let mut rib = three_speakers();
    for (peer, nh) in [(1, "10.0.0.11"), (2, "10.0.0.12"), (3, "10.0.0.13")] {
        let u = announce(
            attrs(&[64513], nh),
            &[
                "192.0.2.1/32",
                "192.0.2.2/32",
                "192.0.2.3/32",
                "192.0.2.4/32",
            ],
        );
        send(&mut rib, peer, &u);
    }
    let mut model = FibModel::default();
    model.apply(&rib.take_output().fib);
    (rib, model)
}

#[test]
fn a_restarting_peer_keeps_forwarding_on_its_stale_paths() {
    let (mut rib, _) = gr_rib();
    rib.peer_down(PeerId(3), Some(&stale_v4()), t(10));
    assert!(rib.take_output().is_empty(), "the FIB does not change");
    let counts = rib.peer_counts(PeerId(3)).unwrap();
    assert_eq!((counts.stale, counts.accepted()), (4, 4));
    let view = rib.route(&pfx("192.0.2.1/32")).unwrap();
    let p3 = view.paths.iter().find(|p| p.peer == PeerId(3)).unwrap();
    assert!(p3.stale && p3.multipath);
    assert_eq!(rib.next_deadline(), Some(t(130)));
    rib.poll(t(129));
    assert!(rib.take_output().is_empty());
}

#[test]
fn end_of_rib_sweeps_what_the_restarted_peer_did_not_re_announce_in_one_batch() {
    let (mut rib, mut model) = gr_rib();
    rib.peer_down(PeerId(3), Some(&stale_v4()), t(10));
    rib.peer_up(
        PeerId(3),
        ebgp("10.0.0.13", 64513).with_graceful_restart(gr_capability(true)),
        t(20),
    );
    // The restarted speaker still serves .1 and .2 only.
    let u = announce(
        attrs(&[64513], "10.0.0.13"),
        &["192.0.2.1/32", "192.0.2.2/32"],
    );
    send(&mut rib, 3, &u);
    assert!(
        rib.take_output().is_empty(),
        "re-announced paths change nothing"
    );
    assert_eq!(rib.peer_counts(PeerId(3)).unwrap().stale, 2);
    assert_eq!(rib.next_deadline(), Some(t(20 + 360)), "stale-path time");
    send(&mut rib, 3, &end_of_rib(AfiSafi::IPV4_UNICAST));
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 2);
    model.apply(&out.fib);
    let two = ips(&["10.0.0.11", "10.0.0.12"]);
    let three = ips(&["10.0.0.11", "10.0.0.12", "10.0.0.13"]);
    assert_eq!(model.sets()["192.0.2.1/32"], three);
    assert_eq!(model.sets()["192.0.2.3/32"], two);
    assert_eq!(model.sets()["192.0.2.4/32"], two);
    assert_eq!(rib.peer_counts(PeerId(3)).unwrap().stale, 0);
    assert_eq!(rib.next_deadline(), None);
}

#[test]
fn stale_paths_are_withdrawn_when_the_restart_time_runs_out() {
    let (mut rib, mut model) = gr_rib();
    rib.peer_down(PeerId(3), Some(&stale_v4()), t(10));
    rib.poll(rib.next_deadline().unwrap());
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 4);
    model.apply(&out.fib);
    assert!(model
        .sets()
        .values()
        .all(|s| s == &ips(&["10.0.0.11", "10.0.0.12"])));
    assert!(
        rib.peer_counts(PeerId(3)).is_none(),
        "the peer is forgotten"
    );
    assert_eq!(rib.next_deadline(), None);
}

#[test]
fn stale_paths_go_when_the_restarted_peer_did_not_preserve_forwarding() {
    let (mut rib, _) = gr_rib();
    rib.peer_down(PeerId(3), Some(&stale_v4()), t(10));
    rib.peer_up(
        PeerId(3),
        ebgp("10.0.0.13", 64513).with_graceful_restart(gr_capability(false)),
        t(20),
    );
    assert_eq!(rib.take_output().fib.len(), 4);
    assert_eq!(rib.next_deadline(), None);
}

#[test]
fn a_session_down_without_graceful_restart_withdraws_at_once() {
    let (mut rib, mut model) = gr_rib();
    rib.peer_down(PeerId(1), None, t(10));
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 4);
    model.apply(&out.fib);
    model.check_ids();
    assert!(model
        .sets()
        .values()
        .all(|s| s == &ips(&["10.0.0.12", "10.0.0.13"])));
}

#[test]
fn stale_paths_cover_only_the_listed_families() {
    let (mut rib, _) = gr_rib();
    send(
        &mut rib,
        3,
        &announce_v6(&[64513], "2001:db8::13", None, &["2001:db8:1::1/128"]),
    );
    rib.take_output();
    rib.peer_down(PeerId(3), Some(&stale_v4()), t(10));
    let out = rib.take_output();
    assert_eq!(
        out.fib,
        vec![FibUpdate::RemoveRoute {
            prefix: pfx("2001:db8:1::1/128")
        }]
    );
}

// ----- Treat-as-withdraw and IPv6 --------------------------------------------

#[test]
fn a_treat_as_withdraw_update_removes_the_path() {
    let mut rib = three_speakers();
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    send(&mut rib, 2, &announce(attrs(&[64513], "10.0.0.12"), &[P]));
    rib.take_output();
    // Peer 2 re-sends the route with a malformed attribute.
    let mut broken = announce(attrs(&[64513], "10.0.0.12"), &[P]);
    broken.outcome = Outcome::TreatAsWithdraw;
    let summary = rib.apply_update(PeerId(2), &broken, t(1)).unwrap();
    assert_eq!((summary.accepted, summary.withdrawn), (0, 1));
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.11"]));
}

#[test]
fn a_decoded_treat_as_withdraw_update_removes_the_path() {
    use control::bgp::wire::{decode_update, UpdateContext};
    let mut rib = three_speakers();
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    rib.take_output();
    // ORIGIN with an undefined value: treat-as-withdraw (RFC 7606 7.1).
    let mut body = vec![0, 0];
    let attrs_bytes = [
        0x40, 1, 1, 9, // ORIGIN 9
        0x40, 2, 6, 2, 1, 0, 0, 0xfb, 0xff, // AS_PATH [64511]
        0x40, 3, 4, 10, 0, 0, 11, // NEXT_HOP
    ];
    body.extend_from_slice(&(attrs_bytes.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs_bytes);
    body.extend_from_slice(&[32, 192, 0, 2, 10]);
    let decoded = decode_update(&body, &UpdateContext::default()).unwrap();
    assert_eq!(decoded.outcome, Outcome::TreatAsWithdraw);
    send(&mut rib, 1, &decoded);
    assert_eq!(
        rib.take_output().fib,
        vec![FibUpdate::RemoveRoute { prefix: pfx(P) }]
    );
}

/// An IPv6 announcement over MP_REACH_NLRI.
fn announce_v6(
    asns: &[u32],
    global: &str,
    link_local: Option<&str>,
    prefixes: &[&str],
) -> DecodedUpdate {
    accepted(Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(asns.iter().copied())),
            ..PathAttributes::default()
        },
        mp_reach: Some(MpReach {
            family: AfiSafi::IPV6_UNICAST,
            next_hop: MpNextHop {
                global: ip(global),
                link_local: link_local.map(|l| l.parse::<Ipv6Addr>().unwrap()),
            },
            nlri: prefixes.iter().map(|p| pfx(p)).collect(),
        }),
        ..Update::default()
    })
}

#[test]
fn ipv6_routes_come_over_mp_reach_with_the_global_next_hop() {
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![
            (1, ebgp("2001:db8::11", 64513)),
            (2, ebgp("2001:db8::12", 64513)),
        ],
    );
    let svc = "2001:db8:100::10/128";
    send(
        &mut rib,
        1,
        &announce_v6(&[64513], "2001:db8::11", Some("fe80::11"), &[svc]),
    );
    send(
        &mut rib,
        2,
        &announce_v6(&[64513], "2001:db8::12", None, &[svc]),
    );
    assert_eq!(
        addrs(&only_set(&rib.take_output(), svc)),
        ips(&["2001:db8::11", "2001:db8::12"])
    );
    // Withdrawn over MP_UNREACH_NLRI.
    let w = accepted(Update {
        mp_unreach: Some(MpUnreach {
            family: AfiSafi::IPV6_UNICAST,
            withdrawn: vec![pfx(svc)],
        }),
        ..Update::default()
    });
    send(&mut rib, 2, &w);
    assert_eq!(
        addrs(&only_set(&rib.take_output(), svc)),
        ips(&["2001:db8::11"])
    );
    // End-of-RIB for IPv6 is recognised (nothing stale: nothing happens).
    let s = rib
        .apply_update(PeerId(1), &end_of_rib(AfiSafi::IPV6_UNICAST), t(0))
        .unwrap();
    assert_eq!(s.end_of_rib, Some(AfiSafi::IPV6_UNICAST));
}

#[test]
fn a_link_local_next_hop_is_used_only_without_a_usable_global_one() {
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(1, ebgp("2001:db8::11", 64513))],
    );
    let svc = "2001:db8:100::10/128";
    send(
        &mut rib,
        1,
        &announce_v6(&[64513], "::", Some("fe80::11"), &[svc]),
    );
    assert_eq!(
        addrs(&only_set(&rib.take_output(), svc)),
        ips(&["fe80::11"])
    );
    send(
        &mut rib,
        1,
        &announce_v6(&[64513], "fe80::12", None, &[svc]),
    );
    assert_eq!(
        addrs(&only_set(&rib.take_output(), svc)),
        ips(&["fe80::12"])
    );
    send(&mut rib, 1, &announce_v6(&[64513], "::", None, &[svc]));
    assert_eq!(
        rib.take_output().fib,
        vec![FibUpdate::RemoveRoute { prefix: pfx(svc) }]
    );
}

#[test]
fn one_update_with_ipv4_and_ipv6_routes_uses_each_familys_next_hop() {
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(1, ebgp("10.0.0.11", 64513))],
    );
    let mut u = announce_v6(&[64513], "2001:db8::11", None, &["2001:db8:100::10/128"]);
    u.update.attributes.next_hop = Some(v4("10.0.0.11"));
    u.update.nlri = vec![pfx(P)];
    send(&mut rib, 1, &u);
    let mut model = FibModel::default();
    model.apply(&rib.take_output().fib);
    assert_eq!(model.sets()[P], ips(&["10.0.0.11"]));
    assert_eq!(model.sets()["2001:db8:100::10/128"], ips(&["2001:db8::11"]));
}

// ----- Random sequences ------------------------------------------------------

const PEERS: u32 = 5;
const PREFIXES: [&str; 6] = [
    "192.0.2.1/32",
    "192.0.2.2/32",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "2001:db8::1/128",
    "2001:db8:1::/48",
];

/// A path variant: AS path length 1..=3, origin IGP or INCOMPLETE, next hop
/// the peer's own or a shared one.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Variant {
    len: usize,
    incomplete: bool,
    shared_nexthop: bool,
}

fn variant() -> impl Strategy<Value = Variant> {
    (1usize..=3, any::<bool>(), prop::bool::weighted(0.2)).prop_map(
        |(len, incomplete, shared_nexthop)| Variant {
            len,
            incomplete,
            shared_nexthop,
        },
    )
}

#[derive(Debug, Clone)]
enum Op {
    Announce(u32, usize, Variant),
    Withdraw(u32, usize),
    Down(u32),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..=PEERS, 0..PREFIXES.len(), variant()).prop_map(|(p, x, v)| Op::Announce(p, x, v)),
        3 => (1..=PEERS, 0..PREFIXES.len()).prop_map(|(p, x)| Op::Withdraw(p, x)),
        1 => (1..=PEERS).prop_map(Op::Down),
        1 => Just(Op::Flush),
    ]
}

/// Peers 1..=3 eBGP in their own AS, 4..=5 iBGP. Addresses are v4 for odd
/// peers and v6 for even ones, to mix families of peer addresses.
fn random_peer(i: u32) -> PeerInfo {
    let addr = if i % 2 == 1 {
        format!("10.0.0.{i}")
    } else {
        format!("2001:db8:ffff::{i}")
    };
    if i <= 3 {
        ebgp(&addr, 64600 + i)
    } else {
        ibgp(&addr)
    }
}

fn nexthop_of(peer: u32, prefix: &Prefix, v: Variant) -> IpAddr {
    let id = if v.shared_nexthop { 99 } else { peer };
    match prefix {
        Prefix::V4(..) => ip(&format!("10.1.0.{id}")),
        Prefix::V6(..) => ip(&format!("2001:db8:eeee::{id}")),
    }
}

fn variant_update(peer: u32, prefix: &Prefix, v: Variant) -> DecodedUpdate {
    let mut asns = vec![64600 + peer; v.len];
    if peer > 3 {
        asns[0] = 65000 + peer; // iBGP: a path learned from elsewhere
    }
    let mut a = PathAttributes {
        origin: Some(if v.incomplete {
            Origin::Incomplete
        } else {
            Origin::Igp
        }),
        as_path: Some(AsPath::sequence(asns)),
        ..PathAttributes::default()
    };
    match (prefix, nexthop_of(peer, prefix, v)) {
        (Prefix::V4(..), IpAddr::V4(nh)) => {
            a.next_hop = Some(nh);
            accepted(Update {
                attributes: a,
                nlri: vec![*prefix],
                ..Update::default()
            })
        }
        (_, nh) => accepted(Update {
            attributes: a,
            mp_reach: Some(MpReach {
                family: AfiSafi::IPV6_UNICAST,
                next_hop: MpNextHop {
                    global: nh,
                    link_local: None,
                },
                nlri: vec![*prefix],
            }),
            ..Update::default()
        }),
    }
}

fn random_config() -> RibConfig {
    let mut config = RibConfig::new(LOCAL_AS);
    config.as_path_relax = true;
    config
}

/// The multipath sets by hand: the paths with the lowest (AS path length,
/// origin, iBGP) key, all of them (relax, no MED, paths <= maximum_paths).
fn naive(adj: &BTreeMap<(u32, usize), Variant>) -> BTreeMap<String, Vec<IpAddr>> {
    let mut out = BTreeMap::new();
    for (x, p) in PREFIXES.iter().enumerate() {
        let prefix = pfx(p);
        let paths: Vec<(u32, Variant)> = adj
            .iter()
            .filter(|((_, px), _)| *px == x)
            .map(|((peer, _), v)| (*peer, *v))
            .collect();
        let key = |(peer, v): &(u32, Variant)| (v.len, v.incomplete, *peer > 3);
        let Some(min) = paths.iter().map(key).min() else {
            continue;
        };
        let mut set: Vec<IpAddr> = paths
            .iter()
            .filter(|pv| key(pv) == min)
            .map(|(peer, v)| nexthop_of(*peer, &prefix, *v))
            .collect();
        set.sort();
        set.dedup();
        out.insert(prefix.to_string(), set);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the sequence, the FIB built from the emitted batches equals
    /// both a naive recomputation and a fresh RIB fed only the final
    /// Adj-RIB-Ins; member ids stay a bijection; counters add up.
    #[test]
    fn random_sequences_end_in_the_recomputed_fib(ops in prop::collection::vec(op(), 1..80)) {
        let peers: Vec<(u32, PeerInfo)> = (1..=PEERS).map(|i| (i, random_peer(i))).collect();
        let mut rib = rib_with(random_config(), peers.clone());
        let mut model = FibModel::default();
        let mut adj: BTreeMap<(u32, usize), Variant> = BTreeMap::new();
        for op in &ops {
            match *op {
                Op::Announce(peer, x, v) => {
                    let prefix = pfx(PREFIXES[x]);
                    rib.apply_update(PeerId(peer), &variant_update(peer, &prefix, v), t(0)).unwrap();
                    adj.insert((peer, x), v);
                }
                Op::Withdraw(peer, x) => {
                    let w = match pfx(PREFIXES[x]) {
                        p @ Prefix::V4(..) => accepted(Update { withdrawn: vec![p], ..Update::default() }),
                        p => accepted(Update {
                            mp_unreach: Some(MpUnreach { family: AfiSafi::IPV6_UNICAST, withdrawn: vec![p] }),
                            ..Update::default()
                        }),
                    };
                    rib.apply_update(PeerId(peer), &w, t(0)).unwrap();
                    adj.remove(&(peer, x));
                }
                Op::Down(peer) => {
                    rib.peer_down(PeerId(peer), None, t(0));
                    rib.peer_up(PeerId(peer), random_peer(peer), t(0));
                    adj.retain(|(p, _), _| *p != peer);
                }
                Op::Flush => {
                    let out = rib.take_output();
                    model.apply(&out.fib);
                    model.check_ids();
                }
            }
        }
        let out = rib.take_output();
        model.apply(&out.fib);
        model.check_ids();
        prop_assert!(rib.take_output().is_empty());

        check_installed_is_the_multipath_set(&rib);
        let expected = naive(&adj);
        prop_assert_eq!(&model.sets(), &expected);
        prop_assert_eq!(&rib_sets(&rib), &expected);

        let mut fresh = rib_with(random_config(), peers);
        for ((peer, x), v) in &adj {
            let prefix = pfx(PREFIXES[*x]);
            fresh.apply_update(PeerId(*peer), &variant_update(*peer, &prefix, *v), t(0)).unwrap();
        }
        let mut fresh_model = FibModel::default();
        fresh_model.apply(&fresh.take_output().fib);
        prop_assert_eq!(fresh_model.sets(), model.sets());
        // The best paths agree too.
        for p in PREFIXES {
            let b = |r: &Rib| r.route(&pfx(p)).and_then(|v| v.paths.iter().find(|x| x.best).map(|x| x.peer));
            prop_assert_eq!(b(&rib), b(&fresh));
        }

        for peer in 1..=PEERS {
            let held = adj.keys().filter(|(p, _)| *p == peer).count() as u32;
            let c = rib.peer_counts(PeerId(peer)).unwrap();
            prop_assert_eq!(c.received, held);
            prop_assert_eq!(c.accepted(), held);
        }
    }

    /// Graceful restart, policy changes, limits and time in any order never
    /// panic, and the RIB's installed routes always equal the FIB built
    /// from its batches.
    #[test]
    fn any_event_sequence_keeps_the_fib_in_step(
        ops in prop::collection::vec((0u8..11, 1..=PEERS, 0..PREFIXES.len(), variant()), 1..100)
    ) {
        let mut rib = Rib::new(random_config());
        let mut model = FibModel::default();
        let mut now = t(0);
        for (kind, peer, x, v) in ops {
            let id = PeerId(peer);
            let prefix = pfx(PREFIXES[x]);
            match kind {
                0 => {
                    let mut info = random_peer(peer)
                        .with_graceful_restart(gr_capability(v.incomplete))
                        .with_max_prefix(MaxPrefix { limit: 3, warning_only: v.shared_nexthop, hold_down: None });
                    if v.len == 3 {
                        info = info.with_import(Arc::new(pool_policy()));
                    }
                    rib.peer_up(id, info, now);
                }
                1..=3 => { let _ = rib.apply_update(id, &variant_update(peer, &prefix, v), now); }
                4 => { let _ = rib.apply_update(id, &withdraw(&[PREFIXES[x]]), now); }
                5 => {
                    let stale = StalePaths { restart_time: t(v.len as u64 * 10), families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST] };
                    rib.peer_down(id, v.incomplete.then_some(&stale), now);
                }
                6 => {
                    let family = if x % 2 == 0 { AfiSafi::IPV4_UNICAST } else { AfiSafi::IPV6_UNICAST };
                    let _ = rib.apply_update(id, &end_of_rib(family), now);
                }
                7 => {
                    now += t(v.len as u64 * 7);
                    rib.poll(now);
                }
                8 => {
                    let policy = if v.incomplete { ImportPolicy::accept_all() } else { pool_policy() };
                    rib.set_import_policy(id, Arc::new(policy));
                }
                9 => {
                    use control::bgp::wire::{RouteRefresh, RouteRefreshSubtype};
                    let subtype = if v.incomplete { RouteRefreshSubtype::Begin } else { RouteRefreshSubtype::End };
                    let family = if x % 2 == 0 { AfiSafi::IPV4_UNICAST } else { AfiSafi::IPV6_UNICAST };
                    rib.route_refresh(id, &RouteRefresh { family, subtype }, now);
                }
                _ => {
                    let out = rib.take_output();
                    model.apply(&out.fib);
                    model.check_ids();
                }
            }
            if let Some(d) = rib.next_deadline() {
                prop_assert!(d > now);
            }
        }
        model.apply(&rib.take_output().fib);
        model.check_ids();
        prop_assert_eq!(model.sets(), rib_sets(&rib));
        for (_, _, _, counts) in rib.peers() {
            prop_assert!(counts.accepted() + counts.filtered == counts.received);
            prop_assert!(counts.stale <= counts.received);
        }
        check_installed_is_the_multipath_set(&rib);
        let held: u32 = rib.routes().map(|r| r.paths.len() as u32).sum();
        let counted: u32 = rib.peers().map(|(_, _, _, c)| c.received).sum();
        prop_assert_eq!(held, counted);
    }
}

// ----- Scale and member id churn ---------------------------------------------

#[test]
fn member_ids_are_never_shared_while_in_use_through_heavy_nexthop_churn() {
    let mut rib = rib_with(
        RibConfig::new(LOCAL_AS),
        vec![(1, ebgp("10.0.0.11", 64513))],
    );
    let mut model = FibModel::default();
    // 64 routes, each moved through 3000 distinct next hops in total, so
    // retired ids are freed and reused.
    for round in 0..50u32 {
        for i in 0..64u32 {
            let n = round * 64 + i;
            let nh = format!("10.{}.{}.{}", 100 + n / 65536, (n / 256) % 256, n % 256);
            let p = format!("192.0.{}.{}/32", i / 256, i % 256);
            send(&mut rib, 1, &announce(attrs(&[64513], &nh), &[&p]));
        }
        model.apply(&rib.take_output().fib);
        model.check_ids();
    }
    assert_eq!(model.routes.len(), 64);
    assert_eq!(rib.nexthops_in_use(), 64);
}

#[test]
fn a_large_table_shares_attribute_sets_and_nexthop_sets() {
    // Two transit peers announcing the same 20,000 prefixes, 100 per
    // UPDATE, with 20 distinct attribute sets.
    let mut config = RibConfig::new(LOCAL_AS);
    config.as_path_relax = true;
    let mut rib = rib_with(
        config,
        vec![(1, ebgp("10.0.0.1", 64601)), (2, ebgp("10.0.0.2", 64602))],
    );
    for peer in 1..=2u32 {
        for chunk in 0..200u32 {
            let prefixes: Vec<String> = (0..100u32)
                .map(|i| {
                    let n = chunk * 100 + i;
                    format!("{}.{}.{}.0/24", 20 + n / 65536, (n / 256) % 256, n % 256)
                })
                .collect();
            let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
            let nh = format!("10.0.0.{peer}");
            let path = [64600 + peer, 65000 + chunk % 20];
            send(&mut rib, peer, &announce(attrs(&path, &nh), &refs));
        }
    }
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 20_000);
    assert_eq!(rib.len(), 20_000);
    assert_eq!(rib.attribute_sets(), 40);
    assert!(out
        .fib
        .iter()
        .all(|u| matches!(u, FibUpdate::SetRoute { nexthops, .. } if nexthops.len() == 2)));
    let counts = rib.peer_counts(PeerId(2)).unwrap();
    assert_eq!(counts.accepted_ipv4, 20_000);
    // One peer goes: every route shrinks to one next hop, in one batch.
    rib.peer_down(PeerId(2), None, t(1));
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 20_000);
    assert!(rib.peer_counts(PeerId(2)).is_none());
}

#[test]
fn forwarding_policy_lookup_handles_both_families() {
    let maglev = GroupPolicy {
        algorithm: Algorithm::Maglev,
        ..GroupPolicy::default()
    };
    let fp = ForwardingPolicies::default()
        .with_range(pfx("2001:db8::/32"), maglev)
        .with_range(pfx("0.0.0.0/0"), GroupPolicy::default());
    assert_eq!(fp.lookup(&pfx("2001:db8:1::1/128")), maglev);
    assert_eq!(fp.lookup(&pfx("2001:db9::1/128")), GroupPolicy::default());
    assert_eq!(fp.lookup(&pfx("192.0.2.1/32")), GroupPolicy::default());
}

#[test]
fn batches_come_in_prefix_order() {
    let mut rib = three_speakers();
    let prefixes = [
        "192.0.2.9/32",
        "2001:db8::1/128",
        "10.9.0.0/16",
        "192.0.2.1/32",
        "10.9.0.0/24",
    ];
    for p in prefixes {
        let u = match pfx(p) {
            Prefix::V4(..) => announce(attrs(&[64513], "10.0.0.11"), &[p]),
            Prefix::V6(..) => announce_v6(&[64513], "2001:db8::11", None, &[p]),
        };
        send(&mut rib, 1, &u);
    }
    let order: Vec<String> = rib
        .take_output()
        .fib
        .iter()
        .map(|u| match u {
            FibUpdate::SetRoute { prefix, .. } => prefix.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        order,
        [
            "10.9.0.0/16",
            "10.9.0.0/24",
            "192.0.2.1/32",
            "192.0.2.9/32",
            "2001:db8::1/128"
        ]
    );
}

#[test]
fn enhanced_route_refresh_sweeps_what_was_not_re_advertised() {
    use control::bgp::wire::{RouteRefresh, RouteRefreshSubtype};
    let (mut rib, mut model) = gr_rib();
    let marker = |subtype| RouteRefresh {
        family: AfiSafi::IPV4_UNICAST,
        subtype,
    };
    rib.route_refresh(PeerId(3), &marker(RouteRefreshSubtype::Begin), t(5));
    assert!(rib.take_output().is_empty());
    assert_eq!(rib.peer_counts(PeerId(3)).unwrap().stale, 4);
    send(
        &mut rib,
        3,
        &announce(attrs(&[64513], "10.0.0.13"), &["192.0.2.1/32"]),
    );
    rib.route_refresh(PeerId(3), &marker(RouteRefreshSubtype::End), t(6));
    let out = rib.take_output();
    assert_eq!(out.fib.len(), 3);
    model.apply(&out.fib);
    assert_eq!(model.sets()["192.0.2.1/32"].len(), 3);
    assert_eq!(model.sets()["192.0.2.2/32"].len(), 2);
    // A BoRR without EoRR: swept after the stale-path time.
    rib.route_refresh(PeerId(1), &marker(RouteRefreshSubtype::Begin), t(10));
    rib.route_refresh(PeerId(1), &marker(RouteRefreshSubtype::Request), t(10));
    assert_eq!(rib.next_deadline(), Some(t(370)));
    rib.poll(t(370));
    assert_eq!(rib.take_output().fib.len(), 4);
}

#[test]
fn a_restarted_peer_with_a_new_router_id_is_decided_again() {
    let mut config = RibConfig::new(LOCAL_AS);
    config.maximum_paths = 1;
    let gr = ebgp("10.0.0.12", 64513).with_graceful_restart(gr_capability(true));
    let mut rib = rib_with(
        config,
        vec![
            (1, PeerInfo::new(ip("10.0.0.11"), 64513, 20, false)),
            (
                2,
                PeerInfo {
                    bgp_id: 30,
                    ..gr.clone()
                },
            ),
        ],
    );
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    send(&mut rib, 2, &announce(attrs(&[64513], "10.0.0.12"), &[P]));
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.11"]));
    rib.peer_down(PeerId(2), Some(&stale_v4()), t(1));
    // Back with a lower router id and a new policy object: its stale path
    // now wins.
    rib.peer_up(
        PeerId(2),
        PeerInfo { bgp_id: 10, ..gr }.with_import(Arc::new(ImportPolicy::accept_all())),
        t(2),
    );
    assert_eq!(addrs(&only_set(&rib.take_output(), P)), ips(&["10.0.0.12"]));
}

#[test]
fn a_peer_id_reused_for_another_address_starts_afresh() {
    let (mut rib, _) = gr_rib();
    rib.peer_down(PeerId(3), Some(&stale_v4()), t(1));
    rib.peer_up(PeerId(3), ebgp("10.0.0.99", 64513), t(2));
    assert_eq!(rib.take_output().fib.len(), 4);
    assert_eq!(rib.peer_counts(PeerId(3)).unwrap().received, 0);
    assert_eq!(rib.next_deadline(), None);
}

// ----- Hostile input ---------------------------------------------------------

#[test]
fn prefixes_with_impossible_lengths_are_ignored() {
    let mut rib = three_speakers();
    let mut u = announce(attrs(&[64513], "10.0.0.11"), &[P]);
    u.update.nlri.push(Prefix::V4(v4("192.0.2.0"), 33));
    u.update
        .withdrawn
        .push(Prefix::V6(Ipv6Addr::LOCALHOST, 200));
    let s = rib.apply_update(PeerId(1), &u, t(0)).unwrap();
    assert_eq!(s.accepted, 1);
    assert_eq!(only_set(&rib.take_output(), P).len(), 1);
    assert!(rib.route(&Prefix::V4(v4("192.0.2.0"), 33)).is_none());
    // Host bits are cleared: 192.0.2.10/24 is 192.0.2.0/24.
    send(
        &mut rib,
        1,
        &announce(attrs(&[64513], "10.0.0.11"), &["192.0.2.10/24"]),
    );
    rib.take_output();
    assert!(rib.installed(&pfx("192.0.2.0/24")).is_some());
}

proptest! {
    /// Whatever bytes a peer sends, decoding and applying them never
    /// panics, and the FIB stays in step with the RIB.
    #[test]
    fn random_update_bodies_never_panic(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20),
        nlri in prop::collection::vec((any::<u32>(), 0u8..=40), 0..8),
    ) {
        use control::bgp::wire::{decode_update, UpdateContext};
        let mut rib = three_speakers();
        let mut model = FibModel::default();
        for (i, body) in bodies.iter().enumerate() {
            let peer = (i % 3) as u32 + 1;
            // A valid header and attributes around random NLRI, then the
            // random body itself.
            let mut u = announce(attrs(&[64513], "10.0.0.11"), &[]);
            u.update.nlri = nlri.iter().map(|(a, l)| Prefix::V4(Ipv4Addr::from(*a), *l)).collect();
            u.update.withdrawn = u.update.nlri.iter().skip(i % 3).copied().collect();
            let _ = rib.apply_update(PeerId(peer), &u, t(0));
            if let Ok(decoded) = decode_update(body, &UpdateContext::default()) {
                let _ = rib.apply_update(PeerId(peer), &decoded, t(0));
            }
            model.apply(&rib.take_output().fib);
        }
        model.check_ids();
        prop_assert_eq!(model.sets(), rib_sets(&rib));
        check_installed_is_the_multipath_set(&rib);
    }
}

#[test]
fn local_pref_from_an_external_peer_is_ignored() {
    let mut config = RibConfig::new(LOCAL_AS);
    config.maximum_paths = 1;
    let mut rib = rib_with(
        config,
        vec![(1, ebgp("10.0.0.11", 64513)), (2, ebgp("10.0.0.12", 64513))],
    );
    let mut a = attrs(&[64513], "10.0.0.12");
    a.local_pref = Some(500);
    send(&mut rib, 1, &announce(attrs(&[64513], "10.0.0.11"), &[P]));
    send(&mut rib, 2, &announce(a, &[P]));
    assert_eq!(best(&rib, P), PeerId(1));
}

#[test]
fn a_peer_comes_from_the_negotiated_session() {
    use control::bgp::fsm::{negotiate, PeerAsMatch, PeerConfig};
    use control::bgp::wire::{Capability, Open};
    let config = PeerConfig::new(LOCAL_AS, 0x0a00_00fe, PeerAsMatch::External);
    let open = Open::new(
        64513,
        180,
        0x0a00_000d,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(64513),
            Capability::GracefulRestart(gr_capability(true)),
        ],
    );
    let negotiated = negotiate(&config, &open).unwrap();
    let info =
        PeerInfo::from_negotiated(ip("10.0.0.13"), &negotiated, Arc::new(pool_policy()), None);
    assert_eq!(
        (info.asn, info.bgp_id, info.internal),
        (64513, 0x0a00_000d, false)
    );
    assert_eq!(info.families, vec![AfiSafi::IPV4_UNICAST]);
    // A restart keeps the IPv4 stale paths: the capability's F bit is set.
    let (mut rib, _) = gr_rib();
    rib.peer_down(PeerId(3), Some(&stale_v4()), t(1));
    rib.peer_up(PeerId(3), info, t(2));
    assert!(rib.take_output().is_empty());
    assert_eq!(rib.peer_counts(PeerId(3)).unwrap().stale, 4);
}
