//! Decoding errors and the NOTIFICATION each one calls for (RFC 4271 section 6).

use super::notification::{
    Notification, CODE_MESSAGE_HEADER, CODE_OPEN_MESSAGE, CODE_UPDATE_MESSAGE,
    HEADER_BAD_MESSAGE_LENGTH, HEADER_BAD_MESSAGE_TYPE, HEADER_CONNECTION_NOT_SYNCHRONIZED,
    OPEN_BAD_BGP_IDENTIFIER, OPEN_BAD_PEER_AS, OPEN_UNACCEPTABLE_HOLD_TIME, OPEN_UNSPECIFIC,
    OPEN_UNSUPPORTED_OPTIONAL_PARAMETER, OPEN_UNSUPPORTED_VERSION_NUMBER,
};
use super::BGP_VERSION;

/// A received message that cannot be accepted. Each variant maps, through
/// [`WireError::notification`], to the NOTIFICATION that RFC 4271 section 6
/// says to send before closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The marker is not sixteen octets of all ones (RFC 4271 6.1, Message
    /// Header Error subcode 1).
    #[error("connection not synchronized: the header marker is not all ones")]
    ConnectionNotSynchronized,
    /// The header length is out of range overall or for the message type
    /// (RFC 4271 6.1, Message Header Error subcode 2, the length as data).
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    /// The header type is not one we know (RFC 4271 6.1, Message Header Error
    /// subcode 3, the type as data).
    #[error("bad message type {0}")]
    BadMessageType(u8),
    /// OPEN version is not 4 (RFC 4271 6.2, OPEN Message Error subcode 1,
    /// data: the largest supported version as two octets).
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    /// OPEN carries AS 0, in My AS or in the 4-octet AS capability (RFC 7607;
    /// OPEN Message Error subcode 2).
    #[error("bad peer AS {0}")]
    BadPeerAs(u32),
    /// OPEN BGP Identifier is 0 (RFC 4271 6.2 and RFC 6286, OPEN Message Error
    /// subcode 3).
    #[error("bad BGP identifier {0}")]
    BadBgpIdentifier(u32),
    /// An optional parameter other than Capabilities (type 2) (RFC 4271 6.2,
    /// OPEN Message Error subcode 4).
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// Hold time 1 or 2 seconds (RFC 4271 6.2, OPEN Message Error subcode 6).
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// The OPEN body, its optional parameters or a known capability are
    /// inconsistent with their lengths (RFC 4271 6.2 and RFC 5492: OPEN Message
    /// Error subcode 0, Unspecific).
    #[error("malformed OPEN: {0}")]
    MalformedOpen(&'static str),
    /// An UPDATE whose routes cannot be located, the few cases RFC 7606
    /// leaves to a session reset (UPDATE Message Error with `subcode`).
    #[error("malformed UPDATE: {reason}")]
    Update {
        /// UPDATE Message Error subcode (RFC 4271 6.3).
        subcode: u8,
        /// What was wrong.
        reason: &'static str,
        /// The NOTIFICATION data (the offending attribute, when there is one).
        data: Vec<u8>,
    },
}

impl WireError {
    /// The NOTIFICATION to send for this error (RFC 4271 section 6).
    pub fn notification(&self) -> Notification {
        let (code, subcode, data) = match *self {
            WireError::ConnectionNotSynchronized => (
                CODE_MESSAGE_HEADER,
                HEADER_CONNECTION_NOT_SYNCHRONIZED,
                Vec::new(),
            ),
            WireError::BadMessageLength(len) => (
                CODE_MESSAGE_HEADER,
                HEADER_BAD_MESSAGE_LENGTH,
                len.to_be_bytes().to_vec(),
            ),
            WireError::BadMessageType(t) => (CODE_MESSAGE_HEADER, HEADER_BAD_MESSAGE_TYPE, vec![t]),
            WireError::UnsupportedVersion(_) => (
                CODE_OPEN_MESSAGE,
                OPEN_UNSUPPORTED_VERSION_NUMBER,
                u16::from(BGP_VERSION).to_be_bytes().to_vec(),
            ),
            WireError::BadPeerAs(_) => (CODE_OPEN_MESSAGE, OPEN_BAD_PEER_AS, Vec::new()),
            WireError::BadBgpIdentifier(_) => {
                (CODE_OPEN_MESSAGE, OPEN_BAD_BGP_IDENTIFIER, Vec::new())
            }
            WireError::UnsupportedOptionalParameter(_) => (
                CODE_OPEN_MESSAGE,
                OPEN_UNSUPPORTED_OPTIONAL_PARAMETER,
                Vec::new(),
            ),
            WireError::UnacceptableHoldTime(_) => {
                (CODE_OPEN_MESSAGE, OPEN_UNACCEPTABLE_HOLD_TIME, Vec::new())
            }
            WireError::MalformedOpen(_) => (CODE_OPEN_MESSAGE, OPEN_UNSPECIFIC, Vec::new()),
            WireError::Update {
                subcode, ref data, ..
            } => (CODE_UPDATE_MESSAGE, subcode, data.clone()),
        };
        Notification {
            code,
            subcode,
            data,
        }
    }
}

/// A message that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message would exceed 65535 octets (or 4096 for an OPEN).
    #[error("message of {0} octets is too long")]
    MessageTooLong(usize),
    /// A capability value longer than 255 octets.
    #[error("capability {code} value of {len} octets is too long")]
    CapabilityTooLong {
        /// Capability code.
        code: u8,
        /// Value length.
        len: usize,
    },
    /// Graceful restart time above 4095 seconds (12 bits, RFC 4724 3).
    #[error("graceful restart time {0} does not fit in 12 bits")]
    RestartTimeTooLarge(u16),
    /// A prefix of another family than the field or attribute it is put in
    /// (IPv6 in the IPv4 NLRI field, say).
    #[error("prefix {0} does not belong to the address family of its field")]
    PrefixFamily(String),
    /// An optional parameter too long for its length field.
    #[error("optional parameter of {0} octets is too long")]
    ParameterTooLong(usize),
}
