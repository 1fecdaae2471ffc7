//! OPEN messages (RFC 4271 4.2) and capabilities (RFC 5492), with the RFC 9072
//! extended optional parameters length.

use super::error::{EncodeError, WireError};
use super::BGP_VERSION;
use crate::reader::Reader;

/// AS_TRANS, sent as My AS by a speaker whose AS needs 4 octets (RFC 6793).
pub const AS_TRANS: u16 = 23456;
/// Optional parameter type: Capabilities (RFC 5492 4).
pub const PARAM_CAPABILITIES: u8 = 2;
/// Marker (length 255 and type 255) of extended optional parameters (RFC 9072 2).
const PARAM_EXTENDED_MARKER: u8 = 255;

/// Capability code: Multiprotocol Extensions (RFC 4760 8).
pub const CAP_MULTIPROTOCOL: u8 = 1;
/// Capability code: Route Refresh (RFC 2918 2).
pub const CAP_ROUTE_REFRESH: u8 = 2;
/// Capability code: BGP Extended Message (RFC 8654 3).
pub const CAP_EXTENDED_MESSAGE: u8 = 6;
/// Capability code: Graceful Restart (RFC 4724 3).
pub const CAP_GRACEFUL_RESTART: u8 = 64;
/// Capability code: 4-octet AS number (RFC 6793 3).
pub const CAP_FOUR_OCTET_AS: u8 = 65;
/// Capability code: Enhanced Route Refresh (RFC 7313 3).
pub const CAP_ENHANCED_ROUTE_REFRESH: u8 = 70;

/// Address Family Identifier (IANA "Address Family Numbers", RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    /// IPv4.
    pub const IPV4: Afi = Afi(1);
    /// IPv6.
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    /// Unicast forwarding.
    pub const UNICAST: Safi = Safi(1);
    /// Multicast forwarding.
    pub const MULTICAST: Safi = Safi(2);
}

/// An address family: AFI and SAFI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AfiSafi {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: Safi,
}

impl AfiSafi {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV4, Safi::UNICAST);
    /// IPv6 unicast.
    pub const IPV6_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV6, Safi::UNICAST);

    /// The family (`afi`, `safi`).
    pub const fn new(afi: Afi, safi: Safi) -> Self {
        Self { afi, safi }
    }
}

/// One address family in a Graceful Restart capability (RFC 4724 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: AfiSafi,
    /// Forwarding State (F) bit: forwarding state was preserved across the
    /// restart.
    pub forwarding_preserved: bool,
}

/// The Graceful Restart capability (RFC 4724 3; N bit RFC 8538 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GracefulRestart {
    /// Restart State (R) bit: the speaker has restarted.
    pub restart_state: bool,
    /// Graceful Notification (N) bit: the speaker supports graceful restart
    /// on NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Restart Time in seconds, 12 bits (0..=4095).
    pub restart_time: u16,
    /// Families whose routes the speaker keeps across a restart.
    pub families: Vec<GracefulRestartFamily>,
}

const GR_FLAG_RESTART: u16 = 0x8000;
const GR_FLAG_NOTIFICATION: u16 = 0x4000;
const GR_TIME_MASK: u16 = 0x0fff;
const GR_FAMILY_FORWARDING: u8 = 0x80;

/// A capability advertised in an OPEN (RFC 5492 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol Extensions for one family (RFC 4760 8).
    Multiprotocol(AfiSafi),
    /// Route Refresh (RFC 2918 2).
    RouteRefresh,
    /// BGP Extended Message: messages up to 65535 octets (RFC 8654 3).
    ExtendedMessage,
    /// Graceful Restart (RFC 4724 3).
    GracefulRestart(GracefulRestart),
    /// Support for 4-octet AS numbers, with the speaker's AS (RFC 6793 3).
    FourOctetAs(u32),
    /// Enhanced Route Refresh (RFC 7313 3).
    EnhancedRouteRefresh,
    /// Any other capability, kept as code and value; RFC 5492 5 says to
    /// ignore what we do not understand.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => CAP_MULTIPROTOCOL,
            Capability::RouteRefresh => CAP_ROUTE_REFRESH,
            Capability::ExtendedMessage => CAP_EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => CAP_GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => CAP_FOUR_OCTET_AS,
            Capability::EnhancedRouteRefresh => CAP_ENHANCED_ROUTE_REFRESH,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Decode one capability value for `code` (RFC 5492 4). Known codes with
    /// a wrong length are malformed.
    fn decode(code: u8, value: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(value);
        let cap = match code {
            CAP_MULTIPROTOCOL => {
                // AFI (2), reserved (1), SAFI (1).
                let (afi, _reserved, safi) = match (r.u16(), r.u8(), r.u8()) {
                    (Some(a), Some(res), Some(s)) => (a, res, s),
                    _ => return Err(WireError::MalformedOpen("multiprotocol capability")),
                };
                Capability::Multiprotocol(AfiSafi::new(Afi(afi), Safi(safi)))
            }
            CAP_ROUTE_REFRESH => Capability::RouteRefresh,
            CAP_EXTENDED_MESSAGE => Capability::ExtendedMessage,
            CAP_ENHANCED_ROUTE_REFRESH => Capability::EnhancedRouteRefresh,
            CAP_FOUR_OCTET_AS => {
                let asn = r
                    .u32()
                    .ok_or(WireError::MalformedOpen("4-octet AS capability"))?;
                if asn == 0 {
                    return Err(WireError::BadPeerAs(0));
                }
                Capability::FourOctetAs(asn)
            }
            CAP_GRACEFUL_RESTART => {
                let malformed = WireError::MalformedOpen("graceful restart capability");
                let flags_time = r.u16().ok_or(malformed.clone())?;
                if r.remaining() % 4 != 0 {
                    return Err(malformed);
                }
                let mut families = Vec::with_capacity(r.remaining() / 4);
                while let (Some(afi), Some(safi), Some(flags)) = (r.u16(), r.u8(), r.u8()) {
                    families.push(GracefulRestartFamily {
                        family: AfiSafi::new(Afi(afi), Safi(safi)),
                        forwarding_preserved: flags & GR_FAMILY_FORWARDING != 0,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: flags_time & GR_FLAG_RESTART != 0,
                    notification: flags_time & GR_FLAG_NOTIFICATION != 0,
                    restart_time: flags_time & GR_TIME_MASK,
                    families,
                })
            }
            _ => {
                return Ok(Capability::Unknown {
                    code,
                    value: value.to_vec(),
                })
            }
        };
        if !r.is_empty() {
            return Err(WireError::MalformedOpen("capability length"));
        }
        Ok(cap)
    }

    /// Append code, length and value (RFC 5492 4).
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut value = Vec::new();
        match self {
            Capability::Multiprotocol(f) => {
                value.extend_from_slice(&f.afi.0.to_be_bytes());
                value.push(0);
                value.push(f.safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::GracefulRestart(gr) => {
                if gr.restart_time > GR_TIME_MASK {
                    return Err(EncodeError::RestartTimeTooLarge(gr.restart_time));
                }
                let mut flags_time = gr.restart_time;
                if gr.restart_state {
                    flags_time |= GR_FLAG_RESTART;
                }
                if gr.notification {
                    flags_time |= GR_FLAG_NOTIFICATION;
                }
                value.extend_from_slice(&flags_time.to_be_bytes());
                for f in &gr.families {
                    value.extend_from_slice(&f.family.afi.0.to_be_bytes());
                    value.push(f.family.safi.0);
                    value.push(if f.forwarding_preserved {
                        GR_FAMILY_FORWARDING
                    } else {
                        0
                    });
                }
            }
            Capability::FourOctetAs(asn) => value.extend_from_slice(&asn.to_be_bytes()),
            Capability::Unknown { value: v, .. } => value.extend_from_slice(v),
        }
        let len = u8::try_from(value.len()).map_err(|_| EncodeError::CapabilityTooLong {
            code: self.code(),
            len: value.len(),
        })?;
        out.push(self.code());
        out.push(len);
        out.extend_from_slice(&value);
        Ok(())
    }
}

/// An OPEN message (RFC 4271 4.2).
///
/// Optional parameters are all Capabilities (type 2, RFC 5492); any other type
/// is refused when decoding. Each inner vector of
/// [`Open::optional_parameters`] is one type-2 parameter, so both layouts seen
/// in practice survive a round trip: FRR puts one capability per parameter,
/// MetalLB's native speaker puts all of them in one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// My Autonomous System, 2 octets; [`AS_TRANS`] when the real AS needs 4
    /// octets (see [`Open::peer_as`]).
    pub my_as: u16,
    /// Proposed hold time in seconds: 0 or at least 3.
    pub hold_time: u16,
    /// BGP Identifier, non-zero.
    pub bgp_id: u32,
    /// Capabilities, grouped by the optional parameter that carries them.
    pub optional_parameters: Vec<Vec<Capability>>,
    /// Encode the optional parameters in the RFC 9072 extended format (2-octet
    /// lengths). Set when decoded from that format; encoding switches to it
    /// on its own when the parameters do not fit the classic one.
    pub extended_parameters: bool,
}

impl Open {
    /// An OPEN for `asn` (sent as [`AS_TRANS`] if above 65535, with the
    /// 4-octet AS capability added unless `capabilities` already carries one),
    /// each capability in its own optional parameter.
    pub fn new(asn: u32, hold_time: u16, bgp_id: u32, mut capabilities: Vec<Capability>) -> Self {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
        if my_as == AS_TRANS
            && !capabilities
                .iter()
                .any(|c| matches!(c, Capability::FourOctetAs(_)))
        {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        Self {
            my_as,
            hold_time,
            bgp_id,
            optional_parameters: capabilities.into_iter().map(|c| vec![c]).collect(),
            extended_parameters: false,
        }
    }

    /// Every capability, in order, across all optional parameters.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.optional_parameters.iter().flatten()
    }

    /// The speaker's AS: the 4-octet AS capability's if present (RFC 6793 4.1),
    /// else My AS.
    pub fn peer_as(&self) -> u32 {
        self.capabilities()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// True if a capability with this code was advertised.
    pub fn has_capability(&self, code: u8) -> bool {
        self.capabilities().any(|c| c.code() == code)
    }

    /// The families advertised with the Multiprotocol capability.
    pub fn multiprotocol_families(&self) -> impl Iterator<Item = AfiSafi> + '_ {
        self.capabilities().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }

    /// The Graceful Restart capability, if advertised.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    /// Decode an OPEN body (after the 19-octet header), RFC 4271 4.2 and 6.2.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let short = WireError::MalformedOpen("body shorter than 10 octets");
        let version = r.u8().ok_or(short.clone())?;
        if version != BGP_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let my_as = r.u16().ok_or(short.clone())?;
        let hold_time = r.u16().ok_or(short.clone())?;
        let bgp_id = r.u32().ok_or(short.clone())?;
        let opt_len = r.u8().ok_or(short)?;
        if my_as == 0 {
            return Err(WireError::BadPeerAs(0));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(WireError::UnacceptableHoldTime(hold_time));
        }
        if bgp_id == 0 {
            return Err(WireError::BadBgpIdentifier(0));
        }
        // RFC 9072 2: length 255 followed by type 255 announces 2-octet lengths.
        let extended =
            opt_len == PARAM_EXTENDED_MARKER && r.peek_at(0) == Some(PARAM_EXTENDED_MARKER);
        let params = if extended {
            r.u8();
            let len = r.u16().ok_or(WireError::MalformedOpen(
                "extended optional parameters length",
            ))?;
            usize::from(len)
        } else {
            usize::from(opt_len)
        };
        if params != r.remaining() {
            return Err(WireError::MalformedOpen(
                "optional parameters length disagrees with message length",
            ));
        }
        let mut optional_parameters = Vec::new();
        while !r.is_empty() {
            let truncated = WireError::MalformedOpen("optional parameter truncated");
            let kind = r.u8().ok_or(truncated.clone())?;
            let len = if extended {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            }
            .ok_or(truncated.clone())?;
            let value = r.take(len).ok_or(truncated)?;
            if kind != PARAM_CAPABILITIES {
                return Err(WireError::UnsupportedOptionalParameter(kind));
            }
            optional_parameters.push(decode_capabilities(value)?);
        }
        Ok(Open {
            my_as,
            hold_time,
            bgp_id,
            optional_parameters,
            extended_parameters: extended,
        })
    }

    /// Append the body (not the header) to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut params = Vec::with_capacity(self.optional_parameters.len());
        for group in &self.optional_parameters {
            let mut value = Vec::new();
            for cap in group {
                cap.encode(&mut value)?;
            }
            params.push(value);
        }
        let classic_len: usize = params.iter().map(|p| 2 + p.len()).sum();
        let extended = self.extended_parameters
            || classic_len > usize::from(u8::MAX)
            || params.iter().any(|p| p.len() > usize::from(u8::MAX));
        out.push(BGP_VERSION);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.to_be_bytes());
        if extended {
            let total: usize = params.iter().map(|p| 3 + p.len()).sum();
            let total = u16::try_from(total).map_err(|_| EncodeError::ParameterTooLong(total))?;
            out.extend_from_slice(&[PARAM_EXTENDED_MARKER, PARAM_EXTENDED_MARKER]);
            out.extend_from_slice(&total.to_be_bytes());
            for p in &params {
                let len =
                    u16::try_from(p.len()).map_err(|_| EncodeError::ParameterTooLong(p.len()))?;
                out.push(PARAM_CAPABILITIES);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(p);
            }
        } else {
            // Fits: classic_len <= 255 and each parameter < 256 was checked.
            out.push(classic_len as u8);
            for p in &params {
                out.push(PARAM_CAPABILITIES);
                out.push(p.len() as u8);
                out.extend_from_slice(p);
            }
        }
        Ok(())
    }
}

/// Decode the capabilities of one type-2 optional parameter (RFC 5492 4).
fn decode_capabilities(value: &[u8]) -> Result<Vec<Capability>, WireError> {
    let mut r = Reader::new(value);
    let mut caps = Vec::new();
    while !r.is_empty() {
        let truncated = WireError::MalformedOpen("capability truncated");
        let code = r.u8().ok_or(truncated.clone())?;
        let len = r.u8().ok_or(truncated.clone())?;
        let value = r.take(usize::from(len)).ok_or(truncated)?;
        caps.push(Capability::decode(code, value)?);
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bits_are_ignored_and_dropped_on_encode() {
        // Graceful restart with reserved flag bits 0x3 and family flags 0x7f
        // set, MP with a non-zero reserved octet: accepted, re-encoded clean.
        let gr = Capability::decode(CAP_GRACEFUL_RESTART, &[0xb0, 0x78, 0, 1, 1, 0xff]).unwrap();
        let Capability::GracefulRestart(g) = &gr else {
            panic!("not graceful restart")
        };
        assert!(g.restart_state && !g.notification);
        assert_eq!(g.restart_time, 120);
        assert!(g.families[0].forwarding_preserved);
        let mut out = Vec::new();
        gr.encode(&mut out).unwrap();
        assert_eq!(out, [64, 6, 0x80, 0x78, 0, 1, 1, 0x80]);
        let mp = Capability::decode(CAP_MULTIPROTOCOL, &[0, 2, 9, 1]).unwrap();
        assert_eq!(mp, Capability::Multiprotocol(AfiSafi::IPV6_UNICAST));
    }

    #[test]
    fn empty_capability_parameter_round_trips() {
        assert_eq!(decode_capabilities(&[]), Ok(vec![]));
        let body = [4, 0xfd, 0xe8, 0, 90, 0, 0, 0, 1, 2, 2, 0];
        let open = Open::decode(&body).unwrap();
        assert_eq!(open.optional_parameters, vec![Vec::<Capability>::new()]);
        let mut out = Vec::new();
        open.encode_body(&mut out).unwrap();
        assert_eq!(out, body);
    }
}
