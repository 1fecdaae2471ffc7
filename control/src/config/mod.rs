//! The router configuration: one TOML file (`ecmpd router --config
//! router.toml`) parsed into typed, checked structs that the sessions, the
//! RIB and the FIB writer consume directly. `testbed/router/README.md`
//! documents every field; `testbed/router/router.toml` is a complete example.
//!
//! [`Config::parse`] refuses unknown keys (listing the valid ones) and checks
//! every value and every cross-reference, reporting each fault with its line
//! and dotted field: `router.toml:17: peer[2].bfd_profile: no BFD profile
//! named "fast"; defined: default, slow`. Settings that are accepted but not
//! acted on come back as [`Config::warnings`].

mod error;
mod schema;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use dataplane::fib::table::{GroupPolicy, Prefix};
use dataplane::tracker::TrackerConfig;

use crate::bgp::wire::AfiSafi;

pub use error::{ConfigError, ConfigErrors, ConfigWarning};
pub use values::{
    check_asn, family_name, parse_action, parse_asn, parse_duration, parse_family, prefix_covers,
    prefix_range, prefixes_overlap, Community, LargeCommunity, Password, PeerAs, PeerAsMatch,
    PolicyAction, PrefixRange, AS_TRANS,
};

/// The BGP port.
pub const BGP_PORT: u16 = 179;

/// Where the management API listens unless told otherwise.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:2179";

/// The configuration [`Config::embedded_default`] parses: everything on
/// loopback and unprivileged ports, any AS from `127.0.0.0/8`, the in-memory
/// backend. Enough to run the router without root and without a file.
pub const EMBEDDED_DEFAULT: &str = r#"# ecmpd's built-in configuration: a loopback demo that needs no root.
[router]
id = "127.0.0.1"
asn = 64512
listen = ["127.0.0.1:1179"]

[api]
listen = "127.0.0.1:2179"

[[listen_range]]
prefix = "127.0.0.0/8"
asn = "any"

[dataplane]
backend = "memory"
"#;

/// A checked router configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub router: Router,
    pub api: Api,
    /// Configured neighbours, in file order (`peer[i]`).
    pub peers: Vec<Peer>,
    /// Dynamic-neighbour ranges, in file order (`listen_range[i]`).
    pub listen_ranges: Vec<ListenRange>,
    /// BFD profiles by name.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// Import policies by name.
    pub policies: BTreeMap<String, ImportPolicy>,
    pub multipath: Multipath,
    pub forwarding: Forwarding,
    pub dataplane: Dataplane,
    /// Accepted, but worth telling the user (settings parsed and not acted
    /// on, likely mistakes). In line order.
    pub warnings: Vec<ConfigWarning>,
}

/// `[router]`: who we are and the defaults every session starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Router {
    /// BGP identifier.
    pub id: Ipv4Addr,
    /// Our AS (4-octet capable).
    pub asn: u32,
    /// Where to accept BGP connections.
    pub listen: Vec<SocketAddr>,
    /// Default hold time and keepalive of every session.
    pub timers: Timers,
    /// First wait before re-dialling a neighbour; it doubles per failure.
    pub connect_retry: Duration,
    /// Longest wait between two dials.
    pub connect_retry_max: Duration,
    pub graceful_restart: GracefulRestart,
}

/// BGP session timers. A hold time of zero turns both off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub hold_time: Duration,
    pub keepalive: Duration,
}

impl Default for Timers {
    /// MetalLB's defaults: hold 90 s, keepalive 30 s.
    fn default() -> Self {
        Timers {
            hold_time: Duration::from_secs(90),
            keepalive: Duration::from_secs(30),
        }
    }
}

/// Graceful restart (RFC 4724).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    /// Keep a restarting neighbour's routes (as stale) until it returns or
    /// its restart time runs out.
    pub helper: bool,
    /// The restart time we advertise (at most 4095 s).
    pub restart_time: Duration,
}

/// `[api]`: the management HTTP/JSON endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Api {
    pub listen: SocketAddr,
    /// Whether a non-loopback `listen` was explicitly allowed.
    pub allow_remote: bool,
}

/// Options a configured peer and a listen range share.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub timers: Timers,
    /// TCP MD5 key.
    pub password: Option<Password>,
    /// eBGP multihop: the TTL we send (1..=255); `None` for directly
    /// connected (TTL 1).
    pub ebgp_multihop: Option<u8>,
    /// GTSM (RFC 5082): the neighbour is at most this many hops away; we send
    /// TTL 255 and accept TTL >= 256 - hops.
    pub ttl_security: Option<u8>,
    /// A name in [`Config::bfd_profiles`].
    pub bfd_profile: Option<String>,
    /// Act as graceful-restart helper for this neighbour.
    pub graceful_restart: bool,
    pub max_prefix: Option<MaxPrefix>,
    /// Families negotiated (MP-BGP), in file order, no duplicates.
    pub families: Vec<AfiSafi>,
    /// A name in [`Config::policies`]; `None` accepts every route.
    pub import: Option<String>,
}

/// A limit on the routes one neighbour may send (FRR's `maximum-prefix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPrefix {
    pub limit: u32,
    /// Warn once the count reaches this percentage of `limit`.
    pub warning_threshold: u8,
    /// After tearing the session down, allow it again this much later;
    /// `None` keeps it down until cleared by hand.
    pub restart_after: Option<Duration>,
    /// Only warn; never tear the session down.
    pub warning_only: bool,
}

/// `[[peer]]`: a configured neighbour (an upstream router, an FRR-mode
/// speaker).
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub address: IpAddr,
    pub asn: PeerAs,
    pub description: Option<String>,
    /// Never dial; wait for the neighbour to connect.
    pub passive: bool,
    /// Local address to dial from.
    pub source: Option<IpAddr>,
    /// The neighbour's TCP port.
    pub port: u16,
    /// Re-advertise the routes learned from the speakers to this peer.
    pub upstream: bool,
    pub session: Session,
}

/// `[[listen_range]]`: accept dynamic neighbours connecting from `prefix`
/// (MetalLB native speakers only dial out).
#[derive(Clone, Debug, PartialEq)]
pub struct ListenRange {
    pub prefix: Prefix,
    pub asn: PeerAsMatch,
    /// Most dynamic neighbours at once from this range.
    pub limit: u32,
    pub session: Session,
}

/// `[bfd_profile.NAME]`: MetalLB's BFDProfile, with its defaults and ranges:
/// the BFD module's own profile type.
pub use crate::bfd::session::Profile as BfdProfile;

/// `[policy.NAME]` becomes the RIB's runtime import policy: a prefix list
/// (`ranges`; a route outside every range is refused before any rule runs,
/// so a speaker cannot announce someone else's prefixes), ordered rules
/// (first match wins), and a default action.
pub use crate::rib::policy::{ImportPolicy, PolicyRule};

/// `[multipath]`: how many paths a route may combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multipath {
    /// Most nexthops per route; 1 turns multipath off.
    pub maximum_paths: u16,
    /// Combine paths whose AS paths differ but are as long (FRR's
    /// `bgp bestpath as-path multipath-relax`).
    pub as_path_relax: bool,
    /// Combine iBGP paths too.
    pub ibgp: bool,
}

impl Default for Multipath {
    fn default() -> Self {
        Multipath {
            maximum_paths: 128,
            as_path_relax: true,
            ibgp: true,
        }
    }
}

/// One `[[forwarding]]` entry: how routes inside `prefix` spread flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardingRule {
    pub prefix: Prefix,
    pub policy: GroupPolicy,
}

/// `[[forwarding]]`: the group policy per prefix range, longest match wins;
/// routes no range covers get [`Forwarding::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarding {
    /// Sorted longest prefix first.
    pub rules: Vec<ForwardingRule>,
    /// Resilient buckets over the 5-tuple ([`GroupPolicy::default`]).
    pub default: GroupPolicy,
}

impl Forwarding {
    /// The rule whose prefix covers `route` most specifically.
    pub fn rule_for(&self, route: &Prefix) -> Option<&ForwardingRule> {
        self.rules.iter().find(|r| prefix_covers(&r.prefix, route))
    }

    /// The group policy for a route.
    pub fn policy_for(&self, route: &Prefix) -> GroupPolicy {
        self.rule_for(route).map_or(self.default, |r| r.policy)
    }

    /// The group policy for a host route to `addr` (a service IP).
    pub fn policy_for_addr(&self, addr: IpAddr) -> GroupPolicy {
        let host = match addr {
            IpAddr::V4(a) => Prefix::V4(a, 32),
            IpAddr::V6(a) => Prefix::V6(a, 128),
        };
        self.policy_for(&host)
    }
}

/// How the data plane moves packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// In-memory ports; no packets leave the process (tests, demos).
    Memory,
    /// PACKET_MMAP rings with fanout across workers (the default).
    PacketMmap,
    /// One packet per system call through pnet: the simple fallback.
    Pnet,
}

impl Backend {
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::PacketMmap => "packet-mmap",
            Backend::Pnet => "pnet",
        }
    }
}

/// `[dataplane]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataplane {
    pub backend: Backend,
    /// Interface names, in port order (port 0 first).
    pub ports: Vec<String>,
    /// Worker threads; 0 = one per available core.
    pub workers: usize,
    pub tracker: TrackerConfig,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::new(vec![ConfigError {
                file: Some(path.to_path_buf()),
                line: None,
                field: String::new(),
                message: format!("cannot read the configuration: {e}"),
            }])
        })?;
        Config::parse(&src, Some(path))
    }

    /// Parses and checks configuration text; `path` only names the file in
    /// messages. Every fault found is returned, in line order.
    pub fn parse(src: &str, path: Option<&Path>) -> Result<Config, ConfigErrors> {
        validate::parse(src, path)
    }

    /// The built-in configuration ([`EMBEDDED_DEFAULT`]): loopback only, no
    /// root needed.
    pub fn embedded_default() -> Config {
        // Pinned by the tests: the constant always validates.
        Config::parse(EMBEDDED_DEFAULT, None).expect("the embedded default configuration is valid")
    }

    /// The BFD profile a session names, if any.
    pub fn bfd_for(&self, session: &Session) -> Option<&BfdProfile> {
        session
            .bfd_profile
            .as_ref()
            .and_then(|n| self.bfd_profiles.get(n))
    }

    /// The import policy a session names, if any (`None`: accept all).
    pub fn import_for(&self, session: &Session) -> Option<&ImportPolicy> {
        session.import.as_ref().and_then(|n| self.policies.get(n))
    }

    /// The listen range a connection from `addr` falls in, if any.
    pub fn listen_range_for(&self, addr: IpAddr) -> Option<&ListenRange> {
        let host = match addr {
            IpAddr::V4(a) => Prefix::V4(a, 32),
            IpAddr::V6(a) => Prefix::V6(a, 128),
        };
        self.listen_ranges
            .iter()
            .find(|r| prefix_covers(&r.prefix, &host))
    }

    /// The configured peer at `addr`, if any.
    pub fn peer(&self, addr: IpAddr) -> Option<&Peer> {
        self.peers.iter().find(|p| p.address == addr)
    }
}
