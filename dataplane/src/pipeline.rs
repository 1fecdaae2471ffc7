//! The per-worker forwarding pipeline: parse, LPM, nexthop group, selector,
//! neighbour, rewrite, one FIB snapshot per batch, with the control path (ARP,
//! local, multicast, ICMP errors under a token bucket) and mergeable counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashing::{
    AnySelector, FieldSelection, FlowHasher, FlowKey, HashFields, HashFunction, MemberId, Nanos,
    Selector,
};

use crate::fib::table::{FibReader, FibSnapshot, NexthopGroup};
use crate::io::PacketBatch;
use crate::neigh::{Neighbour, NeighbourTable};
use crate::packet::{
    ipv4_decrement_ttl, parse_flow, DropCounters, DropReason, EthernetFrame, IpVersion, Ipv4Packet,
    Ipv6Packet, ParseOptions, ParsedPacket, PROTO_TCP, PROTO_UDP,
};
use crate::tracker::{EventId, FlowTracker, GroupChange, GroupId, TrackerConfig, TrackerError};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// One router port: its MAC address and the router's own addresses on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub mac: [u8; 6],
    pub addrs: Vec<IpAddr>,
}

/// The ICMP error rate limit of one worker: a token bucket refilled at
/// `rate_pps` tokens per second of `now`, holding at most `burst` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpConfig {
    pub rate_pps: u32,
    pub burst: u32,
}

impl Default for IcmpConfig {
    /// Linux's defaults: `icmp_msgs_per_sec` 1000, `icmp_msgs_burst` 50.
    fn default() -> Self {
        IcmpConfig {
            rate_pps: 1000,
            burst: 50,
        }
    }
}

/// Configuration of one [`Pipeline`]; port numbers index `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    pub ports: Vec<PortConfig>,
    /// Parse options; `ingress_port` is replaced by each packet's port.
    pub parse: ParseOptions,
    /// Feed every forwarded packet to a [`FlowTracker`] built from `tracker`.
    pub track_flows: bool,
    pub tracker: TrackerConfig,
    pub icmp: IcmpConfig,
}

impl PipelineConfig {
    /// `ports` with default parse options, no flow tracking (a 64 Ki-flow,
    /// 120 s idle tracker if turned on) and the default ICMP rate limit.
    pub fn new(ports: Vec<PortConfig>) -> Self {
        PipelineConfig {
            ports,
            parse: ParseOptions::default(),
            track_flows: false,
            tracker: TrackerConfig::new(1 << 16, 120 * NANOS_PER_SEC),
            icmp: IcmpConfig::default(),
        }
    }
}

/// Why a frame went to the control path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ControlReason {
    /// An ARP packet.
    Arp,
    /// Addressed to one of the router's own addresses, or IPv6 link-local.
    Local,
    /// A link-layer broadcast/multicast frame or an IP multicast/broadcast
    /// destination (neighbour discovery, routing protocols, ...).
    Multicast,
    /// No route to the destination. The pipeline has already queued the ICMP
    /// unreachable (rate permitting); the copy is for the record.
    NoRoute,
    /// TTL or hop limit exhausted. The pipeline has already queued the ICMP
    /// time exceeded (rate permitting); the copy is for the record.
    TtlExceeded,
}

impl ControlReason {
    /// Every reason, in counter-index order.
    pub const ALL: [ControlReason; 5] = [
        ControlReason::Arp,
        ControlReason::Local,
        ControlReason::Multicast,
        ControlReason::NoRoute,
        ControlReason::TtlExceeded,
    ];
    /// The number of reasons.
    pub const COUNT: usize = ControlReason::ALL.len();

    /// Stable kebab-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ControlReason::Arp => "arp",
            ControlReason::Local => "local",
            ControlReason::Multicast => "multicast",
            ControlReason::NoRoute => "no-route",
            ControlReason::TtlExceeded => "ttl-exceeded",
        }
    }

    /// Index into [`Counters::control`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A frame handed to the control path (a copy; the control path may allocate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    /// Ingress port.
    pub port: u32,
    pub frame: Vec<u8>,
    pub reason: ControlReason,
}

/// Drop reasons of the pipeline itself (parse errors are [`DropReason`]s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PipelineDrop {
    /// The ingress port is not configured.
    UnknownPort,
    /// A unicast frame for another MAC address.
    NotForUs,
    /// The nexthop's MAC is unknown; resolution was requested.
    NeighbourMiss,
    /// The neighbour's port is not configured.
    NoEgressPort,
    /// The transmit batch was full.
    TxFull,
}

impl PipelineDrop {
    /// Every reason, in counter-index order.
    pub const ALL: [PipelineDrop; 5] = [
        PipelineDrop::UnknownPort,
        PipelineDrop::NotForUs,
        PipelineDrop::NeighbourMiss,
        PipelineDrop::NoEgressPort,
        PipelineDrop::TxFull,
    ];
    /// The number of reasons.
    pub const COUNT: usize = PipelineDrop::ALL.len();

    /// Stable kebab-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PipelineDrop::UnknownPort => "unknown-port",
            PipelineDrop::NotForUs => "not-for-us",
            PipelineDrop::NeighbourMiss => "neighbour-miss",
            PipelineDrop::NoEgressPort => "no-egress-port",
            PipelineDrop::TxFull => "tx-full",
        }
    }

    /// Index into [`Counters::pipeline_drops`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Why a frame was dropped: by the parser or by the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropCause {
    Parse(DropReason),
    Pipeline(PipelineDrop),
}

impl DropCause {
    /// Stable kebab-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropCause::Parse(r) => r.as_str(),
            DropCause::Pipeline(r) => r.as_str(),
        }
    }
}

/// The fate of one received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Rewritten and queued on the transmit batch for `port`.
    Forward { port: u32 },
    /// Copied to the control path.
    Control(ControlReason),
    /// Dropped.
    Drop(DropCause),
}

/// Packet and byte counts of one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl PortCounters {
    fn merge(&mut self, other: &PortCounters) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
    }
}

/// ICMP errors: sent, refused by the rate limiter, not due (about an ICMP
/// error, a later fragment, a multicast source, or no own address of the
/// family), or lost (no transmit slot or buffer too small).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IcmpCounters {
    pub generated: u64,
    pub rate_limited: u64,
    pub suppressed: u64,
    pub lost: u64,
}

/// One worker's counters: plain integers, summed across workers with
/// [`merge`](Self::merge).
///
/// Every received frame is counted once in `forwarded`, a drop, or a control
/// reason: `rx_packets == forwarded + drops() + control_total()`. Port
/// `tx_*` counts include generated ICMP errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub forwarded: u64,
    /// Indexed by port number (configured ports only).
    pub ports: Vec<PortCounters>,
    /// Forwarded packets per group and per (group, member), indexed by group
    /// id (see [`group_packets`](Self::group_packets),
    /// [`member_packets`](Self::member_packets), [`groups`](Self::groups),
    /// [`members`](Self::members)).
    per_group: Vec<GroupCounters>,
    pub parse_drops: DropCounters,
    /// Indexed by [`PipelineDrop::index`].
    pub pipeline_drops: [u64; PipelineDrop::COUNT],
    /// Indexed by [`ControlReason::index`].
    pub control: [u64; ControlReason::COUNT],
    pub icmp: IcmpCounters,
}

impl Counters {
    /// Adds another worker's counters into these.
    pub fn merge(&mut self, other: &Counters) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.forwarded += other.forwarded;
        if self.ports.len() < other.ports.len() {
            self.ports
                .resize(other.ports.len(), PortCounters::default());
        }
        for (mine, theirs) in self.ports.iter_mut().zip(&other.ports) {
            mine.merge(theirs);
        }
        for (g, theirs) in other.per_group.iter().enumerate() {
            for &(m, n) in &theirs.members {
                self.add_hits(g as GroupId, m, n);
            }
        }
        self.parse_drops.merge(&other.parse_drops);
        for (mine, theirs) in self.pipeline_drops.iter_mut().zip(other.pipeline_drops) {
            *mine += theirs;
        }
        for (mine, theirs) in self.control.iter_mut().zip(other.control) {
            *mine += theirs;
        }
        self.icmp.generated += other.icmp.generated;
        self.icmp.rate_limited += other.icmp.rate_limited;
        self.icmp.suppressed += other.icmp.suppressed;
        self.icmp.lost += other.icmp.lost;
    }

    /// Forwarded packets of group `group`.
    pub fn group_packets(&self, group: GroupId) -> u64 {
        self.per_group.get(group as usize).map_or(0, |g| g.packets)
    }

    /// Forwarded packets of group `group` to member `member`.
    pub fn member_packets(&self, group: GroupId, member: MemberId) -> u64 {
        self.per_group.get(group as usize).map_or(0, |g| {
            g.members
                .binary_search_by_key(&member, |&(m, _)| m)
                .map_or(0, |i| g.members[i].1)
        })
    }

    /// Every group that forwarded a packet, with its packets, by group id.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, u64)> + '_ {
        self.per_group
            .iter()
            .enumerate()
            .filter(|(_, g)| g.packets > 0)
            .map(|(id, g)| (id as GroupId, g.packets))
    }

    /// Every (group, member) that forwarded a packet, with its packets, by
    /// group id then member id.
    pub fn members(&self) -> impl Iterator<Item = ((GroupId, MemberId), u64)> + '_ {
        self.per_group
            .iter()
            .enumerate()
            .flat_map(|(id, g)| g.members.iter().map(move |&(m, n)| ((id as GroupId, m), n)))
    }

    /// Counts `n` more packets forwarded by `group` to `member`.
    fn add_hits(&mut self, group: GroupId, member: MemberId, n: u64) {
        if let Some(c) = self.group_mut(group, n) {
            c.add(member, n);
        }
    }

    /// The counters of `group`, which forwarded `n` more packets (`None`,
    /// and nothing counted, if `n` is 0).
    #[inline]
    fn group_mut(&mut self, group: GroupId, n: u64) -> Option<&mut GroupCounters> {
        if n == 0 {
            return None;
        }
        let g = group as usize;
        if self.per_group.len() <= g {
            self.per_group.resize_with(g + 1, GroupCounters::default);
        }
        let c = self.per_group.get_mut(g)?;
        c.packets += n;
        Some(c)
    }

    /// Drops counted for `cause`.
    pub fn drop_count(&self, cause: DropCause) -> u64 {
        match cause {
            DropCause::Parse(r) => self.parse_drops.count(r),
            DropCause::Pipeline(r) => self.pipeline_drops[r.index()],
        }
    }

    /// All drops.
    pub fn drops(&self) -> u64 {
        self.parse_drops.total() + self.pipeline_drops.iter().sum::<u64>()
    }

    /// Frames sent to the control path for `reason`.
    pub fn control_count(&self, reason: ControlReason) -> u64 {
        self.control[reason.index()]
    }

    /// All frames sent to the control path.
    pub fn control_total(&self) -> u64 {
        self.control.iter().sum()
    }

    /// Transmitted packets over all ports.
    pub fn tx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.tx_packets).sum()
    }
}

/// One group's forwarded packets: in all, and per member (sorted by member
/// id, only members that forwarded a packet). A group that forwarded nothing
/// has no packets and no members, so equal counts compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct GroupCounters {
    packets: u64,
    members: Vec<(MemberId, u64)>,
}

impl GroupCounters {
    /// Adds `n` (nonzero) to `member`'s count, not to `packets`.
    #[inline]
    fn add(&mut self, member: MemberId, n: u64) {
        match self.members.binary_search_by_key(&member, |&(m, _)| m) {
            Ok(i) => {
                if let Some(e) = self.members.get_mut(i) {
                    e.1 += n;
                }
            }
            Err(i) => self.members.insert(i, (member, n)),
        }
    }
}

/// A token bucket over a caller-supplied clock (nanoseconds); starts full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    /// Capacity and level in token-nanoseconds (tokens x 10^9).
    capacity: u64,
    level: u64,
    last: Option<Nanos>,
}

impl TokenBucket {
    /// `rate_pps` tokens per second, at most `burst` (at least 1) held.
    pub fn new(rate_pps: u32, burst: u32) -> Self {
        let capacity = u64::from(burst.max(1)) * NANOS_PER_SEC;
        TokenBucket {
            rate: u64::from(rate_pps),
            capacity,
            level: capacity,
            last: None,
        }
    }

    /// Takes one token at `now` if there is one. A clock going backwards
    /// refills nothing.
    pub fn allow(&mut self, now: Nanos) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_sub(last).saturating_mul(self.rate);
            self.level = self.level.saturating_add(refill).min(self.capacity);
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        if self.level >= NANOS_PER_SEC {
            self.level -= NANOS_PER_SEC;
            true
        } else {
            false
        }
    }
}

/// ICMP and ICMPv6 error builders: write a complete reply frame for the
/// frame that caused the error into a caller's buffer (no allocation).
pub mod icmp {
    use std::net::IpAddr;

    use crate::packet::{internet_checksum, IpVersion, ParsedPacket, PROTO_ICMP, PROTO_ICMPV6};

    /// The most an ICMPv4 error packet carries (RFC 1812 4.3.2.3: 576 bytes).
    pub const V4_MAX_LEN: usize = 576;
    /// The most an ICMPv6 error packet carries (RFC 4443 2.4: the minimum
    /// MTU, 1280 bytes).
    pub const V6_MAX_LEN: usize = 1280;

    /// Which error to build.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ErrorKind {
        /// ICMP type 3 code 0 (network unreachable) / ICMPv6 type 1 code 0
        /// (no route to destination).
        Unreachable,
        /// ICMP type 11 code 0 / ICMPv6 type 3 code 0 (limit exceeded in
        /// transit).
        TimeExceeded,
    }

    /// Builds a destination-unreachable reply to `frame` (parsed as
    /// `parsed`) into `out`, from `src_mac` and `src` (the router's address,
    /// of the packet's family) to the frame's source, keeping its VLAN tags;
    /// returns the reply's length, or `None` if the family of `src` does not
    /// match or `out` is too small for the headers plus an IP header.
    pub fn unreachable(
        frame: &[u8],
        parsed: &ParsedPacket,
        src_mac: [u8; 6],
        src: IpAddr,
        out: &mut [u8],
    ) -> Option<usize> {
        build(ErrorKind::Unreachable, frame, parsed, src_mac, src, out)
    }

    /// Like [`unreachable`] for time exceeded.
    pub fn time_exceeded(
        frame: &[u8],
        parsed: &ParsedPacket,
        src_mac: [u8; 6],
        src: IpAddr,
        out: &mut [u8],
    ) -> Option<usize> {
        build(ErrorKind::TimeExceeded, frame, parsed, src_mac, src, out)
    }

    /// Builds the `kind` error (see [`unreachable`]).
    pub fn build(
        kind: ErrorKind,
        frame: &[u8],
        parsed: &ParsedPacket,
        src_mac: [u8; 6],
        src: IpAddr,
        out: &mut [u8],
    ) -> Option<usize> {
        let l3 = parsed.l3_offset;
        let original = frame.get(l3..l3.checked_add(parsed.l3_len)?)?;
        let link = frame.get(6..12)?;
        let tags = frame.get(12..l3)?;
        let (ip_len, max_len) = match parsed.ip_version {
            IpVersion::V4 => (20, V4_MAX_LEN),
            IpVersion::V6 => (40, V6_MAX_LEN),
        };
        let headers = ip_len + 8;
        let room = out.len().checked_sub(l3 + headers)?;
        let quote = original.len().min(max_len - headers).min(room);
        if quote < ip_len.min(original.len()) {
            return None;
        }
        let total = headers + quote;
        out.get_mut(0..6)?.copy_from_slice(link);
        out.get_mut(6..12)?.copy_from_slice(&src_mac);
        out.get_mut(12..l3)?.copy_from_slice(tags);
        let packet = out.get_mut(l3..l3 + total)?;
        let (ip, msg) = packet.split_at_mut(ip_len);
        msg[8..].copy_from_slice(&original[..quote]);
        msg[4..8].fill(0);
        match (parsed.ip_version, src) {
            (IpVersion::V4, IpAddr::V4(src)) => {
                let dst = original.get(12..16)?;
                ip[..12].copy_from_slice(&[0x45, 0xc0, 0, 0, 0, 0, 0, 0, 64, PROTO_ICMP, 0, 0]);
                ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                ip[12..16].copy_from_slice(&src.octets());
                ip[16..20].copy_from_slice(dst);
                let c = internet_checksum(ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                msg[0] = match kind {
                    ErrorKind::Unreachable => 3,
                    ErrorKind::TimeExceeded => 11,
                };
                msg[1] = 0;
                msg[2..4].fill(0);
                let c = internet_checksum(msg);
                msg[2..4].copy_from_slice(&c.to_be_bytes());
            }
            (IpVersion::V6, IpAddr::V6(src)) => {
                let dst = original.get(8..24)?;
                let payload_len = (8 + quote) as u16;
                ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, PROTO_ICMPV6, 64]);
                ip[4..6].copy_from_slice(&payload_len.to_be_bytes());
                ip[8..24].copy_from_slice(&src.octets());
                ip[24..40].copy_from_slice(dst);
                msg[0] = match kind {
                    ErrorKind::Unreachable => 1,
                    ErrorKind::TimeExceeded => 3,
                };
                msg[1] = 0;
                msg[2..4].fill(0);
                let mut pseudo = [0u8; 40];
                pseudo[..32].copy_from_slice(&ip[8..40]);
                pseudo[32..36].copy_from_slice(&u32::from(payload_len).to_be_bytes());
                pseudo[39] = PROTO_ICMPV6;
                // Both parts' one's-complement sums (the pseudo-header has an
                // even length, so they add up), then the complement.
                let sum =
                    u32::from(!internet_checksum(&pseudo)) + u32::from(!internet_checksum(msg));
                let folded = (sum & 0xffff) + (sum >> 16);
                let c = !((folded & 0xffff) + (folded >> 16)) as u16;
                msg[2..4].copy_from_slice(&c.to_be_bytes());
            }
            _ => return None,
        }
        Some(l3 + total)
    }
}

/// The 64-bit fingerprint the flow tracker keys flows on: two XXH3 hashes
/// (through [`FlowHasher`], whose output is 32 bits; `xxhash_rust` is not a
/// dependency of this crate) of the 5-tuple under two fixed seeds, combined.
#[derive(Clone, Debug)]
pub struct Fingerprinter {
    selection: FieldSelection,
    low: FlowHasher,
    high: FlowHasher,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        let selection = FieldSelection::new(HashFields::L4);
        Fingerprinter {
            selection,
            low: FlowHasher::new(HashFunction::Xxh3, selection, 0x243f_6a88_85a3_08d3),
            high: FlowHasher::new(HashFunction::Xxh3, selection, 0x1319_8a2e_0370_7344),
        }
    }
}

impl Fingerprinter {
    /// The fingerprint of `key`'s 5-tuple.
    pub fn fingerprint(&self, key: &FlowKey) -> u64 {
        let input = self.selection.input(key);
        (u64::from(self.high.hash_input(&input)) << 32) | u64::from(self.low.hash_input(&input))
    }

    /// The fingerprint of a fast-path frame's 5-tuple: the same value as
    /// [`fingerprint`](Self::fingerprint) of its key.
    #[inline]
    fn fingerprint_v4(&self, f: &FastV4, port: u32) -> u64 {
        let (s, d, sp, dp, p) = (f.src, f.dst, f.src_port, f.dst_port, f.proto);
        (u64::from(self.high.hash_v4(s, d, sp, dp, p, port)) << 32)
            | u64::from(self.low.hash_v4(s, d, sp, dp, p, port))
    }
}

/// Slots of the neighbour cache (direct mapped; a power of two).
const NEIGHBOUR_SLOTS: usize = 256;

/// Resolved neighbours kept across batches while the table's
/// [`NeighbourTable::generation`] stays the same (flushed every batch for a
/// table without one), plus this batch's misses, so the table is read at most
/// once per distinct nexthop per batch and a miss is requested once per batch.
struct NeighbourCache {
    generation: Option<u64>,
    slots: Box<[Option<(IpAddr, Neighbour)>]>,
    misses: Vec<IpAddr>,
}

impl NeighbourCache {
    fn new() -> Self {
        NeighbourCache {
            generation: None,
            slots: vec![None; NEIGHBOUR_SLOTS].into_boxed_slice(),
            misses: Vec::new(),
        }
    }

    /// Starts a batch: keeps the entries only if `table` says nothing
    /// changed since they were resolved.
    /// Returns whether the entries were dropped.
    fn start_batch(&mut self, table: &dyn NeighbourTable) -> bool {
        let generation = table.generation();
        let flush = generation.is_none() || generation != self.generation;
        if flush {
            self.slots.fill(None);
            self.generation = generation;
        }
        self.misses.clear();
        flush
    }

    #[inline]
    fn slot(addr: IpAddr) -> usize {
        let bits = match addr {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let x = u128::from(a);
                (x as u64) ^ ((x >> 64) as u64)
            }
        };
        (bits.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % NEIGHBOUR_SLOTS
    }

    /// The neighbour of `addr`, from the cache or `table`; a miss asks for
    /// resolution once per batch.
    #[inline]
    fn resolve(&mut self, table: &dyn NeighbourTable, addr: IpAddr) -> Option<Neighbour> {
        let slot = Self::slot(addr);
        if let Some(Some((a, n))) = self.slots.get(slot) {
            if *a == addr {
                return Some(*n);
            }
        }
        if self.misses.contains(&addr) {
            return None;
        }
        match table.resolve(addr) {
            Some(n) => {
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = Some((addr, n));
                }
                Some(n)
            }
            None => {
                table.request(addr);
                self.misses.push(addr);
                None
            }
        }
    }
}

/// A member of a [`FlatGroup`]: its nexthop, its resolved neighbour and
/// egress MAC (kept while the neighbour cache keeps its entries), and the
/// packets it forwarded in the current batch.
#[derive(Clone, Debug)]
struct FlatMember {
    id: MemberId,
    addr: IpAddr,
    /// The resolved neighbour and its port's MAC (`None`: port not
    /// configured). Never a miss: misses go to the neighbour cache every
    /// time, which asks for resolution once per batch.
    neighbour: Option<(Neighbour, Option<[u8; 6]>)>,
    hits: u64,
}

/// A group flattened for the fast path: built from one published
/// `NexthopGroup` (held, so it is the same group as long as the pointer is),
/// its members in the group's order (sorted by member id).
#[derive(Debug, Default)]
struct FlatGroup {
    group: Option<Arc<NexthopGroup>>,
    /// The [`Worker::neighbour_epoch`] the members' neighbours belong to.
    neighbour_epoch: u64,
    members: Vec<FlatMember>,
    /// Packets forwarded in the current batch (the sum of the members').
    hits: u64,
}

impl FlatGroup {
    /// Makes this the flattening of `group` for neighbour epoch `epoch`.
    #[inline]
    fn refresh(&mut self, group: &Arc<NexthopGroup>, epoch: u64) {
        let same = self.group.as_ref().is_some_and(|g| Arc::ptr_eq(g, group));
        if !same {
            self.members.clear();
            self.members
                .extend(group.nexthops().iter().map(|n| FlatMember {
                    id: n.id,
                    addr: n.addr,
                    neighbour: None,
                    hits: 0,
                }));
            self.group = Some(Arc::clone(group));
            self.neighbour_epoch = epoch;
        } else if self.neighbour_epoch != epoch {
            for m in &mut self.members {
                m.neighbour = None;
            }
            self.neighbour_epoch = epoch;
        }
    }
}

/// Offset of the IPv4 header in a frame the fast path takes.
const FAST_L3: usize = 14;
/// Offset of its transport header (no IPv4 options).
const FAST_L4: usize = FAST_L3 + 20;

/// The common case, read straight from the bytes of a frame: untagged
/// Ethernet unicast to the ingress port's MAC, IPv4 without options, not a
/// fragment, TTL above 1, TCP or UDP with a complete header, to a unicast
/// destination. `parse_flow` accepts every such frame, with the key these
/// fields make, and the general path's MAC, multicast and TTL checks pass it;
/// the caller checks the destination is not one of the router's own.
#[derive(Clone, Copy, Debug)]
struct FastV4 {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    proto: u8,
}

/// The IPv6 common case: untagged Ethernet unicast to the ingress port's
/// MAC, IPv6 whose next header is TCP or UDP (no extension headers) with a
/// complete header inside the payload length, hop limit above 1, to a
/// unicast destination that is not link-local. `parse_flow` accepts every
/// such frame, with the key these fields make (ports included: not a
/// fragment), and the general path's MAC, multicast, link-local and hop
/// limit checks pass it; the caller checks the destination is not one of the
/// router's own.
#[derive(Clone, Copy, Debug)]
struct FastV6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    flow_label: u32,
    src_port: u16,
    dst_port: u16,
    proto: u8,
}

impl FastV6 {
    /// The flow key `parse_flow` gives the frame, arrived on `port`.
    #[inline]
    fn key(&self, port: u32) -> FlowKey {
        FlowKey {
            src: IpAddr::V6(self.src),
            dst: IpAddr::V6(self.dst),
            proto: self.proto,
            src_port: self.src_port,
            dst_port: self.dst_port,
            flow_label: self.flow_label,
            ingress_port: port,
        }
    }
}

/// Offset of the transport header of an IPv6 fast-path frame.
const FAST_L4_V6: usize = FAST_L3 + 40;

/// `frame`'s [`FastV6`] if it is the IPv6 common case for a port with MAC
/// `port_mac`; `None` sends it down the general path, which decides.
#[inline]
fn fast_v6(frame: &[u8], port_mac: &[u8; 6]) -> Option<FastV6> {
    let h: &[u8; FAST_L4_V6 + 4] = frame.first_chunk()?;
    if h[..6] != *port_mac || h[0] & 1 != 0 || h[12..14] != [0x86, 0xdd] || h[14] >> 4 != 6 {
        return None;
    }
    let l3 = &h[FAST_L3..];
    let payload = usize::from(u16::from_be_bytes([l3[4], l3[5]]));
    let (proto, hop_limit) = (l3[6], l3[7]);
    // The whole payload present; hop limit left to decrement.
    if payload > frame.len() - FAST_L4_V6 || hop_limit <= 1 {
        return None;
    }
    let complete = match proto {
        PROTO_TCP => {
            let header = frame
                .get(FAST_L4_V6 + 12)
                .map_or(0, |b| usize::from(b >> 4) * 4);
            payload >= 20 && header >= 20 && header <= payload
        }
        PROTO_UDP => payload >= 8,
        _ => false,
    };
    let addr = |at: usize| -> Option<Ipv6Addr> {
        let b: &[u8; 16] = l3.get(at..)?.first_chunk()?;
        Some(Ipv6Addr::from(*b))
    };
    let (src, dst) = (addr(8)?, addr(24)?);
    if !complete || dst.is_multicast() || is_ipv6_link_local(IpAddr::V6(dst)) {
        return None;
    }
    let port = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    Some(FastV6 {
        src,
        dst,
        flow_label: u32::from_be_bytes([l3[0], l3[1], l3[2], l3[3]]) & 0x000f_ffff,
        src_port: port(FAST_L4_V6),
        dst_port: port(FAST_L4_V6 + 2),
        proto,
    })
}

/// A frame the fast path takes: an IPv4 frame's fields, or where an IPv6
/// frame's are in [`Worker::fast6`] (kept apart so that the common IPv4 case
/// stays small).
#[derive(Clone, Copy, Debug)]
enum Fast {
    V4(FastV4),
    V6(u32),
}

/// `frame`'s [`FastV4`] if it is the common case for a port with MAC
/// `port_mac`; `None` sends it down the general path, which decides.
#[inline]
fn fast_v4(frame: &[u8], port_mac: &[u8; 6]) -> Option<FastV4> {
    // Ethernet, IPv4 header, and the transport header's 4 bytes of ports.
    let h: &[u8; FAST_L4 + 4] = frame.first_chunk()?;
    let [d0, d1, d2, d3, d4, d5, _, _, _, _, _, _, 0x08, 0x00, 0x45, _, t0, t1, _, _, f0, f1, ttl, proto, _, _, s0, s1, s2, s3, a0, a1, a2, a3, p0, p1, p2, p3] =
        *h
    else {
        return None;
    };
    // Unicast to this port: the general path sends link-layer group frames to
    // the control path and drops frames for other MACs.
    if [d0, d1, d2, d3, d4, d5] != *port_mac || d0 & 1 != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([t0, t1]));
    // The whole IP packet present; MF clear and offset 0; TTL left to
    // decrement.
    if total > frame.len() - FAST_L3 || u16::from_be_bytes([f0, f1]) & 0x3fff != 0 || ttl <= 1 {
        return None;
    }
    let l4_len = total.checked_sub(20)?;
    let complete = match proto {
        PROTO_TCP => {
            let header = frame
                .get(FAST_L4 + 12)
                .map_or(0, |b| usize::from(b >> 4) * 4);
            l4_len >= 20 && header >= 20 && header <= l4_len
        }
        PROTO_UDP => l4_len >= 8,
        _ => false,
    };
    let dst = Ipv4Addr::new(a0, a1, a2, a3);
    if !complete || dst.is_multicast() || dst.is_broadcast() {
        return None;
    }
    Some(FastV4 {
        src: Ipv4Addr::new(s0, s1, s2, s3),
        dst,
        src_port: u16::from_be_bytes([p0, p1]),
        dst_port: u16::from_be_bytes([p2, p3]),
        proto,
    })
}

/// A fast-path frame's nexthop, chosen in the batch's selection stage.
#[derive(Clone, Copy, Debug)]
struct Chosen {
    /// Index of the group's [`FlatGroup`] in [`Worker::flat`] (its id).
    group: u32,
    /// Index of the member in the group's nexthops and `FlatGroup::members`.
    index: u32,
    /// An IPv6 frame (its hop limit, not a TTL, is decremented).
    v6: bool,
    /// The flow's tracker fingerprint (0 with tracking off).
    fingerprint: u64,
}

/// One worker's pipeline: everything but the FIB reader, so a batch's
/// snapshot can borrow the reader while the rest is mutated.
struct Worker {
    ports: Vec<PortConfig>,
    own: Vec<IpAddr>,
    /// The IPv4 addresses of `own`, for the fast path.
    own_v4: Vec<Ipv4Addr>,
    parse: ParseOptions,
    neighbours: Arc<dyn NeighbourTable>,
    tracker: Option<FlowTracker>,
    fingerprinter: Fingerprinter,
    limiter: TokenBucket,
    counters: Counters,
    dispositions: Vec<Disposition>,
    neighbour_cache: NeighbourCache,
    /// Bumped whenever the neighbour cache drops its entries; the
    /// neighbours kept in [`FlatGroup`]s of another epoch are stale.
    neighbour_epoch: u64,
    /// The fast path's flattened groups, indexed by group id.
    flat: Vec<FlatGroup>,
    /// The groups of `flat` with hits in this batch.
    touched: Vec<u32>,
    /// Per frame of the batch: its fast-path fields, if it is the common
    /// case.
    fast: Vec<Option<Fast>>,
    /// Per frame: the IPv4 destination to look up (0 for the others).
    dsts: Vec<u32>,
    /// Per frame: the group id the LPM gave for `dsts`.
    group_ids: Vec<u32>,
    /// The fields of the batch's IPv6 fast-path frames, in order.
    fast6: Vec<FastV6>,
    /// Their destinations, for the batched LPM lookup.
    dsts6: Vec<u128>,
    /// The group id the LPM gave for each of `dsts6`.
    group_ids6: Vec<u32>,
    /// Per frame: the nexthop of a fast-path frame with a route and a
    /// nonempty group.
    chosen: Vec<Option<Chosen>>,
    /// Off only in tests, which compare the fast path with the general one.
    fast_path: bool,
}

impl Worker {
    /// The neighbour of `addr` (see [`NeighbourCache::resolve`]).
    #[inline]
    fn neighbour(&mut self, addr: IpAddr) -> Option<Neighbour> {
        self.neighbour_cache.resolve(&*self.neighbours, addr)
    }

    #[inline]
    fn count_hit(&mut self, group: GroupId, member: MemberId) {
        self.counters.add_hits(group, member, 1);
    }

    /// Starts a batch: the neighbour cache, and the neighbour epoch of the
    /// flattened groups.
    fn start_batch(&mut self) {
        if self.neighbour_cache.start_batch(&*self.neighbours) {
            self.neighbour_epoch += 1;
        }
    }

    /// Folds this batch's fast-path hits per (group, member) into the
    /// counters, once per distinct pair.
    fn end_batch(&mut self) {
        for &g in &self.touched {
            let Some(flat) = self.flat.get_mut(g as usize) else {
                continue;
            };
            let sum = std::mem::take(&mut flat.hits);
            let Some(c) = self.counters.group_mut(g, sum) else {
                continue;
            };
            // Both sorted by member id: one merge walk, inserting (rarely)
            // members counted for the first time.
            let mut at = 0;
            for m in &mut flat.members {
                let n = std::mem::take(&mut m.hits);
                if n == 0 {
                    continue;
                }
                while c.members.get(at).is_some_and(|&(id, _)| id < m.id) {
                    at += 1;
                }
                match c.members.get_mut(at) {
                    Some(e) if e.0 == m.id => e.1 += n,
                    _ => c.members.insert(at, (m.id, n)),
                }
            }
        }
        self.touched.clear();
    }

    /// Stage one of a batch: which frames take the fast path, and their
    /// destinations for the batched LPM lookup.
    /// Each destination's LPM entry is prefetched as soon as it is known,
    /// so the memory loads overlap the classification of later frames.
    fn classify(&mut self, fib: &FibSnapshot<'_>, rx: &PacketBatch) {
        self.fast.clear();
        self.dsts.clear();
        self.dsts6.clear();
        self.fast6.clear();
        for buf in rx.iter() {
            let fast = match self.ports.get(buf.port() as usize) {
                Some(cfg) if self.fast_path => match fast_v4(buf.frame(), &cfg.mac) {
                    Some(f) => Some(Fast::V4(f)).filter(|_| !self.own_v4.contains(&f.dst)),
                    None => match fast_v6(buf.frame(), &cfg.mac) {
                        Some(f) if !self.own.contains(&IpAddr::V6(f.dst)) => {
                            let dst = u128::from(f.dst);
                            fib.prefetch_v6(dst);
                            self.dsts6.push(dst);
                            self.fast6.push(f);
                            Some(Fast::V6(self.fast6.len() as u32 - 1))
                        }
                        _ => None,
                    },
                },
                _ => None,
            };
            let dst = match fast {
                Some(Fast::V4(f)) => u32::from(f.dst),
                _ => 0,
            };
            fib.prefetch_v4(dst);
            self.fast.push(fast);
            self.dsts.push(dst);
        }
        self.group_ids.clear();
        self.group_ids
            .resize(self.dsts.len(), crate::fib::lpm4::NO_ROUTE);
        self.group_ids6.clear();
        self.group_ids6
            .resize(self.dsts6.len(), crate::fib::lpm6::NO_ROUTE);
    }

    /// Stage three: the nexthop of every fast-path frame with a route, as
    /// `NexthopGroup::select_at` chooses it (a resilient group notes its
    /// bucket as busy at `now`). A frame whose group is empty gets none
    /// and goes down the general path, which queues the ICMP error.
    fn select(&mut self, fib: &FibSnapshot<'_>, rx: &PacketBatch, now: Nanos) {
        self.chosen.clear();
        let table = fib.table();
        let mut flat = FlatSelect {
            flat: &mut self.flat,
            neighbour_epoch: self.neighbour_epoch,
            tracker: self.tracker.as_ref(),
            fingerprinter: &self.fingerprinter,
        };
        for ((buf, fast), &id) in rx.iter().zip(&self.fast).zip(&self.group_ids) {
            let port = buf.port();
            let chosen = match *fast {
                Some(Fast::V4(f)) => table.get(id).and_then(|group| {
                    let hash = group
                        .hasher()
                        .hash_v4(f.src, f.dst, f.src_port, f.dst_port, f.proto, port);
                    flat.choose(group, hash, false, now, |fp| fp.fingerprint_v4(&f, port))
                }),
                Some(Fast::V6(j)) => {
                    let j = j as usize;
                    match (self.fast6.get(j), self.group_ids6.get(j)) {
                        (Some(f), Some(&id)) => table.get(id).and_then(|group| {
                            let key = f.key(port);
                            let hash = group.hasher().hash(&key);
                            flat.choose(group, hash, true, now, |fp| fp.fingerprint(&key))
                        }),
                        _ => None,
                    }
                }
                None => None,
            };
            self.chosen.push(chosen);
        }
    }
}

/// The parts of a [`Worker`] the selection stage writes or reads per frame.
struct FlatSelect<'a> {
    flat: &'a mut Vec<FlatGroup>,
    neighbour_epoch: u64,
    tracker: Option<&'a FlowTracker>,
    fingerprinter: &'a Fingerprinter,
}

impl FlatSelect<'_> {
    /// The nexthop of a fast-path frame with flow hash `hash` in `group`, as
    /// `NexthopGroup::select_at` chooses it, with the group flattened and
    /// the flow's tracker set prefetched (`fingerprint` computes its
    /// fingerprint); `None` for an empty group.
    #[inline(always)]
    fn choose(
        &mut self,
        group: &Arc<NexthopGroup>,
        hash: u32,
        v6: bool,
        now: Nanos,
        fingerprint: impl FnOnce(&Fingerprinter) -> u64,
    ) -> Option<Chosen> {
        if let AnySelector::Resilient(r) = group.selector() {
            r.note_activity(hash, now);
        }
        // As `select_hash`: the selector's member, then its nexthop.
        let member = group.selector().select(hash)?;
        let index = group
            .nexthops()
            .binary_search_by_key(&member, |n| n.id)
            .ok()?;
        let slot = group.id() as usize;
        if self.flat.len() <= slot {
            self.flat.resize_with(slot + 1, FlatGroup::default);
        }
        self.flat
            .get_mut(slot)?
            .refresh(group, self.neighbour_epoch);
        let mut fp = 0;
        if let Some(tracker) = self.tracker {
            fp = fingerprint(self.fingerprinter);
            tracker.prefetch(fp);
        }
        Some(Chosen {
            group: group.id(),
            index: index as u32,
            v6,
            fingerprint: fp,
        })
    }
}

/// A per-worker forwarding pipeline (no locks, no clock; see the module docs).
pub struct Pipeline {
    fib: FibReader,
    worker: Worker,
}

impl Pipeline {
    /// A pipeline over `fib` and `neighbours`; fails only on a bad tracker
    /// configuration with `track_flows` on.
    pub fn new(
        config: PipelineConfig,
        fib: FibReader,
        neighbours: Arc<dyn NeighbourTable>,
    ) -> Result<Self, TrackerError> {
        let tracker = if config.track_flows {
            Some(FlowTracker::new(config.tracker)?)
        } else {
            None
        };
        let own: Vec<IpAddr> = config
            .ports
            .iter()
            .flat_map(|p| p.addrs.iter().copied())
            .collect();
        let own_v4 = own
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect();
        let counters = Counters {
            ports: vec![PortCounters::default(); config.ports.len()],
            ..Counters::default()
        };
        let batch = crate::io::DEFAULT_BATCH_SIZE;
        Ok(Pipeline {
            fib,
            worker: Worker {
                ports: config.ports,
                own,
                own_v4,
                parse: config.parse,
                neighbours,
                tracker,
                fingerprinter: Fingerprinter::default(),
                limiter: TokenBucket::new(config.icmp.rate_pps, config.icmp.burst),
                counters,
                dispositions: Vec::with_capacity(batch),
                neighbour_cache: NeighbourCache::new(),
                neighbour_epoch: 0,
                flat: Vec::new(),
                touched: Vec::with_capacity(batch),
                fast: Vec::with_capacity(batch),
                dsts: Vec::with_capacity(batch),
                group_ids: Vec::with_capacity(batch),
                fast6: Vec::new(),
                dsts6: Vec::new(),
                group_ids6: Vec::new(),
                chosen: Vec::with_capacity(batch),
                fast_path: true,
            },
        })
    }

    /// Processes every frame of `rx` (which is cleared): forwarded frames are
    /// appended to `tx` (by buffer exchange, no copy), control frames copied
    /// to `control`, ICMP errors (rate limited) appended to `tx` on the
    /// ingress port. One FIB snapshot serves the whole batch.
    ///
    /// In stages, so that the cache misses of different frames overlap: the
    /// common case (see `fast_v4` and `fast_v6`) is recognised for every
    /// frame first, then the LPM looks up all their destinations at once (per
    /// family), then each frame's nexthop is chosen, then each frame is
    /// forwarded in order through its group's flattened nexthops (`FlatGroup`,
    /// whose per-batch hits are folded into the counters at the end). Every
    /// other frame, and a common-case frame
    /// without a route or with an empty group, takes the general path
    /// (`Worker::packet`); both give the same dispositions, frames and
    /// counters.
    pub fn process(
        &mut self,
        rx: &mut PacketBatch,
        tx: &mut PacketBatch,
        control: &mut Vec<ControlPacket>,
        now: Nanos,
    ) {
        let snapshot = self.fib.snapshot();
        let w = &mut self.worker;
        w.dispositions.clear();
        w.start_batch();
        w.classify(&snapshot, rx);
        snapshot.lookup_v4_batch(&w.dsts, &mut w.group_ids);
        if !w.dsts6.is_empty() {
            snapshot.lookup_v6_batch(&w.dsts6, &mut w.group_ids6);
        }
        w.select(&snapshot, rx, now);
        for i in 0..rx.len() {
            let d = match w.chosen.get(i) {
                Some(&Some(c)) => w.forward_v4(c, rx, i, tx, now),
                _ => w.packet(&snapshot, rx, i, tx, control, now),
            };
            match d {
                Disposition::Forward { .. } => w.counters.forwarded += 1,
                Disposition::Control(r) => w.counters.control[r.index()] += 1,
                Disposition::Drop(DropCause::Parse(r)) => w.counters.parse_drops.record(r),
                Disposition::Drop(DropCause::Pipeline(r)) => {
                    w.counters.pipeline_drops[r.index()] += 1
                }
            }
            w.dispositions.push(d);
        }
        w.end_batch();
        drop(snapshot);
        rx.clear();
    }

    /// The disposition of each frame of the last processed batch, in order.
    pub fn dispositions(&self) -> &[Disposition] {
        &self.worker.dispositions
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.worker.counters
    }

    /// Announces a group change (from `Applied::changes`) to the flow
    /// tracker; `None` if tracking is off.
    pub fn group_changed(&mut self, change: GroupChange) -> Option<EventId> {
        self.worker
            .tracker
            .as_mut()
            .map(|t| t.group_changed(change))
    }

    /// Announces that the FIB freed a group (from `Applied::freed`), so the
    /// flow tracker does not take a reuse of its id for the same group; see
    /// [`FlowTracker::group_freed`]. Nothing if tracking is off.
    pub fn group_freed(&mut self, group: GroupId, now: Nanos) {
        if let Some(t) = self.worker.tracker.as_mut() {
            t.group_freed(group, now);
        }
    }

    /// The flow tracker, if tracking is on.
    pub fn tracker(&self) -> Option<&FlowTracker> {
        self.worker.tracker.as_ref()
    }

    /// The fingerprint the tracker uses for `key`.
    pub fn fingerprint(&self, key: &FlowKey) -> u64 {
        self.worker.fingerprinter.fingerprint(key)
    }
}

fn drop_p(r: PipelineDrop) -> Disposition {
    Disposition::Drop(DropCause::Pipeline(r))
}

/// The outer source and destination addresses (the flow key's may come from
/// the packet embedded in an ICMP error).
fn outer_addrs(frame: &[u8], parsed: &ParsedPacket) -> Option<(IpAddr, IpAddr)> {
    let l3 = frame.get(parsed.l3_offset..)?;
    match parsed.ip_version {
        IpVersion::V4 => {
            let a: [u8; 4] = l3.get(12..16)?.try_into().ok()?;
            let b: [u8; 4] = l3.get(16..20)?.try_into().ok()?;
            Some((Ipv4Addr::from(a).into(), Ipv4Addr::from(b).into()))
        }
        IpVersion::V6 => {
            let a: [u8; 16] = l3.get(8..24)?.try_into().ok()?;
            let b: [u8; 16] = l3.get(24..40)?.try_into().ok()?;
            Some((Ipv6Addr::from(a).into(), Ipv6Addr::from(b).into()))
        }
    }
}

fn is_multicast_or_broadcast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_multicast(),
    }
}

fn is_ipv6_link_local(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

impl Worker {
    /// The rest of the fast path for frame `i` (a common-case frame whose
    /// nexthop the selection stage chose as `c`): neighbour, rewrite,
    /// counters, exactly as
    /// [`Worker::packet`] does for such a frame.
    #[inline]
    fn forward_v4(
        &mut self,
        c: Chosen,
        rx: &mut PacketBatch,
        i: usize,
        tx: &mut PacketBatch,
        now: Nanos,
    ) -> Disposition {
        let Some(buf) = rx.get_mut(i) else {
            return drop_p(PipelineDrop::UnknownPort);
        };
        let port = buf.port();
        let len = buf.len() as u64;
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += len;
        if let Some(pc) = self.counters.ports.get_mut(port as usize) {
            pc.rx_packets += 1;
            pc.rx_bytes += len;
        }
        let Some(flat) = self.flat.get_mut(c.group as usize) else {
            // Unreachable: the selection stage flattened the group.
            return drop_p(PipelineDrop::NeighbourMiss);
        };
        let Some(m) = flat.members.get_mut(c.index as usize) else {
            // Unreachable: the selection stage flattened the group.
            return drop_p(PipelineDrop::NeighbourMiss);
        };
        let (neighbour, egress) = match m.neighbour {
            Some(n) => n,
            None => {
                let Some(n) = self.neighbour_cache.resolve(&*self.neighbours, m.addr) else {
                    return drop_p(PipelineDrop::NeighbourMiss);
                };
                let resolved = (n, self.ports.get(n.port as usize).map(|p| p.mac));
                m.neighbour = Some(resolved);
                resolved
            }
        };
        let Some(egress_mac) = egress else {
            return drop_p(PipelineDrop::NoEgressPort);
        };
        if tx.is_full() {
            return drop_p(PipelineDrop::TxFull);
        }

        let frame = buf.frame_mut();
        let decremented = match frame.get_mut(FAST_L3..) {
            Some(l3) if c.v6 => {
                Ipv6Packet::new_checked_header(l3).and_then(|mut ip| ip.decrement_hop_limit())
            }
            Some(l3) => ipv4_decrement_ttl(l3),
            None => Err(DropReason::TruncatedEthernet),
        };
        if let Err(r) = decremented {
            // Unreachable: the classifier saw a TTL or hop limit above 1.
            return Disposition::Drop(DropCause::Parse(r));
        }
        if let Some(macs) = frame.first_chunk_mut::<12>() {
            macs[..6].copy_from_slice(&neighbour.mac);
            macs[6..].copy_from_slice(&egress_mac);
        }
        buf.set_port(neighbour.port);
        if !rx.swap_into(i, tx) {
            return drop_p(PipelineDrop::TxFull);
        }

        m.hits += 1;
        if flat.hits == 0 {
            self.touched.push(c.group);
        }
        flat.hits += 1;
        let member = m.id;
        if let Some(pc) = self.counters.ports.get_mut(neighbour.port as usize) {
            pc.tx_packets += 1;
            pc.tx_bytes += len;
        }
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.observe(c.fingerprint, c.group, member, now);
        }
        Disposition::Forward {
            port: neighbour.port,
        }
    }

    fn packet(
        &mut self,
        fib: &FibSnapshot<'_>,
        rx: &mut PacketBatch,
        i: usize,
        tx: &mut PacketBatch,
        control: &mut Vec<ControlPacket>,
        now: Nanos,
    ) -> Disposition {
        let Some(buf) = rx.get_mut(i) else {
            return drop_p(PipelineDrop::UnknownPort);
        };
        let port = buf.port();
        let len = buf.len() as u64;
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += len;
        let (Some(cfg), Some(pc)) = (
            self.ports.get(port as usize),
            self.counters.ports.get_mut(port as usize),
        ) else {
            return drop_p(PipelineDrop::UnknownPort);
        };
        pc.rx_packets += 1;
        pc.rx_bytes += len;

        let opts = ParseOptions {
            ingress_port: port,
            ..self.parse
        };
        let frame = buf.frame();
        let parsed = match parse_flow(frame, &opts) {
            Ok(p) => Some(p),
            Err(DropReason::ControlArp) => None,
            Err(r) => return Disposition::Drop(DropCause::Parse(r)),
        };
        let dst_mac = match EthernetFrame::new_checked(frame) {
            Ok(eth) => eth.dst_addr(),
            Err(r) => return Disposition::Drop(DropCause::Parse(r)),
        };
        let link_group = dst_mac[0] & 1 == 1;
        if !link_group && dst_mac != cfg.mac {
            return drop_p(PipelineDrop::NotForUs);
        }
        let to_control = |control: &mut Vec<ControlPacket>, reason| {
            control.push(ControlPacket {
                port,
                frame: frame.to_vec(),
                reason,
            });
            Disposition::Control(reason)
        };
        let Some(parsed) = parsed else {
            return to_control(control, ControlReason::Arp);
        };
        let Some((_, dst)) = outer_addrs(frame, &parsed) else {
            return Disposition::Drop(DropCause::Parse(DropReason::TruncatedL4));
        };
        if link_group || is_multicast_or_broadcast(dst) {
            return to_control(control, ControlReason::Multicast);
        }
        if self.own.contains(&dst) || is_ipv6_link_local(dst) {
            return to_control(control, ControlReason::Local);
        }
        let Some(group) = fib.lookup(dst) else {
            let d = to_control(control, ControlReason::NoRoute);
            self.icmp_error(icmp::ErrorKind::Unreachable, port, frame, &parsed, tx, now);
            return d;
        };
        if parsed.ttl <= 1 {
            let d = to_control(control, ControlReason::TtlExceeded);
            self.icmp_error(icmp::ErrorKind::TimeExceeded, port, frame, &parsed, tx, now);
            return d;
        }
        let Some(nexthop) = group.select_at(&parsed.key, now) else {
            // An empty group routes nothing.
            let d = to_control(control, ControlReason::NoRoute);
            self.icmp_error(icmp::ErrorKind::Unreachable, port, frame, &parsed, tx, now);
            return d;
        };
        let Some(neighbour) = self.neighbour(nexthop.addr) else {
            return drop_p(PipelineDrop::NeighbourMiss);
        };
        let Some(egress) = self.ports.get(neighbour.port as usize) else {
            return drop_p(PipelineDrop::NoEgressPort);
        };
        if tx.is_full() {
            return drop_p(PipelineDrop::TxFull);
        }

        // Rewrite in place, then hand the buffer to `tx`.
        let frame = buf.frame_mut();
        let decremented = match frame.get_mut(parsed.l3_offset..) {
            Some(l3) => match parsed.ip_version {
                IpVersion::V4 => {
                    Ipv4Packet::new_checked_header(l3).and_then(|mut ip| ip.decrement_ttl())
                }
                IpVersion::V6 => {
                    Ipv6Packet::new_checked_header(l3).and_then(|mut ip| ip.decrement_hop_limit())
                }
            },
            None => Err(DropReason::TruncatedEthernet),
        };
        if let Err(r) = decremented {
            return Disposition::Drop(DropCause::Parse(r));
        }
        if let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) {
            eth.set_dst_addr(neighbour.mac);
            eth.set_src_addr(egress.mac);
        }
        buf.set_port(neighbour.port);
        if !rx.swap_into(i, tx) {
            return drop_p(PipelineDrop::TxFull);
        }

        if let Some(pc) = self.counters.ports.get_mut(neighbour.port as usize) {
            pc.tx_packets += 1;
            pc.tx_bytes += len;
        }
        let gid = group.id();
        self.count_hit(gid, nexthop.id);
        if let Some(tracker) = self.tracker.as_mut() {
            let fp = self.fingerprinter.fingerprint(&parsed.key);
            tracker.observe(fp, gid, nexthop.id, now);
        }
        Disposition::Forward {
            port: neighbour.port,
        }
    }

    /// The control path's ICMP error for a frame from `port`: checks it is
    /// due, takes a token, and writes the reply into `tx` on `port`.
    fn icmp_error(
        &mut self,
        kind: icmp::ErrorKind,
        port: u32,
        frame: &[u8],
        parsed: &ParsedPacket,
        tx: &mut PacketBatch,
        now: Nanos,
    ) {
        let Some(cfg) = self.ports.get(port as usize) else {
            return;
        };
        let v6 = parsed.ip_version == IpVersion::V6;
        let source = cfg
            .addrs
            .iter()
            .chain(self.own.iter())
            .copied()
            .find(|a| a.is_ipv6() == v6);
        let later_fragment = parsed.ip_version == IpVersion::V4
            && frame
                .get(parsed.l3_offset..)
                .and_then(|l3| Ipv4Packet::new_checked_header(l3).ok())
                .is_some_and(|ip| ip.frag_offset() != 0);
        let bad_src = match outer_addrs(frame, parsed) {
            Some((src, _)) => is_multicast_or_broadcast(src) || src.is_unspecified(),
            None => true,
        };
        let Some(source) = source.filter(|_| !parsed.icmp_error && !later_fragment && !bad_src)
        else {
            self.counters.icmp.suppressed += 1;
            return;
        };
        if !self.limiter.allow(now) {
            self.counters.icmp.rate_limited += 1;
            return;
        }
        let Some(out) = tx.next_free() else {
            self.counters.icmp.lost += 1;
            return;
        };
        let Some(n) = icmp::build(kind, frame, parsed, cfg.mac, source, out.storage_mut()) else {
            self.counters.icmp.lost += 1;
            return;
        };
        out.set_len(n);
        out.set_port(port);
        tx.commit();
        self.counters.icmp.generated += 1;
        if let Some(pc) = self.counters.ports.get_mut(port as usize) {
            pc.tx_packets += 1;
            pc.tx_bytes += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hashing::Algorithm;
    use proptest::prelude::*;

    use super::*;
    use crate::fib::lpm4::Lpm4Config;
    use crate::fib::lpm6::Lpm6Config;
    use crate::fib::table::{self, FibConfig, FibUpdate, GroupPolicy, Nexthop, Prefix};
    use crate::neigh::StaticNeighbours;
    use crate::packet::internet_checksum;

    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

    fn mac(port: u32) -> [u8; 6] {
        [0x02, 0, 0, 0, 0, port as u8]
    }

    /// Two pipelines over one FIB and one neighbour table, the second with
    /// the fast path off. Routes: 198.51.100.0/24 to a resilient group,
    /// 203.0.113.0/25 to a modulo group, 203.0.113.128/25 to a group whose
    /// nexthop has no neighbour, 100.64.0.0/10 to an L3 symmetric CRC group.
    fn pipelines(track_flows: bool) -> (Pipeline, Pipeline, Arc<StaticNeighbours>) {
        // One FIB for every case: each allocates the 64 MiB IPv4 table.
        static FIB: std::sync::OnceLock<FibReader> = std::sync::OnceLock::new();
        let reader = FIB.get_or_init(fib).clone();
        let neighbours = Arc::new(StaticNeighbours::new());
        for id in 1..=4u32 {
            neighbours.insert(
                nh(id).addr,
                Neighbour {
                    mac: [0x02, 0xaa, 0, 0, 0, id as u8],
                    // Member 4's port is not configured.
                    port: if id == 4 { 7 } else { id },
                },
            );
        }
        let ports: Vec<PortConfig> = (0..4)
            .map(|p| PortConfig {
                mac: mac(p),
                addrs: if p == 0 {
                    vec![IpAddr::V4(ROUTER), IpAddr::V6(ROUTER6)]
                } else {
                    vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100 + p as u8))]
                },
            })
            .collect();
        let mut config = PipelineConfig::new(ports);
        config.track_flows = track_flows;
        let fast = Pipeline::new(config.clone(), reader.clone(), neighbours.clone()).unwrap();
        let mut general = Pipeline::new(config, reader, neighbours.clone()).unwrap();
        general.worker.fast_path = false;
        (fast, general, neighbours)
    }

    fn nh(id: u32) -> Nexthop {
        Nexthop::new(id, IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)))
    }

    fn fib() -> FibReader {
        let (mut writer, reader) = table::new(FibConfig {
            lpm4: Lpm4Config { tbl8_groups: 16 },
            lpm6: Lpm6Config { groups: 16 },
            grace: Duration::from_millis(1),
            ..FibConfig::default()
        });
        let policy = |algorithm, fields, hash, symmetric| {
            Some(GroupPolicy {
                algorithm,
                fields: FieldSelection::new(fields).symmetric(symmetric),
                hash,
                ..GroupPolicy::default()
            })
        };
        let route = |prefix: &str, ids: &[u32], policy| FibUpdate::SetRoute {
            prefix: prefix.parse::<Prefix>().unwrap(),
            nexthops: ids.iter().map(|&i| nh(i)).collect(),
            policy,
        };
        writer
            .apply(
                &[
                    route("198.51.100.0/24", &[1, 2, 3, 4], None),
                    route(
                        "203.0.113.0/25",
                        &[1, 2, 3],
                        policy(
                            Algorithm::ModuloN,
                            HashFields::L4,
                            HashFunction::Xxh3,
                            false,
                        ),
                    ),
                    route("203.0.113.128/25", &[9], None),
                    route("2001:db8:1::/48", &[1, 2, 3, 4], None),
                    route(
                        "2001:db8:2::/48",
                        &[1, 2, 3],
                        policy(
                            Algorithm::ModuloN,
                            HashFields::L4,
                            HashFunction::Xxh3,
                            false,
                        ),
                    ),
                    route(
                        "2001:db8:3::/48",
                        &[2, 4],
                        policy(
                            Algorithm::Resilient,
                            HashFields::L3,
                            HashFunction::Crc32,
                            true,
                        ),
                    ),
                    route("2001:db8:4::/48", &[9], None),
                    route(
                        "100.64.0.0/10",
                        &[2, 4],
                        policy(
                            Algorithm::Resilient,
                            HashFields::L3,
                            HashFunction::Crc32,
                            true,
                        ),
                    ),
                ],
                0,
            )
            .unwrap();
        reader
    }

    /// An Ethernet/IPv4 frame with a TCP or UDP header (or not), then
    /// mutated: the fields the fast path checks take values on both sides
    /// of each of its conditions.
    fn frame() -> impl Strategy<Value = (u32, Vec<u8>)> {
        let dst = prop_oneof![
            4 => any::<u8>().prop_map(|h| Ipv4Addr::new(198, 51, 100, h)),
            4 => any::<u8>().prop_map(|h| Ipv4Addr::new(203, 0, 113, h)),
            4 => any::<u32>().prop_map(|x| Ipv4Addr::from(0x6440_0000 | (x & 0x003f_ffff))),
            1 => Just(ROUTER),
            1 => Just(Ipv4Addr::new(10, 0, 0, 101)),
            1 => Just(Ipv4Addr::new(224, 0, 0, 5)),
            1 => Just(Ipv4Addr::BROADCAST),
            1 => any::<u32>().prop_map(Ipv4Addr::from),
        ];
        (
            dst,
            any::<u32>(),
            any::<[u16; 2]>(),
            prop_oneof![4 => Just(6u8), 4 => Just(17u8), 1 => Just(1u8), 1 => any::<u8>()],
            prop_oneof![8 => Just(64u8), 1 => Just(1u8), 1 => Just(0u8), 1 => any::<u8>()],
            prop_oneof![4 => Just(0u16), 1 => Just(0x4000u16), 1 => any::<u16>()],
            prop_oneof![8 => Just(0x45u8), 1 => Just(0x46u8), 1 => any::<u8>()],
            prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
            (
                any::<u8>(),
                prop_oneof![8 => Just(0usize), 1 => Just(1), 1 => Just(2)],
                0usize..5,
            ),
            prop_oneof![8 => Just(0x50u8), 1 => any::<u8>()],
            prop_oneof![
                4 => Just(Vec::new()),
                1 => prop::collection::vec((0usize..80, any::<u8>()), 1..2),
            ],
            0usize..100,
        )
            .prop_map(
                |(
                    dst,
                    src,
                    ports,
                    proto,
                    ttl,
                    flags,
                    ver_ihl,
                    mac_kind,
                    (len_delta, len_kind, port),
                    tcp_off,
                    flips,
                    cut,
                )| {
                    let l4_len: usize = if proto == 17 { 8 } else { 20 };
                    let payload = 6;
                    let mut f = Vec::new();
                    f.extend_from_slice(&match mac_kind {
                        0 => mac(port as u32),
                        1 => [0xff; 6],
                        _ => [0x02, 0x99, 0, 0, 0, 0],
                    });
                    f.extend_from_slice(&[0x02, 0xcc, 0, 0, 0, 1, 0x08, 0x00]);
                    let total = 20 + l4_len + payload;
                    let total = match len_kind {
                        0 => total,
                        1 => total.saturating_sub(usize::from(len_delta % 40)),
                        _ => total + usize::from(len_delta % 8),
                    };
                    let mut ip = [0u8; 20];
                    ip[0] = ver_ihl;
                    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                    ip[6..8].copy_from_slice(&flags.to_be_bytes());
                    ip[8] = ttl;
                    ip[9] = proto;
                    ip[12..16].copy_from_slice(&src.to_be_bytes());
                    ip[16..20].copy_from_slice(&dst.octets());
                    let c = internet_checksum(&ip);
                    ip[10..12].copy_from_slice(&c.to_be_bytes());
                    f.extend_from_slice(&ip);
                    let mut l4 = vec![0u8; l4_len + payload];
                    l4[0..2].copy_from_slice(&ports[0].to_be_bytes());
                    l4[2..4].copy_from_slice(&ports[1].to_be_bytes());
                    if l4_len == 20 {
                        l4[12] = tcp_off;
                    }
                    f.extend_from_slice(&l4);
                    f.extend_from_slice(&[0; 4]); // FCS
                    for (at, byte) in flips {
                        if let Some(b) = f.get_mut(at) {
                            *b = byte;
                        }
                    }
                    if cut < 15 {
                        f.truncate(f.len().saturating_sub(cut * 4));
                    }
                    (port as u32, f)
                },
            )
    }

    /// An Ethernet/IPv6 frame with a TCP or UDP header (or not), then
    /// mutated like [`frame`]'s: MACs, version, hop limit, next header
    /// (extension headers included), payload length, TCP data offset,
    /// own, link-local and multicast destinations, flipped bytes, truncation.
    fn frame6() -> impl Strategy<Value = (u32, Vec<u8>)> {
        let net = |n: u16| {
            any::<u64>().prop_map(move |h| {
                Ipv6Addr::from(
                    (u128::from(0x2001_0db8_u32) << 96) | (u128::from(n) << 80) | u128::from(h),
                )
            })
        };
        let dst = prop_oneof![
            4 => net(1),
            4 => net(2),
            4 => net(3),
            2 => net(4),
            1 => Just(ROUTER6),
            1 => Just(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            1 => Just(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
            1 => any::<u128>().prop_map(Ipv6Addr::from),
        ];
        (
            dst,
            any::<u128>(),
            any::<[u16; 2]>(),
            prop_oneof![4 => Just(6u8), 4 => Just(17u8), 1 => Just(58u8), 1 => Just(0u8), 1 => Just(44u8), 1 => any::<u8>()],
            prop_oneof![8 => Just(64u8), 1 => Just(1u8), 1 => Just(0u8), 1 => any::<u8>()],
            (prop_oneof![8 => Just(0x6u8), 1 => any::<u8>()], any::<u32>()),
            prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
            (
                any::<u8>(),
                prop_oneof![8 => Just(0usize), 1 => Just(1), 1 => Just(2)],
                0usize..5,
            ),
            prop_oneof![8 => Just(0x50u8), 1 => any::<u8>()],
            prop_oneof![
                4 => Just(Vec::new()),
                1 => prop::collection::vec((0usize..100, any::<u8>()), 1..2),
            ],
            0usize..100,
        )
            .prop_map(
                |(
                    dst,
                    src,
                    ports,
                    proto,
                    hop_limit,
                    (version, label),
                    mac_kind,
                    (len_delta, len_kind, port),
                    tcp_off,
                    flips,
                    cut,
                )| {
                    let l4_len: usize = if proto == 17 { 8 } else { 20 };
                    let payload = 6;
                    let mut f = Vec::new();
                    f.extend_from_slice(&match mac_kind {
                        0 => mac(port as u32),
                        1 => [0x33, 0x33, 0, 0, 0, 1],
                        _ => [0x02, 0x99, 0, 0, 0, 0],
                    });
                    f.extend_from_slice(&[0x02, 0xcc, 0, 0, 0, 1, 0x86, 0xdd]);
                    let len = l4_len + payload;
                    let len = match len_kind {
                        0 => len,
                        1 => len.saturating_sub(usize::from(len_delta % 30)),
                        _ => len + usize::from(len_delta % 8),
                    };
                    let mut ip = [0u8; 40];
                    ip[0..4].copy_from_slice(&label.to_be_bytes());
                    ip[0] = (version << 4) | (ip[0] & 0x0f);
                    ip[4..6].copy_from_slice(&(len as u16).to_be_bytes());
                    ip[6] = proto;
                    ip[7] = hop_limit;
                    ip[8..24].copy_from_slice(&src.to_be_bytes());
                    ip[24..40].copy_from_slice(&dst.octets());
                    f.extend_from_slice(&ip);
                    let mut l4 = vec![0u8; l4_len + payload];
                    l4[0..2].copy_from_slice(&ports[0].to_be_bytes());
                    l4[2..4].copy_from_slice(&ports[1].to_be_bytes());
                    if l4_len == 20 {
                        l4[12] = tcp_off;
                    }
                    f.extend_from_slice(&l4);
                    f.extend_from_slice(&[0; 4]); // FCS
                    for (at, byte) in flips {
                        if let Some(b) = f.get_mut(at) {
                            *b = byte;
                        }
                    }
                    if cut < 15 {
                        f.truncate(f.len().saturating_sub(cut * 4));
                    }
                    (port as u32, f)
                },
            )
    }

    /// Dispositions, transmitted (port, frame)s, control packets.
    type Outcome = (Vec<Disposition>, Vec<(u32, Vec<u8>)>, Vec<ControlPacket>);

    fn run(p: &mut Pipeline, frames: &[(u32, Vec<u8>)], tx_slots: usize, now: Nanos) -> Outcome {
        let mut rx = PacketBatch::new(frames.len().max(1), 256);
        for (port, f) in frames {
            assert!(rx.push(*port, f));
        }
        let mut tx = PacketBatch::new(tx_slots, 256);
        let mut control = Vec::new();
        p.process(&mut rx, &mut tx, &mut control, now);
        let sent = tx.iter().map(|b| (b.port(), b.frame().to_vec())).collect();
        (p.dispositions().to_vec(), sent, control)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn the_fast_path_forwards_exactly_as_the_general_path(
            batches in prop::collection::vec(
                prop::collection::vec(prop_oneof![frame(), frame6()], 1..40),
                1..4,
            ),
            tx_slots in prop_oneof![Just(64usize), 1usize..40],
            track in any::<bool>(),
            drop_neighbour in any::<bool>(),
        ) {
            let (mut fast, mut general, neighbours) = pipelines(track);
            for (i, batch) in batches.iter().enumerate() {
                if drop_neighbour && i == 1 {
                    neighbours.remove(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
                }
                let now = NANOS_PER_SEC * (i as u64 + 1);
                let a = run(&mut fast, batch, tx_slots, now);
                let b = run(&mut general, batch, tx_slots, now);
                prop_assert_eq!(a, b);
                prop_assert_eq!(fast.counters(), general.counters());
            }
            prop_assert_eq!(
                fast.tracker().map(|t| t.stats()),
                general.tracker().map(|t| t.stats())
            );
        }
    }

    #[test]
    fn counters_count_per_group_and_member_and_merge() {
        let mut counters = Counters::default();
        for round in 0..2u64 {
            let mut other = Counters::default();
            for g in (0..40u32).rev() {
                for m in 0..3u32 {
                    other.add_hits(g, 10 - m, u64::from(m + 1));
                }
            }
            counters.merge(&other);
            for g in 0..40u32 {
                assert_eq!(counters.group_packets(g), 6 * (round + 1));
                for m in 0..3u32 {
                    assert_eq!(
                        counters.member_packets(g, 10 - m),
                        u64::from(m + 1) * (round + 1)
                    );
                }
                assert_eq!(counters.member_packets(g, 4), 0);
            }
        }
        assert_eq!(counters.groups().count(), 40);
        assert_eq!(counters.members().count(), 120);
        assert_eq!(counters.group_packets(40), 0);
        let mut once = Counters::default();
        once.add_hits(3, 1, 2);
        let mut twice = Counters::default();
        twice.add_hits(3, 1, 1);
        twice.add_hits(3, 1, 1);
        assert_eq!(once, twice);
    }

    #[test]
    fn common_frames_take_the_fast_path() {
        let (mut fast, _, _) = pipelines(false);
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(&mac(0));
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[30..34].copy_from_slice(&[198, 51, 100, 7]);
        f[46] = 0x50;
        let mut rx = PacketBatch::new(4, 256);
        rx.push(0, &f);
        fast.worker.classify(&fast.fib.snapshot(), &rx);
        assert!(fast.worker.fast[0].is_some());
        // A VLAN tag, or IPv4 options, send it down the general path.
        f[14] = 0x46;
        let mut rx = PacketBatch::new(4, 256);
        rx.push(0, &f);
        fast.worker.classify(&fast.fib.snapshot(), &rx);
        assert!(fast.worker.fast[0].is_none());

        // IPv6 and TCP, to a routed destination: fast; with a hop-by-hop
        // header, or to the router's own address, general.
        let mut f = vec![0u8; 78];
        f[..6].copy_from_slice(&mac(0));
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&20u16.to_be_bytes());
        f[20] = 6;
        f[21] = 64;
        f[38..54].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7).octets());
        f[66] = 0x50;
        let mut rx = PacketBatch::new(4, 256);
        rx.push(0, &f);
        fast.worker.classify(&fast.fib.snapshot(), &rx);
        assert!(matches!(fast.worker.fast[0], Some(Fast::V6(_))));
        let mut tx = PacketBatch::new(4, 256);
        fast.process(&mut rx, &mut tx, &mut Vec::new(), 1);
        assert!(matches!(fast.dispositions(), [Disposition::Forward { .. }]));
        assert_eq!(tx.iter().next().map(|b| b.frame()[21]), Some(63));
        let mut g = f.clone();
        g[20] = 0;
        let mut h = f.clone();
        h[38..54].copy_from_slice(&ROUTER6.octets());
        let mut rx = PacketBatch::new(4, 256);
        rx.push(0, &g);
        rx.push(0, &h);
        fast.worker.classify(&fast.fib.snapshot(), &rx);
        assert!(fast.worker.fast.iter().all(Option::is_none));
    }
}
