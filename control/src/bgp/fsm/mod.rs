//! The BGP session state machine (RFC 4271 section 8) as a pure function of
//! events and time: [`Fsm::handle`] takes an [`Event`] and the current time
//! and returns the [`Action`]s to carry out; [`Fsm::poll`] fires the timers
//! that are due. No sockets, tasks or clocks inside, so every behaviour is a
//! plain unit test on virtual time.
//!
//! # Driving it
//!
//! The session task owns one `Fsm` and one TCP connection at a time. It feeds
//! connection events and decoded messages to [`Fsm::handle`], calls
//! [`Fsm::poll`] when [`Fsm::next_deadline`] is reached (timers fire only
//! there, never inside `handle`), and carries out the actions in order:
//! dial ([`Action::Connect`]), abandon a dial ([`Action::CancelConnect`]),
//! write a message, close the connection, and pass session news, UPDATE
//! bodies and route refresh requests to the RIB. `now` is any monotonic
//! [`Duration`] (time since start, or virtual time in tests).
//!
//! ```
//! use std::time::Duration;
//! use control::bgp::fsm::{Action, Event, Fsm, PeerAsMatch, PeerConfig, StartMode};
//! use control::bgp::wire::{Capability, Message, Open};
//!
//! let t = Duration::from_secs;
//! let mut fsm = Fsm::new(PeerConfig::new(64512, 0x0a00_00fe, PeerAsMatch::External));
//! fsm.handle(Event::ManualStart(StartMode::Passive), t(0));
//! // A speaker connects: we answer with our OPEN.
//! let actions = fsm.handle(Event::TcpConnectionConfirmed, t(1));
//! assert!(matches!(actions.as_slice(), [Action::Send(Message::Open(_))]));
//! let theirs = Open::new(64513, 90, 0x0a00_0001, vec![Capability::FourOctetAs(64513)]);
//! fsm.handle(Event::Message(Message::Open(theirs)), t(1));
//! let actions = fsm.handle(Event::Message(Message::Keepalive), t(1));
//! assert!(matches!(actions.as_slice(), [Action::SessionEstablished(n)] if n.peer_as == 64513));
//! // The session task sleeps until the next deadline, then polls.
//! assert_eq!(fsm.next_deadline(), Some(t(31)));
//! assert_eq!(fsm.poll(t(31)), vec![Action::Send(Message::Keepalive)]);
//! ```
//!
//! # One FSM per peer
//!
//! An `Fsm` belongs to a configured peer (or to a dynamic neighbour, created
//! when its first connection is accepted) and outlives its connections: the
//! retry backoff, the max-prefix hold-down and the counters for `show bgp
//! summary` span connection attempts. It holds at most one connection.
//! States and what they mean here:
//!
//! - Idle: not started, manually stopped, or held down after max-prefix;
//!   inbound connections are refused (Cease / Connection Rejected).
//! - Connect: dialling the peer (active peers only).
//! - Active: waiting, either for an inbound connection (passive peers, or
//!   an active peer between retries) or for the retry timer to dial again.
//! - OpenSent, OpenConfirm, Established: as in RFC 4271 8.2.2.
//!
//! After a session fails (error, NOTIFICATION, TCP loss, hold timer) a
//! started peer goes straight back to Active: passive peers accept the
//! speaker's next connection at once (MetalLB speakers pace their own
//! redials), active peers dial again when the ConnectRetryTimer fires. That
//! timer backs off exponentially with jitter ([`RetryBackoff`]) over
//! consecutive failures and resets once Established. Passive peers never
//! dial.
//!
//! # Collisions
//!
//! When a second connection for the peer appears, ask
//! [`Fsm::inbound_decision`]: accept it into this FSM (Connect or Active),
//! refuse it (Idle, or Established: RFC 4271 6.8 keeps the established
//! session), or treat it as a collision (OpenSent, OpenConfirm). For a
//! collision the session task runs a second, passive `Fsm` on the new
//! connection (RFC 4271 8: each connection has its own state machine until
//! the collision is resolved); once the peer's OPEN is known on either,
//! [`resolve_collision`] says which connection to keep, and the loser gets
//! [`Event::CollisionDump`], which sends Cease / Connection Collision
//! Resolution and closes it. If the second FSM won, the peer's FSM takes its
//! connection over with [`Fsm::take_connection_from`], keeping the peer's
//! history.
//!
//! One exception to refusing in Established (RFC 4724 4.2): when graceful
//! restart was negotiated, a new connection means the peer restarted before
//! we saw the old connection close. The decision is then
//! [`InboundDecision::PeerRestarted`]: feed [`Event::TcpConnectionFailed`]
//! for the old connection (the session goes down, keeping stale paths), then
//! [`Event::TcpConnectionConfirmed`] for the new one.
//!
//! # OPEN checks and negotiation
//!
//! See [`negotiate`]: peer AS per [`PeerAsMatch`] (the 4-octet AS capability
//! carries the real AS; My AS must then be AS_TRANS, or the AS itself when
//! it fits two octets), BGP Identifier non-zero and, within an AS, not ours
//! (RFC 6286), hold time not 1 or 2. Unknown capabilities are ignored. The
//! hold time is the smaller proposal (0: no hold timer, no keepalives); the
//! keepalive interval a third of it, or the configured one if lower.
//!
//! # Hold timer
//!
//! We run the hold timer ourselves whatever the peer does: MetalLB's native
//! speaker runs none and never sends NOTIFICATION, so a dead speaker is found
//! only by our hold timer. KEEPALIVE, UPDATE and ROUTE-REFRESH restart it.
//! While waiting for the peer's OPEN it is [`PeerConfig::open_hold_time`]
//! (4 minutes by default, RFC 4271 8.2.2); if the negotiated hold time is 0,
//! that long timer keeps running in OpenConfirm until the peer's KEEPALIVE,
//! so a half-open handshake cannot hang forever.
//!
//! # Graceful restart helper (RFC 4724, RFC 8538)
//!
//! When an Established session goes down, [`Action::SessionDown`] carries
//! [`StalePaths`] when the peer's paths are to be kept, marked stale, for
//! the peer's restart time; `None` means withdraw them now. Paths are kept
//! only if we advertised Graceful Restart, the peer advertised it with a
//! non-zero restart time, and only for the negotiated families listed in the
//! peer's capability. Then, by cause:
//!
//! - TCP closed or failed, or our hold timer expired: kept (the peer may be
//!   restarting; a dead speaker cannot read our Hold Timer Expired anyway).
//! - A NOTIFICATION sent or received, when both sides set the N bit: kept,
//!   except Cease / Hard Reset (subcode 9), which never keeps them.
//! - A NOTIFICATION sent or received without the N bit on both sides:
//!   not kept.
//! - BFD down: not kept; the forwarding path itself is gone, and pointing
//!   traffic at a dead nexthop is exactly what BFD is there to prevent.
//!
//! With the N bit on both sides, the Ceases that RFC 8538 5.1 says MUST be a
//! Hard Reset (Maximum Number of Prefixes Reached, Administrative Shutdown,
//! Peer De-configured) are sent wrapped in Cease / Hard Reset (its data is
//! the inner code, subcode and data), so the peer drops our paths too.
//! Otherwise they are sent as they are.
//!
//! # Unexpected messages
//!
//! In OpenSent, OpenConfirm and Established an unexpected message is
//! answered with Finite State Machine Error and the subcode of RFC 6608
//! (1, 2, 3). In Idle, Connect and Active there is no connection, so a
//! message can only be a late one from a closed connection and is ignored.
//! ROUTE-REFRESH for a family not negotiated, and Enhanced Route Refresh
//! markers or unknown subtypes without that capability, are ignored (RFC
//! 2918 4, RFC 7313 5).

mod collision;
mod config;
mod negotiate;

use std::fmt;
use std::time::Duration;

use crate::bgp::wire::notification::{
    CEASE_ADMINISTRATIVE_SHUTDOWN, CEASE_CONNECTION_REJECTED, CEASE_HARD_RESET, CEASE_MAX_PREFIXES,
    CEASE_PEER_DECONFIGURED, CODE_CEASE, CODE_FSM, CODE_HOLD_TIMER_EXPIRED,
};
use crate::bgp::wire::{
    AfiSafi, Message, Notification, Open, RouteRefresh, RouteRefreshSubtype, WireError,
};

pub use collision::{collision_notification, resolve_collision, Collision, Direction};
pub use config::{GracefulRestartConfig, PeerAsMatch, PeerConfig, RetryBackoff};
pub use negotiate::{negotiate, Negotiated};

/// Cease subcode BFD Down (RFC 9384).
pub const CEASE_BFD_DOWN: u8 = 10;
/// FSM Error subcode: unexpected message in OpenSent (RFC 6608).
pub const FSM_UNEXPECTED_IN_OPEN_SENT: u8 = 1;
/// FSM Error subcode: unexpected message in OpenConfirm (RFC 6608).
pub const FSM_UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
/// FSM Error subcode: unexpected message in Established (RFC 6608).
pub const FSM_UNEXPECTED_IN_ESTABLISHED: u8 = 3;

/// Most timers fired by one [`Fsm::poll`]; any left are due at the next call.
const MAX_FIRES_PER_POLL: usize = 16;
/// Shortest retry wait, so a zero backoff cannot spin.
const MIN_RETRY: Duration = Duration::from_millis(1);

/// The session states of RFC 4271 8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, stopped, or held down.
    Idle,
    /// Dialling the peer.
    Connect,
    /// Waiting for the peer to connect, or for the next dial.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Up: UPDATEs flow.
    Established,
}

impl State {
    /// True in the states that own a TCP connection.
    pub fn has_connection(self) -> bool {
        matches!(
            self,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// How a started peer gets its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartMode {
    /// Dial the peer, and accept its connections too.
    Active,
    /// Only accept the peer's connections (MetalLB speakers dial out).
    Passive,
}

/// What happened, fed to [`Fsm::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start the peer (RFC 4271 events 1 and 4). Ignored unless Idle; in
    /// Idle it also ends a max-prefix hold-down.
    ManualStart(StartMode),
    /// Stop the peer (event 2): Cease / Administrative Shutdown, with the
    /// RFC 8203 shutdown communication if given, then Idle until started.
    ManualStop {
        /// Text for the peer's logs (RFC 8203, up to 255 octets).
        shutdown_message: Option<String>,
    },
    /// Our outbound connection succeeded (event 16).
    TcpConnected,
    /// We accepted the peer's inbound connection (event 17). Ask
    /// [`Fsm::inbound_decision`] first when the FSM may already have one.
    TcpConnectionConfirmed,
    /// The dial failed, or the peer closed or reset the connection (event 18).
    TcpConnectionFailed,
    /// A message was decoded from the connection.
    Message(Message),
    /// The byte stream could not be decoded: its NOTIFICATION is sent and
    /// the connection closed.
    DecodeError(WireError),
    /// The RIB found an UPDATE error that needs a session reset (RFC 7606):
    /// this NOTIFICATION is sent and the connection closed.
    UpdateError(Notification),
    /// BFD declared the peer's path down (RFC 5882): Cease / BFD Down.
    BfdDown,
    /// The RIB saw the peer exceed its prefix limit: Cease / Maximum Number
    /// of Prefixes Reached (RFC 4486: AFI, SAFI, limit), then Idle for
    /// `hold_down` (or until started again when `None`), refusing the peer's
    /// connections meanwhile.
    MaxPrefixExceeded {
        /// The family over its limit.
        family: AfiSafi,
        /// The configured limit.
        limit: u32,
        /// How long to stay down; `None`: until [`Event::ManualStart`].
        hold_down: Option<Duration>,
    },
    /// This connection lost a collision (event 23, see
    /// [`resolve_collision`]): Cease / Connection Collision Resolution.
    CollisionDump,
}

/// What to do, returned by [`Fsm::handle`] and [`Fsm::poll`] in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Dial the peer.
    Connect,
    /// Abandon the dial in progress (an inbound connection was taken
    /// instead, the FSM was stopped, or the dial timed out).
    CancelConnect,
    /// Write this message to the connection.
    Send(Message),
    /// Close the connection, after writing what was sent before.
    CloseConnection,
    /// The session is up with these parameters.
    SessionEstablished(Negotiated),
    /// The Established session went down.
    SessionDown {
        /// Why.
        reason: DownReason,
        /// Keep the peer's paths as stale for this long, for these
        /// families (graceful restart helper); `None`: withdraw them now.
        stale: Option<StalePaths>,
    },
    /// An UPDATE body (after the header) for the RIB; decode it with
    /// [`Negotiated::four_octet_as`].
    Update(Vec<u8>),
    /// The peer asks us to re-advertise a family (Request), or delimits its
    /// own refresh (Begin/End of Route Refresh, RFC 7313).
    RouteRefresh(RouteRefresh),
}

/// Why a session or connection went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Stopped by the operator; the Administrative Shutdown was sent.
    ManualStop,
    /// Our dial failed (no session was lost; recorded as the last error).
    DialFailed,
    /// The peer closed the connection, or it failed.
    ConnectionClosed,
    /// Nothing heard from the peer for the hold time; Hold Timer Expired sent.
    HoldTimerExpired,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// We found an error (OPEN, FSM, decoding, UPDATE) and sent this.
    NotificationSent(Notification),
    /// BFD declared the path down; Cease / BFD Down sent.
    BfdDown,
    /// The peer exceeded its prefix limit for a family; Cease sent.
    MaxPrefix {
        /// The family.
        family: AfiSafi,
        /// The limit.
        limit: u32,
    },
    /// The connection lost a collision; Cease sent.
    CollisionResolution,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::ManualStop => f.write_str("administratively stopped"),
            DownReason::DialFailed => f.write_str("connection attempt failed"),
            DownReason::ConnectionClosed => f.write_str("connection closed"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::NotificationReceived(n) => write!(f, "received {n}"),
            DownReason::NotificationSent(n) => write!(f, "sent {n}"),
            DownReason::BfdDown => f.write_str("BFD down"),
            DownReason::MaxPrefix { family, limit } => write!(
                f,
                "more than {limit} prefixes for AFI {} SAFI {}",
                family.afi.0, family.safi.0
            ),
            DownReason::CollisionResolution => f.write_str("connection collision resolution"),
        }
    }
}

/// The peer's paths to keep as stale while it restarts (RFC 4724 4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalePaths {
    /// The peer's advertised restart time.
    pub restart_time: Duration,
    /// The families whose paths are kept.
    pub families: Vec<AfiSafi>,
}

/// Whether to keep the peer's paths after a session ended for `reason`,
/// having sent `sent` (if any); see the module docs for the rules.
pub fn stale_paths(
    negotiated: &Negotiated,
    reason: &DownReason,
    sent: Option<&Notification>,
) -> Option<StalePaths> {
    let peer = negotiated.peer_graceful_restart.as_ref()?;
    if !negotiated.local_graceful_restart || peer.restart_time == 0 {
        return None;
    }
    let n_bit = negotiated.graceful_notification;
    let keeps = |n: &Notification| n_bit && !is_hard_reset(n);
    let keep = match reason {
        // Shutdown and max-prefix withdraw whatever was sent (with the N bit
        // it was a Hard Reset anyway); BFD down means the path is gone.
        DownReason::BfdDown | DownReason::ManualStop | DownReason::MaxPrefix { .. } => false,
        DownReason::NotificationReceived(n) => keeps(n),
        _ => match sent {
            Some(n) => keeps(n) || matches!(reason, DownReason::HoldTimerExpired),
            None => true,
        },
    };
    if !keep {
        return None;
    }
    let families: Vec<AfiSafi> = negotiated
        .families
        .iter()
        .copied()
        .filter(|f| peer.families.iter().any(|g| g.family == *f))
        .collect();
    (!families.is_empty()).then(|| StalePaths {
        restart_time: Duration::from_secs(u64::from(peer.restart_time)),
        families,
    })
}

/// True for Cease / Hard Reset (RFC 8538 3).
pub fn is_hard_reset(n: &Notification) -> bool {
    n.code == CODE_CEASE && n.subcode == CEASE_HARD_RESET
}

/// What to do with a new inbound connection for this peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundDecision {
    /// Feed it as [`Event::TcpConnectionConfirmed`].
    Accept,
    /// A collision (RFC 4271 6.8): run a second FSM on it and
    /// [`resolve_collision`] once the peer's OPEN is known.
    Collision,
    /// Send this NOTIFICATION on it and close it.
    Refuse(Notification),
    /// The Established peer negotiated graceful restart, so a new
    /// connection means it restarted (RFC 4724 4.2): feed
    /// [`Event::TcpConnectionFailed`] for the old connection, then
    /// [`Event::TcpConnectionConfirmed`] for this one.
    PeerRestarted,
}

/// Messages of each type, counted in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageCounts {
    /// OPEN.
    pub open: u64,
    /// UPDATE.
    pub update: u64,
    /// NOTIFICATION.
    pub notification: u64,
    /// KEEPALIVE.
    pub keepalive: u64,
    /// ROUTE-REFRESH.
    pub route_refresh: u64,
}

impl MessageCounts {
    /// All messages.
    pub fn total(&self) -> u64 {
        self.open + self.update + self.notification + self.keepalive + self.route_refresh
    }

    fn add(&mut self, other: &MessageCounts) {
        self.open = self.open.saturating_add(other.open);
        self.update = self.update.saturating_add(other.update);
        self.notification = self.notification.saturating_add(other.notification);
        self.keepalive = self.keepalive.saturating_add(other.keepalive);
        self.route_refresh = self.route_refresh.saturating_add(other.route_refresh);
    }

    fn count(&mut self, m: &Message) {
        let c = match m {
            Message::Open(_) => &mut self.open,
            Message::Update(_) => &mut self.update,
            Message::Notification(_) => &mut self.notification,
            Message::Keepalive => &mut self.keepalive,
            Message::RouteRefresh(_) => &mut self.route_refresh,
        };
        *c = c.saturating_add(1);
    }
}

/// The last reason a connection or session went down, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// When.
    pub at: Duration,
    /// Why.
    pub reason: DownReason,
}

/// Counters and times for `show bgp summary`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Messages received, per type.
    pub received: MessageCounts,
    /// Messages sent, per type.
    pub sent: MessageCounts,
    /// When the state last changed.
    pub state_since: Duration,
    /// When the current session was established, if it is.
    pub established_since: Option<Duration>,
    /// Times the session was established.
    pub established_count: u64,
    /// Times an Established session went down.
    pub dropped_count: u64,
    /// Outbound dials started.
    pub connect_attempts: u64,
    /// The last failure.
    pub last_error: Option<LastError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
    HoldDownEnd,
}

#[derive(Debug, Clone, Default)]
struct Timers {
    connect_retry: Option<Duration>,
    hold: Option<Duration>,
    keepalive: Option<Duration>,
    hold_down_end: Option<Duration>,
}

impl Timers {
    fn earliest(&self) -> Option<(Timer, Duration)> {
        [
            (Timer::HoldDownEnd, self.hold_down_end),
            (Timer::Hold, self.hold),
            (Timer::ConnectRetry, self.connect_retry),
            (Timer::Keepalive, self.keepalive),
        ]
        .into_iter()
        .filter_map(|(t, at)| at.map(|at| (t, at)))
        .min_by_key(|&(_, at)| at)
    }
}

/// The session state machine of one peer; see the module docs.
#[derive(Debug, Clone)]
pub struct Fsm {
    config: PeerConfig,
    state: State,
    mode: Option<StartMode>,
    held_down: bool,
    connection: Option<Direction>,
    peer_open: Option<Open>,
    negotiated: Option<Negotiated>,
    timers: Timers,
    retries: u32,
    rng: u64,
    stats: Stats,
}

impl Fsm {
    /// A stopped (Idle) FSM for this peer.
    pub fn new(config: PeerConfig) -> Self {
        let rng = config.jitter_seed;
        Self {
            config,
            state: State::Idle,
            mode: None,
            held_down: false,
            connection: None,
            peer_open: None,
            negotiated: None,
            timers: Timers::default(),
            retries: 0,
            rng,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// How the peer was started; `None` when stopped.
    pub fn mode(&self) -> Option<StartMode> {
        self.mode
    }

    /// True during a max-prefix hold-down.
    pub fn is_held_down(&self) -> bool {
        self.held_down
    }

    /// Who opened the current connection (OpenSent and later).
    pub fn connection(&self) -> Option<Direction> {
        self.connection
    }

    /// The peer's OPEN on the current connection (OpenConfirm, Established).
    pub fn peer_open(&self) -> Option<&Open> {
        self.peer_open.as_ref()
    }

    /// What was negotiated on the current connection (OpenConfirm,
    /// Established).
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Counters and times.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How long the session has been Established, if it is.
    pub fn uptime(&self, now: Duration) -> Option<Duration> {
        self.stats.established_since.map(|t| now.saturating_sub(t))
    }

    /// When [`Fsm::poll`] next has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.earliest().map(|(_, at)| at)
    }

    /// What to do with a new inbound connection from the peer (RFC 4271 6.8;
    /// see the module docs).
    pub fn inbound_decision(&self) -> InboundDecision {
        match self.state {
            State::Idle => InboundDecision::Refuse(Notification::new(
                CODE_CEASE,
                CEASE_CONNECTION_REJECTED,
                Vec::new(),
            )),
            State::Connect | State::Active => InboundDecision::Accept,
            State::OpenSent | State::OpenConfirm => InboundDecision::Collision,
            State::Established => {
                let restarting = self
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.local_graceful_restart && n.peer_graceful_restart.is_some());
                if restarting {
                    InboundDecision::PeerRestarted
                } else {
                    InboundDecision::Refuse(collision_notification())
                }
            }
        }
    }

    /// After a collision that this FSM's connection lost (it was given
    /// [`Event::CollisionDump`]), take over the winning connection from the
    /// second FSM that ran it: its state, peer OPEN, negotiation, hold and
    /// keepalive timers, and its message counts. This FSM keeps its mode,
    /// backoff, hold-down and history. Does nothing and returns false unless
    /// this FSM is in Active (started, no connection, not dialling: where
    /// [`Event::CollisionDump`] leaves it) and the winner is in OpenSent or
    /// OpenConfirm.
    pub fn take_connection_from(&mut self, winner: Fsm, now: Duration) -> bool {
        let usable = self.state == State::Active
            && !self.held_down
            && matches!(winner.state, State::OpenSent | State::OpenConfirm);
        if !usable {
            return false;
        }
        self.connection = winner.connection;
        self.peer_open = winner.peer_open;
        self.negotiated = winner.negotiated;
        self.timers.connect_retry = None;
        self.timers.hold = winner.timers.hold;
        self.timers.keepalive = winner.timers.keepalive;
        self.stats.received.add(&winner.stats.received);
        self.stats.sent.add(&winner.stats.sent);
        self.set_state(winner.state, now);
        true
    }

    /// Handle one event at time `now`.
    pub fn handle(&mut self, event: Event, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::ManualStart(mode) => self.start(mode, now, &mut out),
            Event::ManualStop { shutdown_message } => {
                self.stop(shutdown_message.as_deref(), now, &mut out)
            }
            Event::TcpConnected => self.connection_up(Direction::Outbound, now, &mut out),
            Event::TcpConnectionConfirmed => self.connection_up(Direction::Inbound, now, &mut out),
            Event::TcpConnectionFailed => match self.state {
                State::Connect => {
                    self.stats.last_error = Some(LastError {
                        at: now,
                        reason: DownReason::DialFailed,
                    });
                    self.set_state(State::Active, now);
                }
                s if s.has_connection() => {
                    self.teardown(DownReason::ConnectionClosed, None, now, &mut out)
                }
                _ => {}
            },
            Event::Message(m) => self.message(m, now, &mut out),
            Event::DecodeError(e) => {
                if self.state.has_connection() {
                    let n = e.notification();
                    self.teardown(
                        DownReason::NotificationSent(n.clone()),
                        Some(n),
                        now,
                        &mut out,
                    );
                }
            }
            Event::UpdateError(n) => {
                if self.state == State::Established {
                    self.teardown(
                        DownReason::NotificationSent(n.clone()),
                        Some(n),
                        now,
                        &mut out,
                    );
                }
            }
            Event::BfdDown => {
                if self.state.has_connection() {
                    let n = Notification::new(CODE_CEASE, CEASE_BFD_DOWN, Vec::new());
                    self.teardown(DownReason::BfdDown, Some(n), now, &mut out);
                }
            }
            Event::MaxPrefixExceeded {
                family,
                limit,
                hold_down,
            } => {
                if self.state == State::Established {
                    let mut data = Vec::with_capacity(7);
                    data.extend_from_slice(&family.afi.0.to_be_bytes());
                    data.push(family.safi.0);
                    data.extend_from_slice(&limit.to_be_bytes());
                    let n = self.cease(CEASE_MAX_PREFIXES, data);
                    self.held_down = true;
                    self.timers.hold_down_end = hold_down.map(|d| now.saturating_add(d));
                    self.teardown(
                        DownReason::MaxPrefix { family, limit },
                        Some(n),
                        now,
                        &mut out,
                    );
                }
            }
            Event::CollisionDump => {
                if self.state.has_connection() {
                    let n = collision_notification();
                    self.teardown(DownReason::CollisionResolution, Some(n), now, &mut out);
                }
            }
        }
        out
    }

    /// Fire the timers due at `now` (ConnectRetry, Hold, Keepalive, end of
    /// hold-down).
    pub fn poll(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        for _ in 0..MAX_FIRES_PER_POLL {
            let Some((timer, at)) = self.timers.earliest() else {
                break;
            };
            if at > now {
                break;
            }
            self.fire(timer, now, &mut out);
        }
        out
    }

    fn fire(&mut self, timer: Timer, now: Duration, out: &mut Vec<Action>) {
        match timer {
            Timer::ConnectRetry => {
                self.timers.connect_retry = None;
                match (self.state, self.mode) {
                    (State::Connect, _) => {
                        out.push(Action::CancelConnect);
                        self.dial(now, out);
                    }
                    (State::Active, Some(StartMode::Active)) => self.dial(now, out),
                    _ => {}
                }
            }
            Timer::Hold => {
                self.timers.hold = None;
                if self.state.has_connection() {
                    let n = Notification::new(CODE_HOLD_TIMER_EXPIRED, 0, Vec::new());
                    self.teardown(DownReason::HoldTimerExpired, Some(n), now, out);
                }
            }
            Timer::Keepalive => {
                self.timers.keepalive = None;
                if matches!(self.state, State::OpenConfirm | State::Established) {
                    self.send(Message::Keepalive, out);
                    self.arm_keepalive(now);
                }
            }
            Timer::HoldDownEnd => {
                self.timers.hold_down_end = None;
                if self.held_down {
                    self.held_down = false;
                    if let (State::Idle, Some(mode)) = (self.state, self.mode) {
                        self.begin(mode, now, out);
                    }
                }
            }
        }
    }

    fn start(&mut self, mode: StartMode, now: Duration, out: &mut Vec<Action>) {
        if self.state != State::Idle {
            return;
        }
        self.mode = Some(mode);
        self.held_down = false;
        self.timers = Timers::default();
        self.retries = 0;
        self.begin(mode, now, out);
    }

    /// Leave Idle: dial (active) or wait for the peer (passive).
    fn begin(&mut self, mode: StartMode, now: Duration, out: &mut Vec<Action>) {
        match mode {
            StartMode::Active => self.dial(now, out),
            StartMode::Passive => self.set_state(State::Active, now),
        }
    }

    fn dial(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.set_state(State::Connect, now);
        self.stats.connect_attempts = self.stats.connect_attempts.saturating_add(1);
        out.push(Action::Connect);
        let wait = self.next_retry_wait();
        self.timers.connect_retry = Some(now.saturating_add(wait));
    }

    fn stop(&mut self, message: Option<&str>, now: Duration, out: &mut Vec<Action>) {
        self.mode = None;
        self.held_down = false;
        self.retries = 0;
        self.timers.hold_down_end = None;
        self.timers.connect_retry = None;
        match self.state {
            State::Idle => {}
            State::Connect => {
                out.push(Action::CancelConnect);
                self.set_state(State::Idle, now);
            }
            State::Active => self.set_state(State::Idle, now),
            State::OpenSent | State::OpenConfirm | State::Established => {
                let data = match message {
                    Some(text) => Notification::administrative_shutdown(text).data,
                    None => Vec::new(),
                };
                let n = self.cease(CEASE_ADMINISTRATIVE_SHUTDOWN, data);
                self.teardown(DownReason::ManualStop, Some(n), now, out);
            }
        }
    }

    fn connection_up(&mut self, direction: Direction, now: Duration, out: &mut Vec<Action>) {
        match self.state {
            State::Idle => {
                // Only an inbound connection can show up here: refuse it.
                if let InboundDecision::Refuse(n) = self.inbound_decision() {
                    self.send(Message::Notification(n), out);
                }
                out.push(Action::CloseConnection);
            }
            State::Connect | State::Active => {
                if self.state == State::Connect && direction == Direction::Inbound {
                    out.push(Action::CancelConnect);
                }
                self.timers.connect_retry = None;
                self.connection = Some(direction);
                self.peer_open = None;
                self.negotiated = None;
                let open = self.config.open();
                self.send(Message::Open(open), out);
                self.timers.hold = Some(now.saturating_add(self.config.open_hold_time));
                self.set_state(State::OpenSent, now);
            }
            // A second connection: the session task resolves it with
            // `inbound_decision` and a second FSM; this one keeps its own.
            State::OpenSent | State::OpenConfirm | State::Established => {}
        }
    }

    fn message(&mut self, message: Message, now: Duration, out: &mut Vec<Action>) {
        self.stats.received.count(&message);
        if !self.state.has_connection() {
            return;
        }
        match (self.state, message) {
            (_, Message::Notification(n)) => {
                self.teardown(DownReason::NotificationReceived(n), None, now, out)
            }
            (State::OpenSent, Message::Open(open)) => self.open_received(open, now, out),
            (State::OpenSent, _) => self.fsm_error(FSM_UNEXPECTED_IN_OPEN_SENT, now, out),
            (State::OpenConfirm, Message::Keepalive) => self.established(now, out),
            (State::OpenConfirm, _) => self.fsm_error(FSM_UNEXPECTED_IN_OPEN_CONFIRM, now, out),
            (State::Established, Message::Keepalive) => self.restart_hold(now),
            (State::Established, Message::Update(body)) => {
                self.restart_hold(now);
                out.push(Action::Update(body));
            }
            (State::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now);
                self.route_refresh(rr, out);
            }
            (State::Established, Message::Open(_)) => {
                self.fsm_error(FSM_UNEXPECTED_IN_ESTABLISHED, now, out)
            }
            // Unreachable: has_connection() was checked above.
            (State::Idle | State::Connect | State::Active, _) => {}
        }
    }

    fn open_received(&mut self, open: Open, now: Duration, out: &mut Vec<Action>) {
        match negotiate(&self.config, &open) {
            Ok(neg) => {
                self.peer_open = Some(open);
                self.send(Message::Keepalive, out);
                if neg.hold_time > 0 {
                    self.timers.hold =
                        Some(now.saturating_add(Duration::from_secs(neg.hold_time.into())));
                }
                self.negotiated = Some(neg);
                self.arm_keepalive(now);
                self.set_state(State::OpenConfirm, now);
            }
            Err(n) => self.teardown(DownReason::NotificationSent(n.clone()), Some(n), now, out),
        }
    }

    fn established(&mut self, now: Duration, out: &mut Vec<Action>) {
        let Some(neg) = self.negotiated.clone() else {
            // OpenConfirm always has a negotiation; be safe regardless.
            self.fsm_error(FSM_UNEXPECTED_IN_OPEN_CONFIRM, now, out);
            return;
        };
        self.retries = 0;
        self.stats.established_since = Some(now);
        self.stats.established_count = self.stats.established_count.saturating_add(1);
        self.set_state(State::Established, now);
        self.restart_hold(now);
        out.push(Action::SessionEstablished(neg));
    }

    fn route_refresh(&mut self, rr: RouteRefresh, out: &mut Vec<Action>) {
        let Some(neg) = &self.negotiated else {
            return;
        };
        if !neg.families.contains(&rr.family) {
            return;
        }
        let wanted = match rr.subtype {
            RouteRefreshSubtype::Request => true,
            RouteRefreshSubtype::Begin | RouteRefreshSubtype::End => neg.enhanced_route_refresh,
            RouteRefreshSubtype::Other(_) => false,
        };
        if wanted {
            out.push(Action::RouteRefresh(rr));
        }
    }

    fn fsm_error(&mut self, subcode: u8, now: Duration, out: &mut Vec<Action>) {
        let n = Notification::new(CODE_FSM, subcode, Vec::new());
        self.teardown(DownReason::NotificationSent(n.clone()), Some(n), now, out);
    }

    /// A Cease, wrapped in a Hard Reset when RFC 8538 5.1 says it MUST be and
    /// the N bit was negotiated.
    fn cease(&self, subcode: u8, data: Vec<u8>) -> Notification {
        let n_bit = self
            .negotiated
            .as_ref()
            .is_some_and(|n| n.graceful_notification);
        let must_hard_reset = matches!(
            subcode,
            CEASE_MAX_PREFIXES | CEASE_ADMINISTRATIVE_SHUTDOWN | CEASE_PEER_DECONFIGURED
        );
        if n_bit && must_hard_reset {
            let mut inner = Vec::with_capacity(2 + data.len());
            inner.push(CODE_CEASE);
            inner.push(subcode);
            inner.extend_from_slice(&data);
            Notification::new(CODE_CEASE, CEASE_HARD_RESET, inner)
        } else {
            Notification::new(CODE_CEASE, subcode, data)
        }
    }

    /// End the current connection: send `notification` if any, close, report
    /// the session down if it was Established, then go back to waiting
    /// (started), or to Idle (stopped or held down).
    fn teardown(
        &mut self,
        reason: DownReason,
        notification: Option<Notification>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if let Some(n) = &notification {
            self.send(Message::Notification(n.clone()), out);
        }
        out.push(Action::CloseConnection);
        if self.state == State::Established {
            let stale = self
                .negotiated
                .as_ref()
                .and_then(|neg| stale_paths(neg, &reason, notification.as_ref()));
            out.push(Action::SessionDown {
                reason: reason.clone(),
                stale,
            });
            self.stats.established_since = None;
            self.stats.dropped_count = self.stats.dropped_count.saturating_add(1);
        }
        self.stats.last_error = Some(LastError { at: now, reason });
        self.connection = None;
        self.peer_open = None;
        self.negotiated = None;
        self.timers.hold = None;
        self.timers.keepalive = None;
        self.timers.connect_retry = None;
        match (self.held_down, self.mode) {
            (false, Some(StartMode::Passive)) => self.set_state(State::Active, now),
            (false, Some(StartMode::Active)) => {
                self.set_state(State::Active, now);
                let wait = self.next_retry_wait();
                self.timers.connect_retry = Some(now.saturating_add(wait));
            }
            _ => self.set_state(State::Idle, now),
        }
    }

    fn send(&mut self, message: Message, out: &mut Vec<Action>) {
        self.stats.sent.count(&message);
        out.push(Action::Send(message));
    }

    fn restart_hold(&mut self, now: Duration) {
        self.timers.hold = self
            .negotiated
            .as_ref()
            .filter(|n| n.hold_time > 0)
            .map(|n| now.saturating_add(Duration::from_secs(n.hold_time.into())));
    }

    fn arm_keepalive(&mut self, now: Duration) {
        self.timers.keepalive = self
            .negotiated
            .as_ref()
            .filter(|n| n.keepalive > 0)
            .map(|n| now.saturating_add(Duration::from_secs(n.keepalive.into())));
    }

    fn set_state(&mut self, state: State, now: Duration) {
        if state != self.state {
            self.state = state;
            self.stats.state_since = now;
        }
    }

    /// The next ConnectRetryTimer wait: `min(base * 2^n, max)` times a jitter
    /// in 0.75..=1.0 (RFC 4271 10), `n` counting waits since the last
    /// Established.
    fn next_retry_wait(&mut self) -> Duration {
        let RetryBackoff { base, max } = self.config.connect_retry;
        let factor = 1u32 << self.retries.min(20);
        let wait = base.saturating_mul(factor).min(max);
        self.retries = self.retries.saturating_add(1);
        let jitter = 0.75 + 0.25 * self.next_unit();
        Duration::try_from_secs_f64(wait.as_secs_f64() * jitter)
            .unwrap_or(wait)
            .max(MIN_RETRY)
    }

    /// A uniform draw from 0.0..=1.0 (splitmix64).
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / ((1u64 << 53) - 1) as f64
    }
}
