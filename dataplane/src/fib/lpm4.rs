//! IPv4 longest-prefix match in the DIR-24-8 layout of DPDK's `rte_lpm`: a
//! 2^24-entry first-level table indexed by the top 24 address bits plus a fixed
//! pool of 256-entry second-level groups for prefixes longer than /24, so a
//! lookup is one or two atomic loads and never takes a lock.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::FibError;

/// Largest route value the table stores; larger values are refused with
/// [`FibError::ValueTooLarge`].
pub const MAX_VALUE: u32 = (1 << 30) - 1;

/// What [`Lpm4Reader::lookup_batch`] writes for an address without a route
/// (it is larger than [`MAX_VALUE`], so it never collides with a value).
pub const NO_ROUTE: u32 = u32::MAX;

/// Largest number of tbl8 groups a table can have (1 GiB of groups).
pub const MAX_TBL8_GROUPS: u32 = 1 << 20;

/// Default number of tbl8 groups (16 MiB of groups).
pub const DEFAULT_TBL8_GROUPS: u32 = 1 << 14;

const FAMILY: &str = "IPv4";
const TBL24_ENTRIES: usize = 1 << 24;
const TBL8_ENTRIES: usize = 256;
/// The entry holds a route value in its low 30 bits.
const ROUTE_FLAG: u32 = 1 << 31;
/// The entry holds a tbl8 group index in its low 30 bits.
const TBL8_FLAG: u32 = 1 << 30;
const PAYLOAD_MASK: u32 = (1 << 30) - 1;
const EMPTY: u32 = 0;

/// Table sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lpm4Config {
    /// Number of 256-entry second-level groups (1 KiB each), allocated up
    /// front. Each /24 that contains at least one prefix longer than /24 uses
    /// one group. Values above [`MAX_TBL8_GROUPS`] are clamped to it.
    pub tbl8_groups: u32,
}

impl Default for Lpm4Config {
    fn default() -> Self {
        Self {
            tbl8_groups: DEFAULT_TBL8_GROUPS,
        }
    }
}

/// The lookup tables, shared between the writer and the readers.
struct Tables {
    tbl24: Box<[AtomicU32; TBL24_ENTRIES]>,
    tbl8: Box<[AtomicU32]>,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("tbl24_entries", &TBL24_ENTRIES)
            .field("tbl8_groups", &(self.tbl8.len() / TBL8_ENTRIES))
            .finish()
    }
}

/// `n` zeroed entries, on transparent huge pages where the kernel gives them
/// (see [`advise_huge_pages`]); also the IPv6 table's storage.
pub(crate) fn atomic_zeroed(n: usize) -> Vec<AtomicU32> {
    let mut v = Vec::with_capacity(n);
    // Before the first write, so the pages are faulted in as huge pages.
    advise_huge_pages(v.as_ptr() as usize, n * std::mem::size_of::<AtomicU32>());
    v.resize_with(n, || AtomicU32::new(EMPTY));
    v
}

/// Asks Linux to back `len` bytes at `addr` with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`), which matters when THP is in its common
/// `madvise` mode. Lookups read random entries of the 64 MiB tbl24: with
/// 4 KiB pages nearly every one also misses the TLB, with 2 MiB pages the
/// whole table needs 32 TLB entries (`ecmpd bench dataplane`, see
/// docs/BENCHMARKS.md). Best effort: a failure (no THP, other page sizes)
/// changes nothing.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn advise_huge_pages(addr: usize, len: usize) {
    use std::ffi::{c_int, c_void};
    extern "C" {
        fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    }
    const MADV_HUGEPAGE: c_int = 14;
    const PAGE: usize = 4096;
    // Only whole pages inside the allocation.
    let start = addr.next_multiple_of(PAGE);
    let end = addr.saturating_add(len) / PAGE * PAGE;
    if end > start {
        // SAFETY: MADV_HUGEPAGE only changes how the kernel backs the range
        // with physical pages; it never changes its contents, its mapping or
        // its validity, and the range lies inside an allocation this
        // function's caller owns. The result is ignored on purpose (advice).
        unsafe {
            madvise(start as *mut c_void, end - start, MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn advise_huge_pages(_addr: usize, _len: usize) {}

/// Decodes a final (non-tbl8) entry into a value or [`NO_ROUTE`].
#[inline(always)]
fn entry_to_value(entry: u32) -> u32 {
    if entry & ROUTE_FLAG != 0 {
        entry & PAYLOAD_MASK
    } else {
        NO_ROUTE
    }
}

impl Tables {
    #[inline(always)]
    fn tbl8_entry(&self, group_entry: u32, addr: u32) -> u32 {
        let index = ((group_entry & PAYLOAD_MASK) as usize) * TBL8_ENTRIES + (addr & 0xff) as usize;
        match self.tbl8.get(index) {
            Some(e) => e.load(Ordering::Relaxed),
            None => EMPTY,
        }
    }

    #[inline(always)]
    fn lookup_entry(&self, addr: u32) -> u32 {
        let entry = self.tbl24[(addr >> 8) as usize].load(Ordering::Acquire);
        if entry & TBL8_FLAG != 0 {
            self.tbl8_entry(entry, addr)
        } else {
            entry
        }
    }
}

/// Creates an empty table and returns its single writer and a first reader
/// (clone it for more).
pub fn new(config: Lpm4Config) -> (Lpm4Writer, Lpm4Reader) {
    let groups = config.tbl8_groups.min(MAX_TBL8_GROUPS);
    let tbl24: Box<[AtomicU32; TBL24_ENTRIES]> =
        match atomic_zeroed(TBL24_ENTRIES).into_boxed_slice().try_into() {
            Ok(b) => b,
            Err(_) => unreachable!("the vector has exactly TBL24_ENTRIES entries"),
        };
    let tables = Arc::new(Tables {
        tbl24,
        tbl8: atomic_zeroed(groups as usize * TBL8_ENTRIES).into_boxed_slice(),
    });
    let writer = Lpm4Writer {
        tables: Arc::clone(&tables),
        depth24: vec![0; TBL24_ENTRIES].into_boxed_slice(),
        depth8: vec![0; groups as usize * TBL8_ENTRIES].into_boxed_slice(),
        prefixes: (0..=32).map(|_| HashMap::new()).collect(),
        routes: 0,
        groups,
        free: (0..groups).rev().collect(),
        quarantine: Vec::new(),
    };
    (writer, Lpm4Reader { tables })
}

/// A lock-free lookup handle; cheap to clone, one per data-plane worker.
#[derive(Debug, Clone)]
pub struct Lpm4Reader {
    tables: Arc<Tables>,
}

impl Lpm4Reader {
    /// The value of the longest prefix that contains `addr` (host byte order,
    /// as from `u32::from(Ipv4Addr)`), if any.
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        let entry = self.tables.lookup_entry(addr);
        (entry & ROUTE_FLAG != 0).then_some(entry & PAYLOAD_MASK)
    }

    /// Looks up `addrs[i]` into `out[i]` ([`NO_ROUTE`] where there is no
    /// route) for `i` below the shorter of the two lengths. All tbl24 loads
    /// are issued first and the tbl8 loads in a second pass, so the CPU can
    /// overlap the cache misses of independent addresses.
    pub fn lookup_batch(&self, addrs: &[u32], out: &mut [u32]) {
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let tbl24 = &self.tables.tbl24;
        for (o, &a) in out.iter_mut().zip(addrs) {
            *o = tbl24[(a >> 8) as usize].load(Ordering::Acquire);
        }
        for (o, &a) in out.iter_mut().zip(addrs) {
            let mut entry = *o;
            if entry & TBL8_FLAG != 0 {
                entry = self.tables.tbl8_entry(entry, a);
            }
            *o = entry_to_value(entry);
        }
    }

    /// Asks the CPU to start loading the first-level entry of `addr` into
    /// the cache, so that a [`lookup`](Self::lookup) or
    /// [`lookup_batch`](Self::lookup_batch) of it a little later does not
    /// wait for memory. A hint: it changes no result, and does nothing on
    /// targets other than x86-64.
    #[inline(always)]
    pub fn prefetch(&self, addr: u32) {
        #[cfg(target_arch = "x86_64")]
        if let Some(entry) = self.tables.tbl24.get((addr >> 8) as usize) {
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

    /// Bytes of lookup storage (tbl24 plus the whole tbl8 pool), shared by
    /// the writer and all readers. The writer's own bookkeeping is
    /// [`Lpm4Writer::writer_memory_bytes`].
    pub fn memory_bytes(&self) -> usize {
        (TBL24_ENTRIES + self.tables.tbl8.len()) * std::mem::size_of::<AtomicU32>()
    }
}

/// One update for [`Lpm4Writer::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lpm4Update {
    Insert {
        prefix: Ipv4Addr,
        len: u8,
        value: u32,
    },
    Remove {
        prefix: Ipv4Addr,
        len: u8,
    },
}

/// The table's single writer: owns the record of all prefixes and the
/// allocation of tbl8 groups.
///
/// # Concurrency
///
/// One [`Lpm4Writer`] updates the table while any number of [`Lpm4Reader`]s
/// look addresses up. Every table entry is an [`AtomicU32`] holding either "no
/// route", a route value, or the index of a second-level (tbl8) group, and the
/// writer changes the answer for an address only by storing a whole entry, so a
/// reader sees, for every address, either the answer before an update or the
/// answer after it:
///
/// * Before a tbl8 group is published, the writer fills all 256 entries with
///   the tbl24 entry it replaces (then writes the new prefix into it) and only
///   then stores the group's index into tbl24 with `Release`. Readers load tbl24
///   with `Acquire`, so a reader that sees the index also sees the filled group.
/// * Updates inside a published group, and updates of plain tbl24 entries,
///   are single `Release` stores of the new answer; entries outside the range an
///   update changes are never written, so they never pass through "no route".
/// * When a group no longer holds any prefix longer than /24 its 256 entries are
///   uniform; the writer stores that value into tbl24 first and only then
///   retires the group, to a *quarantine* list rather than the free list,
///   because a reader that loaded the old tbl24 entry just before may still be
///   about to read the group. [`Lpm4Writer::release_quarantine`] returns the
///   quarantined groups to the free list; call it once every reader has
///   finished the lookups (batches) it started before the collapse. All
///   storage is allocated up front, so readers never see reallocation.
///
/// The tbl8 load itself is `Relaxed`: its contents were published by the
/// `Acquire`/`Release` pair on the tbl24 entry, and each later store to it is a
/// complete answer. On x86 all of these are plain moves.
pub struct Lpm4Writer {
    tables: Arc<Tables>,
    /// Writer-only: for each tbl24 entry that is not a tbl8 pointer, the
    /// length + 1 of the prefix it holds (0: none). Stale under a pointer.
    depth24: Box<[u8]>,
    /// Writer-only: length + 1 of the prefix each tbl8 entry holds (0: none).
    depth8: Box<[u8]>,
    /// One map per prefix length: masked prefix -> value.
    prefixes: Vec<HashMap<u32, u32>>,
    routes: usize,
    groups: u32,
    free: Vec<u32>,
    quarantine: Vec<u32>,
}

impl std::fmt::Debug for Lpm4Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm4Writer")
            .field("routes", &self.routes)
            .field("tbl8_groups", &self.groups)
            .field("tbl8_groups_in_use", &self.tbl8_groups_in_use())
            .field("tbl8_groups_quarantined", &self.quarantine.len())
            .finish_non_exhaustive()
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn check_len(len: u8) -> Result<(), FibError> {
    if len > 32 {
        Err(FibError::PrefixLength {
            family: FAMILY,
            len,
            max: 32,
        })
    } else {
        Ok(())
    }
}

impl Lpm4Writer {
    /// A new reader of this table.
    pub fn reader(&self) -> Lpm4Reader {
        Lpm4Reader {
            tables: Arc::clone(&self.tables),
        }
    }

    /// Adds or replaces `prefix/len` with `value` and returns the value that
    /// exact prefix had before. Host bits of `prefix` beyond `len` are ignored
    /// (10.1.2.3/8 is 10.0.0.0/8). Errors: `len > 32`, `value > MAX_VALUE`, or
    /// no free tbl8 group for a prefix longer than /24 in a /24 that has none
    /// yet; on error the table is unchanged.
    pub fn insert(
        &mut self,
        prefix: Ipv4Addr,
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
        let p = u32::from(prefix) & mask(len);
        let map = &self.prefixes[usize::from(len)];
        let previous = map.get(&p).copied();
        if previous == Some(value) {
            return Ok(previous);
        }
        let route = ROUTE_FLAG | value;
        let depth = len + 1;
        if len <= 24 {
            let start = (p >> 8) as usize;
            let end = start + (1usize << (24 - len));
            for i in start..end {
                let entry = self.tables.tbl24[i].load(Ordering::Relaxed);
                if entry & TBL8_FLAG != 0 {
                    let base = (entry & PAYLOAD_MASK) as usize * TBL8_ENTRIES;
                    self.fill8(base..base + TBL8_ENTRIES, |d| d <= depth, route, depth);
                } else if self.depth24[i] <= depth {
                    self.tables.tbl24[i].store(route, Ordering::Release);
                    self.depth24[i] = depth;
                }
            }
        } else {
            let i = (p >> 8) as usize;
            let entry = self.tables.tbl24[i].load(Ordering::Relaxed);
            let group = if entry & TBL8_FLAG != 0 {
                entry & PAYLOAD_MASK
            } else {
                let Some(group) = self.free.pop() else {
                    return Err(FibError::OutOfGroups {
                        family: FAMILY,
                        groups: self.groups,
                    });
                };
                // Fill the whole group before publishing it.
                let base = group as usize * TBL8_ENTRIES;
                let fill_depth = self.depth24[i];
                for j in base..base + TBL8_ENTRIES {
                    self.tables.tbl8[j].store(entry, Ordering::Relaxed);
                    self.depth8[j] = fill_depth;
                }
                group
            };
            let base = group as usize * TBL8_ENTRIES + (p & 0xff) as usize;
            let span = 1usize << (32 - len);
            self.fill8(base..base + span, |d| d <= depth, route, depth);
            if entry & TBL8_FLAG == 0 {
                self.tables.tbl24[i].store(TBL8_FLAG | group, Ordering::Release);
            }
        }
        self.prefixes[usize::from(len)].insert(p, value);
        if previous.is_none() {
            self.routes += 1;
        }
        Ok(previous)
    }

    /// Stores `entry`/`depth` into the tbl8 entries of `range` whose current
    /// depth satisfies `pred`.
    fn fill8(
        &mut self,
        range: std::ops::Range<usize>,
        pred: impl Fn(u8) -> bool,
        entry: u32,
        depth: u8,
    ) {
        for j in range {
            if pred(self.depth8[j]) {
                self.tables.tbl8[j].store(entry, Ordering::Release);
                self.depth8[j] = depth;
            }
        }
    }

    /// Removes `prefix/len` (host bits masked, as in [`insert`](Self::insert))
    /// and returns its value; the addresses it covered fall back to the next
    /// less-specific prefix that contains it. `Ok(None)` if it was absent.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> Result<Option<u32>, FibError> {
        check_len(len)?;
        let p = u32::from(prefix) & mask(len);
        let Some(previous) = self.prefixes[usize::from(len)].remove(&p) else {
            return Ok(None);
        };
        self.routes -= 1;
        let (route, new_depth) = (0..len)
            .rev()
            .find_map(|l| {
                self.prefixes[usize::from(l)]
                    .get(&(p & mask(l)))
                    .map(|&v| (ROUTE_FLAG | v, l + 1))
            })
            .unwrap_or((EMPTY, 0));
        let depth = len + 1;
        if len <= 24 {
            let start = (p >> 8) as usize;
            let end = start + (1usize << (24 - len));
            for i in start..end {
                let entry = self.tables.tbl24[i].load(Ordering::Relaxed);
                if entry & TBL8_FLAG != 0 {
                    let base = (entry & PAYLOAD_MASK) as usize * TBL8_ENTRIES;
                    self.fill8(base..base + TBL8_ENTRIES, |d| d == depth, route, new_depth);
                } else if self.depth24[i] == depth {
                    self.tables.tbl24[i].store(route, Ordering::Release);
                    self.depth24[i] = new_depth;
                }
            }
        } else {
            let i = (p >> 8) as usize;
            let entry = self.tables.tbl24[i].load(Ordering::Relaxed);
            if entry & TBL8_FLAG != 0 {
                let group = entry & PAYLOAD_MASK;
                let gbase = group as usize * TBL8_ENTRIES;
                let base = gbase + (p & 0xff) as usize;
                let span = 1usize << (32 - len);
                self.fill8(base..base + span, |d| d == depth, route, new_depth);
                let group_depths = &self.depth8[gbase..gbase + TBL8_ENTRIES];
                if group_depths.iter().all(|&d| d <= 25) {
                    // No prefix longer than /24 left: every entry holds the
                    // same covering route. Publish it in tbl24 first, then
                    // retire the group to quarantine.
                    let uniform = self.tables.tbl8[gbase].load(Ordering::Relaxed);
                    self.depth24[i] = group_depths[0];
                    self.tables.tbl24[i].store(uniform, Ordering::Release);
                    self.quarantine.push(group);
                }
            }
        }
        Ok(Some(previous))
    }

    /// Applies `updates` in order, stopping at the first error, which is
    /// returned with the index of the failed update (earlier updates stay).
    pub fn apply(&mut self, updates: &[Lpm4Update]) -> Result<(), (usize, FibError)> {
        for (k, u) in updates.iter().enumerate() {
            let r = match *u {
                Lpm4Update::Insert { prefix, len, value } => self.insert(prefix, len, value),
                Lpm4Update::Remove { prefix, len } => self.remove(prefix, len),
            };
            r.map_err(|e| (k, e))?;
        }
        Ok(())
    }

    /// The value of exactly `prefix/len` (host bits masked), if present.
    pub fn get(&self, prefix: Ipv4Addr, len: u8) -> Option<u32> {
        let map = self.prefixes.get(usize::from(len))?;
        map.get(&(u32::from(prefix) & mask(len))).copied()
    }

    /// Number of prefixes in the table.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// Whether the table holds no prefix.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// tbl8 groups currently holding prefixes (not free, not quarantined).
    pub fn tbl8_groups_in_use(&self) -> u32 {
        self.groups - self.free.len() as u32 - self.quarantine.len() as u32
    }

    /// tbl8 groups collapsed but not yet released to the free list.
    pub fn tbl8_groups_quarantined(&self) -> u32 {
        self.quarantine.len() as u32
    }

    /// Total number of tbl8 groups.
    pub fn tbl8_groups(&self) -> u32 {
        self.groups
    }

    /// Returns quarantined tbl8 groups to the free list. Call it only once
    /// every reader has finished the lookups and batches it started before
    /// the groups were collapsed (the workers signal this); reusing a group
    /// earlier could show a reader a foreign route.
    pub fn release_quarantine(&mut self) {
        self.free.append(&mut self.quarantine);
    }

    /// Bytes of the writer's own bookkeeping: shadow depth tables plus an
    /// estimate of the prefix maps (not counting the shared lookup storage).
    pub fn writer_memory_bytes(&self) -> usize {
        let maps: usize = self
            .prefixes
            .iter()
            .map(|m| m.capacity() * (2 * std::mem::size_of::<u32>() + 1))
            .sum();
        self.depth24.len() + self.depth8.len() + maps + self.groups as usize * 4
    }
}

/// A deterministic synthetic IPv4 routing table of `n` distinct prefixes with
/// a BGP-like length mix: about 60% /24, 10% /23, 8% /22, 6% /21, 5% /20, 4%
/// /19, 3% /16-/18, 4% /25-/32 and 0.1% /8-/15, in unicast space
/// (1.0.0.0-223.255.255.255), with values below 4096. Prefixes longer than /24
/// are clustered into about `n / 100` /24s (as real more-specifics are), so a
/// 900k table needs about 9k tbl8 groups and fits the default pool.
pub fn synthetic_bgp_table(n: usize, seed: u64) -> Vec<(Ipv4Addr, u8, u32)> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let hot: Vec<u32> = (0..(n / 100).max(1))
        .map(|_| rng.gen_range(0x0100_0000u32..0xE000_0000) & 0xFFFF_FF00)
        .collect();
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let roll = rng.gen_range(0..1000u32);
        let len: u8 = match roll {
            0..=599 => 24,
            600..=699 => 23,
            700..=779 => 22,
            780..=839 => 21,
            840..=889 => 20,
            890..=929 => 19,
            930..=958 => rng.gen_range(16..=18),
            959..=998 => rng.gen_range(25..=32),
            _ => rng.gen_range(8..=15),
        };
        let addr = if len > 24 {
            hot[rng.gen_range(0..hot.len())] | rng.gen_range(0..256u32)
        } else {
            rng.gen_range(0x0100_0000u32..0xE000_0000)
        };
        let p = addr & mask(len);
        if seen.insert((p, len)) {
            out.push((Ipv4Addr::from(p), len, rng.gen_range(0..4096)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_is_only_a_hint_for_any_address() {
        let (mut writer, reader) = new(Lpm4Config { tbl8_groups: 4 });
        writer.insert(Ipv4Addr::new(10, 0, 0, 0), 8, 7).unwrap();
        writer.insert(Ipv4Addr::new(10, 1, 2, 128), 25, 9).unwrap();
        for addr in [0, u32::MAX, 0x0a01_0281, 0x0a00_0001] {
            reader.prefetch(addr);
        }
        assert_eq!(reader.lookup(0x0a01_0281), Some(9));
        assert_eq!(reader.lookup(0x0a00_0001), Some(7));
        assert_eq!(reader.lookup(u32::MAX), None);
    }

    #[test]
    fn the_tables_are_zeroed_whatever_their_pages() {
        // `atomic_zeroed` advises huge pages before writing: the contents
        // must be the same.
        let v = atomic_zeroed(1 << 20);
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().all(|e| e.load(Ordering::Relaxed) == EMPTY));
    }
}
