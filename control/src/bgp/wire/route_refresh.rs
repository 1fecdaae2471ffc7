//! ROUTE-REFRESH messages (RFC 2918 3) with the Enhanced Route Refresh
//! subtypes (RFC 7313 3.2).

use super::open::{Afi, AfiSafi, Safi};
use crate::reader::Reader;

/// The octet between AFI and SAFI: reserved in RFC 2918, Message Subtype in
/// RFC 7313 3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteRefreshSubtype {
    /// 0: a normal route refresh request (RFC 2918).
    Request,
    /// 1: Beginning of Route Refresh (BoRR, RFC 7313).
    Begin,
    /// 2: End of Route Refresh (EoRR, RFC 7313).
    End,
    /// Any other value; RFC 7313 5 says to ignore such a message.
    Other(u8),
}

impl From<u8> for RouteRefreshSubtype {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Request,
            1 => Self::Begin,
            2 => Self::End,
            other => Self::Other(other),
        }
    }
}

impl From<RouteRefreshSubtype> for u8 {
    fn from(s: RouteRefreshSubtype) -> u8 {
        match s {
            RouteRefreshSubtype::Request => 0,
            RouteRefreshSubtype::Begin => 1,
            RouteRefreshSubtype::End => 2,
            RouteRefreshSubtype::Other(v) => v,
        }
    }
}

/// A ROUTE-REFRESH message (RFC 2918 3, RFC 7313 3.2): AFI (2 octets),
/// subtype (1), SAFI (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family whose routes are asked for (or delimited).
    pub family: AfiSafi,
    /// Request, BoRR or EoRR.
    pub subtype: RouteRefreshSubtype,
}

impl RouteRefresh {
    /// Body length: the message is always 23 octets.
    pub const BODY_LEN: usize = 4;

    /// A normal request for `family`.
    pub fn request(family: AfiSafi) -> Self {
        Self {
            family,
            subtype: RouteRefreshSubtype::Request,
        }
    }

    /// Decode a 4-octet body; `None` for any other length.
    pub fn decode(body: &[u8]) -> Option<Self> {
        let mut r = Reader::new(body);
        let afi = r.u16()?;
        let subtype = r.u8()?;
        let safi = r.u8()?;
        r.is_empty().then_some(Self {
            family: AfiSafi::new(Afi(afi), Safi(safi)),
            subtype: subtype.into(),
        })
    }

    /// Append the body (not the header) to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.0.to_be_bytes());
        out.push(self.subtype.into());
        out.push(self.family.safi.0);
    }
}
