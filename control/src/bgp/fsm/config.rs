//! What one peer is configured with, as far as the session FSM cares: our AS
//! and identifier, which peer AS to accept, the timers we propose, the
//! capabilities we advertise, and how connection retries back off.

use std::time::Duration;

use crate::bgp::wire::{AfiSafi, Capability, GracefulRestart, GracefulRestartFamily, Open};

/// Which AS a peer's OPEN may carry (RFC 4271 6.2, Bad Peer AS otherwise).
///
/// Dynamic neighbours accepted from a listen range usually use [`Internal`],
/// [`External`] or [`OneOf`]: the AS actually learned is reported in
/// [`Negotiated::peer_as`](super::Negotiated::peer_as).
///
/// [`Internal`]: PeerAsMatch::Internal
/// [`External`]: PeerAsMatch::External
/// [`OneOf`]: PeerAsMatch::OneOf
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAsMatch {
    /// Exactly this AS.
    Exact(u32),
    /// Our own AS (iBGP).
    Internal,
    /// Any AS but ours (eBGP).
    External,
    /// Any AS in this set (dynamic neighbours with a configured AS list).
    OneOf(Vec<u32>),
    /// Any AS at all.
    Any,
}

impl PeerAsMatch {
    /// True if `peer_as` is acceptable when our own AS is `local_as`.
    pub fn accepts(&self, peer_as: u32, local_as: u32) -> bool {
        match self {
            PeerAsMatch::Exact(asn) => peer_as == *asn,
            PeerAsMatch::Internal => peer_as == local_as,
            PeerAsMatch::External => peer_as != local_as,
            PeerAsMatch::OneOf(set) => set.contains(&peer_as),
            PeerAsMatch::Any => true,
        }
    }

    /// Whether every session it admits is iBGP.
    pub fn is_internal(&self, local_as: u32) -> bool {
        match self {
            PeerAsMatch::Exact(a) => *a == local_as,
            PeerAsMatch::Internal => true,
            PeerAsMatch::OneOf(list) => !list.is_empty() && list.iter().all(|&a| a == local_as),
            PeerAsMatch::Any | PeerAsMatch::External => false,
        }
    }
}

impl std::fmt::Display for PeerAsMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAsMatch::Exact(a) => write!(f, "{a}"),
            PeerAsMatch::Any => f.write_str("any"),
            PeerAsMatch::Internal => f.write_str("internal"),
            PeerAsMatch::External => f.write_str("external"),
            PeerAsMatch::OneOf(list) => {
                let v: Vec<String> = list.iter().map(u32::to_string).collect();
                write!(f, "one of {}", v.join(", "))
            }
        }
    }
}

/// How we act as graceful-restart helper (RFC 4724, RFC 8538) and what our
/// Graceful Restart capability says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart Time we advertise, seconds (12 bits; larger values are sent as
    /// 4095).
    pub restart_time: u16,
    /// Advertise the N bit (RFC 8538): NOTIFICATIONs other than Hard Reset
    /// keep graceful restart when the peer sets it too.
    pub notification: bool,
    /// Families for which we claim to preserve forwarding state across our
    /// own restart. Empty for a pure helper, which is the default.
    pub forwarding_families: Vec<GracefulRestartFamily>,
}

impl Default for GracefulRestartConfig {
    /// Helper only: 120 s restart time (FRR's default), N bit, no families.
    fn default() -> Self {
        Self {
            restart_time: 120,
            notification: true,
            forwarding_families: Vec::new(),
        }
    }
}

/// Exponential backoff of the ConnectRetryTimer (RFC 4271 8 and 10): the
/// n-th consecutive wait is `min(base * 2^n, max)`, multiplied by a jitter
/// drawn uniformly from 0.75..=1.0. The count resets once Established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackoff {
    /// First wait.
    pub base: Duration,
    /// Longest wait, before jitter.
    pub max: Duration,
}

impl Default for RetryBackoff {
    /// 2 s doubling up to 60 s.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }
}

/// The configuration of one peer, as the FSM uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP Identifier (router id), non-zero.
    pub router_id: u32,
    /// The peer AS we accept.
    pub peer_as: PeerAsMatch,
    /// Hold time we propose, seconds: 0 (no keepalives) or at least 3;
    /// 1 and 2 are raised to 3.
    pub hold_time: u16,
    /// Keepalive interval, seconds, if lower than a third of the negotiated
    /// hold time; `None` uses a third.
    pub keepalive: Option<u16>,
    /// Hold timer while waiting for the peer's OPEN (RFC 4271 8.2.2 suggests
    /// 4 minutes).
    pub open_hold_time: Duration,
    /// Families we advertise with the Multiprotocol capability.
    pub families: Vec<AfiSafi>,
    /// Advertise BGP Extended Message (RFC 8654).
    pub extended_message: bool,
    /// Graceful restart: `None` advertises nothing and never keeps stale
    /// paths.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Backoff of connection retries (active peers only).
    pub connect_retry: RetryBackoff,
    /// Seed of the retry jitter, so that runs are reproducible; give each
    /// peer its own (e.g. from its address).
    pub jitter_seed: u64,
}

impl PeerConfig {
    /// A peer with the defaults: hold time 90 s (MetalLB's), IPv4 and IPv6
    /// unicast, extended message, graceful restart helper with N bit, 4
    /// minute OpenSent hold timer, retries from 2 s up to 60 s.
    pub fn new(local_as: u32, router_id: u32, peer_as: PeerAsMatch) -> Self {
        Self {
            local_as,
            router_id,
            peer_as,
            hold_time: 90,
            keepalive: None,
            open_hold_time: Duration::from_secs(240),
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
            extended_message: true,
            graceful_restart: Some(GracefulRestartConfig::default()),
            connect_retry: RetryBackoff::default(),
            jitter_seed: 0,
        }
    }

    /// The hold time we propose, with 1 and 2 raised to 3 (RFC 4271 4.2).
    pub fn proposed_hold_time(&self) -> u16 {
        match self.hold_time {
            1 | 2 => 3,
            h => h,
        }
    }

    /// Our OPEN (RFC 4271 4.2): AS (AS_TRANS when above 65535), identifier,
    /// hold time, and one capability per optional parameter: Multiprotocol
    /// for each family, Route Refresh, Enhanced Route Refresh, 4-octet AS,
    /// Extended Message if enabled, Graceful Restart if configured.
    pub fn open(&self) -> Open {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        caps.push(Capability::RouteRefresh);
        caps.push(Capability::EnhancedRouteRefresh);
        caps.push(Capability::FourOctetAs(self.local_as));
        if self.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if let Some(gr) = &self.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: gr.notification,
                restart_time: gr.restart_time.min(0x0fff),
                families: gr.forwarding_families.clone(),
            }));
        }
        Open::new(
            self.local_as,
            self.proposed_hold_time(),
            self.router_id,
            caps,
        )
    }
}
