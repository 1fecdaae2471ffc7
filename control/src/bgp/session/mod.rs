//! BGP sessions over TCP on tokio: the thin glue between sockets and the
//! pure [`fsm`](crate::bgp::fsm). Start a [`BgpInstance`] with a
//! [`BgpConfig`]; it listens, accepts configured neighbours and dynamic
//! neighbours from listen ranges, dials active neighbours, and reports
//! sessions and decoded UPDATEs as [`SessionEvent`]s on a bounded channel
//! for the RIB task.
//!
//! # Tasks and what flows between them
//!
//! Every task is spawned from [`BgpInstance::start`] or by the instance
//! task; only the instance task holds BGP state.
//!
//! ```text
//!  listener task (one per listen address)
//!      accept -> IoEvent::Accepted ------------------------\
//!  dial task (one per dial in progress, aborted on cancel)   \
//!      connect -> IoEvent::Dialled ------------------------- > instance task
//!  connection task (one per TCP connection)                 /   owns every Fsm,
//!      read + frame -> IoEvent::{Received, Malformed, Closed}    the peer table,
//!      <- Outgoing::{Bytes, Close} (unbounded write queue)      timers, decoding
//!  BgpInstance handle -> Command (bounded) -------------------/        |
//!                                                                      v
//!                         SessionEvent (bounded mpsc) -> RIB task
//! ```
//!
//! - The instance task owns one [`Fsm`](crate::bgp::fsm::Fsm) per peer
//!   (plus a second one while a connection collision is being resolved),
//!   sleeps until the earliest [`next_deadline`](crate::bgp::fsm::Fsm::next_deadline)
//!   of all of them and polls the ones due; time is a monotonic
//!   [`Duration`] since the instance started.
//! - News for the RIB waits in a queue inside the instance until the
//!   bounded channel has room; while that queue is long, the instance stops
//!   reading from connections (TCP pushes back on the speakers) but keeps
//!   firing timers and answering the handle, so a slow RIB neither drops
//!   sessions nor deadlocks when it calls the handle.
//! - Connection tasks frame with the negotiated maximum message length (a
//!   shared atomic the instance raises once Extended Message is
//!   negotiated) and never decide anything.
//! - UPDATE bodies are decoded in the instance task with the session's
//!   [`UpdateContext`](crate::bgp::wire::UpdateContext) (4-octet AS, iBGP,
//!   the peer AS for the first-AS check); an error that RFC 7606 leaves to a
//!   session reset becomes [`Event::DecodeError`](crate::bgp::fsm::Event::DecodeError).
//!
//! # Dynamic neighbours
//!
//! A connection from an address that is no configured neighbour is matched
//! against the longest listen range containing it; the range's limit is
//! enforced, and a new FSM (passive) is created from the range's template.
//! As in FRR, the neighbour is forgotten when its connection ends (unless
//! held down after max-prefix); its next connection is a new neighbour with
//! a new [`PeerKey::generation`]. Connections matching no neighbour and no
//! range are closed, counted and logged.
//!
//! # Collisions
//!
//! When a configured neighbour we are dialling, or whose connection is still
//! in OpenSent or OpenConfirm, dials us too, the new connection gets its
//! own passive FSM until the peer's OPEN is known on either; then
//! [`resolve_collision`](crate::bgp::fsm::resolve_collision) picks one, the
//! loser is sent Cease / Connection Collision Resolution, and if the new
//! connection won, the neighbour's FSM takes it over
//! ([`take_connection_from`](crate::bgp::fsm::Fsm::take_connection_from)).

mod config;
mod connection;
mod instance;
mod listener;
pub mod sockopt;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::bgp::fsm::{DownReason, Negotiated, PeerAsMatch, StalePaths, State};
use crate::bgp::wire::{AfiSafi, DecodedUpdate, EncodeError, RouteRefresh, Update};

pub use config::{
    prefix_contains, BgpConfig, Hops, ListenRange, NeighborConfig, SessionTimers, BGP_PORT,
};
pub use sockopt::SockoptError;

/// A neighbour as the RIB knows it: its address, and a generation that
/// changes each time a dynamic neighbour is created again, so news about an
/// earlier incarnation is never mistaken for the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    /// The neighbour's address.
    pub address: IpAddr,
    /// Which incarnation (unique within the instance).
    pub generation: u64,
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.address, self.generation)
    }
}

/// News for the RIB task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    /// Which neighbour.
    pub peer: PeerKey,
    /// What happened.
    pub kind: SessionEventKind,
}

/// What happened to a neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEventKind {
    /// The session is up with these parameters.
    Established(Negotiated),
    /// The session went down; withdraw the neighbour's paths, or keep them
    /// as stale for `stale` (graceful restart helper).
    Down {
        /// Why.
        reason: DownReason,
        /// Paths to keep as stale, if any.
        stale: Option<StalePaths>,
    },
    /// An UPDATE, decoded, with its RFC 7606 outcome.
    Update(Box<DecodedUpdate>),
    /// The End-of-RIB marker of a family (RFC 4724 2).
    EndOfRib(AfiSafi),
    /// The neighbour asks us to re-advertise a family, or delimits its own
    /// enhanced refresh (RFC 2918, RFC 7313).
    RouteRefreshRequest(RouteRefresh),
}

/// One row of `show bgp summary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborSummary {
    /// The neighbour.
    pub peer: PeerKey,
    /// Its AS: the negotiated one once known, else the configured one.
    pub remote_as: Option<u32>,
    /// True for a dynamic neighbour (from a listen range).
    pub dynamic: bool,
    /// FSM state.
    pub state: State,
    /// How long the session has been up, if it is.
    pub uptime: Option<Duration>,
    /// How long it has been in this state.
    pub state_for: Duration,
    /// Messages received.
    pub messages_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Times established.
    pub established_count: u64,
    /// Times an established session dropped.
    pub dropped_count: u64,
    /// The last error, as a sentence.
    pub last_error: Option<String>,
}

/// Connections refused, by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefusedCounts {
    /// From an address that is no neighbour and in no listen range.
    pub unknown_address: u64,
    /// Over a listen range's limit of dynamic neighbours.
    pub range_limit: u64,
    /// Refused by the neighbour's FSM (stopped, held down, or a collision
    /// with an established session).
    pub by_session: u64,
    /// Socket options could not be applied.
    pub socket_error: u64,
}

/// `show bgp summary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSummary {
    /// Our AS.
    pub local_as: u32,
    /// Our identifier.
    pub router_id: std::net::Ipv4Addr,
    /// Every neighbour, by address.
    pub neighbors: Vec<NeighborSummary>,
    /// Connections refused.
    pub refused: RefusedCounts,
    /// Connection collisions resolved (RFC 4271 6.8).
    pub collisions: u64,
}

impl BgpSummary {
    /// The neighbour at `address`, if known.
    pub fn neighbor(&self, address: IpAddr) -> Option<&NeighborSummary> {
        self.neighbors.iter().find(|n| n.peer.address == address)
    }
}

/// Failures of the session layer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A socket option could not be set.
    #[error(transparent)]
    Sockopt(#[from] SockoptError),
    /// Two neighbours with one address, say.
    #[error("invalid BGP configuration: {0}")]
    Config(String),
    /// No such neighbour (or an earlier generation of it).
    #[error("no BGP neighbour {0}")]
    UnknownPeer(PeerKey),
    /// The neighbour's session is not Established.
    #[error("the BGP session with {0} is not established")]
    NotEstablished(PeerKey),
    /// The UPDATE cannot be encoded.
    #[error("cannot encode the UPDATE: {0}")]
    Encode(#[from] EncodeError),
    /// The UPDATE is longer than the session allows.
    #[error("the UPDATE is {len} octets, more than the {max} the session allows")]
    MessageTooLong {
        /// Its length.
        len: usize,
        /// The negotiated maximum.
        max: usize,
    },
    /// The instance has shut down.
    #[error("the BGP instance has shut down")]
    Stopped,
    /// The neighbour did not negotiate what was asked for.
    #[error("{peer} did not negotiate {what}")]
    NotNegotiated {
        /// The neighbour.
        peer: PeerKey,
        /// What is missing (`route refresh`, `ipv6-unicast`).
        what: String,
    },
}

/// What the handle asks of the instance task.
#[derive(Debug)]
pub(crate) enum Command {
    SendUpdate {
        peer: PeerKey,
        update: Box<Update>,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    ShutdownPeer {
        peer: PeerKey,
        message: Option<String>,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    MaxPrefix {
        peer: PeerKey,
        family: AfiSafi,
        limit: u32,
        hold_down: Option<Duration>,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    BfdDown {
        peer: PeerKey,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    RouteRefresh {
        peer: PeerKey,
        family: AfiSafi,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Snapshot {
        reply: oneshot::Sender<BgpSummary>,
    },
    Shutdown,
}

/// A running BGP instance: the handle to command it. Dropping it stops the
/// instance without waiting; [`BgpInstance::shutdown`] also waits until
/// every task has ended.
#[derive(Debug)]
pub struct BgpInstance {
    commands: mpsc::Sender<Command>,
    task: Option<JoinHandle<()>>,
    listen_addrs: Vec<SocketAddr>,
}

impl BgpInstance {
    /// Bind the listeners, start the configured neighbours and return the
    /// handle and the receiving end of the [`SessionEvent`] channel. Must be
    /// called within a tokio runtime.
    pub fn start(config: BgpConfig) -> Result<(Self, mpsc::Receiver<SessionEvent>), SessionError> {
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let (commands, commands_rx) = mpsc::channel(64);
        let (task, listen_addrs) = instance::spawn(config, events_tx, commands_rx)?;
        Ok((
            Self {
                commands,
                task: Some(task),
                listen_addrs,
            },
            events_rx,
        ))
    }

    /// The addresses actually listened on (with the ports picked for port 0).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| SessionError::Stopped)?;
        rx.await.map_err(|_| SessionError::Stopped)
    }

    /// Send an UPDATE to an Established neighbour (re-advertising); encoded
    /// with the session's 4-octet AS setting and size limit.
    pub async fn send_update(&self, peer: PeerKey, update: Update) -> Result<(), SessionError> {
        self.ask(|reply| Command::SendUpdate {
            peer,
            update: Box::new(update),
            reply,
        })
        .await?
    }

    /// Ask an Established neighbour to send a family's routes again
    /// (ROUTE-REFRESH, RFC 2918): refused unless it advertised route
    /// refresh and the family was negotiated.
    pub async fn route_refresh(&self, peer: PeerKey, family: AfiSafi) -> Result<(), SessionError> {
        self.ask(|reply| Command::RouteRefresh {
            peer,
            family,
            reply,
        })
        .await?
    }

    /// Stop a neighbour: Cease / Administrative Shutdown with this message
    /// (RFC 8203). A configured neighbour stays stopped; a dynamic one is
    /// forgotten.
    pub async fn shutdown_peer(
        &self,
        peer: PeerKey,
        message: Option<String>,
    ) -> Result<(), SessionError> {
        self.ask(|reply| Command::ShutdownPeer {
            peer,
            message,
            reply,
        })
        .await?
    }

    /// The RIB found the neighbour over its prefix limit for `family`: Cease
    /// / Maximum Number of Prefixes Reached, then refuse it for `hold_down`
    /// (`None`: until restarted).
    pub async fn max_prefix_exceeded(
        &self,
        peer: PeerKey,
        family: AfiSafi,
        limit: u32,
        hold_down: Option<Duration>,
    ) -> Result<(), SessionError> {
        self.ask(|reply| Command::MaxPrefix {
            peer,
            family,
            limit,
            hold_down,
            reply,
        })
        .await?
    }

    /// BFD declared the neighbour's path down: Cease / BFD Down.
    pub async fn bfd_down(&self, peer: PeerKey) -> Result<(), SessionError> {
        self.ask(|reply| Command::BfdDown { peer, reply }).await?
    }

    /// Every neighbour's state and counters (`show bgp summary`).
    pub async fn snapshot(&self) -> Result<BgpSummary, SessionError> {
        self.ask(|reply| Command::Snapshot { reply }).await
    }

    /// Stop every session (Cease / Administrative Shutdown), close every
    /// connection and listener, and wait for all tasks to end.
    pub async fn shutdown(mut self) {
        let _ = self.commands.send(Command::Shutdown).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// How a neighbour's configured AS reads in a summary.
pub(crate) fn configured_as(m: &PeerAsMatch, local_as: u32) -> Option<u32> {
    match m {
        PeerAsMatch::Exact(asn) => Some(*asn),
        PeerAsMatch::Internal => Some(local_as),
        PeerAsMatch::OneOf(v) if v.len() == 1 => v.first().copied(),
        _ => None,
    }
}
