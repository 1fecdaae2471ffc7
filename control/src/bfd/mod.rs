//! Bidirectional Forwarding Detection (RFC 5880), single hop (RFC 5881),
//! asynchronous mode: how ecmpd notices within a second that a MetalLB node
//! is gone, long before BGP's hold timer would.
//!
//! Three layers, each usable alone:
//! - [`packet`]: the Control packet codec, with the reception checks of RFC
//!   5880 6.8.6 as typed errors. Never panics on any input.
//! - [`session`]: one session as a pure state machine (packets and `now` in,
//!   [`Action`]s out), configured by a [`Profile`] with MetalLB's
//!   `BFDProfile` fields and defaults.
//! - [`runner`]: the tokio task that owns the sessions of one local address,
//!   receives on UDP 3784 with the TTL check of RFC 5881 (255 only), sends
//!   with TTL 255, and reports state changes on a channel.
//!
//! Measuring failover: every state change carries the time of the last valid
//! packet from the peer ([`StateChange::last_rx`], [`PeerEvent::last_rx`]),
//! so "last BFD packet received -> FIB changed" is the FIB writer's timestamp
//! minus that, and "last packet -> Down" is at least one Detection Time.
//!
//! Not implemented, each said where it matters: authentication (packets with
//! the A bit are refused as unsupported), the Echo function (`echoMode: true`
//! is refused by [`Profile::validate`]), Demand mode (never asked for; a
//! remote's D bit is recorded and otherwise ignored), multi-hop (RFC 5883).
#![warn(missing_docs)]

pub mod packet;

pub mod runner;
pub mod session;

pub use packet::{Authentication, ControlPacket, Diagnostic, EncodeError, PacketError, State};
pub use runner::{BfdRunner, PeerEvent, PeerStatus, RunnerConfig, RunnerCounters, RunnerError};
pub use session::{
    Action, Profile, ProfileError, Session, SessionCounters, SessionStatus, StateChange,
};
