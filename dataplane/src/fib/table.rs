//! Nexthop groups and the FIB writer API the control plane programs.
//!
//! A route (an IPv4 or IPv6 prefix in the LPM tables) holds a [`GroupId`];
//! the group is a [`NexthopGroup`]: a policy (algorithm, its parameters, the
//! hashed fields, hash function and seed), the nexthops, the flow hasher and
//! the selector built over them. The groups are published as one immutable
//! [`GroupTable`] behind an [`ArcSwap`], so data-plane workers read without
//! locks: once per packet batch a worker takes a [`FibSnapshot`] (one atomic
//! load of the table), then per packet it does an LPM lookup and a table
//! index.
//!
//! # Group semantics
//!
//! * **Interning.** Routes whose (policy, nexthop set) are equal share one
//!   reference-counted group. A nexthop set is order-insensitive: it is kept
//!   sorted by member id, and that order is the selector's member order.
//! * **Derivation.** When a route's nexthop set changes under the same policy
//!   (a node left or joined), its new group is *derived* from its old group:
//!   the old selector is cloned and [`Selector::set_members`] is called on the
//!   clone, so resilient buckets, jump slots, DxHash/AnchorHash maps move only
//!   what they must; the generation is the old one plus one. Then, for the old
//!   group `G` and the new set `S`, in this order:
//!   1. if a route of `G` already moved to `S` (in this batch or an earlier
//!      one) and that derived group still exists with set `S`, the route joins
//!      it (so a node failing, withdrawn route by route, ends with every route
//!      in one group again);
//!   2. else if every route still referencing `G` moves to `S` in this batch
//!      (in particular when the route is `G`'s only user), `G` is replaced **in
//!      place** under the same id: the LPM does not change, only the published
//!      group does (DESIGN: "a node failing changes the group's selector only,
//!      not the LPM");
//!   3. else a derived group is created under a new id and the route's LPM
//!      entry is repointed to it.
//! * **Policy changes** are not derivations: a route whose policy changes gets
//!   the interned group of (new policy, set), created fresh if needed. A
//!   [`FibUpdate::SetDefaultPolicy`] applies to later updates that name no
//!   policy; existing routes keep theirs.
//! * **Empty nexthop lists remove the route** (the address then falls back to
//!   a less specific route, if any): ecmpd mirrors BGP, where a prefix with no
//!   path left is withdrawn, and an explicit blackhole can be added later as
//!   its own update kind.
//! * **Change events.** [`Applied::changes`] holds one [`GroupChange`] per
//!   group whose member set changed: a group changed in place (same id,
//!   `derived_from: None`), and a newly derived group (its new id,
//!   `members_before` being the members of the group it was derived from,
//!   `derived_from: Some(parent)`). A route *joining* an existing derived
//!   group (case 1 above) also emits a [`GroupChange`] for the derived group
//!   with `derived_from: Some(parent)` and the same member sets, so that the
//!   flow tracker learns (again) that flows of the parent may now show up in
//!   the derived group, and attributes their breaks to the join; it is
//!   emitted once per (derived group, batch), so not when the group was
//!   created or already joined earlier in the same batch. Moving to a group
//!   by policy change or creating a fresh one is not a member change.
//!
//! # Publication
//!
//! [`FibWriter::apply`] validates and stages the whole batch first (on error
//! nothing is published and the writer is as before), then publishes the group
//! table once (one swap), then writes the LPM: inserts and repoints first,
//! removals last. A group freed by the batch stays in that published table, so
//! a reader that still sees an old LPM entry finds its group; it leaves the
//! table at the next publish, and its id is reused only once every table that
//! contained it has been dropped by all readers (tracked with the tables'
//! reference counts). Hence a snapshot never returns a group for a route it
//! belongs to no longer, nor a group created after the snapshot was taken.
//!
//! The LPM entries themselves are live (not snapshotted). So that a reader
//! never meets an LPM entry naming a group its table lacks, a batch that writes
//! the LPM first waits, after the publish, until no reader holds the previous
//! table any more (an RCU grace period, bounded by [`FibConfig::grace`]; the
//! swap counts every outstanding guard). Workers must therefore drop their
//! snapshot at the end of each batch. A snapshot held across a whole apply
//! (past the grace period) sees none of the batch's group contents, but an
//! address whose LPM entry the batch added or repointed may name a group it
//! does not have, and its lookup returns `None`. Node failures on groups
//! whose routes all lose the node (the common case) change no LPM entry and
//! are fully atomic for every snapshot.
//!
//! If the LPM refuses an insert (its second-level pool is full), the LPM
//! writes of the batch are undone, the previous table is published again and
//! the error returned; readers may have seen the batch for that moment.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Guard};
use hashing::select::{validate_members, SelectError};
use hashing::{
    Algorithm, AnySelector, FieldSelection, FlowHasher, FlowKey, HashFields, HashFunction, Member,
    MemberId, Nanos, Selector, SelectorParams,
};

use super::lpm4::{self, Lpm4Config, Lpm4Reader, Lpm4Writer};
use super::lpm6::{self, Lpm6Config, Lpm6Reader, Lpm6Writer};
use super::FibError;
use crate::fasthash::{FastMap, FastSet};
use crate::tracker::{GroupChange, GroupId};

/// Default for [`FibConfig::grace`].
pub const DEFAULT_GRACE: Duration = Duration::from_millis(100);

/// Default limit on the number of group ids.
pub const DEFAULT_MAX_GROUPS: u32 = 1 << 20;

/// One nexthop of a group: its member id (stable across group changes), its
/// address (resolved by the neighbour table) and its weight (>= 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nexthop {
    pub id: MemberId,
    pub addr: IpAddr,
    pub weight: u32,
}

impl Nexthop {
    /// A nexthop of weight 1.
    pub fn new(id: MemberId, addr: IpAddr) -> Self {
        Nexthop {
            id,
            addr,
            weight: 1,
        }
    }

    /// A nexthop of the given weight.
    pub fn weighted(id: MemberId, addr: IpAddr, weight: u32) -> Self {
        Nexthop { id, addr, weight }
    }
}

/// How a group spreads flows: the selection algorithm and its parameters, and
/// how flows are hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupPolicy {
    pub algorithm: Algorithm,
    pub params: SelectorParams,
    pub fields: FieldSelection,
    pub hash: HashFunction,
    pub seed: u64,
}

impl Default for GroupPolicy {
    /// The DESIGN default: resilient buckets over the 5-tuple, hashed with
    /// XXH3.
    fn default() -> Self {
        GroupPolicy {
            algorithm: Algorithm::Resilient,
            params: SelectorParams::default(),
            fields: FieldSelection::new(HashFields::L4),
            hash: HashFunction::Xxh3,
            seed: 0,
        }
    }
}

impl Hash for GroupPolicy {
    // `SelectorParams` is not `Hash`; hashing a subset of the fields is
    // consistent with the derived `Eq`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.algorithm.hash(state);
        self.fields.hash(state);
        self.hash.hash(state);
        self.seed.hash(state);
        self.params.seed.hash(state);
    }
}

/// A route's prefix. Lengths are checked by [`FibWriter::apply`] (and by
/// parsing); host bits beyond the length are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prefix {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl Prefix {
    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        match *self {
            Prefix::V4(_, len) | Prefix::V6(_, len) => len,
        }
    }

    /// The longest valid length for the family (32 or 128).
    pub fn max_len(&self) -> u8 {
        match self {
            Prefix::V4(..) => 32,
            Prefix::V6(..) => 128,
        }
    }

    /// Whether the length is valid for the family.
    pub fn is_valid(&self) -> bool {
        self.prefix_len() <= self.max_len()
    }

    /// The same prefix with host bits cleared (`10.1.2.3/8` is `10.0.0.0/8`);
    /// `None` when the length is out of range.
    pub fn normalized(&self) -> Option<Prefix> {
        match *self {
            Prefix::V4(a, len) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                Some(Prefix::V4(Ipv4Addr::from(u32::from(a) & mask), len))
            }
            Prefix::V6(a, len) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                Some(Prefix::V6(Ipv6Addr::from(u128::from(a) & mask), len))
            }
            _ => None,
        }
    }

    fn family(&self) -> &'static str {
        match self {
            Prefix::V4(..) => "IPv4",
            Prefix::V6(..) => "IPv6",
        }
    }

    /// Whether `inner` lies inside this prefix: same family, no shorter, and
    /// the first `self.prefix_len()` bits equal (host bits ignored).
    pub fn covers(&self, inner: &Prefix) -> bool {
        match (*self, *inner) {
            (Prefix::V4(o, ol), Prefix::V4(i, il)) if ol <= il && ol <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(ol)).unwrap_or(0);
                u32::from(o) & mask == u32::from(i) & mask
            }
            (Prefix::V6(o, ol), Prefix::V6(i, il)) if ol <= il && ol <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(ol)).unwrap_or(0);
                u128::from(o) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.covers(&Prefix::host(addr))
    }

    /// The host route of `addr` (/32 or /128).
    pub fn host(addr: IpAddr) -> Prefix {
        match addr {
            IpAddr::V4(a) => Prefix::V4(a, 32),
            IpAddr::V6(a) => Prefix::V6(a, 128),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(a, len) => write!(f, "{a}/{len}"),
            Prefix::V6(a, len) => write!(f, "{a}/{len}"),
        }
    }
}

/// Why a prefix could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{given}' is not a prefix: write an IPv4 or IPv6 address, a slash and a length (203.0.113.10/32, 2001:db8::/32)")]
pub struct ParsePrefixError {
    pub given: String,
}

impl FromStr for Prefix {
    type Err = ParsePrefixError;

    /// Parses `addr/len`; a bare address is a host route (/32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParsePrefixError {
            given: s.to_string(),
        };
        let t = s.trim();
        let (addr, len) = match t.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (t, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let len = match len {
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
                Some(l.parse::<u8>().map_err(|_| err())?)
            }
            Some(_) => return Err(err()),
            None => None,
        };
        let prefix = match addr {
            IpAddr::V4(a) => Prefix::V4(a, len.unwrap_or(32)),
            IpAddr::V6(a) => Prefix::V6(a, len.unwrap_or(128)),
        };
        if prefix.is_valid() {
            Ok(prefix)
        } else {
            Err(err())
        }
    }
}

/// A published nexthop group: immutable once published; a change publishes a
/// new one (under the same id when changed in place).
#[derive(Clone, Debug)]
pub struct NexthopGroup {
    id: GroupId,
    policy: GroupPolicy,
    /// Sorted by member id, unique ids.
    nexthops: Vec<Nexthop>,
    hasher: FlowHasher,
    selector: AnySelector,
    generation: u32,
}

impl NexthopGroup {
    pub fn id(&self) -> GroupId {
        self.id
    }

    pub fn policy(&self) -> &GroupPolicy {
        &self.policy
    }

    /// The nexthops, sorted by member id.
    pub fn nexthops(&self) -> &[Nexthop] {
        &self.nexthops
    }

    pub fn hasher(&self) -> &FlowHasher {
        &self.hasher
    }

    pub fn selector(&self) -> &AnySelector {
        &self.selector
    }

    /// 0 for a fresh group, plus one per change of its member set.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The member ids, sorted.
    pub fn member_ids(&self) -> Vec<MemberId> {
        self.nexthops.iter().map(|n| n.id).collect()
    }

    /// The nexthop for a flow: hash, selector, then the nexthop of the chosen
    /// member. Allocation-free; `None` only for an empty group.
    #[inline]
    pub fn select(&self, key: &FlowKey) -> Option<&Nexthop> {
        self.select_hash(self.hasher.hash(key))
    }

    /// The nexthop for a packet of a flow forwarded at `now`: as
    /// [`NexthopGroup::select`], and a resilient group records the bucket as
    /// busy at `now` (the activity its idle timer reads, shared by every
    /// version of the group).
    #[inline]
    pub fn select_at(&self, key: &FlowKey, now: Nanos) -> Option<&Nexthop> {
        let hash = self.hasher.hash(key);
        if let AnySelector::Resilient(r) = &self.selector {
            r.note_activity(hash, now);
        }
        self.select_hash(hash)
    }

    /// The nexthop for an already computed flow hash.
    #[inline]
    pub fn select_hash(&self, hash: u32) -> Option<&Nexthop> {
        self.nexthop(self.selector.select(hash)?)
    }

    /// The nexthop with member id `id` (binary search over the sorted set).
    #[inline]
    pub fn nexthop(&self, id: MemberId) -> Option<&Nexthop> {
        self.nexthops
            .binary_search_by_key(&id, |n| n.id)
            .ok()
            .and_then(|i| self.nexthops.get(i))
    }
}

/// The published groups, indexed by id.
#[derive(Clone, Debug, Default)]
pub struct GroupTable {
    groups: Vec<Option<Arc<NexthopGroup>>>,
    live: usize,
}

impl GroupTable {
    /// The group with this id, if published.
    #[inline]
    pub fn get(&self, id: GroupId) -> Option<&Arc<NexthopGroup>> {
        self.groups.get(id as usize)?.as_ref()
    }

    /// Number of groups in the table.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The groups, by increasing id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<NexthopGroup>> {
        self.groups.iter().flatten()
    }
}

/// Sizing and defaults of a FIB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FibConfig {
    pub lpm4: Lpm4Config,
    pub lpm6: Lpm6Config,
    /// Group ids are `0..max_groups` (clamped to the LPM's largest value + 1).
    pub max_groups: u32,
    /// The policy of routes set without one.
    pub default_policy: GroupPolicy,
    /// How long [`FibWriter::apply`] waits, after publishing the groups, for
    /// readers of the previous table to drop their snapshots before it writes
    /// the LPM (see the module docs). Workers hold a snapshot for one batch,
    /// so the wait is normally a few microseconds; a reader holding one for
    /// longer only delays the writer by this much.
    pub grace: Duration,
}

impl Default for FibConfig {
    fn default() -> Self {
        FibConfig {
            lpm4: Lpm4Config::default(),
            lpm6: Lpm6Config::default(),
            max_groups: DEFAULT_MAX_GROUPS,
            default_policy: GroupPolicy::default(),
            grace: DEFAULT_GRACE,
        }
    }
}

/// Creates an empty FIB: its single writer and a first reader (clone it for
/// each worker).
pub fn new(config: FibConfig) -> (FibWriter, FibReader) {
    let (w4, r4) = lpm4::new(config.lpm4);
    let (w6, r6) = lpm6::new(config.lpm6);
    let table = Arc::new(ArcSwap::from_pointee(GroupTable::default()));
    let reader = FibReader {
        v4: r4,
        v6: r6,
        table: Arc::clone(&table),
    };
    let writer = FibWriter {
        v4: w4,
        v6: w6,
        table,
        routes: FastMap::default(),
        groups: Vec::new(),
        intern: FastMap::default(),
        free_ids: Vec::new(),
        max_groups: config
            .max_groups
            .min(lpm4::MAX_VALUE.min(lpm6::MAX_VALUE) + 1),
        default_policy: config.default_policy,
        grace: config.grace,
        unpublish: Vec::new(),
        retired: VecDeque::new(),
        live: 0,
    };
    (writer, reader)
}

/// A lock-free read handle: cheap to clone, one per worker.
#[derive(Clone, Debug)]
pub struct FibReader {
    v4: Lpm4Reader,
    v6: Lpm6Reader,
    table: Arc<ArcSwap<GroupTable>>,
}

impl FibReader {
    /// The current groups (one atomic load); take one per packet batch.
    #[inline]
    pub fn snapshot(&self) -> FibSnapshot<'_> {
        FibSnapshot {
            reader: self,
            table: self.table.load(),
        }
    }
}

/// One published group table plus the (live) LPM tables.
pub struct FibSnapshot<'a> {
    reader: &'a FibReader,
    table: Guard<Arc<GroupTable>>,
}

impl FibSnapshot<'_> {
    /// The group id the LPM gives for `dst`.
    #[inline]
    pub fn lookup_id(&self, dst: IpAddr) -> Option<GroupId> {
        match dst {
            IpAddr::V4(a) => self.reader.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.reader.v6.lookup(u128::from(a)),
        }
    }

    /// The group of the longest prefix containing `dst`.
    #[inline]
    pub fn lookup(&self, dst: IpAddr) -> Option<&NexthopGroup> {
        self.table.get(self.lookup_id(dst)?).map(|g| g.as_ref())
    }

    /// The group ids the LPM gives for IPv4 destinations (host byte order):
    /// `out[i]` for `dsts[i]`, [`lpm4::NO_ROUTE`] where there is none, for
    /// `i` below the shorter length. Issues every table load of the batch
    /// before using any, so their cache misses overlap (see
    /// [`Lpm4Reader::lookup_batch`]); same answers as
    /// [`lookup_id`](Self::lookup_id) one address at a time.
    #[inline]
    pub fn lookup_v4_batch(&self, dsts: &[u32], out: &mut [u32]) {
        self.reader.v4.lookup_batch(dsts, out);
    }

    /// Starts loading the LPM entry of the IPv4 destination `dst` (host byte
    /// order) into the cache, ahead of [`lookup_v4_batch`](Self::lookup_v4_batch);
    /// a hint that changes no result (see [`Lpm4Reader::prefetch`]).
    #[inline(always)]
    pub fn prefetch_v4(&self, dst: u32) {
        self.reader.v4.prefetch(dst);
    }

    /// The group ids the LPM gives for IPv6 destinations: `out[i]` for
    /// `dsts[i]`, [`lpm6::NO_ROUTE`] where there is none, for `i` below the
    /// shorter length; same answers as [`lookup_id`](Self::lookup_id) (see
    /// [`Lpm6Reader::lookup_batch`]).
    #[inline]
    pub fn lookup_v6_batch(&self, dsts: &[u128], out: &mut [u32]) {
        self.reader.v6.lookup_batch(dsts, out);
    }

    /// Starts loading the first-level LPM entry of the IPv6 destination
    /// `dst`; a hint that changes no result (see [`Lpm6Reader::prefetch`]).
    #[inline(always)]
    pub fn prefetch_v6(&self, dst: u128) {
        self.reader.v6.prefetch(dst);
    }

    /// The group table of this snapshot.
    pub fn table(&self) -> &GroupTable {
        &self.table
    }

    /// A group of this snapshot by id.
    pub fn group(&self, id: GroupId) -> Option<&NexthopGroup> {
        self.table.get(id).map(|g| g.as_ref())
    }
}

/// One change to the FIB.
#[derive(Clone, Debug, PartialEq)]
pub enum FibUpdate {
    /// Add or replace the route; an empty `nexthops` removes it. `policy:
    /// None` takes the writer's default policy at this point of the batch.
    SetRoute {
        prefix: Prefix,
        nexthops: Vec<Nexthop>,
        policy: Option<GroupPolicy>,
    },
    /// Remove the route if present.
    RemoveRoute { prefix: Prefix },
    /// The policy of later `SetRoute`s without one.
    SetDefaultPolicy(GroupPolicy),
}

/// What a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// One event per group whose member set changed (for the flow tracker).
    pub changes: Vec<GroupChange>,
    /// Groups created (fresh or derived).
    pub created: Vec<GroupId>,
    /// Groups no route references any more.
    pub freed: Vec<GroupId>,
    /// LPM entries written (inserted, repointed or removed).
    pub lpm_writes: usize,
}

/// What [`FibWriter::upkeep`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// Groups whose buckets moved, with the number of buckets moved.
    pub migrated: Vec<(GroupId, u32)>,
    /// When upkeep next has work to do, if ever (the earliest deadline over
    /// all groups).
    pub next: Option<Nanos>,
}

/// Why a batch was refused; the FIB is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibTableError {
    #[error("update {index}: prefix length {len} is out of range for {family} (0 to {max})")]
    PrefixLength {
        index: usize,
        family: &'static str,
        len: u8,
        max: u8,
    },
    #[error("update {index} ({prefix}): {source}")]
    Nexthops {
        index: usize,
        prefix: Prefix,
        #[source]
        source: SelectError,
    },
    #[error("all {max} group ids are in use (raise max_groups)")]
    GroupsExhausted { max: u32 },
    #[error("route {prefix}: {source}")]
    Lpm {
        prefix: Prefix,
        #[source]
        source: FibError,
    },
}

/// Writer-side state of a group.
#[derive(Clone, Debug)]
struct Entry {
    group: Arc<NexthopGroup>,
    refs: u32,
    /// Sets that routes of this group moved to, and the group derived for each.
    derived: FastMap<Vec<Nexthop>, GroupId>,
    /// The group this one was derived from.
    parent: Option<GroupId>,
}

type Key = (GroupPolicy, Vec<Nexthop>);

/// A batch resolved: each touched prefix with the index of its final
/// (policy, set) in the batch's distinct keys (None: remove), in
/// first-touch order; and those keys.
type Resolved = (Vec<(Prefix, Option<usize>)>, Vec<Key>);

/// Inverse operations of a batch being staged.
enum Undo {
    Route(Prefix, Option<GroupId>),
    Group(GroupId, Option<Entry>),
    /// One reference added to a live group (undone by dropping it).
    AddRef(GroupId),
    Intern(Key, Option<GroupId>),
    DefaultPolicy(GroupPolicy),
}

/// The single writer of a FIB.
pub struct FibWriter {
    v4: Lpm4Writer,
    v6: Lpm6Writer,
    table: Arc<ArcSwap<GroupTable>>,
    routes: FastMap<Prefix, GroupId>,
    groups: Vec<Option<Entry>>,
    intern: FastMap<Key, GroupId>,
    free_ids: Vec<GroupId>,
    max_groups: u32,
    default_policy: GroupPolicy,
    grace: Duration,
    /// Freed by the last batch: still in the published table.
    unpublish: Vec<GroupId>,
    /// Replaced tables, oldest first, with the ids reusable once that table
    /// and every older one are dropped by all readers.
    retired: VecDeque<(Arc<GroupTable>, Vec<GroupId>)>,
    live: usize,
}

impl fmt::Debug for FibWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FibWriter")
            .field("routes", &self.routes.len())
            .field("groups", &self.live)
            .field("default_policy", &self.default_policy)
            .finish()
    }
}

/// Staging state of one batch.
struct Batch {
    undo: Vec<Undo>,
    /// Per (group, set): routes of the group still to be moved to the set.
    pending: FastMap<(GroupId, Vec<Nexthop>), u32>,
    lpm: Vec<(Prefix, Option<GroupId>)>,
    applied: Applied,
    /// Derived groups whose derivation this batch already announced.
    announced: FastSet<GroupId>,
    /// The last key `intern_or_create` found interned, and its group: a
    /// batch's routes mostly share a few sets, so most lookups are a
    /// compare instead of hashing the key. Cleared when the intern map
    /// changes.
    last_intern: Option<(Key, GroupId)>,
}

impl FibWriter {
    /// A new reader of this FIB.
    pub fn reader(&self) -> FibReader {
        FibReader {
            v4: self.v4.reader(),
            v6: self.v6.reader(),
            table: Arc::clone(&self.table),
        }
    }

    /// The policy of routes set without one.
    pub fn default_policy(&self) -> &GroupPolicy {
        &self.default_policy
    }

    /// The group a route points at.
    pub fn route(&self, prefix: Prefix) -> Option<GroupId> {
        self.routes.get(&prefix.normalized()?).copied()
    }

    /// Number of routes.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Number of groups referenced by routes.
    pub fn group_count(&self) -> usize {
        self.live
    }

    /// A group referenced by routes (as last applied).
    pub fn group(&self, id: GroupId) -> Option<&Arc<NexthopGroup>> {
        self.entry(id).map(|e| &e.group)
    }

    /// How many routes reference group `id`.
    pub fn group_refs(&self, id: GroupId) -> u32 {
        self.entry(id).map_or(0, |e| e.refs)
    }

    /// Returns quarantined LPM second-level groups to their free lists; call
    /// it only once every reader finished the batches it started before the
    /// last apply (see [`Lpm4Writer::release_quarantine`]).
    pub fn release_lpm_quarantine(&mut self) {
        self.v4.release_quarantine();
        self.v6.release_quarantine();
    }

    /// Validates and applies a batch, publishing it once. On error nothing
    /// changed.
    pub fn apply(&mut self, updates: &[FibUpdate], now: Nanos) -> Result<Applied, FibTableError> {
        self.reclaim_ids();
        let saved_len = self.groups.len();
        let saved_free = self.free_ids.clone();
        let saved_live = self.live;
        let mut batch = Batch {
            undo: Vec::new(),
            pending: FastMap::default(),
            lpm: Vec::new(),
            applied: Applied::default(),
            announced: FastSet::default(),
            last_intern: None,
        };
        let staged = self
            .resolve(updates, &mut batch)
            .and_then(|(intents, keys)| self.stage(intents, &keys, now, &mut batch));
        if let Err(e) = staged {
            self.rollback(batch.undo, saved_len, saved_free, saved_live);
            return Err(e);
        }

        // Publish: groups referenced now, plus those freed by this batch
        // (the LPM may still point at them until it is written below).
        let previous = self.table.load_full();
        let mut groups: Vec<Option<Arc<NexthopGroup>>> = self
            .groups
            .iter()
            .map(|e| e.as_ref().map(|e| Arc::clone(&e.group)))
            .collect();
        for &id in &batch.applied.freed {
            if let (Some(slot), Some(g)) = (groups.get_mut(id as usize), previous.get(id)) {
                *slot = Some(Arc::clone(g));
            }
        }
        let live = groups.iter().flatten().count();
        let table = Arc::new(GroupTable { groups, live });
        drop(previous);
        let old = self.table.swap(Arc::clone(&table));
        if !batch.lpm.is_empty() {
            wait_for_readers(&old, self.grace);
        }

        // The LPM: inserts and repoints first, removals last.
        let mut done: Vec<(Prefix, Option<u32>)> = Vec::new();
        for &(prefix, target) in &batch.lpm {
            let Some(id) = target else { continue };
            let result = match prefix {
                Prefix::V4(a, len) => self.v4.insert(a, len, id),
                Prefix::V6(a, len) => self.v6.insert(a, len, id),
            };
            match result {
                Ok(prev) => done.push((prefix, prev)),
                Err(source) => {
                    self.undo_lpm(done);
                    self.table.store(old);
                    // Ids this batch allocated may be seen by readers of the
                    // failed table: reclaim them only once it is dropped.
                    let allocated: Vec<GroupId> = batch.applied.created.clone();
                    self.rollback(batch.undo, saved_len, saved_free, saved_live);
                    self.free_ids.retain(|id| !allocated.contains(id));
                    self.retired.push_back((table, allocated));
                    return Err(FibTableError::Lpm { prefix, source });
                }
            }
        }
        for &(prefix, target) in &batch.lpm {
            if target.is_none() {
                // Lengths were checked, so removal cannot fail.
                let _ = match prefix {
                    Prefix::V4(a, len) => self.v4.remove(a, len),
                    Prefix::V6(a, len) => self.v6.remove(a, len),
                };
            }
        }
        batch.applied.lpm_writes = batch.lpm.len();

        let reusable = std::mem::replace(&mut self.unpublish, batch.applied.freed.clone());
        self.retired.push_back((old, reusable));
        Ok(batch.applied)
    }

    /// Periodic work at `now`: runs every group's selector upkeep (resilient
    /// groups move idle buckets of overweight members to underweight ones,
    /// or every such bucket once the unbalanced timer has run out, as
    /// Linux's `nh_res_table_upkeep` does). A group whose buckets moved is
    /// published again under its id (one table swap for all of them; the LPM
    /// is untouched). Bucket moves are not member changes: no
    /// [`GroupChange`] is emitted, and the flow tracker attributes the
    /// breaks they cause to the group's latest change.
    ///
    /// Call it at least as often as [`Upkeep::next`] asks (the emulator calls
    /// it at every tick and at that time); calling it more often is harmless.
    pub fn upkeep(&mut self, now: Nanos) -> Upkeep {
        let mut out = Upkeep::default();
        for slot in self.groups.iter_mut() {
            let Some(entry) = slot.as_mut() else { continue };
            let AnySelector::Resilient(r) = &entry.group.selector else {
                continue;
            };
            if r.is_balanced() {
                continue;
            }
            let before = r.buckets_per_member().to_vec();
            let mut group = NexthopGroup::clone(&entry.group);
            let next = group.selector.upkeep(now);
            if let AnySelector::Resilient(r) = &group.selector {
                let moved: u32 = before
                    .iter()
                    .zip(r.buckets_per_member())
                    .map(|(b, a)| b.saturating_sub(*a))
                    .sum();
                if moved > 0 {
                    out.migrated.push((group.id, moved));
                }
            }
            out.next = match (out.next, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            entry.group = Arc::new(group);
        }
        if out.migrated.is_empty() {
            return out;
        }
        self.reclaim_ids();
        // The groups freed by the last batch leave the table now: the LPM no
        // longer names them (the batch finished writing it).
        let groups: Vec<Option<Arc<NexthopGroup>>> = self
            .groups
            .iter()
            .map(|e| e.as_ref().map(|e| Arc::clone(&e.group)))
            .collect();
        let live = groups.iter().flatten().count();
        let old = self.table.swap(Arc::new(GroupTable { groups, live }));
        let reusable = std::mem::take(&mut self.unpublish);
        self.retired.push_back((old, reusable));
        out
    }

    fn entry(&self, id: GroupId) -> Option<&Entry> {
        self.groups.get(id as usize)?.as_ref()
    }

    /// Moves ids of retired tables that no reader holds any more (and whose
    /// older tables are gone too) to the free list.
    fn reclaim_ids(&mut self) {
        while let Some((table, _)) = self.retired.front() {
            if Arc::strong_count(table) > 1 {
                break;
            }
            if let Some((_, ids)) = self.retired.pop_front() {
                self.free_ids.extend(ids);
            }
        }
    }

    fn undo_lpm(&mut self, done: Vec<(Prefix, Option<u32>)>) {
        for (prefix, prev) in done.into_iter().rev() {
            // Restoring an existing prefix's value or removing a new one
            // needs no second-level group, so neither can fail.
            let _ = match (prefix, prev) {
                (Prefix::V4(a, len), Some(v)) => self.v4.insert(a, len, v),
                (Prefix::V4(a, len), None) => self.v4.remove(a, len),
                (Prefix::V6(a, len), Some(v)) => self.v6.insert(a, len, v),
                (Prefix::V6(a, len), None) => self.v6.remove(a, len),
            };
        }
    }

    fn rollback(
        &mut self,
        undo: Vec<Undo>,
        saved_len: usize,
        saved_free: Vec<GroupId>,
        saved_live: usize,
    ) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Route(p, Some(id)) => {
                    self.routes.insert(p, id);
                }
                Undo::Route(p, None) => {
                    self.routes.remove(&p);
                }
                Undo::Group(id, entry) => {
                    if let Some(slot) = self.groups.get_mut(id as usize) {
                        *slot = entry;
                    }
                }
                Undo::AddRef(id) => {
                    if let Some(Some(e)) = self.groups.get_mut(id as usize) {
                        e.refs = e.refs.saturating_sub(1);
                    }
                }
                Undo::Intern(k, Some(id)) => {
                    self.intern.insert(k, id);
                }
                Undo::Intern(k, None) => {
                    self.intern.remove(&k);
                }
                Undo::DefaultPolicy(p) => self.default_policy = p,
            }
        }
        self.groups.truncate(saved_len);
        self.free_ids = saved_free;
        self.live = saved_live;
    }

    /// Checks every update and resolves each touched prefix to its final
    /// intent (last update wins), in first-touch order; counts the pending
    /// moves per (group, set).
    fn resolve(
        &mut self,
        updates: &[FibUpdate],
        batch: &mut Batch,
    ) -> Result<Resolved, FibTableError> {
        let mut order: Vec<Prefix> = Vec::new();
        // Each distinct set is kept once; intents refer to it by index.
        let mut keys: Vec<Key> = Vec::new();
        let mut intents: FastMap<Prefix, Option<usize>> = FastMap::default();
        let mut last: Option<(&[Nexthop], Option<GroupPolicy>, usize)> = None;
        for (index, update) in updates.iter().enumerate() {
            let (prefix, intent) = match update {
                FibUpdate::SetDefaultPolicy(p) => {
                    last = None;
                    batch.undo.push(Undo::DefaultPolicy(self.default_policy));
                    self.default_policy = *p;
                    continue;
                }
                FibUpdate::RemoveRoute { prefix } => (normalize(index, prefix)?, None),
                FibUpdate::SetRoute {
                    prefix,
                    nexthops,
                    policy,
                } => {
                    let prefix = normalize(index, prefix)?;
                    // Routes of a batch mostly share a few nexthop sets:
                    // sort and validate each set once.
                    if let Some((n, p, key)) = &last {
                        if *n == &nexthops[..] && p == policy {
                            if intents.insert(prefix, Some(*key)).is_none() {
                                order.push(prefix);
                            }
                            continue;
                        }
                    }
                    let given = policy;
                    let policy = policy.unwrap_or(self.default_policy);
                    let mut set = nexthops.clone();
                    set.sort_by_key(|n| n.id);
                    let members: Vec<Member> = set.iter().map(member).collect();
                    validate_members(policy.algorithm, &members).map_err(|source| {
                        FibTableError::Nexthops {
                            index,
                            prefix,
                            source,
                        }
                    })?;
                    if set.is_empty() {
                        (prefix, None)
                    } else {
                        keys.push((policy, set));
                        let k = keys.len() - 1;
                        last = Some((&nexthops[..], *given, k));
                        (prefix, Some(k))
                    }
                }
            };
            if intents.insert(prefix, intent).is_none() {
                order.push(prefix);
            }
        }
        let mut out = Vec::with_capacity(order.len());
        for prefix in order {
            let intent = intents.remove(&prefix).flatten();
            if let (Some(k), Some(&g)) = (intent, self.routes.get(&prefix)) {
                let (policy, set) = &keys[k];
                if let Some(e) = self.entry(g) {
                    if e.group.policy == *policy && e.group.nexthops != *set {
                        *batch.pending.entry((g, set.clone())).or_insert(0) += 1;
                    }
                }
            }
            out.push((prefix, intent));
        }
        Ok((out, keys))
    }

    fn stage(
        &mut self,
        intents: Vec<(Prefix, Option<usize>)>,
        keys: &[Key],
        now: Nanos,
        batch: &mut Batch,
    ) -> Result<(), FibTableError> {
        for (index, (prefix, intent)) in intents.into_iter().enumerate() {
            let current = self.routes.get(&prefix).copied();
            let Some(key) = intent.map(|k| &keys[k]) else {
                if let Some(g) = current {
                    self.set_route(prefix, None, batch);
                    self.release(g, batch);
                }
                continue;
            };
            let (policy, set) = (key.0, &key.1);
            let Some((g, old)) = current.and_then(|g| Some((g, self.entry(g)?.group.clone())))
            else {
                let id = self.intern_or_create(index, prefix, key, now, batch)?;
                self.set_route(prefix, Some(id), batch);
                continue;
            };
            if old.policy == policy && old.nexthops == *set {
                continue;
            }
            if old.policy != policy {
                let id = self.intern_or_create(index, prefix, key, now, batch)?;
                self.set_route(prefix, Some(id), batch);
                self.release(g, batch);
                continue;
            }
            // Same policy, new set: derive.
            let pending = batch.pending.get(&(g, set.clone())).copied().unwrap_or(0);
            if let Some(c) = batch.pending.get_mut(&(g, set.clone())) {
                *c = c.saturating_sub(1);
            }
            if let Some(d) = self.derivation(g, set) {
                // Joining: tell the tracker about the lineage (once a batch).
                if batch.announced.insert(d) {
                    push_change(&mut batch.applied, now, d, &old, set, Some(g));
                }
                self.add_ref(d, batch);
                self.set_route(prefix, Some(d), batch);
                self.release(g, batch);
                continue;
            }
            let derived = derive(&old, set, now).map_err(|source| FibTableError::Nexthops {
                index,
                prefix,
                source,
            })?;
            let refs = self.group_refs(g);
            if refs == pending {
                // Every route of `g` moves to `set`: replace it in place.
                let Some(mut entry) = self.take_entry(g) else {
                    continue;
                };
                let key_old = (old.policy, old.nexthops.clone());
                if self.intern.get(&key_old) == Some(&g) {
                    self.set_intern(key_old, None, batch);
                }
                self.intern_if_vacant((policy, set.clone()), g, batch);
                entry.group = Arc::new(NexthopGroup { id: g, ..derived });
                // Derivations from and to the old state no longer hold.
                entry.derived.clear();
                if let Some(parent) = entry.parent.take() {
                    if let Some(mut pe) = self.take_entry(parent) {
                        if pe.derived.get(&old.nexthops) == Some(&g) {
                            pe.derived.remove(&old.nexthops);
                            self.put_entry(parent, Some(pe), batch);
                        }
                    }
                }
                self.put_entry(g, Some(entry), batch);
                push_change(&mut batch.applied, now, g, &old, set, None);
            } else {
                let d = self.alloc_id()?;
                let entry = Entry {
                    group: Arc::new(NexthopGroup { id: d, ..derived }),
                    refs: 1,
                    derived: FastMap::default(),
                    parent: Some(g),
                };
                self.put_entry(d, Some(entry), batch);
                self.live += 1;
                batch.applied.created.push(d);
                if let Some(mut parent) = self.take_entry(g) {
                    parent.derived.insert(set.clone(), d);
                    self.put_entry(g, Some(parent), batch);
                }
                self.intern_if_vacant((policy, set.clone()), d, batch);
                batch.announced.insert(d);
                push_change(&mut batch.applied, now, d, &old, set, Some(g));
                self.set_route(prefix, Some(d), batch);
                self.release(g, batch);
            }
        }
        Ok(())
    }

    /// The live group derived from `g` for `set`, if any.
    fn derivation(&self, g: GroupId, set: &[Nexthop]) -> Option<GroupId> {
        let entry = self.entry(g)?;
        let d = *entry.derived.get(set)?;
        let de = self.entry(d)?;
        (de.group.nexthops == set && de.group.policy == entry.group.policy).then_some(d)
    }

    fn intern_or_create(
        &mut self,
        index: usize,
        prefix: Prefix,
        key: &Key,
        now: Nanos,
        batch: &mut Batch,
    ) -> Result<GroupId, FibTableError> {
        if let Some((last, id)) = &batch.last_intern {
            if last == key && self.entry(*id).is_some() {
                let id = *id;
                self.add_ref(id, batch);
                return Ok(id);
            }
        }
        if let Some(&id) = self.intern.get(key) {
            if self.entry(id).is_some() {
                self.add_ref(id, batch);
                batch.last_intern = Some((key.clone(), id));
                return Ok(id);
            }
        }
        let (policy, set) = (key.0, key.1.clone());
        let members: Vec<Member> = set.iter().map(member).collect();
        let selector = AnySelector::new(policy.algorithm, &policy.params, &members, now).map_err(
            |source| FibTableError::Nexthops {
                index,
                prefix,
                source,
            },
        )?;
        let id = self.alloc_id()?;
        let group = NexthopGroup {
            id,
            policy,
            nexthops: set.clone(),
            hasher: FlowHasher::new(policy.hash, policy.fields, policy.seed),
            selector,
            generation: 0,
        };
        let entry = Entry {
            group: Arc::new(group),
            refs: 1,
            derived: FastMap::default(),
            parent: None,
        };
        self.put_entry(id, Some(entry), batch);
        self.live += 1;
        batch.applied.created.push(id);
        self.set_intern((policy, set), Some(id), batch);
        Ok(id)
    }

    fn alloc_id(&mut self) -> Result<GroupId, FibTableError> {
        if let Some(id) = self.free_ids.pop() {
            if self.groups.len() <= id as usize {
                self.groups.resize_with(id as usize + 1, || None);
            }
            return Ok(id);
        }
        let next = self.groups.len();
        if next >= self.max_groups as usize {
            return Err(FibTableError::GroupsExhausted {
                max: self.max_groups,
            });
        }
        self.groups.push(None);
        Ok(next as GroupId)
    }

    fn add_ref(&mut self, id: GroupId, batch: &mut Batch) {
        // In place: copying the entry for the undo log cost a clone per
        // route joining a group.
        if let Some(Some(e)) = self.groups.get_mut(id as usize) {
            e.refs += 1;
            batch.undo.push(Undo::AddRef(id));
        }
    }

    /// Drops one reference; frees the group at zero.
    fn release(&mut self, id: GroupId, batch: &mut Batch) {
        let Some(mut e) = self.take_entry(id) else {
            return;
        };
        e.refs = e.refs.saturating_sub(1);
        if e.refs > 0 {
            self.put_entry(id, Some(e), batch);
            return;
        }
        let key = (e.group.policy, e.group.nexthops.clone());
        if self.intern.get(&key) == Some(&id) {
            self.set_intern(key, None, batch);
        }
        if let Some(p) = e.parent {
            if let Some(pe) = self.entry(p) {
                if pe.derived.get(&e.group.nexthops) == Some(&id) {
                    let mut pe = pe.clone();
                    pe.derived.remove(&e.group.nexthops);
                    self.put_entry(p, Some(pe), batch);
                }
            }
        }
        self.put_entry(id, None, batch);
        self.live = self.live.saturating_sub(1);
        batch.applied.freed.push(id);
    }

    /// A copy of a live entry (the caller puts it back).
    fn take_entry(&self, id: GroupId) -> Option<Entry> {
        self.entry(id).cloned()
    }

    fn put_entry(&mut self, id: GroupId, entry: Option<Entry>, batch: &mut Batch) {
        if let Some(slot) = self.groups.get_mut(id as usize) {
            let previous = std::mem::replace(slot, entry);
            batch.undo.push(Undo::Group(id, previous));
        }
    }

    fn set_route(&mut self, prefix: Prefix, id: Option<GroupId>, batch: &mut Batch) {
        let previous = match id {
            Some(id) => self.routes.insert(prefix, id),
            None => self.routes.remove(&prefix),
        };
        batch.undo.push(Undo::Route(prefix, previous));
        // Each prefix is staged once per batch, so this is its only entry.
        if previous != id {
            batch.lpm.push((prefix, id));
        }
    }

    fn set_intern(&mut self, key: Key, id: Option<GroupId>, batch: &mut Batch) {
        batch.last_intern = None;
        let previous = match id {
            Some(id) => self.intern.insert(key.clone(), id),
            None => self.intern.remove(&key),
        };
        batch.undo.push(Undo::Intern(key, previous));
    }

    fn intern_if_vacant(&mut self, key: Key, id: GroupId, batch: &mut Batch) {
        let vacant = match self.intern.get(&key) {
            Some(&other) => self.entry(other).is_none(),
            None => true,
        };
        if vacant {
            self.set_intern(key, Some(id), batch);
        }
    }
}

/// Waits until no reader holds `table` (the swap counted every guard
/// still on it), or until `grace` has passed.
fn wait_for_readers(table: &Arc<GroupTable>, grace: Duration) {
    let start = Instant::now();
    let mut spins = 0u32;
    while Arc::strong_count(table) > 1 && start.elapsed() < grace {
        if spins < 64 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

fn member(n: &Nexthop) -> Member {
    Member::weighted(n.id, n.weight)
}

fn normalize(index: usize, prefix: &Prefix) -> Result<Prefix, FibTableError> {
    prefix
        .normalized()
        .ok_or_else(|| FibTableError::PrefixLength {
            index,
            family: prefix.family(),
            len: prefix.prefix_len(),
            max: prefix.max_len(),
        })
}

/// `old` with its selector rebuilt from itself for `set`, generation + 1.
fn derive(old: &NexthopGroup, set: &[Nexthop], now: Nanos) -> Result<NexthopGroup, SelectError> {
    let members: Vec<Member> = set.iter().map(member).collect();
    let mut selector = old.selector.clone();
    selector.set_members(&members, now)?;
    Ok(NexthopGroup {
        id: old.id,
        policy: old.policy,
        nexthops: set.to_vec(),
        hasher: old.hasher.clone(),
        selector,
        generation: old.generation.wrapping_add(1),
    })
}

fn push_change(
    applied: &mut Applied,
    now: Nanos,
    group: GroupId,
    old: &NexthopGroup,
    set: &[Nexthop],
    derived_from: Option<GroupId>,
) {
    applied.changes.push(GroupChange {
        time: now,
        group,
        members_before: old.member_ids(),
        members_after: set.iter().map(|n| n.id).collect(),
        derived_from,
    });
}
