//! Connection collisions (RFC 4271 6.8, RFC 6286 2.3): when we and the peer
//! dial each other at once, which of the two connections survives.

use crate::bgp::wire::notification::{CEASE_CONNECTION_COLLISION_RESOLUTION, CODE_CEASE};
use crate::bgp::wire::Notification;

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We dialled the peer.
    Outbound,
    /// The peer dialled us and we accepted.
    Inbound,
}

impl Direction {
    /// The other direction.
    pub fn opposite(self) -> Self {
        match self {
            Direction::Outbound => Direction::Inbound,
            Direction::Inbound => Direction::Outbound,
        }
    }
}

/// The outcome of a collision: keep one connection, close the other after
/// sending it [`Collision::notification`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The connection to keep.
    pub keep: Direction,
    /// The connection to close.
    pub close: Direction,
    /// Cease / Connection Collision Resolution, to send on the closed one.
    pub notification: Notification,
}

/// Decide a collision between the connection we initiated and the one the
/// peer initiated (RFC 4271 6.8): the speaker with the higher BGP Identifier
/// (compared as unsigned 32-bit integers) keeps the connection it initiated.
/// With equal identifiers, possible between ASes (RFC 6286 2.3), the speaker
/// with the higher AS keeps the connection it initiated. Fully equal
/// (identifier and AS: an OPEN that [`negotiate`](super::negotiate) refuses)
/// keeps the inbound one.
///
/// The remote identifier and AS come from the OPEN received on either
/// connection; the decision can be taken as soon as one OPEN has arrived.
pub fn resolve_collision(
    local_id: u32,
    local_as: u32,
    remote_id: u32,
    remote_as: u32,
) -> Collision {
    let local_wins = (local_id, local_as) > (remote_id, remote_as);
    let keep = if local_wins {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    Collision {
        keep,
        close: keep.opposite(),
        notification: collision_notification(),
    }
}

/// Cease / Connection Collision Resolution (RFC 4486), no data.
pub fn collision_notification() -> Notification {
    Notification::new(
        CODE_CEASE,
        CEASE_CONNECTION_COLLISION_RESOLUTION,
        Vec::new(),
    )
}
