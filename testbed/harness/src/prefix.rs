//! Service prefixes are the data plane's own [`Prefix`]; this adds what the launchers ask
//! of one.

use std::net::IpAddr;

pub use dataplane::fib::table::Prefix;

/// The address and family of a [`Prefix`].
pub trait PrefixExt {
    /// The address as written (host bits are not cleared).
    fn addr(&self) -> IpAddr;
    fn is_ipv4(&self) -> bool;
}

impl PrefixExt for Prefix {
    fn addr(&self) -> IpAddr {
        match *self {
            Prefix::V4(a, _) => a.into(),
            Prefix::V6(a, _) => a.into(),
        }
    }

    fn is_ipv4(&self) -> bool {
        matches!(self, Prefix::V4(..))
    }
}
