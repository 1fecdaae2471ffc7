//! IPv6 longest-prefix match in the style of DPDK's `rte_fib6` trie: a
//! 2^24-entry first level indexed by the top 24 address bits, then 8-bit
//! strides through groups of 256 entries taken from a fixed, preallocated pool.
//!
//! # Concurrency
//!
//! There is one [`Lpm6Writer`] (it is not `Clone` and every update takes
//! `&mut self`) and any number of [`Lpm6Reader`]s sharing the same tables of
//! `AtomicU32` entries. Each entry is one of: no route, a route value, or the
//! index of a child group. Lookups never lock; they load one entry per level
//! with `Acquire`. The writer keeps these rules, so that for every address a
//! concurrent lookup returns either the answer before the update or the answer
//! after it, never anything else:
//!
//! * A new group is completely filled (with the entry it replaces, so every
//!   address keeps its answer) before its index is published with a `Release`
//!   store into its parent entry; a reader that sees the index therefore sees
//!   the filled group.
//! * The entries for the updated prefix are then rewritten one at a time, each
//!   directly from its old final value to its new final value. An entry only
//!   governs addresses inside the updated prefix, so each store switches some
//!   addresses from the old answer to the new one.
//! * A group whose 256 entries become identical is collapsed: the parent entry
//!   is first overwritten (`Release`) with that common entry, which gives the
//!   same answers, and only then is the group put on a quarantine list. The
//!   writer never touches a quarantined group, so a reader that loaded the old
//!   index still walks a consistent group. Quarantined groups return to the
//!   free pool only in [`Lpm6Writer::release_quarantine`], which must be called
//!   only once every reader has finished the lookups (batches) it started
//!   before the collapse (e.g. after an RCU-style grace period). Calling it
//!   early cannot cause undefined behaviour or a panic, only wrong answers for
//!   the lookups still in flight.
//!
//! Before changing anything an update counts the groups it will need, so
//! [`FibError::OutOfGroups`] leaves the table and the prefix store unchanged.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rand::{Rng, SeedableRng};

use super::FibError;

/// Largest route value the table can hold (2^30 - 1): the two top bits of an
/// entry are flags.
pub const MAX_VALUE: u32 = (1 << 30) - 1;
/// What [`Lpm6Reader::lookup_batch`] writes for an address without a route.
pub const NO_ROUTE: u32 = u32::MAX;
/// Default size of the group pool: 2^18 groups of 256 entries (256 MiB),
/// enough for a full IPv6 Internet table: the 200k-prefix
/// [`synthetic_bgp6_table`] uses about 180k groups.
pub const DEFAULT_GROUPS: u32 = 1 << 18;
/// Largest accepted group pool (2^22 groups, 4 GiB); larger requests are
/// clamped to it.
pub const MAX_GROUPS: u32 = 1 << 22;

const FAMILY: &str = "IPv6";
const TOP_BITS: u32 = 24;
const TOP_ENTRIES: usize = 1 << TOP_BITS;
const GROUP_SIZE: usize = 256;
const EMPTY: u32 = 0;
const ROUTE_FLAG: u32 = 1 << 30;
const GROUP_FLAG: u32 = 1 << 31;
const INDEX_MASK: u32 = !GROUP_FLAG;

/// Table sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lpm6Config {
    /// Groups of 256 entries in the preallocated pool (1 KiB each to the
    /// shared tables plus 256 bytes of writer bookkeeping). Clamped to
    /// [`MAX_GROUPS`]. The first level always takes 2^24 entries (64 MiB shared
    /// plus 16 MiB writer bookkeeping). A /48 needs up to 3 groups on its path,
    /// shared with neighbouring prefixes; the synthetic 200k-prefix table
    /// ([`synthetic_bgp6_table`]) needs about 180k groups.
    pub groups: u32,
}

impl Default for Lpm6Config {
    fn default() -> Self {
        Lpm6Config {
            groups: DEFAULT_GROUPS,
        }
    }
}

/// The tables shared by the writer and all readers: the first level
/// (indices `0..2^24`) followed by the group pool.
#[derive(Debug)]
struct Shared {
    entries: Box<[AtomicU32]>,
}

/// Creates an empty table, returning its single writer and a reader handle
/// (clone it for more readers).
pub fn new(config: Lpm6Config) -> (Lpm6Writer, Lpm6Reader) {
    let groups = config.groups.min(MAX_GROUPS);
    let total = TOP_ENTRIES + groups as usize * GROUP_SIZE;
    // EMPTY is 0: zeroed storage, on huge pages (each lookup reads up to
    // five random entries of this table).
    let entries: Box<[AtomicU32]> = super::lpm4::atomic_zeroed(total).into_boxed_slice();
    let shared = Arc::new(Shared { entries });
    let writer = Lpm6Writer {
        shared: Arc::clone(&shared),
        depth: vec![0; total],
        groups,
        free: (0..groups).rev().collect(),
        quarantine: Vec::new(),
        prefixes: vec![HashMap::new(); 129],
        count: 0,
    };
    (writer, Lpm6Reader { shared })
}

/// A lock-free lookup handle; cheap to clone and to share between threads.
#[derive(Debug, Clone)]
pub struct Lpm6Reader {
    shared: Arc<Shared>,
}

impl Lpm6Reader {
    /// The value of the longest prefix containing `addr`, if any.
    #[inline]
    pub fn lookup(&self, addr: u128) -> Option<u32> {
        let entries = &self.shared.entries;
        let mut e = entries
            .get((addr >> (128 - TOP_BITS)) as usize)?
            .load(Ordering::Acquire);
        let mut shift = 128 - TOP_BITS;
        while e & GROUP_FLAG != 0 {
            // A well-formed table never has a group below the last level; the
            // checks only keep corrupted input from panicking.
            shift = shift.checked_sub(8)?;
            let idx = TOP_ENTRIES
                + (e & INDEX_MASK) as usize * GROUP_SIZE
                + ((addr >> shift) & 0xff) as usize;
            e = entries.get(idx)?.load(Ordering::Acquire);
        }
        if e & ROUTE_FLAG != 0 {
            Some(e & MAX_VALUE)
        } else {
            None
        }
    }

    /// [`lookup`](Self::lookup) for an [`Ipv6Addr`].
    #[inline]
    pub fn lookup_addr(&self, addr: Ipv6Addr) -> Option<u32> {
        self.lookup(u128::from(addr))
    }

    /// Looks up `addrs[i]` into `out[i]` ([`NO_ROUTE`] when there is none) for
    /// the first `min(addrs.len(), out.len())` addresses. Walks eight
    /// addresses level by level together so their cache misses overlap.
    pub fn lookup_batch(&self, addrs: &[u128], out: &mut [u32]) {
        const LANES: usize = 16;
        let entries = &self.shared.entries;
        let load = |idx: usize| {
            entries
                .get(idx)
                .map_or(EMPTY, |e| e.load(Ordering::Acquire))
        };
        for (a, o) in addrs.chunks(LANES).zip(out.chunks_mut(LANES)) {
            let lanes = a.len().min(o.len());
            let mut e = [EMPTY; LANES];
            for i in 0..lanes {
                e[i] = load((a[i] >> (128 - TOP_BITS)) as usize);
            }
            let mut shift = 128 - TOP_BITS;
            while shift >= 8 && e[..lanes].iter().any(|&x| x & GROUP_FLAG != 0) {
                shift -= 8;
                for i in 0..lanes {
                    if e[i] & GROUP_FLAG != 0 {
                        e[i] = load(
                            TOP_ENTRIES
                                + (e[i] & INDEX_MASK) as usize * GROUP_SIZE
                                + ((a[i] >> shift) & 0xff) as usize,
                        );
                    }
                }
            }
            for i in 0..lanes {
                o[i] = if e[i] & (GROUP_FLAG | ROUTE_FLAG) == ROUTE_FLAG {
                    e[i] & MAX_VALUE
                } else {
                    NO_ROUTE
                };
            }
        }
    }

    /// Asks the CPU to start loading the first-level entry of `addr` into
    /// the cache, ahead of a [`lookup`](Self::lookup) or
    /// [`lookup_batch`](Self::lookup_batch) of it. A hint: it changes no
    /// result, and does nothing on targets other than x86-64.
    #[inline(always)]
    pub fn prefetch(&self, addr: u128) {
        #[cfg(target_arch = "x86_64")]
        if let Some(entry) = self.shared.entries.get((addr >> (128 - TOP_BITS)) as usize) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch is only a hint to the cache: it never
            // faults, reads nothing into the program and writes nothing,
            // whatever the address (here a valid reference anyway); SSE is
            // part of the x86-64 baseline, so the intrinsic is available.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(entry.as_ptr().cast::<i8>().cast_const()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    /// Bytes of the shared lookup tables (first level plus the whole group
    /// pool). The writer additionally keeps one byte per entry and its prefix
    /// store.
    pub fn memory_bytes(&self) -> usize {
        self.shared.entries.len() * std::mem::size_of::<AtomicU32>()
    }
}

/// What to do with the entries of the updated prefix.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Write `entry` (a route) with depth `len` over entries whose depth is at
    /// most `len`.
    Insert { entry: u32, len: u8 },
    /// Replace entries of depth `len` with the covering route `entry` of
    /// depth `cover_len`.
    Remove { len: u8, entry: u32, cover_len: u8 },
}

impl Op {
    /// The (entry, depth) a leaf should hold after the update, or `None` if it
    /// is untouched.
    fn apply(self, e: u32, d: u8) -> Option<(u32, u8)> {
        let new = match self {
            Op::Insert { entry, len } if d <= len => (entry, len),
            Op::Remove {
                len,
                entry,
                cover_len,
            } if d == len => (entry, cover_len),
            _ => return None,
        };
        (new != (e, d)).then_some(new)
    }
}

/// The single writer: owns the prefix store and updates the shared tables.
#[derive(Debug)]
pub struct Lpm6Writer {
    shared: Arc<Shared>,
    /// Per entry, the length of the prefix that decided a leaf (0 for no
    /// route); meaningless for group pointers.
    depth: Vec<u8>,
    groups: u32,
    free: Vec<u32>,
    quarantine: Vec<u32>,
    /// `prefixes[len]`: masked prefix -> value.
    prefixes: Vec<HashMap<u128, u32>>,
    count: usize,
}

fn mask(addr: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        l if l >= 128 => addr,
        l => addr & (u128::MAX << (128 - u32::from(l))),
    }
}

fn check_len(len: u8) -> Result<(), FibError> {
    if len > 128 {
        Err(FibError::PrefixLength {
            family: FAMILY,
            len,
            max: 128,
        })
    } else {
        Ok(())
    }
}

/// Level holding the entries of a prefix of `len` bits (0 = first level).
fn level_of(len: u8) -> u32 {
    let len = u32::from(len);
    if len <= TOP_BITS {
        0
    } else {
        (len - TOP_BITS).div_ceil(8)
    }
}

/// Index of the entry for `addr` within its node at `level` (0-based in the
/// node).
fn index_in_level(addr: u128, level: u32) -> usize {
    if level == 0 {
        (addr >> (128 - TOP_BITS)) as usize
    } else {
        ((addr >> (128 - TOP_BITS - 8 * level)) & 0xff) as usize
    }
}

fn group_base(g: u32) -> usize {
    TOP_ENTRIES + g as usize * GROUP_SIZE
}

impl Lpm6Writer {
    /// Adds or replaces the route `prefix/len` (host bits are ignored, i.e.
    /// masked off), returning the previous value of that exact prefix.
    pub fn insert(
        &mut self,
        prefix: Ipv6Addr,
        len: u8,
        value: u32,
    ) -> Result<Option<u32>, FibError> {
        check_len(len)?;
        if value > MAX_VALUE {
            return Err(FibError::ValueTooLarge {
                value,
                max: MAX_VALUE,
            });
        }
        let p = mask(u128::from(prefix), len);
        self.update(
            p,
            len,
            Op::Insert {
                entry: ROUTE_FLAG | value,
                len,
            },
        )?;
        let prev = self.prefixes[usize::from(len)].insert(p, value);
        if prev.is_none() {
            self.count += 1;
        }
        Ok(prev)
    }

    /// Removes the route `prefix/len` (host bits ignored), returning its value;
    /// addresses it covered fall back to the next less-specific route.
    pub fn remove(&mut self, prefix: Ipv6Addr, len: u8) -> Result<Option<u32>, FibError> {
        check_len(len)?;
        let p = mask(u128::from(prefix), len);
        let Some(&value) = self.prefixes[usize::from(len)].get(&p) else {
            return Ok(None);
        };
        let (entry, cover_len) = (0..len)
            .rev()
            .find_map(|l| {
                self.prefixes[usize::from(l)]
                    .get(&mask(p, l))
                    .map(|&v| (ROUTE_FLAG | v, l))
            })
            .unwrap_or((EMPTY, 0));
        self.update(
            p,
            len,
            Op::Remove {
                len,
                entry,
                cover_len,
            },
        )?;
        self.prefixes[usize::from(len)].remove(&p);
        self.count -= 1;
        Ok(Some(value))
    }

    /// The value stored for exactly `prefix/len` (host bits ignored).
    pub fn get(&self, prefix: Ipv6Addr, len: u8) -> Option<u32> {
        let map = self.prefixes.get(usize::from(len))?;
        map.get(&mask(u128::from(prefix), len)).copied()
    }

    /// Number of stored prefixes.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no prefix is stored.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Groups reachable from the table or waiting in quarantine.
    pub fn groups_in_use(&self) -> u32 {
        self.groups - self.free.len() as u32
    }

    /// Groups collapsed since the last [`release_quarantine`](Self::release_quarantine).
    pub fn groups_in_quarantine(&self) -> u32 {
        self.quarantine.len() as u32
    }

    /// Returns quarantined groups to the free pool. Call it only once every
    /// reader has finished the lookups and batches it started before the
    /// collapses (see the module documentation).
    pub fn release_quarantine(&mut self) {
        self.free.append(&mut self.quarantine);
    }

    /// A reader for the same table.
    pub fn reader(&self) -> Lpm6Reader {
        Lpm6Reader {
            shared: Arc::clone(&self.shared),
        }
    }

    fn load(&self, idx: usize) -> u32 {
        self.shared.entries[idx].load(Ordering::Relaxed)
    }

    fn store(&mut self, idx: usize, e: u32, d: u8) {
        self.depth[idx] = d;
        self.shared.entries[idx].store(e, Ordering::Release);
    }

    /// Applies `op` to the entries of the masked prefix `p/len`.
    fn update(&mut self, p: u128, len: u8, op: Op) -> Result<(), FibError> {
        let target = level_of(len);
        // Walk the path down to the target level, recording the entry index
        // at each level.
        let mut path = Vec::with_capacity(target as usize + 1);
        let mut base = 0usize;
        let mut level = 0;
        while level < target {
            let idx = base + index_in_level(p, level);
            path.push(idx);
            let e = self.load(idx);
            if e & GROUP_FLAG != 0 {
                base = group_base(e & INDEX_MASK);
                level += 1;
                continue;
            }
            // A leaf above the target level: it covers the whole prefix.
            if op.apply(e, self.depth[idx]).is_none() {
                return Ok(());
            }
            let needed = (target - level) as usize;
            if self.free.len() < needed {
                return Err(FibError::OutOfGroups {
                    family: FAMILY,
                    groups: self.groups,
                });
            }
            // Expand: a new group filled with the leaf, published afterwards.
            let d = self.depth[idx];
            let g = self.free.pop().unwrap_or_default();
            let gb = group_base(g);
            for i in gb..gb + GROUP_SIZE {
                self.depth[i] = d;
                self.shared.entries[i].store(e, Ordering::Relaxed);
            }
            let dd = self.depth[idx];
            self.store(idx, GROUP_FLAG | g, dd);
            base = gb;
            level += 1;
        }
        // Paint the entries of the prefix at the target level.
        let span_bits = if target == 0 {
            TOP_BITS - u32::from(len)
        } else {
            TOP_BITS + 8 * target - u32::from(len)
        };
        let start = base + index_in_level(p, target);
        for idx in start..start + (1usize << span_bits) {
            self.paint(idx, op);
        }
        // Collapse uniform groups bottom-up along the path.
        for &idx in path.iter().rev() {
            if !self.try_collapse(idx) {
                break;
            }
        }
        Ok(())
    }

    /// Applies `op` to an entry lying wholly inside the updated prefix.
    fn paint(&mut self, idx: usize, op: Op) {
        let e = self.load(idx);
        if e & GROUP_FLAG != 0 {
            let gb = group_base(e & INDEX_MASK);
            for i in gb..gb + GROUP_SIZE {
                self.paint(i, op);
            }
            self.try_collapse(idx);
        } else if let Some((ne, nd)) = op.apply(e, self.depth[idx]) {
            self.store(idx, ne, nd);
        }
    }

    /// If the entry at `idx` points to a group whose entries are all the same
    /// leaf, replaces the pointer by that leaf and quarantines the group.
    fn try_collapse(&mut self, idx: usize) -> bool {
        let e = self.load(idx);
        if e & GROUP_FLAG == 0 {
            return false;
        }
        let g = e & INDEX_MASK;
        let gb = group_base(g);
        let first = self.load(gb);
        let d = self.depth[gb];
        if first & GROUP_FLAG != 0 {
            return false;
        }
        let uniform =
            (gb + 1..gb + GROUP_SIZE).all(|i| self.load(i) == first && self.depth[i] == d);
        if !uniform {
            return false;
        }
        self.store(idx, first, d);
        self.quarantine.push(g);
        true
    }
}

/// A deterministic synthetic IPv6 BGP table of `n` distinct prefixes under
/// 2000::/3 with a realistic length mix (about 45% /48, 20% /32, 10% /44,
/// 8% /40, 5% /36, 5% /29, 4% /64, 3% other lengths including /128), values
/// below 1024, and the locality of real tables (longer prefixes cluster under
/// a pool of allocated /29s, /32s and /40s).
pub fn synthetic_bgp6_table(n: usize, seed: u64) -> Vec<(Ipv6Addr, u8, u32)> {
    type Rng64 = rand_pcg::Pcg64;
    const OTHER: [u8; 12] = [20, 24, 28, 30, 34, 46, 52, 56, 60, 96, 127, 128];
    let mut rng = Rng64::seed_from_u64(seed);
    let global = |rng: &mut Rng64| (1u128 << 125) | (rng.gen::<u128>() >> 3);
    // `parent` with random bits below its first `plen` bits.
    let under = |rng: &mut Rng64, parent: u128, plen: u8| parent | (rng.gen::<u128>() >> plen);
    let pool29: Vec<u128> = (0..(n / 20).max(1))
        .map(|_| mask(global(&mut rng), 29))
        .collect();
    let some32 = |rng: &mut Rng64| {
        let p = pool29[rng.gen_range(0..pool29.len())];
        mask(under(rng, p, 29), 32)
    };
    let pool40: Vec<u128> = (0..(n / 10).max(1))
        .map(|_| {
            let p = some32(&mut rng);
            mask(under(&mut rng, p, 32), 40)
        })
        .collect();
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len: u8 = match rng.gen_range(0..100u32) {
            0..=44 => 48,
            45..=64 => 32,
            65..=74 => 44,
            75..=82 => 40,
            83..=87 => 36,
            88..=92 => 29,
            93..=96 => 64,
            _ => OTHER[rng.gen_range(0..OTHER.len())],
        };
        // Clustered placement first; after a few duplicates, anywhere.
        for attempt in 0..16 {
            let addr = if attempt == 15 {
                global(&mut rng)
            } else {
                match len {
                    0..=28 => global(&mut rng),
                    29..=32 => {
                        let p = pool29[rng.gen_range(0..pool29.len())];
                        under(&mut rng, p, 29)
                    }
                    48 | 64.. if rng.gen_bool(0.6) => {
                        let p = pool40[rng.gen_range(0..pool40.len())];
                        under(&mut rng, p, 40)
                    }
                    _ => {
                        let p = some32(&mut rng);
                        under(&mut rng, p, 32)
                    }
                }
            };
            let p = mask(addr, len);
            if seen.insert((p, len)) {
                out.push((Ipv6Addr::from(p), len, rng.gen_range(0..1024)));
                break;
            }
        }
    }
    out
}
