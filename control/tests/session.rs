//! The session layer on loopback, against emulated MetalLB native speakers
//! and a second router instance: dynamic neighbours from a listen range,
//! refusals, the router's hold timer, TCP MD5, active neighbours,
//! collisions, range limits and the handle's commands. No root needed: the
//! speakers bind 127.0.0.x source addresses, which Linux routes locally.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::time::Duration;

use control::bgp::fsm::{DownReason, PeerAsMatch, RetryBackoff, State};
use control::bgp::session::{
    BgpConfig, BgpInstance, Hops, ListenRange, NeighborConfig, PeerKey, SessionEvent,
    SessionEventKind, SessionTimers,
};
use control::bgp::speaker::{spawn, SpeakerConfig, SpeakerHandle, SpeakerState};
use control::bgp::wire::attrs::{AsPath, Community, Origin};
use control::bgp::wire::update::MpNextHop;
use control::bgp::wire::{frame, AfiSafi, Message, Outcome, MAX_EXTENDED_MESSAGE_LEN};
use dataplane::fib::table::Prefix;
use tokio::sync::mpsc;
use tokio::time::Instant;

const ROUTER_AS: u32 = 64512;
const SPEAKER_AS: u32 = 64513;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn prefix(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Received session events, with a backlog so that waiting for one event
/// does not lose the others.
struct Events {
    rx: mpsc::Receiver<SessionEvent>,
    backlog: Vec<SessionEvent>,
}

impl Events {
    fn new(rx: mpsc::Receiver<SessionEvent>) -> Self {
        Self {
            rx,
            backlog: Vec::new(),
        }
    }

    /// The first event (old or new) matching `pred` within `within`.
    async fn wait(
        &mut self,
        within: Duration,
        pred: impl Fn(&SessionEvent) -> bool,
    ) -> Option<SessionEvent> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Some(self.backlog.remove(i));
        }
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) if pred(&ev) => return Some(ev),
                Ok(Some(ev)) => self.backlog.push(ev),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    async fn expect(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&SessionEvent) -> bool,
    ) -> SessionEvent {
        match self.wait(within, pred).await {
            Some(ev) => ev,
            None => panic!(
                "no {what} within {within:?}; other events: {:#?}",
                self.backlog
            ),
        }
    }

    async fn established(&mut self, from: IpAddr, within: Duration) -> PeerKey {
        self.expect(within, &format!("Established from {from}"), |e| {
            e.peer.address == from && matches!(e.kind, SessionEventKind::Established(_))
        })
        .await
        .peer
    }

    /// Every event that arrives within `within`, plus the backlog.
    async fn drain(&mut self, within: Duration) -> Vec<SessionEvent> {
        let _ = self.wait(within, |_| false).await;
        std::mem::take(&mut self.backlog)
    }
}

fn is_established(e: &SessionEvent) -> bool {
    matches!(e.kind, SessionEventKind::Established(_))
}

/// A router listening on 127.0.0.1 (ephemeral port) with these ranges.
fn router(ranges: Vec<ListenRange>) -> (BgpInstance, Events, SocketAddr) {
    let mut config = BgpConfig::new(ROUTER_AS, Ipv4Addr::new(10, 255, 0, 1));
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.listen_ranges = ranges;
    let (instance, rx) =
        BgpInstance::start(config).unwrap_or_else(|e| panic!("the router cannot start: {e}"));
    let addr = instance.listen_addrs()[0];
    (instance, Events::new(rx), addr)
}

fn loopback_range() -> ListenRange {
    ListenRange::new(prefix("127.0.0.0/8"), PeerAsMatch::External)
}

fn speaker(source: &str, router: SocketAddr) -> SpeakerConfig {
    SpeakerConfig::new(SPEAKER_AS, ROUTER_AS, ip(source), router)
}

/// A port free on `addr` right now.
fn free_port(addr: &str) -> u16 {
    StdListener::bind((ip(addr), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn three_speakers_from_a_listen_range_establish_announce_withdraw_and_leave() {
    let (router, mut events, addr) = router(vec![loopback_range()]);
    let sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let speakers: Vec<SpeakerHandle> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sp = spawn(speaker(s, addr));
            sp.announce(
                prefix(&format!("192.0.2.{}/32", 10 + i)),
                vec![Community::new(64513, 100 + i as u16)],
            );
            sp
        })
        .collect();

    let mut keys = Vec::new();
    for s in sources {
        keys.push(events.established(ip(s), secs(5)).await);
    }
    for (i, s) in sources.iter().enumerate() {
        let want = prefix(&format!("192.0.2.{}/32", 10 + i));
        let ev = events
            .expect(secs(5), &format!("the UPDATE of {s}"), |e| {
                e.peer.address == ip(s) && matches!(&e.kind, SessionEventKind::Update(_))
            })
            .await;
        assert_eq!(ev.peer, keys[i]);
        let SessionEventKind::Update(d) = ev.kind else {
            unreachable!()
        };
        assert_eq!(d.outcome, Outcome::Accept, "{:?}", d.problems);
        assert_eq!(d.announced().collect::<Vec<_>>(), vec![want]);
        let a = &d.update.attributes;
        assert_eq!(a.next_hop, Some(s.parse::<Ipv4Addr>().unwrap()));
        assert_eq!(a.origin, Some(Origin::Igp));
        assert_eq!(a.as_path, Some(AsPath::sequence([SPEAKER_AS])));
        assert_eq!(a.communities, vec![Community::new(64513, 100 + i as u16)]);
        assert_eq!(a.local_pref, None, "no LOCAL_PREF on eBGP");
    }

    // IPv6 through MP_REACH_NLRI.
    speakers[2].announce(prefix("2001:db8::10/128"), vec![]);
    let ev = events
        .expect(secs(5), "the IPv6 UPDATE", |e| {
            e.peer == keys[2]
                && matches!(&e.kind, SessionEventKind::Update(d) if d.update.mp_reach.is_some())
        })
        .await;
    let SessionEventKind::Update(d) = ev.kind else {
        unreachable!()
    };
    let reach = d.update.mp_reach.as_ref().unwrap();
    assert_eq!(reach.family, AfiSafi::IPV6_UNICAST);
    assert_eq!(reach.nlri, vec![prefix("2001:db8::10/128")]);
    assert_eq!(
        reach.next_hop,
        MpNextHop {
            global: IpAddr::V6("127.0.0.4".parse::<Ipv4Addr>().unwrap().to_ipv6_mapped()),
            link_local: None
        }
    );

    // Withdrawal.
    speakers[0].withdraw(prefix("192.0.2.10/32"));
    let ev = events
        .expect(secs(5), "the withdrawal", |e| {
            e.peer == keys[0] && matches!(&e.kind, SessionEventKind::Update(_))
        })
        .await;
    let SessionEventKind::Update(d) = ev.kind else {
        unreachable!()
    };
    assert_eq!(
        d.withdrawn().collect::<Vec<_>>(),
        vec![prefix("192.0.2.10/32")]
    );
    assert_eq!(d.announced().count(), 0);

    let summary = router.snapshot().await.unwrap();
    assert_eq!(summary.neighbors.len(), 3);
    for n in &summary.neighbors {
        assert!(n.dynamic);
        assert_eq!(n.state, State::Established);
        assert_eq!(n.remote_as, Some(SPEAKER_AS));
        assert!(n.uptime.is_some());
        assert!(n.messages_received >= 3, "{n:?}");
        assert!(n.messages_sent >= 2, "{n:?}");
    }

    // A node leaving: the speaker closes TCP; the dynamic neighbour is
    // forgotten.
    let mut speakers = speakers.into_iter();
    let first = speakers.next().unwrap();
    first.stop().await;
    let ev = events
        .expect(secs(5), "Down after the speaker left", |e| {
            e.peer == keys[0] && matches!(e.kind, SessionEventKind::Down { .. })
        })
        .await;
    assert!(matches!(
        ev.kind,
        SessionEventKind::Down {
            reason: DownReason::ConnectionClosed,
            stale: None
        }
    ));
    let summary = router.snapshot().await.unwrap();
    assert!(summary.neighbor(ip("127.0.0.2")).is_none(), "{summary:?}");
    assert_eq!(summary.neighbors.len(), 2);

    // A node crashing: RST.
    let second = speakers.next().unwrap();
    second.kill().await;
    events
        .expect(secs(5), "Down after the speaker was killed", |e| {
            e.peer == keys[1]
                && matches!(
                    e.kind,
                    SessionEventKind::Down {
                        reason: DownReason::ConnectionClosed,
                        ..
                    }
                )
        })
        .await;

    router.shutdown().await;
    let third = speakers.next().unwrap();
    // The router's Cease / shutdown closes the speaker's session.
    let deadline = Instant::now() + secs(5);
    while third.status().sessions == 1 && third.status().state == SpeakerState::Established {
        assert!(
            Instant::now() < deadline,
            "the speaker still thinks it is up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(third.status().last_error.is_some());
    third.stop().await;
}

#[tokio::test]
async fn a_speaker_outside_every_range_and_neighbor_is_refused() {
    let (router, mut events, addr) = router(vec![ListenRange::new(
        prefix("127.0.1.0/24"),
        PeerAsMatch::External,
    )]);
    let outsider = spawn(speaker("127.0.0.9", addr));
    let insider = spawn(speaker("127.0.1.9", addr));
    events.established(ip("127.0.1.9"), secs(5)).await;
    let up = events
        .wait(secs(2), |e| e.peer.address == ip("127.0.0.9"))
        .await;
    assert!(up.is_none(), "the outsider got {up:?}");
    let summary = router.snapshot().await.unwrap();
    assert!(summary.refused.unknown_address >= 1, "{summary:?}");
    assert!(summary.neighbor(ip("127.0.0.9")).is_none());
    assert_ne!(outsider.status().state, SpeakerState::Established);
    outsider.stop().await;
    insider.stop().await;
    router.shutdown().await;
}

#[tokio::test]
async fn router_hold_timer_drops_a_speaker_that_stops_sending_keepalives() {
    let mut range = loopback_range();
    range.timers.hold_time = 3;
    let (router, mut events, addr) = router(vec![range]);
    let sp = spawn(speaker("127.0.0.5", addr));
    let key = events.established(ip("127.0.0.5"), secs(5)).await;
    assert!(sp.established(secs(1)).await);
    assert_eq!(sp.status().hold_time, Some(3));
    // Keepalives every second keep it up past the hold time.
    let early = events.wait(secs(4), |e| e.peer == key).await;
    assert!(early.is_none(), "went down while alive: {early:?}");
    sp.pause_keepalives();
    let paused = Instant::now();
    let ev = events
        .expect(secs(6), "Down after the hold time", |e| e.peer == key)
        .await;
    assert!(
        matches!(
            ev.kind,
            SessionEventKind::Down {
                reason: DownReason::HoldTimerExpired,
                ..
            }
        ),
        "{ev:?}"
    );
    let waited = paused.elapsed();
    assert!(waited >= Duration::from_millis(1500), "after {waited:?}");
    sp.stop().await;
    router.shutdown().await;
}

#[tokio::test]
async fn md5_password_on_a_range_admits_only_speakers_that_sign() {
    let mut range = loopback_range();
    range.password = Some("s3cret-Pw".into());
    let (router, mut events, addr) = router(vec![range]);
    let mut right = speaker("127.0.0.6", addr);
    right.password = Some("s3cret-Pw".into());
    let mut wrong = speaker("127.0.0.7", addr);
    wrong.password = Some("not-it".into());
    let missing = speaker("127.0.0.8", addr);
    let (right, wrong, missing) = (spawn(right), spawn(wrong), spawn(missing));
    events.established(ip("127.0.0.6"), secs(5)).await;
    let other = events
        .wait(secs(3), |e| {
            is_established(e) && e.peer.address != ip("127.0.0.6")
        })
        .await;
    assert!(
        other.is_none(),
        "an unsigned or wrongly signed speaker got in: {other:?}"
    );
    assert_ne!(wrong.status().state, SpeakerState::Established);
    assert_ne!(missing.status().state, SpeakerState::Established);
    let summary = router.snapshot().await.unwrap();
    assert_eq!(summary.neighbors.len(), 1, "{summary:?}");
    right.stop().await;
    wrong.stop().await;
    missing.stop().await;
    router.shutdown().await;
}

fn fast_timers() -> SessionTimers {
    SessionTimers {
        hold_time: 9,
        connect_retry: RetryBackoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(1),
        },
        ..SessionTimers::default()
    }
}

#[tokio::test]
async fn an_active_neighbor_dials_a_listening_router_and_advertises() {
    let (a_addr, b_addr) = (ip("127.0.0.21"), ip("127.0.0.20"));
    let b_port = free_port("127.0.0.20");
    // B: listens, configured passive neighbour A with a password.
    let mut b = BgpConfig::new(64520, Ipv4Addr::new(10, 255, 0, 20));
    b.listen = vec![SocketAddr::new(b_addr, b_port)];
    let mut n = NeighborConfig::new(a_addr, PeerAsMatch::Exact(64521));
    n.passive = true;
    n.password = Some("between-routers".into());
    b.neighbors.push(n);
    // A: does not listen, dials B from its own address.
    let mut a = BgpConfig::new(64521, Ipv4Addr::new(10, 255, 0, 21));
    let mut n = NeighborConfig::new(b_addr, PeerAsMatch::Exact(64520));
    n.port = b_port;
    n.source = Some(a_addr);
    n.password = Some("between-routers".into());
    n.timers = fast_timers();
    a.neighbors.push(n);
    let (b, b_rx) = BgpInstance::start(b).unwrap();
    let (a, a_rx) = BgpInstance::start(a).unwrap();
    let (mut a_events, mut b_events) = (Events::new(a_rx), Events::new(b_rx));

    let b_key = a_events.established(b_addr, secs(5)).await;
    let a_key = b_events.established(a_addr, secs(5)).await;

    // A re-advertises a route to B.
    let sp = SpeakerConfig::new(64521, 64520, a_addr, SocketAddr::new(b_addr, 179));
    let update = sp.announcement(prefix("198.51.100.0/24"), &[Community::NO_EXPORT]);
    a.send_update(b_key, update).await.unwrap();
    let ev = b_events
        .expect(secs(5), "A's UPDATE at B", |e| {
            e.peer == a_key && matches!(e.kind, SessionEventKind::Update(_))
        })
        .await;
    let SessionEventKind::Update(d) = ev.kind else {
        unreachable!()
    };
    assert_eq!(
        d.announced().collect::<Vec<_>>(),
        vec![prefix("198.51.100.0/24")]
    );
    assert_eq!(
        d.update.attributes.next_hop,
        Some(Ipv4Addr::new(127, 0, 0, 21))
    );

    // Commands on an unknown generation are refused.
    let stale = PeerKey {
        address: b_addr,
        generation: b_key.generation + 100,
    };
    assert!(a.bfd_down(stale).await.is_err());

    // BFD down: Cease / BFD Down; A dials again and the session returns.
    a.bfd_down(b_key).await.unwrap();
    let ev = a_events
        .expect(secs(5), "Down at A", |e| e.peer == b_key)
        .await;
    assert!(matches!(
        ev.kind,
        SessionEventKind::Down {
            reason: DownReason::BfdDown,
            ..
        }
    ));
    let ev = b_events
        .expect(secs(5), "Down at B", |e| e.peer == a_key)
        .await;
    assert!(
        matches!(&ev.kind, SessionEventKind::Down { reason: DownReason::NotificationReceived(n), .. } if n.code == 6 && n.subcode == 10),
        "{ev:?}"
    );
    a_events.established(b_addr, secs(5)).await;
    b_events.established(a_addr, secs(5)).await;

    let summary = a.snapshot().await.unwrap();
    let n = summary.neighbor(b_addr).unwrap();
    assert!(!n.dynamic);
    assert_eq!(n.state, State::Established);
    assert_eq!(n.established_count, 2);
    assert_eq!(n.last_error.as_deref(), Some("BFD down"));

    // Administrative shutdown with a message.
    a.shutdown_peer(b_key, Some("maintenance".into()))
        .await
        .unwrap();
    let ev = b_events
        .expect(secs(5), "Down at B after shutdown", |e| e.peer == a_key)
        .await;
    match ev.kind {
        SessionEventKind::Down {
            reason: DownReason::NotificationReceived(n),
            ..
        } => {
            // Both routers set the N bit, so the Administrative Shutdown
            // travels inside a Hard Reset (RFC 8538 5.1).
            assert_eq!((n.code, n.subcode), (6, 9), "{n}");
            assert_eq!(n.data.get(..2), Some(&[6u8, 2][..]));
            assert!(n.data.ends_with(b"maintenance"), "{n}");
        }
        other => panic!("{other:?}"),
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn two_routers_dialling_each_other_end_with_one_session() {
    let (a_addr, b_addr) = (ip("127.0.0.30"), ip("127.0.0.31"));
    let (a_port, b_port) = (free_port("127.0.0.30"), free_port("127.0.0.31"));
    let make = |me: IpAddr, my_port, my_as, id, them: IpAddr, their_port, their_as| {
        let mut c = BgpConfig::new(my_as, id);
        c.listen = vec![SocketAddr::new(me, my_port)];
        let mut n = NeighborConfig::new(them, PeerAsMatch::Exact(their_as));
        n.port = their_port;
        n.source = Some(me);
        n.timers = fast_timers();
        c.neighbors.push(n);
        c
    };
    let a = make(
        a_addr,
        a_port,
        64530,
        Ipv4Addr::new(10, 255, 0, 30),
        b_addr,
        b_port,
        64531,
    );
    let b = make(
        b_addr,
        b_port,
        64531,
        Ipv4Addr::new(10, 255, 0, 31),
        a_addr,
        a_port,
        64530,
    );
    // Start both before either runs (the test runtime is single-threaded,
    // so the dial tasks wait for the first await): both listen, then both
    // dial, and each router sees its own dial and the other's.
    let (a, a_rx) = BgpInstance::start(a).unwrap();
    let (b, b_rx) = BgpInstance::start(b).unwrap();
    let (mut a_events, mut b_events) = (Events::new(a_rx), Events::new(b_rx));
    a_events.established(b_addr, secs(10)).await;
    b_events.established(a_addr, secs(10)).await;
    // Settle: whatever flapped during the collision must be over, and stay
    // over.
    let deadline = Instant::now() + secs(10);
    loop {
        let (sa, sb) = (a.snapshot().await.unwrap(), b.snapshot().await.unwrap());
        let up = |s: &control::bgp::session::BgpSummary| {
            s.neighbors.len() == 1 && s.neighbors[0].state == State::Established
        };
        if up(&sa) && up(&sb) {
            break;
        }
        assert!(Instant::now() < deadline, "{sa:?}\n{sb:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = a_events.drain(Duration::from_millis(500)).await;
    let _ = b_events.drain(Duration::ZERO).await;
    let later_a = a_events.drain(secs(2)).await;
    let later_b = b_events.drain(Duration::ZERO).await;
    assert!(later_a.is_empty(), "A still flaps: {later_a:?}");
    assert!(later_b.is_empty(), "B still flaps: {later_b:?}");
    let (sa, sb) = (a.snapshot().await.unwrap(), b.snapshot().await.unwrap());
    assert_eq!(sa.neighbors[0].state, State::Established);
    assert_eq!(sb.neighbors[0].state, State::Established);
    // Both dialled while both listened, so each saw two connections.
    assert!(sa.collisions + sb.collisions >= 1, "{sa:?}\n{sb:?}");
    assert_eq!(sa.neighbors[0].established_count, 1, "{sa:?}");
    assert_eq!(sb.neighbors[0].established_count, 1, "{sb:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_listen_range_refuses_neighbors_beyond_its_limit() {
    let mut range = loopback_range();
    range.limit = 2;
    let (router, mut events, addr) = router(vec![range]);
    let speakers: Vec<SpeakerHandle> = ["127.0.0.11", "127.0.0.12"]
        .iter()
        .map(|s| spawn(speaker(s, addr)))
        .collect();
    events.established(ip("127.0.0.11"), secs(5)).await;
    events.established(ip("127.0.0.12"), secs(5)).await;
    let third = spawn(speaker("127.0.0.13", addr));
    let up = events.wait(secs(2), is_established).await;
    assert!(up.is_none(), "the third got in: {up:?}");
    let summary = router.snapshot().await.unwrap();
    assert_eq!(summary.neighbors.len(), 2);
    assert!(summary.refused.range_limit >= 1, "{summary:?}");
    // Once one leaves, the third gets its place.
    let mut speakers = speakers.into_iter();
    speakers.next().unwrap().stop().await;
    events.established(ip("127.0.0.13"), secs(5)).await;
    third.stop().await;
    for s in speakers {
        s.stop().await;
    }
    router.shutdown().await;
}

#[tokio::test]
async fn max_prefix_holds_a_dynamic_neighbor_down_then_lets_it_back() {
    let (router, mut events, addr) = router(vec![loopback_range()]);
    let sp = spawn(speaker("127.0.0.14", addr));
    let key = events.established(ip("127.0.0.14"), secs(5)).await;
    router
        .max_prefix_exceeded(
            key,
            AfiSafi::IPV4_UNICAST,
            10,
            Some(Duration::from_millis(1500)),
        )
        .await
        .unwrap();
    let ev = events.expect(secs(5), "Down", |e| e.peer == key).await;
    assert!(matches!(
        ev.kind,
        SessionEventKind::Down {
            reason: DownReason::MaxPrefix { limit: 10, .. },
            ..
        }
    ));
    // Held down: the speaker's redials are refused for a while.
    let back = events
        .wait(Duration::from_millis(1000), is_established)
        .await;
    assert!(back.is_none(), "{back:?}");
    let again = events.established(ip("127.0.0.14"), secs(5)).await;
    assert_ne!(again.generation, key.generation, "a new incarnation");
    sp.stop().await;
    router.shutdown().await;
}

#[tokio::test]
async fn ipv6_speaker_with_md5_announces_through_mp_reach() {
    let mut range = ListenRange::new(prefix("::1/128"), PeerAsMatch::External);
    range.password = Some("v6-secret".into());
    let mut config = BgpConfig::new(ROUTER_AS, Ipv4Addr::new(10, 255, 0, 1));
    config.listen = vec!["[::1]:0".parse().unwrap()];
    config.listen_ranges = vec![range];
    let (router, rx) =
        BgpInstance::start(config).unwrap_or_else(|e| panic!("the router cannot start: {e}"));
    let mut events = Events::new(rx);
    let mut sp = speaker("::1", router.listen_addrs()[0]);
    sp.password = Some("v6-secret".into());
    let sp = spawn(sp);
    sp.announce(prefix("2001:db8:1::/64"), vec![Community::NO_EXPORT]);
    let key = events.established(ip("::1"), secs(5)).await;
    let ev = events
        .expect(secs(5), "the IPv6 UPDATE", |e| {
            e.peer == key && matches!(e.kind, SessionEventKind::Update(_))
        })
        .await;
    let SessionEventKind::Update(d) = ev.kind else {
        unreachable!()
    };
    let reach = d.update.mp_reach.as_ref().expect("MP_REACH_NLRI");
    assert_eq!(reach.next_hop.global, ip("::1"));
    assert_eq!(reach.nlri, vec![prefix("2001:db8:1::/64")]);
    assert_eq!(d.update.attributes.communities, vec![Community::NO_EXPORT]);
    sp.stop().await;
    router.shutdown().await;
}

#[tokio::test]
async fn gtsm_admits_a_router_one_hop_away_and_drops_a_speaker_sending_ttl_64() {
    let mut range = loopback_range();
    range.hops = Hops::Gtsm(1);
    let (router, mut events, addr) = router(vec![range]);
    // The emulated speaker sends with the default TTL (64): after the
    // handshake the kernel drops its segments.
    let sp = spawn(speaker("127.0.0.40", addr));
    // A router sending with TTL 255 gets in.
    let mut a = BgpConfig::new(64540, Ipv4Addr::new(10, 255, 0, 41));
    let mut n = NeighborConfig::new(addr.ip(), PeerAsMatch::Exact(ROUTER_AS));
    n.port = addr.port();
    n.source = Some(ip("127.0.0.41"));
    n.hops = Hops::Gtsm(1);
    n.timers = fast_timers();
    a.neighbors.push(n);
    let (a, _a_rx) = BgpInstance::start(a).unwrap();
    events.established(ip("127.0.0.41"), secs(5)).await;
    let other = events
        .wait(secs(2), |e| {
            e.peer.address == ip("127.0.0.40") && is_established(e)
        })
        .await;
    assert!(other.is_none(), "a TTL 64 speaker passed GTSM: {other:?}");
    // Every range of the listener asks for GTSM, so the listener itself
    // drops the speaker's SYNs: no neighbour is even created.
    let summary = router.snapshot().await.unwrap();
    assert!(summary.neighbor(ip("127.0.0.40")).is_none(), "{summary:?}");
    sp.stop().await;
    a.shutdown().await;
    router.shutdown().await;
}

#[tokio::test]
async fn a_slow_rib_neither_blocks_commands_nor_loses_updates() {
    let mut config = BgpConfig::new(ROUTER_AS, Ipv4Addr::new(10, 255, 0, 1));
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.listen_ranges = vec![loopback_range()];
    config.event_capacity = 1;
    let (router, rx) = BgpInstance::start(config).unwrap();
    let mut events = Events::new(rx);
    let sp = spawn(speaker("127.0.0.50", router.listen_addrs()[0]));
    for i in 0..50 {
        sp.announce(prefix(&format!("203.0.113.{i}/32")), vec![]);
    }
    assert!(sp.established(secs(5)).await);
    // Nobody reads the events for a while; the handle still answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let summary = tokio::time::timeout(secs(2), router.snapshot())
        .await
        .expect("the snapshot answers while the RIB is slow")
        .unwrap();
    assert_eq!(summary.neighbors.len(), 1);
    let key = events.established(ip("127.0.0.50"), secs(5)).await;
    for i in 0..50 {
        let want = prefix(&format!("203.0.113.{i}/32"));
        let ev = events
            .expect(secs(5), &format!("the UPDATE for {want}"), |e| {
                e.peer == key && matches!(&e.kind, SessionEventKind::Update(d) if d.announced().any(|p| p == want))
            })
            .await;
        assert_eq!(ev.peer, key);
    }
    sp.stop().await;
    router.shutdown().await;
}

/// A BGP speaker scripted by hand, message by message.
struct RawPeer {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawPeer {
    async fn dial(source: &str, to: SocketAddr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(ip(source), 0)).unwrap();
        Self {
            stream: socket.connect(to).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, m: &Message) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(&m.encode().unwrap()).await.unwrap();
    }

    /// The next message, or `None` once the router closed.
    async fn recv(&mut self) -> Option<Message> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some((m, used)) = frame(&self.buf, MAX_EXTENDED_MESSAGE_LEN).unwrap() {
                self.buf.drain(..used);
                return Some(m);
            }
            let read = tokio::time::timeout(secs(5), self.stream.read_buf(&mut self.buf))
                .await
                .expect("the router said something within 5 s");
            if read.unwrap_or(0) == 0 {
                return None;
            }
        }
    }
}

fn raw_open(asn: u32, id: Ipv4Addr) -> Message {
    Message::Open(
        SpeakerConfig::new(
            asn,
            ROUTER_AS,
            IpAddr::V4(id),
            "127.0.0.1:179".parse().unwrap(),
        )
        .open(),
    )
}

#[tokio::test]
async fn an_update_whose_routes_cannot_be_located_resets_the_session() {
    let (router, mut events, addr) = router(vec![loopback_range()]);
    let mut peer = RawPeer::dial("127.0.0.60", addr).await;
    peer.send(&raw_open(SPEAKER_AS, Ipv4Addr::new(127, 0, 0, 60)))
        .await;
    assert!(matches!(peer.recv().await, Some(Message::Open(_))));
    assert_eq!(peer.recv().await, Some(Message::Keepalive));
    peer.send(&Message::Keepalive).await;
    let key = events.established(ip("127.0.0.60"), secs(5)).await;
    // No withdrawn routes, no attributes, an NLRI of length 33.
    peer.send(&Message::Update(vec![0, 0, 0, 0, 33, 10, 0, 0, 1, 1]))
        .await;
    let ev = events.expect(secs(5), "Down", |e| e.peer == key).await;
    let SessionEventKind::Down {
        reason: DownReason::NotificationSent(n),
        ..
    } = ev.kind
    else {
        panic!("{ev:?}")
    };
    assert_eq!(n.code, 3, "UPDATE Message Error: {n}");
    assert_eq!(peer.recv().await, Some(Message::Notification(n)));
    assert_eq!(peer.recv().await, None, "then the router closes");
    router.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_is_not_bgp_is_answered_and_closed() {
    let (router, _events, addr) = router(vec![loopback_range()]);
    let mut peer = RawPeer::dial("127.0.0.62", addr).await;
    assert!(matches!(peer.recv().await, Some(Message::Open(_))));
    {
        use tokio::io::AsyncWriteExt;
        peer.stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
    }
    let Some(Message::Notification(n)) = peer.recv().await else {
        panic!("expected a NOTIFICATION")
    };
    assert_eq!(
        (n.code, n.subcode),
        (1, 1),
        "Connection Not Synchronized: {n}"
    );
    assert_eq!(peer.recv().await, None);
    let summary = router.snapshot().await.unwrap();
    assert!(summary.neighbor(ip("127.0.0.62")).is_none(), "forgotten");
    router.shutdown().await;
}

/// Router A dials the scripted peer and the peer dials A at the same time;
/// the higher BGP Identifier's own connection must survive.
async fn collide(peer_id: Ipv4Addr) {
    let peer_addr = "127.0.0.61";
    let peer_listener = tokio::net::TcpListener::bind((ip(peer_addr), 0))
        .await
        .unwrap();
    let router_id = Ipv4Addr::new(10, 255, 0, 1);
    let mut config = BgpConfig::new(ROUTER_AS, router_id);
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    let mut n = NeighborConfig::new(ip(peer_addr), PeerAsMatch::Exact(SPEAKER_AS));
    n.port = peer_listener.local_addr().unwrap().port();
    n.timers = fast_timers();
    config.neighbors.push(n);
    let (router, rx) = BgpInstance::start(config).unwrap();
    let mut events = Events::new(rx);
    let addr = router.listen_addrs()[0];

    // The router's dial (outbound for it), in OpenSent.
    let (stream, _) = tokio::time::timeout(secs(5), peer_listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut ours = RawPeer {
        stream,
        buf: Vec::new(),
    };
    assert!(matches!(ours.recv().await, Some(Message::Open(_))));
    // The peer's own dial (inbound for the router), with its OPEN.
    let mut theirs = RawPeer::dial(peer_addr, addr).await;
    theirs.send(&raw_open(SPEAKER_AS, peer_id)).await;
    assert!(matches!(theirs.recv().await, Some(Message::Open(_))));
    assert_eq!(theirs.recv().await, Some(Message::Keepalive));

    let peer_wins = peer_id > router_id;
    let (mut kept, mut dumped) = if peer_wins {
        (theirs, ours)
    } else {
        (ours, theirs)
    };
    let cease = loop {
        match dumped.recv().await {
            Some(Message::Notification(n)) => break n,
            Some(_) => continue,
            None => panic!("closed without a Cease"),
        }
    };
    assert_eq!((cease.code, cease.subcode), (6, 7), "{cease}");
    if !peer_wins {
        kept.send(&raw_open(SPEAKER_AS, peer_id)).await;
        assert_eq!(kept.recv().await, Some(Message::Keepalive));
    }
    kept.send(&Message::Keepalive).await;
    let key = events.established(ip(peer_addr), secs(5)).await;
    let summary = router.snapshot().await.unwrap();
    let n = summary.neighbor(ip(peer_addr)).unwrap();
    assert_eq!(n.state, State::Established);
    assert_eq!(summary.collisions, 1);
    // The kept connection carries the session.
    kept.send(&Message::Keepalive).await;
    let later = events
        .wait(Duration::from_millis(500), |e| e.peer == key)
        .await;
    assert!(later.is_none(), "{later:?}");
    router.shutdown().await;
}

#[tokio::test]
async fn a_collision_keeps_the_peer_connection_when_its_identifier_is_higher() {
    collide(Ipv4Addr::new(10, 255, 0, 200)).await;
}

#[tokio::test]
async fn a_collision_keeps_our_connection_when_our_identifier_is_higher() {
    collide(Ipv4Addr::new(10, 0, 0, 1)).await;
}
