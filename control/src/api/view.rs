//! What the management API returns: plain serializable snapshots of the
//! router's state, shaped after what FRR's vtysh shows, so `ecmpd show ...`
//! reads familiar and `--json` output is stable for scripts and tests.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `show bgp summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BgpSummary {
    /// BGP identifier.
    pub router_id: String,
    /// Local AS.
    pub local_as: u32,
    /// Prefixes in the Loc-RIB (with at least one usable path).
    pub rib_prefixes: u64,
    /// Paths held across all Adj-RIBs-In.
    pub rib_paths: u64,
    /// Every configured peer and every dynamic neighbour that is connected.
    pub peers: Vec<NeighbourSummary>,
}

/// One line of `show bgp summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourSummary {
    /// The neighbour's address.
    pub address: IpAddr,
    /// Its AS, once known (a dynamic neighbour's comes with its OPEN).
    pub asn: Option<u32>,
    /// The listen range it came from, for dynamic neighbours.
    pub range: Option<String>,
    /// Description from the configuration.
    pub description: Option<String>,
    /// FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    pub state: String,
    /// Seconds in the current state (up time when Established).
    pub state_secs: u64,
    /// Messages received.
    pub msg_rcvd: u64,
    /// Messages sent.
    pub msg_sent: u64,
    /// Prefixes received (before policy).
    pub prefixes_received: u64,
    /// Prefixes accepted by import policy.
    pub prefixes_accepted: u64,
    /// Prefixes refused by import policy.
    pub prefixes_filtered: u64,
    /// Prefixes kept as stale for a restarting neighbour (graceful restart).
    pub prefixes_stale: u64,
    /// BFD session state, if BFD runs for this neighbour.
    pub bfd: Option<String>,
    /// Why the session last went down, if it did.
    pub last_error: Option<String>,
}

/// One prefix of `show bgp routes`, with every path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteEntry {
    /// The prefix (`198.51.100.10/32`).
    pub prefix: String,
    /// Paths, best first.
    pub paths: Vec<PathView>,
}

/// One path of a prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathView {
    /// The neighbour it came from.
    pub peer: IpAddr,
    /// Its next hop.
    pub next_hop: IpAddr,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (after policy).
    pub local_pref: Option<u32>,
    /// AS path as vtysh prints it.
    pub as_path: String,
    /// ORIGIN: `i`, `e` or `?`.
    pub origin: String,
    /// Communities.
    pub communities: Vec<String>,
    /// Large communities.
    pub large_communities: Vec<String>,
    /// The best path (`>`).
    pub best: bool,
    /// In the multipath set (`=`).
    pub multipath: bool,
    /// Kept for a restarting neighbour (`S`).
    pub stale: bool,
    /// Refused by import policy, kept for inspection only.
    pub filtered: bool,
}

/// `show fib`: what the data plane forwards with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FibView {
    /// Routes, in prefix order.
    pub routes: Vec<FibRoute>,
    /// Nexthop groups in use.
    pub groups: u64,
}

/// One FIB route and its nexthop group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FibRoute {
    /// The prefix.
    pub prefix: String,
    /// The nexthop group's id.
    pub group: u32,
    /// Selection algorithm (`resilient`, `hash-threshold`, ...).
    pub algorithm: String,
    /// Hashed fields (`l4`, `l3`, ...).
    pub fields: String,
    /// Members of the group.
    pub members: Vec<FibMember>,
    /// Packets forwarded through the group, when the data plane counts them.
    pub packets: Option<u64>,
}

/// One member of a nexthop group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FibMember {
    /// Member id, stable while the nexthop stays in use.
    pub id: u32,
    /// Next hop address.
    pub address: IpAddr,
    /// Weight.
    pub weight: u32,
    /// Share of the group's buckets or table slots, 0..=1, for selectors
    /// that have them.
    pub share: Option<f64>,
}

/// `show bfd peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BfdPeerView {
    /// The peer.
    pub peer: IpAddr,
    /// Up, Down, Init, AdminDown.
    pub state: String,
    /// The last diagnostic.
    pub diagnostic: String,
    /// Our and the peer's discriminators.
    pub local_discr: u32,
    /// The peer's discriminator (0 until heard).
    pub remote_discr: u32,
    /// Transmit interval in use, ms.
    pub tx_ms: u64,
    /// Detection time in use, ms.
    pub detect_ms: u64,
    /// Milliseconds from the last packet received to the last Down, with the
    /// time the FIB changed after it, when measured.
    pub last_down: Option<BfdDownView>,
}

/// How fast the last BFD failure was acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BfdDownView {
    /// Last BFD packet received → session declared Down, ms.
    pub detect_ms: f64,
    /// Last BFD packet received → FIB changed, ms.
    pub fib_ms: Option<f64>,
}

/// The API's error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// One sentence.
    pub error: String,
}

/// `GET /api/v1/counts`: sizes only, answered in constant time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Prefixes the RIB holds.
    pub rib_prefixes: u64,
    /// Routes in the FIB.
    pub fib_routes: u64,
    /// Nexthop groups in the FIB.
    pub fib_groups: u64,
}
