//! Link-layer views: the Ethernet II header, 802.1Q / 802.1ad VLAN tags and
//! ARP packets.

use super::be16;
use super::error::ParseError;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Tag protocol identifiers: 802.1Q, 802.1ad, and pre-standard QinQ.
pub const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const HEADER_LEN: usize = 14;

    pub const VLAN_TCI: usize = 0;
    pub const VLAN_ETHERTYPE: usize = 2;
    pub const VLAN_LEN: usize = 4;

    pub const ARP_HTYPE: usize = 0;
    pub const ARP_PTYPE: usize = 2;
    pub const ARP_HLEN: usize = 4;
    pub const ARP_PLEN: usize = 5;
    pub const ARP_OPER: usize = 6;
    pub const ARP_ADDRS: usize = 8;
}

/// An Ethernet II frame: destination, source, EtherType, payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the untagged header.
    pub const HEADER_LEN: usize = field::HEADER_LEN;

    /// Wraps `buffer` after checking it holds the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(ParseError::TruncatedEthernet);
        }
        Ok(EthernetFrame { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[field::DST])
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> [u8; 6] {
        mac(&self.buffer.as_ref()[field::SRC])
    }

    /// The outer EtherType (a VLAN TPID if the frame is tagged).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Rewrites the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr);
    }

    /// Rewrites the source MAC address.
    pub fn set_src_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr);
    }
}

fn mac(bytes: &[u8]) -> [u8; 6] {
    let mut out = [0u8; 6];
    out.copy_from_slice(bytes);
    out
}

/// One VLAN tag as found in a frame: its TPID and tag control information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// The tag protocol identifier (0x8100, 0x88a8 or 0x9100).
    pub tpid: u16,
    /// Priority (3 bits), drop eligible (1 bit) and VLAN id (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// The 12-bit VLAN id.
    pub fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    /// The 3-bit priority code point.
    pub fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }
}

/// The 4 bytes of a VLAN tag that follow its TPID: TCI and inner EtherType.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanHeader<T> {
    /// Length of the tag body.
    pub const LEN: usize = field::VLAN_LEN;

    /// Wraps `buffer` (starting right after the TPID) after a length check.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < field::VLAN_LEN {
            return Err(ParseError::TruncatedVlan);
        }
        Ok(VlanHeader { buffer })
    }

    /// Tag control information.
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), field::VLAN_TCI)
    }

    /// The EtherType the tag encapsulates.
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::VLAN_ETHERTYPE)
    }

    /// Everything after the tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::VLAN_LEN..]
    }
}

/// An ARP packet (any hardware and protocol address sizes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` after checking it holds the fixed part and all four
    /// addresses at the sizes the header declares.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < field::ARP_ADDRS {
            return Err(ParseError::TruncatedArp);
        }
        let addrs = 2 * (usize::from(b[field::ARP_HLEN]) + usize::from(b[field::ARP_PLEN]));
        if b.len() < field::ARP_ADDRS + addrs {
            return Err(ParseError::TruncatedArp);
        }
        Ok(ArpPacket { buffer })
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ARP_HTYPE)
    }

    /// Protocol type (0x0800 for IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ARP_PTYPE)
    }

    /// Operation (1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ARP_OPER)
    }

    fn hlen(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::ARP_HLEN])
    }

    fn plen(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::ARP_PLEN])
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> &[u8] {
        let at = field::ARP_ADDRS;
        &self.buffer.as_ref()[at..at + self.hlen()]
    }

    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> &[u8] {
        let at = field::ARP_ADDRS + self.hlen();
        &self.buffer.as_ref()[at..at + self.plen()]
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> &[u8] {
        let at = field::ARP_ADDRS + self.hlen() + self.plen();
        &self.buffer.as_ref()[at..at + self.hlen()]
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> &[u8] {
        let at = field::ARP_ADDRS + 2 * self.hlen() + self.plen();
        &self.buffer.as_ref()[at..at + self.plen()]
    }
}
