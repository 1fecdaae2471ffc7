//! Parsing one captured frame (link header, IPv4 or IPv6 with extension
//! headers, transport ports) into a [`FlowKey`]; a malformed frame yields a
//! [`SkipReason`], never a panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashing::FlowKey;
use serde::Serialize;

/// A link-layer header type this parser understands (tcpdump's LINKTYPE_
/// values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): BSD loopback, a 4-byte address family in the
    /// byte order of the capturing host.
    Null,
    /// LINKTYPE_ETHERNET (1), with any number (up to 8) of 802.1Q, 802.1ad or
    /// QinQ tags.
    Ethernet,
    /// LINKTYPE_RAW (101; also DLT_RAW 12 and 14): raw IPv4 or IPv6, told
    /// apart by the version nibble.
    Raw,
    /// LINKTYPE_LOOP (108): OpenBSD loopback, the address family in network
    /// byte order.
    Loop,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1.
    LinuxSll,
    /// LINKTYPE_IPV4 (228): raw IPv4.
    Ipv4,
    /// LINKTYPE_IPV6 (229): raw IPv6.
    Ipv6,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
}

impl LinkType {
    /// The link type for a LINKTYPE_ value, or `None` if it is not supported.
    pub fn from_code(code: u32) -> Option<LinkType> {
        Some(match code {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The LINKTYPE_ value of this link type.
    pub fn code(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
        }
    }
}

/// Why a captured packet did not become part of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// The frame has no bytes.
    EmptyFrame,
    /// The interface's link type is not one of [`LinkType`].
    UnsupportedLinkType,
    /// The frame ends inside the link-layer header or a VLAN tag.
    TruncatedLinkHeader,
    /// More than 8 stacked VLAN tags.
    TooManyVlanTags,
    /// The frame carries something other than IPv4 or IPv6 (ARP, LLDP, ...).
    NonIp,
    /// The frame ends inside the IPv4 header.
    TruncatedIpv4,
    /// The IPv4 header is inconsistent (version, header length, total length).
    MalformedIpv4,
    /// The frame ends inside the fixed IPv6 header.
    TruncatedIpv6,
    /// The IPv6 version nibble is not 6.
    MalformedIpv6,
    /// The frame ends inside an IPv6 extension header.
    TruncatedIpv6Ext,
    /// An IPv6 extension header runs past the IPv6 payload length.
    MalformedIpv6Ext,
    /// The frame ends before the TCP, UDP, SCTP, DCCP or UDP-Lite ports.
    TruncatedL4,
    /// A pcapng packet names an interface that was not described.
    UnknownInterface,
    /// A pcapng packet block whose lengths are inconsistent.
    MalformedBlock,
    /// The packet belongs to a new flow beyond the cap given to
    /// [`read_capture`](super::read_capture).
    FlowLimit,
    /// A record the capture reader rejected; reading stopped there.
    CorruptRecord,
    /// The file ends inside a record (or a record claims an impossible
    /// length); reading stopped there.
    TruncatedRecord,
}

impl SkipReason {
    /// The reason's kebab-case name, e.g. `truncated-ipv4`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::EmptyFrame => "empty-frame",
            SkipReason::UnsupportedLinkType => "unsupported-link-type",
            SkipReason::TruncatedLinkHeader => "truncated-link-header",
            SkipReason::TooManyVlanTags => "too-many-vlan-tags",
            SkipReason::NonIp => "non-ip",
            SkipReason::TruncatedIpv4 => "truncated-ipv4",
            SkipReason::MalformedIpv4 => "malformed-ipv4",
            SkipReason::TruncatedIpv6 => "truncated-ipv6",
            SkipReason::MalformedIpv6 => "malformed-ipv6",
            SkipReason::TruncatedIpv6Ext => "truncated-ipv6-ext",
            SkipReason::MalformedIpv6Ext => "malformed-ipv6-ext",
            SkipReason::TruncatedL4 => "truncated-l4",
            SkipReason::UnknownInterface => "unknown-interface",
            SkipReason::MalformedBlock => "malformed-block",
            SkipReason::FlowLimit => "flow-limit",
            SkipReason::CorruptRecord => "corrupt-record",
            SkipReason::TruncatedRecord => "truncated-record",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad, and the pre-standard QinQ values.
const ETHERTYPE_VLAN: [u16; 4] = [0x8100, 0x88a8, 0x9100, 0x9200];
const MAX_VLAN_TAGS: usize = 8;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_DCCP: u8 = 33;
const PROTO_SCTP: u8 = 132;
const PROTO_UDPLITE: u8 = 136;

const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;

/// Reads a big-endian u16 at `at`, if the slice is long enough.
fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads four bytes at `at`, if the slice is long enough.
fn quad(bytes: &[u8], at: usize) -> Option<[u8; 4]> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some([b[0], b[1], b[2], b[3]])
}

/// Reads sixteen bytes at `at`, if the slice is long enough.
fn octets16(bytes: &[u8], at: usize) -> Option<[u8; 16]> {
    bytes.get(at..at.checked_add(16)?)?.try_into().ok()
}

/// Parses one frame of the given link type into the flow key a router would
/// hash (with `ingress_port` 0).
///
/// Fragments (IPv4 with MF or an offset, IPv6 with a fragment header) get
/// ports 0, as Linux hashes them; protocols without ports get ports 0, and an
/// IPv6 flow label is kept. Anything truncated or inconsistent is a
/// [`SkipReason`].
pub fn parse_frame(link: LinkType, frame: &[u8]) -> Result<FlowKey, SkipReason> {
    if frame.is_empty() {
        return Err(SkipReason::EmptyFrame);
    }
    match link {
        LinkType::Ethernet => {
            let ethertype = be16(frame, 12).ok_or(SkipReason::TruncatedLinkHeader)?;
            by_ethertype(ethertype, frame.get(14..).unwrap_or_default())
        }
        LinkType::LinuxSll => {
            let ethertype = be16(frame, 14).ok_or(SkipReason::TruncatedLinkHeader)?;
            let rest = frame.get(16..).ok_or(SkipReason::TruncatedLinkHeader)?;
            by_ethertype(ethertype, rest)
        }
        LinkType::LinuxSll2 => {
            let ethertype = be16(frame, 0).ok_or(SkipReason::TruncatedLinkHeader)?;
            let rest = frame.get(20..).ok_or(SkipReason::TruncatedLinkHeader)?;
            by_ethertype(ethertype, rest)
        }
        LinkType::Null | LinkType::Loop => {
            let bytes = quad(frame, 0).ok_or(SkipReason::TruncatedLinkHeader)?;
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(bytes)
            } else {
                // Host byte order of the capturing machine: families are
                // small, so a value with high bits set was written big-endian.
                let le = u32::from_le_bytes(bytes);
                if le > 0xffff {
                    le.swap_bytes()
                } else {
                    le
                }
            };
            let rest = &frame[4..];
            match family {
                2 => ipv4(rest),
                // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS.
                10 | 24 | 28 | 30 => ipv6(rest),
                _ => Err(SkipReason::NonIp),
            }
        }
        LinkType::Raw => match frame[0] >> 4 {
            4 => ipv4(frame),
            6 => ipv6(frame),
            _ => Err(SkipReason::NonIp),
        },
        LinkType::Ipv4 => ipv4(frame),
        LinkType::Ipv6 => ipv6(frame),
    }
}

/// Follows VLAN tags from `ethertype`, then parses the IP packet in `rest`.
fn by_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Result<FlowKey, SkipReason> {
    let mut tags = 0;
    while ETHERTYPE_VLAN.contains(&ethertype) {
        if tags == MAX_VLAN_TAGS {
            return Err(SkipReason::TooManyVlanTags);
        }
        // A tag is 2 bytes of TCI, then the next ethertype.
        ethertype = be16(rest, 2).ok_or(SkipReason::TruncatedLinkHeader)?;
        rest = &rest[4..];
        tags += 1;
    }
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(rest),
        ETHERTYPE_IPV6 => ipv6(rest),
        _ => Err(SkipReason::NonIp),
    }
}

/// Parses an IPv4 header and the ports after it.
fn ipv4(p: &[u8]) -> Result<FlowKey, SkipReason> {
    if p.len() < 20 {
        return Err(SkipReason::TruncatedIpv4);
    }
    if p[0] >> 4 != 4 {
        return Err(SkipReason::MalformedIpv4);
    }
    let header_len = usize::from(p[0] & 0x0f) * 4;
    if header_len < 20 {
        return Err(SkipReason::MalformedIpv4);
    }
    if p.len() < header_len {
        return Err(SkipReason::TruncatedIpv4);
    }
    let total_len = usize::from(u16::from_be_bytes([p[2], p[3]]));
    // A total length of 0 is what segmentation offload leaves in captures of
    // large packets: trust the captured length then. Otherwise drop trailing
    // link padding.
    let end = if total_len == 0 {
        p.len()
    } else if total_len < header_len {
        return Err(SkipReason::MalformedIpv4);
    } else {
        total_len.min(p.len())
    };
    let fragment = u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0;
    let proto = p[9];
    let src = Ipv4Addr::from([p[12], p[13], p[14], p[15]]);
    let dst = Ipv4Addr::from([p[16], p[17], p[18], p[19]]);
    let (src_port, dst_port) = if fragment {
        (0, 0)
    } else {
        ports(proto, &p[header_len..end])?
    };
    Ok(FlowKey {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        proto,
        src_port,
        dst_port,
        flow_label: 0,
        ingress_port: 0,
    })
}

/// Parses an IPv6 header, walks its extension headers, and reads the ports.
fn ipv6(p: &[u8]) -> Result<FlowKey, SkipReason> {
    if p.len() < 40 {
        return Err(SkipReason::TruncatedIpv6);
    }
    if p[0] >> 4 != 6 {
        return Err(SkipReason::MalformedIpv6);
    }
    let flow_label = u32::from_be_bytes([0, p[1] & 0x0f, p[2], p[3]]);
    let payload_len = usize::from(u16::from_be_bytes([p[4], p[5]]));
    // Payload length 0 is a jumbogram or offloaded packet: use what was captured.
    let end = if payload_len == 0 {
        p.len()
    } else {
        (40 + payload_len).min(p.len())
    };
    let src = octets16(p, 8).ok_or(SkipReason::TruncatedIpv6)?;
    let dst = octets16(p, 24).ok_or(SkipReason::TruncatedIpv6)?;

    let mut next = p[6];
    let mut at = 40;
    let mut fragment = false;
    loop {
        let len = match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let units = *p.get(at + 1).ok_or(SkipReason::TruncatedIpv6Ext)?;
                (usize::from(units) + 1) * 8
            }
            IPV6_AH => {
                let units = *p.get(at + 1).ok_or(SkipReason::TruncatedIpv6Ext)?;
                (usize::from(units) + 2) * 4
            }
            IPV6_FRAGMENT => 8,
            // An upper-layer protocol, ESP (50) or No Next Header (59): stop.
            _ => break,
        };
        if at + len > p.len() {
            return Err(SkipReason::TruncatedIpv6Ext);
        }
        if at + len > end {
            return Err(SkipReason::MalformedIpv6Ext);
        }
        let header = next;
        next = p[at];
        if header == IPV6_FRAGMENT {
            fragment = true;
            let offset = u16::from_be_bytes([p[at + 2], p[at + 3]]) & 0xfff8;
            if offset != 0 {
                // A later fragment: what follows is payload, not headers.
                at += len;
                break;
            }
        }
        at += len;
    }
    let (src_port, dst_port) = if fragment {
        (0, 0)
    } else {
        ports(next, &p[at..end])?
    };
    Ok(FlowKey {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        proto: next,
        src_port,
        dst_port,
        flow_label,
        ingress_port: 0,
    })
}

/// The source and destination ports of a transport header, or zeros for a
/// protocol without ports.
fn ports(proto: u8, l4: &[u8]) -> Result<(u16, u16), SkipReason> {
    match proto {
        PROTO_TCP | PROTO_UDP | PROTO_DCCP | PROTO_SCTP | PROTO_UDPLITE => {
            let b = quad(l4, 0).ok_or(SkipReason::TruncatedL4)?;
            Ok((
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            ))
        }
        _ => Ok((0, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 44, 0, 1, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2,
        ];
        p.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        p.extend_from_slice(&[0; 20]);
        p
    }

    #[test]
    fn raw_ipv4_tcp_gives_ports() {
        let key = parse_frame(LinkType::Raw, &ipv4_tcp()).unwrap();
        assert_eq!(key.src, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!((key.proto, key.src_port, key.dst_port), (6, 40000, 443));
    }

    #[test]
    fn null_link_accepts_either_byte_order() {
        for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut frame = family.to_vec();
            frame.extend(ipv4_tcp());
            assert_eq!(parse_frame(LinkType::Null, &frame).unwrap().dst_port, 443);
        }
    }

    #[test]
    fn every_prefix_of_a_frame_is_handled() {
        let p = ipv4_tcp();
        for len in 0..p.len() {
            let _ = parse_frame(LinkType::Raw, &p[..len]);
        }
        assert_eq!(
            parse_frame(LinkType::Raw, &p[..22]),
            Err(SkipReason::TruncatedL4)
        );
        assert_eq!(
            parse_frame(LinkType::Ipv4, &p[..19]),
            Err(SkipReason::TruncatedIpv4)
        );
    }

    #[test]
    fn link_codes_round_trip() {
        for code in [0, 1, 101, 108, 113, 228, 229, 276] {
            assert_eq!(LinkType::from_code(code).unwrap().code(), code);
        }
        assert_eq!(LinkType::from_code(105), None);
    }
}
