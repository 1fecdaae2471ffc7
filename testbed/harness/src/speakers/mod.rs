//! BGP speakers started for real inside a namespace: what they are told (a
//! [`SpeakerConfig`] shared by all four), how their session state is read, and the
//! guards that stop them.
//!
//! Each launcher renders the shared configuration into its daemon's own format, the way
//! MetalLB would configure it where MetalLB has a say (FRR mode); the rendered examples
//! live in `testbed/speakers/` and a unit test keeps them current.

pub mod bird;
pub mod exabgp;
pub mod frr;
pub mod gobgp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Diagnose, Prefix, PrefixExt, Result};

/// BGP FSM states as every speaker can report them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
    /// A state the daemon names in its own words (e.g. ExaBGP's `connected`).
    Other(String),
}

impl SessionState {
    /// Maps the usual names (any case, FRR's `Clearing`/`Deleted` become `Other`).
    pub fn from_name(name: &str) -> SessionState {
        match name.to_ascii_lowercase().as_str() {
            "idle" => SessionState::Idle,
            "connect" => SessionState::Connect,
            "active" => SessionState::Active,
            "opensent" => SessionState::OpenSent,
            "openconfirm" => SessionState::OpenConfirm,
            "established" => SessionState::Established,
            _ => SessionState::Other(name.to_string()),
        }
    }
}

/// A speaker running in a namespace, whatever the daemon.
pub trait Speaker: Diagnose {
    /// `frr`, `bird`, `gobgp` or `exabgp`.
    fn kind(&self) -> &'static str;
    /// The namespace the speaker runs in.
    fn namespace(&self) -> &str;
    /// The state of its session with `peer`, as the daemon itself reports it.
    fn session_state(&self, peer: IpAddr) -> Result<SessionState>;
    fn as_diagnose(&self) -> &dyn Diagnose;
}

/// A BFD profile (FRR's `bfd` / `profile NAME`, MetalLB's BFDProfile), intervals in ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdProfile {
    pub name: String,
    pub receive_interval_ms: u32,
    pub transmit_interval_ms: u32,
    pub detect_multiplier: u8,
}

impl BfdProfile {
    /// MetalLB's defaults: 300 ms each way, multiplier 3.
    pub fn new(name: &str) -> Self {
        BfdProfile {
            name: name.to_string(),
            receive_interval_ms: 300,
            transmit_interval_ms: 300,
            detect_multiplier: 3,
        }
    }
}

/// One BGP neighbour of a speaker. The defaults are short so tests converge quickly:
/// keepalive 3 s, hold 9 s, connect retry 5 s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub addr: IpAddr,
    pub remote_as: u32,
    pub keepalive_s: u16,
    pub hold_s: u16,
    pub connect_retry_s: u16,
    /// TCP MD5 signature password (RFC 2385).
    pub password: Option<String>,
    /// Name of a [`BfdProfile`] of the speaker (FRR only).
    pub bfd_profile: Option<String>,
    /// Advertise the graceful restart capability.
    pub graceful_restart: bool,
    /// The restart time advertised with it (120 s by default; FRR's is per instance:
    /// the first graceful neighbour's).
    pub restart_time_s: u16,
}

impl Neighbor {
    pub fn new(addr: IpAddr, remote_as: u32) -> Self {
        Neighbor {
            addr,
            remote_as,
            keepalive_s: 3,
            hold_s: 9,
            connect_retry_s: 5,
            password: None,
            bfd_profile: None,
            graceful_restart: false,
            restart_time_s: 120,
        }
    }

    pub fn timers(mut self, keepalive_s: u16, hold_s: u16) -> Self {
        self.keepalive_s = keepalive_s;
        self.hold_s = hold_s;
        self
    }

    /// Seconds between connection attempts (not ExaBGP: it has no such setting).
    pub fn connect_retry(mut self, secs: u16) -> Self {
        self.connect_retry_s = secs;
        self
    }

    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    pub fn bfd_profile(mut self, profile: &str) -> Self {
        self.bfd_profile = Some(profile.to_string());
        self
    }

    pub fn graceful_restart(mut self) -> Self {
        self.graceful_restart = true;
        self
    }

    /// The graceful restart time to advertise.
    pub fn restart_time(mut self, secs: u16) -> Self {
        self.restart_time_s = secs;
        self
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

/// What a speaker is told: its AS and addresses, its neighbours and the service prefixes
/// it announces. Each neighbour carries the address family of its own address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub hostname: String,
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Source of IPv4 sessions and next hop of IPv4 routes.
    pub local_v4: Ipv4Addr,
    /// Source of IPv6 sessions and next hop of IPv6 routes.
    pub local_v6: Option<Ipv6Addr>,
    pub neighbors: Vec<Neighbor>,
    pub announce: Vec<Prefix>,
    pub bfd_profiles: Vec<BfdProfile>,
}

impl SpeakerConfig {
    /// A speaker in `local_as` whose router ID and IPv4 source is `local_v4`.
    pub fn new(local_as: u32, local_v4: Ipv4Addr) -> Self {
        SpeakerConfig {
            hostname: format!("speaker-{local_v4}").replace('.', "-"),
            local_as,
            router_id: local_v4,
            local_v4,
            local_v6: None,
            neighbors: Vec::new(),
            announce: Vec::new(),
            bfd_profiles: Vec::new(),
        }
    }

    pub fn hostname(mut self, hostname: &str) -> Self {
        self.hostname = hostname.to_string();
        self
    }

    pub fn local_v6(mut self, addr: Ipv6Addr) -> Self {
        self.local_v6 = Some(addr);
        self
    }

    pub fn neighbor(mut self, n: Neighbor) -> Self {
        self.neighbors.push(n);
        self
    }

    pub fn announce(mut self, p: Prefix) -> Self {
        self.announce.push(p);
        self
    }

    pub fn bfd(mut self, profile: BfdProfile) -> Self {
        self.bfd_profiles.push(profile);
        self
    }

    /// The local address a session with `n` starts from.
    pub fn local_addr_for(&self, n: &Neighbor) -> IpAddr {
        match (n.addr, self.local_v6) {
            (IpAddr::V6(_), Some(v6)) => IpAddr::V6(v6),
            _ => IpAddr::V4(self.local_v4),
        }
    }

    pub(crate) fn announced(&self, v4: bool) -> impl Iterator<Item = &Prefix> {
        self.announce.iter().filter(move |p| p.is_ipv4() == v4)
    }
}

/// A stable identifier made of an address, usable in daemon names (`10_10_0_1`,
/// `fd00_10__1`).
pub(crate) fn addr_ident(addr: IpAddr) -> String {
    addr.to_string().replace(['.', ':'], "_")
}
