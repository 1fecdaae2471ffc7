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
//! Installed sets are interned (sorted, no duplicates) in slots counted by
//! the prefixes holding them: every service IP announced by the same nodes
//! shares one, so a prefix costs a 4-octet set id here. An address's
//! reference count is the number of distinct sets holding it.

use std::collections::VecDeque;

use dataplane::fasthash::FastMap;
use std::net::IpAddr;
use std::num::NonZeroU32;

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

/// An installed nexthop set, as a prefix holds it (4 octets).
pub(crate) type SetId = NonZeroU32;

#[derive(Debug, Default)]
struct SetSlot {
    addrs: Box<[IpAddr]>,
    /// Prefixes holding the set; 0 for a free slot.
    refs: u32,
}

/// Installed nexthop sets and member ids.
#[derive(Debug, Default)]
pub(crate) struct FibState {
    /// Slot `id - 1` of each set.
    slots: Vec<SetSlot>,
    by_addrs: FastMap<Box<[IpAddr]>, SetId>,
    free_slots: Vec<SetId>,
    members: FastMap<IpAddr, MemberEntry>,
    retired: VecDeque<(IpAddr, u32)>,
    free_ids: Vec<MemberId>,
    next_id: MemberId,
}

impl FibState {
    /// Take a reference to the set `set` (sorted, deduplicated by the
    /// caller) for one prefix, taking member ids for new addresses. `None`
    /// only if four billion sets are in use.
    pub fn acquire(&mut self, set: &[IpAddr]) -> Option<SetId> {
        if let Some(id) = self.by_addrs.get(set).copied() {
            if let Some(slot) = self.slots.get_mut(id.get() as usize - 1) {
                slot.refs += 1;
            }
            return Some(id);
        }
        let id = match self.free_slots.pop() {
            Some(id) => id,
            None => {
                let id = SetId::new(u32::try_from(self.slots.len() + 1).ok()?)?;
                self.slots.push(SetSlot::default());
                id
            }
        };
        for addr in set {
            self.reference(*addr);
        }
        let addrs: Box<[IpAddr]> = set.into();
        if let Some(slot) = self.slots.get_mut(id.get() as usize - 1) {
            *slot = SetSlot {
                addrs: addrs.clone(),
                refs: 1,
            };
        }
        self.by_addrs.insert(addrs, id);
        Some(id)
    }

    /// Give back one prefix's reference to a set; the set and its
    /// addresses are released when no prefix holds it.
    pub fn release(&mut self, id: SetId) {
        let Some(slot) = self.slots.get_mut(id.get() as usize - 1) else {
            return;
        };
        slot.refs = slot.refs.saturating_sub(1);
        if slot.refs > 0 {
            return;
        }
        let addrs = std::mem::take(&mut slot.addrs);
        self.by_addrs.remove(&addrs);
        self.free_slots.push(id);
        for addr in addrs.iter() {
            self.unreference(*addr);
        }
    }

    /// The addresses of a set, sorted.
    pub fn set(&self, id: SetId) -> &[IpAddr] {
        self.slots
            .get(id.get() as usize - 1)
            .map_or(&[], |s| &s.addrs)
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
