//! The BGP decision process (RFC 4271 9.1.2.2, with the tie-breakers FRR
//! documents in "BGP > Route Selection") and the multipath set.
//!
//! # Best path
//!
//! Among the eligible paths of a prefix (not filtered), in this order:
//!
//! 1. highest LOCAL_PREF (100 when absent);
//! 2. shortest AS_PATH ([`AsPath::route_len`](crate::bgp::wire::attrs::AsPath::route_len):
//!    a set counts one, confederation segments nothing);
//! 3. lowest ORIGIN (IGP < EGP < INCOMPLETE);
//! 4. lowest MED, compared only between paths from the same neighbouring AS
//!    (first AS of the path) unless `always_compare_med`; a missing MED is 0;
//! 5. eBGP over iBGP;
//! 6. (IGP metric to the next hop: skipped, next hops are directly
//!    connected);
//! 7. optionally (`prefer_oldest_external`, off by default as in FRR with
//!    `bgp bestpath compare-routerid`), the older of two eBGP paths;
//! 8. lowest router id: ORIGINATOR_ID if present, else the peer's BGP
//!    identifier;
//! 9. shortest CLUSTER_LIST;
//! 10. lowest peer address;
//! 11. lowest [`PeerId`], so the order is total.
//!
//! Step 4 makes pairwise comparison non-transitive (A beats B on MED, B
//! beats C on router id, C beats A on router id with a different AS), so
//! the result would depend on the order paths are looked at. As FRR's
//! `bgp deterministic-med` (its default), paths are first grouped by
//! neighbouring AS, the best of each group is found with MED, and the group
//! winners are compared without it. Both orders are total, so the best path
//! depends only on the set of paths, never on arrival order.
//!
//! **Stale paths** (graceful restart) compete as equals, as RFC 4724 asks:
//! the restarting peer's forwarding state is presumed intact. A stale path
//! is therefore best and in the multipath set exactly as before its session
//! went down, and the FIB does not change while the peer restarts.
//!
//! # Multipath
//!
//! A path joins the best path's multipath set when it ties with it through
//! step 5: same LOCAL_PREF, AS_PATH length and ORIGIN, same MED where MEDs
//! are compared, and the same kind (eBGP or iBGP); and, without
//! `as_path_relax`, an identical AS_PATH (FRR: "without the knob, the
//! entire AS_PATH must match"; so the same neighbouring AS too). With
//! `as_path_relax` (FRR's `bgp bestpath as-path multipath-relax`) any AS_PATH
//! of the same length will do, and MEDs of paths from different
//! neighbouring ASes are not compared. The set holds at most
//! `maximum_paths` paths for an eBGP best path, `maximum_paths_ibgp` for an
//! iBGP one (1 disables multipath): the best path, then the other tying
//! paths by ascending peer address. The set is reported by ascending peer
//! address.

use std::cmp::Ordering;
use std::net::IpAddr;

use super::path::RouteAttrs;
use super::{PeerId, RibConfig};

/// A path as the decision process sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    /// Index of the path in its prefix's path list.
    pub index: usize,
    pub attrs: &'a RouteAttrs,
    pub ebgp: bool,
    pub peer_bgp_id: u32,
    pub peer_address: IpAddr,
    pub peer: PeerId,
    pub seq: u64,
}

impl Candidate<'_> {
    fn router_id(&self) -> u32 {
        self.attrs
            .attrs
            .originator_id
            .map_or(self.peer_bgp_id, u32::from)
    }
}

/// `Less` when `a` is preferred. With `use_med`, step 4 compares MEDs
/// whatever the neighbouring ASes (callers only pass paths from one AS, or
/// set it for `always_compare_med`).
pub(crate) fn compare(a: &Candidate, b: &Candidate, cfg: &RibConfig, use_med: bool) -> Ordering {
    let (x, y) = (a.attrs, b.attrs);
    y.local_pref()
        .cmp(&x.local_pref())
        .then_with(|| x.as_path_len().cmp(&y.as_path_len()))
        .then_with(|| x.origin().cmp(&y.origin()))
        .then_with(|| {
            if use_med {
                x.med().cmp(&y.med())
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| b.ebgp.cmp(&a.ebgp))
        .then_with(|| {
            if cfg.prefer_oldest_external && a.ebgp && b.ebgp {
                a.seq.cmp(&b.seq)
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| a.router_id().cmp(&b.router_id()))
        .then_with(|| x.attrs.cluster_list.len().cmp(&y.attrs.cluster_list.len()))
        .then_with(|| a.peer_address.cmp(&b.peer_address))
        .then_with(|| a.peer.cmp(&b.peer))
}

/// The best path and the multipath set of one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    /// Path index of the best path.
    pub best: Option<usize>,
    /// Path indices of the multipath set (the best included), ascending,
    /// which is ascending peer address.
    pub multipath: Vec<usize>,
}

/// Run the decision process over `cands`, given in path-list order
/// (ascending peer address).
pub(crate) fn select(cands: &[Candidate], cfg: &RibConfig) -> Selection {
    let Some(best) = best_path(cands, cfg) else {
        return Selection::default();
    };
    let max = if best.ebgp {
        cfg.maximum_paths
    } else {
        cfg.maximum_paths_ibgp
    }
    .max(1);
    let mut multipath = vec![best.index];
    for c in cands {
        if multipath.len() >= max {
            break;
        }
        if c.index != best.index && multipath_equal(best, c, cfg) {
            multipath.push(c.index);
        }
    }
    multipath.sort_unstable();
    Selection {
        best: Some(best.index),
        multipath,
    }
}

fn best_path<'a, 'b>(cands: &'b [Candidate<'a>], cfg: &RibConfig) -> Option<&'b Candidate<'a>> {
    if cfg.always_compare_med {
        return cands.iter().min_by(|a, b| compare(a, b, cfg, true));
    }
    // Deterministic MED: the best of each neighbouring AS with MED, then
    // the winners without it.
    let mut winners: Vec<&Candidate> = Vec::new();
    for c in cands {
        let asn = c.attrs.neighbour_as();
        match winners.iter_mut().find(|w| w.attrs.neighbour_as() == asn) {
            Some(w) => {
                if compare(c, w, cfg, true) == Ordering::Less {
                    *w = c;
                }
            }
            None => winners.push(c),
        }
    }
    winners.into_iter().min_by(|a, b| compare(a, b, cfg, false))
}

/// Whether `c` ties with `best` for multipath (see the module docs).
pub(crate) fn multipath_equal(best: &Candidate, c: &Candidate, cfg: &RibConfig) -> bool {
    let (x, y) = (best.attrs, c.attrs);
    if x.local_pref() != y.local_pref()
        || x.as_path_len() != y.as_path_len()
        || x.origin() != y.origin()
        || best.ebgp != c.ebgp
    {
        return false;
    }
    if !cfg.as_path_relax && x.attrs.as_path != y.attrs.as_path {
        return false;
    }
    let compare_med = cfg.always_compare_med || x.neighbour_as() == y.neighbour_as();
    !compare_med || x.med() == y.med()
}
