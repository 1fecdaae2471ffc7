//! What the session layer is started with: our identity, where to listen,
//! the configured neighbours and the listen ranges that accept dynamic
//! neighbours (MetalLB speakers, which only dial out).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use dataplane::fib::table::Prefix;

use crate::bgp::fsm::{PeerAsMatch, PeerConfig, RetryBackoff};

pub use super::sockopt::Hops;

/// The BGP port (RFC 4271 8.2.1).
pub const BGP_PORT: u16 = 179;

/// Timers of one neighbour or listen range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimers {
    /// Hold time we propose, seconds (0: none; 1 and 2 are raised to 3).
    pub hold_time: u16,
    /// Keepalive interval if lower than a third of the hold time.
    pub keepalive: Option<u16>,
    /// Hold timer while waiting for the peer's OPEN.
    pub open_hold_time: Duration,
    /// Backoff of our dials (active neighbours).
    pub connect_retry: RetryBackoff,
}

impl Default for SessionTimers {
    /// Hold 90 s (MetalLB's default), keepalive a third, 4 minutes for the
    /// OPEN, dials from 2 s doubling to 60 s.
    fn default() -> Self {
        Self {
            hold_time: 90,
            keepalive: None,
            open_hold_time: Duration::from_secs(240),
            connect_retry: RetryBackoff::default(),
        }
    }
}

/// A configured neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Its address: we dial it, and accept connections from it.
    pub address: IpAddr,
    /// Its BGP port, for our dials.
    pub port: u16,
    /// The AS its OPEN may carry.
    pub remote_as: PeerAsMatch,
    /// Only accept its connections, never dial (FRR's `passive`).
    pub passive: bool,
    /// Timers.
    pub timers: SessionTimers,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// TTL policy: single hop, multihop or GTSM.
    pub hops: Hops,
    /// Source address of our dials (FRR's `update-source`).
    pub source: Option<IpAddr>,
}

impl NeighborConfig {
    /// An active neighbour on port 179 with default timers, no password,
    /// directly connected.
    pub fn new(address: IpAddr, remote_as: PeerAsMatch) -> Self {
        Self {
            address,
            port: BGP_PORT,
            remote_as,
            passive: false,
            timers: SessionTimers::default(),
            password: None,
            hops: Hops::Direct,
            source: None,
        }
    }

    /// Where our dials go.
    pub fn target(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// A range of addresses from which neighbours may connect (FRR's `bgp
/// listen range`), each accepted as a dynamic neighbour from this template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenRange {
    /// The addresses accepted.
    pub prefix: Prefix,
    /// The AS a neighbour's OPEN may carry: usually External, Internal or
    /// a list (FRR's `remote-as external|internal`, MetalLB's ASN per
    /// speaker).
    pub remote_as: PeerAsMatch,
    /// Timers.
    pub timers: SessionTimers,
    /// TCP MD5 password for the whole range.
    pub password: Option<String>,
    /// TTL policy.
    pub hops: Hops,
    /// Most dynamic neighbours at once from this range (FRR's `bgp listen
    /// limit`, 100 by default).
    pub limit: usize,
}

impl ListenRange {
    /// A range with default timers, no password, limit 100.
    pub fn new(prefix: Prefix, remote_as: PeerAsMatch) -> Self {
        Self {
            prefix,
            remote_as,
            timers: SessionTimers::default(),
            password: None,
            hops: Hops::Direct,
            limit: 100,
        }
    }

    /// True if `addr` is inside the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        prefix_contains(&self.prefix, addr)
    }
}

/// Whether `addr` lies inside `prefix` ([`Prefix::contains`]).
pub fn prefix_contains(prefix: &Prefix, addr: IpAddr) -> bool {
    prefix.contains(addr)
}

/// Everything the session layer starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Addresses and ports to listen on (port 0 picks one; see
    /// [`BgpInstance::listen_addrs`](super::BgpInstance::listen_addrs)).
    pub listen: Vec<SocketAddr>,
    /// Configured neighbours.
    pub neighbors: Vec<NeighborConfig>,
    /// Listen ranges for dynamic neighbours.
    pub listen_ranges: Vec<ListenRange>,
    /// Capacity of the [`SessionEvent`](super::SessionEvent) channel.
    pub event_capacity: usize,
}

impl BgpConfig {
    /// No neighbours, no ranges, no listeners yet; 1024 events buffered.
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> Self {
        Self {
            local_as,
            router_id,
            listen: Vec::new(),
            neighbors: Vec::new(),
            listen_ranges: Vec::new(),
            event_capacity: 1024,
        }
    }

    /// The FSM configuration for a neighbour with these settings.
    pub(crate) fn peer_config(
        &self,
        address: IpAddr,
        remote_as: PeerAsMatch,
        timers: &SessionTimers,
    ) -> PeerConfig {
        let mut c = PeerConfig::new(self.local_as, u32::from(self.router_id), remote_as);
        c.hold_time = timers.hold_time;
        c.keepalive = timers.keepalive;
        c.open_hold_time = timers.open_hold_time;
        c.connect_retry = timers.connect_retry;
        c.jitter_seed = match address {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64)
            }
        };
        c
    }

    /// The longest listen range containing `addr`, by index.
    pub(crate) fn range_for(&self, addr: IpAddr) -> Option<usize> {
        self.listen_ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.contains(addr))
            .max_by_key(|(_, r)| r.prefix.prefix_len())
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_range_wins() {
        let mut c = BgpConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1));
        c.listen_ranges.push(ListenRange::new(
            "10.0.0.0/8".parse().unwrap(),
            PeerAsMatch::Any,
        ));
        c.listen_ranges.push(ListenRange::new(
            "10.1.0.0/16".parse().unwrap(),
            PeerAsMatch::Any,
        ));
        assert_eq!(c.range_for("10.1.2.3".parse().unwrap()), Some(1));
        assert_eq!(c.range_for("10.2.2.3".parse().unwrap()), Some(0));
        assert_eq!(c.range_for("11.0.0.1".parse().unwrap()), None);
        assert_eq!(c.range_for("::1".parse().unwrap()), None);
        let all = Prefix::V4(Ipv4Addr::UNSPECIFIED, 0);
        assert!(prefix_contains(&all, "1.2.3.4".parse().unwrap()));
    }
}
