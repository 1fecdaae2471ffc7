//! An IP prefix (`192.168.100.10/32`, `fd00:100::10/128`) as the speakers announce it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 prefix; the address is kept as written (host bits are not cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn new(addr: IpAddr, len: u8) -> Self {
        Prefix { addr, len }
    }

    /// A host prefix: /32 for IPv4, /128 for IPv6.
    pub fn host(addr: IpAddr) -> Self {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix { addr, len }
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l.parse::<u8>().map_err(|e| format!("{s:?}: {e}"))?,
            None => max,
        };
        if len > max {
            return Err(format!("{s:?}: prefix length {len} exceeds {max}"));
        }
        Ok(Prefix { addr, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_both_families() {
        let p: Prefix = "192.168.100.10/32".parse().unwrap();
        assert_eq!(p.to_string(), "192.168.100.10/32");
        let p: Prefix = "fd00:100::10".parse().unwrap();
        assert_eq!(p.to_string(), "fd00:100::10/128");
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
    }
}
