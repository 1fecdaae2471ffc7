//! The per-worker forwarding pipeline: parse, LPM, nexthop group, selector,
//! neighbour, rewrite, one FIB snapshot per batch, with the control path (ARP,
//! local, multicast, ICMP errors under a token bucket) and mergeable counters.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashing::{FieldSelection, FlowHasher, FlowKey, HashFields, HashFunction, MemberId, Nanos};

use crate::fib::table::{FibReader, FibSnapshot};
use crate::io::PacketBatch;
use crate::neigh::{Neighbour, NeighbourTable};
use crate::packet::{
    parse_flow, DropCounters, DropReason, EthernetFrame, IpVersion, Ipv4Packet, Ipv6Packet,
    ParseOptions, ParsedPacket,
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
    /// Forwarded packets per group (ahash: updated every batch).
    pub groups: HashMap<GroupId, u64, ahash::RandomState>,
    /// Forwarded packets per (group, member).
    pub members: HashMap<(GroupId, MemberId), u64, ahash::RandomState>,
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
        for (&g, &n) in &other.groups {
            *self.groups.entry(g).or_insert(0) += n;
        }
        for (&k, &n) in &other.members {
            *self.members.entry(k).or_insert(0) += n;
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
}

/// One worker's pipeline: everything but the FIB reader, so a batch's
/// snapshot can borrow the reader while the rest is mutated.
struct Worker {
    ports: Vec<PortConfig>,
    own: Vec<IpAddr>,
    parse: ParseOptions,
    neighbours: Arc<dyn NeighbourTable>,
    tracker: Option<FlowTracker>,
    fingerprinter: Fingerprinter,
    limiter: TokenBucket,
    counters: Counters,
    dispositions: Vec<Disposition>,
    /// Neighbours resolved in the current batch: the table is read once per
    /// distinct nexthop per batch, not once per packet.
    batch_neighbours: Vec<(IpAddr, Option<Neighbour>)>,
    /// Forwarded packets per (group, member) in the current batch, folded
    /// into the counters' maps once at the end of the batch.
    batch_hits: Vec<(GroupId, MemberId, u64)>,
}

impl Worker {
    /// The neighbour of `addr`, from this batch's cache or the table; a miss
    /// asks for resolution once per batch.
    #[inline]
    fn neighbour(&mut self, addr: IpAddr) -> Option<Neighbour> {
        if let Some(&(_, n)) = self.batch_neighbours.iter().find(|(a, _)| *a == addr) {
            return n;
        }
        let n = self.neighbours.resolve(addr);
        if n.is_none() {
            self.neighbours.request(addr);
        }
        self.batch_neighbours.push((addr, n));
        n
    }

    #[inline]
    fn count_hit(&mut self, group: GroupId, member: MemberId) {
        match self
            .batch_hits
            .iter_mut()
            .find(|(g, m, _)| *g == group && *m == member)
        {
            Some(hit) => hit.2 += 1,
            None => self.batch_hits.push((group, member, 1)),
        }
    }

    /// Folds this batch's per-group and per-member hits into the counters.
    fn end_batch(&mut self) {
        for (g, m, n) in self.batch_hits.drain(..) {
            *self.counters.groups.entry(g).or_insert(0) += n;
            *self.counters.members.entry((g, m)).or_insert(0) += n;
        }
        self.batch_neighbours.clear();
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
        let own = config
            .ports
            .iter()
            .flat_map(|p| p.addrs.iter().copied())
            .collect();
        let counters = Counters {
            ports: vec![PortCounters::default(); config.ports.len()],
            ..Counters::default()
        };
        Ok(Pipeline {
            fib,
            worker: Worker {
                ports: config.ports,
                own,
                parse: config.parse,
                neighbours,
                tracker,
                fingerprinter: Fingerprinter::default(),
                limiter: TokenBucket::new(config.icmp.rate_pps, config.icmp.burst),
                counters,
                dispositions: Vec::with_capacity(crate::io::DEFAULT_BATCH_SIZE),
                batch_neighbours: Vec::with_capacity(crate::io::DEFAULT_BATCH_SIZE),
                batch_hits: Vec::with_capacity(crate::io::DEFAULT_BATCH_SIZE),
            },
        })
    }

    /// Processes every frame of `rx` (which is cleared): forwarded frames are
    /// appended to `tx` (by buffer exchange, no copy), control frames copied
    /// to `control`, ICMP errors (rate limited) appended to `tx` on the
    /// ingress port. One FIB snapshot serves the whole batch.
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
        for i in 0..rx.len() {
            let d = w.packet(&snapshot, rx, i, tx, control, now);
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
