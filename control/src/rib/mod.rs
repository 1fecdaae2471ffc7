//! The RIB: every peer's paths (Adj-RIB-In), the decision process with
//! multipath, import policy, graceful-restart stale paths, prefix limits,
//! and the translation of each prefix's multipath set into FIB updates.
//!
//! [`Rib`] is a single-owner, synchronous state machine: one task owns it
//! (no locks inside), feeds it events, and passes it the time. Nothing in it
//! blocks, sleeps or reads a clock.
//!
//! # Driving it
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::Duration;
//! use control::bgp::wire::attrs::{AsPath, Origin, PathAttributes};
//! use control::bgp::wire::{DecodedUpdate, Outcome, Update};
//! use control::rib::{PeerId, PeerInfo, Rib, RibConfig};
//! use dataplane::fib::table::FibUpdate;
//!
//! let mut rib = Rib::new(RibConfig::new(64512));
//! let now = Duration::ZERO;
//! let speaker = Ipv4Addr::new(10, 0, 0, 11);
//! rib.peer_up(PeerId(1), PeerInfo::new(IpAddr::V4(speaker), 64513, 0x0a00_000b, false), now);
//! let update = Update {
//!     attributes: PathAttributes {
//!         origin: Some(Origin::Igp),
//!         as_path: Some(AsPath::sequence([64513])),
//!         next_hop: Some(speaker),
//!         ..PathAttributes::default()
//!     },
//!     nlri: vec!["192.0.2.10/32".parse().unwrap()],
//!     ..Update::default()
//! };
//! let decoded = DecodedUpdate { update, outcome: Outcome::Accept, problems: vec![] };
//! rib.apply_update(PeerId(1), &decoded, now).unwrap();
//! // After a batch of events, take what to program and what to tell sessions.
//! let out = rib.take_output();
//! assert!(matches!(&out.fib[..], [FibUpdate::SetRoute { nexthops, .. }] if nexthops.len() == 1));
//! ```
//!
//! Events: [`Rib::peer_up`] when a session reaches Established,
//! [`Rib::apply_update`] for each decoded UPDATE, [`Rib::peer_down`] when it
//! goes down (with the FSM's [`StalePaths`] for graceful restart),
//! [`Rib::route_refresh`] for the peer's enhanced route refresh markers,
//! [`Rib::poll`] when [`Rib::next_deadline`] is reached, and configuration
//! changes ([`Rib::set_import_policy`], [`Rib::set_forwarding_policies`],
//! [`Rib::reconfigure`]).
//! Events only mark prefixes dirty; [`Rib::take_output`] runs the decision
//! process on the dirty prefixes and returns one batch of FIB updates (one
//! per prefix whose nexthop set or group policy actually changed, in prefix
//! order so that the same events always give the same batch), so the
//! owner applies one batch, and the FIB publishes once, per burst of
//! UPDATEs. Call it after every burst of events (e.g. after draining the
//! channel), and before sleeping.
//!
//! # Storage
//!
//! A hash map (one per family) from prefix to that prefix's paths, kept
//! sorted by (peer address, peer id), so the decision process never depends
//! on arrival order. The Adj-RIB-In of a peer is the view of this table by
//! peer: per-peer operations (session down, End-of-RIB sweep, policy change)
//! scan the table once, which is linear in the table and saves a second
//! index of every prefix. Attribute sets and installed
//! nexthop sets are interned (see [`path`] and [`fib`]), the map is split
//! by family with compact keys, and a prefix's entry is 24 octets plus its
//! paths (32 octets each, in an exact-size slice).
//!
//! # Graceful restart (helper side, RFC 4724)
//!
//! [`Rib::peer_down`] with [`StalePaths`] marks the peer's paths of those
//! families stale and keeps them (they still forward; the FIB is not
//! touched, since stale paths compete as equals, see [`decision`]); other
//! families are withdrawn. If the peer comes back within the restart time,
//! its stale paths stay until it sends End-of-RIB for the family (then the
//! paths it did not re-announce are swept, all in one batch), or until
//! [`RibConfig::stale_path_time`] passes (FRR's `stalepath-time`). Stale
//! paths of a family the new session does not negotiate, or whose
//! forwarding-state bit is clear in the new Graceful Restart capability, are
//! swept at once (RFC 4724 4.2). If the peer does not come back within the
//! restart time, [`Rib::poll`] withdraws them. The session layer must give a
//! neighbour the same [`PeerId`] across its sessions (e.g. one per peer
//! address), otherwise a restart looks like a new peer.
//!
//! # Prefix limits
//!
//! Accepted (not filtered) paths are counted per peer and family. The
//! first time a family's count exceeds [`MaxPrefix::limit`],
//! [`Rib::take_output`] carries a [`SessionCommand::MaxPrefixExceeded`] for
//! the session layer, which feeds the FSM's `Event::MaxPrefixExceeded`
//! ([`SessionCommand::fsm_event`]); the session goes down and
//! [`Rib::peer_down`] withdraws everything. Until then, further new
//! prefixes of that family are kept as filtered ([`FilterReason::OverLimit`])
//! so a flood cannot grow the FIB. In warning-only mode a
//! [`SessionCommand::MaxPrefixWarning`] is issued once per session instead,
//! and prefixes keep being accepted.

pub mod decision;
pub mod fib;
pub mod path;
pub mod policy;
mod table;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dataplane::fasthash::FastMap;
use dataplane::fib::table::{FibUpdate, Prefix};
use hashing::MemberId;

use crate::bgp::fsm::{Event, Negotiated, StalePaths};
use crate::bgp::wire::{
    AfiSafi, DecodedUpdate, GracefulRestart, Outcome, RouteRefresh, RouteRefreshSubtype,
};

use decision::{Candidate, Selection};
use fib::{FibState, SetId};
use path::{Interner, Path, RouteAttrs};
pub use policy::{
    FilterReason, ForwardingPolicies, ImportPolicy, PolicyAction, PolicyRule, PrefixRange,
};
use table::PrefixTable;

/// A peer, as the session layer numbers them. Stable for a neighbour
/// across its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PeerId(pub u32);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer {}", self.0)
    }
}

/// The families the RIB routes, as indices into per-family arrays.
const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];

fn family_index(prefix: &Prefix) -> usize {
    match prefix {
        Prefix::V4(..) => 0,
        Prefix::V6(..) => 1,
    }
}

fn family_slot(family: AfiSafi) -> Option<usize> {
    FAMILIES.iter().position(|f| *f == family)
}

/// A prefix limit (FRR's `maximum-prefix`), applied to each family on its
/// own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPrefix {
    /// Accepted prefixes allowed per family.
    pub limit: u32,
    /// Only warn (once per session) instead of asking for a Cease.
    pub warning_only: bool,
    /// How long the session stays down after the Cease; `None`: until an
    /// operator restarts it.
    pub hold_down: Option<Duration>,
}

/// What the RIB needs to know of a peer whose session came up.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's address (the session's remote address).
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// The peer's BGP identifier.
    pub bgp_id: u32,
    /// The peer is in our AS (iBGP).
    pub internal: bool,
    /// Families negotiated on the session.
    pub families: Vec<AfiSafi>,
    /// The peer's Graceful Restart capability on this session, as received.
    pub graceful_restart: Option<GracefulRestart>,
    /// Import policy.
    pub import: Arc<ImportPolicy>,
    /// Prefix limit, if any.
    pub max_prefix: Option<MaxPrefix>,
}

impl PeerInfo {
    /// A peer with IPv4 and IPv6 unicast, no graceful restart, accepting
    /// every prefix, without a limit.
    pub fn new(address: IpAddr, asn: u32, bgp_id: u32, internal: bool) -> Self {
        PeerInfo {
            address,
            asn,
            bgp_id,
            internal,
            families: FAMILIES.to_vec(),
            graceful_restart: None,
            import: Arc::new(ImportPolicy::accept_all()),
            max_prefix: None,
        }
    }

    /// The peer of an Established session at `address`.
    pub fn from_negotiated(
        address: IpAddr,
        negotiated: &Negotiated,
        import: Arc<ImportPolicy>,
        max_prefix: Option<MaxPrefix>,
    ) -> Self {
        PeerInfo {
            address,
            asn: negotiated.peer_as,
            bgp_id: negotiated.peer_id,
            internal: negotiated.internal,
            families: negotiated.families.clone(),
            graceful_restart: negotiated.peer_graceful_restart.clone(),
            import,
            max_prefix,
        }
    }

    /// With this import policy.
    pub fn with_import(mut self, import: Arc<ImportPolicy>) -> Self {
        self.import = import;
        self
    }

    /// With this prefix limit.
    pub fn with_max_prefix(mut self, max_prefix: MaxPrefix) -> Self {
        self.max_prefix = Some(max_prefix);
        self
    }

    /// With this Graceful Restart capability.
    pub fn with_graceful_restart(mut self, gr: GracefulRestart) -> Self {
        self.graceful_restart = Some(gr);
        self
    }
}

/// Router-wide RIB settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RibConfig {
    /// Our AS: paths whose AS_PATH holds it are filtered (loop).
    pub local_as: u32,
    /// Most paths in an eBGP multipath set; 1 disables multipath.
    pub maximum_paths: usize,
    /// Most paths in an iBGP multipath set (FRR `maximum-paths ibgp`); 1
    /// disables iBGP multipath.
    pub maximum_paths_ibgp: usize,
    /// Multipath over AS paths of equal length, whatever the ASes (FRR
    /// `bgp bestpath as-path multipath-relax`). Speakers in different ASes
    /// need it.
    pub as_path_relax: bool,
    /// Compare MED between paths from different neighbouring ASes (FRR
    /// `bgp always-compare-med`).
    pub always_compare_med: bool,
    /// Prefer the older of two eBGP paths before the router id step (off,
    /// as FRR with `bgp bestpath compare-routerid`: deterministic).
    pub prefer_oldest_external: bool,
    /// How long a restarted peer's stale paths wait for its End-of-RIB
    /// (FRR `bgp graceful-restart stalepath-time`, 360 s).
    pub stale_path_time: Duration,
    /// Which group policy each route's nexthop group gets.
    pub forwarding: ForwardingPolicies,
}

impl RibConfig {
    /// Defaults for AS `local_as`: 128 paths for eBGP and iBGP, no relax,
    /// MED within an AS, 360 s stale-path time, resilient groups.
    pub fn new(local_as: u32) -> Self {
        RibConfig {
            local_as,
            maximum_paths: 128,
            maximum_paths_ibgp: 128,
            as_path_relax: false,
            always_compare_med: false,
            prefer_oldest_external: false,
            stale_path_time: Duration::from_secs(360),
            forwarding: ForwardingPolicies::default(),
        }
    }
}

/// What the session layer must do, from [`Rib::take_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// The peer went over its limit: send Cease / Maximum Number of
    /// Prefixes Reached ([`SessionCommand::fsm_event`]).
    MaxPrefixExceeded {
        /// The peer.
        peer: PeerId,
        /// The family over its limit.
        family: AfiSafi,
        /// The limit.
        limit: u32,
        /// How long to stay down.
        hold_down: Option<Duration>,
    },
    /// The peer went over its limit in warning-only mode: log it.
    MaxPrefixWarning {
        /// The peer.
        peer: PeerId,
        /// The family over its limit.
        family: AfiSafi,
        /// The limit.
        limit: u32,
        /// Accepted prefixes now.
        count: u32,
    },
}

impl SessionCommand {
    /// The FSM event to feed the peer's session, if any.
    pub fn fsm_event(&self) -> Option<Event> {
        match *self {
            SessionCommand::MaxPrefixExceeded {
                family,
                limit,
                hold_down,
                ..
            } => Some(Event::MaxPrefixExceeded {
                family,
                limit,
                hold_down,
            }),
            SessionCommand::MaxPrefixWarning { .. } => None,
        }
    }
}

/// One batch for the FIB writer and the sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RibOutput {
    /// Apply with one `FibWriter::apply`.
    pub fib: Vec<FibUpdate>,
    /// For the session layer.
    pub sessions: Vec<SessionCommand>,
}

impl RibOutput {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.fib.is_empty() && self.sessions.is_empty()
    }
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    /// An UPDATE from a peer that is not up.
    #[error("{0} has no established session: its UPDATE was ignored")]
    PeerNotUp(PeerId),
}

/// What one UPDATE did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Prefixes announced and accepted.
    pub accepted: u32,
    /// Prefixes announced and filtered.
    pub filtered: u32,
    /// Prefixes withdrawn (whether held or not).
    pub withdrawn: u32,
    /// The End-of-RIB marker of this family.
    pub end_of_rib: Option<AfiSafi>,
}

/// A peer's counters for `show bgp summary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerCounts {
    /// Paths held from the peer (accepted and filtered).
    pub received: u32,
    /// Accepted paths, IPv4 unicast.
    pub accepted_ipv4: u32,
    /// Accepted paths, IPv6 unicast.
    pub accepted_ipv6: u32,
    /// Paths filtered by policy, loop, next hop or limit.
    pub filtered: u32,
    /// Stale paths (graceful restart).
    pub stale: u32,
}

impl PeerCounts {
    /// Accepted paths of both families.
    pub fn accepted(&self) -> u32 {
        self.accepted_ipv4 + self.accepted_ipv6
    }

    fn accepted_mut(&mut self, family: usize) -> &mut u32 {
        if family == 0 {
            &mut self.accepted_ipv4
        } else {
            &mut self.accepted_ipv6
        }
    }

    fn accepted_in(&self, family: usize) -> u32 {
        if family == 0 {
            self.accepted_ipv4
        } else {
            self.accepted_ipv6
        }
    }

    /// Count `path` in (`add`) or out.
    fn account(&mut self, path: &Path, family: usize, add: bool) {
        let step = |v: &mut u32| {
            *v = if add {
                v.saturating_add(1)
            } else {
                v.saturating_sub(1)
            }
        };
        step(&mut self.received);
        if path.filtered.is_some() {
            step(&mut self.filtered);
        } else {
            step(self.accepted_mut(family));
        }
        if path.stale {
            step(&mut self.stale);
        }
    }
}

#[derive(Debug)]
struct PeerState {
    info: PeerInfo,
    up: bool,
    counts: PeerCounts,
    /// Per family: when its stale paths are withdrawn.
    stale_deadline: [Option<Duration>; 2],
    /// Per family: the limit was reported this session.
    over_limit: [bool; 2],
}

/// One prefix: 24 octets plus its paths.
#[derive(Debug, Default)]
struct Dest {
    /// Sorted by (peer address, peer id). A boxed slice, not a `Vec`: no
    /// spare capacity (a `Vec` grows to four paths at the first push).
    paths: Box<[Path]>,
    /// The nexthop set programmed in the FIB.
    installed: Option<SetId>,
    /// Queued in `Rib::dirty`.
    dirty: bool,
}

impl Dest {
    fn insert(&mut self, pos: usize, path: Path) {
        // Exact capacity: shrinking a larger vector would leave a hole in
        // the heap per prefix.
        let old = std::mem::take(&mut self.paths).into_vec();
        let mut v = Vec::with_capacity(old.len() + 1);
        v.extend(old);
        v.insert(pos.min(v.len()), path);
        self.paths = v.into_boxed_slice();
    }

    fn remove(&mut self, i: usize) -> Option<Path> {
        if i >= self.paths.len() {
            return None;
        }
        let mut v = std::mem::take(&mut self.paths).into_vec();
        let old = v.remove(i);
        self.paths = v.into_boxed_slice();
        Some(old)
    }

    fn retain(&mut self, keep: impl FnMut(&Path) -> bool) {
        let mut v = std::mem::take(&mut self.paths).into_vec();
        v.retain(keep);
        self.paths = v.into_boxed_slice();
    }
}

/// A path, for `show bgp routes`.
#[derive(Debug, Clone)]
pub struct PathView<'a> {
    /// Who sent it.
    pub peer: PeerId,
    /// The peer's address.
    pub peer_address: IpAddr,
    /// Attributes after import policy.
    pub attributes: &'a RouteAttrs,
    /// Attributes as received.
    pub received: &'a RouteAttrs,
    /// The best path.
    pub best: bool,
    /// In the multipath set (the best path included).
    pub multipath: bool,
    /// Kept from a restarting peer.
    pub stale: bool,
    /// Kept out of the decision, and why.
    pub filtered: Option<FilterReason>,
}

/// A prefix with its paths, for `show bgp routes`.
#[derive(Debug, Clone)]
pub struct RouteView<'a> {
    /// The prefix.
    pub prefix: Prefix,
    /// Every path held, by ascending peer address.
    pub paths: Vec<PathView<'a>>,
    /// The nexthop addresses installed in the FIB (sorted).
    pub installed: &'a [IpAddr],
}

/// The RIB; see the module docs.
#[derive(Debug)]
pub struct Rib {
    config: RibConfig,
    peers: FastMap<PeerId, PeerState>,
    table: PrefixTable<Dest>,
    attrs: Interner<RouteAttrs>,
    fib: FibState,
    dirty: Vec<Prefix>,
    pending_fib: Vec<FibUpdate>,
    commands: Vec<SessionCommand>,
    seq: u64,
}

impl Rib {
    /// An empty RIB.
    pub fn new(config: RibConfig) -> Self {
        Rib {
            config,
            peers: FastMap::default(),
            table: PrefixTable::default(),
            attrs: Interner::default(),
            fib: FibState::default(),
            dirty: Vec::new(),
            pending_fib: Vec::new(),
            commands: Vec::new(),
            seq: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RibConfig {
        &self.config
    }

    // ----- Events -----------------------------------------------------------

    /// A session with `peer` reached Established. A peer that was
    /// restarting (its stale paths kept) keeps them until End-of-RIB, except
    /// for families the new session cannot refresh (see the module docs).
    pub fn peer_up(&mut self, peer: PeerId, info: PeerInfo, now: Duration) {
        let Some(state) = self.peers.get_mut(&peer) else {
            self.peers.insert(
                peer,
                PeerState {
                    info,
                    up: true,
                    counts: PeerCounts::default(),
                    stale_deadline: [None; 2],
                    over_limit: [false; 2],
                },
            );
            return;
        };
        let old = std::mem::replace(&mut state.info, info);
        state.up = true;
        state.over_limit = [false; 2];
        let info = &state.info;
        if old.address != info.address {
            // A different neighbour under the same id: nothing carries over.
            state.stale_deadline = [None; 2];
            self.remove_paths(peer, |_, _| true);
            return;
        }
        let mut sweep = [false; 2];
        for (f, family) in FAMILIES.iter().enumerate() {
            if state.stale_deadline[f].is_none() {
                continue;
            }
            let preserved = info.families.contains(family)
                && info.graceful_restart.as_ref().is_some_and(|gr| {
                    gr.families
                        .iter()
                        .any(|g| g.family == *family && g.forwarding_preserved)
                });
            if preserved {
                state.stale_deadline[f] = Some(now.saturating_add(self.config.stale_path_time));
            } else {
                state.stale_deadline[f] = None;
                sweep[f] = true;
            }
        }
        let decision_changed =
            old.asn != info.asn || old.internal != info.internal || old.bgp_id != info.bgp_id;
        let policy_changed = !Arc::ptr_eq(&old.import, &info.import);
        if sweep.iter().any(|s| *s) {
            self.remove_paths(peer, |p, f| p.stale && sweep[f]);
        }
        if policy_changed {
            self.reevaluate(peer);
        }
        if decision_changed {
            self.mark_peer_dirty(peer);
        }
    }

    /// The session with `peer` went down. With `stale` (graceful restart),
    /// its paths of those families are kept, marked stale, for the restart
    /// time; the rest are withdrawn now.
    pub fn peer_down(&mut self, peer: PeerId, stale: Option<&StalePaths>, now: Duration) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.up = false;
        state.over_limit = [false; 2];
        let mut keep = [false; 2];
        if let Some(s) = stale.filter(|s| !s.restart_time.is_zero()) {
            for family in &s.families {
                if let Some(f) = family_slot(*family) {
                    keep[f] = true;
                    state.stale_deadline[f] = Some(now.saturating_add(s.restart_time));
                }
            }
        }
        for (f, k) in keep.iter().enumerate() {
            if !k {
                state.stale_deadline[f] = None;
            }
        }
        if keep.iter().any(|k| *k) {
            self.mark_stale(peer, keep);
        }
        if keep.iter().any(|k| !k) {
            self.remove_paths(peer, |_, f| !keep[f]);
        }
        self.forget_if_gone(peer);
    }

    /// Apply a decoded UPDATE from `peer`: withdrawals, then announcements
    /// through import policy; an End-of-RIB marker ends the family's stale
    /// period.
    pub fn apply_update(
        &mut self,
        peer: PeerId,
        update: &DecodedUpdate,
        _now: Duration,
    ) -> Result<UpdateSummary, RibError> {
        let Some(state) = self.peers.get(&peer).filter(|s| s.up) else {
            return Err(RibError::PeerNotUp(peer));
        };
        let mut summary = UpdateSummary::default();
        if let Some(family) = update.update.end_of_rib_family() {
            summary.end_of_rib = Some(family);
            self.end_of_rib(peer, family);
            return Ok(summary);
        }
        let import = Arc::clone(&state.info.import);
        // RFC 4271 5.1.5: LOCAL_PREF from an external peer is ignored (the
        // decoder already discards it; a hand-built UPDATE may not).
        let mut attrs = update.update.attributes.clone();
        if !state.info.internal {
            attrs.local_pref = None;
        }

        for prefix in update.withdrawn() {
            summary.withdrawn += 1;
            if let Some(prefix) = prefix.normalized() {
                self.remove_path(peer, prefix);
            }
        }

        if update.outcome == Outcome::Accept {
            if !update.update.nlri.is_empty() {
                let nexthop = attrs
                    .next_hop
                    .map(IpAddr::V4)
                    .filter(|a| policy::usable_nexthop(*a));
                let received = self.attrs.intern(RouteAttrs {
                    attrs: attrs.clone(),
                    nexthop,
                    link_local: None,
                });
                for prefix in &update.update.nlri {
                    self.announce(peer, &import, *prefix, &received, &mut summary);
                }
            }
            if let Some(reach) = update
                .update
                .mp_reach
                .as_ref()
                .filter(|r| !r.nlri.is_empty())
            {
                let hop = reach.next_hop;
                let received = self.attrs.intern(RouteAttrs {
                    attrs: attrs.clone(),
                    nexthop: RouteAttrs::forwarding_nexthop(hop.global, hop.link_local),
                    link_local: hop.link_local,
                });
                for prefix in &reach.nlri {
                    self.announce(peer, &import, *prefix, &received, &mut summary);
                }
            }
        }
        Ok(summary)
    }

    fn announce(
        &mut self,
        peer: PeerId,
        import: &ImportPolicy,
        prefix: Prefix,
        received: &Arc<RouteAttrs>,
        summary: &mut UpdateSummary,
    ) {
        let Some(prefix) = prefix.normalized() else {
            return;
        };
        let path = self.evaluate(peer, import, prefix, Arc::clone(received));
        if path.filtered.is_some() {
            summary.filtered += 1;
        } else {
            summary.accepted += 1;
        }
        self.upsert_path(prefix, path);
        self.check_limits(peer);
    }

    /// A ROUTE-REFRESH from `peer` (enhanced route refresh, RFC 7313 4):
    /// Beginning of Route Refresh marks its paths of the family stale; the
    /// re-advertisement then replaces them, and End of Route Refresh sweeps
    /// those not re-advertised. If no EoRR comes within
    /// [`RibConfig::stale_path_time`], [`Rib::poll`] sweeps them. A Request
    /// asks us to advertise, which a router that advertises nothing
    /// ignores, as it ignores unknown subtypes.
    pub fn route_refresh(&mut self, peer: PeerId, refresh: &RouteRefresh, now: Duration) {
        let Some(f) = family_slot(refresh.family) else {
            return;
        };
        let Some(state) = self.peers.get_mut(&peer).filter(|s| s.up) else {
            return;
        };
        match refresh.subtype {
            RouteRefreshSubtype::Begin => {
                state.stale_deadline[f] = Some(now.saturating_add(self.config.stale_path_time));
                let mut families = [false; 2];
                families[f] = true;
                self.mark_stale(peer, families);
            }
            RouteRefreshSubtype::End => self.end_of_rib(peer, refresh.family),
            RouteRefreshSubtype::Request | RouteRefreshSubtype::Other(_) => {}
        }
    }

    /// The End-of-RIB of `family` from `peer`: its stale paths of the
    /// family that were not re-announced are withdrawn.
    fn end_of_rib(&mut self, peer: PeerId, family: AfiSafi) {
        let Some(f) = family_slot(family) else {
            return;
        };
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.stale_deadline[f].take().is_some() {
            self.remove_paths(peer, |p, pf| p.stale && pf == f);
        }
    }

    /// When [`Rib::poll`] next has work: the earliest stale deadline.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.peers
            .values()
            .flat_map(|s| s.stale_deadline.iter().flatten())
            .min()
            .copied()
    }

    /// Withdraw stale paths whose time is up.
    pub fn poll(&mut self, now: Duration) {
        let mut due: Vec<(PeerId, [bool; 2])> = Vec::new();
        for (id, state) in &mut self.peers {
            let mut fams = [false; 2];
            for (f, d) in state.stale_deadline.iter_mut().enumerate() {
                if d.is_some_and(|d| d <= now) {
                    *d = None;
                    fams[f] = true;
                }
            }
            if fams.iter().any(|x| *x) {
                due.push((*id, fams));
            }
        }
        for (peer, fams) in due {
            self.remove_paths(peer, |p, f| p.stale && fams[f]);
            self.forget_if_gone(peer);
        }
    }

    /// Replace `peer`'s import policy and re-evaluate its paths from their
    /// received attributes (no route refresh needed).
    pub fn set_import_policy(&mut self, peer: PeerId, import: Arc<ImportPolicy>) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.info.import = import;
            self.reevaluate(peer);
        }
    }

    /// Replace the forwarding policies; installed routes whose group policy
    /// changes are re-programmed in the next output.
    pub fn set_forwarding_policies(&mut self, forwarding: ForwardingPolicies) {
        let old = std::mem::replace(&mut self.config.forwarding, forwarding);
        for (prefix, dest) in self.table.iter() {
            let Some(set) = dest.installed else {
                continue;
            };
            let policy = self.config.forwarding.lookup(&prefix);
            if old.lookup(&prefix) != policy {
                self.pending_fib.push(FibUpdate::SetRoute {
                    prefix,
                    nexthops: self.fib.nexthops(self.fib.set(set)),
                    policy: Some(policy),
                });
            }
        }
    }

    /// Replace the settings: every prefix is decided again at the next
    /// output; a new `local_as` re-runs import policy (loop check) for every
    /// peer, and new forwarding policies re-program the routes they change.
    pub fn reconfigure(&mut self, config: RibConfig) {
        let forwarding = config.forwarding.clone();
        let local_as_changed = config.local_as != self.config.local_as;
        self.config = RibConfig {
            forwarding: std::mem::take(&mut self.config.forwarding),
            ..config
        };
        self.set_forwarding_policies(forwarding);
        if local_as_changed {
            let peers: Vec<PeerId> = self.peers.keys().copied().collect();
            for peer in peers {
                self.reevaluate(peer);
            }
        }
        let prefixes: Vec<Prefix> = self.table.iter().map(|(p, _)| p).collect();
        for p in prefixes {
            self.mark_dirty(p);
        }
    }

    /// Run the decision process on every prefix changed since the last
    /// call; return the FIB updates (one per prefix whose installed set or
    /// policy changed) and the session commands.
    pub fn take_output(&mut self) -> RibOutput {
        let mut dirty = std::mem::take(&mut self.dirty);
        // Prefix order, not hash order: the same events give the same batch,
        // so FIB group derivation (and the emulator) is reproducible.
        dirty.sort_unstable_by_key(prefix_order);
        let mut fib = std::mem::take(&mut self.pending_fib);
        fib.sort_by_key(|u| match u {
            FibUpdate::SetRoute { prefix, .. } | FibUpdate::RemoveRoute { prefix } => {
                prefix_order(prefix)
            }
            FibUpdate::SetDefaultPolicy(_) => (0, 0, 0),
        });
        for prefix in dirty {
            let Some(dest) = self.table.get_mut(&prefix) else {
                continue;
            };
            dest.dirty = false;
            let selection = select(&self.peers, &self.config, &dest.paths);
            let mut set: Vec<IpAddr> = selection
                .multipath
                .iter()
                .filter_map(|i| dest.paths.get(*i))
                .filter_map(|p| p.effective.nexthop)
                .collect();
            set.sort_unstable();
            set.dedup();
            let unchanged = match dest.installed {
                Some(id) => self.fib.set(id) == &set[..],
                None => set.is_empty(),
            };
            if !unchanged {
                let old = dest.installed.take();
                let new = if set.is_empty() {
                    None
                } else {
                    self.fib.acquire(&set)
                };
                match new {
                    Some(id) => {
                        fib.push(FibUpdate::SetRoute {
                            prefix,
                            nexthops: self.fib.nexthops(self.fib.set(id)),
                            policy: Some(self.config.forwarding.lookup(&prefix)),
                        });
                        dest.installed = Some(id);
                    }
                    None => fib.push(FibUpdate::RemoveRoute { prefix }),
                }
                if let Some(old) = old {
                    self.fib.release(old);
                }
            }
            if dest.paths.is_empty() && dest.installed.is_none() {
                self.table.remove(&prefix);
            }
        }
        RibOutput {
            fib,
            sessions: std::mem::take(&mut self.commands),
        }
    }

    // ----- Inspection -------------------------------------------------------

    /// Prefixes held (with at least one path, or still installed until the
    /// next output).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no prefix is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// One prefix with all its paths.
    pub fn route(&self, prefix: &Prefix) -> Option<RouteView<'_>> {
        let prefix = prefix.normalized()?;
        let dest = self.table.get(&prefix)?;
        Some(self.view(prefix, dest))
    }

    /// Every prefix with all its paths, in no particular order (sort for
    /// display).
    pub fn routes(&self) -> impl Iterator<Item = RouteView<'_>> + '_ {
        self.table
            .iter()
            .filter(|(_, d)| !d.paths.is_empty())
            .map(|(p, d)| self.view(p, d))
    }

    /// The nexthop addresses installed for `prefix` (as of the last
    /// output), sorted.
    pub fn installed(&self, prefix: &Prefix) -> Option<&[IpAddr]> {
        let prefix = prefix.normalized()?;
        self.table
            .get(&prefix)?
            .installed
            .map(|id| self.fib.set(id))
    }

    /// Every installed route: prefix and nexthop addresses.
    pub fn installed_routes(&self) -> impl Iterator<Item = (Prefix, &[IpAddr])> + '_ {
        self.table
            .iter()
            .filter_map(|(p, d)| d.installed.map(|id| (p, self.fib.set(id))))
    }

    /// The member id a nexthop address has in the FIB.
    pub fn member_id(&self, addr: &IpAddr) -> Option<MemberId> {
        self.fib.member_id(addr)
    }

    /// A peer's counters.
    pub fn peer_counts(&self, peer: PeerId) -> Option<PeerCounts> {
        self.peers.get(&peer).map(|s| s.counts)
    }

    /// Every known peer (up, or down with stale paths): id, info, whether
    /// its session is up, counters.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &PeerInfo, bool, PeerCounts)> + '_ {
        self.peers
            .iter()
            .map(|(id, s)| (*id, &s.info, s.up, s.counts))
    }

    /// Nexthop addresses used by at least one installed route.
    pub fn nexthops_in_use(&self) -> usize {
        self.fib.active_members()
    }

    /// Distinct attribute sets held (for memory accounting).
    pub fn attribute_sets(&self) -> usize {
        self.attrs.len()
    }

    fn view<'a>(&'a self, prefix: Prefix, dest: &'a Dest) -> RouteView<'a> {
        let selection = select(&self.peers, &self.config, &dest.paths);
        let paths = dest
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| PathView {
                peer: p.peer,
                peer_address: self
                    .peers
                    .get(&p.peer)
                    .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |s| {
                        s.info.address
                    }),
                attributes: &p.effective,
                received: &p.received,
                best: selection.best == Some(i),
                multipath: selection.multipath.contains(&i),
                stale: p.stale,
                filtered: p.filtered,
            })
            .collect();
        RouteView {
            prefix,
            paths,
            installed: dest.installed.map_or(&[][..], |id| self.fib.set(id)),
        }
    }

    // ----- Internals --------------------------------------------------------

    /// A path of `peer` for `prefix` with `received` attributes, through
    /// loop check, next-hop check, prefix limit and import policy.
    fn evaluate(
        &mut self,
        peer: PeerId,
        import: &ImportPolicy,
        prefix: Prefix,
        received: Arc<RouteAttrs>,
    ) -> Path {
        self.seq += 1;
        let mut path = Path {
            peer,
            seq: self.seq,
            effective: Arc::clone(&received),
            received,
            filtered: None,
            stale: false,
        };
        let f = family_index(&prefix);
        let over_limit = self
            .peers
            .get(&peer)
            .is_some_and(|s| s.over_limit[f] && s.info.max_prefix.is_some_and(|m| !m.warning_only));
        let held = over_limit
            && self.table.get(&prefix).is_some_and(|d| {
                d.paths
                    .iter()
                    .any(|p| p.peer == peer && p.filtered.is_none())
            });
        path.filtered = self.filter_reason(import, &prefix, &path.received);
        if path.filtered.is_none() && over_limit && !held {
            path.filtered = Some(FilterReason::OverLimit);
        }
        if path.filtered.is_none() {
            if let PolicyAction::SetLocalPref(lp) = import.action_for(&prefix, &path.received.attrs)
            {
                if path.received.attrs.local_pref != Some(lp) {
                    let mut changed = (*path.received).clone();
                    changed.attrs.local_pref = Some(lp);
                    path.effective = self.attrs.intern(changed);
                }
            }
        }
        path
    }

    fn filter_reason(
        &self,
        import: &ImportPolicy,
        prefix: &Prefix,
        attrs: &RouteAttrs,
    ) -> Option<FilterReason> {
        if attrs
            .attrs
            .as_path
            .as_ref()
            .is_some_and(|p| p.contains(self.config.local_as))
        {
            return Some(FilterReason::AsLoop);
        }
        if attrs.nexthop.is_none() {
            return Some(FilterReason::NoNexthop);
        }
        if !import.allows_prefix(prefix) {
            return Some(FilterReason::OutsideRanges);
        }
        if import.action_for(prefix, &attrs.attrs) == PolicyAction::Deny {
            return Some(FilterReason::Denied);
        }
        None
    }

    /// Re-run import policy over `peer`'s paths.
    fn reevaluate(&mut self, peer: PeerId) {
        let Some(import) = self.peers.get(&peer).map(|s| Arc::clone(&s.info.import)) else {
            return;
        };
        let mut changes: Vec<(Prefix, Path)> = Vec::new();
        for (prefix, dest) in self.table.iter() {
            for p in dest.paths.iter().filter(|p| p.peer == peer) {
                changes.push((prefix, p.clone()));
            }
        }
        for (prefix, old) in changes {
            let mut path = self.evaluate(peer, &import, prefix, Arc::clone(&old.received));
            path.seq = old.seq;
            path.stale = old.stale;
            self.upsert_path(prefix, path);
        }
    }

    /// Insert or replace the path of `path.peer` for `prefix`.
    fn upsert_path(&mut self, prefix: Prefix, path: Path) {
        let Some(state) = self.peers.get(&path.peer) else {
            return;
        };
        let key = (state.info.address, path.peer);
        let peers = &self.peers;
        let dest = self.table.entry(prefix);
        let f = family_index(&prefix);
        if let Some(old) = dest.paths.iter_mut().find(|p| p.peer == path.peer) {
            if old.same_as(&path) {
                return;
            }
            let old = std::mem::replace(old, path);
            let new = dest.paths.iter().find(|p| p.peer == old.peer);
            if let Some(state) = self.peers.get_mut(&old.peer) {
                state.counts.account(&old, f, false);
                if let Some(new) = new {
                    state.counts.account(new, f, true);
                }
            }
        } else {
            let pos = dest.paths.partition_point(|p| {
                let addr = peers
                    .get(&p.peer)
                    .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |s| {
                        s.info.address
                    });
                (addr, p.peer) < key
            });
            if let Some(state) = self.peers.get_mut(&path.peer) {
                state.counts.account(&path, f, true);
            }
            dest.insert(pos, path);
        }
        if !dest.dirty {
            dest.dirty = true;
            self.dirty.push(prefix);
        }
    }

    /// Remove `peer`'s path for `prefix`, if held.
    fn remove_path(&mut self, peer: PeerId, prefix: Prefix) {
        let Some(dest) = self.table.get_mut(&prefix) else {
            return;
        };
        let Some(i) = dest.paths.iter().position(|p| p.peer == peer) else {
            return;
        };
        let Some(old) = dest.remove(i) else {
            return;
        };
        if let Some(state) = self.peers.get_mut(&peer) {
            state.counts.account(&old, family_index(&prefix), false);
        }
        if !dest.dirty {
            dest.dirty = true;
            self.dirty.push(prefix);
        }
    }

    /// Remove every path of `peer` for which `pred(path, family)` holds.
    fn remove_paths(&mut self, peer: PeerId, pred: impl Fn(&Path, usize) -> bool) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        for (prefix, dest) in self.table.iter_mut() {
            let f = family_index(&prefix);
            if !dest.paths.iter().any(|p| p.peer == peer && pred(p, f)) {
                continue;
            }
            dest.retain(|p| {
                let gone = p.peer == peer && pred(p, f);
                if gone {
                    state.counts.account(p, f, false);
                }
                !gone
            });
            if !dest.dirty {
                dest.dirty = true;
                self.dirty.push(prefix);
            }
        }
    }

    /// Mark `peer`'s paths of the families in `families` stale. The FIB
    /// does not change: stale paths compete as equals.
    fn mark_stale(&mut self, peer: PeerId, families: [bool; 2]) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        for (prefix, dest) in self.table.iter_mut() {
            let f = family_index(&prefix);
            if !families[f] {
                continue;
            }
            for p in dest.paths.iter_mut().filter(|p| p.peer == peer && !p.stale) {
                state.counts.account(p, f, false);
                p.stale = true;
                state.counts.account(p, f, true);
            }
        }
    }

    /// Queue every prefix `peer` has a path for.
    fn mark_peer_dirty(&mut self, peer: PeerId) {
        for (prefix, dest) in self.table.iter_mut() {
            if !dest.dirty && dest.paths.iter().any(|p| p.peer == peer) {
                dest.dirty = true;
                self.dirty.push(prefix);
            }
        }
    }

    fn mark_dirty(&mut self, prefix: Prefix) {
        if let Some(dest) = self.table.get_mut(&prefix) {
            if !dest.dirty {
                dest.dirty = true;
                self.dirty.push(prefix);
            }
        }
    }

    /// Report a family that went over its limit, once per session.
    fn check_limits(&mut self, peer: PeerId) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(max) = state.info.max_prefix else {
            return;
        };
        for (f, family) in FAMILIES.iter().enumerate() {
            let count = state.counts.accepted_in(f);
            if count > max.limit && !state.over_limit[f] {
                state.over_limit[f] = true;
                self.commands.push(if max.warning_only {
                    SessionCommand::MaxPrefixWarning {
                        peer,
                        family: *family,
                        limit: max.limit,
                        count,
                    }
                } else {
                    SessionCommand::MaxPrefixExceeded {
                        peer,
                        family: *family,
                        limit: max.limit,
                        hold_down: max.hold_down,
                    }
                });
            }
        }
    }

    /// Drop a down peer that holds no path and waits for nothing.
    fn forget_if_gone(&mut self, peer: PeerId) {
        let gone = self.peers.get(&peer).is_some_and(|s| {
            !s.up && s.counts.received == 0 && s.stale_deadline.iter().all(|d| d.is_none())
        });
        if gone {
            self.peers.remove(&peer);
        }
    }
}

/// A total order on prefixes: IPv4 first, then by address, then length.
fn prefix_order(p: &Prefix) -> (u8, u128, u8) {
    match *p {
        Prefix::V4(a, len) => (4, u128::from(u32::from(a)), len),
        Prefix::V6(a, len) => (6, u128::from(a), len),
    }
}

/// The decision process over one prefix's paths.
fn select(peers: &FastMap<PeerId, PeerState>, config: &RibConfig, paths: &[Path]) -> Selection {
    let cands: Vec<Candidate> = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| p.filtered.is_none() && p.effective.nexthop.is_some())
        .filter_map(|(index, p)| {
            let peer = peers.get(&p.peer)?;
            Some(Candidate {
                index,
                attrs: &p.effective,
                ebgp: !peer.info.internal,
                peer_bgp_id: peer.info.bgp_id,
                peer_address: peer.info.address,
                peer: p.peer,
                seq: p.seq,
            })
        })
        .collect();
    decision::select(&cands, config)
}
