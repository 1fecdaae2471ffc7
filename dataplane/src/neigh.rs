//! The neighbour table: the link-layer address and output port of a nexthop.
//!
//! The forwarding pipeline resolves a nexthop's IP address to a
//! [`Neighbour`] through a [`NeighbourTable`]. When the address is not
//! resolved it calls [`NeighbourTable::request`] and drops (or holds) the
//! packet; resolution happens elsewhere. In live mode the table will be filled
//! from the kernel's neighbour table over netlink, with `request` triggering
//! the kernel's ARP/ND resolution (DESIGN: "Nexthop MACs come from the
//! kernel's neighbour table, with resolution triggered when missing").
//!
//! [`StaticNeighbours`] is the table the emulator and the tests use: entries
//! are inserted and removed by hand, and the addresses requested while
//! unresolved are recorded so a test can assert a request happened. Readers
//! never lock: the map is an immutable snapshot behind an [`ArcSwap`], and
//! every `insert`/`remove` publishes a new snapshot (copy on write, which
//! suits a table that changes rarely and is read per packet batch).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

/// Where to send a frame for a nexthop: its MAC address and the output port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neighbour {
    pub mac: [u8; 6],
    pub port: u32,
}

/// Resolves nexthop addresses to neighbours. Implementations must be cheap
/// and lock-free in [`resolve`](Self::resolve): it is on the per-packet path.
pub trait NeighbourTable: Send + Sync {
    /// The neighbour for `addr`, if resolved.
    fn resolve(&self, addr: IpAddr) -> Option<Neighbour>;

    /// Ask for `addr` to be resolved (called when [`resolve`](Self::resolve)
    /// found nothing). The default does nothing.
    fn request(&self, _addr: IpAddr) {}

    /// A number that changes whenever an answer of
    /// [`resolve`](Self::resolve) may have changed, so a reader may keep
    /// resolved neighbours across packet batches while it stays the same;
    /// `None` (the default) promises nothing, and readers then resolve at
    /// least once per batch.
    ///
    /// An implementation must make a change visible to `resolve` before it
    /// publishes the new number (a reader loads the number first, then
    /// resolves).
    fn generation(&self) -> Option<u64> {
        None
    }
}

/// A neighbour table filled by hand, for the emulator and tests.
///
/// `resolve` loads the current snapshot without locking. `request` records
/// the address in a set behind a mutex; it is called only on a miss, which is
/// off the fast path. Requests for addresses that get resolved later stay in
/// the record until [`take_requests`](Self::take_requests) clears it.
#[derive(Debug, Default)]
pub struct StaticNeighbours {
    /// ahash, not SipHash: resolved for every forwarded packet.
    map: ArcSwap<HashMap<IpAddr, Neighbour, ahash::RandomState>>,
    /// Bumped after every change of `map` (see
    /// [`NeighbourTable::generation`]).
    generation: AtomicU64,
    requested: Mutex<BTreeSet<IpAddr>>,
}

impl StaticNeighbours {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the neighbour for `addr`, returning the previous one.
    pub fn insert(&self, addr: IpAddr, neighbour: Neighbour) -> Option<Neighbour> {
        let mut previous = None;
        self.map.rcu(|current| {
            let mut next = HashMap::clone(current);
            previous = next.insert(addr, neighbour);
            next
        });
        self.generation.fetch_add(1, Ordering::Release);
        previous
    }

    /// Removes the neighbour for `addr`, returning it.
    pub fn remove(&self, addr: IpAddr) -> Option<Neighbour> {
        let mut previous = None;
        self.map.rcu(|current| {
            let mut next = HashMap::clone(current);
            previous = next.remove(&addr);
            next
        });
        self.generation.fetch_add(1, Ordering::Release);
        previous
    }

    /// Number of resolved neighbours.
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether no neighbour is resolved.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `addr` was requested (and not cleared since).
    pub fn was_requested(&self, addr: IpAddr) -> bool {
        self.lock_requests().contains(&addr)
    }

    /// The addresses requested so far, in order, without clearing them.
    pub fn requests(&self) -> Vec<IpAddr> {
        self.lock_requests().iter().copied().collect()
    }

    /// The addresses requested so far, in order; clears the record.
    pub fn take_requests(&self) -> Vec<IpAddr> {
        std::mem::take(&mut *self.lock_requests())
            .into_iter()
            .collect()
    }

    fn lock_requests(&self) -> std::sync::MutexGuard<'_, BTreeSet<IpAddr>> {
        // A panic while holding the lock cannot leave the set inconsistent.
        self.requested
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl NeighbourTable for StaticNeighbours {
    fn resolve(&self, addr: IpAddr) -> Option<Neighbour> {
        self.map.load().get(&addr).copied()
    }

    /// Records `addr` unless it is resolved by now.
    fn request(&self, addr: IpAddr) {
        if self.resolve(addr).is_none() {
            self.lock_requests().insert(addr);
        }
    }

    /// Counts the changes made by [`insert`](Self::insert) and
    /// [`remove`](Self::remove) (each bumps it after publishing).
    fn generation(&self) -> Option<u64> {
        Some(self.generation.load(Ordering::Acquire))
    }
}

impl<T: NeighbourTable + ?Sized> NeighbourTable for Arc<T> {
    fn resolve(&self, addr: IpAddr) -> Option<Neighbour> {
        (**self).resolve(addr)
    }

    fn request(&self, addr: IpAddr) {
        (**self).request(addr)
    }

    fn generation(&self) -> Option<u64> {
        (**self).generation()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn every_change_bumps_the_generation_and_reads_do_not() {
        let table = StaticNeighbours::new();
        let addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let n = Neighbour {
            mac: [2, 0, 0, 0, 0, 1],
            port: 1,
        };
        let g0 = table.generation().expect("a static table has generations");
        table.insert(addr, n);
        let g1 = table.generation().unwrap();
        assert_ne!(g0, g1);
        assert_eq!(table.resolve(addr), Some(n));
        table.request(addr);
        assert_eq!(table.generation(), Some(g1));
        table.remove(addr);
        assert_ne!(table.generation(), Some(g1));
        // Through an `Arc`, as the pipeline holds it.
        let shared: Arc<dyn NeighbourTable> = Arc::new(table);
        assert_eq!(shared.generation(), shared.generation());
        assert!(shared.resolve(addr).is_none());
    }
}
