//! Proof of the interop testbed: real speakers (FRR, BIRD 2, GoBGP, ExaBGP) in node
//! namespaces peer with a reference router (FRR with multipath) in the router namespace,
//! and the router's kernel gains multipath routes for the service IPs. When ecmpd's
//! router is ready it takes the reference router's place and these tests become the
//! template of its interop tests.
//!
//! Needs root and the Debian packages `scripts/install-test-deps` installs; without them
//! every test fails with a message saying so.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use testbed::speakers::bird::Bird;
use testbed::speakers::exabgp::Exabgp;
use testbed::speakers::frr::Frr;
use testbed::speakers::gobgp::Gobgp;
use testbed::speakers::{BfdProfile, Neighbor, SessionState, Speaker, SpeakerConfig};
use testbed::{wait_established, wait_for, Diagnose, Prefix, Topology, SESSION_TIMEOUT};

const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
const PASSWORD: &str = "metallb-secret";

fn service(ip: &str) -> Prefix {
    ip.parse().expect("valid service prefix")
}

fn topology(nodes: usize) -> Topology {
    Topology::new(nodes).unwrap_or_else(|e| panic!("cannot build the testbed: {e}"))
}

/// The reference router: FRR peering with every node over IPv4 (and IPv6 when `v6`),
/// multipath over all of them.
fn reference_router(
    topo: &Topology,
    v6: bool,
    tune: impl Fn(Neighbor) -> Neighbor,
    bfd: Option<BfdProfile>,
) -> Frr {
    let r = &topo.router;
    let mut cfg = SpeakerConfig::new(ROUTER_AS, r.v4)
        .hostname("router")
        .local_v6(r.v6);
    for node in &topo.nodes {
        cfg = cfg.neighbor(tune(Neighbor::new(node.v4.into(), NODE_AS)));
        if v6 {
            cfg = cfg.neighbor(tune(Neighbor::new(node.v6.into(), NODE_AS)));
        }
    }
    if let Some(profile) = bfd {
        cfg = cfg.bfd(profile);
    }
    Frr::start_router(&r.ns, cfg, 16).unwrap_or_else(|e| panic!("reference router: {e}"))
}

/// A node speaker's configuration: one IPv4 session to the router, announcing `services`.
fn node_config(topo: &Topology, i: usize, services: &[Prefix], password: &str) -> SpeakerConfig {
    let node = &topo.nodes[i];
    let mut cfg = SpeakerConfig::new(NODE_AS, node.v4)
        .hostname(&format!("node{}", node.index))
        .local_v6(node.v6)
        .neighbor(Neighbor::new(topo.router.v4.into(), ROUTER_AS).password(password));
    for s in services {
        node.add_service_ip(s.addr).expect("service IP on lo");
        cfg = cfg.announce(*s);
    }
    cfg
}

/// Waits until the router's kernel route for `prefix` has exactly `want` nexthops.
fn wait_nexthops(topo: &Topology, prefix: &Prefix, want: usize, explain: &[&dyn Diagnose]) {
    let what = format!("the router's kernel route for {prefix} to have {want} nexthops");
    wait_for(&what, SESSION_TIMEOUT, explain, || {
        let hops = topo.router.ns.route_nexthops(prefix)?;
        Ok((hops.len() == want).then_some(hops))
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn router_state(router: &Frr, peer: IpAddr) -> SessionState {
    router
        .session_state(peer)
        .unwrap_or_else(|e| panic!("router's view of {peer}: {e}"))
}

#[test]
fn every_speaker_establishes_with_the_reference_router_and_joins_its_multipath_route() {
    let start = Instant::now();
    let topo = topology(4);
    let shared = service("192.168.100.10/32");
    let router = reference_router(&topo, false, |n| n.password(PASSWORD), None);
    let own = |i: usize| service(&format!("192.168.100.{}/32", 20 + i));

    let frr = Frr::start_node(
        &topo.nodes[0].ns,
        node_config(&topo, 0, &[shared, own(0)], PASSWORD),
    )
    .unwrap_or_else(|e| panic!("frr node: {e}"));
    let bird = Bird::start(
        &topo.nodes[1].ns,
        node_config(&topo, 1, &[shared, own(1)], PASSWORD),
    )
    .unwrap_or_else(|e| panic!("bird node: {e}"));
    let gobgp = Gobgp::start(
        &topo.nodes[2].ns,
        node_config(&topo, 2, &[shared, own(2)], PASSWORD),
    )
    .unwrap_or_else(|e| panic!("gobgp node: {e}"));
    let exabgp = Exabgp::start(
        &topo.nodes[3].ns,
        node_config(&topo, 3, &[shared, own(3)], PASSWORD),
    )
    .unwrap_or_else(|e| panic!("exabgp node: {e}"));
    let speakers: [&dyn Speaker; 4] = [&frr, &bird, &gobgp, &exabgp];

    let router_addr: IpAddr = topo.router.v4.into();
    for (speaker, node) in speakers.iter().zip(&topo.nodes) {
        wait_established(*speaker, router_addr, SESSION_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", router.diagnostics()));
        testbed::wait_state(
            &router,
            node.v4.into(),
            SESSION_TIMEOUT,
            &[speaker.as_diagnose()],
            |s| s == &SessionState::Established,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let established = start.elapsed();

    // Every speaker's routes are usable: each one's own service IP arrives, and the
    // shared one is a 4-way multipath route in the router's kernel.
    let explain: [&dyn Diagnose; 5] = [&router, &frr, &bird, &gobgp, &exabgp];
    for (i, node) in topo.nodes.iter().enumerate() {
        let what = format!("{}'s own service route via {}", speakers[i].kind(), node.v4);
        let p = own(i);
        let want: IpAddr = node.v4.into();
        wait_for(&what, SESSION_TIMEOUT, &explain, || {
            let hops = topo.router.ns.route_nexthops(&p)?;
            Ok((hops.len() == 1 && hops[0].gateway == want).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    wait_nexthops(&topo, &shared, 4, &explain);
    let hops = topo.router.ns.route_nexthops(&shared).unwrap();
    let mut gateways: Vec<IpAddr> = hops.iter().map(|h| h.gateway).collect();
    gateways.sort();
    let want: Vec<IpAddr> = topo.nodes.iter().map(|n| n.v4.into()).collect();
    assert_eq!(gateways, want, "one nexthop per node");
    eprintln!(
        "four speakers established in {established:.1?}, multipath route after {:.1?}",
        start.elapsed()
    );
}

#[test]
fn three_metallb_frr_nodes_give_the_router_multipath_routes_over_ipv4_and_ipv6() {
    let start = Instant::now();
    let topo = topology(3);
    let v4 = service("192.168.100.10/32");
    let v6 = service("fd00:100::10/128");
    let router = reference_router(&topo, true, |n| n.password(PASSWORD), None);
    let nodes: Vec<Frr> = (0..3)
        .map(|i| {
            let mut cfg = node_config(&topo, i, &[v4, v6], PASSWORD);
            cfg.neighbors[0] = cfg.neighbors[0].clone().graceful_restart();
            cfg = cfg.neighbor(
                Neighbor::new(topo.router.v6.into(), ROUTER_AS)
                    .password(PASSWORD)
                    .graceful_restart(),
            );
            Frr::start_node(&topo.nodes[i].ns, cfg).unwrap_or_else(|e| panic!("frr node: {e}"))
        })
        .collect();
    for (frr, node) in nodes.iter().zip(&topo.nodes) {
        for (mine, theirs) in [
            (IpAddr::from(topo.router.v4), IpAddr::from(node.v4)),
            (topo.router.v6.into(), node.v6.into()),
        ] {
            wait_established(frr, mine, SESSION_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}\n{}", router.diagnostics()));
            wait_established(&router, theirs, SESSION_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}\n{}", frr.diagnostics()));
        }
    }
    let explain: Vec<&dyn Diagnose> = std::iter::once(&router as &dyn Diagnose)
        .chain(nodes.iter().map(|n| n as &dyn Diagnose))
        .collect();
    wait_nexthops(&topo, &v4, 3, &explain);
    wait_nexthops(&topo, &v6, 3, &explain);
    // IPv6 routes go via the nodes' link-local addresses (FRR's 32-byte next hop).
    let hops = topo.router.ns.route_nexthops(&v6).unwrap();
    assert!(
        hops.iter()
            .all(|h| matches!(h.gateway, IpAddr::V6(a) if a.segments()[0] == 0xfe80)),
        "IPv6 nexthops should be link-local: {hops:?}"
    );
    let summary = router.bgp_summary().unwrap();
    for af in ["ipv4Unicast", "ipv6Unicast"] {
        let peers = summary[af]["peers"].as_object().expect("peers in summary");
        assert_eq!(peers.len(), 3, "{af}: {summary}");
        assert!(
            peers.values().all(|p| p["state"] == "Established"),
            "{summary}"
        );
    }
    eprintln!(
        "v4 and v6 multipath over three FRR nodes in {:.1?}",
        start.elapsed()
    );
}

#[test]
fn a_wrong_md5_password_keeps_only_that_session_down() {
    let start = Instant::now();
    let topo = topology(2);
    let svc = service("192.168.100.10/32");
    let router = reference_router(&topo, false, |n| n.password(PASSWORD), None);
    let good = Bird::start(&topo.nodes[0].ns, node_config(&topo, 0, &[svc], PASSWORD))
        .unwrap_or_else(|e| panic!("bird node: {e}"));
    let bad = Frr::start_node(
        &topo.nodes[1].ns,
        node_config(&topo, 1, &[svc], "not-the-password"),
    )
    .unwrap_or_else(|e| panic!("frr node: {e}"));

    wait_established(&router, topo.nodes[0].v4.into(), SESSION_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", good.diagnostics()));
    wait_nexthops(&topo, &svc, 1, &[&router, &good, &bad]);
    // Both sides retry every 5 s; over three hold times neither may get past TCP.
    let watch = Duration::from_secs(3 * 9);
    let t = Instant::now();
    let bad_addr: IpAddr = topo.nodes[1].v4.into();
    while t.elapsed() < watch {
        let seen = router_state(&router, bad_addr);
        assert_ne!(
            seen,
            SessionState::Established,
            "wrong password got through\n{}",
            bad.diagnostics()
        );
        let theirs = bad.session_state(topo.router.v4.into()).unwrap();
        assert_ne!(
            theirs,
            SessionState::Established,
            "wrong password got through\n{}",
            bad.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let hops = topo.router.ns.route_nexthops(&svc).unwrap();
    assert_eq!(
        hops.len(),
        1,
        "only the right password's node is a nexthop: {hops:?}"
    );
    assert_eq!(hops[0].gateway, IpAddr::from(topo.nodes[0].v4));
    eprintln!(
        "wrong password held down for {watch:?}; test took {:.1?}",
        start.elapsed()
    );
}
