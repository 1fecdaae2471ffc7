//! The small value types of the configuration, each parsed from the text a
//! network engineer writes: AS numbers and peer-AS matches, communities,
//! prefix ranges with `ge`/`le`, address families, durations, the MD5
//! password.

use std::fmt;
use std::time::Duration;

use dataplane::fib::table::Prefix;

use crate::bgp::wire::AfiSafi;

/// AS_TRANS (RFC 6793): a placeholder on the wire, never a real AS.
pub const AS_TRANS: u32 = 23456;

/// Checks an AS number written as an integer or as asdot text (`"1.10"`,
/// RFC 5396); refuses 0 (RFC 7607) and AS_TRANS.
pub fn parse_asn(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let asn = if let Some((hi, lo)) = t.split_once('.') {
        let part = |s: &str| s.parse::<u16>().ok();
        match (part(hi), part(lo)) {
            (Some(hi), Some(lo)) => (u32::from(hi) << 16) | u32::from(lo),
            _ => {
                return Err(format!(
                    "`{t}` is not an AS number (write 64512, or asdot 1.10)"
                ))
            }
        }
    } else {
        t.parse::<u32>()
            .map_err(|_| format!("`{t}` is not an AS number (1 to 4294967295)"))?
    };
    check_asn(i64::from(asn))
}

/// Checks an AS number given as an integer.
pub fn check_asn(asn: i64) -> Result<u32, String> {
    match asn {
        0 => Err("AS 0 is reserved (RFC 7607) and cannot be used".into()),
        23456 => {
            Err("AS 23456 is AS_TRANS (RFC 6793), a placeholder on the wire, not a real AS".into())
        }
        1..=4_294_967_295 => Ok(asn as u32),
        _ => Err(format!("{asn} is not an AS number (1 to 4294967295)")),
    }
}

/// The AS a configured neighbour must have (FRR's `remote-as`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAs {
    /// Exactly this AS.
    Exact(u32),
    /// Our own AS (iBGP).
    Internal,
    /// Any AS but ours (eBGP).
    External,
}

impl PeerAs {
    /// Whether a neighbour announcing `remote` in its OPEN is acceptable to a
    /// router of AS `local`.
    pub fn matches(self, local: u32, remote: u32) -> bool {
        match self {
            PeerAs::Exact(a) => a == remote,
            PeerAs::Internal => remote == local,
            PeerAs::External => remote != local,
        }
    }

    /// Whether the session is iBGP, when that is known from the
    /// configuration alone.
    pub fn is_internal(self, local: u32) -> bool {
        match self {
            PeerAs::Exact(a) => a == local,
            PeerAs::Internal => true,
            PeerAs::External => false,
        }
    }
}

impl fmt::Display for PeerAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAs::Exact(a) => write!(f, "{a}"),
            PeerAs::Internal => f.write_str("internal"),
            PeerAs::External => f.write_str("external"),
        }
    }
}

/// The AS numbers a listen range accepts from dynamic neighbours: the
/// session layer's own type.
pub use crate::bgp::fsm::PeerAsMatch;

pub use crate::bgp::wire::attrs::{Community, LargeCommunity};

pub use crate::rib::policy::{PolicyAction, PrefixRange};

/// A prefix-list entry as FRR reads `ip prefix-list ... permit P ge G le L`:
/// routes inside `prefix` whose length is within `ge..=le`. Without bounds
/// only `prefix` itself matches; with `le` alone lengths run from the
/// prefix's own; with `ge` alone, up to the family's maximum. The range
/// returned carries both bounds explicitly. Checks `len <= ge <= le <= max`.
pub fn prefix_range(prefix: Prefix, ge: Option<u8>, le: Option<u8>) -> Result<PrefixRange, String> {
    let len = prefix.prefix_len();
    let max = prefix.max_len();
    let (ge, le) = match (ge, le) {
        (None, None) => (len, len),
        (Some(g), None) => (g, max),
        (None, Some(l)) => (len, l),
        (Some(g), Some(l)) => (g, l),
    };
    if le > max {
        return Err(format!(
            "le {le} is longer than an {} prefix can be ({max})",
            family(&prefix)
        ));
    }
    if ge < len {
        return Err(format!(
            "ge {ge} is shorter than the prefix's own length {len}"
        ));
    }
    if ge > le {
        return Err(format!("ge {ge} is more than le {le}"));
    }
    Ok(PrefixRange::with_bounds(prefix, Some(ge), Some(le)))
}

/// Whether `outer` covers `inner` ([`Prefix::covers`]).
pub fn prefix_covers(outer: &Prefix, inner: &Prefix) -> bool {
    outer.covers(inner)
}

/// Whether two prefixes share any address.
pub fn prefixes_overlap(a: &Prefix, b: &Prefix) -> bool {
    prefix_covers(a, b) || prefix_covers(b, a)
}

pub(crate) fn family(p: &Prefix) -> &'static str {
    match p {
        Prefix::V4(..) => "IPv4",
        Prefix::V6(..) => "IPv6",
    }
}

/// Parses an address family name: `ipv4-unicast` or `ipv6-unicast` (also
/// `ipv4`, `ipv6`, and FRR's `ipv4 unicast`).
pub fn parse_family(s: &str) -> Result<AfiSafi, String> {
    match s
        .trim()
        .to_ascii_lowercase()
        .replace([' ', '_'], "-")
        .as_str()
    {
        "ipv4-unicast" | "ipv4" => Ok(AfiSafi::IPV4_UNICAST),
        "ipv6-unicast" | "ipv6" => Ok(AfiSafi::IPV6_UNICAST),
        _ => Err(format!(
            "unknown address family `{}`: choose from ipv4-unicast, ipv6-unicast",
            s.trim()
        )),
    }
}

/// The configuration name of a family.
pub fn family_name(f: AfiSafi) -> &'static str {
    if f == AfiSafi::IPV4_UNICAST {
        "ipv4-unicast"
    } else if f == AfiSafi::IPV6_UNICAST {
        "ipv6-unicast"
    } else {
        "other"
    }
}

/// A TCP MD5 signature key (RFC 2385); at most 80 bytes as Linux's
/// `TCP_MD5SIG_MAXKEYLEN`. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Longest key Linux accepts.
    pub const MAX_LEN: usize = 80;

    pub fn new(key: &str) -> Result<Password, String> {
        if key.is_empty() {
            return Err("is empty (leave it out for no TCP MD5)".into());
        }
        if key.len() > Password::MAX_LEN {
            return Err(format!(
                "is {} bytes; TCP MD5 keys are at most {} bytes",
                key.len(),
                Password::MAX_LEN
            ));
        }
        Ok(Password(key.to_string()))
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

/// A policy action as written: `accept`/`permit` or `deny`/`reject`.
pub fn parse_action(s: &str) -> Result<PolicyAction, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "accept" | "permit" => Ok(PolicyAction::Accept),
        "deny" | "reject" => Ok(PolicyAction::Deny),
        other => Err(format!("unknown action `{other}`: choose accept or deny")),
    }
}

/// Parses a duration written with units (`"90s"`, `"300ms"`, `"1m30s"`;
/// `ns`, `us`, `ms`, `s`, `m`, `h`), as scenario files write them. Bare
/// numbers are read by the field (seconds for BGP timers, milliseconds for
/// BFD intervals), not here.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    dataplane::emulator::scenario::Duration::parse(text).map(|d| Duration::from_nanos(d.0))
}

/// Shows a duration the way the file writes it (`90s`, `300ms`).
pub fn show_duration(d: Duration) -> String {
    dataplane::emulator::scenario::Duration(d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .to_string()
}
