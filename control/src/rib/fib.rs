//! What the RIB has programmed into the FIB: each prefix's installed
//! nexthop set, and the member id of every nexthop address.
//!
//! # Member ids
//!
//! A nexthop address keeps one [`MemberId`] router-wide for as long as any
//! installed route uses it, so a group whose set changes keeps the ids of
//! the nexthops that stay, and the FIB derives the new selector from the
//! old one (resilient buckets move only what they must). When no route
//! uses an address any more its id is *retired*, not freed: the last
//! [`RETIRED_KEEP`] retired addresses keep their ids, so a node that flaps
//! comes back under the id it had (rendezvous and Maglev then give it back
//! the same flows, and the flow tracker's member history stays coherent).
//! Older retired ids are freed and reused; an id is never reused while a
//! route references it.
//!
//! # Nexthop sets
//!
//! Installed sets are interned (`Arc<[IpAddr]>`, sorted, no duplicates):
//! every service IP announced by the same nodes shares one, so a prefix
//! costs one pointer here. An address's reference count is the number of
//! distinct interned sets holding it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use dataplane::fib::table::Nexthop;
use hashing::MemberId;

/// How many unused addresses keep their member id.
pub const RETIRED_KEEP: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct MemberEntry {
    id: MemberId,
    /// Interned sets holding the address.
    refs: u32,
    /// Bumped each time the address is retired, to match queue entries.
    retired_gen: u32,
}

/// Installed nexthop sets and member ids.
#[derive(Debug, Default)]
pub(crate) struct FibState {
    sets: HashSet<Arc<[IpAddr]>>,
    members: HashMap<IpAddr, MemberEntry>,
    retired: VecDeque<(IpAddr, u32)>,
    free_ids: Vec<MemberId>,
    next_id: MemberId,
}

impl FibState {
    /// The interned copy of `set` (sorted, deduplicated by the caller),
    /// taking member ids for new addresses.
    pub fn intern(&mut self, set: &[IpAddr]) -> Arc<[IpAddr]> {
        if let Some(s) = self.sets.get(set) {
            return Arc::clone(s);
        }
        let s: Arc<[IpAddr]> = Arc::from(set);
        for addr in set {
            self.reference(*addr);
        }
        self.sets.insert(Arc::clone(&s));
        s
    }

    /// Give back a set a prefix no longer uses; the set and its addresses
    /// are released when no prefix holds it.
    pub fn release(&mut self, set: Arc<[IpAddr]>) {
        // Held by the interner and by `set`: this was the last prefix.
        if Arc::strong_count(&set) == 2 {
            self.sets.remove(&*set);
            for addr in set.iter() {
                self.unreference(*addr);
            }
        }
    }

    fn reference(&mut self, addr: IpAddr) {
        if let Some(e) = self.members.get_mut(&addr) {
            e.refs += 1;
            return;
        }
        let id = self.free_ids.pop().unwrap_or_else(|| {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            id
        });
        self.members.insert(
            addr,
            MemberEntry {
                id,
                refs: 1,
                retired_gen: 0,
            },
        );
    }

    fn unreference(&mut self, addr: IpAddr) {
        let Some(e) = self.members.get_mut(&addr) else {
            return;
        };
        e.refs = e.refs.saturating_sub(1);
        if e.refs > 0 {
            return;
        }
        e.retired_gen = e.retired_gen.wrapping_add(1);
        self.retired.push_back((addr, e.retired_gen));
        while self.retired.len() > RETIRED_KEEP {
            let Some((old, gen)) = self.retired.pop_front() else {
                break;
            };
            if let Some(e) = self.members.get(&old) {
                if e.refs == 0 && e.retired_gen == gen {
                    self.free_ids.push(e.id);
                    self.members.remove(&old);
                }
            }
        }
    }

    /// The member id of `addr`, if it has one (in use or retired).
    pub fn member_id(&self, addr: &IpAddr) -> Option<MemberId> {
        self.members.get(addr).map(|e| e.id)
    }

    /// The FIB nexthops of an interned set, weight 1 each.
    pub fn nexthops(&self, set: &[IpAddr]) -> Vec<Nexthop> {
        set.iter()
            .filter_map(|a| self.member_id(a).map(|id| Nexthop::new(id, *a)))
            .collect()
    }

    /// Addresses in use by at least one installed route.
    pub fn active_members(&self) -> usize {
        self.members.values().filter(|e| e.refs > 0).count()
    }
}
