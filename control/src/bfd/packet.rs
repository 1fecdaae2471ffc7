//! The BFD Control packet (RFC 5880 section 4.1) and the reception checks of
//! RFC 5880 6.8.6 that need nothing but the packet itself.
//!
//! [`ControlPacket::decode`] is what a receiver calls: it refuses every packet
//! RFC 5880 6.8.6 says to discard on its own contents, and refuses packets
//! carrying an authentication section because ecmpd implements no
//! authentication (6.8.6: "If the A bit is set and no authentication is in
//! use, the packet MUST be discarded"). [`ControlPacket::parse`] runs the same
//! checks but keeps a well-formed authentication section, so it can be shown.
//! Decoding never panics: all reads go through a bounds-checked cursor.

use std::time::Duration;

use crate::reader::Reader;

/// BFD protocol version (RFC 5880 4.1).
pub const BFD_VERSION: u8 = 1;
/// Length of the mandatory section, and of a packet without authentication.
pub const MANDATORY_LEN: usize = 24;
/// Smallest Length with the A bit set: the mandatory section, Auth Type and
/// Auth Len (RFC 5880 6.8.6).
pub const MIN_AUTH_PACKET_LEN: usize = 26;

/// Flag bits in the second octet (RFC 5880 4.1).
mod flag {
    pub const POLL: u8 = 0x20;
    pub const FINAL: u8 = 0x10;
    pub const CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
    pub const AUTH: u8 = 0x04;
    pub const DEMAND: u8 = 0x02;
    pub const MULTIPOINT: u8 = 0x01;
}

/// Session state, as carried in the State field (RFC 5880 4.1 and 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// 0: the session is held down by its administrator.
    AdminDown,
    /// 1: no session, or it just went down.
    Down,
    /// 2: the remote system is heard, but has not yet heard us.
    Init,
    /// 3: both ends hear each other.
    Up,
}

impl State {
    /// The two-bit field value.
    pub fn code(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The state for a two-bit field value (only the low two bits are used).
    pub fn from_code(code: u8) -> State {
        match code & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// The name FRR and the RFC print: `AdminDown`, `Down`, `Init`, `Up`.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Diagnostic code: why the sender's session last changed state
/// (RFC 5880 4.1; 9 from RFC 6428).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0.
    NoDiagnostic,
    /// 1: no packet for a Detection Time.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the neighbour said Down or AdminDown.
    NeighborSignaledSessionDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7: taken down by the administrator.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9 (RFC 6428).
    MisConnectivityDefect,
    /// 10 to 31: not assigned; kept so that it can be shown and re-encoded.
    Unassigned(u8),
}

impl Diagnostic {
    /// The five-bit field value.
    pub fn code(self) -> u8 {
        match self {
            Diagnostic::NoDiagnostic => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::MisConnectivityDefect => 9,
            Diagnostic::Unassigned(c) => c & 0x1f,
        }
    }

    /// The diagnostic for a five-bit field value (only the low five bits are used).
    pub fn from_code(code: u8) -> Diagnostic {
        match code & 0x1f {
            0 => Diagnostic::NoDiagnostic,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            9 => Diagnostic::MisConnectivityDefect,
            other => Diagnostic::Unassigned(other),
        }
    }

    /// A short phrase, as in RFC 5880 4.1.
    pub fn name(self) -> &'static str {
        match self {
            Diagnostic::NoDiagnostic => "No Diagnostic",
            Diagnostic::ControlDetectionTimeExpired => "Control Detection Time Expired",
            Diagnostic::EchoFunctionFailed => "Echo Function Failed",
            Diagnostic::NeighborSignaledSessionDown => "Neighbor Signaled Session Down",
            Diagnostic::ForwardingPlaneReset => "Forwarding Plane Reset",
            Diagnostic::PathDown => "Path Down",
            Diagnostic::ConcatenatedPathDown => "Concatenated Path Down",
            Diagnostic::AdministrativelyDown => "Administratively Down",
            Diagnostic::ReverseConcatenatedPathDown => "Reverse Concatenated Path Down",
            Diagnostic::MisConnectivityDefect => "Mis-Connectivity Defect",
            Diagnostic::Unassigned(_) => "Unassigned",
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// Authentication Type values (RFC 5880 4.1).
pub mod auth_type {
    /// Simple Password (RFC 5880 4.2).
    pub const SIMPLE_PASSWORD: u8 = 1;
    /// Keyed MD5 (RFC 5880 4.3).
    pub const KEYED_MD5: u8 = 2;
    /// Meticulous Keyed MD5 (RFC 5880 4.3).
    pub const METICULOUS_KEYED_MD5: u8 = 3;
    /// Keyed SHA1 (RFC 5880 4.4).
    pub const KEYED_SHA1: u8 = 4;
    /// Meticulous Keyed SHA1 (RFC 5880 4.4).
    pub const METICULOUS_KEYED_SHA1: u8 = 5;
}

/// The optional authentication section (RFC 5880 4.2 to 4.4), parsed far
/// enough to be shown. ecmpd verifies none of it: see [`ControlPacket::decode`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Authentication {
    /// Type 1: a key ID and a password of 1 to 16 octets.
    SimplePassword {
        /// Auth Key ID.
        key_id: u8,
        /// The password, 1 to 16 octets.
        password: Vec<u8>,
    },
    /// Types 2 and 3: Keyed MD5 and Meticulous Keyed MD5.
    KeyedMd5 {
        /// True for Meticulous Keyed MD5 (type 3).
        meticulous: bool,
        /// Auth Key ID.
        key_id: u8,
        /// Sequence Number.
        sequence: u32,
        /// The 16-octet digest.
        digest: [u8; 16],
    },
    /// Types 4 and 5: Keyed SHA1 and Meticulous Keyed SHA1.
    KeyedSha1 {
        /// True for Meticulous Keyed SHA1 (type 5).
        meticulous: bool,
        /// Auth Key ID.
        key_id: u8,
        /// Sequence Number.
        sequence: u32,
        /// The 20-octet hash.
        hash: [u8; 20],
    },
}

impl Authentication {
    /// The Auth Type octet.
    pub fn auth_type(&self) -> u8 {
        match self {
            Authentication::SimplePassword { .. } => auth_type::SIMPLE_PASSWORD,
            Authentication::KeyedMd5 {
                meticulous: false, ..
            } => auth_type::KEYED_MD5,
            Authentication::KeyedMd5 {
                meticulous: true, ..
            } => auth_type::METICULOUS_KEYED_MD5,
            Authentication::KeyedSha1 {
                meticulous: false, ..
            } => auth_type::KEYED_SHA1,
            Authentication::KeyedSha1 {
                meticulous: true, ..
            } => auth_type::METICULOUS_KEYED_SHA1,
        }
    }

    /// The Auth Key ID.
    pub fn key_id(&self) -> u8 {
        match self {
            Authentication::SimplePassword { key_id, .. }
            | Authentication::KeyedMd5 { key_id, .. }
            | Authentication::KeyedSha1 { key_id, .. } => *key_id,
        }
    }

    /// The section's length on the wire, Auth Type and Auth Len included.
    pub fn wire_len(&self) -> usize {
        match self {
            Authentication::SimplePassword { password, .. } => 3 + password.len(),
            Authentication::KeyedMd5 { .. } => 24,
            Authentication::KeyedSha1 { .. } => 28,
        }
    }

    fn parse(section: &[u8]) -> Result<Authentication, PacketError> {
        let mut r = Reader::new(section);
        let (Some(kind), Some(len)) = (r.u8(), r.u8()) else {
            return Err(PacketError::MalformedAuthentication(
                "no Auth Type and Auth Len",
            ));
        };
        let body_len = usize::from(len).saturating_sub(2);
        let expected = match kind {
            auth_type::SIMPLE_PASSWORD if (4..=19).contains(&len) => usize::from(len),
            auth_type::SIMPLE_PASSWORD => {
                return Err(PacketError::MalformedAuthentication(
                    "Simple Password Auth Len is not 4 to 19",
                ))
            }
            auth_type::KEYED_MD5 | auth_type::METICULOUS_KEYED_MD5 => 24,
            auth_type::KEYED_SHA1 | auth_type::METICULOUS_KEYED_SHA1 => 28,
            other => return Err(PacketError::UnknownAuthType(other)),
        };
        if usize::from(len) != expected {
            return Err(PacketError::MalformedAuthentication(
                "Auth Len does not match the Auth Type",
            ));
        }
        let Some(body) = r.take(body_len) else {
            return Err(PacketError::MalformedAuthentication(
                "Auth Len runs past the packet Length",
            ));
        };
        let mut b = Reader::new(body);
        let key_id = b.u8().unwrap_or(0);
        Ok(match kind {
            auth_type::SIMPLE_PASSWORD => Authentication::SimplePassword {
                key_id,
                password: b.rest().to_vec(),
            },
            auth_type::KEYED_MD5 | auth_type::METICULOUS_KEYED_MD5 => {
                let _reserved = b.u8();
                let sequence = b.u32().unwrap_or(0);
                let mut digest = [0; 16];
                digest.copy_from_slice(b.take(16).unwrap_or(&[0; 16]));
                Authentication::KeyedMd5 {
                    meticulous: kind == auth_type::METICULOUS_KEYED_MD5,
                    key_id,
                    sequence,
                    digest,
                }
            }
            _ => {
                let _reserved = b.u8();
                let sequence = b.u32().unwrap_or(0);
                let mut hash = [0; 20];
                hash.copy_from_slice(b.take(20).unwrap_or(&[0; 20]));
                Authentication::KeyedSha1 {
                    meticulous: kind == auth_type::METICULOUS_KEYED_SHA1,
                    key_id,
                    sequence,
                    hash,
                }
            }
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.auth_type());
        out.push(u8::try_from(self.wire_len()).unwrap_or(u8::MAX));
        out.push(self.key_id());
        match self {
            Authentication::SimplePassword { password, .. } => out.extend_from_slice(password),
            Authentication::KeyedMd5 {
                sequence, digest, ..
            } => {
                out.push(0);
                out.extend_from_slice(&sequence.to_be_bytes());
                out.extend_from_slice(digest);
            }
            Authentication::KeyedSha1 { sequence, hash, .. } => {
                out.push(0);
                out.extend_from_slice(&sequence.to_be_bytes());
                out.extend_from_slice(hash);
            }
        }
    }
}

/// A received packet that must be discarded, one variant per reason
/// (RFC 5880 6.8.6 and section 4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer octets than the Version and Length fields need.
    #[error("truncated BFD packet: {0} octets")]
    Truncated(usize),
    /// Version is not 1 (6.8.6).
    #[error("unsupported BFD version {0}")]
    BadVersion(u8),
    /// Length below 24, or below 26 with the A bit set (6.8.6).
    #[error("BFD Length {length} is below the minimum of {minimum}")]
    LengthTooShort {
        /// The Length field.
        length: u8,
        /// 24, or 26 with the A bit set.
        minimum: u8,
    },
    /// Length above the UDP payload (6.8.6).
    #[error("BFD Length {length} exceeds the {payload}-octet payload")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// Octets actually received.
        payload: usize,
    },
    /// Detect Mult is zero (6.8.6).
    #[error("BFD Detect Mult is zero")]
    ZeroDetectMult,
    /// The Multipoint (M) bit is set (6.8.6).
    #[error("BFD Multipoint bit is set")]
    MultipointSet,
    /// My Discriminator is zero (6.8.6).
    #[error("BFD My Discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while State is Init or Up (6.8.6).
    #[error("BFD Your Discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
    /// Poll and Final are both set, which RFC 5880 6.5 forbids.
    #[error("BFD Poll and Final bits are both set")]
    PollAndFinal,
    /// The authentication section has an Auth Type outside 1 to 5.
    #[error("unknown BFD Auth Type {0}")]
    UnknownAuthType(u8),
    /// The authentication section is inconsistent with its lengths.
    #[error("malformed BFD authentication section: {0}")]
    MalformedAuthentication(&'static str),
    /// The A bit is set: ecmpd implements no BFD authentication, and RFC 5880
    /// 6.8.6 says to discard such packets when none is in use.
    #[error("BFD authentication type {auth_type} (key ID {key_id}) is not supported")]
    AuthenticationUnsupported {
        /// Auth Type.
        auth_type: u8,
        /// Auth Key ID.
        key_id: u8,
    },
}

/// A packet that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A Simple Password outside 1 to 16 octets (RFC 5880 4.2).
    #[error("BFD simple password of {0} octets is not 1 to 16")]
    BadPasswordLength(usize),
}

/// One BFD Control packet (RFC 5880 4.1). Intervals are in microseconds, as
/// on the wire. The A bit is `auth.is_some()`; the M bit is always clear.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    /// Diagnostic code.
    pub diag: Diagnostic,
    /// The sender's session state.
    pub state: State,
    /// Poll (P) bit: the sender asks for a Final.
    pub poll: bool,
    /// Final (F) bit: the answer to a Poll.
    pub fin: bool,
    /// Control Plane Independent (C) bit.
    pub control_plane_independent: bool,
    /// Demand (D) bit.
    pub demand: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discr: u32,
    /// Your Discriminator.
    pub your_discr: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, microseconds (0: no echo).
    pub required_min_echo_rx_us: u32,
    /// Authentication section; `Some` sets the A bit.
    pub auth: Option<Authentication>,
}

impl ControlPacket {
    /// Desired Min TX Interval as a duration.
    pub fn desired_min_tx(&self) -> Duration {
        Duration::from_micros(u64::from(self.desired_min_tx_us))
    }

    /// Required Min RX Interval as a duration.
    pub fn required_min_rx(&self) -> Duration {
        Duration::from_micros(u64::from(self.required_min_rx_us))
    }

    /// Length on the wire.
    pub fn wire_len(&self) -> usize {
        MANDATORY_LEN + self.auth.as_ref().map_or(0, Authentication::wire_len)
    }

    /// Decode a received UDP payload, applying every reception check of RFC
    /// 5880 6.8.6 that depends on the packet alone, and refusing any packet
    /// with the A bit set ([`PacketError::AuthenticationUnsupported`]).
    /// Octets after Length are ignored.
    pub fn decode(payload: &[u8]) -> Result<ControlPacket, PacketError> {
        let packet = Self::parse(payload)?;
        match &packet.auth {
            Some(auth) => Err(PacketError::AuthenticationUnsupported {
                auth_type: auth.auth_type(),
                key_id: auth.key_id(),
            }),
            None => Ok(packet),
        }
    }

    /// As [`ControlPacket::decode`], but a well-formed authentication section
    /// is kept in [`ControlPacket::auth`] instead of refused. It is not
    /// verified: use this to show a packet, never to accept one.
    pub fn parse(payload: &[u8]) -> Result<ControlPacket, PacketError> {
        let mut r = Reader::new(payload);
        let Some(vers_diag) = r.u8() else {
            return Err(PacketError::Truncated(payload.len()));
        };
        let version = vers_diag >> 5;
        if version != BFD_VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let (Some(state_flags), Some(detect_mult), Some(length)) = (r.u8(), r.u8(), r.u8()) else {
            return Err(PacketError::Truncated(payload.len()));
        };
        let has_auth = state_flags & flag::AUTH != 0;
        let minimum = if has_auth {
            MIN_AUTH_PACKET_LEN
        } else {
            MANDATORY_LEN
        };
        if usize::from(length) < minimum {
            return Err(PacketError::LengthTooShort {
                length,
                minimum: minimum as u8,
            });
        }
        if usize::from(length) > payload.len() {
            return Err(PacketError::LengthExceedsPayload {
                length,
                payload: payload.len(),
            });
        }
        if detect_mult == 0 {
            return Err(PacketError::ZeroDetectMult);
        }
        if state_flags & flag::MULTIPOINT != 0 {
            return Err(PacketError::MultipointSet);
        }
        // Length >= 24 <= payload.len(), so these reads cannot fail; the
        // fallbacks only keep the code free of panics.
        let mut fields = || r.u32().ok_or(PacketError::Truncated(payload.len()));
        let my_discr = fields()?;
        let your_discr = fields()?;
        let desired_min_tx_us = fields()?;
        let required_min_rx_us = fields()?;
        let required_min_echo_rx_us = fields()?;
        let state = State::from_code(state_flags >> 6);
        if my_discr == 0 {
            return Err(PacketError::ZeroMyDiscriminator);
        }
        if your_discr == 0 && matches!(state, State::Init | State::Up) {
            return Err(PacketError::ZeroYourDiscriminator(state));
        }
        let poll = state_flags & flag::POLL != 0;
        let fin = state_flags & flag::FINAL != 0;
        if poll && fin {
            return Err(PacketError::PollAndFinal);
        }
        let auth = if has_auth {
            let section = payload
                .get(MANDATORY_LEN..usize::from(length))
                .unwrap_or_default();
            Some(Authentication::parse(section)?)
        } else {
            None
        };
        Ok(ControlPacket {
            diag: Diagnostic::from_code(vers_diag),
            state,
            poll,
            fin,
            control_plane_independent: state_flags & flag::CONTROL_PLANE_INDEPENDENT != 0,
            demand: state_flags & flag::DEMAND != 0,
            detect_mult,
            my_discr,
            your_discr,
            desired_min_tx_us,
            required_min_rx_us,
            required_min_echo_rx_us,
            auth,
        })
    }

    /// Encode the packet. Fails only for a Simple Password outside 1 to 16
    /// octets. Fields the receiver would refuse (a zero discriminator, P and F
    /// together) are encoded as given, so tests can build bad packets.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if let Some(Authentication::SimplePassword { password, .. }) = &self.auth {
            if !(1..=16).contains(&password.len()) {
                return Err(EncodeError::BadPasswordLength(password.len()));
            }
        }
        let len = self.wire_len();
        let mut out = Vec::with_capacity(len);
        out.push((BFD_VERSION << 5) | self.diag.code());
        let mut flags = self.state.code() << 6;
        for (set, bit) in [
            (self.poll, flag::POLL),
            (self.fin, flag::FINAL),
            (
                self.control_plane_independent,
                flag::CONTROL_PLANE_INDEPENDENT,
            ),
            (self.auth.is_some(), flag::AUTH),
            (self.demand, flag::DEMAND),
        ] {
            if set {
                flags |= bit;
            }
        }
        out.push(flags);
        out.push(self.detect_mult);
        // At most 24 + 28 octets, so the cast is exact.
        out.push(len as u8);
        for field in [
            self.my_discr,
            self.your_discr,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        ] {
            out.extend_from_slice(&field.to_be_bytes());
        }
        if let Some(auth) = &self.auth {
            auth.encode(&mut out);
        }
        Ok(out)
    }
}
