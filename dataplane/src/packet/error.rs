//! Why a packet was dropped: a small `Copy` enum with stable kebab-case names,
//! and allocation-free per-reason counters for workers.

use serde::Serialize;

/// Why the data plane dropped (or did not forward as IP) a frame.
///
/// The same type is the error of every view's `new_checked`; [`ParseError`]
/// is an alias. Names from [`DropReason::as_str`] are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, thiserror::Error)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// The frame ends inside the 14-byte Ethernet header.
    #[error("the frame ends inside the Ethernet header")]
    TruncatedEthernet,
    /// The frame ends inside an 802.1Q / 802.1ad tag.
    #[error("the frame ends inside a VLAN tag")]
    TruncatedVlan,
    /// More than two stacked VLAN tags.
    #[error("the frame carries more than two VLAN tags")]
    TooManyVlanTags,
    /// The frame carries neither IP nor ARP.
    #[error("the frame carries neither IPv4, IPv6 nor ARP")]
    NotIp,
    /// A well-formed ARP packet: control traffic, not forwarded as IP.
    #[error("the frame is an ARP packet, handled by the control path")]
    ControlArp,
    /// The frame ends inside the ARP packet.
    #[error("the frame ends inside the ARP packet")]
    TruncatedArp,
    /// The frame ends inside the IPv4 header or before its total length.
    #[error("the frame ends inside the IPv4 packet")]
    TruncatedIpv4,
    /// The IPv4 version nibble is not 4.
    #[error("the IPv4 version field is not 4")]
    BadIpv4Version,
    /// IHL is below 5.
    #[error("the IPv4 header length is below 20 bytes")]
    BadIpv4HeaderLength,
    /// The IPv4 total length is shorter than the header.
    #[error("the IPv4 total length is shorter than its header")]
    BadIpv4TotalLength,
    /// The frame ends inside the IPv6 header or before its payload length.
    #[error("the frame ends inside the IPv6 packet")]
    TruncatedIpv6,
    /// The IPv6 version nibble is not 6.
    #[error("the IPv6 version field is not 6")]
    BadIpv6Version,
    /// An IPv6 extension header runs past the end of the payload.
    #[error("an IPv6 extension header runs past the payload")]
    TruncatedIpv6Extension,
    /// More than [`MAX_IPV6_EXTENSIONS`](super::MAX_IPV6_EXTENSIONS) extension headers.
    #[error("the IPv6 extension header chain is too long")]
    Ipv6ExtensionChainTooLong,
    /// The packet ends before the transport header (ports, ICMP type).
    #[error("the packet ends inside the transport header")]
    TruncatedL4,
    /// The TCP data offset is below 5 or past the end of the segment.
    #[error("the TCP data offset is invalid")]
    BadTcpHeaderLength,
    /// The IPv4 TTL would reach zero on forwarding.
    #[error("the IPv4 TTL is exhausted")]
    TtlExceeded,
    /// The IPv6 hop limit would reach zero on forwarding.
    #[error("the IPv6 hop limit is exhausted")]
    HopLimitExceeded,
}

/// The error of every view's `new_checked`.
pub type ParseError = DropReason;

impl DropReason {
    /// Every reason, in counter-index order.
    pub const ALL: [DropReason; 18] = [
        DropReason::TruncatedEthernet,
        DropReason::TruncatedVlan,
        DropReason::TooManyVlanTags,
        DropReason::NotIp,
        DropReason::ControlArp,
        DropReason::TruncatedArp,
        DropReason::TruncatedIpv4,
        DropReason::BadIpv4Version,
        DropReason::BadIpv4HeaderLength,
        DropReason::BadIpv4TotalLength,
        DropReason::TruncatedIpv6,
        DropReason::BadIpv6Version,
        DropReason::TruncatedIpv6Extension,
        DropReason::Ipv6ExtensionChainTooLong,
        DropReason::TruncatedL4,
        DropReason::BadTcpHeaderLength,
        DropReason::TtlExceeded,
        DropReason::HopLimitExceeded,
    ];

    /// The number of reasons, the length of a [`DropCounters`] array.
    pub const COUNT: usize = DropReason::ALL.len();

    /// The reason's stable kebab-case name, e.g. `truncated-ipv4`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::TruncatedEthernet => "truncated-ethernet",
            DropReason::TruncatedVlan => "truncated-vlan",
            DropReason::TooManyVlanTags => "too-many-vlan-tags",
            DropReason::NotIp => "not-ip",
            DropReason::ControlArp => "control-arp",
            DropReason::TruncatedArp => "truncated-arp",
            DropReason::TruncatedIpv4 => "truncated-ipv4",
            DropReason::BadIpv4Version => "bad-ipv4-version",
            DropReason::BadIpv4HeaderLength => "bad-ipv4-header-length",
            DropReason::BadIpv4TotalLength => "bad-ipv4-total-length",
            DropReason::TruncatedIpv6 => "truncated-ipv6",
            DropReason::BadIpv6Version => "bad-ipv6-version",
            DropReason::TruncatedIpv6Extension => "truncated-ipv6-extension",
            DropReason::Ipv6ExtensionChainTooLong => "ipv6-extension-chain-too-long",
            DropReason::TruncatedL4 => "truncated-l4",
            DropReason::BadTcpHeaderLength => "bad-tcp-header-length",
            DropReason::TtlExceeded => "ttl-exceeded",
            DropReason::HopLimitExceeded => "hop-limit-exceeded",
        }
    }

    /// The reason's index into [`DropCounters`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Per-reason drop counters: a fixed array, no allocation, one per worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters {
            counts: [0; DropReason::COUNT],
        }
    }
}

impl DropCounters {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one drop for `reason`.
    #[inline]
    pub fn record(&mut self, reason: DropReason) {
        let slot = &mut self.counts[reason.index()];
        *slot = slot.saturating_add(1);
    }

    /// The number of drops counted for `reason`.
    pub fn count(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    /// The sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// Adds another worker's counters into these.
    pub fn merge(&mut self, other: &DropCounters) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// Every reason with its count (zeros included), in index order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.count(r)))
    }
}
