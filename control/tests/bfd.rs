//! BFD: the Control packet codec against hand-built vectors and every
//! reception check, property tests, the session state machine on a virtual
//! clock, and two runners on loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use control::bfd::packet::{auth_type, MANDATORY_LEN};
use control::bfd::runner::SINGLE_HOP_TTL;
use control::bfd::{
    Action, Authentication, BfdRunner, ControlPacket, Diagnostic, PacketError, PeerEvent, Profile,
    ProfileError, RunnerConfig, RunnerError, Session, State, StateChange,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Codec: known vectors.

/// What FRR's bfdd sends once Up with its defaults (300 ms x 3, echo receive
/// interval 50 ms): version 1, no diagnostic, state Up, no flags.
#[rustfmt::skip]
const FRR_UP: [u8; 24] = [
    0x20,                   // version 1, diag 0
    0xc0,                   // state 3 (Up), P F C A D M clear
    0x03,                   // detect mult 3
    0x18,                   // length 24
    0x6b, 0x8b, 0x45, 0x67, // my discriminator
    0x00, 0x00, 0x00, 0x2a, // your discriminator 42
    0x00, 0x04, 0x93, 0xe0, // desired min TX 300000 us
    0x00, 0x04, 0x93, 0xe0, // required min RX 300000 us
    0x00, 0x00, 0xc3, 0x50, // required min echo RX 50000 us
];

fn frr_up() -> ControlPacket {
    ControlPacket {
        diag: Diagnostic::NoDiagnostic,
        state: State::Up,
        poll: false,
        fin: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discr: 0x6b8b_4567,
        your_discr: 42,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 50_000,
        auth: None,
    }
}

/// `FRR_UP` with one octet changed.
fn frr_with(index: usize, value: u8) -> Vec<u8> {
    let mut v = FRR_UP.to_vec();
    v[index] = value;
    v
}

#[test]
fn frr_up_packet_decodes_field_by_field() {
    let pkt = ControlPacket::decode(&FRR_UP).expect("valid");
    assert_eq!(pkt, frr_up());
    assert_eq!(pkt.desired_min_tx(), Duration::from_millis(300));
    assert_eq!(pkt.required_min_rx(), Duration::from_millis(300));
}

#[test]
fn frr_up_packet_encodes_to_the_same_octets() {
    assert_eq!(frr_up().encode().expect("encodes"), FRR_UP);
}

#[test]
fn flags_diag_and_state_sit_in_their_bits() {
    // Diag 7, state Down, P and C and D set.
    let mut pkt = frr_up();
    pkt.diag = Diagnostic::AdministrativelyDown;
    pkt.state = State::Down;
    pkt.poll = true;
    pkt.control_plane_independent = true;
    pkt.demand = true;
    let bytes = pkt.encode().expect("encodes");
    assert_eq!(bytes[0], 0x27);
    assert_eq!(bytes[1], 0x40 | 0x20 | 0x08 | 0x02);
    assert_eq!(ControlPacket::decode(&bytes), Ok(pkt));
    // Final alone.
    let bytes = frr_with(1, 0xc0 | 0x10);
    assert!(ControlPacket::decode(&bytes).expect("valid").fin);
}

#[test]
fn octets_after_length_are_ignored() {
    let mut v = FRR_UP.to_vec();
    v.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(ControlPacket::decode(&v), Ok(frr_up()));
}

#[test]
fn every_state_and_diagnostic_code_round_trips() {
    for code in 0..4 {
        assert_eq!(State::from_code(code).code(), code);
    }
    for code in 0..32 {
        assert_eq!(Diagnostic::from_code(code).code(), code);
    }
    assert_eq!(
        Diagnostic::from_code(1),
        Diagnostic::ControlDetectionTimeExpired
    );
    assert_eq!(
        Diagnostic::from_code(3),
        Diagnostic::NeighborSignaledSessionDown
    );
    assert_eq!(Diagnostic::from_code(7), Diagnostic::AdministrativelyDown);
}

// ---------------------------------------------------------------------------
// Codec: the reception checks of RFC 5880 6.8.6, one by one.

fn refused(bytes: &[u8]) -> PacketError {
    ControlPacket::decode(bytes).expect_err("must be refused")
}

#[test]
fn empty_and_short_payloads_are_truncated() {
    assert_eq!(refused(&[]), PacketError::Truncated(0));
    assert_eq!(refused(&[0x20, 0xc0, 3]), PacketError::Truncated(3));
}

#[test]
fn version_other_than_one_is_refused() {
    assert_eq!(refused(&frr_with(0, 0x40)), PacketError::BadVersion(2));
    assert_eq!(refused(&frr_with(0, 0x00)), PacketError::BadVersion(0));
    // The version is checked first, even on a short payload.
    assert_eq!(refused(&[0xe0]), PacketError::BadVersion(7));
}

#[test]
fn length_below_24_is_refused() {
    assert_eq!(
        refused(&frr_with(3, 23)),
        PacketError::LengthTooShort {
            length: 23,
            minimum: 24
        }
    );
}

#[test]
fn length_below_26_with_the_a_bit_is_refused() {
    assert_eq!(
        refused(&frr_with(1, 0xc0 | 0x04)),
        PacketError::LengthTooShort {
            length: 24,
            minimum: 26
        }
    );
}

#[test]
fn length_beyond_the_payload_is_refused() {
    assert_eq!(
        refused(&frr_with(3, 25)),
        PacketError::LengthExceedsPayload {
            length: 25,
            payload: 24
        }
    );
    assert_eq!(
        refused(&FRR_UP[..20]),
        PacketError::LengthExceedsPayload {
            length: 24,
            payload: 20
        }
    );
}

#[test]
fn zero_detect_mult_is_refused() {
    assert_eq!(refused(&frr_with(2, 0)), PacketError::ZeroDetectMult);
}

#[test]
fn multipoint_bit_is_refused() {
    assert_eq!(refused(&frr_with(1, 0xc1)), PacketError::MultipointSet);
}

#[test]
fn zero_my_discriminator_is_refused() {
    let mut v = FRR_UP.to_vec();
    v[4..8].copy_from_slice(&[0; 4]);
    assert_eq!(refused(&v), PacketError::ZeroMyDiscriminator);
}

#[test]
fn zero_your_discriminator_is_refused_in_init_and_up_only() {
    let mut v = FRR_UP.to_vec();
    v[8..12].copy_from_slice(&[0; 4]);
    assert_eq!(refused(&v), PacketError::ZeroYourDiscriminator(State::Up));
    v[1] = 0x80;
    assert_eq!(refused(&v), PacketError::ZeroYourDiscriminator(State::Init));
    v[1] = 0x40;
    assert_eq!(ControlPacket::decode(&v).expect("Down").state, State::Down);
    v[1] = 0x00;
    assert_eq!(
        ControlPacket::decode(&v).expect("AdminDown").state,
        State::AdminDown
    );
}

#[test]
fn poll_and_final_together_are_refused() {
    assert_eq!(
        refused(&frr_with(1, 0xc0 | 0x30)),
        PacketError::PollAndFinal
    );
}

// ---------------------------------------------------------------------------
// Codec: authentication is parsed, shown, and refused.

fn with_auth(auth: Authentication) -> ControlPacket {
    ControlPacket {
        auth: Some(auth),
        ..frr_up()
    }
}

#[test]
fn simple_password_is_parsed_but_refused_as_unsupported() {
    let pkt = with_auth(Authentication::SimplePassword {
        key_id: 5,
        password: b"metallb".to_vec(),
    });
    let bytes = pkt.encode().expect("encodes");
    assert_eq!(bytes.len(), MANDATORY_LEN + 3 + 7);
    assert_eq!(bytes[3] as usize, bytes.len());
    assert_eq!(bytes[1] & 0x04, 0x04, "A bit");
    assert_eq!(&bytes[24..27], &[auth_type::SIMPLE_PASSWORD, 10, 5]);
    assert_eq!(ControlPacket::parse(&bytes), Ok(pkt));
    assert_eq!(
        refused(&bytes),
        PacketError::AuthenticationUnsupported {
            auth_type: 1,
            key_id: 5
        }
    );
}

#[test]
fn keyed_md5_and_sha1_sections_are_parsed() {
    for auth in [
        Authentication::KeyedMd5 {
            meticulous: true,
            key_id: 1,
            sequence: 0x0102_0304,
            digest: [0xaa; 16],
        },
        Authentication::KeyedSha1 {
            meticulous: false,
            key_id: 2,
            sequence: 7,
            hash: [0x55; 20],
        },
    ] {
        let pkt = with_auth(auth.clone());
        let bytes = pkt.encode().expect("encodes");
        assert_eq!(bytes.len(), MANDATORY_LEN + auth.wire_len());
        assert_eq!(ControlPacket::parse(&bytes), Ok(pkt));
        assert!(matches!(
            refused(&bytes),
            PacketError::AuthenticationUnsupported { auth_type, .. } if auth_type == auth.auth_type()
        ));
    }
}

/// FRR_UP with the A bit and this authentication section.
fn raw_auth(section: &[u8]) -> Vec<u8> {
    let mut v = FRR_UP.to_vec();
    v[1] |= 0x04;
    v.extend_from_slice(section);
    v[3] = v.len() as u8;
    v
}

#[test]
fn malformed_authentication_sections_are_refused() {
    assert_eq!(
        refused(&raw_auth(&[9, 4, 0, 0])),
        PacketError::UnknownAuthType(9)
    );
    assert!(matches!(
        refused(&raw_auth(&[auth_type::KEYED_MD5, 20, 0, 0])),
        PacketError::MalformedAuthentication(_)
    ));
    assert!(matches!(
        refused(&raw_auth(&[auth_type::SIMPLE_PASSWORD, 3, 1])),
        PacketError::MalformedAuthentication(_)
    ));
    // Auth Len says 10 but the packet Length leaves room for 5.
    assert!(matches!(
        refused(&raw_auth(&[auth_type::SIMPLE_PASSWORD, 10, 1, b'a', b'b'])),
        PacketError::MalformedAuthentication(_)
    ));
}

#[test]
fn password_longer_than_16_octets_is_not_encoded() {
    let pkt = with_auth(Authentication::SimplePassword {
        key_id: 1,
        password: vec![b'x'; 17],
    });
    assert!(pkt.encode().is_err());
}

// ---------------------------------------------------------------------------
// Codec: properties.

fn arb_state() -> impl Strategy<Value = State> {
    (0u8..4).prop_map(State::from_code)
}

fn arb_packet() -> impl Strategy<Value = ControlPacket> {
    (
        (0u8..32, arb_state(), any::<(bool, bool, bool)>(), 0u8..3),
        (1u8..=255, 1u32..=u32::MAX, any::<u32>()),
        any::<(u32, u32, u32)>(),
    )
        .prop_map(
            |((diag, state, (c, d, p), pf), (mult, my, your), (tx, rx, echo))| {
                let your = if matches!(state, State::Init | State::Up) {
                    your.max(1)
                } else {
                    your
                };
                ControlPacket {
                    diag: Diagnostic::from_code(diag),
                    state,
                    poll: pf == 1,
                    fin: pf == 2,
                    control_plane_independent: c,
                    demand: d,
                    detect_mult: mult,
                    my_discr: my,
                    your_discr: your,
                    desired_min_tx_us: tx,
                    required_min_rx_us: rx,
                    required_min_echo_rx_us: echo,
                    auth: p.then_some(Authentication::KeyedSha1 {
                        meticulous: true,
                        key_id: mult,
                        sequence: tx,
                        hash: [diag; 20],
                    }),
                }
            },
        )
}

proptest! {
    #[test]
    fn encode_then_parse_round_trips(pkt in arb_packet()) {
        let bytes = pkt.encode().expect("encodes");
        prop_assert_eq!(bytes.len(), pkt.wire_len());
        prop_assert_eq!(ControlPacket::parse(&bytes), Ok(pkt.clone()));
        if pkt.auth.is_none() {
            prop_assert_eq!(ControlPacket::decode(&bytes), Ok(pkt));
        } else {
            let refused_as_unsupported = matches!(
                ControlPacket::decode(&bytes),
                Err(PacketError::AuthenticationUnsupported { .. })
            );
            prop_assert!(refused_as_unsupported);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = ControlPacket::decode(&bytes);
        if let Ok(pkt) = ControlPacket::parse(&bytes) {
            // Whatever parses re-encodes to its own Length.
            let encoded = pkt.encode().expect("parsed packets encode");
            prop_assert_eq!(ControlPacket::parse(&encoded), Ok(pkt));
        }
    }

    #[test]
    fn corrupted_valid_packets_never_panic(
        pkt in arb_packet(),
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..6),
        cut in 0usize..64,
    ) {
        let mut bytes = pkt.encode().expect("encodes");
        for (i, v) in flips {
            let n = bytes.len();
            bytes[i % n] = v;
        }
        bytes.truncate(cut.max(1));
        let _ = ControlPacket::decode(&bytes);
        let _ = ControlPacket::parse(&bytes);
    }
}

// ---------------------------------------------------------------------------
// Session: two state machines wired back to back on a virtual clock.

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn discr(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("nonzero")
}

fn profile(tx_ms: u64, rx_ms: u64, mult: u8) -> Profile {
    Profile {
        transmit_interval: ms(tx_ms),
        receive_interval: ms(rx_ms),
        detect_multiplier: mult,
        ..Profile::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

#[derive(Debug, Clone)]
struct Logged {
    at: Duration,
    side: Side,
    action: Action,
}

/// Sessions A and B joined by a link with a fixed one-way delay. Every packet
/// goes through the codec. Either direction can be cut.
struct Wire {
    a: Session,
    b: Session,
    now: Duration,
    delay: Duration,
    in_flight: Vec<(Duration, Side, ControlPacket)>,
    cut_to: [bool; 2],
    /// Arrival time of the last packet each side accepted from the link.
    last_delivered_to: [Option<Duration>; 2],
    log: Vec<Logged>,
}

impl Wire {
    fn new(pa: Profile, pb: Profile) -> Wire {
        Wire {
            a: Session::new(pa, discr(0xa), 1),
            b: Session::new(pb, discr(0xb), 2),
            now: Duration::ZERO,
            delay: MS,
            in_flight: Vec::new(),
            cut_to: [false; 2],
            last_delivered_to: [None; 2],
            log: Vec::new(),
        }
    }

    fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn record(&mut self, side: Side, actions: Vec<Action>) {
        for action in actions {
            if let Action::Send(pkt) = &action {
                let bytes = pkt.encode().expect("sessions send encodable packets");
                let back = ControlPacket::decode(&bytes).expect("sessions send valid packets");
                let to = side.other();
                if !self.cut_to[to as usize] {
                    self.in_flight.push((self.now + self.delay, to, back));
                }
            }
            self.log.push(Logged {
                at: self.now,
                side,
                action,
            });
        }
    }

    /// Run every event up to and including `until`, then set the clock to it.
    fn run_until(&mut self, until: Duration) {
        for _ in 0..1_000_000 {
            let next = [
                self.a.next_deadline(),
                self.b.next_deadline(),
                self.in_flight.iter().map(|(t, _, _)| *t).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.in_flight.sort_by_key(|(t, _, _)| *t);
                    while self
                        .in_flight
                        .first()
                        .is_some_and(|(t, _, _)| *t <= self.now)
                    {
                        let (_, to, pkt) = self.in_flight.remove(0);
                        let now = self.now;
                        self.last_delivered_to[to as usize] = Some(now);
                        let actions = self.session(to).handle_packet(&pkt, now);
                        self.record(to, actions);
                    }
                    for side in [Side::A, Side::B] {
                        let now = self.now;
                        if self.session(side).next_deadline().is_some_and(|d| d <= now) {
                            let actions = self.session(side).poll(now);
                            self.record(side, actions);
                        }
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("the sessions keep asking for the same instant");
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn changes(&self, side: Side) -> Vec<StateChange> {
        self.log
            .iter()
            .filter(|l| l.side == side)
            .filter_map(|l| match l.action {
                Action::StateChanged(c) => Some(c),
                Action::Send(_) => None,
            })
            .collect()
    }

    fn sent(&self, side: Side) -> Vec<(Duration, ControlPacket)> {
        self.log
            .iter()
            .filter(|l| l.side == side)
            .filter_map(|l| match &l.action {
                Action::Send(p) => Some((l.at, p.clone())),
                Action::StateChanged(_) => None,
            })
            .collect()
    }

    /// Both Up and no Poll Sequence outstanding.
    fn settled(&self) -> bool {
        self.a.state() == State::Up
            && self.b.state() == State::Up
            && !self.a.status().poll_active
            && !self.b.status().poll_active
    }
}

fn up_pair(pa: Profile, pb: Profile) -> Wire {
    let mut w = Wire::new(pa, pb);
    w.run_for(ms(5_000));
    assert!(
        w.settled(),
        "not settled: {:?} {:?}",
        w.a.status(),
        w.b.status()
    );
    w
}

#[test]
fn back_to_back_sessions_come_up_through_the_three_way_handshake() {
    let mut w = Wire::new(Profile::default(), Profile::default());
    w.run_for(ms(3_000));
    assert_eq!(w.a.state(), State::Up);
    assert_eq!(w.b.state(), State::Up);
    for side in [Side::A, Side::B] {
        let path: Vec<(State, State)> = w.changes(side).iter().map(|c| (c.from, c.to)).collect();
        assert!(
            path == [(State::Down, State::Init), (State::Init, State::Up)]
                || path == [(State::Down, State::Up)],
            "{side:?}: {path:?}"
        );
        assert!(w
            .changes(side)
            .iter()
            .all(|c| c.diag == Diagnostic::NoDiagnostic));
    }
    // Once Up, a Poll Sequence moves both to the profile's 300 ms.
    w.run_for(ms(1_000));
    assert!(w.settled());
    for s in [&w.a, &w.b] {
        let st = s.status();
        assert_eq!(st.desired_min_tx, ms(300));
        assert_eq!(st.tx_interval, ms(300));
        assert_eq!(st.detection_time, Some(ms(900)));
        assert_eq!(st.counters.up_transitions, 1);
        assert!(st.counters.polls_started >= 1);
    }
    assert_eq!(w.a.status().remote_discr, 0xb);
    assert_eq!(w.b.status().remote_discr, 0xa);
}

#[test]
fn detection_time_uses_remote_mult_and_the_slower_of_our_rx_and_its_tx() {
    // A: tx 100, rx 250, x3.  B: tx 600, rx 400, x4.
    let w = up_pair(profile(100, 250, 3), profile(600, 400, 4));
    // A detects B: B's mult 4 x max(A rx 250, B tx 600).
    assert_eq!(w.a.detection_time(), Some(ms(2_400)));
    // B detects A: A's mult 3 x max(B rx 400, A tx 100).
    assert_eq!(w.b.detection_time(), Some(ms(1_200)));
    // Each sends at max(own tx, the other's rx).
    assert_eq!(w.a.tx_interval(), ms(400));
    assert_eq!(w.b.tx_interval(), ms(600));
}

#[test]
fn silence_for_a_detection_time_brings_the_session_down_with_diag_1() {
    let mut w = up_pair(Profile::default(), Profile::default());
    w.run_for(ms(2_000));
    w.cut_to[Side::A as usize] = true;
    // Packets already on the wire still arrive.
    w.run_for(ms(3_000));
    let down = *w.changes(Side::A).last().expect("a change");
    assert_eq!((down.from, down.to), (State::Up, State::Down));
    assert_eq!(down.diag, Diagnostic::ControlDetectionTimeExpired);
    let last_rx = w.last_delivered_to[Side::A as usize].expect("A heard B");
    assert_eq!(down.last_rx, Some(last_rx));
    assert_eq!(
        down.at - last_rx,
        ms(900),
        "Down exactly a Detection Time after the last packet"
    );
    assert_eq!(
        w.a.status().remote_discr,
        0,
        "remote discriminator forgotten"
    );
    assert_eq!(
        w.a.status().local_diag,
        Diagnostic::ControlDetectionTimeExpired
    );
    // B hears A's Down and follows with diag 3.
    let b_down = w
        .changes(Side::B)
        .into_iter()
        .find(|c| c.to == State::Down)
        .expect("B went down");
    assert_eq!(b_down.diag, Diagnostic::NeighborSignaledSessionDown);
    // A keeps sending Down, at the slow rate.
    let sent = w.sent(Side::A);
    let (_, last) = sent.last().expect("sent");
    assert_eq!(last.state, State::Down);
    assert_eq!(last.desired_min_tx_us, 1_000_000);
}

#[test]
fn neighbour_saying_down_brings_an_up_session_down_with_diag_3() {
    let mut w = up_pair(Profile::default(), Profile::default());
    let remote = ControlPacket {
        state: State::Down,
        my_discr: 0xb,
        your_discr: 0,
        ..frr_up()
    };
    let now = w.now + MS;
    let actions = w.a.handle_packet(&remote, now);
    assert!(actions.contains(&Action::StateChanged(StateChange {
        from: State::Up,
        to: State::Down,
        diag: Diagnostic::NeighborSignaledSessionDown,
        at: now,
        last_rx: Some(now),
    })));
    assert_eq!(w.a.status().counters.down_transitions, 1);
}

#[test]
fn admin_down_is_signalled_then_sending_stops_and_admin_up_recovers() {
    let mut w = up_pair(Profile::default(), Profile::default());
    let now = w.now;
    let actions = w.b.admin_down(now);
    assert_eq!(
        actions,
        vec![Action::StateChanged(StateChange {
            from: State::Up,
            to: State::AdminDown,
            diag: Diagnostic::AdministrativelyDown,
            at: now,
            last_rx: w.b.status().last_rx,
        })]
    );
    w.run_for(ms(500));
    let a_down = *w.changes(Side::A).last().expect("A changed");
    assert_eq!((a_down.from, a_down.to), (State::Up, State::Down));
    assert_eq!(a_down.diag, Diagnostic::NeighborSignaledSessionDown);
    // B sends AdminDown with diag 7 for a while, then falls silent.
    let (_, pkt) = w.sent(Side::B).last().cloned().expect("B sent");
    assert_eq!(pkt.state, State::AdminDown);
    assert_eq!(pkt.diag, Diagnostic::AdministrativelyDown);
    w.run_for(ms(10_000));
    let silent_from = w.now;
    w.run_for(ms(10_000));
    assert!(w.sent(Side::B).iter().all(|(t, _)| *t < silent_from));
    assert_eq!(
        w.a.state(),
        State::Down,
        "A never reaches Up against AdminDown"
    );
    assert_eq!(w.b.state(), State::AdminDown);
    let b = w.b.status();
    assert!(
        b.counters.packets_discarded > 0,
        "A's packets reach B but are ignored"
    );
    assert_eq!(b.remote_state, State::Down, "yet recorded");
    // Admin up: both come back.
    let now = w.now;
    let actions = w.b.admin_up(now);
    w.record(Side::B, actions);
    w.run_for(ms(5_000));
    assert!(w.settled());
}

#[test]
fn before_up_packets_go_out_at_most_once_a_second() {
    // A lone session with a 50 ms profile: nobody answers.
    let mut w = Wire::new(profile(50, 50, 3), profile(50, 50, 3));
    w.cut_to = [true, true];
    w.run_for(ms(30_000));
    let sent = w.sent(Side::A);
    assert!(sent.len() >= 30, "{} packets", sent.len());
    for pair in sent.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= ms(750) && gap <= ms(1_000), "gap {gap:?}");
    }
    for (_, pkt) in &sent {
        assert_eq!(pkt.state, State::Down);
        assert_eq!(
            pkt.desired_min_tx_us, 1_000_000,
            "advertises 1 s while not Up"
        );
        assert_eq!(pkt.required_min_rx_us, 50_000);
        assert_eq!(pkt.your_discr, 0);
        assert_eq!(pkt.required_min_echo_rx_us, 0, "no echo");
        assert!(!pkt.demand && !pkt.poll && !pkt.fin);
    }
}

/// Gaps between A's periodic (non-Final) packets, once settled.
fn periodic_gaps(w: &Wire, from: Duration) -> Vec<Duration> {
    let times: Vec<Duration> = w
        .sent(Side::A)
        .into_iter()
        .filter(|(t, p)| *t >= from && !p.fin)
        .map(|(t, _)| t)
        .collect();
    times.windows(2).map(|p| p[1] - p[0]).collect()
}

#[test]
fn jitter_keeps_intervals_between_75_and_100_percent() {
    let mut w = up_pair(Profile::default(), Profile::default());
    let from = w.now;
    w.run_for(ms(60_000));
    let gaps = periodic_gaps(&w, from);
    assert!(gaps.len() > 150);
    let (min, max) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
    assert!(*min >= ms(225) && *max <= ms(300), "{min:?}..{max:?}");
    // Really jittered, across the whole range.
    assert!(*min < ms(235) && *max > ms(290), "{min:?}..{max:?}");
}

#[test]
fn jitter_stays_at_or_below_90_percent_with_detect_mult_1() {
    let mut w = up_pair(profile(300, 300, 1), Profile::default());
    let from = w.now;
    w.run_for(ms(60_000));
    let gaps = periodic_gaps(&w, from);
    let (min, max) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
    assert!(*min >= ms(225) && *max <= ms(270), "{min:?}..{max:?}");
}

#[test]
fn jitter_is_deterministic_per_seed() {
    let run = |seed| {
        let mut s = Session::new(Profile::default(), discr(1), seed);
        let mut times = Vec::new();
        let mut now = Duration::ZERO;
        for _ in 0..20 {
            if !s.poll(now).is_empty() {
                times.push(now);
            }
            now = s.next_deadline().expect("active session");
        }
        times
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn slower_transmit_waits_for_the_final_of_its_poll_sequence() {
    let mut w = up_pair(Profile::default(), Profile::default());
    let finals_before = w.b.status().counters.finals_sent;
    let polls_before = w.a.status().counters.polls_started;
    let now = w.now;
    let actions = w.a.set_profile(profile(1_000, 300, 3), now);
    w.record(Side::A, actions);
    let st = w.a.status();
    assert!(st.poll_active);
    assert_eq!(st.desired_min_tx, ms(1_000), "advertised at once");
    assert_eq!(st.tx_interval, ms(300), "but not used before the Final");
    assert_eq!(st.counters.polls_started, polls_before + 1);
    // Step until A's Poll has gone out and B's Final has come back.
    let start = w.now;
    w.run_for(ms(400));
    let polls: Vec<_> = w
        .sent(Side::A)
        .into_iter()
        .filter(|(t, p)| *t >= start && p.poll)
        .collect();
    assert!(!polls.is_empty(), "A polled");
    assert_eq!(polls[0].1.desired_min_tx_us, 1_000_000);
    let finals: Vec<_> = w
        .sent(Side::B)
        .into_iter()
        .filter(|(t, p)| *t >= start && p.fin)
        .collect();
    assert_eq!(finals.len(), 1, "one Final for the first Poll");
    assert_eq!(finals[0].0, polls[0].0 + w.delay, "the Final goes at once");
    assert!(!finals[0].1.poll);
    assert_eq!(w.b.status().counters.finals_sent, finals_before + 1);
    let st = w.a.status();
    assert!(!st.poll_active);
    assert_eq!(st.tx_interval, ms(1_000));
    // B now allows A's slower rate.
    assert_eq!(w.b.detection_time(), Some(ms(3_000)));
    w.run_for(ms(10_000));
    assert!(w.settled(), "still Up at the new rate");
}

#[test]
fn faster_required_rx_keeps_the_old_detection_time_until_the_final() {
    let mut w = up_pair(profile(300, 300, 3), profile(100, 300, 3));
    // A detects B: 3 x max(300, 100).
    assert_eq!(w.a.detection_time(), Some(ms(900)));
    let now = w.now;
    let actions = w.a.set_profile(profile(300, 100, 3), now);
    w.record(Side::A, actions);
    assert_eq!(
        w.a.detection_time(),
        Some(ms(900)),
        "old Required Min RX until the Final"
    );
    w.run_for(ms(1_000));
    assert!(!w.a.status().poll_active);
    assert_eq!(w.a.detection_time(), Some(ms(300)));
    assert_eq!(w.b.tx_interval(), ms(100));
}

#[test]
fn passive_session_waits_for_the_remote() {
    let mut lone = Session::new(
        Profile {
            passive_mode: true,
            ..Profile::default()
        },
        discr(9),
        3,
    );
    assert_eq!(lone.next_deadline(), None);
    assert!(lone.poll(ms(10_000)).is_empty());

    let mut w = Wire::new(
        Profile {
            passive_mode: true,
            ..Profile::default()
        },
        Profile::default(),
    );
    w.run_for(ms(5_000));
    assert!(w.settled());
    let first_a = w.sent(Side::A)[0].0;
    let first_b = w.sent(Side::B)[0].0;
    assert_eq!(
        first_a,
        first_b + w.delay,
        "A answers B's first packet at once"
    );
}

#[test]
fn two_passive_sessions_never_meet() {
    let passive = Profile {
        passive_mode: true,
        ..Profile::default()
    };
    let mut w = Wire::new(passive, passive);
    w.run_for(ms(30_000));
    assert!(w.log.is_empty());
}

#[test]
fn packets_for_another_discriminator_are_discarded() {
    let mut s = Session::new(Profile::default(), discr(5), 0);
    let pkt = ControlPacket {
        state: State::Down,
        your_discr: 6,
        ..frr_up()
    };
    assert!(s.handle_packet(&pkt, ms(1)).is_empty());
    assert_eq!(s.status().counters.packets_discarded, 1);
    assert_eq!(s.status().remote_discr, 0);
}

#[test]
fn packets_with_authentication_are_discarded_by_the_session_too() {
    let mut s = Session::new(Profile::default(), discr(5), 0);
    let pkt = ControlPacket {
        state: State::Down,
        your_discr: 0,
        ..with_auth(Authentication::SimplePassword {
            key_id: 1,
            password: b"x".to_vec(),
        })
    };
    assert!(s.handle_packet(&pkt, ms(1)).is_empty());
    assert_eq!(s.state(), State::Down);
}

#[test]
fn a_poll_is_answered_with_a_final_at_once() {
    let mut s = Session::new(Profile::default(), discr(5), 0);
    let pkt = ControlPacket {
        state: State::Down,
        your_discr: 0,
        poll: true,
        ..frr_up()
    };
    let actions = s.handle_packet(&pkt, ms(1));
    let finals: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p) if p.fin => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(
        finals[0].state,
        State::Init,
        "the Final carries the new state"
    );
    assert_eq!(finals[0].your_discr, pkt.my_discr);
    assert!(!finals[0].poll);
}

#[test]
fn remote_demand_bit_is_recorded_and_transmission_goes_on() {
    let mut w = up_pair(Profile::default(), Profile::default());
    let now = w.now + MS;
    let pkt = ControlPacket {
        demand: true,
        my_discr: 0xb,
        your_discr: 0xa,
        ..frr_up()
    };
    let _ = w.a.handle_packet(&pkt, now);
    assert!(w.a.status().remote_demand);
    let deadline = w.a.next_deadline().expect("still transmitting");
    assert!(deadline <= now + ms(300));
}

#[test]
fn timeout_in_init_goes_down_and_timeout_in_down_only_forgets_the_remote() {
    let mut s = Session::new(Profile::default(), discr(5), 0);
    let down = ControlPacket {
        state: State::Down,
        your_discr: 0,
        ..frr_up()
    };
    let _ = s.handle_packet(&down, ms(0));
    assert_eq!(s.state(), State::Init);
    // Remote desired TX 300 ms, ours RX 300 ms, mult 3.
    assert_eq!(s.next_deadline().map(|d| d <= ms(900)), Some(true));
    let actions = s.poll(ms(900));
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::StateChanged(StateChange {
            from: State::Init,
            to: State::Down,
            diag: Diagnostic::ControlDetectionTimeExpired,
            last_rx: Some(t),
            ..
        }) if *t == ms(0)
    )));
    assert_eq!(s.status().remote_discr, 0);
}

#[test]
fn profile_defaults_are_metallbs() {
    let p = Profile::default();
    assert_eq!(p.receive_interval, ms(300));
    assert_eq!(p.transmit_interval, ms(300));
    assert_eq!(p.detect_multiplier, 3);
    assert_eq!(p.echo_interval, ms(50));
    assert!(!p.echo_mode);
    assert!(!p.passive_mode);
    assert_eq!(p.minimum_ttl, 254);
    assert_eq!(p.validate(), Ok(()));
}

#[test]
fn profiles_outside_metallbs_ranges_and_echo_mode_are_refused() {
    let bad = |f: fn(&mut Profile)| {
        let mut p = Profile::default();
        f(&mut p);
        p.validate().expect_err("refused")
    };
    assert_eq!(
        bad(|p| p.echo_mode = true),
        ProfileError::EchoModeUnsupported
    );
    assert_eq!(
        bad(|p| p.detect_multiplier = 1),
        ProfileError::DetectMultiplierOutOfRange(1)
    );
    assert_eq!(
        bad(|p| p.minimum_ttl = 255),
        ProfileError::MinimumTtlOutOfRange(255)
    );
    assert!(matches!(
        bad(|p| p.receive_interval = ms(5)),
        ProfileError::IntervalOutOfRange {
            field: "receiveInterval",
            ..
        }
    ));
    assert!(matches!(
        bad(|p| p.transmit_interval = ms(60_001)),
        ProfileError::IntervalOutOfRange {
            field: "transmitInterval",
            ..
        }
    ));
}

proptest! {
    #[test]
    fn sessions_never_panic_on_any_packet_sequence(
        steps in proptest::collection::vec((arb_packet(), 0u64..3_000_000, 0u8..8), 0..40),
        passive in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut s = Session::new(
            Profile { passive_mode: passive, ..Profile::default() },
            discr(0xa),
            seed,
        );
        let mut now = Duration::ZERO;
        for (mut pkt, dt_us, op) in steps {
            now += Duration::from_micros(dt_us);
            if op == 0 {
                pkt.your_discr = 0xa;
            }
            let _ = match op {
                1 => s.admin_down(now),
                2 => s.admin_up(now),
                _ => s.handle_packet(&pkt, now),
            };
            let _ = s.poll(now);
            // Nothing is left overdue after a poll.
            if let Some(d) = s.next_deadline() {
                prop_assert!(d > now, "deadline {:?} at {:?}", d, now);
            }
            let st = s.status();
            if st.state == State::Up {
                prop_assert!(st.remote_discr != 0);
            }
        }
    }
}

#[test]
fn extreme_profiles_do_not_panic() {
    for p in [
        profile(0, 0, 0),
        Profile {
            transmit_interval: Duration::MAX,
            receive_interval: Duration::MAX,
            detect_multiplier: 255,
            ..Profile::default()
        },
    ] {
        let mut w = Wire::new(p, p);
        w.run_for(ms(5_000));
        let now = w.now;
        let _ = w.a.admin_down(now);
        let _ = w.a.set_profile(Profile::default(), now);
        w.run_for(ms(5_000));
    }
}

// ---------------------------------------------------------------------------
// Runner: real sockets on loopback.

/// A UDP port free on both addresses right now.
fn free_port(a: IpAddr, b: IpAddr) -> u16 {
    for _ in 0..100 {
        let probe = UdpSocket::bind(SocketAddr::new(a, 0)).expect("bind probe");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        if UdpSocket::bind(SocketAddr::new(b, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn config(local: IpAddr, port: u16, peer_port: u16, seed: u64) -> RunnerConfig {
    RunnerConfig {
        port,
        peer_port,
        seed,
        ..RunnerConfig::new(local)
    }
}

async fn next_event(
    events: &mut tokio::sync::mpsc::Receiver<PeerEvent>,
    within: Duration,
) -> PeerEvent {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("an event in time")
        .expect("runner alive")
}

async fn wait_for_state(
    events: &mut tokio::sync::mpsc::Receiver<PeerEvent>,
    state: State,
    within: Duration,
) -> PeerEvent {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = next_event(events, left).await;
        if event.state == state {
            return event;
        }
    }
}

/// Generous time for a handshake at the one-second pre-Up rate.
const BRING_UP: Duration = Duration::from_secs(10);

/// Two runners come Up, one stops, the other sees Down by timeout.
async fn dead_peer_is_detected(a: RunnerConfig, b: RunnerConfig) {
    let (ra, mut ea) = BfdRunner::start(a.clone()).expect("runner A");
    let (rb, mut eb) = BfdRunner::start(b.clone()).expect("runner B");
    let src = rb.source_addr();
    assert!(src.port() >= 49152, "source port {src}");
    assert_eq!(src.ip(), b.local);
    let profile = Profile::default();
    ra.add_peer(b.local, profile).await.expect("add B");
    rb.add_peer(a.local, profile).await.expect("add A");
    let up_a = wait_for_state(&mut ea, State::Up, BRING_UP).await;
    assert_eq!(up_a.peer, b.local);
    wait_for_state(&mut eb, State::Up, BRING_UP).await;

    // Let the Poll Sequence move both to 300 ms.
    let mut detection = None;
    for _ in 0..50 {
        let peers = ra.peers().await.expect("peers");
        let s = &peers[0].session;
        if s.state == State::Up && !s.poll_active && s.tx_interval == profile.transmit_interval {
            detection = s.detection_time;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detection = detection.expect("settled at the profile's rate");
    let expected = profile.transmit_interval.max(profile.receive_interval)
        * u32::from(profile.detect_multiplier);
    assert_eq!(detection, expected);
    let peers = ra.peers().await.expect("peers");
    assert_eq!(peers[0].peer, b.local);
    assert!(peers[0].session.counters.packets_received > 2);
    assert!(peers[0].last_rx.is_some());

    let stopped = Instant::now();
    rb.shutdown().await;
    let down = wait_for_state(&mut ea, State::Down, detection * 4).await;
    assert_eq!(down.peer, b.local);
    assert_eq!(down.from, State::Up);
    assert_eq!(down.diag, Diagnostic::ControlDetectionTimeExpired);
    let last_rx = down.last_rx.expect("last packet time");
    assert!(last_rx <= stopped);
    let measured = down.at - last_rx;
    // At least the Detection Time, and at most one more Detection Time of
    // scheduling slack on a busy machine.
    assert!(
        measured >= detection && measured <= detection * 2,
        "detected after {measured:?}, Detection Time {detection:?}"
    );
    let counters = ra.counters().await.expect("counters");
    assert_eq!(counters.ttl_dropped, 0);
    assert_eq!(counters.decode_errors, 0);
    assert!(counters.sent > 0 && counters.received > 0);
    ra.shutdown().await;
}

#[tokio::test]
async fn two_runners_on_loopback_come_up_and_detect_a_dead_peer() {
    let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let port = free_port(a, b);
    dead_peer_is_detected(config(a, port, port, 1), config(b, port, port, 2)).await;
}

#[tokio::test]
async fn two_runners_on_ipv6_loopback_come_up_and_detect_a_dead_peer() {
    let lo = IpAddr::V6(Ipv6Addr::LOCALHOST);
    // One address only: each runner listens on its own port and sends to
    // the other's.
    let pa = free_port(lo, lo);
    let pb = free_port(lo, lo);
    assert_ne!(pa, pb);
    let a = config(lo, pa, pb, 3);
    let b = config(lo, pb, pa, 4);
    // Same address on both sides: A's peer is ::1, so is B's.
    let (ra, mut ea) = BfdRunner::start(a).expect("runner A");
    let (rb, mut eb) = BfdRunner::start(b).expect("runner B");
    ra.add_peer(lo, Profile::default()).await.expect("add");
    rb.add_peer(lo, Profile::default()).await.expect("add");
    wait_for_state(&mut ea, State::Up, BRING_UP).await;
    wait_for_state(&mut eb, State::Up, BRING_UP).await;
    rb.shutdown().await;
    let down = wait_for_state(&mut ea, State::Down, Duration::from_secs(10)).await;
    assert_eq!(down.diag, Diagnostic::ControlDetectionTimeExpired);
    ra.shutdown().await;
}

/// A Down packet from `from` (TTL `ttl`) to `to`.
fn send_down_packet(from: IpAddr, to: SocketAddr, ttl: u32, auth: Option<Authentication>) {
    let socket = UdpSocket::bind(SocketAddr::new(from, 0)).expect("bind sender");
    socket.set_ttl(ttl).expect("ttl");
    let pkt = ControlPacket {
        state: State::Down,
        your_discr: 0,
        auth,
        ..frr_up()
    };
    socket
        .send_to(&pkt.encode().expect("encodes"), to)
        .expect("send");
}

async fn counters_after(runner: &BfdRunner, received: u64) -> control::bfd::RunnerCounters {
    for _ in 0..100 {
        let c = runner.counters().await.expect("counters");
        if c.received >= received {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("runner did not receive {received} datagrams");
}

#[tokio::test]
async fn packets_with_ttl_below_255_are_dropped_and_counted() {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let sender = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let port = free_port(lo, lo);
    let (runner, mut events) = BfdRunner::start(config(lo, port, port, 5)).expect("runner");
    runner
        .add_peer(sender, Profile::default())
        .await
        .expect("add");
    let to = runner.local_addr();

    send_down_packet(sender, to, 64, None);
    let c = counters_after(&runner, 1).await;
    assert_eq!(c.ttl_dropped, 1);
    let peers = runner.peers().await.expect("peers");
    assert_eq!(peers[0].session.state, State::Down);
    assert_eq!(peers[0].session.counters.packets_received, 0);

    // The same packet with TTL 255 is accepted: the session goes to Init.
    send_down_packet(sender, to, u32::from(SINGLE_HOP_TTL), None);
    let init = wait_for_state(&mut events, State::Init, Duration::from_secs(5)).await;
    assert_eq!(init.peer, sender);
    let c = counters_after(&runner, 2).await;
    assert_eq!(c.ttl_dropped, 1);

    // TTL 255 but from an address with no session.
    send_down_packet(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4)),
        to,
        u32::from(SINGLE_HOP_TTL),
        None,
    );
    // TTL 255 with authentication, and garbage.
    send_down_packet(
        sender,
        to,
        u32::from(SINGLE_HOP_TTL),
        Some(Authentication::SimplePassword {
            key_id: 1,
            password: b"secret".to_vec(),
        }),
    );
    let garbage = UdpSocket::bind(SocketAddr::new(sender, 0)).expect("bind");
    garbage.set_ttl(255).expect("ttl");
    garbage.send_to(&[0xff; 7], to).expect("send");
    let c = counters_after(&runner, 5).await;
    assert_eq!(c.ttl_dropped, 1);
    assert_eq!(c.no_session, 1);
    assert_eq!(c.auth_unsupported, 1);
    assert_eq!(c.decode_errors, 1);
    runner.shutdown().await;
}

#[tokio::test]
async fn admin_down_on_one_runner_is_seen_as_neighbour_down_on_the_other() {
    let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
    let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));
    let port = free_port(a, b);
    let (ra, mut ea) = BfdRunner::start(config(a, port, port, 6)).expect("A");
    let (rb, mut eb) = BfdRunner::start(config(b, port, port, 7)).expect("B");
    ra.add_peer(b, Profile::default()).await.expect("add");
    rb.add_peer(a, Profile::default()).await.expect("add");
    wait_for_state(&mut ea, State::Up, BRING_UP).await;
    wait_for_state(&mut eb, State::Up, BRING_UP).await;
    rb.admin_down(a).await.expect("admin down");
    let b_event = wait_for_state(&mut eb, State::AdminDown, Duration::from_secs(1)).await;
    assert_eq!(b_event.diag, Diagnostic::AdministrativelyDown);
    let a_event = wait_for_state(&mut ea, State::Down, Duration::from_secs(5)).await;
    assert_eq!(a_event.diag, Diagnostic::NeighborSignaledSessionDown);
    rb.admin_up(a).await.expect("admin up");
    wait_for_state(&mut ea, State::Up, BRING_UP).await;
    ra.shutdown().await;
    rb.shutdown().await;
}

#[tokio::test]
async fn runner_refuses_bad_peers_and_profiles() {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let port = free_port(lo, lo);
    let (runner, _events) = BfdRunner::start(config(lo, port, port, 8)).expect("runner");
    let peer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    assert!(matches!(
        runner
            .add_peer(IpAddr::V6(Ipv6Addr::LOCALHOST), Profile::default())
            .await,
        Err(RunnerError::AddressFamily { .. })
    ));
    assert!(matches!(
        runner
            .add_peer(
                peer,
                Profile {
                    echo_mode: true,
                    ..Profile::default()
                }
            )
            .await,
        Err(RunnerError::Profile(ProfileError::EchoModeUnsupported))
    ));
    runner
        .add_peer(peer, Profile::default())
        .await
        .expect("add");
    assert!(matches!(
        runner.add_peer(peer, Profile::default()).await,
        Err(RunnerError::PeerExists(_))
    ));
    runner.remove_peer(peer).await.expect("remove");
    assert!(matches!(
        runner.remove_peer(peer).await,
        Err(RunnerError::UnknownPeer(_))
    ));
    assert!(runner.peers().await.expect("peers").is_empty());
    runner.shutdown().await;
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let err = BfdRunner::start(RunnerConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .expect_err("no runtime");
    assert!(matches!(err, RunnerError::NoRuntime));
}
