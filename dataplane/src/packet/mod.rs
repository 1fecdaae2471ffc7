//! The data plane's packet layer: zero-copy views over byte buffers (smoltcp
//! style) and [`parse_flow`], which turns one Ethernet frame into a flow key or
//! a counted [`DropReason`].
//!
//! Every view (`EthernetFrame`, `Ipv4Packet`, `Ipv6Packet`, ...) wraps a
//! buffer `T: AsRef<[u8]>` and has a `new_checked` constructor that validates
//! the buffer's length and the header fields that bound later accessors, once;
//! after a successful `new_checked` no accessor can panic. Byte ranges live in
//! a private `field` module per view. Nothing here allocates or panics on
//! truncated, malformed or hostile input.

mod error;
mod ethernet;
mod flow;
mod ip;
mod l4;

pub use error::{DropCounters, DropReason, ParseError};
pub use ethernet::{
    ArpPacket, EthernetFrame, VlanHeader, VlanTag, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    ETHERTYPE_VLAN,
};
pub use flow::{
    parse_flow, IpVersion, ParseOptions, ParsedPacket, MAX_IPV6_EXTENSIONS, MAX_VLAN_TAGS,
};
pub use ip::{
    internet_checksum, ipv4_decrement_ttl, walk_ipv6_extensions, Ipv4Packet, Ipv6Packet, Ipv6Upper,
    PROTO_AH, PROTO_DCCP, PROTO_DSTOPTS, PROTO_ESP, PROTO_FRAGMENT, PROTO_HOPOPTS, PROTO_ICMP,
    PROTO_ICMPV6, PROTO_NONE, PROTO_ROUTING, PROTO_SCTP, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE,
};
pub use l4::{IcmpPacket, SctpHeader, TcpHeader, UdpHeader};

/// Reads a big-endian u16 at `at`; callers guarantee `at + 2 <= bytes.len()`.
#[inline]
fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}
