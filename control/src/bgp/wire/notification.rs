//! NOTIFICATION messages (RFC 4271 4.5) with error code and subcode names
//! (RFC 4271 section 6, RFC 4486, RFC 5492, RFC 6608, RFC 7313, RFC 8538) and
//! the Administrative Shutdown/Reset communication (RFC 8203, extended to 255
//! octets by RFC 9003).

use crate::reader::Reader;

/// Message Header Error (RFC 4271 6.1).
pub const CODE_MESSAGE_HEADER: u8 = 1;
/// OPEN Message Error (RFC 4271 6.2).
pub const CODE_OPEN_MESSAGE: u8 = 2;
/// UPDATE Message Error (RFC 4271 6.3).
pub const CODE_UPDATE_MESSAGE: u8 = 3;
/// Hold Timer Expired (RFC 4271 6.5).
pub const CODE_HOLD_TIMER_EXPIRED: u8 = 4;
/// Finite State Machine Error (RFC 4271 6.6, subcodes RFC 6608).
pub const CODE_FSM: u8 = 5;
/// Cease (RFC 4271 6.7, subcodes RFC 4486).
pub const CODE_CEASE: u8 = 6;
/// ROUTE-REFRESH Message Error (RFC 7313 5).
pub const CODE_ROUTE_REFRESH: u8 = 7;

/// Message Header Error: Connection Not Synchronized.
pub const HEADER_CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
/// Message Header Error: Bad Message Length.
pub const HEADER_BAD_MESSAGE_LENGTH: u8 = 2;
/// Message Header Error: Bad Message Type.
pub const HEADER_BAD_MESSAGE_TYPE: u8 = 3;

/// OPEN Message Error: Unspecific (RFC 4271 6.2, malformed optional parameter).
pub const OPEN_UNSPECIFIC: u8 = 0;
/// OPEN Message Error: Unsupported Version Number.
pub const OPEN_UNSUPPORTED_VERSION_NUMBER: u8 = 1;
/// OPEN Message Error: Bad Peer AS.
pub const OPEN_BAD_PEER_AS: u8 = 2;
/// OPEN Message Error: Bad BGP Identifier.
pub const OPEN_BAD_BGP_IDENTIFIER: u8 = 3;
/// OPEN Message Error: Unsupported Optional Parameter.
pub const OPEN_UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
/// OPEN Message Error: Unacceptable Hold Time.
pub const OPEN_UNACCEPTABLE_HOLD_TIME: u8 = 6;
/// OPEN Message Error: Unsupported Capability (RFC 5492 5).
pub const OPEN_UNSUPPORTED_CAPABILITY: u8 = 7;

/// UPDATE Message Error: Malformed Attribute List (RFC 4271 6.3).
pub const UPDATE_MALFORMED_ATTRIBUTE_LIST: u8 = 1;
/// UPDATE Message Error: Unrecognized Well-known Attribute.
pub const UPDATE_UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
/// UPDATE Message Error: Attribute Flags Error.
pub const UPDATE_ATTRIBUTE_FLAGS_ERROR: u8 = 4;
/// UPDATE Message Error: Optional Attribute Error.
pub const UPDATE_OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
/// UPDATE Message Error: Invalid Network Field.
pub const UPDATE_INVALID_NETWORK_FIELD: u8 = 10;

/// Cease: Maximum Number of Prefixes Reached (RFC 4486).
pub const CEASE_MAX_PREFIXES: u8 = 1;
/// Cease: Administrative Shutdown (RFC 4486; message RFC 8203).
pub const CEASE_ADMINISTRATIVE_SHUTDOWN: u8 = 2;
/// Cease: Peer De-configured (RFC 4486).
pub const CEASE_PEER_DECONFIGURED: u8 = 3;
/// Cease: Administrative Reset (RFC 4486; message RFC 8203).
pub const CEASE_ADMINISTRATIVE_RESET: u8 = 4;
/// Cease: Connection Rejected (RFC 4486).
pub const CEASE_CONNECTION_REJECTED: u8 = 5;
/// Cease: Other Configuration Change (RFC 4486).
pub const CEASE_OTHER_CONFIGURATION_CHANGE: u8 = 6;
/// Cease: Connection Collision Resolution (RFC 4486).
pub const CEASE_CONNECTION_COLLISION_RESOLUTION: u8 = 7;
/// Cease: Out of Resources (RFC 4486).
pub const CEASE_OUT_OF_RESOURCES: u8 = 8;
/// Cease: Hard Reset (RFC 8538).
pub const CEASE_HARD_RESET: u8 = 9;

/// Longest shutdown communication (RFC 9003 2; RFC 8203 allowed 128).
pub const MAX_SHUTDOWN_MESSAGE_LEN: usize = 255;

/// A NOTIFICATION message (RFC 4271 4.5): error code, subcode and data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code (RFC 4271 4.5).
    pub code: u8,
    /// Error subcode; 0 when unspecific.
    pub subcode: u8,
    /// Diagnostic data, whose meaning depends on code and subcode.
    pub data: Vec<u8>,
}

/// Why a shutdown communication (RFC 8203 2) could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownMessageError {
    /// The length octet disagrees with the data that follows.
    #[error("shutdown communication length does not match the data")]
    BadLength,
    /// The text is not UTF-8.
    #[error("shutdown communication is not UTF-8")]
    NotUtf8,
}

impl Notification {
    /// A notification with the given code, subcode and data.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            code,
            subcode,
            data,
        }
    }

    /// Cease / Administrative Shutdown with a shutdown communication (RFC 8203
    /// 2, RFC 9003): a length octet and UTF-8 text, truncated at a character
    /// boundary to 255 octets. An empty message gives a zero length octet.
    pub fn administrative_shutdown(message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = message.as_bytes().get(..end).unwrap_or_default();
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(text);
        Self::new(CODE_CEASE, CEASE_ADMINISTRATIVE_SHUTDOWN, data)
    }

    /// Decode a NOTIFICATION body (after the 19-octet header). The framer has
    /// already checked the body is at least two octets, so this fails only
    /// when called directly on a shorter slice.
    pub fn decode(body: &[u8]) -> Option<Self> {
        let mut r = Reader::new(body);
        let code = r.u8()?;
        let subcode = r.u8()?;
        Some(Self::new(code, subcode, r.rest().to_vec()))
    }

    /// Append the body (not the header) to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.subcode);
        out.extend_from_slice(&self.data);
    }

    /// The error code's name, e.g. "Cease".
    pub fn code_name(&self) -> &'static str {
        code_name(self.code)
    }

    /// The subcode's name, e.g. "Administrative Shutdown", if known.
    pub fn subcode_name(&self) -> Option<&'static str> {
        subcode_name(self.code, self.subcode)
    }

    /// The shutdown communication of a Cease / Administrative Shutdown or
    /// Administrative Reset (RFC 8203 2): `None` for other notifications or
    /// when no data was sent; `Some(Ok(""))` for a zero length octet.
    /// RFC 8203 says to log a malformed one as hex; the raw bytes stay in
    /// [`Notification::data`].
    pub fn shutdown_message(&self) -> Option<Result<&str, ShutdownMessageError>> {
        if self.code != CODE_CEASE
            || !matches!(
                self.subcode,
                CEASE_ADMINISTRATIVE_SHUTDOWN | CEASE_ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let mut r = Reader::new(&self.data);
        let len = r.u8()?;
        Some(match r.take(usize::from(len)) {
            Some(text) if r.is_empty() => {
                std::str::from_utf8(text).map_err(|_| ShutdownMessageError::NotUtf8)
            }
            _ => Err(ShutdownMessageError::BadLength),
        })
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code_name(), self.code)?;
        match self.subcode_name() {
            Some(name) => write!(f, " / {} ({})", name, self.subcode)?,
            None => write!(f, " / subcode {}", self.subcode)?,
        }
        match self.shutdown_message() {
            Some(Ok(text)) => write!(f, ": {text:?}"),
            _ if !self.data.is_empty() => {
                write!(f, ", data ")?;
                for b in &self.data {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Name of a NOTIFICATION error code (RFC 4271 4.5, RFC 7313).
pub fn code_name(code: u8) -> &'static str {
    match code {
        CODE_MESSAGE_HEADER => "Message Header Error",
        CODE_OPEN_MESSAGE => "OPEN Message Error",
        CODE_UPDATE_MESSAGE => "UPDATE Message Error",
        CODE_HOLD_TIMER_EXPIRED => "Hold Timer Expired",
        CODE_FSM => "Finite State Machine Error",
        CODE_CEASE => "Cease",
        CODE_ROUTE_REFRESH => "ROUTE-REFRESH Message Error",
        _ => "Unknown Error",
    }
}

/// Name of a NOTIFICATION error subcode for a code (RFC 4271 6, RFC 4486,
/// RFC 5492, RFC 6608, RFC 7313, RFC 8538). `None` if unknown.
pub fn subcode_name(code: u8, subcode: u8) -> Option<&'static str> {
    Some(match (code, subcode) {
        (CODE_MESSAGE_HEADER, 1) => "Connection Not Synchronized",
        (CODE_MESSAGE_HEADER, 2) => "Bad Message Length",
        (CODE_MESSAGE_HEADER, 3) => "Bad Message Type",
        (CODE_OPEN_MESSAGE, 0) => "Unspecific",
        (CODE_OPEN_MESSAGE, 1) => "Unsupported Version Number",
        (CODE_OPEN_MESSAGE, 2) => "Bad Peer AS",
        (CODE_OPEN_MESSAGE, 3) => "Bad BGP Identifier",
        (CODE_OPEN_MESSAGE, 4) => "Unsupported Optional Parameter",
        (CODE_OPEN_MESSAGE, 5) => "Authentication Failure (deprecated)",
        (CODE_OPEN_MESSAGE, 6) => "Unacceptable Hold Time",
        (CODE_OPEN_MESSAGE, 7) => "Unsupported Capability",
        (CODE_UPDATE_MESSAGE, 0) => "Unspecific",
        (CODE_UPDATE_MESSAGE, 1) => "Malformed Attribute List",
        (CODE_UPDATE_MESSAGE, 2) => "Unrecognized Well-known Attribute",
        (CODE_UPDATE_MESSAGE, 3) => "Missing Well-known Attribute",
        (CODE_UPDATE_MESSAGE, 4) => "Attribute Flags Error",
        (CODE_UPDATE_MESSAGE, 5) => "Attribute Length Error",
        (CODE_UPDATE_MESSAGE, 6) => "Invalid ORIGIN Attribute",
        (CODE_UPDATE_MESSAGE, 7) => "AS Routing Loop (deprecated)",
        (CODE_UPDATE_MESSAGE, 8) => "Invalid NEXT_HOP Attribute",
        (CODE_UPDATE_MESSAGE, 9) => "Optional Attribute Error",
        (CODE_UPDATE_MESSAGE, 10) => "Invalid Network Field",
        (CODE_UPDATE_MESSAGE, 11) => "Malformed AS_PATH",
        (CODE_FSM, 0) => "Unspecified Error",
        (CODE_FSM, 1) => "Receive Unexpected Message in OpenSent State",
        (CODE_FSM, 2) => "Receive Unexpected Message in OpenConfirm State",
        (CODE_FSM, 3) => "Receive Unexpected Message in Established State",
        (CODE_CEASE, CEASE_MAX_PREFIXES) => "Maximum Number of Prefixes Reached",
        (CODE_CEASE, CEASE_ADMINISTRATIVE_SHUTDOWN) => "Administrative Shutdown",
        (CODE_CEASE, CEASE_PEER_DECONFIGURED) => "Peer De-configured",
        (CODE_CEASE, CEASE_ADMINISTRATIVE_RESET) => "Administrative Reset",
        (CODE_CEASE, CEASE_CONNECTION_REJECTED) => "Connection Rejected",
        (CODE_CEASE, CEASE_OTHER_CONFIGURATION_CHANGE) => "Other Configuration Change",
        (CODE_CEASE, CEASE_CONNECTION_COLLISION_RESOLUTION) => "Connection Collision Resolution",
        (CODE_CEASE, CEASE_OUT_OF_RESOURCES) => "Out of Resources",
        (CODE_CEASE, CEASE_HARD_RESET) => "Hard Reset",
        (CODE_ROUTE_REFRESH, 1) => "Invalid Message Length",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_message_round_trip_and_truncation() {
        let n = Notification::administrative_shutdown("maintenance");
        assert_eq!(n.data[0], 11);
        assert_eq!(n.shutdown_message(), Some(Ok("maintenance")));
        // 200 two-octet characters: truncated to 127 characters (254 octets).
        let long = "é".repeat(200);
        let n = Notification::administrative_shutdown(&long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_message().unwrap().unwrap().chars().count(), 127);
        let n = Notification::administrative_shutdown("");
        assert_eq!(n.data, vec![0]);
        assert_eq!(n.shutdown_message(), Some(Ok("")));
    }

    #[test]
    fn malformed_shutdown_messages() {
        let bad_len = Notification::new(6, 2, vec![5, b'a']);
        assert_eq!(
            bad_len.shutdown_message(),
            Some(Err(ShutdownMessageError::BadLength))
        );
        let trailing = Notification::new(6, 4, vec![1, b'a', b'b']);
        assert_eq!(
            trailing.shutdown_message(),
            Some(Err(ShutdownMessageError::BadLength))
        );
        let not_utf8 = Notification::new(6, 2, vec![2, 0xc3, 0x28]);
        assert_eq!(
            not_utf8.shutdown_message(),
            Some(Err(ShutdownMessageError::NotUtf8))
        );
        assert_eq!(Notification::new(6, 2, vec![]).shutdown_message(), None);
        assert_eq!(
            Notification::new(6, 3, vec![1, b'a']).shutdown_message(),
            None
        );
    }

    #[test]
    fn names_and_display() {
        assert_eq!(code_name(6), "Cease");
        assert_eq!(subcode_name(6, 7), Some("Connection Collision Resolution"));
        assert_eq!(subcode_name(2, 6), Some("Unacceptable Hold Time"));
        assert_eq!(subcode_name(4, 1), None);
        assert_eq!(code_name(99), "Unknown Error");
        let n = Notification::administrative_shutdown("bye");
        assert_eq!(
            n.to_string(),
            "Cease (6) / Administrative Shutdown (2): \"bye\""
        );
        let n = Notification::new(1, 2, vec![0x10, 0x01]);
        assert_eq!(
            n.to_string(),
            "Message Header Error (1) / Bad Message Length (2), data 1001"
        );
    }
}
