//! Nexthop selectors: given a flow hash, pick one member of an ECMP group.
//!
//! Every algorithm implements [`Selector`]. A selector is changed in place by
//! [`Selector::set_members`], so an algorithm that keeps state across changes
//! (resilient buckets, jump's indirection, DxHash and AnchorHash bucket maps)
//! is rebuilt from its previous self: clone the published selector, change the
//! clone, publish it. [`AnySelector`] dispatches over all of them without
//! dynamic allocation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod anchor;
mod dxhash;
mod jump;
mod maglev;
mod modulo;
mod rendezvous;
mod resilient;
mod ring;
#[cfg(test)]
mod testutil;
mod threshold;

pub use anchor::AnchorHash;
pub use dxhash::DxHash;
pub use jump::JumpHash;
pub use maglev::{Maglev, MAX_TABLE_SIZE};
pub use modulo::ModuloN;
pub use rendezvous::Rendezvous;
pub use resilient::{Resilient, MAX_BUCKETS};
pub use ring::Ring;
pub use threshold::HashThreshold;

/// A member's identity, stable across changes of the group (a nexthop id).
pub type MemberId = u32;

/// Time in nanoseconds, from a monotonic clock (live) or a virtual one
/// (emulator). Selectors never read a clock themselves.
pub type Nanos = u64;

/// One member of a group and its weight (>= 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub weight: u32,
}

impl Member {
    pub const fn new(id: MemberId) -> Self {
        Member { id, weight: 1 }
    }

    pub const fn weighted(id: MemberId, weight: u32) -> Self {
        Member { id, weight }
    }
}

/// The nexthop-selection algorithms ecmpd implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `hash % N`: what most routers did first; rehashes almost everything.
    ModuloN,
    /// RFC 2992 hash-threshold in Linux's upper-bound form (plain multipath).
    HashThreshold,
    /// Linux resilient nexthop groups: fixed buckets, idle and unbalanced timers.
    Resilient,
    /// Google's Maglev lookup table (prime size), weighted.
    Maglev,
    /// Rendezvous / highest-random-weight hashing, weighted.
    Rendezvous,
    /// Jump consistent hash with a slot indirection for arbitrary removal.
    Jump,
    /// Consistent-hash ring with virtual nodes.
    Ring,
    /// DxHash: pseudo-random probing of a power-of-two bucket array.
    DxHash,
    /// AnchorHash: consistent hashing with a fixed anchor set.
    AnchorHash,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::ModuloN,
        Algorithm::HashThreshold,
        Algorithm::Resilient,
        Algorithm::Maglev,
        Algorithm::Rendezvous,
        Algorithm::Jump,
        Algorithm::Ring,
        Algorithm::DxHash,
        Algorithm::AnchorHash,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::ModuloN => "modulo",
            Algorithm::HashThreshold => "hash-threshold",
            Algorithm::Resilient => "resilient",
            Algorithm::Maglev => "maglev",
            Algorithm::Rendezvous => "rendezvous",
            Algorithm::Jump => "jump",
            Algorithm::Ring => "ring",
            Algorithm::DxHash => "dxhash",
            Algorithm::AnchorHash => "anchorhash",
        }
    }

    /// Whether members may have weights other than 1.
    pub const fn supports_weights(self) -> bool {
        !matches!(
            self,
            Algorithm::Jump | Algorithm::DxHash | Algorithm::AnchorHash
        )
    }

    /// One line a report can show next to the name.
    pub const fn summary(self) -> &'static str {
        match self {
            Algorithm::ModuloN => "hash mod N over the member list; weights by replication",
            Algorithm::HashThreshold => "RFC 2992 contiguous hash ranges (Linux multipath)",
            Algorithm::Resilient => {
                "Linux resilient group: fixed buckets, only idle or orphaned buckets move"
            }
            Algorithm::Maglev => "Maglev permutation table of prime size",
            Algorithm::Rendezvous => "highest random weight over all members (O(N) per lookup)",
            Algorithm::Jump => "jump consistent hash over slots, with an indirection for removal",
            Algorithm::Ring => "consistent-hash ring with virtual nodes",
            Algorithm::DxHash => "pseudo-random probing of a power-of-two bucket array",
            Algorithm::AnchorHash => "AnchorHash over a fixed anchor set",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for an algorithm name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm '{given}': choose from modulo, hash-threshold, resilient, maglev, rendezvous, jump, ring, dxhash, anchorhash")]
pub struct ParseAlgorithmError {
    pub given: String,
}

impl FromStr for Algorithm {
    type Err = ParseAlgorithmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let alias = match t.as_str() {
            "modulo-n" | "mod" | "modulo" => Some(Algorithm::ModuloN),
            "threshold" | "hash-threshold" | "rfc2992" => Some(Algorithm::HashThreshold),
            "resilient" | "resilient-buckets" => Some(Algorithm::Resilient),
            "maglev" => Some(Algorithm::Maglev),
            "rendezvous" | "hrw" => Some(Algorithm::Rendezvous),
            "jump" | "jump-hash" => Some(Algorithm::Jump),
            "ring" | "consistent-ring" | "ketama" => Some(Algorithm::Ring),
            "dxhash" | "dx" => Some(Algorithm::DxHash),
            "anchorhash" | "anchor" => Some(Algorithm::AnchorHash),
            _ => None,
        };
        alias.ok_or(ParseAlgorithmError {
            given: s.to_string(),
        })
    }
}

/// Linux resilient-group parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResilientParams {
    /// Fixed number of buckets (Linux: `buckets`, 1..=65535 here).
    pub buckets: u32,
    /// A bucket unused for this long may migrate (Linux default 120 s).
    pub idle_timer: Nanos,
    /// A group unbalanced for this long has its overweight buckets moved even
    /// when busy; 0 = never force (Linux default).
    pub unbalanced_timer: Nanos,
}

impl Default for ResilientParams {
    fn default() -> Self {
        ResilientParams {
            buckets: 128,
            idle_timer: 120_000_000_000,
            unbalanced_timer: 0,
        }
    }
}

/// Per-algorithm parameters; each algorithm reads only its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorParams {
    pub resilient: ResilientParams,
    /// Maglev lookup-table size; must be prime (default 65537).
    pub maglev_table_size: u32,
    /// Ring points per unit of weight (default 160, as ketama); at least 1,
    /// and `ring_vnodes x total weight` at most 2^22.
    pub ring_vnodes: u32,
    /// Initial capacity of DxHash's and AnchorHash's bucket arrays, rounded
    /// up to a power of two (at most 2^20); 0 picks the smallest power of two
    /// >= 2 x members. The array doubles when a member joins a full one.
    pub capacity: u32,
    /// Seed mixed into member placement (Maglev, rendezvous, ring, DxHash,
    /// AnchorHash), so two routers can place members differently.
    pub seed: u64,
}

impl Default for SelectorParams {
    fn default() -> Self {
        SelectorParams {
            resilient: ResilientParams::default(),
            maglev_table_size: 65537,
            ring_vnodes: 160,
            capacity: 0,
            seed: 0,
        }
    }
}

/// Why a selector could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("member {0} appears twice in the group")]
    DuplicateMember(MemberId),
    #[error("member {0} has weight 0; weights start at 1")]
    ZeroWeight(MemberId),
    #[error("{0} does not support weights; give every member weight 1")]
    WeightsUnsupported(Algorithm),
    #[error("{algorithm} supports at most {max} members, {given} given")]
    TooManyMembers {
        algorithm: Algorithm,
        max: usize,
        given: usize,
    },
    #[error("{0}")]
    InvalidParam(String),
}

/// Checks every algorithm shares: unique ids, weights >= 1, weights only where
/// the algorithm supports them.
pub fn validate_members(algorithm: Algorithm, members: &[Member]) -> Result<(), SelectError> {
    let mut seen = std::collections::HashSet::with_capacity(members.len());
    for m in members {
        if !seen.insert(m.id) {
            return Err(SelectError::DuplicateMember(m.id));
        }
        if m.weight == 0 {
            return Err(SelectError::ZeroWeight(m.id));
        }
        if m.weight != 1 && !algorithm.supports_weights() {
            return Err(SelectError::WeightsUnsupported(algorithm));
        }
    }
    Ok(())
}

/// A nexthop-selection algorithm over a group of members.
pub trait Selector: Send + Sync {
    fn algorithm(&self) -> Algorithm;

    /// The current members, in group order.
    fn members(&self) -> &[Member];

    /// The member for a flow hash (uniform over 32 bits); `None` only when the
    /// group is empty. Never panics, never allocates.
    fn select(&self, hash: u32) -> Option<MemberId>;

    /// Record that a packet with this hash was forwarded at `now`. Only
    /// resilient groups track activity; the others ignore it.
    fn note_activity(&self, _hash: u32, _now: Nanos) {}

    /// Change the member set or weights, keeping whatever state the algorithm
    /// keeps across changes.
    fn set_members(&mut self, members: &[Member], now: Nanos) -> Result<(), SelectError>;

    /// Periodic work at `now` (resilient: migrate idle or forced buckets).
    /// Returns when it next wants to run, if ever.
    fn upkeep(&mut self, _now: Nanos) -> Option<Nanos> {
        None
    }
}

/// Any selector, dispatched by `match` (no allocation, inlinable).
#[derive(Clone, Debug)]
pub enum AnySelector {
    ModuloN(ModuloN),
    HashThreshold(HashThreshold),
    Resilient(Resilient),
    Maglev(Maglev),
    Rendezvous(Rendezvous),
    Jump(JumpHash),
    Ring(Ring),
    DxHash(DxHash),
    AnchorHash(AnchorHash),
}

macro_rules! dispatch {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            AnySelector::ModuloN($s) => $body,
            AnySelector::HashThreshold($s) => $body,
            AnySelector::Resilient($s) => $body,
            AnySelector::Maglev($s) => $body,
            AnySelector::Rendezvous($s) => $body,
            AnySelector::Jump($s) => $body,
            AnySelector::Ring($s) => $body,
            AnySelector::DxHash($s) => $body,
            AnySelector::AnchorHash($s) => $body,
        }
    };
}

impl AnySelector {
    /// Build a selector for `members` at time `now`.
    pub fn new(
        algorithm: Algorithm,
        params: &SelectorParams,
        members: &[Member],
        now: Nanos,
    ) -> Result<AnySelector, SelectError> {
        Ok(match algorithm {
            Algorithm::ModuloN => AnySelector::ModuloN(ModuloN::new(params, members, now)?),
            Algorithm::HashThreshold => {
                AnySelector::HashThreshold(HashThreshold::new(params, members, now)?)
            }
            Algorithm::Resilient => AnySelector::Resilient(Resilient::new(params, members, now)?),
            Algorithm::Maglev => AnySelector::Maglev(Maglev::new(params, members, now)?),
            Algorithm::Rendezvous => {
                AnySelector::Rendezvous(Rendezvous::new(params, members, now)?)
            }
            Algorithm::Jump => AnySelector::Jump(JumpHash::new(params, members, now)?),
            Algorithm::Ring => AnySelector::Ring(Ring::new(params, members, now)?),
            Algorithm::DxHash => AnySelector::DxHash(DxHash::new(params, members, now)?),
            Algorithm::AnchorHash => {
                AnySelector::AnchorHash(AnchorHash::new(params, members, now)?)
            }
        })
    }
}

impl Selector for AnySelector {
    fn algorithm(&self) -> Algorithm {
        dispatch!(self, s => s.algorithm())
    }

    fn members(&self) -> &[Member] {
        dispatch!(self, s => s.members())
    }

    #[inline]
    fn select(&self, hash: u32) -> Option<MemberId> {
        dispatch!(self, s => s.select(hash))
    }

    #[inline]
    fn note_activity(&self, hash: u32, now: Nanos) {
        dispatch!(self, s => s.note_activity(hash, now))
    }

    fn set_members(&mut self, members: &[Member], now: Nanos) -> Result<(), SelectError> {
        dispatch!(self, s => s.set_members(members, now))
    }

    fn upkeep(&mut self, now: Nanos) -> Option<Nanos> {
        dispatch!(self, s => s.upkeep(now))
    }
}

/// A 32-bit hash spread to 64 bits (splitmix64's finaliser), for algorithms
/// that want a 64-bit key or a second independent hash.
#[inline]
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
