//! Paths and their interned attribute sets.
//!
//! A path is (peer, prefix, attributes). Many prefixes share one attribute
//! set (a MetalLB speaker announces every service with the same
//! attributes; a full table has far fewer attribute sets than prefixes), so
//! attribute sets are interned: one `Arc<RouteAttrs>` per distinct set,
//! and a path holds two pointers (as received, and after import policy;
//! the same one when policy changed nothing).

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use dataplane::fasthash::FastSet;

use crate::bgp::wire::attrs::{Origin, PathAttributes};

use super::policy::FilterReason;
use super::PeerId;

/// LOCAL_PREF of a path without one (RFC 4271 5.1.5; FRR's default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// A path's attributes with the next hop the route forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// The path attributes (after import policy where this is the
    /// effective set).
    pub attrs: PathAttributes,
    /// Where traffic goes: NEXT_HOP for IPv4 routes in the NLRI field, the
    /// MP_REACH_NLRI next hop otherwise (see [`RouteAttrs::forwarding_nexthop`]).
    /// `None` when no usable one was given.
    pub nexthop: Option<IpAddr>,
    /// The link-local next hop of a 32-octet IPv6 MP_REACH next hop, as
    /// received (for `show`).
    pub link_local: Option<Ipv6Addr>,
}

impl RouteAttrs {
    /// The forwarding next hop of an MP_REACH_NLRI next hop: the global
    /// address when usable, else the link-local one (RFC 2545 3: a global
    /// address of `::` or itself link-local means only the link-local one
    /// is meaningful), else none.
    pub fn forwarding_nexthop(global: IpAddr, link_local: Option<Ipv6Addr>) -> Option<IpAddr> {
        if super::policy::usable_nexthop(global) {
            Some(global)
        } else if let IpAddr::V6(g) = global {
            let g_is_ll = (g.segments()[0] & 0xffc0) == 0xfe80;
            link_local
                .or(g_is_ll.then_some(g))
                .map(IpAddr::V6)
                .filter(|a| !matches!(a, IpAddr::V6(v) if v.is_unspecified()))
        } else {
            None
        }
    }

    /// LOCAL_PREF, [`DEFAULT_LOCAL_PREF`] when absent.
    pub fn local_pref(&self) -> u32 {
        self.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }

    /// MULTI_EXIT_DISC, 0 when absent (RFC 4271 9.1.2.2 c; FRR without
    /// `bgp bestpath med missing-as-worst`).
    pub fn med(&self) -> u32 {
        self.attrs.med.unwrap_or(0)
    }

    /// ORIGIN; a path without one (never accepted by the decoder) counts as
    /// the worst, INCOMPLETE.
    pub fn origin(&self) -> Origin {
        self.attrs.origin.unwrap_or(Origin::Incomplete)
    }

    /// The AS_PATH length the decision process compares.
    pub fn as_path_len(&self) -> usize {
        self.attrs.as_path.as_ref().map_or(0, |p| p.route_len())
    }

    /// The neighbouring AS (first AS of the path); `None` for an empty
    /// path (a route from within our AS) or one starting with an AS_SET.
    pub fn neighbour_as(&self) -> Option<u32> {
        self.attrs.as_path.as_ref().and_then(|p| p.first_as())
    }
}

/// One path in the RIB: a peer's route for the prefix it is stored under.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    /// Who sent it.
    pub peer: PeerId,
    /// Arrival order (for the optional oldest-external step).
    pub seq: u64,
    /// The attributes as received (kept so policy can be re-evaluated).
    pub received: Arc<RouteAttrs>,
    /// The attributes after import policy.
    pub effective: Arc<RouteAttrs>,
    /// Why it is kept out of the decision process, if it is.
    pub filtered: Option<FilterReason>,
    /// The peer's session went down with graceful restart and this path
    /// was not re-announced yet.
    pub stale: bool,
}

impl Path {
    /// Same content as `other` (attributes compared by pointer: they are
    /// interned).
    pub fn same_as(&self, other: &Path) -> bool {
        self.peer == other.peer
            && Arc::ptr_eq(&self.received, &other.received)
            && Arc::ptr_eq(&self.effective, &other.effective)
            && self.filtered == other.filtered
            && self.stale == other.stale
    }
}

/// An interner: one `Arc<T>` per distinct value. Values no longer used
/// elsewhere are dropped by [`Interner::collect`], run when the set has
/// doubled since the last collection, so the cost is amortised.
#[derive(Debug)]
pub(crate) struct Interner<T: Hash + Eq> {
    set: FastSet<Arc<T>>,
    collect_at: usize,
}

impl<T: Hash + Eq> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: FastSet::default(),
            collect_at: 1024,
        }
    }
}

impl<T: Hash + Eq> Interner<T> {
    /// The shared copy of `value`.
    pub fn intern(&mut self, value: T) -> Arc<T> {
        if let Some(a) = self.set.get(&value) {
            return Arc::clone(a);
        }
        if self.set.len() >= self.collect_at {
            self.collect();
        }
        let a = Arc::new(value);
        self.set.insert(Arc::clone(&a));
        a
    }

    /// Drop values held only by the interner.
    pub fn collect(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.collect_at = (self.set.len() * 2).max(1024);
    }

    /// Distinct values held (some possibly unused until the next
    /// collection).
    pub fn len(&self) -> usize {
        self.set.len()
    }
}
