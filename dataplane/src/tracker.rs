//! The flow tracker: per worker, a fixed-size set-associative table remembers
//! each flow's last member and classes every move as an unavoidable or a
//! collateral break of the group change that caused it. Eviction policy: an
//! entry idle longer than `idle_timeout` is expired and its slot reusable; when
//! a flow's set holds only live entries, the least recently seen one is evicted.
//!
//! Memory is `capacity x 32 bytes`, allocated once by [`FlowTracker::new`]
//! (plus per-group state and at most [`LINEAGE_EVENTS`] lineage links, kept
//! by [`FlowTracker::group_changed`]);
//! [`FlowTracker::observe`] touches one set of `ways` slots, never allocates
//! and never panics. Classification and attribution:
//!
//! * a flow whose old member is not in its group's latest known member set
//!   broke unavoidably, otherwise collaterally; a group with no recorded change
//!   is taken to still have every member (its breaks are collateral, with no
//!   event);
//! * a break is attributed to the most recent change event of the flow's group,
//!   so a flow idle across two changes is attributed to the later one, and so is
//!   a move that happens after the change was announced (a resilient group
//!   migrating a bucket once it goes idle);
//! * a report counts each flow at most once per event (its first break under
//!   that event); [`TrackerStats::breaks`] counts every broken packet;
//! * a flow seen in a group other than its stored one (a route change) is not a
//!   break: it is treated as a new flow of the new group and counted in
//!   [`TrackerStats::regrouped`] -- unless the stored group is an *ancestor* of
//!   the new one (see below).
//!
//! # Derived groups (lineage)
//!
//! When the FIB moves a route off a shared group `P` because its nexthop set
//! changed, the route gets a group `C` *derived* from `P` under a new id (its
//! selector rebuilt from `P`'s), announced as a [`GroupChange`] with
//! `group: C, derived_from: Some(P)`; the FIB announces a route joining an
//! existing derived group the same way. The tracker remembers the link
//! `C -> P` with that event. A flow stored in `P` (or in `P`'s parent, up to
//! [`MAX_LINEAGE_DEPTH`] links) and seen in `C` is the *same* flow: it
//! continues if its member is the same, else it broke, classified against
//! `C`'s latest members as above, and attributed to the most recent of the
//! link events on its way and `C`'s own latest change; its entry moves to
//! `C`. A join does not change the derived group's members, so it does not
//! replace the derived group's own latest event (flows already in `C` are not
//! affected by it).
//!
//! Lineage is bounded: at every announced change, a link is forgotten when
//! neither its parent nor any further ancestor has a live tracked flow, and
//! every link is forgotten [`LINEAGE_EVENTS`] events after the one that made
//! it; so at most [`LINEAGE_EVENTS`] links are held. A flow idle across a
//! forgotten link counts as regrouped. When the FIB frees a group
//! (`Applied::freed`), [`FlowTracker::group_freed`] forgets its state and its
//! links, so that an id the FIB reuses for an unrelated group joins no flows
//! across the two and breaks none: an entry stored under the id before the
//! free is a new flow when seen again.
//!
//! Reports from several workers are summed by [`merge_reports`], which
//! requires every worker to be given the same change events in the same order,
//! so that their [`EventId`]s agree.

use std::collections::{BTreeMap, HashMap, HashSet};

use hashing::{MemberId, Nanos};
use serde::Serialize;

/// A nexthop group's identity (the group behind one service prefix).
pub type GroupId = u32;

/// Default associativity: slots per set.
pub const DEFAULT_WAYS: usize = 8;

/// Largest associativity accepted (a set is scanned linearly per packet).
pub const MAX_WAYS: usize = 64;

/// Largest capacity accepted, in flows, after rounding up.
pub const MAX_CAPACITY: usize = 1 << 32;

/// A lineage link is forgotten this many change events after the event that
/// made it (so at most this many links are held).
pub const LINEAGE_EVENTS: u32 = 4096;

/// Lineage links followed from a flow's new group towards its stored group.
pub const MAX_LINEAGE_DEPTH: usize = 8;

/// The reserved fingerprint of an empty slot.
const EMPTY: u64 = 0;

/// Sizing and timing of a [`FlowTracker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TrackerConfig {
    /// Flows the table holds; rounded up so the number of sets
    /// (`capacity / ways`) is a power of two.
    pub capacity: usize,
    /// A flow not seen for longer than this is forgotten (its next packet
    /// starts a new flow, not a break).
    pub idle_timeout: Nanos,
    /// Slots per set (1..=[`MAX_WAYS`]).
    pub ways: usize,
}

impl TrackerConfig {
    /// A configuration with the default associativity.
    pub const fn new(capacity: usize, idle_timeout: Nanos) -> Self {
        TrackerConfig {
            capacity,
            idle_timeout,
            ways: DEFAULT_WAYS,
        }
    }

    /// Check the configuration and return the number of sets.
    fn sets(&self) -> Result<usize, TrackerError> {
        if self.ways == 0 || self.ways > MAX_WAYS {
            return Err(TrackerError::Ways(self.ways));
        }
        if self.capacity == 0 {
            return Err(TrackerError::ZeroCapacity);
        }
        if self.idle_timeout == 0 {
            return Err(TrackerError::ZeroIdleTimeout);
        }
        let sets = self
            .capacity
            .div_ceil(self.ways)
            .checked_next_power_of_two()
            .filter(|s| s.checked_mul(self.ways).is_some_and(|c| c <= MAX_CAPACITY))
            .ok_or(TrackerError::CapacityTooLarge(self.capacity))?;
        Ok(sets)
    }
}

/// Why a [`TrackerConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    #[error("the flow tracker needs a capacity of at least one flow")]
    ZeroCapacity,
    #[error("a flow tracker capacity of {0} flows is too large; the limit is 2^32")]
    CapacityTooLarge(usize),
    #[error("the flow tracker needs 1 to 64 ways per set, {0} given")]
    Ways(usize),
    #[error("the flow tracker's idle timeout must be longer than zero")]
    ZeroIdleTimeout,
}

/// Identity of a change event, in order of announcement (0, 1, 2, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EventId(pub u32);

/// A change of a group's member set, announced to the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupChange {
    pub time: Nanos,
    pub group: GroupId,
    /// Members of the group before the change; for a derived group, those of
    /// the group it was derived from.
    pub members_before: Vec<MemberId>,
    pub members_after: Vec<MemberId>,
    /// `Some(parent)` when `group` is a group derived from `parent` (created,
    /// or joined by another route of `parent`) that flows of `parent` move
    /// to; `None` for a group changed in place.
    pub derived_from: Option<GroupId>,
}

/// Why a flow changed member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum BreakKind {
    /// The flow's old member left the group.
    Unavoidable,
    /// The flow moved although its old member is still in the group.
    Collateral,
}

/// What one forwarded packet meant for its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// A flow not tracked (never seen, expired, evicted, or seen in another
    /// group before): now tracked.
    New,
    /// The flow went to the same member as before.
    Continued,
    /// The flow went to a different member: the connection broke.
    Broken {
        kind: BreakKind,
        /// The change the break is attributed to; `None` when its group has
        /// no recorded change.
        event: Option<EventId>,
    },
}

/// The breakage one change event caused (on one worker, or summed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BreakageReport {
    pub event: EventId,
    pub time: Nanos,
    pub group: GroupId,
    pub members_before: Vec<MemberId>,
    pub members_after: Vec<MemberId>,
    /// The group `group` was derived from, for a derivation event.
    pub derived_from: Option<GroupId>,
    /// Flows of the group seen within the idle timeout at `time`; for a
    /// derivation event, those of the parent group (the flows that may move
    /// with the route: an upper bound, as the parent's other routes count).
    pub live_flows: u64,
    /// Flows that broke because their member left.
    pub unavoidable: u64,
    /// Flows that broke although their member stayed.
    pub collateral: u64,
}

/// Counters of a tracker's lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrackerStats {
    /// Occupied slots (expired entries included until their slot is reused).
    pub tracked: u64,
    /// Observations that started a flow ([`Observation::New`]).
    pub new_flows: u64,
    /// Expired entries reclaimed (their flow came back, or the slot was reused).
    pub expired: u64,
    /// Live entries evicted because their set was full.
    pub evictions: u64,
    /// Broken observations (a flow breaking twice counts twice).
    pub breaks: u64,
    /// Flows seen in a group other than the stored one, restarted as new.
    pub regrouped: u64,
}

/// One slot: 32 bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// The flow's 64-bit key hash, never 0; [`EMPTY`] marks a free slot.
    fingerprint: u64,
    last_seen: Nanos,
    group: GroupId,
    member: MemberId,
    /// 1 + the event this flow last broke under; 0 = none.
    broke_in: u32,
}

/// A group's latest known state.
#[derive(Clone, Debug)]
struct GroupState {
    /// Members after the latest change, sorted.
    members: Vec<MemberId>,
    /// The latest change event of the group.
    event: u32,
}

/// A lineage link: the group a derived group was derived from.
#[derive(Clone, Copy, Debug)]
struct Link {
    parent: GroupId,
    /// The event that created or joined the derived group.
    event: u32,
}

/// Per-worker flow tracker; see the module documentation.
#[derive(Clone, Debug)]
pub struct FlowTracker {
    entries: Box<[Entry]>,
    ways: usize,
    set_mask: u64,
    idle_timeout: Nanos,
    groups: HashMap<GroupId, GroupState>,
    /// Derived group -> its parent; bounded, see the module documentation.
    lineage: HashMap<GroupId, Link>,
    /// Group ids freed within the idle timeout, and when: an entry stored
    /// under such an id and last seen before that belongs to the id's
    /// previous group.
    freed: HashMap<GroupId, Nanos>,
    reports: Vec<BreakageReport>,
    stats: TrackerStats,
}

impl FlowTracker {
    /// Allocate the whole table.
    pub fn new(config: TrackerConfig) -> Result<Self, TrackerError> {
        let sets = config.sets()?;
        Ok(FlowTracker {
            entries: vec![Entry::default(); sets * config.ways].into_boxed_slice(),
            ways: config.ways,
            set_mask: sets as u64 - 1,
            idle_timeout: config.idle_timeout,
            groups: HashMap::new(),
            lineage: HashMap::new(),
            freed: HashMap::new(),
            reports: Vec::new(),
            stats: TrackerStats::default(),
        })
    }

    /// Flows the table holds (the configured capacity rounded up).
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the flow table.
    pub fn table_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.entries)
    }

    /// Whether an entry last seen at `last_seen` has expired by `now`.
    #[inline]
    fn expired(&self, last_seen: Nanos, now: Nanos) -> bool {
        now.saturating_sub(last_seen) > self.idle_timeout
    }

    /// Record a change of a group's member set: count the group's live flows
    /// at `change.time` (a scan of the table; for a derived group, its
    /// parent's) and make `members_after` the set later breaks of the group
    /// are classified against. A derivation (`derived_from: Some(parent)`)
    /// also records the lineage link, and lineage links are pruned (see the
    /// module documentation).
    pub fn group_changed(&mut self, change: GroupChange) -> EventId {
        let id = self.reports.len() as u32;
        let counted = change.derived_from.unwrap_or(change.group);
        let track_live = !self.lineage.is_empty() || change.derived_from.is_some();
        let mut live_groups: HashSet<GroupId> = HashSet::new();
        let mut live_flows = 0u64;
        for e in self.entries.iter() {
            if e.fingerprint == EMPTY || self.expired(e.last_seen, change.time) {
                continue;
            }
            if e.group == counted {
                live_flows += 1;
            }
            if track_live {
                live_groups.insert(e.group);
            }
        }
        let mut members = change.members_after.clone();
        members.sort_unstable();
        members.dedup();
        match change.derived_from {
            Some(parent) => {
                self.lineage
                    .insert(change.group, Link { parent, event: id });
                // A join leaves the derived group's members and own latest
                // event as they were.
                let joined = self
                    .groups
                    .get(&change.group)
                    .is_some_and(|g| g.members == members);
                if !joined {
                    self.groups
                        .insert(change.group, GroupState { members, event: id });
                }
            }
            None => {
                self.groups
                    .insert(change.group, GroupState { members, event: id });
            }
        }
        self.prune_lineage(id, &live_groups);
        self.reports.push(BreakageReport {
            event: EventId(id),
            time: change.time,
            group: change.group,
            members_before: change.members_before,
            members_after: change.members_after,
            derived_from: change.derived_from,
            live_flows,
            unavoidable: 0,
            collateral: 0,
        });
        EventId(id)
    }

    /// Forget links older than [`LINEAGE_EVENTS`] events at event `now`, and
    /// links with no live tracked flow in their parent or further ancestors.
    fn prune_lineage(&mut self, now: u32, live_groups: &HashSet<GroupId>) {
        let keep: Vec<(GroupId, bool)> = self
            .lineage
            .iter()
            .map(|(&child, link)| {
                let young = now.saturating_sub(link.event) < LINEAGE_EVENTS;
                let mut live = false;
                let mut cur = Some(*link);
                for _ in 0..MAX_LINEAGE_DEPTH {
                    let Some(l) = cur else { break };
                    if live_groups.contains(&l.parent) {
                        live = true;
                        break;
                    }
                    cur = self.lineage.get(&l.parent).copied();
                }
                (child, young && live)
            })
            .collect();
        for (child, keep) in keep {
            if !keep {
                self.lineage.remove(&child);
            }
        }
    }

    /// Record that the FIB freed group `group` at `now` (from
    /// `Applied::freed`): no route uses it any more, and the FIB may reuse its
    /// id for an unrelated group. The group's member state and every lineage
    /// link to or from it are forgotten, and a flow stored under the id and
    /// last seen before `now` is, when seen again, a new flow of whatever
    /// group holds the id then (counted in [`TrackerStats::regrouped`]), not a
    /// break. Records of frees older than the idle timeout are dropped (every
    /// entry they could concern has expired), so memory stays bounded by the
    /// frees within one idle timeout.
    pub fn group_freed(&mut self, group: GroupId, now: Nanos) {
        self.groups.remove(&group);
        self.lineage
            .retain(|&child, link| child != group && link.parent != group);
        let idle = self.idle_timeout;
        self.freed.retain(|_, &mut t| now.saturating_sub(t) <= idle);
        self.freed.insert(group, now);
    }

    /// Records of freed groups currently held (those freed within the idle
    /// timeout of the latest free).
    pub fn freed_records(&self) -> usize {
        self.freed.len()
    }

    /// Lineage links currently held (bounded by [`LINEAGE_EVENTS`]).
    pub fn lineage_links(&self) -> usize {
        self.lineage.len()
    }

    /// Starts loading the set of flow `fingerprint` into the cache, so that
    /// an [`observe`](Self::observe) of it a little later does not wait for
    /// memory (the pipeline prefetches a whole batch's sets first). A hint:
    /// it changes nothing, and does nothing on targets other than x86-64.
    #[inline]
    pub fn prefetch(&self, fingerprint: u64) {
        let fingerprint = if fingerprint == EMPTY { 1 } else { fingerprint };
        let start = (fingerprint & self.set_mask) as usize * self.ways;
        if let Some(set) = self.entries.get(start..start + self.ways) {
            // One hint per 64-byte cache line of the set.
            let per_line = (64 / std::mem::size_of::<Entry>()).max(1);
            for line in set.chunks(per_line) {
                prefetch_line(line);
            }
        }
    }

    /// Account one forwarded packet of flow `fingerprint` (its 64-bit key
    /// hash) sent to `member` of `group` at `now`. O(ways), no allocation.
    pub fn observe(
        &mut self,
        fingerprint: u64,
        group: GroupId,
        member: MemberId,
        now: Nanos,
    ) -> Observation {
        let fingerprint = if fingerprint == EMPTY { 1 } else { fingerprint };
        let start = (fingerprint & self.set_mask) as usize * self.ways;
        let idle_timeout = self.idle_timeout;
        let Some(set) = self.entries.get_mut(start..start + self.ways) else {
            return Observation::New; // unreachable: the mask keeps `start` in range
        };

        // Find the flow, or the slot to put it in: the first empty slot (slots
        // fill in order and are never emptied again), else the least recently
        // seen entry.
        let mut victim = 0;
        let mut found = None;
        for (i, e) in set.iter().enumerate() {
            if e.fingerprint == fingerprint {
                found = Some(i);
                break;
            }
            if e.fingerprint == EMPTY {
                victim = i;
                break;
            }
            if e.last_seen < set[victim].last_seen {
                victim = i;
            }
        }

        if let Some(i) = found {
            let e = &mut set[i];
            // A flow seen in a group derived from its stored one is the same
            // flow; `link` is the latest link event on the way. An entry of a
            // freed id's previous group is not (checked only off the common
            // path: same group, same member).
            let same = e.group == group && e.member == member;
            let stale = !same && !self.freed.is_empty() && {
                let (g, t) = (e.group, e.last_seen);
                self.freed.get(&g).is_some_and(|&f| f >= t)
            };
            let link = if stale {
                None
            } else if e.group == group {
                Some(None)
            } else {
                descends(&self.lineage, group, e.group).map(Some)
            };
            if now.saturating_sub(e.last_seen) > idle_timeout {
                self.stats.expired += 1;
            } else if let Some(link) = link {
                e.group = group;
                e.last_seen = e.last_seen.max(now);
                if e.member == member {
                    return Observation::Continued;
                }
                let old = e.member;
                e.member = member;
                let (kind, event) = match self.groups.get(&group) {
                    Some(g) if g.members.binary_search(&old).is_ok() => {
                        (BreakKind::Collateral, Some(g.event))
                    }
                    Some(g) => (BreakKind::Unavoidable, Some(g.event)),
                    None => (BreakKind::Collateral, None),
                };
                let event = match (event, link) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                self.stats.breaks += 1;
                if let Some(ev) = event {
                    if e.broke_in != ev + 1 {
                        e.broke_in = ev + 1;
                        if let Some(r) = self.reports.get_mut(ev as usize) {
                            match kind {
                                BreakKind::Unavoidable => r.unavoidable += 1,
                                BreakKind::Collateral => r.collateral += 1,
                            }
                        }
                    }
                }
                return Observation::Broken {
                    kind,
                    event: event.map(EventId),
                };
            } else {
                self.stats.regrouped += 1;
            }
            *e = Entry {
                fingerprint,
                last_seen: now,
                group,
                member,
                broke_in: 0,
            };
            self.stats.new_flows += 1;
            return Observation::New;
        }

        let e = &mut set[victim];
        if e.fingerprint == EMPTY {
            self.stats.tracked += 1;
        } else if now.saturating_sub(e.last_seen) > idle_timeout {
            self.stats.expired += 1;
        } else {
            self.stats.evictions += 1;
        }
        *e = Entry {
            fingerprint,
            last_seen: now,
            group,
            member,
            broke_in: 0,
        };
        self.stats.new_flows += 1;
        Observation::New
    }

    /// One report per change event, in order of announcement.
    pub fn reports(&self) -> Vec<BreakageReport> {
        self.reports.clone()
    }

    /// Lifetime counters.
    pub fn stats(&self) -> TrackerStats {
        self.stats
    }
}

/// Asks the CPU to load the cache line holding the start of `data`.
#[inline(always)]
fn prefetch_line<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint to the cache: it never faults,
        // reads nothing into the program and writes nothing (the pointer
        // comes from a valid slice anyway); SSE is part of the x86-64
        // baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// The latest link event on the lineage path from `child` up to `ancestor`
/// (at most [`MAX_LINEAGE_DEPTH`] links), if `ancestor` is an ancestor of
/// `child`. No allocation.
#[inline]
fn descends(lineage: &HashMap<GroupId, Link>, child: GroupId, ancestor: GroupId) -> Option<u32> {
    if lineage.is_empty() {
        return None;
    }
    let mut cur = child;
    let mut latest = 0;
    for _ in 0..MAX_LINEAGE_DEPTH {
        let link = lineage.get(&cur)?;
        latest = latest.max(link.event);
        if link.parent == ancestor {
            return Some(latest);
        }
        cur = link.parent;
    }
    None
}

/// Sum several workers' reports event by event. Every worker must have been
/// given the same change events in the same order (as the emulator does), so
/// that an [`EventId`] names the same change everywhere; the time, group and
/// member sets are taken from the first worker that reports the event.
pub fn merge_reports(per_worker: &[Vec<BreakageReport>]) -> Vec<BreakageReport> {
    let mut merged: BTreeMap<EventId, BreakageReport> = BTreeMap::new();
    for report in per_worker.iter().flatten() {
        merged
            .entry(report.event)
            .and_modify(|m| {
                m.live_flows += report.live_flows;
                m.unavoidable += report.unavoidable;
                m.collateral += report.collateral;
            })
            .or_insert_with(|| report.clone());
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod prefetch_tests {
    use super::*;

    #[test]
    fn prefetch_changes_nothing() {
        let mut t = FlowTracker::new(TrackerConfig::new(64, 1_000)).unwrap();
        for fp in [0, 1, u64::MAX, 0x1234_5678_9abc_def0] {
            t.prefetch(fp);
        }
        assert_eq!(t.stats(), TrackerStats::default());
        assert_eq!(t.observe(5, 1, 1, 0), Observation::New);
        t.prefetch(5);
        assert_eq!(t.observe(5, 1, 1, 1), Observation::Continued);
    }
}
