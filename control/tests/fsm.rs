//! The BGP session FSM on virtual time: establishment with MetalLB-like and
//! FRR-like peers, OPEN checks, timers, graceful restart decisions,
//! max-prefix hold-down, retries, collisions, and random event sequences.

use std::time::Duration;

use control::bgp::fsm::{
    negotiate, resolve_collision, Action, Direction, DownReason, Event, Fsm, InboundDecision,
    Negotiated, PeerAsMatch, PeerConfig, RetryBackoff, StalePaths, StartMode, State,
};
use control::bgp::wire::open::AS_TRANS;
use control::bgp::wire::{
    decode, AfiSafi, Capability, GracefulRestart, GracefulRestartFamily, Message, Notification,
    Open, RouteRefresh, RouteRefreshSubtype, WireError, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN,
};
use proptest::prelude::*;

const LOCAL_AS: u32 = 64512;
const PEER_AS: u32 = 64513;
const ROUTER_ID: u32 = 0x0a00_00fe; // 10.0.0.254
const PEER_ID: u32 = 0x0a00_0001; // 10.0.0.1

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn config(peer_as: PeerAsMatch) -> PeerConfig {
    PeerConfig::new(LOCAL_AS, ROUTER_ID, peer_as)
}

/// MetalLB's native speaker: MP IPv4 and IPv6 unicast and 4-octet AS, all in
/// one optional parameter; no graceful restart, no route refresh.
fn metallb_open(asn: u32, id: u32, hold: u16) -> Open {
    Open {
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        bgp_id: id,
        optional_parameters: vec![vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::FourOctetAs(asn),
        ]],
        extended_parameters: false,
    }
}

/// FRR's graceful restart capability: N bit, 120 s, IPv4 and IPv6 unicast.
fn frr_gr(notification: bool) -> GracefulRestart {
    GracefulRestart {
        restart_state: false,
        notification,
        restart_time: 120,
        families: vec![
            GracefulRestartFamily {
                family: AfiSafi::IPV4_UNICAST,
                forwarding_preserved: false,
            },
            GracefulRestartFamily {
                family: AfiSafi::IPV6_UNICAST,
                forwarding_preserved: false,
            },
        ],
    }
}

/// FRR (MetalLB FRR mode): one capability per optional parameter, with
/// capabilities we do not know (ADD-PATH, FQDN, LLGR) and GR with N bit.
fn frr_open_with(asn: u32, id: u32, hold: u16, gr: Option<GracefulRestart>) -> Open {
    let mut caps = vec![
        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
        Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::FourOctetAs(asn),
        Capability::ExtendedMessage,
        Capability::Unknown {
            code: 69,
            value: vec![0, 1, 1, 1],
        },
        Capability::Unknown {
            code: 73,
            value: vec![5, b'n', b'o', b'd', b'e', b'1', 0],
        },
        Capability::Unknown {
            code: 71,
            value: vec![],
        },
    ];
    if let Some(gr) = gr {
        caps.push(Capability::GracefulRestart(gr));
    }
    Open::new(asn, hold, id, caps)
}

fn frr_open(asn: u32, id: u32, hold: u16) -> Open {
    frr_open_with(asn, id, hold, Some(frr_gr(true)))
}

fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn sent_notifications(actions: &[Action]) -> Vec<Notification> {
    sent(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::Notification(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn only_notification(actions: &[Action]) -> (u8, u8, Vec<u8>) {
    let ns = sent_notifications(actions);
    assert_eq!(ns.len(), 1, "one NOTIFICATION expected in {actions:?}");
    let n = ns.into_iter().next().unwrap();
    (n.code, n.subcode, n.data)
}

fn session_down(actions: &[Action]) -> (DownReason, Option<StalePaths>) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::SessionDown { reason, stale } => Some((reason.clone(), stale.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no SessionDown in {actions:?}"))
}

fn closes(actions: &[Action]) -> bool {
    actions.contains(&Action::CloseConnection)
}

/// Start passive, accept the peer, exchange OPEN and KEEPALIVE at `now`.
/// Returns the FSM and what was negotiated.
fn establish(cfg: PeerConfig, peer_open: Open, now: Duration) -> (Fsm, Negotiated) {
    let mut fsm = Fsm::new(cfg);
    assert!(fsm
        .handle(Event::ManualStart(StartMode::Passive), now)
        .is_empty());
    let a = fsm.handle(Event::TcpConnectionConfirmed, now);
    assert!(matches!(sent(&a).as_slice(), [Message::Open(_)]), "{a:?}");
    let a = fsm.handle(Event::Message(Message::Open(peer_open)), now);
    assert_eq!(sent(&a), vec![Message::Keepalive], "{a:?}");
    assert_eq!(fsm.state(), State::OpenConfirm);
    let a = fsm.handle(Event::Message(Message::Keepalive), now);
    let neg = match a.as_slice() {
        [Action::SessionEstablished(n)] => n.clone(),
        other => panic!("not established: {other:?}"),
    };
    assert_eq!(fsm.state(), State::Established);
    (fsm, neg)
}

/// Feed an OPEN in OpenSent and return the actions.
fn answer_open(cfg: PeerConfig, open: Open) -> (Fsm, Vec<Action>) {
    let mut fsm = Fsm::new(cfg);
    fsm.handle(Event::ManualStart(StartMode::Passive), secs(0));
    fsm.handle(Event::TcpConnectionConfirmed, secs(0));
    let a = fsm.handle(Event::Message(Message::Open(open)), secs(1));
    (fsm, a)
}

/// Poll at every deadline up to `until`, collecting the actions with their
/// times.
fn run_until(fsm: &mut Fsm, until: Duration) -> Vec<(Duration, Action)> {
    let mut out = Vec::new();
    while let Some(at) = fsm.next_deadline() {
        if at > until {
            break;
        }
        out.extend(fsm.poll(at).into_iter().map(|a| (at, a)));
    }
    out
}

// ---------------------------------------------------------------------------
// Establishment.

#[test]
fn passive_peer_establishes_with_a_metallb_native_open() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Exact(PEER_AS)));
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm
        .handle(Event::ManualStart(StartMode::Passive), secs(0))
        .is_empty());
    assert_eq!(fsm.state(), State::Active);
    assert_eq!(fsm.next_deadline(), None, "a passive peer has no timer");
    assert_eq!(fsm.inbound_decision(), InboundDecision::Accept);

    let a = fsm.handle(Event::TcpConnectionConfirmed, secs(1));
    let Some(Message::Open(ours)) = sent(&a).into_iter().next() else {
        panic!("no OPEN in {a:?}")
    };
    assert_eq!(fsm.state(), State::OpenSent);
    assert_eq!(fsm.connection(), Some(Direction::Inbound));
    assert_eq!(fsm.next_deadline(), Some(secs(1 + 240)), "OpenSent hold");
    assert_eq!(ours.my_as, LOCAL_AS as u16);
    assert_eq!(ours.hold_time, 90);
    assert_eq!(ours.bgp_id, ROUTER_ID);
    let caps: Vec<_> = ours.capabilities().cloned().collect();
    assert_eq!(
        caps,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(LOCAL_AS),
            Capability::ExtendedMessage,
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: true,
                restart_time: 120,
                families: vec![],
            }),
        ]
    );
    assert!(Message::Open(ours).encode().is_ok());

    let a = fsm.handle(
        Event::Message(Message::Open(metallb_open(PEER_AS, PEER_ID, 90))),
        secs(2),
    );
    assert_eq!(a, vec![Action::Send(Message::Keepalive)]);
    assert_eq!(fsm.state(), State::OpenConfirm);
    let a = fsm.handle(Event::Message(Message::Keepalive), secs(3));
    let [Action::SessionEstablished(neg)] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(fsm.state(), State::Established);
    assert_eq!(neg.peer_as, PEER_AS);
    assert_eq!(neg.peer_id, PEER_ID);
    assert!(!neg.internal);
    assert_eq!((neg.hold_time, neg.keepalive), (90, 30));
    assert_eq!(
        neg.families,
        vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
    );
    assert!(neg.four_octet_as);
    assert!(!neg.route_refresh && !neg.enhanced_route_refresh);
    assert!(!neg.extended_message);
    assert_eq!(neg.max_message_len(), MAX_MESSAGE_LEN);
    assert_eq!(neg.peer_graceful_restart, None);
    assert!(!neg.graceful_notification);
    assert_eq!(fsm.negotiated(), Some(neg));

    let stats = fsm.stats();
    assert_eq!((stats.sent.open, stats.sent.keepalive), (1, 1));
    assert_eq!((stats.received.open, stats.received.keepalive), (1, 1));
    assert_eq!(stats.established_count, 1);
    assert_eq!(stats.state_since, secs(3));
    assert_eq!(fsm.uptime(secs(10)), Some(secs(7)));
    assert_eq!(
        fsm.inbound_decision(),
        InboundDecision::Refuse(Notification::new(6, 7, vec![]))
    );
}

#[test]
fn passive_peer_establishes_with_an_frr_open_one_capability_per_parameter() {
    let asn = 4_200_000_001;
    let open = frr_open(asn, PEER_ID, 180);
    assert_eq!(open.my_as, AS_TRANS);
    assert!(open.optional_parameters.iter().all(|p| p.len() == 1));
    let (_, neg) = establish(config(PeerAsMatch::External), open, secs(0));
    assert_eq!(neg.peer_as, asn, "the dynamic AS is learned");
    assert_eq!((neg.hold_time, neg.keepalive), (90, 30));
    assert!(neg.four_octet_as && neg.route_refresh && neg.enhanced_route_refresh);
    assert!(neg.extended_message);
    assert_eq!(neg.max_message_len(), 65535);
    assert_eq!(neg.peer_graceful_restart, Some(frr_gr(true)));
    assert!(neg.local_graceful_restart && neg.graceful_notification);
}

#[test]
fn open_decoded_from_metallb_bytes_establishes() {
    #[rustfmt::skip]
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0, 49, 1,
        4, 0xfc, 0x01, 0, 90, 10, 0, 0, 1, 20,
        2, 18, 1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1, 65, 4, 0, 0, 0xfc, 0x01,
    ];
    let Message::Open(open) = decode(&bytes, MAX_MESSAGE_LEN).unwrap() else {
        panic!("not an OPEN")
    };
    let (_, neg) = establish(config(PeerAsMatch::Any), open, secs(0));
    assert_eq!(neg.peer_as, PEER_AS);
}

#[test]
fn peer_without_multiprotocol_capability_gets_ipv4_unicast_only() {
    let open = Open::new(PEER_AS, 90, PEER_ID, vec![]);
    let neg = negotiate(&config(PeerAsMatch::Any), &open).unwrap();
    assert_eq!(neg.families, vec![AfiSafi::IPV4_UNICAST]);
    assert!(!neg.four_octet_as);
    let mut v6_only = config(PeerAsMatch::Any);
    v6_only.families = vec![AfiSafi::IPV6_UNICAST];
    let neg = negotiate(&v6_only, &open).unwrap();
    assert!(neg.families.is_empty(), "no family in common");
}

#[test]
fn our_open_uses_as_trans_for_a_four_octet_local_as() {
    let mut cfg = config(PeerAsMatch::Any);
    cfg.local_as = 4_200_000_000;
    cfg.extended_message = false;
    cfg.graceful_restart = None;
    let open = cfg.open();
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.peer_as(), 4_200_000_000);
    assert!(!open.has_capability(6) && !open.has_capability(64));
    assert!(Message::Open(open).encode().is_ok());
}

// ---------------------------------------------------------------------------
// Hold time and keepalives.

#[test]
fn hold_time_is_the_smaller_proposal_and_keepalive_a_third_or_less() {
    // (ours, theirs, configured keepalive) -> (hold, keepalive)
    let cases = [
        (90, 0, None, (0, 0)),
        (0, 90, None, (0, 0)),
        (90, 3, None, (3, 1)),
        (90, 180, None, (90, 30)),
        (180, 90, None, (90, 30)),
        (90, 90, Some(10), (90, 10)),
        (90, 90, Some(60), (90, 30)),
        (2, 90, None, (3, 1)),
    ];
    for (ours, theirs, keepalive, want) in cases {
        let mut cfg = config(PeerAsMatch::Any);
        cfg.hold_time = ours;
        cfg.keepalive = keepalive;
        let neg = negotiate(&cfg, &metallb_open(PEER_AS, PEER_ID, theirs)).unwrap();
        assert_eq!(
            (neg.hold_time, neg.keepalive),
            want,
            "ours {ours} theirs {theirs}"
        );
    }
}

#[test]
fn hold_time_of_one_is_unacceptable() {
    for hold in [1, 2] {
        let (fsm, a) = answer_open(
            config(PeerAsMatch::Any),
            metallb_open(PEER_AS, PEER_ID, hold),
        );
        assert_eq!(only_notification(&a), (2, 6, vec![]));
        assert!(closes(&a));
        assert_eq!(fsm.state(), State::Active);
    }
}

#[test]
fn hold_time_zero_runs_no_timers_once_established() {
    let (mut fsm, neg) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 0),
        secs(0),
    );
    assert_eq!((neg.hold_time, neg.keepalive), (0, 0));
    assert_eq!(fsm.next_deadline(), None);
    assert!(fsm.poll(secs(100_000)).is_empty());
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn hold_time_zero_still_bounds_open_confirm() {
    let (mut fsm, _) = answer_open(config(PeerAsMatch::Any), metallb_open(PEER_AS, PEER_ID, 0));
    assert_eq!(fsm.state(), State::OpenConfirm);
    assert_eq!(fsm.next_deadline(), Some(secs(240)));
    let a = fsm.poll(secs(240));
    assert_eq!(only_notification(&a), (4, 0, vec![]));
}

#[test]
fn hold_timer_expiry_sends_hold_timer_expired_and_keeps_paths_of_a_gr_peer() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open(PEER_AS, PEER_ID, 180),
        secs(0),
    );
    // Only keepalives until the hold time (90 s) passes without a word.
    let before: Vec<_> = run_until(&mut fsm, secs(89));
    assert!(before
        .iter()
        .all(|(_, a)| *a == Action::Send(Message::Keepalive)));
    let a = fsm.poll(secs(90));
    assert_eq!(only_notification(&a), (4, 0, vec![]));
    assert!(closes(&a));
    let (reason, stale) = session_down(&a);
    assert_eq!(reason, DownReason::HoldTimerExpired);
    assert_eq!(
        stale,
        Some(StalePaths {
            restart_time: secs(120),
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
        })
    );
    assert_eq!(fsm.state(), State::Active);
    assert_eq!(fsm.uptime(secs(91)), None);
    assert_eq!(fsm.stats().dropped_count, 1);
    assert_eq!(
        fsm.stats()
            .last_error
            .as_ref()
            .map(|e| (e.at, e.reason.clone())),
        Some((secs(90), DownReason::HoldTimerExpired))
    );
}

#[test]
fn dead_metallb_speaker_is_found_by_our_hold_timer_and_its_paths_withdrawn() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a: Vec<_> = run_until(&mut fsm, secs(90))
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert_eq!(only_notification(&a), (4, 0, vec![]));
    assert_eq!(session_down(&a), (DownReason::HoldTimerExpired, None));
}

#[test]
fn keepalive_and_update_restart_the_hold_timer() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    run_until(&mut fsm, secs(80));
    assert!(fsm
        .handle(Event::Message(Message::Keepalive), secs(80))
        .is_empty());
    run_until(&mut fsm, secs(160));
    let a = fsm.handle(Event::Message(Message::Update(vec![0, 0, 0, 0])), secs(160));
    assert_eq!(a, vec![Action::Update(vec![0, 0, 0, 0])]);
    let a: Vec<_> = run_until(&mut fsm, secs(249))
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert!(sent_notifications(&a).is_empty());
    assert_eq!(fsm.state(), State::Established);
    let a = fsm.poll(secs(250));
    assert_eq!(only_notification(&a), (4, 0, vec![]));
}

#[test]
fn keepalives_go_out_every_third_of_the_hold_time() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open(PEER_AS, PEER_ID, 180),
        secs(0),
    );
    let mut times = Vec::new();
    for t in 1..=300u64 {
        if t % 60 == 0 {
            fsm.handle(Event::Message(Message::Keepalive), secs(t));
        }
        for a in fsm.poll(secs(t)) {
            assert_eq!(a, Action::Send(Message::Keepalive));
            times.push(t);
        }
    }
    assert_eq!(times, vec![30, 60, 90, 120, 150, 180, 210, 240, 270, 300]);
    assert_eq!(fsm.stats().sent.keepalive, 11);

    // Hold 3: one a second.
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 3),
        secs(0),
    );
    let a = run_until(&mut fsm, secs(2));
    assert_eq!(
        a,
        vec![
            (secs(1), Action::Send(Message::Keepalive)),
            (secs(2), Action::Send(Message::Keepalive))
        ]
    );
}

// ---------------------------------------------------------------------------
// OPEN checks.

#[test]
fn bad_peer_as_for_each_match_mode() {
    let cases = [
        (PeerAsMatch::Exact(PEER_AS), PEER_AS, true),
        (PeerAsMatch::Exact(PEER_AS), PEER_AS + 1, false),
        (PeerAsMatch::Internal, LOCAL_AS, true),
        (PeerAsMatch::Internal, PEER_AS, false),
        (PeerAsMatch::External, PEER_AS, true),
        (PeerAsMatch::External, LOCAL_AS, false),
        (PeerAsMatch::OneOf(vec![64600, PEER_AS]), PEER_AS, true),
        (PeerAsMatch::OneOf(vec![64600, 64601]), PEER_AS, false),
        (PeerAsMatch::Any, LOCAL_AS, true),
        (PeerAsMatch::Any, 4_200_000_001, true),
    ];
    for (mode, asn, ok) in cases {
        let (fsm, a) = answer_open(config(mode.clone()), metallb_open(asn, PEER_ID, 90));
        if ok {
            assert_eq!(fsm.state(), State::OpenConfirm, "{mode:?} {asn}");
            assert_eq!(fsm.negotiated().map(|n| n.peer_as), Some(asn));
        } else {
            assert_eq!(only_notification(&a), (2, 2, vec![]), "{mode:?} {asn}");
            assert!(closes(&a));
        }
    }
}

#[test]
fn four_octet_as_travels_in_the_capability_with_as_trans() {
    let cfg = config(PeerAsMatch::Any);
    let with = |my_as: u16, cap: Option<u32>| Open {
        my_as,
        hold_time: 90,
        bgp_id: PEER_ID,
        optional_parameters: vec![cap.map(Capability::FourOctetAs).into_iter().collect()],
        extended_parameters: false,
    };
    let peer_as = |o: Open| {
        negotiate(&cfg, &o)
            .map(|n| n.peer_as)
            .map_err(|n| n.subcode)
    };
    assert_eq!(
        peer_as(with(AS_TRANS, Some(4_200_000_001))),
        Ok(4_200_000_001)
    );
    assert_eq!(peer_as(with(65001, Some(65001))), Ok(65001));
    assert_eq!(peer_as(with(65001, None)), Ok(65001));
    // Bad Peer AS: My AS not AS_TRANS for a 4-octet AS, disagreeing 2-octet
    // ASes, AS_TRANS without the capability or as the capability's AS.
    assert_eq!(peer_as(with(65001, Some(4_200_000_001))), Err(2));
    assert_eq!(peer_as(with(65001, Some(65002))), Err(2));
    assert_eq!(peer_as(with(AS_TRANS, None)), Err(2));
    assert_eq!(peer_as(with(AS_TRANS, Some(u32::from(AS_TRANS)))), Err(2));
    assert_eq!(peer_as(with(65001, Some(0))), Err(2));
}

#[test]
fn bad_bgp_identifier() {
    let (_, a) = answer_open(config(PeerAsMatch::Any), metallb_open(PEER_AS, 0, 90));
    assert_eq!(only_notification(&a), (2, 3, vec![]));
    // iBGP with our own identifier.
    let (_, a) = answer_open(
        config(PeerAsMatch::Internal),
        metallb_open(LOCAL_AS, ROUTER_ID, 90),
    );
    assert_eq!(only_notification(&a), (2, 3, vec![]));
    // eBGP may share it (RFC 6286).
    let (fsm, _) = answer_open(
        config(PeerAsMatch::External),
        metallb_open(PEER_AS, ROUTER_ID, 90),
    );
    assert_eq!(fsm.state(), State::OpenConfirm);
}

#[test]
fn unsupported_version_is_answered_with_version_four() {
    let mut body = vec![3, 0xfc, 0x01, 0, 90, 10, 0, 0, 1, 0];
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&(19 + body.len() as u16).to_be_bytes());
    bytes.push(1);
    bytes.append(&mut body);
    let err = decode(&bytes, MAX_MESSAGE_LEN).unwrap_err();
    assert_eq!(err, WireError::UnsupportedVersion(3));

    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    fsm.handle(Event::ManualStart(StartMode::Passive), secs(0));
    fsm.handle(Event::TcpConnectionConfirmed, secs(0));
    let a = fsm.handle(Event::DecodeError(err), secs(1));
    assert_eq!(only_notification(&a), (2, 1, vec![0, 4]));
    assert!(closes(&a));
    assert_eq!(fsm.state(), State::Active);
}

#[test]
fn unexpected_messages_are_fsm_errors_with_the_rfc_6608_subcode() {
    let update = || Event::Message(Message::Update(vec![0, 0, 0, 0]));
    // OpenSent.
    for m in [
        update(),
        Event::Message(Message::Keepalive),
        Event::Message(Message::RouteRefresh(RouteRefresh::request(
            AfiSafi::IPV4_UNICAST,
        ))),
    ] {
        let mut fsm = Fsm::new(config(PeerAsMatch::Any));
        fsm.handle(Event::ManualStart(StartMode::Passive), secs(0));
        fsm.handle(Event::TcpConnectionConfirmed, secs(0));
        let a = fsm.handle(m, secs(1));
        assert_eq!(only_notification(&a), (5, 1, vec![]));
        assert!(!a.iter().any(|a| matches!(a, Action::Update(_))));
    }
    // OpenConfirm.
    let (mut fsm, _) = answer_open(config(PeerAsMatch::Any), metallb_open(PEER_AS, PEER_ID, 90));
    let a = fsm.handle(update(), secs(2));
    assert_eq!(only_notification(&a), (5, 2, vec![]));
    assert!(!a.iter().any(|a| matches!(a, Action::Update(_))));
    // Established: a second OPEN.
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a = fsm.handle(
        Event::Message(Message::Open(metallb_open(PEER_AS, PEER_ID, 90))),
        secs(1),
    );
    assert_eq!(only_notification(&a), (5, 3, vec![]));
    assert!(session_down(&a).1.is_none());
}

#[test]
fn messages_without_a_connection_are_ignored() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    for state_event in [None, Some(Event::ManualStart(StartMode::Passive))] {
        if let Some(e) = state_event {
            fsm.handle(e, secs(0));
        }
        for m in [
            Message::Keepalive,
            Message::Update(vec![0, 0, 0, 0]),
            Message::Notification(Notification::new(6, 2, vec![])),
            Message::Open(metallb_open(PEER_AS, PEER_ID, 90)),
        ] {
            assert!(fsm.handle(Event::Message(m), secs(1)).is_empty());
        }
    }
    assert_eq!(fsm.state(), State::Active);
    assert_eq!(fsm.stats().received.total(), 8);
}

// ---------------------------------------------------------------------------
// Sessions going down and graceful restart.

#[test]
fn metallb_speaker_closing_tcp_takes_the_session_down() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a = fsm.handle(Event::TcpConnectionFailed, secs(5));
    assert!(sent(&a).is_empty(), "nothing to say to a closed connection");
    assert!(closes(&a));
    assert_eq!(session_down(&a), (DownReason::ConnectionClosed, None));
    assert_eq!(fsm.state(), State::Active, "waits for the speaker again");
    assert_eq!(fsm.next_deadline(), None);
    assert_eq!(fsm.inbound_decision(), InboundDecision::Accept);
    // The speaker comes back.
    let a = fsm.handle(Event::TcpConnectionConfirmed, secs(6));
    assert!(matches!(sent(&a).as_slice(), [Message::Open(_)]));
}

#[test]
fn gr_peer_closing_tcp_keeps_its_paths_for_the_restart_time() {
    // The peer keeps forwarding state for IPv4 only; we negotiated both.
    let mut gr = frr_gr(false);
    gr.families.truncate(1);
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open_with(PEER_AS, PEER_ID, 90, Some(gr)),
        secs(0),
    );
    let a = fsm.handle(Event::TcpConnectionFailed, secs(5));
    assert_eq!(
        session_down(&a),
        (
            DownReason::ConnectionClosed,
            Some(StalePaths {
                restart_time: secs(120),
                families: vec![AfiSafi::IPV4_UNICAST]
            })
        )
    );
}

#[test]
fn no_stale_paths_without_our_gr_or_with_zero_restart_time() {
    let mut cfg = config(PeerAsMatch::Any);
    cfg.graceful_restart = None;
    let (mut fsm, _) = establish(cfg, frr_open(PEER_AS, PEER_ID, 90), secs(0));
    let a = fsm.handle(Event::TcpConnectionFailed, secs(5));
    assert_eq!(session_down(&a).1, None);

    let mut gr = frr_gr(true);
    gr.restart_time = 0;
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open_with(PEER_AS, PEER_ID, 90, Some(gr)),
        secs(0),
    );
    let a = fsm.handle(Event::TcpConnectionFailed, secs(5));
    assert_eq!(session_down(&a).1, None);
}

#[test]
fn notification_received_keeps_paths_only_with_the_n_bit_and_never_for_hard_reset() {
    let received = |peer_n: bool, our_n: bool, n: Notification| {
        let mut cfg = config(PeerAsMatch::Any);
        if let Some(gr) = cfg.graceful_restart.as_mut() {
            gr.notification = our_n;
        }
        let (mut fsm, _) = establish(
            cfg,
            frr_open_with(PEER_AS, PEER_ID, 90, Some(frr_gr(peer_n))),
            secs(0),
        );
        let a = fsm.handle(Event::Message(Message::Notification(n.clone())), secs(1));
        assert!(sent(&a).is_empty(), "no answer to a NOTIFICATION");
        assert!(closes(&a));
        let (reason, stale) = session_down(&a);
        assert_eq!(reason, DownReason::NotificationReceived(n));
        stale.is_some()
    };
    let reset = Notification::new(6, 4, vec![]);
    let hard = Notification::new(6, 9, vec![6, 2, 0]);
    let update_error = Notification::new(3, 1, vec![]);
    assert!(received(true, true, reset.clone()));
    assert!(received(true, true, update_error.clone()));
    assert!(!received(true, true, hard.clone()));
    assert!(!received(false, true, reset.clone()), "peer without N bit");
    assert!(!received(true, false, reset), "we without N bit");
    assert!(!received(false, false, update_error));
    assert!(!received(false, false, hard));
}

#[test]
fn notification_sent_keeps_paths_with_the_n_bit() {
    // An UPDATE error found by the RIB: sent as is.
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let n = Notification::new(3, 1, vec![]);
    let a = fsm.handle(Event::UpdateError(n.clone()), secs(1));
    assert_eq!(only_notification(&a), (3, 1, vec![]));
    let (reason, stale) = session_down(&a);
    assert_eq!(reason, DownReason::NotificationSent(n.clone()));
    assert!(stale.is_some());

    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open_with(PEER_AS, PEER_ID, 90, Some(frr_gr(false))),
        secs(0),
    );
    let a = fsm.handle(Event::UpdateError(n), secs(1));
    assert!(session_down(&a).1.is_none());
}

#[test]
fn bfd_down_sends_cease_bfd_down_and_withdraws_at_once() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a = fsm.handle(Event::BfdDown, secs(1));
    assert_eq!(only_notification(&a), (6, 10, vec![]));
    assert_eq!(session_down(&a), (DownReason::BfdDown, None));
}

#[test]
fn manual_stop_sends_administrative_shutdown_with_the_message() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a = fsm.handle(
        Event::ManualStop {
            shutdown_message: Some("maintenance".into()),
        },
        secs(1),
    );
    let ns = sent_notifications(&a);
    assert_eq!(ns.len(), 1);
    assert_eq!((ns[0].code, ns[0].subcode), (6, 2));
    assert_eq!(ns[0].shutdown_message(), Some(Ok("maintenance")));
    assert!(closes(&a));
    assert_eq!(session_down(&a), (DownReason::ManualStop, None));
    assert_eq!(fsm.state(), State::Idle);
    assert_eq!(fsm.next_deadline(), None);
    assert!(matches!(
        fsm.inbound_decision(),
        InboundDecision::Refuse(Notification {
            code: 6,
            subcode: 5,
            ..
        })
    ));
    assert!(fsm.poll(secs(10_000)).is_empty());

    // Without a message: no data.
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a = fsm.handle(
        Event::ManualStop {
            shutdown_message: None,
        },
        secs(1),
    );
    assert_eq!(only_notification(&a), (6, 2, vec![]));
}

#[test]
fn manual_stop_with_the_n_bit_is_a_hard_reset_and_drops_paths() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a = fsm.handle(
        Event::ManualStop {
            shutdown_message: Some("bye".into()),
        },
        secs(1),
    );
    assert_eq!(
        only_notification(&a),
        (6, 9, vec![6, 2, 3, b'b', b'y', b'e'])
    );
    assert_eq!(session_down(&a), (DownReason::ManualStop, None));
}

#[test]
fn manual_stop_while_dialling_cancels_the_dial() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    assert_eq!(
        fsm.handle(Event::ManualStart(StartMode::Active), secs(0)),
        vec![Action::Connect]
    );
    let a = fsm.handle(
        Event::ManualStop {
            shutdown_message: None,
        },
        secs(1),
    );
    assert_eq!(a, vec![Action::CancelConnect]);
    assert_eq!(fsm.state(), State::Idle);
    assert_eq!(fsm.next_deadline(), None);
}

#[test]
fn refused_connection_in_idle_gets_connection_rejected() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    let a = fsm.handle(Event::TcpConnectionConfirmed, secs(0));
    assert_eq!(
        a,
        vec![
            Action::Send(Message::Notification(Notification::new(6, 5, vec![]))),
            Action::CloseConnection
        ]
    );
    assert_eq!(fsm.state(), State::Idle);
}

// ---------------------------------------------------------------------------
// Max-prefix.

#[test]
fn max_prefix_sends_cease_and_holds_down_refusing_the_peer() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a = fsm.handle(
        Event::MaxPrefixExceeded {
            family: AfiSafi::IPV4_UNICAST,
            limit: 100,
            hold_down: Some(secs(60)),
        },
        secs(10),
    );
    assert_eq!(only_notification(&a), (6, 1, vec![0, 1, 1, 0, 0, 0, 100]));
    assert!(closes(&a));
    assert_eq!(
        session_down(&a),
        (
            DownReason::MaxPrefix {
                family: AfiSafi::IPV4_UNICAST,
                limit: 100
            },
            None
        )
    );
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm.is_held_down());
    assert_eq!(fsm.next_deadline(), Some(secs(70)));
    assert_eq!(
        fsm.inbound_decision(),
        InboundDecision::Refuse(Notification::new(6, 5, vec![]))
    );
    // The speaker redials during the hold-down: refused.
    let a = fsm.handle(Event::TcpConnectionConfirmed, secs(20));
    assert_eq!(only_notification(&a), (6, 5, vec![]));
    assert!(closes(&a));
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm.poll(secs(69)).is_empty());
    // Hold-down over: a passive peer waits for the speaker again.
    assert!(fsm.poll(secs(70)).is_empty());
    assert_eq!(fsm.state(), State::Active);
    assert!(!fsm.is_held_down());
    assert_eq!(fsm.inbound_decision(), InboundDecision::Accept);
}

#[test]
fn max_prefix_with_the_n_bit_is_a_hard_reset() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    let a = fsm.handle(
        Event::MaxPrefixExceeded {
            family: AfiSafi::IPV6_UNICAST,
            limit: 1000,
            hold_down: None,
        },
        secs(10),
    );
    assert_eq!(
        only_notification(&a),
        (6, 9, vec![6, 1, 0, 2, 1, 0, 0, 0x03, 0xe8])
    );
    assert_eq!(session_down(&a).1, None);
    // Held down until started again.
    assert_eq!(fsm.next_deadline(), None);
    assert!(fsm.poll(secs(1_000_000)).is_empty());
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm
        .handle(Event::ManualStart(StartMode::Passive), secs(2_000_000))
        .is_empty());
    assert_eq!(fsm.state(), State::Active);
    assert!(!fsm.is_held_down());
}

#[test]
fn max_prefix_hold_down_of_an_active_peer_ends_with_a_dial() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    fsm.handle(Event::ManualStart(StartMode::Active), secs(0));
    fsm.handle(Event::TcpConnected, secs(0));
    fsm.handle(
        Event::Message(Message::Open(metallb_open(PEER_AS, PEER_ID, 90))),
        secs(0),
    );
    fsm.handle(Event::Message(Message::Keepalive), secs(0));
    fsm.handle(
        Event::MaxPrefixExceeded {
            family: AfiSafi::IPV4_UNICAST,
            limit: 1,
            hold_down: Some(secs(30)),
        },
        secs(1),
    );
    assert_eq!(fsm.next_deadline(), Some(secs(31)));
    assert_eq!(fsm.poll(secs(31)), vec![Action::Connect]);
    assert_eq!(fsm.state(), State::Connect);
}

// ---------------------------------------------------------------------------
// Connect retry.

#[test]
fn connect_retry_backs_off_with_jitter_and_resets_once_established() {
    let mut cfg = config(PeerAsMatch::Any);
    cfg.connect_retry = RetryBackoff {
        base: secs(2),
        max: secs(30),
    };
    cfg.jitter_seed = 7;
    let mut fsm = Fsm::new(cfg.clone());
    let mut now = secs(0);
    assert_eq!(
        fsm.handle(Event::ManualStart(StartMode::Active), now),
        vec![Action::Connect]
    );
    assert_eq!(fsm.state(), State::Connect);
    let mut waits = Vec::new();
    for _ in 0..7 {
        // The dial is refused at once; wait for the retry timer.
        assert!(fsm.handle(Event::TcpConnectionFailed, now).is_empty());
        assert_eq!(fsm.state(), State::Active);
        assert_eq!(fsm.inbound_decision(), InboundDecision::Accept);
        let at = fsm.next_deadline().unwrap();
        waits.push(at - now);
        now = at;
        assert_eq!(fsm.poll(now), vec![Action::Connect]);
        assert_eq!(fsm.state(), State::Connect);
    }
    for (n, w) in waits.iter().enumerate() {
        let nominal = secs(2).saturating_mul(1 << n).min(secs(30));
        assert!(
            *w >= nominal.mul_f64(0.75) && *w <= nominal,
            "wait {n} is {w:?}, nominal {nominal:?}"
        );
    }
    assert!(waits[3] > waits[0] * 4, "grows: {waits:?}");
    assert_eq!(fsm.stats().connect_attempts, 8);

    // Same seed, same waits; another seed, other waits.
    let replay = |seed| {
        let mut c = cfg.clone();
        c.jitter_seed = seed;
        let mut f = Fsm::new(c);
        f.handle(Event::ManualStart(StartMode::Active), secs(0));
        f.next_deadline()
    };
    assert_eq!(replay(7), Some(waits[0]));
    assert_ne!(replay(8), replay(7));

    // The dial finally works; once Established a drop retries quickly.
    fsm.handle(Event::TcpConnected, now);
    assert_eq!(fsm.connection(), Some(Direction::Outbound));
    fsm.handle(
        Event::Message(Message::Open(metallb_open(PEER_AS, PEER_ID, 90))),
        now,
    );
    fsm.handle(Event::Message(Message::Keepalive), now);
    assert_eq!(fsm.state(), State::Established);
    let a = fsm.handle(Event::TcpConnectionFailed, now);
    assert_eq!(session_down(&a).0, DownReason::ConnectionClosed);
    assert_eq!(fsm.state(), State::Active);
    let wait = fsm.next_deadline().unwrap() - now;
    assert!(wait >= secs(2).mul_f64(0.75) && wait <= secs(2), "{wait:?}");
}

#[test]
fn a_hanging_dial_is_abandoned_and_retried() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    fsm.handle(Event::ManualStart(StartMode::Active), secs(0));
    let at = fsm.next_deadline().unwrap();
    assert_eq!(fsm.poll(at), vec![Action::CancelConnect, Action::Connect]);
    assert_eq!(fsm.state(), State::Connect);
}

#[test]
fn inbound_connection_while_dialling_is_taken_and_the_dial_abandoned() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    fsm.handle(Event::ManualStart(StartMode::Active), secs(0));
    assert_eq!(fsm.inbound_decision(), InboundDecision::Accept);
    let a = fsm.handle(Event::TcpConnectionConfirmed, secs(1));
    assert_eq!(a.first(), Some(&Action::CancelConnect));
    assert!(matches!(sent(&a).as_slice(), [Message::Open(_)]));
    assert_eq!(fsm.connection(), Some(Direction::Inbound));
    assert_eq!(fsm.next_deadline(), Some(secs(241)), "retry timer stopped");
}

#[test]
fn passive_peer_never_dials() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    fsm.handle(Event::ManualStart(StartMode::Passive), secs(0));
    for t in 1..50 {
        let mut a = fsm.handle(Event::TcpConnectionConfirmed, secs(t * 10));
        a.extend(fsm.handle(Event::TcpConnectionFailed, secs(t * 10 + 1)));
        a.extend(fsm.poll(secs(t * 10 + 5)));
        assert!(!a.contains(&Action::Connect));
        assert_eq!(fsm.state(), State::Active);
    }
    assert_eq!(fsm.stats().connect_attempts, 0);
}

// ---------------------------------------------------------------------------
// Collisions.

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    let lower = 0x0a00_0001;
    let higher = 0x0a00_0002;
    let c = resolve_collision(higher, LOCAL_AS, lower, PEER_AS);
    assert_eq!((c.keep, c.close), (Direction::Outbound, Direction::Inbound));
    assert_eq!(c.notification, Notification::new(6, 7, vec![]));
    let c = resolve_collision(lower, LOCAL_AS, higher, PEER_AS);
    assert_eq!((c.keep, c.close), (Direction::Inbound, Direction::Outbound));
    // Identifiers compare as unsigned integers.
    let c = resolve_collision(0x8000_0000, LOCAL_AS, 0x7fff_ffff, PEER_AS);
    assert_eq!(c.keep, Direction::Outbound);
    // Equal identifiers (eBGP, RFC 6286): the higher AS keeps its own.
    let c = resolve_collision(lower, 65002, lower, 65001);
    assert_eq!(c.keep, Direction::Outbound);
    let c = resolve_collision(lower, 65001, lower, 65002);
    assert_eq!(c.keep, Direction::Inbound);
}

#[test]
fn collision_window_and_dump() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    fsm.handle(Event::ManualStart(StartMode::Active), secs(0));
    fsm.handle(Event::TcpConnected, secs(0));
    assert_eq!(fsm.inbound_decision(), InboundDecision::Collision);
    // A second connection fed by mistake does not disturb this one.
    assert!(fsm
        .handle(Event::TcpConnectionConfirmed, secs(0))
        .is_empty());
    assert_eq!(fsm.connection(), Some(Direction::Outbound));
    fsm.handle(
        Event::Message(Message::Open(frr_open(PEER_AS, PEER_ID, 90))),
        secs(1),
    );
    assert_eq!(fsm.inbound_decision(), InboundDecision::Collision);
    // Our id 10.0.0.254 beats 10.0.0.1: keep ours, dump the inbound one.
    let peer_id = fsm.negotiated().unwrap().peer_id;
    let c = resolve_collision(ROUTER_ID, LOCAL_AS, peer_id, PEER_AS);
    assert_eq!(c.keep, fsm.connection().unwrap());

    // The other FSM, on the inbound connection, loses.
    let mut other = Fsm::new(config(PeerAsMatch::Any));
    other.handle(Event::ManualStart(StartMode::Passive), secs(1));
    other.handle(Event::TcpConnectionConfirmed, secs(1));
    assert_eq!(other.connection(), Some(c.close));
    let a = other.handle(Event::CollisionDump, secs(2));
    assert_eq!(only_notification(&a), (6, 7, vec![]));
    assert!(closes(&a));
    assert!(!a.iter().any(|a| matches!(a, Action::SessionDown { .. })));
    assert_eq!(
        other.stats().last_error.as_ref().map(|e| e.reason.clone()),
        Some(DownReason::CollisionResolution)
    );
}

#[test]
fn second_fsm_winning_a_collision_hands_its_connection_over() {
    // Our identifier 10.0.0.0 is lower than the peer's 10.0.0.1.
    let mut cfg = config(PeerAsMatch::Exact(PEER_AS));
    cfg.router_id = 0x0a00_0000;
    let mut peer = Fsm::new(cfg.clone());
    peer.handle(Event::ManualStart(StartMode::Active), secs(0));
    peer.handle(Event::TcpConnected, secs(0));
    assert_eq!(peer.inbound_decision(), InboundDecision::Collision);
    let mut second = Fsm::new(cfg.clone());
    second.handle(Event::ManualStart(StartMode::Passive), secs(1));
    second.handle(Event::TcpConnectionConfirmed, secs(1));
    second.handle(
        Event::Message(Message::Open(frr_open(PEER_AS, PEER_ID, 90))),
        secs(2),
    );
    let c = resolve_collision(cfg.router_id, LOCAL_AS, PEER_ID, PEER_AS);
    assert_eq!(c.keep, Direction::Inbound);
    assert_eq!(peer.connection(), Some(c.close));
    let a = peer.handle(Event::CollisionDump, secs(2));
    assert_eq!(only_notification(&a), (6, 7, vec![]));
    assert_eq!(peer.state(), State::Active);

    assert!(peer.take_connection_from(second, secs(2)));
    assert_eq!(peer.state(), State::OpenConfirm);
    assert_eq!(peer.connection(), Some(Direction::Inbound));
    assert_eq!(peer.mode(), Some(StartMode::Active));
    assert_eq!(
        peer.next_deadline(),
        Some(secs(2 + 30)),
        "keepalive, no dial"
    );
    let a = peer.handle(Event::Message(Message::Keepalive), secs(3));
    assert!(matches!(a.as_slice(), [Action::SessionEstablished(n)] if n.peer_id == PEER_ID));
    assert_eq!(peer.stats().sent.open, 2);
    assert_eq!(peer.stats().sent.notification, 1);

    // Nothing to take over from an FSM without a connection.
    let idle = Fsm::new(cfg);
    let mut fresh = Fsm::new(config(PeerAsMatch::Any));
    fresh.handle(Event::ManualStart(StartMode::Passive), secs(0));
    assert!(!fresh.take_connection_from(idle, secs(0)));
}

#[test]
fn new_connection_from_an_established_gr_peer_means_it_restarted() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    assert_eq!(fsm.inbound_decision(), InboundDecision::PeerRestarted);
    let a = fsm.handle(Event::TcpConnectionFailed, secs(5));
    assert!(session_down(&a).1.is_some(), "stale paths kept");
    let a = fsm.handle(Event::TcpConnectionConfirmed, secs(5));
    assert!(matches!(sent(&a).as_slice(), [Message::Open(_)]));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn failed_dial_is_the_last_error() {
    let mut fsm = Fsm::new(config(PeerAsMatch::Any));
    fsm.handle(Event::ManualStart(StartMode::Active), secs(0));
    fsm.handle(Event::TcpConnectionFailed, secs(1));
    let e = fsm.stats().last_error.clone().unwrap();
    assert_eq!((e.at, e.reason), (secs(1), DownReason::DialFailed));
}

// ---------------------------------------------------------------------------
// Route refresh and counters.

#[test]
fn route_refresh_reaches_the_rib_for_negotiated_families() {
    let rr =
        |family, subtype| Event::Message(Message::RouteRefresh(RouteRefresh { family, subtype }));
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        frr_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    for subtype in [
        RouteRefreshSubtype::Request,
        RouteRefreshSubtype::Begin,
        RouteRefreshSubtype::End,
    ] {
        assert_eq!(
            fsm.handle(rr(AfiSafi::IPV6_UNICAST, subtype), secs(1)),
            vec![Action::RouteRefresh(RouteRefresh {
                family: AfiSafi::IPV6_UNICAST,
                subtype
            })]
        );
    }
    let vpn = AfiSafi::new(control::bgp::wire::Afi(1), control::bgp::wire::Safi(128));
    assert!(fsm
        .handle(rr(vpn, RouteRefreshSubtype::Request), secs(1))
        .is_empty());
    assert!(fsm
        .handle(
            rr(AfiSafi::IPV4_UNICAST, RouteRefreshSubtype::Other(9)),
            secs(1)
        )
        .is_empty());

    // Without Enhanced Route Refresh, BoRR/EoRR are ignored.
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    assert!(fsm
        .handle(
            rr(AfiSafi::IPV4_UNICAST, RouteRefreshSubtype::Begin),
            secs(1)
        )
        .is_empty());
    assert_eq!(fsm.state(), State::Established);
    assert_eq!(fsm.stats().received.route_refresh, 1);
}

#[test]
fn counters_follow_a_session_through_a_flap() {
    let (mut fsm, _) = establish(
        config(PeerAsMatch::Any),
        metallb_open(PEER_AS, PEER_ID, 90),
        secs(0),
    );
    for t in 1..=5 {
        fsm.handle(Event::Message(Message::Update(vec![0, 0, 0, 0])), secs(t));
    }
    fsm.handle(Event::TcpConnectionFailed, secs(10));
    fsm.handle(Event::TcpConnectionConfirmed, secs(11));
    fsm.handle(
        Event::Message(Message::Open(metallb_open(PEER_AS, PEER_ID, 90))),
        secs(11),
    );
    fsm.handle(Event::Message(Message::Keepalive), secs(12));
    let s = fsm.stats();
    assert_eq!(s.received.update, 5);
    assert_eq!(s.received.total(), 5 + 2 + 2);
    assert_eq!(s.sent.total(), 4);
    assert_eq!((s.established_count, s.dropped_count), (2, 1));
    assert_eq!(s.established_since, Some(secs(12)));
    assert_eq!(
        s.last_error.as_ref().map(|e| e.to_owned().at),
        Some(secs(10))
    );
    assert_eq!(fsm.uptime(secs(20)), Some(secs(8)));
}

#[test]
fn down_reasons_read_as_sentences() {
    assert_eq!(
        DownReason::NotificationReceived(Notification::administrative_shutdown("upgrade"))
            .to_string(),
        "received Cease (6) / Administrative Shutdown (2): \"upgrade\""
    );
    assert_eq!(
        DownReason::HoldTimerExpired.to_string(),
        "hold timer expired"
    );
}

// ---------------------------------------------------------------------------
// Random event sequences.

fn any_notification() -> impl Strategy<Value = Notification> {
    (1u8..8, 0u8..12, prop::collection::vec(any::<u8>(), 0..4))
        .prop_map(|(c, s, d)| Notification::new(c, s, d))
}

fn any_open() -> impl Strategy<Value = Open> {
    prop_oneof![
        (any::<bool>(), 0u16..200).prop_map(|(frr, hold)| if frr {
            frr_open(PEER_AS, PEER_ID, hold)
        } else {
            metallb_open(PEER_AS, PEER_ID, hold)
        }),
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(my_as, hold, id, cap)| Open {
                my_as,
                hold_time: hold,
                bgp_id: id,
                optional_parameters: vec![vec![Capability::FourOctetAs(cap)]],
                extended_parameters: false,
            }
        ),
    ]
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        4 => any_open().prop_map(Message::Open),
        6 => Just(Message::Keepalive),
        2 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Message::Update),
        1 => any_notification().prop_map(Message::Notification),
        1 => (0u16..3, 0u8..4, 0u8..3).prop_map(|(afi, st, safi)| {
            Message::RouteRefresh(RouteRefresh {
                family: AfiSafi::new(control::bgp::wire::Afi(afi), control::bgp::wire::Safi(safi)),
                subtype: st.into(),
            })
        }),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Event(Event),
    Advance(u64),
}

fn any_step(passive_only: bool) -> impl Strategy<Value = Step> {
    let start = if passive_only {
        Just(StartMode::Passive).boxed()
    } else {
        prop_oneof![Just(StartMode::Active), Just(StartMode::Passive)].boxed()
    };
    prop_oneof![
        2 => start.prop_map(|m| Step::Event(Event::ManualStart(m))),
        1 => prop::option::of("[a-z]{0,8}").prop_map(|m| Step::Event(Event::ManualStop { shutdown_message: m })),
        2 => Just(Step::Event(Event::TcpConnected)),
        3 => Just(Step::Event(Event::TcpConnectionConfirmed)),
        2 => Just(Step::Event(Event::TcpConnectionFailed)),
        10 => any_message().prop_map(|m| Step::Event(Event::Message(m))),
        1 => Just(Step::Event(Event::DecodeError(WireError::BadMessageType(9)))),
        1 => any_notification().prop_map(|n| Step::Event(Event::UpdateError(n))),
        1 => Just(Step::Event(Event::BfdDown)),
        1 => prop::option::of(0u64..100).prop_map(|h| Step::Event(Event::MaxPrefixExceeded {
            family: AfiSafi::IPV4_UNICAST, limit: 10, hold_down: h.map(Duration::from_secs),
        })),
        1 => Just(Step::Event(Event::CollisionDump)),
        6 => (0u64..200).prop_map(Step::Advance),
    ]
}

/// The first `len` steps of an establishment, so that random steps also
/// start from OpenSent, OpenConfirm and Established.
fn happy_prefix(len: usize, frr: bool, passive_only: bool) -> Vec<Step> {
    let mode = if passive_only || frr {
        StartMode::Passive
    } else {
        StartMode::Active
    };
    let open = if frr {
        frr_open(PEER_AS, PEER_ID, 9)
    } else {
        metallb_open(PEER_AS, PEER_ID, 9)
    };
    [
        Event::ManualStart(mode),
        Event::TcpConnectionConfirmed,
        Event::Message(Message::Open(open)),
        Event::Message(Message::Keepalive),
    ]
    .into_iter()
    .take(len)
    .map(Step::Event)
    .collect()
}

/// Run the steps, checking invariants after each.
fn check_sequence(steps: Vec<Step>, passive_only: bool) -> Result<(), TestCaseError> {
    let mut cfg = config(PeerAsMatch::Any);
    cfg.hold_time = 9;
    let mut fsm = Fsm::new(cfg);
    let mut now = Duration::ZERO;
    // Per connection: our OPEN sent, the peer's OPEN accepted.
    let mut open_sent = false;
    let mut open_accepted = false;
    for step in steps {
        let before = fsm.state();
        let (event, actions) = match step {
            Step::Advance(s) => {
                now += Duration::from_secs(s);
                (None, fsm.poll(now))
            }
            Step::Event(e) => (Some(e.clone()), fsm.handle(e, now)),
        };
        let after = fsm.state();

        if actions
            .iter()
            .any(|a| matches!(a, Action::Send(Message::Open(_))))
        {
            open_sent = true;
            open_accepted = false;
        }
        if before == State::OpenSent && after == State::OpenConfirm {
            prop_assert!(matches!(event, Some(Event::Message(Message::Open(_)))));
            open_accepted = true;
        }
        if after == State::Established && before != State::Established {
            prop_assert_eq!(before, State::OpenConfirm);
            prop_assert!(
                open_sent && open_accepted,
                "Established without the OPEN exchange"
            );
            prop_assert_eq!(event.clone(), Some(Event::Message(Message::Keepalive)));
        }
        let ups = actions
            .iter()
            .filter(|a| matches!(a, Action::SessionEstablished(_)))
            .count();
        let downs = actions
            .iter()
            .filter(|a| matches!(a, Action::SessionDown { .. }))
            .count();
        prop_assert_eq!(
            ups,
            usize::from(after == State::Established && before != State::Established)
        );
        prop_assert_eq!(
            downs,
            usize::from(before == State::Established && after != State::Established)
        );
        if actions.contains(&Action::CloseConnection) && !after.has_connection() {
            open_sent = false;
            open_accepted = false;
        }
        // Messages and closes go to a connection: the current one, a new
        // one (our OPEN), or one refused in Idle.
        let connecting = matches!(
            event,
            Some(Event::TcpConnected | Event::TcpConnectionConfirmed)
        );
        if !before.has_connection() {
            for a in &actions {
                match a {
                    Action::Send(Message::Open(_)) => prop_assert!(connecting),
                    Action::Send(_) | Action::CloseConnection => {
                        prop_assert!(
                            connecting && before == State::Idle,
                            "{:?} in {:?}",
                            a,
                            before
                        )
                    }
                    _ => {}
                }
            }
        }
        // Everything we send survives the codec.
        for a in &actions {
            if let Action::Send(m) = a {
                let bytes = m.encode();
                prop_assert!(bytes.is_ok(), "{:?} does not encode", m);
                let back = decode(&bytes.unwrap_or_default(), MAX_EXTENDED_MESSAGE_LEN);
                prop_assert_eq!(back.as_ref(), Ok(m));
            }
        }
        if actions.contains(&Action::Connect) {
            prop_assert_eq!(fsm.mode(), Some(StartMode::Active));
            prop_assert_eq!(after, State::Connect);
        }
        if passive_only {
            prop_assert!(!actions.contains(&Action::Connect));
            prop_assert!(fsm.stats().connect_attempts == 0);
        }
        for a in &actions {
            if let Action::Update(_) = a {
                prop_assert_eq!(after, State::Established);
            }
        }
        prop_assert_eq!(
            fsm.negotiated().is_some(),
            matches!(after, State::OpenConfirm | State::Established)
        );
        prop_assert_eq!(fsm.uptime(now).is_some(), after == State::Established);
        prop_assert_eq!(fsm.connection().is_some(), after.has_connection());
        if matches!(after, State::OpenSent | State::OpenConfirm | State::Connect) {
            prop_assert!(fsm.next_deadline().is_some(), "{:?} without a timer", after);
        }
        if after == State::Established && fsm.negotiated().is_some_and(|n| n.hold_time > 0) {
            prop_assert!(fsm.next_deadline().is_some());
        }
        if let Some(d) = fsm.next_deadline() {
            // Nothing left due after a poll, unless the poll hit its cap.
            if event.is_none() && actions.len() < 16 {
                prop_assert!(d > now, "deadline {:?} not after {:?}", d, now);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_event_sequences_keep_the_invariants(
        prefix in 0usize..=4,
        frr in any::<bool>(),
        steps in prop::collection::vec(any_step(false), 0..60),
    ) {
        let mut all = happy_prefix(prefix, frr, false);
        all.extend(steps);
        check_sequence(all, false)?;
    }

    #[test]
    fn passive_peers_never_dial(
        prefix in 0usize..=4,
        frr in any::<bool>(),
        steps in prop::collection::vec(any_step(true), 0..60),
    ) {
        let mut all = happy_prefix(prefix, frr, true);
        all.extend(steps);
        check_sequence(all, true)?;
    }
}
