//! IPv4 and IPv6 views, the Internet checksum with an RFC 1624 incremental
//! update for TTL decrement, and the IPv6 extension-header walk.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::be16;
use super::error::{DropReason, ParseError};

/// IPv6 hop-by-hop options header.
pub const PROTO_HOPOPTS: u8 = 0;
/// ICMP for IPv4.
pub const PROTO_ICMP: u8 = 1;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;
/// DCCP.
pub const PROTO_DCCP: u8 = 33;
/// IPv6 routing header.
pub const PROTO_ROUTING: u8 = 43;
/// IPv6 fragment header.
pub const PROTO_FRAGMENT: u8 = 44;
/// Encapsulating security payload.
pub const PROTO_ESP: u8 = 50;
/// Authentication header.
pub const PROTO_AH: u8 = 51;
/// ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// IPv6 "no next header".
pub const PROTO_NONE: u8 = 59;
/// IPv6 destination options header.
pub const PROTO_DSTOPTS: u8 = 60;
/// SCTP.
pub const PROTO_SCTP: u8 = 132;
/// UDP-Lite.
pub const PROTO_UDPLITE: u8 = 136;

mod field {
    use std::ops::Range;
    pub const V4_VER_IHL: usize = 0;
    pub const V4_TOS: usize = 1;
    pub const V4_LENGTH: usize = 2;
    pub const V4_IDENT: usize = 4;
    pub const V4_FLG_OFF: usize = 6;
    pub const V4_TTL: usize = 8;
    pub const V4_PROTOCOL: usize = 9;
    pub const V4_CHECKSUM: Range<usize> = 10..12;
    pub const V4_SRC: Range<usize> = 12..16;
    pub const V4_DST: Range<usize> = 16..20;
    pub const V4_MIN_LEN: usize = 20;

    pub const V6_VER_TC_FLOW: Range<usize> = 0..4;
    pub const V6_LENGTH: usize = 4;
    pub const V6_NXT_HDR: usize = 6;
    pub const V6_HOP_LIMIT: usize = 7;
    pub const V6_SRC: Range<usize> = 8..24;
    pub const V6_DST: Range<usize> = 24..40;
    pub const V6_HEADER_LEN: usize = 40;

    pub const EXT_NXT_HDR: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const FRAG_OFFSET: usize = 2;
    pub const FRAG_LEN: usize = 8;
}

/// The one's-complement sum of `data` as 16-bit big-endian words (an odd last
/// byte is padded with zero), folded to 16 bits.
fn ones_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    fold(sum)
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum (RFC 1071) of `data`: the complement of its
/// one's-complement sum.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !ones_sum(data)
}

/// Decrements the TTL of the IPv4 header at the start of `header` and updates
/// its checksum incrementally (RFC 1624, eqn. 3); returns the new TTL.
///
/// Only the header is examined (the total length may exceed the buffer). A TTL
/// of 0 or 1 leaves the header untouched and yields
/// [`DropReason::TtlExceeded`].
pub fn ipv4_decrement_ttl(header: &mut [u8]) -> Result<u8, DropReason> {
    Ipv4Packet::new_checked_header(header)?.decrement_ttl()
}

/// An IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` after checking the version, that 5 <= IHL, that the
    /// header fits, and that header length <= total length <= buffer length.
    /// Bytes past the total length (link padding) are ignored by accessors.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_checked_header(buffer)?;
        if usize::from(packet.total_len()) > packet.buffer.as_ref().len() {
            return Err(ParseError::TruncatedIpv4);
        }
        Ok(packet)
    }

    /// Like [`new_checked`](Self::new_checked) but allows the packet to be cut
    /// short after its header, as in the copy embedded in an ICMP error;
    /// [`payload`](Self::payload) then returns what is present.
    pub fn new_checked_header(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < field::V4_MIN_LEN {
            return Err(ParseError::TruncatedIpv4);
        }
        if b[field::V4_VER_IHL] >> 4 != 4 {
            return Err(ParseError::BadIpv4Version);
        }
        let header_len = usize::from(b[field::V4_VER_IHL] & 0x0f) * 4;
        if header_len < field::V4_MIN_LEN {
            return Err(ParseError::BadIpv4HeaderLength);
        }
        if header_len > b.len() {
            return Err(ParseError::TruncatedIpv4);
        }
        if usize::from(be16(b, field::V4_LENGTH)) < header_len {
            return Err(ParseError::BadIpv4TotalLength);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::V4_VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN bits.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::V4_TOS]
    }

    /// Total length field.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V4_LENGTH)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V4_IDENT)
    }

    /// The don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::V4_FLG_OFF) & 0x4000 != 0
    }

    /// The more-fragments flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::V4_FLG_OFF) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::V4_FLG_OFF) & 0x1fff) << 3
    }

    /// Whether this is a fragment (MF set or a nonzero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::V4_TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::V4_PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V4_CHECKSUM.start)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::V4_SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::V4_DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload up to the total length (or the buffer's end, whichever is
    /// first).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(b.len());
        &b[self.header_len()..end]
    }

    /// The checksum the header should carry.
    pub fn compute_checksum(&self) -> u16 {
        let h = self.header();
        let c = field::V4_CHECKSUM;
        // Sum the header with the checksum field read as zero.
        !fold(u32::from(ones_sum(&h[..c.start])) + u32::from(ones_sum(&h[c.end..])))
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        ones_sum(self.header()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the TTL without touching the checksum.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::V4_TTL] = ttl;
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, checksum: u16) {
        self.buffer.as_mut()[field::V4_CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Recomputes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.set_checksum(c);
    }

    /// Decrements the TTL, updating the checksum incrementally (RFC 1624
    /// eqn. 3: `HC' = ~(~HC + ~m + m')`); returns the new TTL, or
    /// [`DropReason::TtlExceeded`] (header untouched) if the TTL is 0 or 1.
    pub fn decrement_ttl(&mut self) -> Result<u8, DropReason> {
        let ttl = self.ttl();
        if ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        let proto = self.protocol();
        let old = u16::from_be_bytes([ttl, proto]);
        let new = u16::from_be_bytes([ttl - 1, proto]);
        let sum = u32::from(!self.checksum()) + u32::from(!old) + u32::from(new);
        self.set_ttl(ttl - 1);
        self.set_checksum(!fold(sum));
        Ok(ttl - 1)
    }
}

/// Where the IPv6 extension-header walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Upper {
    /// The upper-layer protocol (or ESP / no-next-header, or for a later
    /// fragment the fragment header's next header).
    pub proto: u8,
    /// Offset of the upper-layer header within the IPv6 payload.
    pub offset: usize,
    /// A fragment header was present (first fragment or not).
    pub fragment: bool,
    /// The fragment offset is nonzero: `offset` points at fragment data, not
    /// at an upper-layer header.
    pub later_fragment: bool,
    /// How many extension headers were walked.
    pub extensions: usize,
}

/// Walks IPv6 extension headers (hop-by-hop, routing, fragment, destination
/// options, AH) starting from `next_header` over `payload`, at most
/// `max_extensions` of them.
///
/// ESP and no-next-header end the walk (nothing after them is readable); a
/// fragment header with a nonzero offset ends it too.
pub fn walk_ipv6_extensions(
    mut next_header: u8,
    payload: &[u8],
    max_extensions: usize,
) -> Result<Ipv6Upper, DropReason> {
    let mut at = 0usize;
    let mut fragment = false;
    let mut extensions = 0usize;
    loop {
        let is_ext = matches!(
            next_header,
            PROTO_HOPOPTS | PROTO_ROUTING | PROTO_FRAGMENT | PROTO_DSTOPTS | PROTO_AH
        );
        if !is_ext {
            return Ok(Ipv6Upper {
                proto: next_header,
                offset: at,
                fragment,
                later_fragment: false,
                extensions,
            });
        }
        extensions += 1;
        if extensions > max_extensions {
            return Err(DropReason::Ipv6ExtensionChainTooLong);
        }
        let head = payload
            .get(at..at.saturating_add(2))
            .ok_or(DropReason::TruncatedIpv6Extension)?;
        let len = match next_header {
            PROTO_FRAGMENT => field::FRAG_LEN,
            PROTO_AH => (usize::from(head[field::EXT_LEN]) + 2) * 4,
            _ => (usize::from(head[field::EXT_LEN]) + 1) * 8,
        };
        let ext = payload
            .get(at..at.saturating_add(len))
            .ok_or(DropReason::TruncatedIpv6Extension)?;
        let this_header = next_header;
        next_header = ext[field::EXT_NXT_HDR];
        at += len;
        if this_header == PROTO_FRAGMENT {
            fragment = true;
            if be16(ext, field::FRAG_OFFSET) & 0xfff8 != 0 {
                return Ok(Ipv6Upper {
                    proto: next_header,
                    offset: at,
                    fragment,
                    later_fragment: true,
                    extensions,
                });
            }
        }
    }
}

/// An IPv6 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = field::V6_HEADER_LEN;

    /// Wraps `buffer` after checking the version and that the fixed header
    /// plus the payload length fit. Bytes past them are ignored by accessors.
    /// Jumbograms (payload length 0 with a jumbo option) are not supported.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_checked_header(buffer)?;
        if field::V6_HEADER_LEN + usize::from(packet.payload_len()) > packet.buffer.as_ref().len() {
            return Err(ParseError::TruncatedIpv6);
        }
        Ok(packet)
    }

    /// Like [`new_checked`](Self::new_checked) but allows the payload to be
    /// cut short, as in the copy embedded in an ICMPv6 error.
    pub fn new_checked_header(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < field::V6_HEADER_LEN {
            return Err(ParseError::TruncatedIpv6);
        }
        if b[0] >> 4 != 6 {
            return Err(ParseError::BadIpv6Version);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::V6_VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length field.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V6_LENGTH)
    }

    /// The next header after the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::V6_NXT_HDR]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::V6_HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(octets16(&self.buffer.as_ref()[field::V6_SRC]))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(octets16(&self.buffer.as_ref()[field::V6_DST]))
    }

    /// The payload up to the payload length (or the buffer's end).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (field::V6_HEADER_LEN + usize::from(self.payload_len())).min(b.len());
        &b[field::V6_HEADER_LEN..end]
    }

    /// Walks the extension headers of the payload to the upper layer.
    pub fn upper(&self, max_extensions: usize) -> Result<Ipv6Upper, DropReason> {
        walk_ipv6_extensions(self.next_header(), self.payload(), max_extensions)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::V6_HOP_LIMIT] = hop_limit;
    }

    /// Decrements the hop limit; returns the new value, or
    /// [`DropReason::HopLimitExceeded`] (header untouched) if it is 0 or 1.
    pub fn decrement_hop_limit(&mut self) -> Result<u8, DropReason> {
        let hop_limit = self.hop_limit();
        if hop_limit <= 1 {
            return Err(DropReason::HopLimitExceeded);
        }
        self.set_hop_limit(hop_limit - 1);
        Ok(hop_limit - 1)
    }
}

fn octets16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(bytes);
    out
}
