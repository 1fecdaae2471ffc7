//! Transport-layer views: TCP, UDP (and UDP-Lite), SCTP ports, and ICMP /
//! ICMPv6 type, code and the packet embedded in an error.

use super::be16;
use super::error::ParseError;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const TCP_DATA_OFF: usize = 12;
    pub const TCP_MIN_LEN: usize = 20;
    pub const UDP_LEN: usize = 8;
    pub const SCTP_LEN: usize = 12;

    pub const ICMP_TYPE: usize = 0;
    pub const ICMP_CODE: usize = 1;
    pub const ICMP_CHECKSUM: usize = 2;
    pub const ICMP_HEADER_LEN: usize = 8;
}

macro_rules! ports {
    () => {
        /// Source port.
        pub fn src_port(&self) -> u16 {
            be16(self.buffer.as_ref(), field::SRC_PORT)
        }

        /// Destination port.
        pub fn dst_port(&self) -> u16 {
            be16(self.buffer.as_ref(), field::DST_PORT)
        }
    };
}

/// A TCP header (options included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpHeader<T> {
    /// Wraps `buffer` after checking it holds 20 bytes and that the data
    /// offset is at least 5 words and within the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let b = buffer.as_ref();
        if b.len() < field::TCP_MIN_LEN {
            return Err(ParseError::TruncatedL4);
        }
        let header_len = usize::from(b[field::TCP_DATA_OFF] >> 4) * 4;
        if header_len < field::TCP_MIN_LEN || header_len > b.len() {
            return Err(ParseError::BadTcpHeaderLength);
        }
        Ok(TcpHeader { buffer })
    }

    ports!();

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::TCP_DATA_OFF] >> 4) * 4
    }
}

/// A UDP or UDP-Lite header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpHeader<T> {
    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < field::UDP_LEN {
            return Err(ParseError::TruncatedL4);
        }
        Ok(UdpHeader { buffer })
    }

    ports!();
}

/// An SCTP common header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SctpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpHeader<T> {
    /// Wraps `buffer` after checking it holds the 12-byte common header.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < field::SCTP_LEN {
            return Err(ParseError::TruncatedL4);
        }
        Ok(SctpHeader { buffer })
    }

    ports!();
}

/// An ICMP (IPv4) or ICMPv6 message: the 8-byte header and what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < field::ICMP_HEADER_LEN {
            return Err(ParseError::TruncatedL4);
        }
        Ok(IcmpPacket { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::ICMP_TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::ICMP_CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ICMP_CHECKSUM)
    }

    /// Whether this ICMPv4 message is an error (destination unreachable,
    /// source quench, redirect, time exceeded, parameter problem), the set
    /// Linux's `icmp_is_err` recognises.
    pub fn is_error_v4(&self) -> bool {
        matches!(self.msg_type(), 3 | 4 | 5 | 11 | 12)
    }

    /// Whether this ICMPv6 message is an error (types 1-4: destination
    /// unreachable, packet too big, time exceeded, parameter problem).
    pub fn is_error_v6(&self) -> bool {
        matches!(self.msg_type(), 1..=4)
    }

    /// Everything after the 8-byte header: for an error, the start of the
    /// packet that caused it.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::ICMP_HEADER_LEN..]
    }
}
