//! One BFD session (RFC 5880 6.2 and 6.8) as a pure state machine: packets and
//! the current time go in, packets to send and state changes come out. No
//! sockets and no clocks: `now` is a [`Duration`] since any fixed origin, so
//! the same code runs on the monotonic clock and on a virtual one in tests.
//!
//! What it does, in RFC 5880 terms: asynchronous mode; the three-way handshake
//! (6.2); Detection Time = remote Detect Mult x max(our Required Min RX, the
//! remote's Desired Min TX) (6.8.4); transmission every max(our Desired Min TX,
//! the remote's Required Min RX), less 0 to 25 % jitter (10 to 25 % with a
//! Detect Mult of 1) drawn from a seeded generator (6.8.7); a Desired Min TX of
//! at least one second while not Up (6.8.3); a Poll Sequence whenever our
//! intervals change while Up, going Up included, with the old values kept where
//! 6.8.3 says until the Final arrives (6.5); an immediate Final for every Poll;
//! passive mode (no packet before the remote's discriminator is known, 6.8.7);
//! administrative down (6.8.16).
//!
//! What it does not: the Echo function; Demand mode. We never set the D bit.
//! A remote that sets it is recorded ([`SessionStatus::remote_demand`]) but we
//! keep transmitting periodically, which RFC 5880 6.8.7 says to stop: extra
//! packets cost the remote nothing, and our own detection depends on the
//! remote's packets, which it keeps sending as long as we do not ask for
//! Demand mode ourselves. Authentication: packets carrying it are discarded.

use std::num::NonZeroU32;
use std::time::Duration;

use super::packet::{ControlPacket, Diagnostic, State};

/// While not Up, Desired Min TX is at least one second (RFC 5880 6.8.3).
pub const SLOW_TX_INTERVAL: Duration = Duration::from_secs(1);

/// A BFD profile, with the fields and defaults of MetalLB's `BFDProfile`
/// (which FRR applies as a `bfd profile`).
///
/// `minimum_ttl` is kept as MetalLB documents it (default 254, range 1 to
/// 254), but MetalLB documents it as a multi-hop setting ("254: at most one
/// hop between the systems") and FRR applies it to multi-hop sessions only.
/// ecmpd runs single-hop sessions (RFC 5881), where every packet must arrive
/// with TTL / hop limit 255 (RFC 5881 5): a packet that crossed no router.
/// That is stricter than any `minimum_ttl`, so the two never conflict: the
/// runner enforces 255 and ignores this field until multi-hop (RFC 5883)
/// exists, where a received TTL below it would be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// `receiveInterval`: the slowest rate at which we accept packets, sent as
    /// Required Min RX. Default 300 ms.
    pub receive_interval: Duration,
    /// `transmitInterval`: how often we would like to send once Up, sent as
    /// Desired Min TX. Default 300 ms.
    pub transmit_interval: Duration,
    /// `detectMultiplier`: packets the remote may miss before we declare it
    /// down. Default 3.
    pub detect_multiplier: u8,
    /// `echoInterval`: kept for completeness; the Echo function is not
    /// implemented. Default 50 ms.
    pub echo_interval: Duration,
    /// `echoMode`: must be false; the Echo function is not implemented.
    pub echo_mode: bool,
    /// `passiveMode`: send nothing until the remote has been heard.
    pub passive_mode: bool,
    /// `minimumTtl`: multi-hop only, see the type's documentation. Default 254.
    pub minimum_ttl: u8,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            echo_interval: Duration::from_millis(50),
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: 254,
        }
    }
}

/// A profile ecmpd cannot run, with the MetalLB field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// An interval outside MetalLB's 10 to 60000 ms.
    #[error("BFD {field} of {value:?} is outside 10 ms to 60 s")]
    IntervalOutOfRange {
        /// `receiveInterval`, `transmitInterval` or `echoInterval`.
        field: &'static str,
        /// The value given.
        value: Duration,
    },
    /// `detectMultiplier` outside MetalLB's 2 to 255.
    #[error("BFD detectMultiplier {0} is outside 2 to 255")]
    DetectMultiplierOutOfRange(u8),
    /// `minimumTtl` outside MetalLB's 1 to 254.
    #[error("BFD minimumTtl {0} is outside 1 to 254")]
    MinimumTtlOutOfRange(u8),
    /// `echoMode: true`: the Echo function is not implemented.
    #[error("BFD echo mode is not supported")]
    EchoModeUnsupported,
}

impl Profile {
    /// Check the profile against MetalLB's ranges, and refuse echo mode.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let range = Duration::from_millis(10)..=Duration::from_secs(60);
        for (field, value) in [
            ("receiveInterval", self.receive_interval),
            ("transmitInterval", self.transmit_interval),
            ("echoInterval", self.echo_interval),
        ] {
            if !range.contains(&value) {
                return Err(ProfileError::IntervalOutOfRange { field, value });
            }
        }
        if self.detect_multiplier < 2 {
            return Err(ProfileError::DetectMultiplierOutOfRange(
                self.detect_multiplier,
            ));
        }
        if !(1..=254).contains(&self.minimum_ttl) {
            return Err(ProfileError::MinimumTtlOutOfRange(self.minimum_ttl));
        }
        if self.echo_mode {
            return Err(ProfileError::EchoModeUnsupported);
        }
        Ok(())
    }
}

/// A state change, as reported in [`Action::StateChanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Our diagnostic: why it changed (1 for a timeout, 3 when the neighbour
    /// said Down, 7 for administrative down, 0 on the way up).
    pub diag: Diagnostic,
    /// When it changed.
    pub at: Duration,
    /// When the last valid packet from the remote arrived, if ever. For a
    /// timeout this is the start of the silence that ended the session.
    pub last_rx: Option<Duration>,
}

/// What the session asks its owner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the remote now.
    Send(ControlPacket),
    /// The session changed state.
    StateChanged(StateChange),
}

/// What a session has counted since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Packets sent, Finals included.
    pub packets_sent: u64,
    /// Packets accepted and run through the state machine.
    pub packets_received: u64,
    /// Packets handed to the session but discarded: wrong Your Discriminator,
    /// an authentication section, or received while AdminDown (whose remote
    /// fields are still recorded, as RFC 5880 6.8.6 orders).
    pub packets_discarded: u64,
    /// Transitions to Up.
    pub up_transitions: u64,
    /// Transitions from Init or Up to Down.
    pub down_transitions: u64,
    /// Poll Sequences started.
    pub polls_started: u64,
    /// Finals sent in answer to a Poll.
    pub finals_sent: u64,
}

/// A snapshot of the session, for `show bfd peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// bfd.SessionState.
    pub state: State,
    /// bfd.RemoteSessionState.
    pub remote_state: State,
    /// bfd.LocalDiag.
    pub local_diag: Diagnostic,
    /// The remote's last diagnostic.
    pub remote_diag: Diagnostic,
    /// bfd.LocalDiscr.
    pub local_discr: u32,
    /// bfd.RemoteDiscr (0: unknown).
    pub remote_discr: u32,
    /// bfd.RemoteDemandMode: the remote set the D bit (we ignore it).
    pub remote_demand: bool,
    /// Desired Min TX we advertise.
    pub desired_min_tx: Duration,
    /// Required Min RX we advertise.
    pub required_min_rx: Duration,
    /// The remote's Desired Min TX and Required Min RX, once heard.
    pub remote_intervals: Option<(Duration, Duration)>,
    /// The interval between our periodic packets, before jitter.
    pub tx_interval: Duration,
    /// The current Detection Time, once the remote has been heard.
    pub detection_time: Option<Duration>,
    /// A Poll Sequence is waiting for its Final.
    pub poll_active: bool,
    /// Last valid packet received.
    pub last_rx: Option<Duration>,
    /// Last packet sent.
    pub last_tx: Option<Duration>,
    /// Counters.
    pub counters: SessionCounters,
}

/// SplitMix64: a small, seeded, well-mixed generator for transmit jitter.
#[derive(Debug, Clone)]
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `d` in microseconds, saturating at the 32-bit wire field.
fn to_us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// One BFD session with one remote system.
#[derive(Debug, Clone)]
pub struct Session {
    profile: Profile,
    local_discr: u32,
    remote_discr: u32,
    state: State,
    remote_state: State,
    local_diag: Diagnostic,
    remote_diag: Diagnostic,
    remote_demand: bool,
    /// bfd.RemoteMinRxInterval; 1 µs until heard (RFC 5880 6.8.1).
    remote_min_rx: Duration,
    /// The remote's Desired Min TX and Detect Mult, once heard.
    remote_tx: Option<(Duration, u8)>,
    /// bfd.DesiredMinTxInterval, as advertised.
    desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval, as advertised.
    required_min_rx: Duration,
    /// Desired Min TX used for our own timing: lags an increase until the
    /// Poll Sequence ends (6.8.3).
    tx_in_use: Duration,
    /// Required Min RX used for the Detection Time: lags a decrease until the
    /// Poll Sequence ends (6.8.3).
    rx_in_use: Duration,
    poll_active: bool,
    next_tx: Duration,
    last_tx: Option<Duration>,
    last_rx: Option<Duration>,
    detect_deadline: Option<Duration>,
    /// While AdminDown, periodic packets go on until this time (6.8.16).
    admin_tx_until: Option<Duration>,
    jitter: Jitter,
    counters: SessionCounters,
}

impl Session {
    /// A session in state Down with our discriminator `local_discr` and the
    /// jitter generator seeded by `seed`. An active session sends its first
    /// packet at the first [`Session::poll`]; a passive one waits for the remote.
    pub fn new(profile: Profile, local_discr: NonZeroU32, seed: u64) -> Session {
        let desired_min_tx = profile.transmit_interval.max(SLOW_TX_INTERVAL);
        let required_min_rx = profile.receive_interval;
        Session {
            profile,
            local_discr: local_discr.get(),
            remote_discr: 0,
            state: State::Down,
            remote_state: State::Down,
            local_diag: Diagnostic::NoDiagnostic,
            remote_diag: Diagnostic::NoDiagnostic,
            remote_demand: false,
            remote_min_rx: Duration::from_micros(1),
            remote_tx: None,
            desired_min_tx,
            required_min_rx,
            tx_in_use: desired_min_tx,
            rx_in_use: required_min_rx,
            poll_active: false,
            next_tx: Duration::ZERO,
            last_tx: None,
            last_rx: None,
            detect_deadline: None,
            admin_tx_until: None,
            jitter: Jitter(seed),
            counters: SessionCounters::default(),
        }
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.LocalDiscr.
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }

    /// The profile in force.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The interval between periodic packets before jitter: max(Desired Min
    /// TX in use, the remote's Required Min RX) (RFC 5880 6.8.7).
    pub fn tx_interval(&self) -> Duration {
        self.tx_in_use.max(self.remote_min_rx)
    }

    /// The Detection Time: the remote's Detect Mult x max(our Required Min RX
    /// in use, the remote's Desired Min TX) (RFC 5880 6.8.4, asynchronous
    /// mode). `None` until the remote has been heard.
    pub fn detection_time(&self) -> Option<Duration> {
        let (remote_tx, mult) = self.remote_tx?;
        Some(
            self.rx_in_use
                .max(remote_tx)
                .saturating_mul(u32::from(mult)),
        )
    }

    /// A snapshot for display.
    pub fn status(&self) -> SessionStatus {
        SessionStatus {
            state: self.state,
            remote_state: self.remote_state,
            local_diag: self.local_diag,
            remote_diag: self.remote_diag,
            local_discr: self.local_discr,
            remote_discr: self.remote_discr,
            remote_demand: self.remote_demand,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            remote_intervals: self.remote_tx.map(|(tx, _)| (tx, self.remote_min_rx)),
            tx_interval: self.tx_interval(),
            detection_time: self.detection_time(),
            poll_active: self.poll_active,
            last_rx: self.last_rx,
            last_tx: self.last_tx,
            counters: self.counters,
        }
    }

    /// The earliest time at which [`Session::poll`] has something to do:
    /// send a periodic packet, declare the remote dead, or stop sending after
    /// administrative down. `None` when nothing is pending.
    pub fn next_deadline(&self) -> Option<Duration> {
        [
            self.may_transmit().then_some(self.next_tx),
            self.detect_deadline,
            self.admin_tx_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Run the timers due at `now`: the Detection Time (6.8.4) and periodic
    /// transmission (6.8.7). Calling it early does nothing.
    pub fn poll(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        self.run_timers(now, &mut actions);
        actions
    }

    /// Process a packet that passed [`ControlPacket::decode`] and was
    /// demultiplexed to this session (RFC 5880 6.8.6 from "If the Your
    /// Discriminator field is nonzero" on).
    pub fn handle_packet(&mut self, pkt: &ControlPacket, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        if (pkt.your_discr != 0 && pkt.your_discr != self.local_discr) || pkt.auth.is_some() {
            self.counters.packets_discarded += 1;
            return actions;
        }
        self.remote_discr = pkt.my_discr;
        self.remote_state = pkt.state;
        self.remote_diag = pkt.diag;
        self.remote_demand = pkt.demand;
        self.last_rx = Some(now);
        self.remote_tx = Some((pkt.desired_min_tx(), pkt.detect_mult));
        let before = self.tx_interval();
        self.remote_min_rx = pkt.required_min_rx();
        if self.poll_active && pkt.fin {
            self.end_poll();
        }
        self.reschedule_if_faster(before);
        self.detect_deadline = self.detection_time().map(|t| now.saturating_add(t));

        if self.state == State::AdminDown {
            self.counters.packets_discarded += 1;
            return actions;
        }
        self.counters.packets_received += 1;
        match (self.state, pkt.state) {
            // The neighbour's AdminDown, or Down while we are Up (6.8.6).
            (State::Init | State::Up, State::AdminDown) | (State::Up, State::Down) => self
                .change_state(
                    State::Down,
                    Diagnostic::NeighborSignaledSessionDown,
                    now,
                    &mut actions,
                ),
            (State::Down, State::Down) => {
                self.change_state(State::Init, Diagnostic::NoDiagnostic, now, &mut actions)
            }
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.change_state(State::Up, Diagnostic::NoDiagnostic, now, &mut actions)
            }
            _ => {}
        }
        if pkt.poll {
            // Answer at once, whatever the transmit timer says (6.8.6).
            self.counters.finals_sent += 1;
            self.send(self.packet(false, true), now, &mut actions);
        }
        self.run_timers(now, &mut actions);
        actions
    }

    /// Take the session administratively down (RFC 5880 6.8.16): state
    /// AdminDown, diagnostic 7, and periodic packets for one more Detection
    /// Time of the remote's so that it hears about it.
    pub fn admin_down(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state != State::AdminDown {
            self.change_state(
                State::AdminDown,
                Diagnostic::AdministrativelyDown,
                now,
                &mut actions,
            );
            let remote_detection = self
                .tx_interval()
                .saturating_mul(u32::from(self.profile.detect_multiplier));
            self.admin_tx_until = Some(now.saturating_add(remote_detection));
        }
        actions
    }

    /// Bring an AdminDown session back to Down (RFC 5880 6.8.16); it sends
    /// again at once unless passive.
    pub fn admin_up(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state == State::AdminDown {
            self.admin_tx_until = None;
            self.change_state(State::Down, Diagnostic::NoDiagnostic, now, &mut actions);
            self.next_tx = now;
            self.run_timers(now, &mut actions);
        }
        actions
    }

    /// Change the profile. New intervals take effect as RFC 5880 6.8.3 says:
    /// while Up through a Poll Sequence (a slower transmit rate and a faster
    /// Required Min RX wait for its Final), otherwise at once.
    pub fn set_profile(&mut self, profile: Profile, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        self.profile = profile;
        self.apply_intervals(now);
        self.run_timers(now, &mut actions);
        actions
    }

    // -- internals ---------------------------------------------------------

    /// Periodic transmission is allowed (6.8.7): not passive before the
    /// remote is known, not asked to stop by a zero Required Min RX, and not
    /// past the announcement of administrative down.
    fn may_transmit(&self) -> bool {
        let passive_waiting = self.profile.passive_mode && self.remote_discr == 0;
        let asked_to_stop = self.remote_min_rx.is_zero();
        let admin_down_announced = self.state == State::AdminDown && self.admin_tx_until.is_none();
        !(passive_waiting || asked_to_stop || admin_down_announced)
    }

    fn run_timers(&mut self, now: Duration, actions: &mut Vec<Action>) {
        if self.detect_deadline.is_some_and(|d| d <= now) {
            self.detect_deadline = None;
            self.remote_discr = 0;
            self.remote_demand = false;
            if matches!(self.state, State::Init | State::Up) {
                self.change_state(
                    State::Down,
                    Diagnostic::ControlDetectionTimeExpired,
                    now,
                    actions,
                );
            }
        }
        if self.admin_tx_until.is_some_and(|t| t <= now) {
            self.admin_tx_until = None;
        }
        if self.may_transmit() && self.next_tx <= now {
            let pkt = self.packet(self.poll_active, false);
            self.send(pkt, now, actions);
            self.next_tx = now.saturating_add(self.jittered(self.tx_interval()));
        }
    }

    fn send(&mut self, pkt: ControlPacket, now: Duration, actions: &mut Vec<Action>) {
        self.counters.packets_sent += 1;
        self.last_tx = Some(now);
        actions.push(Action::Send(pkt));
    }

    /// The packet we would send now (RFC 5880 6.8.7).
    fn packet(&self, poll: bool, fin: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll,
            fin,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.profile.detect_multiplier.max(1),
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx_us: to_us(self.desired_min_tx),
            required_min_rx_us: to_us(self.required_min_rx),
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }

    /// `interval` less 0 to 25 % (10 to 25 % with a Detect Mult of 1), so a
    /// packet goes out every 75 to 100 % (75 to 90 %) of it (RFC 5880 6.8.7).
    fn jittered(&mut self, interval: Duration) -> Duration {
        let (lo, hi) = if self.profile.detect_multiplier <= 1 {
            (1000, 2500)
        } else {
            (0, 2500)
        };
        let basis_points = lo + self.jitter.next() % (hi - lo + 1);
        let us = interval.as_micros().min(u128::from(u64::MAX >> 16)) as u64;
        Duration::from_micros(us - us * basis_points / 10_000)
    }

    /// After the transmit interval changed from `before`: if it shrank, bring
    /// the next packet forward; a longer one applies from the next packet.
    fn reschedule_if_faster(&mut self, before: Duration) {
        let after = self.tx_interval();
        if after < before {
            if let Some(last) = self.last_tx {
                let sooner = last.saturating_add(self.jittered(after));
                self.next_tx = self.next_tx.min(sooner);
            }
        }
    }

    fn end_poll(&mut self) {
        self.poll_active = false;
        self.tx_in_use = self.desired_min_tx;
        self.rx_in_use = self.required_min_rx;
    }

    /// Recompute the advertised intervals from the profile and the state, and
    /// start a Poll Sequence if they changed while Up (6.8.3).
    fn apply_intervals(&mut self, now: Duration) {
        let desired = if self.state == State::Up {
            self.profile.transmit_interval
        } else {
            self.profile.transmit_interval.max(SLOW_TX_INTERVAL)
        };
        let required = self.profile.receive_interval;
        if desired == self.desired_min_tx && required == self.required_min_rx {
            return;
        }
        let before = self.tx_interval();
        self.desired_min_tx = desired;
        self.required_min_rx = required;
        if self.state == State::Up {
            if !self.poll_active {
                self.counters.polls_started += 1;
            }
            self.poll_active = true;
            // Faster sending and a longer Detection Time are safe at once;
            // the opposite waits for the Final.
            self.tx_in_use = self.tx_in_use.min(desired);
            self.rx_in_use = self.rx_in_use.max(required);
        } else {
            self.poll_active = false;
            self.tx_in_use = desired;
            self.rx_in_use = required;
        }
        self.reschedule_if_faster(before);
        if let (Some(last_rx), Some(t)) = (self.last_rx, self.detection_time()) {
            if self.detect_deadline.is_some() {
                self.detect_deadline = Some(last_rx.saturating_add(t).max(now));
            }
        }
    }

    fn change_state(
        &mut self,
        to: State,
        diag: Diagnostic,
        now: Duration,
        actions: &mut Vec<Action>,
    ) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        match to {
            State::Up => self.counters.up_transitions += 1,
            State::Down if matches!(from, State::Init | State::Up) => {
                self.counters.down_transitions += 1
            }
            _ => {}
        }
        if from == State::Up || to == State::Up {
            self.apply_intervals(now);
        }
        actions.push(Action::StateChanged(StateChange {
            from,
            to,
            diag,
            at: now,
            last_rx: self.last_rx,
        }));
    }
}
