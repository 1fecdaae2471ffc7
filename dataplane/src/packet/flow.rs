//! [`parse_flow`]: one Ethernet frame to a [`ParsedPacket`] carrying the
//! `hashing::FlowKey`, or a [`DropReason`], following Linux's rules for which
//! fields of fragments and ICMP errors feed the multipath hash.

use std::net::IpAddr;

use hashing::FlowKey;

use super::error::DropReason;
use super::ethernet::{
    ArpPacket, EthernetFrame, VlanHeader, VlanTag, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    ETHERTYPE_VLAN,
};
use super::ip::{
    walk_ipv6_extensions, Ipv4Packet, Ipv6Packet, PROTO_DCCP, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP,
    PROTO_TCP, PROTO_UDP, PROTO_UDPLITE,
};
use super::l4::{IcmpPacket, SctpHeader, TcpHeader, UdpHeader};

/// The most VLAN tags (802.1Q, or QinQ) a frame may carry.
pub const MAX_VLAN_TAGS: usize = 2;
/// The most IPv6 extension headers walked before the packet is dropped.
pub const MAX_IPV6_EXTENSIONS: usize = 8;

/// How [`parse_flow`] builds flow keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ParseOptions {
    /// Copied into [`FlowKey::ingress_port`].
    pub ingress_port: u32,
    /// Build the key of an ICMP / ICMPv6 error from the packet embedded in it,
    /// so the error follows the path of the flow that caused it.
    pub icmp_errors_use_inner: bool,
}

/// The IP version of a parsed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    V4,
    V6,
}

/// What [`parse_flow`] learned about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedPacket {
    /// VLAN tags, outermost first; `None` past the last one.
    pub vlans: [Option<VlanTag>; MAX_VLAN_TAGS],
    /// Offset of the IP header within the frame.
    pub l3_offset: usize,
    /// The EtherType after any VLAN tags.
    pub ethertype: u16,
    /// IPv4 or IPv6.
    pub ip_version: IpVersion,
    /// The flow key (see [`parse_flow`] for the rules).
    pub key: FlowKey,
    /// An IPv4 fragment (MF or offset) or an IPv6 packet with a fragment
    /// header; its key has ports 0.
    pub fragment: bool,
    /// The packet is an ICMP or ICMPv6 error message.
    pub icmp_error: bool,
    /// The key was built from the packet embedded in an ICMP error.
    pub key_from_inner: bool,
    /// IPv4 TTL or IPv6 hop limit, as received.
    pub ttl: u8,
    /// IPv4 total length, or 40 + IPv6 payload length.
    pub l3_len: usize,
}

impl ParsedPacket {
    /// The number of VLAN tags.
    pub fn vlan_count(&self) -> usize {
        self.vlans.iter().filter(|t| t.is_some()).count()
    }
}

/// Parses an Ethernet frame (up to [`MAX_VLAN_TAGS`] tags) carrying IPv4 or
/// IPv6 into a [`ParsedPacket`]; never panics and never allocates.
///
/// Key rules, following Linux:
/// - TCP, UDP, UDP-Lite, SCTP and DCCP contribute ports; other protocols
///   (ICMP echo included: Linux never uses ICMP ids as ports), ESP and
///   no-next-header have ports 0.
/// - Fragments, first or not, have ports 0: IPv4 packets with MF set or a
///   nonzero offset, IPv6 packets with a fragment header.
/// - IPv6 extension headers (hop-by-hop, routing, fragment, destination
///   options, AH) are walked to the upper layer, whose number is the key's
///   protocol; more than [`MAX_IPV6_EXTENSIONS`] is a drop.
/// - With [`ParseOptions::icmp_errors_use_inner`], an ICMPv4 error (types 3,
///   4, 5, 11, 12; not in a non-first fragment) or ICMPv6 error (types 1-4)
///   is keyed on the embedded packet: its source and destination as they
///   appear there (Linux's `ip_multipath_l3_keys` / `ip6_multipath_l3_keys`
///   take the inner saddr/daddr as-is, not swapped), its protocol, IPv6 flow
///   label, and its ports when the embedded packet is not a fragment and at
///   least 4 bytes of its transport header are present. So the key equals
///   that of the offending packet. If the embedded header is missing or
///   malformed the outer key is used, as Linux does.
///
/// Errors: a well-formed ARP packet yields [`DropReason::ControlArp`], any
/// other non-IP EtherType [`DropReason::NotIp`]; malformed or truncated
/// headers yield the matching reason.
pub fn parse_flow(frame: &[u8], opts: &ParseOptions) -> Result<ParsedPacket, DropReason> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut rest = eth.payload();
    let mut vlans = [None; MAX_VLAN_TAGS];
    let mut count = 0usize;
    while ETHERTYPE_VLAN.contains(&ethertype) {
        let slot = vlans.get_mut(count).ok_or(DropReason::TooManyVlanTags)?;
        let tag = VlanHeader::new_checked(rest)?;
        *slot = Some(VlanTag {
            tpid: ethertype,
            tci: tag.tci(),
        });
        count += 1;
        ethertype = tag.ethertype();
        rest = rest.get(VlanHeader::<&[u8]>::LEN..).unwrap_or_default();
    }
    let l3_offset = frame.len() - rest.len();
    let l3 = match ethertype {
        ETHERTYPE_IPV4 => ipv4(rest, opts)?,
        ETHERTYPE_IPV6 => ipv6(rest, opts)?,
        ETHERTYPE_ARP => {
            ArpPacket::new_checked(rest)?;
            return Err(DropReason::ControlArp);
        }
        _ => return Err(DropReason::NotIp),
    };
    Ok(ParsedPacket {
        vlans,
        l3_offset,
        ethertype,
        ip_version: l3.version,
        key: l3.key,
        fragment: l3.fragment,
        icmp_error: l3.icmp_error,
        key_from_inner: l3.key_from_inner,
        ttl: l3.ttl,
        l3_len: l3.len,
    })
}

struct L3 {
    version: IpVersion,
    key: FlowKey,
    fragment: bool,
    icmp_error: bool,
    key_from_inner: bool,
    ttl: u8,
    len: usize,
}

fn key(src: IpAddr, dst: IpAddr, proto: u8, flow_label: u32, ingress_port: u32) -> FlowKey {
    FlowKey {
        src,
        dst,
        proto,
        src_port: 0,
        dst_port: 0,
        flow_label,
        ingress_port,
    }
}

fn has_ports(proto: u8) -> bool {
    matches!(
        proto,
        PROTO_TCP | PROTO_UDP | PROTO_UDPLITE | PROTO_SCTP | PROTO_DCCP
    )
}

/// Ports of a complete transport header; truncation is a drop.
fn ports(proto: u8, l4: &[u8]) -> Result<(u16, u16), DropReason> {
    Ok(match proto {
        PROTO_TCP => {
            let h = TcpHeader::new_checked(l4)?;
            (h.src_port(), h.dst_port())
        }
        PROTO_UDP | PROTO_UDPLITE => {
            let h = UdpHeader::new_checked(l4)?;
            (h.src_port(), h.dst_port())
        }
        // SCTP's common header is 12 bytes; DCCP's generic header at least 12.
        PROTO_SCTP | PROTO_DCCP => {
            let h = SctpHeader::new_checked(l4)?;
            (h.src_port(), h.dst_port())
        }
        _ => (0, 0),
    })
}

/// Ports from the (possibly cut short) transport header embedded in an ICMP
/// error: only the first 4 bytes are needed.
fn embedded_ports(proto: u8, l4: &[u8]) -> (u16, u16) {
    match l4 {
        [a, b, c, d, ..] if has_ports(proto) => {
            (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
        }
        _ => (0, 0),
    }
}

fn ipv4(l3: &[u8], opts: &ParseOptions) -> Result<L3, DropReason> {
    let ip = Ipv4Packet::new_checked(l3)?;
    let fragment = ip.is_fragment();
    let proto = ip.protocol();
    let mut out = L3 {
        version: IpVersion::V4,
        key: key(
            ip.src_addr().into(),
            ip.dst_addr().into(),
            proto,
            0,
            opts.ingress_port,
        ),
        fragment,
        icmp_error: false,
        key_from_inner: false,
        ttl: ip.ttl(),
        len: usize::from(ip.total_len()),
    };
    if ip.frag_offset() != 0 {
        // A later fragment: the payload is not a transport header.
        return Ok(out);
    }
    if proto == PROTO_ICMP {
        let icmp = IcmpPacket::new_checked(ip.payload())?;
        if icmp.is_error_v4() {
            out.icmp_error = true;
            if opts.icmp_errors_use_inner {
                if let Some(inner) = embedded_v4_key(icmp.payload(), opts.ingress_port) {
                    out.key = inner;
                    out.key_from_inner = true;
                }
            }
        }
    } else if !fragment {
        let (src_port, dst_port) = ports(proto, ip.payload())?;
        out.key.src_port = src_port;
        out.key.dst_port = dst_port;
    }
    Ok(out)
}

fn embedded_v4_key(bytes: &[u8], ingress_port: u32) -> Option<FlowKey> {
    let ip = Ipv4Packet::new_checked_header(bytes).ok()?;
    let proto = ip.protocol();
    let mut k = key(
        ip.src_addr().into(),
        ip.dst_addr().into(),
        proto,
        0,
        ingress_port,
    );
    if !ip.is_fragment() {
        (k.src_port, k.dst_port) = embedded_ports(proto, ip.payload());
    }
    Some(k)
}

fn ipv6(l3: &[u8], opts: &ParseOptions) -> Result<L3, DropReason> {
    let ip = Ipv6Packet::new_checked(l3)?;
    let upper = ip.upper(MAX_IPV6_EXTENSIONS)?;
    let mut out = L3 {
        version: IpVersion::V6,
        key: key(
            ip.src_addr().into(),
            ip.dst_addr().into(),
            upper.proto,
            ip.flow_label(),
            opts.ingress_port,
        ),
        fragment: upper.fragment,
        icmp_error: false,
        key_from_inner: false,
        ttl: ip.hop_limit(),
        len: Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len()),
    };
    if upper.later_fragment {
        return Ok(out);
    }
    let l4 = ip.payload().get(upper.offset..).unwrap_or_default();
    if upper.proto == PROTO_ICMPV6 {
        let icmp = IcmpPacket::new_checked(l4)?;
        if icmp.is_error_v6() {
            out.icmp_error = true;
            if opts.icmp_errors_use_inner {
                if let Some(inner) = embedded_v6_key(icmp.payload(), opts.ingress_port) {
                    out.key = inner;
                    out.key_from_inner = true;
                }
            }
        }
    } else if !upper.fragment {
        let (src_port, dst_port) = ports(upper.proto, l4)?;
        out.key.src_port = src_port;
        out.key.dst_port = dst_port;
    }
    Ok(out)
}

fn embedded_v6_key(bytes: &[u8], ingress_port: u32) -> Option<FlowKey> {
    let ip = Ipv6Packet::new_checked_header(bytes).ok()?;
    let mut k = key(
        ip.src_addr().into(),
        ip.dst_addr().into(),
        ip.next_header(),
        ip.flow_label(),
        ingress_port,
    );
    // The embedded copy may be cut inside its extension headers; then the
    // key keeps the first next header and no ports.
    if let Ok(upper) = walk_ipv6_extensions(ip.next_header(), ip.payload(), MAX_IPV6_EXTENSIONS) {
        k.proto = upper.proto;
        if !upper.fragment {
            let l4 = ip.payload().get(upper.offset..).unwrap_or_default();
            (k.src_port, k.dst_port) = embedded_ports(upper.proto, l4);
        }
    }
    Some(k)
}
