//! The BGP-4 wire format (RFC 4271 section 4): framing a byte stream into
//! messages, and decoding and encoding OPEN, KEEPALIVE, NOTIFICATION and
//! ROUTE-REFRESH. UPDATE bodies are framed raw, because reading them needs
//! what the session negotiated (4-octet AS, iBGP); [`update::decode_update`]
//! decodes them with RFC 7606 error handling.
//!
//! Decoding never panics: all reads go through a bounds-checked cursor, and
//! every refusal is a [`WireError`] that names the NOTIFICATION to send
//! ([`WireError::notification`]).
//!
//! Message lengths: at most [`MAX_MESSAGE_LEN`] (4096) octets, or
//! [`MAX_EXTENDED_MESSAGE_LEN`] (65535) once both sides have advertised the
//! Extended Message capability (RFC 8654); OPEN and KEEPALIVE stay within 4096
//! in any case (RFC 8654 4).

pub mod attrs;
mod error;
pub mod notification;
pub mod open;

pub mod route_refresh;
pub mod selfcheck;
pub mod update;

pub use error::{EncodeError, WireError};
pub use notification::Notification;
pub use open::{Afi, AfiSafi, Capability, GracefulRestart, GracefulRestartFamily, Open, Safi};
pub use route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use update::{decode_update, DecodedUpdate, Outcome, Update, UpdateContext};

use crate::reader::Reader;

/// BGP version spoken (RFC 4271 4.2).
pub const BGP_VERSION: u8 = 4;
/// Header length: marker (16), length (2), type (1) (RFC 4271 4.1).
pub const HEADER_LEN: usize = 19;
/// Largest message without the Extended Message capability (RFC 4271 4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with the Extended Message capability (RFC 8654 4).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// Header marker: sixteen octets of all ones (RFC 4271 4.1).
pub const MARKER: [u8; 16] = [0xff; 16];

/// Message type OPEN (RFC 4271 4.1).
pub const TYPE_OPEN: u8 = 1;
/// Message type UPDATE (RFC 4271 4.1).
pub const TYPE_UPDATE: u8 = 2;
/// Message type NOTIFICATION (RFC 4271 4.1).
pub const TYPE_NOTIFICATION: u8 = 3;
/// Message type KEEPALIVE (RFC 4271 4.1).
pub const TYPE_KEEPALIVE: u8 = 4;
/// Message type ROUTE-REFRESH (RFC 2918 3).
pub const TYPE_ROUTE_REFRESH: u8 = 5;

/// Smallest OPEN: header and 10 fixed octets (RFC 4271 4.2).
const MIN_OPEN_LEN: usize = 29;
/// Smallest UPDATE: header and two 2-octet length fields (RFC 4271 4.3).
const MIN_UPDATE_LEN: usize = 23;
/// Smallest NOTIFICATION: header, code and subcode (RFC 4271 4.5).
const MIN_NOTIFICATION_LEN: usize = 21;

/// One BGP message (RFC 4271 section 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// OPEN (RFC 4271 4.2).
    Open(Open),
    /// UPDATE (RFC 4271 4.3), body undecoded: see [`update::decode_update`].
    Update(Vec<u8>),
    /// NOTIFICATION (RFC 4271 4.5).
    Notification(Notification),
    /// KEEPALIVE (RFC 4271 4.4): header only.
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918 3, RFC 7313 3.2).
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type octet.
    pub fn message_type(&self) -> u8 {
        match self {
            Message::Open(_) => TYPE_OPEN,
            Message::Update(_) => TYPE_UPDATE,
            Message::Notification(_) => TYPE_NOTIFICATION,
            Message::Keepalive => TYPE_KEEPALIVE,
            Message::RouteRefresh(_) => TYPE_ROUTE_REFRESH,
        }
    }

    /// Encode the whole message, header included. Fails if it would not fit
    /// in 65535 octets (4096 for OPEN); checking the negotiated maximum is
    /// the session's job.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 4);
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, self.message_type()]);
        let max = match self {
            Message::Open(open) => {
                open.encode_body(&mut out)?;
                MAX_MESSAGE_LEN
            }
            Message::Update(body) => {
                out.extend_from_slice(body);
                MAX_EXTENDED_MESSAGE_LEN
            }
            Message::Notification(n) => {
                n.encode_body(&mut out);
                MAX_EXTENDED_MESSAGE_LEN
            }
            Message::Keepalive => MAX_MESSAGE_LEN,
            Message::RouteRefresh(rr) => {
                rr.encode_body(&mut out);
                MAX_EXTENDED_MESSAGE_LEN
            }
        };
        let len = out.len();
        if len > max {
            return Err(EncodeError::MessageTooLong(len));
        }
        let len_bytes = (len as u16).to_be_bytes();
        if let Some(field) = out.get_mut(16..18) {
            field.copy_from_slice(&len_bytes);
        }
        Ok(out)
    }
}

/// Check a complete or partial header (RFC 4271 6.1). Returns the message
/// length and type once all 19 octets are there, `None` before.
fn check_header(buf: &[u8], max_len: usize) -> Result<Option<(usize, u8)>, WireError> {
    // Refuse a bad marker as soon as its first wrong octet arrives.
    if buf.iter().take(MARKER.len()).any(|&b| b != 0xff) {
        return Err(WireError::ConnectionNotSynchronized);
    }
    let mut r = Reader::new(buf);
    let (Some(_), Some(len16), Some(kind)) = (r.take(MARKER.len()), r.u16(), r.u8()) else {
        return Ok(None);
    };
    let len = usize::from(len16);
    if len < HEADER_LEN || len > max_len.max(MAX_MESSAGE_LEN) {
        return Err(WireError::BadMessageLength(len16));
    }
    let len_ok = match kind {
        TYPE_OPEN => (MIN_OPEN_LEN..=MAX_MESSAGE_LEN).contains(&len),
        TYPE_UPDATE => len >= MIN_UPDATE_LEN,
        TYPE_NOTIFICATION => len >= MIN_NOTIFICATION_LEN,
        TYPE_KEEPALIVE => len == HEADER_LEN,
        TYPE_ROUTE_REFRESH => len == HEADER_LEN + RouteRefresh::BODY_LEN,
        other => return Err(WireError::BadMessageType(other)),
    };
    if !len_ok {
        return Err(WireError::BadMessageLength(len16));
    }
    Ok(Some((len, kind)))
}

/// Decode the body of a message whose header has been checked.
fn decode_body(kind: u8, body: &[u8]) -> Result<Message, WireError> {
    // Lengths were checked against the type in `check_header`, so the
    // fallbacks below only fire for a caller that skipped it.
    let bad_len = || WireError::BadMessageLength((HEADER_LEN + body.len()) as u16);
    Ok(match kind {
        TYPE_OPEN => Message::Open(Open::decode(body)?),
        TYPE_UPDATE => Message::Update(body.to_vec()),
        TYPE_NOTIFICATION => Message::Notification(Notification::decode(body).ok_or_else(bad_len)?),
        TYPE_KEEPALIVE if body.is_empty() => Message::Keepalive,
        TYPE_KEEPALIVE => return Err(bad_len()),
        TYPE_ROUTE_REFRESH => {
            Message::RouteRefresh(RouteRefresh::decode(body).ok_or_else(bad_len)?)
        }
        other => return Err(WireError::BadMessageType(other)),
    })
}

/// Take the first message off the front of `buf` (RFC 4271 4.1 and 6.1).
///
/// `max_len` is the largest message accepted: [`MAX_MESSAGE_LEN`], or
/// [`MAX_EXTENDED_MESSAGE_LEN`] once Extended Message is negotiated (values
/// below 4096 are treated as 4096). Returns `Ok(None)` when more bytes are
/// needed, `Ok(Some((message, consumed)))` with the octets used, or the error
/// whose [`WireError::notification`] must be sent before closing.
pub fn frame(buf: &[u8], max_len: usize) -> Result<Option<(Message, usize)>, WireError> {
    let Some((len, kind)) = check_header(buf, max_len)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(HEADER_LEN..len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(kind, body)?, len)))
}

/// Decode exactly one complete message; trailing octets are a length error.
pub fn decode(buf: &[u8], max_len: usize) -> Result<Message, WireError> {
    match frame(buf, max_len)? {
        Some((msg, used)) if used == buf.len() => Ok(msg),
        Some(_) => Err(WireError::BadMessageLength(
            u16::try_from(buf.len()).unwrap_or(u16::MAX),
        )),
        None => match check_header(buf, max_len)? {
            Some((len, _)) => Err(WireError::BadMessageLength(len as u16)),
            None => Err(WireError::BadMessageLength(
                u16::try_from(buf.len()).unwrap_or(u16::MAX),
            )),
        },
    }
}
