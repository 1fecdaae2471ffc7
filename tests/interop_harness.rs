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
use testbed::{wait_established, wait_for, Diagnose, Prefix, PrefixExt, Topology, SESSION_TIMEOUT};

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

/// A node speaker's configuration: one IPv4 session to the router, announcing `services`
/// (each also put on the node's `lo`).
fn node_config(
    topo: &Topology,
    i: usize,
    services: &[Prefix],
    password: Option<&str>,
) -> SpeakerConfig {
    let node = &topo.nodes[i];
    let mut session = Neighbor::new(topo.router.v4.into(), ROUTER_AS);
    session.password = password.map(str::to_string);
    let mut cfg = SpeakerConfig::new(NODE_AS, node.v4)
        .hostname(&format!("node{}", node.index))
        .local_v6(node.v6)
        .neighbor(session);
    for s in services {
        node.add_service_ip(s.addr()).expect("service IP on lo");
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
        node_config(&topo, 0, &[shared, own(0)], Some(PASSWORD)),
    )
    .unwrap_or_else(|e| panic!("frr node: {e}"));
    let bird = Bird::start(
        &topo.nodes[1].ns,
        node_config(&topo, 1, &[shared, own(1)], Some(PASSWORD)),
    )
    .unwrap_or_else(|e| panic!("bird node: {e}"));
    let gobgp = Gobgp::start(
        &topo.nodes[2].ns,
        node_config(&topo, 2, &[shared, own(2)], Some(PASSWORD)),
    )
    .unwrap_or_else(|e| panic!("gobgp node: {e}"));
    let exabgp = Exabgp::start(
        &topo.nodes[3].ns,
        node_config(&topo, 3, &[shared, own(3)], Some(PASSWORD)),
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
            let mut cfg = node_config(&topo, i, &[v4, v6], Some(PASSWORD));
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
    let good = Bird::start(
        &topo.nodes[0].ns,
        node_config(&topo, 0, &[svc], Some(PASSWORD)),
    )
    .unwrap_or_else(|e| panic!("bird node: {e}"));
    let bad = Frr::start_node(
        &topo.nodes[1].ns,
        node_config(&topo, 1, &[svc], Some("not-the-password")),
    )
    .unwrap_or_else(|e| panic!("frr node: {e}"));

    wait_established(&router, topo.nodes[0].v4.into(), SESSION_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", good.diagnostics()));
    wait_nexthops(&topo, &svc, 1, &[&router, &good, &bad]);
    // Both sides retry every 5 s: over three attempts each, neither may get past TCP.
    let watch = Duration::from_secs(3 * 5);
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
    // It is MD5 that keeps them apart: the kernels dropped segments with a wrong signature.
    let md5_failures = topo.router.ns.tcp_ext_counter("TCPMD5Failure").unwrap()
        + topo.nodes[1].ns.tcp_ext_counter("TCPMD5Failure").unwrap();
    assert!(md5_failures > 0, "no TCP MD5 failures counted");
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

/// Adds an IPv6 session to the router, and graceful restart on every session.
fn dual_stack_with_graceful_restart(topo: &Topology, mut cfg: SpeakerConfig) -> SpeakerConfig {
    for n in &mut cfg.neighbors {
        n.graceful_restart = true;
    }
    cfg.neighbor(
        Neighbor::new(topo.router.v6.into(), ROUTER_AS)
            .password(PASSWORD)
            .graceful_restart(),
    )
}

#[test]
fn every_speaker_also_peers_over_ipv6_with_md5_and_graceful_restart() {
    let start = Instant::now();
    let topo = topology(4);
    let v4 = service("192.168.100.10/32");
    let v6 = service("fd00:100::10/128");
    let router = reference_router(&topo, true, |n| n.password(PASSWORD), None);
    let cfg = |i| {
        dual_stack_with_graceful_restart(&topo, node_config(&topo, i, &[v4, v6], Some(PASSWORD)))
    };
    let frr = Frr::start_node(&topo.nodes[0].ns, cfg(0)).unwrap_or_else(|e| panic!("frr: {e}"));
    let bird = Bird::start(&topo.nodes[1].ns, cfg(1)).unwrap_or_else(|e| panic!("bird: {e}"));
    let gobgp = Gobgp::start(&topo.nodes[2].ns, cfg(2)).unwrap_or_else(|e| panic!("gobgp: {e}"));
    let exabgp = Exabgp::start(&topo.nodes[3].ns, cfg(3)).unwrap_or_else(|e| panic!("exabgp: {e}"));
    let speakers: [&dyn Speaker; 4] = [&frr, &bird, &gobgp, &exabgp];
    for (speaker, node) in speakers.iter().zip(&topo.nodes) {
        for (mine, theirs) in [
            (IpAddr::from(topo.router.v4), IpAddr::from(node.v4)),
            (topo.router.v6.into(), node.v6.into()),
        ] {
            wait_established(*speaker, mine, SESSION_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}\n{}", router.diagnostics()));
            testbed::wait_state(
                &router,
                theirs,
                SESSION_TIMEOUT,
                &[speaker.as_diagnose()],
                |s| s == &SessionState::Established,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let explain: [&dyn Diagnose; 5] = [&router, &frr, &bird, &gobgp, &exabgp];
    wait_nexthops(&topo, &v4, 4, &explain);
    wait_nexthops(&topo, &v6, 4, &explain);
    // Every session negotiated graceful restart, as the router sees it.
    for node in &topo.nodes {
        for peer in [IpAddr::from(node.v4), node.v6.into()] {
            let v = router
                .vtysh_json(&format!("show bgp neighbors {peer} json"))
                .unwrap();
            let gr = &v[peer.to_string()]["neighborCapabilities"]["gracefulRestart"];
            assert!(
                gr.as_str()
                    .is_some_and(|s| s.to_ascii_lowercase().contains("received")),
                "{peer}: graceful restart capability not received: {gr}"
            );
        }
    }
    eprintln!(
        "eight dual-stack sessions and v4+v6 multipath in {:.1?}",
        start.elapsed()
    );
}

#[test]
fn bfd_takes_a_node_out_of_the_multipath_route_long_before_the_hold_timer() {
    let topo = topology(2);
    let svc = service("192.168.100.10/32");
    let profile = BfdProfile::new("metallb");
    // Hold time 90 s: only BFD can take the node out within seconds.
    let slow = |n: Neighbor| n.timers(30, 90).bfd_profile("metallb");
    let router = reference_router(&topo, false, slow, Some(profile.clone()));
    let nodes: Vec<Frr> = (0..2)
        .map(|i| {
            let mut cfg = node_config(&topo, i, &[svc], None).bfd(profile.clone());
            cfg.neighbors[0] = slow(cfg.neighbors[0].clone());
            Frr::start_node(&topo.nodes[i].ns, cfg).unwrap_or_else(|e| panic!("frr node: {e}"))
        })
        .collect();
    let explain: [&dyn Diagnose; 3] = [&router, &nodes[0], &nodes[1]];
    wait_nexthops(&topo, &svc, 2, &explain);
    let cut = &topo.nodes[1];
    let cut_addr: IpAddr = cut.v4.into();
    wait_for(
        "BFD up between the router and node 2",
        SESSION_TIMEOUT,
        &explain,
        || Ok((router.bfd_status(cut_addr)?.as_deref() == Some("up")).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    cut.set_link(false).unwrap();
    let t = Instant::now();
    wait_nexthops(&topo, &svc, 1, &explain);
    let withdrawn = t.elapsed();
    let status = router.bfd_status(cut_addr).unwrap();
    assert_eq!(status.as_deref(), Some("down"), "BFD status after the cut");
    assert_ne!(router_state(&router, cut_addr), SessionState::Established);
    assert!(
        withdrawn < Duration::from_secs(5),
        "BFD (300 ms x 3) should withdraw the node well before hold time 90 s; took {withdrawn:?}"
    );

    cut.set_link(true).unwrap();
    wait_nexthops(&topo, &svc, 2, &explain);
    eprintln!(
        "BFD withdrew the cut node in {withdrawn:.1?}, it came back in {:.1?}",
        t.elapsed()
    );
}

#[test]
fn graceful_restart_keeps_the_route_while_bgpd_restarts() {
    let topo = topology(2);
    let svc = service("192.168.100.10/32");
    let router = reference_router(&topo, false, |n| n.graceful_restart(), None);
    let mut nodes: Vec<Frr> = (0..2)
        .map(|i| {
            let mut cfg = node_config(&topo, i, &[svc], None);
            cfg.neighbors[0].graceful_restart = true;
            Frr::start_node(&topo.nodes[i].ns, cfg).unwrap_or_else(|e| panic!("frr node: {e}"))
        })
        .collect();
    wait_nexthops(&topo, &svc, 2, &[&router, &nodes[0], &nodes[1]]);
    let restarting: IpAddr = topo.nodes[1].v4.into();

    // bgpd dies without a NOTIFICATION and stays away for 4 s (under the 9 s hold time
    // and the 120 s restart time): the router must keep the route, marked stale.
    let t = Instant::now();
    let (down_seen, fewest_nexthops) = std::thread::scope(|s| {
        // Watches the router while bgpd is away: did the session drop, and what was the
        // fewest nexthops the route had meanwhile?
        let watcher = s.spawn(|| {
            let (mut down_seen, mut fewest) = (false, usize::MAX);
            while t.elapsed() < Duration::from_secs(4) {
                if router.session_state(restarting).ok() != Some(SessionState::Established) {
                    down_seen = true;
                    let hops = topo.router.ns.route_nexthops(&svc).unwrap_or_default();
                    fewest = fewest.min(hops.len());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (down_seen, fewest)
        });
        nodes[1]
            .restart_bgpd(Duration::from_secs(4))
            .unwrap_or_else(|e| panic!("restarting bgpd: {e}"));
        watcher.join().unwrap()
    });
    assert!(down_seen, "the router never saw the session go down");
    assert_eq!(
        fewest_nexthops, 2,
        "the router dropped the restarting node's nexthop instead of keeping it stale"
    );
    wait_established(&router, restarting, SESSION_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", nodes[1].diagnostics()));
    wait_nexthops(&topo, &svc, 2, &[&router, &nodes[1]]);
    eprintln!("bgpd restarted and re-established in {:.1?}", t.elapsed());
}

#[test]
fn a_panicking_test_leaves_no_namespace_daemon_or_directory_behind() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let topo = topology(1);
        let frr = Frr::start_node(
            &topo.nodes[0].ns,
            node_config(&topo, 0, &[service("192.168.100.10/32")], None),
        )
        .unwrap_or_else(|e| panic!("frr node: {e}"));
        let names = [topo.router.ns.name(), topo.nodes[0].ns.name()].map(str::to_string);
        let pids = topo.nodes[0].ns.pids().unwrap();
        tx.send((names, pids, frr.dir().to_path_buf())).unwrap();
        panic!("deliberate panic: a test failing with its testbed up");
    })
    .join();
    assert!(outcome.is_err(), "the thread was meant to panic");
    let (names, pids, dir) = rx.recv().expect("the thread reported what it built");
    assert!(pids.len() >= 2, "zebra and bgpd were running: {pids:?}");
    let listed = testbed::run(std::process::Command::new("ip").args(["netns", "list"])).unwrap();
    for n in &names {
        assert!(
            !listed.split_whitespace().any(|w| w == n),
            "namespace {n} left behind"
        );
    }
    for p in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "process {p} left running"
        );
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn a_daemon_that_dies_fails_the_wait_at_once_with_its_config_and_output() {
    let topo = topology(1);
    // A quote in the password breaks bird.conf: BIRD refuses it and exits.
    let cfg = node_config(&topo, 0, &[service("192.168.100.10/32")], Some("bro\"ken"));
    let t = Instant::now();
    let err = match Bird::start(&topo.nodes[0].ns, cfg) {
        Ok(_) => panic!("BIRD accepted a broken configuration"),
        Err(e) => e.to_string(),
    };
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    for needle in [
        "bird (pid",
        "exited",
        "---- bird.conf",
        "password \"bro\"ken\"",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
}

#[test]
fn a_client_behind_the_router_reaches_every_node_through_the_multipath_route() {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};

    let start = Instant::now();
    let topo = Topology::with_client(3).unwrap_or_else(|e| panic!("cannot build the testbed: {e}"));
    let svc = service("192.168.100.10/32");
    let router = reference_router(&topo, false, |n| n, None);
    topo.enable_router_forwarding().unwrap();
    // Hash on the 5-tuple, so connections from one client spread over the nodes.
    topo.router
        .ns
        .sysctl("net.ipv4.fib_multipath_hash_policy", "1")
        .unwrap();
    let nodes: Vec<Frr> = (0..3)
        .map(|i| {
            Frr::start_node(&topo.nodes[i].ns, node_config(&topo, i, &[svc], None))
                .unwrap_or_else(|e| panic!("frr node: {e}"))
        })
        .collect();
    let explain: Vec<&dyn Diagnose> = std::iter::once(&router as &dyn Diagnose)
        .chain(nodes.iter().map(|n| n as &dyn Diagnose))
        .collect();
    wait_nexthops(&topo, &svc, 3, &explain);

    // Each node answers on the service IP with its own index, as a pod behind it would.
    let addr = SocketAddr::new(svc.addr(), 8080);
    let listeners: Vec<TcpListener> = topo
        .nodes
        .iter()
        .map(|n| {
            let l =
                n.ns.in_namespace(|| TcpListener::bind(addr))
                    .unwrap()
                    .unwrap();
            l.set_nonblocking(true).unwrap();
            l
        })
        .collect();
    let stop = AtomicBool::new(false);
    let client = topo.client.as_ref().expect("built with a client");
    let answers: Vec<u8> = std::thread::scope(|s| {
        for (l, node) in listeners.iter().zip(&topo.nodes) {
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut conn, _)) => {
                            conn.set_nonblocking(false).unwrap();
                            let _ = conn.write_all(&[node.index as u8]);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2))
                        }
                        Err(e) => panic!("accept on node {}: {e}", node.index),
                    }
                }
            });
        }
        let answers = client.ns.in_namespace(|| {
            (0..60)
                .map(|_| {
                    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
                    c.set_read_timeout(Some(Duration::from_secs(3)))?;
                    let mut who = [0u8];
                    c.read_exact(&mut who)?;
                    Ok(who[0])
                })
                .collect::<std::io::Result<Vec<u8>>>()
        });
        // Stop the servers before anything can panic, or the scope would wait forever.
        stop.store(true, Ordering::Relaxed);
        answers
            .unwrap()
            .unwrap_or_else(|e| panic!("client connection to {addr}: {e}"))
    });
    let per_node: Vec<usize> = (1..=3)
        .map(|i| answers.iter().filter(|&&a| a == i).count())
        .collect();
    assert!(
        per_node.iter().all(|&c| c > 0),
        "every node should get some of 60 connections: {per_node:?}"
    );
    eprintln!(
        "60 connections through the router spread {per_node:?} in {:.1?}",
        start.elapsed()
    );
}
