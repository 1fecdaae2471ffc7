//! ecmpd as the router, against the four real speakers from Debian's packages: FRR
//! (`bgpd` + `bfdd`, configured as MetalLB's FRR mode configures it), BIRD 2, GoBGP and
//! ExaBGP, each in node namespaces on one subnet with `ecmpd router` in the router
//! namespace (see `testbed/README.md`, "The ecmpd interop tests").
//!
//! One test per speaker, independent (own namespaces), so they run in parallel. Each
//! builds four nodes running that speaker: three with the right TCP MD5 password and one
//! with a wrong one, every node dual-stack (IPv4 and IPv6 sessions, graceful restart,
//! eBGP AS 64512 to the router's 64500) announcing the same two service prefixes. Then,
//! reading ecmpd's state from its API only (`ecmpd show ... --json`):
//!
//! 1. the three good sessions per family establish, on both sides;
//! 2. the FIB's group for each service prefix is exactly the three nodes' next hops;
//! 3. node 2 restarts gracefully (killed without NOTIFICATION, back after 4 s): its
//!    member stays in the FIB with the same id while its paths are stale, and once its
//!    End-of-RIB arrives no path is stale and the group is unchanged;
//! 4. node 3's link is cut: FRR runs BFD (MetalLB's 300 ms x 3), so the member leaves
//!    within a bound derived from the profile and `show bfd peers` reports the detection
//!    and FIB times; the others run no BFD and the router's 3 s hold timer takes the
//!    sessions down, after which ecmpd (a graceful-restart helper) keeps the paths stale
//!    until the node's restart time ends, then removes the member;
//! 5. node 1's speaker is stopped (SIGTERM): after a NOTIFICATION its member leaves at
//!    once, after a bare close it stays (stale) until the restart time ends; either way
//!    node 2 keeps its member ids;
//! 6. throughout, the wrong password's node never establishes (either side) and never
//!    appears in the FIB, and the router's kernel counts TCP MD5 failures.
//!
//! Needs root and the packages `scripts/install-test-deps` installs; without them every
//! test fails with a message saying so.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use control::api::view::PathView;
use testbed::ecmpd::{Ecmpd, EcmpdConfig, PeerConfig, SessionOptions};
use testbed::speakers::bird::Bird;
use testbed::speakers::exabgp::Exabgp;
use testbed::speakers::frr::Frr;
use testbed::speakers::gobgp::Gobgp;
use testbed::speakers::{BfdProfile, Neighbor, SessionState, Speaker, SpeakerConfig};
use testbed::{wait_for, Diagnose, Prefix, PrefixExt, Topology, SESSION_TIMEOUT};

const ROUTER_AS: u32 = 64500;
const NODE_AS: u32 = 64512;
const PASSWORD: &str = "metallb-secret";
const WRONG_PASSWORD: &str = "not-the-password";
const BFD_PROFILE: &str = "metallb";
/// How long a gracefully restarting speaker stays away.
const RESTART_DOWN: Duration = Duration::from_secs(4);

fn ecmpd_binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_ecmpd"))
}

fn v4_service() -> Prefix {
    "192.168.100.10/32".parse().unwrap()
}

fn v6_service() -> Prefix {
    "fd00:100::10/128".parse().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Frr,
    Bird,
    Gobgp,
    Exabgp,
}

impl Kind {
    /// FRR runs BFD (MetalLB's FRR mode); the others rely on the router's hold timer.
    fn bfd(self) -> bool {
        self == Kind::Frr
    }

    /// The graceful restart time the nodes advertise: how long ecmpd keeps a vanished
    /// node's paths (stale) when the session ended without a NOTIFICATION or by the hold
    /// timer. Short, so the tests can watch it end; long enough for a restart: gobgpd
    /// takes 5 to 8 s after starting before it dials, so it gets more.
    fn restart_time(self) -> Duration {
        Duration::from_secs(if self == Kind::Gobgp { 30 } else { 20 })
    }

    /// Whether the speaker sends a NOTIFICATION (Cease) when stopped with SIGTERM. FRR
    /// with graceful restart configured and ExaBGP just close the connection.
    fn notifies_on_stop(self) -> bool {
        matches!(self, Kind::Bird | Kind::Gobgp)
    }

    /// Keepalive and hold time on both sides: FRR keeps FRR's MetalLB-ish 3/9 s (BFD
    /// notices a dead link); without BFD short timers let the hold timer do it.
    fn timers(self) -> (u16, u16) {
        if self.bfd() {
            (3, 9)
        } else {
            (1, 3)
        }
    }
}

/// A node speaker the tests can restart gracefully.
trait Node: Speaker + Send + Sync {
    /// Kill without NOTIFICATION, stay away `down`, start again.
    fn restart(&mut self, down: Duration) -> testbed::Result<()>;
}

impl Node for Frr {
    fn restart(&mut self, down: Duration) -> testbed::Result<()> {
        self.restart_bgpd(down)
    }
}

impl Node for Bird {
    fn restart(&mut self, down: Duration) -> testbed::Result<()> {
        Bird::restart(self, down)
    }
}

impl Node for Gobgp {
    fn restart(&mut self, down: Duration) -> testbed::Result<()> {
        Gobgp::restart(self, down)
    }
}

impl Node for Exabgp {
    fn restart(&mut self, down: Duration) -> testbed::Result<()> {
        Exabgp::restart(self, down)
    }
}

fn router_config(kind: Kind, topo: &Topology) -> EcmpdConfig {
    let r = &topo.router;
    let (keepalive, hold) = kind.timers();
    let mut session = SessionOptions::default()
        .timers(keepalive, hold)
        .password(PASSWORD)
        .import("services");
    if kind.bfd() {
        session = session.bfd_profile(BFD_PROFILE);
    }
    let mut cfg = EcmpdConfig::new(ROUTER_AS, r.v4, &[r.v4.into(), r.v6.into()])
        .policy(
            "services",
            &["192.168.100.0/24 le 32", "fd00:100::/64 le 128"],
        )
        .bfd(BfdProfile::new(BFD_PROFILE));
    if kind == Kind::Frr {
        // FRR-mode speakers as configured, passive peers with BFD (testbed/router's
        // example does the same).
        for node in &topo.nodes {
            for addr in [IpAddr::from(node.v4), node.v6.into()] {
                cfg = cfg.peer(PeerConfig {
                    address: addr,
                    asn: NODE_AS,
                    passive: true,
                    description: Some(format!("node{} (MetalLB FRR mode)", node.index)),
                    session: session.clone(),
                });
            }
        }
    } else {
        // Native-speaker style: whoever dials in from the node subnet.
        let v4: Prefix = "10.10.0.0/24".parse().unwrap();
        let v6: Prefix = "fd00:10::/64".parse().unwrap();
        cfg = cfg
            .range(v4, NODE_AS, session.clone())
            .range(v6, NODE_AS, session);
    }
    if !kind.bfd() {
        cfg.bfd_profiles.clear();
    }
    cfg
}

fn node_config(kind: Kind, topo: &Topology, i: usize, password: &str) -> SpeakerConfig {
    let node = &topo.nodes[i];
    let (keepalive, hold) = kind.timers();
    let mut cfg = SpeakerConfig::new(NODE_AS, node.v4)
        .hostname(&format!("node{}", node.index))
        .local_v6(node.v6);
    for addr in [IpAddr::from(topo.router.v4), topo.router.v6.into()] {
        let mut n = Neighbor::new(addr, ROUTER_AS)
            .timers(keepalive, hold)
            .connect_retry(2)
            .password(password)
            .graceful_restart()
            .restart_time(kind.restart_time().as_secs() as u16);
        if kind.bfd() {
            n = n.bfd_profile(BFD_PROFILE);
        }
        cfg = cfg.neighbor(n);
    }
    if kind.bfd() {
        cfg = cfg.bfd(BfdProfile::new(BFD_PROFILE));
    }
    for s in [v4_service(), v6_service()] {
        node.add_service_ip(s.addr()).expect("service IP on lo");
        cfg = cfg.announce(s);
    }
    cfg
}

fn start_node(kind: Kind, topo: &Topology, i: usize, password: &str) -> Box<dyn Node> {
    let ns = &topo.nodes[i].ns;
    let cfg = node_config(kind, topo, i, password);
    let started: testbed::Result<Box<dyn Node>> = match kind {
        Kind::Frr => Frr::start_node(ns, cfg).map(|s| Box::new(s) as Box<dyn Node>),
        Kind::Bird => Bird::start(ns, cfg).map(|s| Box::new(s) as Box<dyn Node>),
        Kind::Gobgp => Gobgp::start(ns, cfg).map(|s| Box::new(s) as Box<dyn Node>),
        Kind::Exabgp => Exabgp::start(ns, cfg).map(|s| Box::new(s) as Box<dyn Node>),
    };
    started.unwrap_or_else(|e| panic!("{kind:?} on node {}: {e}", i + 1))
}

/// The service prefixes' groups, member address -> member id.
type Members = BTreeMap<IpAddr, u32>;

fn members(router: &Ecmpd, prefix: &Prefix) -> testbed::Result<Members> {
    Ok(router
        .fib_members(prefix)?
        .into_iter()
        .map(|m| (m.address, m.id))
        .collect())
}

/// The lab of one test: the namespaces, ecmpd and the wrong password's speaker. The
/// good speakers live beside it (see [`suite`]) so a step can restart or stop one while
/// a watcher thread reads the lab.
struct Lab {
    kind: Kind,
    bad: Box<dyn Node>,
    router: Ecmpd,
    topo: Topology,
}

type Nodes = Vec<Option<Box<dyn Node>>>;

impl Lab {
    fn explain<'a>(&'a self, nodes: &'a Nodes) -> Vec<&'a dyn Diagnose> {
        let mut v: Vec<&dyn Diagnose> = vec![&self.router];
        v.extend(nodes.iter().flatten().map(|n| n.as_diagnose()));
        v
    }

    fn router_addrs(&self) -> [IpAddr; 2] {
        [self.topo.router.v4.into(), self.topo.router.v6.into()]
    }

    /// Node `i`'s session addresses, IPv4 then IPv6.
    fn node_addrs(&self, i: usize) -> [IpAddr; 2] {
        let n = &self.topo.nodes[i];
        [n.v4.into(), n.v6.into()]
    }

    /// Waits until the router has node `i`'s two sessions Established.
    fn wait_router_established(&self, i: usize, timeout: Duration, node: &dyn Node) {
        for theirs in self.node_addrs(i) {
            testbed::wait_state(&self.router, theirs, timeout, &[node.as_diagnose()], |s| {
                s == &SessionState::Established
            })
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Both sides of node `i`'s two sessions Established.
    fn wait_established(&self, i: usize, node: &dyn Node) {
        for mine in self.router_addrs() {
            testbed::wait_established(node, mine, SESSION_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}\n{}", self.router.diagnostics()));
        }
        self.wait_router_established(i, SESSION_TIMEOUT, node);
    }

    /// The next hop the router should install for node `i` in `prefix`'s family: the
    /// node's address on the shared subnet.
    fn next_hop(&self, i: usize, prefix: &Prefix) -> IpAddr {
        self.node_addrs(i)[usize::from(!prefix.is_ipv4())]
    }

    /// Waits until `prefix`'s group has exactly the next hops of `which` nodes.
    fn wait_group(
        &self,
        nodes: &Nodes,
        prefix: &Prefix,
        which: &[usize],
        timeout: Duration,
    ) -> Members {
        let mut want: Vec<IpAddr> = which.iter().map(|i| self.next_hop(*i, prefix)).collect();
        want.sort();
        let what = format!("ecmpd's FIB group for {prefix} to be exactly {want:?}");
        let mut last = Members::new();
        wait_for(&what, timeout, &self.explain(nodes), || {
            last = members(&self.router, prefix)?;
            Ok((last.keys().copied().collect::<Vec<_>>() == want).then(|| last.clone()))
        })
        .unwrap_or_else(|e| panic!("{e}\nlast members seen: {last:?}"))
    }

    /// Paths of `prefix` from `peer` in `show bgp routes`.
    fn paths_from(&self, prefix: &Prefix, peer: IpAddr) -> testbed::Result<Vec<PathView>> {
        let want = prefix.to_string();
        Ok(self
            .router
            .bgp_routes(Some(prefix))?
            .into_iter()
            .filter(|r| r.prefix == want)
            .flat_map(|r| r.paths)
            .filter(|p| p.peer == peer)
            .collect())
    }
}

/// Sets a flag when dropped, also while unwinding, so a watcher thread in a scope stops
/// and the scope can end.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Watches until `stop` that the wrong password's node (node 4) never gets anywhere:
/// never Established on either side, never a FIB member. Returns what it saw wrong and
/// how many times it looked.
fn watch_wrong_password(lab: &Lab, stop: &AtomicBool) -> (Vec<String>, usize) {
    let addrs = lab.node_addrs(3);
    let (mut wrong, mut looks) = (Vec::new(), 0);
    while !stop.load(Ordering::Relaxed) {
        looks += 1;
        if let Ok(summary) = lab.router.bgp_summary() {
            for p in summary.peers.iter().filter(|p| addrs.contains(&p.address)) {
                if p.state == "Established" {
                    wrong.push(format!("ecmpd: {} Established", p.address));
                }
            }
        }
        for mine in lab.router_addrs() {
            if let Ok(SessionState::Established) = lab.bad.session_state(mine) {
                wrong.push(format!("the speaker: its session with {mine} Established"));
            }
        }
        for prefix in [v4_service(), v6_service()] {
            if let Ok(m) = members(&lab.router, &prefix) {
                if addrs.iter().any(|a| m.contains_key(a)) {
                    wrong.push(format!("{prefix} has node 4 as a member: {m:?}"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    (wrong, looks)
}

fn suite(kind: Kind) {
    let start = Instant::now();
    let topo = Topology::new(4).unwrap_or_else(|e| panic!("cannot build the testbed: {e}"));
    let router = Ecmpd::start(&topo.router.ns, ecmpd_binary(), &router_config(kind, &topo))
        .unwrap_or_else(|e| panic!("ecmpd: {e}"));
    let bad = start_node(kind, &topo, 3, WRONG_PASSWORD);
    let lab = Lab {
        kind,
        bad,
        router,
        topo,
    };
    // Declared after the lab: the speakers stop before ecmpd and the namespaces go.
    let mut nodes: Nodes = (0..3)
        .map(|i| Some(start_node(kind, &lab.topo, i, PASSWORD)))
        .collect();
    let stop = AtomicBool::new(false);
    let mut report = Vec::new();

    let (wrong, looks) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch_wrong_password(&lab, &stop));
        let _stop_watcher = StopOnDrop(&stop);
        steps(&lab, &mut nodes, &mut report, start);
        drop(_stop_watcher);
        watcher.join().expect("the wrong-password watcher panicked")
    });

    // 6. The wrong password, over the whole run.
    assert!(
        wrong.is_empty(),
        "the wrong password got somewhere: {wrong:?}\n{}",
        lab.bad.diagnostics()
    );
    let md5_failures = lab.topo.router.ns.tcp_ext_counter("TCPMD5Failure").unwrap();
    assert!(
        md5_failures > 0,
        "ecmpd's kernel counted no TCP MD5 failures"
    );
    report.push(format!(
        "wrong password: never established nor in the FIB over {looks} looks in {:.1?}; {md5_failures} segments with a bad MD5 signature dropped",
        start.elapsed()
    ));
    eprintln!(
        "{kind:?} against ecmpd, {:.1?}:\n  {}",
        start.elapsed(),
        report.join("\n  ")
    );
}

fn steps(lab: &Lab, nodes: &mut Nodes, report: &mut Vec<String>, start: Instant) {
    let (v4, v6) = (v4_service(), v6_service());

    // 1. Sessions establish.
    for (i, node) in nodes.iter().enumerate() {
        lab.wait_established(i, node.as_deref().expect("node running"));
    }
    let summary = lab.router.bgp_summary().unwrap();
    let up: Vec<IpAddr> = summary
        .peers
        .iter()
        .filter(|p| p.state == "Established")
        .map(|p| p.address)
        .collect();
    assert_eq!(up.len(), 6, "six sessions Established: {summary:?}");
    report.push(format!(
        "1. 3 nodes x (IPv4 + IPv6) sessions established after {:.1?}",
        start.elapsed()
    ));

    // 2. The multipath groups: exactly the three nodes, every path multipath.
    let all_v4 = lab.wait_group(nodes, &v4, &[0, 1, 2], SESSION_TIMEOUT);
    let all_v6 = lab.wait_group(nodes, &v6, &[0, 1, 2], SESSION_TIMEOUT);
    for p in [&v4, &v6] {
        let routes = lab.router.bgp_routes(Some(p)).unwrap();
        let entry = routes
            .iter()
            .find(|r| r.prefix == p.to_string())
            .unwrap_or_else(|| panic!("{p} not in show bgp routes: {routes:?}"));
        let multipath = entry.paths.iter().filter(|p| p.multipath || p.best).count();
        assert_eq!(multipath, 3, "{p}: three multipath paths: {entry:?}");
        assert!(entry.paths.iter().all(|p| !p.stale), "{entry:?}");
    }
    report.push(format!(
        "2. {v4} -> {all_v4:?}, {v6} -> {all_v6:?} after {:.1?}",
        start.elapsed()
    ));

    // 3. Node 2 restarts gracefully.
    graceful_restart(lab, nodes, 1, [&all_v4, &all_v6], report);

    // 4. Node 3's link is cut.
    cut_link(lab, nodes, 2, [&all_v4, &all_v6], report);

    // 5. Node 1's speaker stops (SIGTERM, as its init would).
    let t = Instant::now();
    nodes[0] = None;
    let (left, kept) = wait_leave(lab, nodes, 0, t, &[1], [&all_v4, &all_v6]);
    assert_eq!(
        kept,
        !lab.kind.notifies_on_stop(),
        "{:?} stopped: ecmpd kept its paths stale: {kept}; {left}",
        lab.kind
    );
    report.push(format!("5. node 1's speaker stopped: {left}"));
}

/// After node `i` vanished at `t0` (stopped, or its link cut): waits for ecmpd to take
/// its sessions down, then for its member to leave both groups. If ecmpd kept its paths
/// stale (graceful restart helper: the session ended without a NOTIFICATION, or by the
/// hold timer), the member must stay until the node's restart time ends; otherwise it
/// must leave at once. The members of `remaining` keep their ids. Says what happened,
/// and whether the paths were kept stale.
fn wait_leave(
    lab: &Lab,
    nodes: &Nodes,
    i: usize,
    t0: Instant,
    remaining: &[usize],
    before: [&Members; 2],
) -> (String, bool) {
    let (v4, v6) = (v4_service(), v6_service());
    let addrs = lab.node_addrs(i);
    let hold = Duration::from_secs(lab.kind.timers().1.into());
    let restart_time = lab.kind.restart_time();
    let mut why = Vec::new();
    wait_for(
        &format!("ecmpd to take node {}'s sessions down", i + 1),
        hold + Duration::from_secs(10),
        &lab.explain(nodes),
        || {
            let summary = lab.router.bgp_summary()?;
            why = addrs
                .iter()
                .map(|a| match summary.peers.iter().find(|p| p.address == *a) {
                    // A dynamic neighbour is listed only while connected.
                    None => Some("gone from show bgp summary".to_string()),
                    Some(p) if p.state != "Established" => {
                        Some(p.last_error.clone().unwrap_or_else(|| p.state.clone()))
                    }
                    Some(_) => None,
                })
                .collect();
            Ok(why.iter().all(Option::is_some).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let down = t0.elapsed();
    let stale: Vec<bool> = [&v4, &v6]
        .into_iter()
        .zip(addrs)
        .map(|(p, a)| {
            let paths = lab.paths_from(p, a).unwrap();
            !paths.is_empty() && paths.iter().all(|p| p.stale)
        })
        .collect();
    let kept = stale.iter().all(|s| *s);
    if kept {
        for (f, p) in [&v4, &v6].into_iter().enumerate() {
            let m = members(&lab.router, p).unwrap();
            assert!(
                m.contains_key(&addrs[f]),
                "{p}: node {} left the group though its paths are kept stale: {m:?}",
                i + 1
            );
        }
    } else {
        assert!(
            stale.iter().all(|s| !*s),
            "ecmpd kept node {}'s paths stale in one family only: {stale:?}",
            i + 1
        );
    }
    let after_v4 = lab.wait_group(
        nodes,
        &v4,
        remaining,
        restart_time + Duration::from_secs(10),
    );
    let after_v6 = lab.wait_group(nodes, &v6, remaining, Duration::from_secs(5));
    let left = t0.elapsed();
    for (after, before, p) in [(&after_v4, before[0], &v4), (&after_v6, before[1], &v6)] {
        for n in remaining {
            let a = lab.next_hop(*n, p);
            assert_eq!(after.get(&a), before.get(&a), "{a} kept its {p} member id");
        }
    }
    let stale_for = left.saturating_sub(down);
    if kept {
        assert!(
            stale_for + Duration::from_secs(1) >= restart_time
                && stale_for <= restart_time + Duration::from_secs(5),
            "stale paths should go when the restart time ({restart_time:?}) ends; went {stale_for:?} after the session"
        );
        (format!(
            "ecmpd saw the sessions go down after {down:.1?} ({why:?}), kept the paths stale and the member in the FIB, and removed it {stale_for:.1?} later (restart time {restart_time:?}); the others kept their ids"
        ), true)
    } else {
        assert!(
            stale_for < Duration::from_secs(2),
            "without stale paths the member should leave at once; took {stale_for:?}"
        );
        (format!(
            "ecmpd saw the sessions go down after {down:.1?} ({why:?}) and the member left {stale_for:.1?} later; the others kept their ids"
        ), false)
    }
}

/// Step 3: node `i` is killed without NOTIFICATION and comes back after
/// [`RESTART_DOWN`]. Meanwhile the FIB must not change (its paths are stale, its member
/// stays with its id); afterwards End-of-RIB leaves no stale path and the same group.
fn graceful_restart(
    lab: &Lab,
    nodes: &mut Nodes,
    i: usize,
    before: [&Members; 2],
    report: &mut Vec<String>,
) {
    let (v4, v6) = (v4_service(), v6_service());
    let addrs = lab.node_addrs(i);
    let t = Instant::now();
    let done = AtomicBool::new(false);
    let mut node = nodes[i].take().expect("node running");
    let (changes, stale_seen, samples) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let (mut changes, mut stale_seen, mut samples) = (Vec::new(), [false; 2], 0);
            while !done.load(Ordering::Relaxed) {
                samples += 1;
                for (f, p) in [&v4, &v6].into_iter().enumerate() {
                    match members(&lab.router, p) {
                        Ok(m) if &m != before[f] => {
                            changes.push(format!("{:.1?}: {p} {m:?}", t.elapsed()))
                        }
                        _ => {}
                    }
                    if let Ok(paths) = lab.paths_from(p, addrs[f]) {
                        stale_seen[f] |= paths.iter().any(|p| p.stale);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (changes, stale_seen, samples)
        });
        let _stop = StopOnDrop(&done);
        node.restart(RESTART_DOWN)
            .unwrap_or_else(|e| panic!("restarting node {}: {e}", i + 1));
        lab.wait_router_established(i, SESSION_TIMEOUT, &*node);
        // End-of-RIB ends the stale period: no stale path left.
        wait_for(
            "End-of-RIB to clear node 2's stale paths",
            Duration::from_secs(30),
            &[&lab.router, node.as_diagnose()],
            || {
                let mut any_stale = false;
                for (f, p) in [&v4, &v6].into_iter().enumerate() {
                    let paths = lab.paths_from(p, addrs[f])?;
                    any_stale |= paths.is_empty() || paths.iter().any(|p| p.stale);
                }
                Ok((!any_stale).then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        drop(_stop);
        watcher.join().expect("the restart watcher panicked")
    });
    nodes[i] = Some(node);
    let took = t.elapsed();
    assert!(
        changes.is_empty(),
        "the FIB changed while node {} restarted gracefully: {changes:?}\n{}",
        i + 1,
        lab.router.diagnostics()
    );
    assert_eq!(
        stale_seen,
        [true; 2],
        "ecmpd never showed node {}'s paths stale (v4, v6)",
        i + 1
    );
    for (f, p) in [&v4, &v6].into_iter().enumerate() {
        assert_eq!(
            &members(&lab.router, p).unwrap(),
            before[f],
            "{p} after the restart"
        );
    }
    report.push(format!(
        "3. node {} restarted (down {RESTART_DOWN:?}): paths stale, FIB unchanged over {samples} looks, swept by End-of-RIB {took:.1?} after the kill; same member ids",
        i + 1
    ));
}

/// Step 4: node `i`'s link is cut at the node's end. With BFD the member leaves within
/// the profile's detection time plus a margin, and `show bfd peers` says how fast;
/// without BFD the router's hold timer takes the session down.
fn cut_link(lab: &Lab, nodes: &Nodes, i: usize, before: [&Members; 2], report: &mut Vec<String>) {
    let (v4, v6) = (v4_service(), v6_service());
    let addrs = lab.node_addrs(i);
    let (_, hold) = lab.kind.timers();
    let profile = BfdProfile::new(BFD_PROFILE);
    let detection = Duration::from_millis(
        u64::from(
            profile
                .transmit_interval_ms
                .max(profile.receive_interval_ms),
        ) * u64::from(profile.detect_multiplier),
    );
    if lab.kind.bfd() {
        wait_for(
            "ecmpd's BFD sessions with node 3 Up",
            SESSION_TIMEOUT,
            &lab.explain(nodes),
            || {
                let peers = lab.router.bfd_peers()?;
                Ok(addrs
                    .iter()
                    .all(|a| peers.iter().any(|p| p.peer == *a && p.state == "Up"))
                    .then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    lab.topo.nodes[i].set_link(false).unwrap();
    let t = Instant::now();
    let remaining: Vec<usize> = (0..3).filter(|n| *n != i).collect();
    if !lab.kind.bfd() {
        let (left, kept) = wait_leave(lab, nodes, i, t, &remaining, before);
        assert!(
            kept,
            "a hold timer expiry should leave the paths stale: {left}"
        );
        report.push(format!(
            "4. node 3's link cut, no BFD, hold time {hold} s: {left}"
        ));
        return;
    }
    let after_v4 = lab.wait_group(nodes, &v4, &remaining, Duration::from_secs(30));
    let took = t.elapsed();
    let after_v6 = lab.wait_group(nodes, &v6, &remaining, Duration::from_secs(10));
    for (after, before, p) in [(&after_v4, before[0], &v4), (&after_v6, before[1], &v6)] {
        for n in &remaining {
            let a = lab.next_hop(*n, p);
            assert_eq!(after.get(&a), before.get(&a), "{a} kept its {p} member id");
        }
    }
    let summary = lab.router.bgp_summary().unwrap();
    let why: Vec<Option<String>> = addrs
        .iter()
        .map(|a| {
            summary
                .peers
                .iter()
                .find(|p| p.address == *a)
                .and_then(|p| p.last_error.clone())
        })
        .collect();
    // Hold time 9 s: only BFD can be this quick.
    let bound = detection + Duration::from_millis(1500);
    assert!(
        took < bound,
        "BFD ({profile:?}) should take node {} out within {bound:?}; took {took:?}",
        i + 1
    );
    let peers = lab.router.bfd_peers().unwrap();
    let mut times = Vec::new();
    for a in addrs {
        let p = peers
            .iter()
            .find(|p| p.peer == a)
            .unwrap_or_else(|| panic!("no BFD peer {a}: {peers:?}"));
        let down = p
            .last_down
            .as_ref()
            .unwrap_or_else(|| panic!("no last_down for {a}: {p:?}"));
        let fib = down
            .fib_ms
            .unwrap_or_else(|| panic!("no FIB time for {a}: {p:?}"));
        let detect = detection.as_secs_f64() * 1e3;
        assert!(
            down.detect_ms >= detect * 0.7 && down.detect_ms <= detect * 1.5,
            "{a}: BFD detection {:.0} ms, expected about {detect:.0} ms",
            down.detect_ms
        );
        assert!(
            fib >= down.detect_ms && fib <= down.detect_ms + 1000.0,
            "{a}: FIB {fib:.0} ms after the last packet, detection {:.0} ms",
            down.detect_ms
        );
        times.push(format!(
            "{a}: detected {:.0} ms, FIB {fib:.0} ms after the last packet",
            down.detect_ms
        ));
    }
    report.push(format!(
        "4. link cut: BFD took node {} out of the v4 group in {took:.2?} (bound {bound:?}, hold {hold} s); {}; ecmpd: {why:?}",
        i + 1,
        times.join("; ")
    ));
}

#[test]
fn frr_in_metallb_frr_mode_against_ecmpd() {
    suite(Kind::Frr);
}

#[test]
fn bird_against_ecmpd() {
    suite(Kind::Bird);
}

#[test]
fn gobgp_against_ecmpd() {
    suite(Kind::Gobgp);
}

#[test]
fn exabgp_against_ecmpd() {
    suite(Kind::Exabgp);
}
