//! Path attributes (RFC 4271 4.3 and 5): their types, how each one is read
//! from and written to the wire, and what RFC 7606 says to do when one is
//! malformed.
//!
//! Decoding one attribute returns either its meaning or an [`ErrorAction`]:
//! attribute-discard (drop the attribute, keep the routes) or
//! treat-as-withdraw (drop the routes of the whole UPDATE). The UPDATE
//! decoder in [`super::update`] collects these and decides the message's
//! outcome; the few cases that still reset the session are its business.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Serialize, Serializer};

use crate::reader::Reader;

/// Attribute flag: optional (1) or well-known (0) (RFC 4271 4.3).
pub const FLAG_OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive (RFC 4271 4.3).
pub const FLAG_TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial, set when an optional transitive attribute passed
/// a speaker that did not recognise it (RFC 4271 4.3).
pub const FLAG_PARTIAL: u8 = 0x20;
/// Attribute flag: the length field is two octets (RFC 4271 4.3).
pub const FLAG_EXTENDED_LENGTH: u8 = 0x10;

/// ORIGIN (RFC 4271 5.1.1).
pub const ATTR_ORIGIN: u8 = 1;
/// AS_PATH (RFC 4271 5.1.2).
pub const ATTR_AS_PATH: u8 = 2;
/// NEXT_HOP (RFC 4271 5.1.3).
pub const ATTR_NEXT_HOP: u8 = 3;
/// MULTI_EXIT_DISC (RFC 4271 5.1.4).
pub const ATTR_MED: u8 = 4;
/// LOCAL_PREF (RFC 4271 5.1.5).
pub const ATTR_LOCAL_PREF: u8 = 5;
/// ATOMIC_AGGREGATE (RFC 4271 5.1.6).
pub const ATTR_ATOMIC_AGGREGATE: u8 = 6;
/// AGGREGATOR (RFC 4271 5.1.7).
pub const ATTR_AGGREGATOR: u8 = 7;
/// COMMUNITIES (RFC 1997).
pub const ATTR_COMMUNITIES: u8 = 8;
/// ORIGINATOR_ID (RFC 4456).
pub const ATTR_ORIGINATOR_ID: u8 = 9;
/// CLUSTER_LIST (RFC 4456).
pub const ATTR_CLUSTER_LIST: u8 = 10;
/// MP_REACH_NLRI (RFC 4760).
pub const ATTR_MP_REACH_NLRI: u8 = 14;
/// MP_UNREACH_NLRI (RFC 4760).
pub const ATTR_MP_UNREACH_NLRI: u8 = 15;
/// EXTENDED COMMUNITIES (RFC 4360).
pub const ATTR_EXTENDED_COMMUNITIES: u8 = 16;
/// AS4_PATH (RFC 6793).
pub const ATTR_AS4_PATH: u8 = 17;
/// AS4_AGGREGATOR (RFC 6793).
pub const ATTR_AS4_AGGREGATOR: u8 = 18;
/// LARGE_COMMUNITY (RFC 8092).
pub const ATTR_LARGE_COMMUNITIES: u8 = 32;

/// The 2-octet AS that stands in for a 4-octet one (RFC 6793).
const AS_TRANS: u32 = 23456;

/// The name of an attribute type code, as RFCs and vtysh spell it.
pub fn attribute_name(code: u8) -> &'static str {
    match code {
        ATTR_ORIGIN => "ORIGIN",
        ATTR_AS_PATH => "AS_PATH",
        ATTR_NEXT_HOP => "NEXT_HOP",
        ATTR_MED => "MULTI_EXIT_DISC",
        ATTR_LOCAL_PREF => "LOCAL_PREF",
        ATTR_ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        ATTR_AGGREGATOR => "AGGREGATOR",
        ATTR_COMMUNITIES => "COMMUNITIES",
        ATTR_ORIGINATOR_ID => "ORIGINATOR_ID",
        ATTR_CLUSTER_LIST => "CLUSTER_LIST",
        ATTR_MP_REACH_NLRI => "MP_REACH_NLRI",
        ATTR_MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        ATTR_EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        ATTR_AS4_PATH => "AS4_PATH",
        ATTR_AS4_AGGREGATOR => "AS4_AGGREGATOR",
        ATTR_LARGE_COMMUNITIES => "LARGE_COMMUNITY",
        _ => "unknown",
    }
}

/// The optional and transitive bits a known attribute must carry, or `None`
/// for a type this decoder does not know.
pub(crate) fn expected_flags(code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = FLAG_TRANSITIVE;
    const OPT_TRANS: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
    const OPT_NON_TRANS: u8 = FLAG_OPTIONAL;
    Some(match code {
        ATTR_ORIGIN | ATTR_AS_PATH | ATTR_NEXT_HOP | ATTR_LOCAL_PREF | ATTR_ATOMIC_AGGREGATE => {
            WELL_KNOWN
        }
        ATTR_AGGREGATOR
        | ATTR_COMMUNITIES
        | ATTR_EXTENDED_COMMUNITIES
        | ATTR_AS4_PATH
        | ATTR_AS4_AGGREGATOR
        | ATTR_LARGE_COMMUNITIES => OPT_TRANS,
        ATTR_MED | ATTR_ORIGINATOR_ID | ATTR_CLUSTER_LIST | ATTR_MP_REACH_NLRI
        | ATTR_MP_UNREACH_NLRI => OPT_NON_TRANS,
        _ => return None,
    })
}

/// What RFC 7606 says to do with a malformed attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorAction {
    /// Drop the attribute and keep the routes (RFC 7606 2).
    AttributeDiscard,
    /// Keep the session, but withdraw every route the UPDATE carries
    /// (RFC 7606 2).
    TreatAsWithdraw,
}

impl fmt::Display for ErrorAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorAction::AttributeDiscard => "attribute-discard",
            ErrorAction::TreatAsWithdraw => "treat-as-withdraw",
        })
    }
}

/// ORIGIN (RFC 4271 5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Learned from an interior protocol (or a `network` statement).
    Igp,
    /// Learned by EGP.
    Egp,
    /// Learned some other way (redistribution).
    Incomplete,
}

impl Origin {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }

    /// The origin of a wire value.
    pub fn from_code(v: u8) -> Option<Origin> {
        match v {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Igp => "IGP",
            Origin::Egp => "EGP",
            Origin::Incomplete => "incomplete",
        })
    }
}

/// The kind of an AS_PATH segment (RFC 4271 4.3, RFC 5065 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentKind {
    /// AS_SET: unordered, from aggregation.
    Set,
    /// AS_SEQUENCE: ordered, nearest AS first.
    Sequence,
    /// AS_CONFED_SEQUENCE (RFC 5065).
    ConfedSequence,
    /// AS_CONFED_SET (RFC 5065).
    ConfedSet,
}

impl SegmentKind {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            SegmentKind::Set => 1,
            SegmentKind::Sequence => 2,
            SegmentKind::ConfedSequence => 3,
            SegmentKind::ConfedSet => 4,
        }
    }

    /// The kind of a wire value.
    pub fn from_code(v: u8) -> Option<SegmentKind> {
        match v {
            1 => Some(SegmentKind::Set),
            2 => Some(SegmentKind::Sequence),
            3 => Some(SegmentKind::ConfedSequence),
            4 => Some(SegmentKind::ConfedSet),
            _ => None,
        }
    }

    fn is_confed(self) -> bool {
        matches!(self, SegmentKind::ConfedSequence | SegmentKind::ConfedSet)
    }
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AsSegment {
    /// Set or sequence, plain or confederation.
    pub kind: SegmentKind,
    /// The AS numbers, nearest first for sequences.
    pub asns: Vec<u32>,
}

/// An AS_PATH with 4-octet AS numbers; on 2-octet sessions, the path after
/// merging AS4_PATH (RFC 6793 4.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AsPath {
    /// The segments, in wire order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty when `asns` is).
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> AsPath {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// True for the empty path (a route from an iBGP peer's own AS).
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.asns.is_empty())
    }

    /// The length the decision process compares (RFC 4271 9.1.2.2 a): each
    /// AS of a sequence counts one, a whole AS_SET one, confederation
    /// segments nothing (RFC 5065 5.3).
    pub fn route_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// The neighbouring AS: the first AS of a leading AS_SEQUENCE
    /// (RFC 4271 9.1.2.2 c). `None` for an empty path or one that starts
    /// with a set.
    pub fn first_as(&self) -> Option<u32> {
        let seg = self.segments.iter().find(|s| !s.kind.is_confed())?;
        match seg.kind {
            SegmentKind::Sequence => seg.asns.first().copied(),
            _ => None,
        }
    }

    /// Whether `asn` appears anywhere in the path (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The path with `asn` put in front, as a speaker does when it sends the
    /// route to an external peer.
    pub fn prepend(&self, asn: u32) -> AsPath {
        let mut out = self.clone();
        match out.segments.first_mut() {
            Some(seg) if seg.kind == SegmentKind::Sequence && seg.asns.len() < 255 => {
                seg.asns.insert(0, asn)
            }
            _ => out.segments.insert(
                0,
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
        out
    }

    /// Whether any AS needs four octets.
    pub fn needs_four_octets(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|&a| a > u32::from(u16::MAX)))
    }

    /// Decode an AS_PATH or AS4_PATH value with 2- or 4-octet AS numbers
    /// (RFC 4271 4.3, RFC 6793). Refuses unknown segment types, empty
    /// segments and values that end inside a segment (RFC 7606 7.2).
    pub fn decode(value: &[u8], four_octet: bool) -> Result<AsPath, &'static str> {
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let (Some(kind), Some(count)) = (r.u8(), r.u8()) else {
                return Err("a segment header is cut short");
            };
            let kind = SegmentKind::from_code(kind).ok_or("unknown segment type")?;
            if count == 0 {
                return Err("a segment holds no AS numbers");
            }
            let mut asns = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let asn = if four_octet {
                    r.u32()
                } else {
                    r.u16().map(u32::from)
                };
                asns.push(asn.ok_or("a segment is longer than the attribute")?);
            }
            segments.push(AsSegment { kind, asns });
        }
        Ok(AsPath { segments })
    }

    /// Encode with 2- or 4-octet AS numbers; with two, ASes above 65535
    /// become AS_TRANS (RFC 6793 4.2.2). Segments longer than 255 ASes are
    /// split.
    pub fn encode(&self, four_octet: bool, out: &mut Vec<u8>) {
        for seg in &self.segments {
            for chunk in seg.asns.chunks(255) {
                out.push(seg.kind.code());
                out.push(chunk.len() as u8);
                for &asn in chunk {
                    if four_octet {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        let two = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
                        out.extend_from_slice(&two.to_be_bytes());
                    }
                }
            }
        }
    }

    /// Rebuild the real path from a 2-octet session's AS_PATH and the
    /// AS4_PATH beside it (RFC 6793 4.2.3): keep the leading ASes of AS_PATH
    /// that AS4_PATH does not cover, then append AS4_PATH. An AS4_PATH longer
    /// than AS_PATH is ignored (returns `None`).
    pub fn merge_as4(&self, as4: &AsPath) -> Option<AsPath> {
        let len = self.route_len();
        let len4 = as4.route_len();
        if len < len4 {
            return None;
        }
        let mut keep = len - len4;
        let mut segments = Vec::new();
        for seg in &self.segments {
            if keep == 0 {
                break;
            }
            match seg.kind {
                SegmentKind::Sequence => {
                    let n = seg.asns.len().min(keep);
                    segments.push(AsSegment {
                        kind: seg.kind,
                        asns: seg.asns.get(..n).unwrap_or_default().to_vec(),
                    });
                    keep -= n;
                }
                SegmentKind::Set => {
                    segments.push(seg.clone());
                    keep -= 1;
                }
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => segments.push(seg.clone()),
            }
        }
        let mut rest = as4.segments.iter().cloned();
        // Join the kept head and AS4_PATH into one sequence where they meet.
        if let (Some(last), Some(next)) = (segments.last_mut(), as4.segments.first()) {
            let joinable = last.kind == SegmentKind::Sequence
                && next.kind == SegmentKind::Sequence
                && last.asns.len() + next.asns.len() <= 255;
            if joinable {
                last.asns.extend_from_slice(&next.asns);
                rest.next();
            }
        }
        segments.extend(rest);
        Some(AsPath { segments })
    }
}

impl fmt::Display for AsPath {
    /// vtysh style: `65001 65002 {3,4} (65100)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, sep, close) = match seg.kind {
                SegmentKind::Sequence => ("", " ", ""),
                SegmentKind::Set => ("{", ",", "}"),
                SegmentKind::ConfedSequence => ("(", " ", ")"),
                SegmentKind::ConfedSet => ("[", ",", "]"),
            };
            f.write_str(open)?;
            for (i, asn) in seg.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{asn}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

/// AGGREGATOR (RFC 4271 5.1.7), with the AS widened to four octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Aggregator {
    /// The AS that aggregated.
    pub asn: u32,
    /// The router that aggregated.
    pub address: Ipv4Addr,
}

/// A standard community (RFC 1997): `AS:value`, or a well-known name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT (RFC 1997).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// NO_ADVERTISE (RFC 1997).
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// NOPEER (RFC 3765).
    pub const NO_PEER: Community = Community(0xFFFF_FF04);
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);
    /// LLGR_STALE (RFC 9494).
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// NO_LLGR (RFC 9494).
    pub const NO_LLGR: Community = Community(0xFFFF_0007);

    /// ACCEPT_OWN (RFC 7611).
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);

    /// Well-known communities by the names FRR and MetalLB use.
    pub const WELL_KNOWN: [(Community, &'static str); 9] = [
        (Community::GRACEFUL_SHUTDOWN, "graceful-shutdown"),
        (Community::ACCEPT_OWN, "accept-own"),
        (Community::LLGR_STALE, "llgr-stale"),
        (Community::NO_LLGR, "no-llgr"),
        (Community::BLACKHOLE, "blackhole"),
        (Community::NO_EXPORT, "no-export"),
        (Community::NO_ADVERTISE, "no-advertise"),
        (Community::NO_EXPORT_SUBCONFED, "no-export-subconfed"),
        (Community::NO_PEER, "no-peer"),
    ];

    /// The community `high:low`.
    pub const fn new(high: u16, low: u16) -> Community {
        Community(((high as u32) << 16) | low as u32)
    }

    /// The well-known name, if it has one (FRR's spelling).
    pub fn well_known_name(self) -> Option<&'static str> {
        Self::WELL_KNOWN
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, name)| *name)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.well_known_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff),
        }
    }
}

impl std::str::FromStr for Community {
    type Err = String;

    /// `65000:100` (two 16-bit halves), a well-known name (`no-export`,
    /// `no-advertise`, `local-as` as FRR's alias of `no-export-subconfed`),
    /// or one 32-bit number.
    fn from_str(s: &str) -> Result<Community, String> {
        let t = s.trim().to_ascii_lowercase();
        let t = if t == "local-as" {
            "no-export-subconfed"
        } else {
            t.as_str()
        };
        if let Some((c, _)) = Self::WELL_KNOWN.iter().find(|(_, n)| *n == t) {
            return Ok(*c);
        }
        let bad = || {
            let names: Vec<&str> = Self::WELL_KNOWN.iter().map(|(_, n)| *n).collect();
            format!(
                "`{}` is not a community: write ASN:VALUE with 16-bit halves (65000:100) or a well-known name ({})",
                s.trim(),
                names.join(", ")
            )
        };
        match t.split_once(':') {
            Some((high, low)) => {
                let high: u16 = high.parse().map_err(|_| bad())?;
                let low: u16 = low.parse().map_err(|_| bad())?;
                Ok(Community::new(high, low))
            }
            None => t.parse().map(Community).map_err(|_| bad()),
        }
    }
}

impl Serialize for Community {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A large community (RFC 8092): `global:local1:local2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (an AS).
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

impl std::str::FromStr for LargeCommunity {
    type Err = String;

    /// `65000:1:2`.
    fn from_str(s: &str) -> Result<LargeCommunity, String> {
        let bad =
            || format!("'{s}' is not a large community: write global:local1:local2 (65000:1:2)");
        let mut parts = s.trim().split(':').map(|p| p.parse::<u32>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(global)), Some(Ok(local1)), Some(Ok(local2)), None) => Ok(LargeCommunity {
                global,
                local1,
                local2,
            }),
            _ => Err(bad()),
        }
    }
}

impl Serialize for LargeCommunity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An extended community (RFC 4360), kept as its eight octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl fmt::Display for ExtendedCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [t, st, rest @ ..] = self.0;
        // Route targets and origins of the two-octet-AS type read as in vtysh.
        match (t, st) {
            (0x00, 0x02) | (0x00, 0x03) => {
                let asn = u16::from_be_bytes([rest[0], rest[1]]);
                let val = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
                let kind = if st == 0x02 { "RT" } else { "SoO" };
                write!(f, "{kind}:{asn}:{val}")
            }
            _ => {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for ExtendedCommunity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An attribute this decoder does not interpret, kept as received so an
/// optional transitive one can be passed on (RFC 4271 5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RawAttribute {
    /// Flags as received.
    pub flags: u8,
    /// Type code.
    pub code: u8,
    /// Value, hex in JSON.
    #[serde(serialize_with = "hex")]
    pub value: Vec<u8>,
}

/// Serialize bytes as a lowercase hex string.
pub(crate) fn hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    s.serialize_str(&out)
}

/// The path attributes of an UPDATE, except MP_REACH_NLRI and
/// MP_UNREACH_NLRI, which carry routes and live beside them in
/// [`super::update::Update`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct PathAttributes {
    /// ORIGIN; `None` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// AS_PATH with 4-octet AS numbers (AS4_PATH merged on 2-octet
    /// sessions); `None` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 routes in the NLRI field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only; discarded from external peers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub atomic_aggregate: bool,
    /// AGGREGATOR (AS4_AGGREGATOR merged on 2-octet sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES, in received order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY, in received order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<LargeCommunity>,
    /// EXTENDED COMMUNITIES.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extended_communities: Vec<ExtendedCommunity>,
    /// ORIGINATOR_ID (route reflection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (route reflection).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_list: Vec<Ipv4Addr>,
    /// Attributes not interpreted here (unknown optional ones), kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttribute>,
}

/// Split `value` into fixed-size items, or fail when its length is zero or
/// not a multiple of `N` (RFC 7606 7.8, 7.10, 7.14; RFC 8092 5).
fn chunks<const N: usize>(value: &[u8]) -> Result<impl Iterator<Item = [u8; N]> + '_, ()> {
    if value.is_empty() || value.len() % N != 0 {
        return Err(());
    }
    Ok(value
        .chunks_exact(N)
        .map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N])))
}

fn u32_of(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.try_into().ok()?))
}

/// How one attribute value decodes: into the attribute set, or a problem.
pub(crate) type AttrResult = Result<(), (ErrorAction, &'static str)>;

/// Decode one known attribute other than MP_REACH/MP_UNREACH/AS4_* into
/// `attrs`. `ibgp` changes the handling of LOCAL_PREF (RFC 7606 7.5).
pub(crate) fn decode_simple(
    code: u8,
    value: &[u8],
    four_octet: bool,
    ibgp: bool,
    attrs: &mut PathAttributes,
) -> AttrResult {
    use ErrorAction::{AttributeDiscard as Discard, TreatAsWithdraw as Withdraw};
    match code {
        ATTR_ORIGIN => {
            let [v] = value else {
                return Err((Withdraw, "length is not 1"));
            };
            attrs.origin = Some(Origin::from_code(*v).ok_or((Withdraw, "undefined value"))?);
        }
        ATTR_AS_PATH => {
            attrs.as_path = Some(AsPath::decode(value, four_octet).map_err(|e| (Withdraw, e))?);
        }
        ATTR_NEXT_HOP => {
            let v = u32_of(value).ok_or((Withdraw, "length is not 4"))?;
            let addr = Ipv4Addr::from(v);
            // RFC 4271 6.3 / RFC 7606 7.3: a next hop no one can forward to.
            if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
                return Err((Withdraw, "not a unicast address"));
            }
            attrs.next_hop = Some(addr);
        }
        ATTR_MED => attrs.med = Some(u32_of(value).ok_or((Withdraw, "length is not 4"))?),
        ATTR_LOCAL_PREF => {
            if !ibgp {
                // RFC 7606 7.5: from an external peer, discarded whatever it holds.
                return Err((Discard, "sent by an external peer"));
            }
            attrs.local_pref = Some(u32_of(value).ok_or((Withdraw, "length is not 4"))?);
        }
        ATTR_ATOMIC_AGGREGATE => {
            if !value.is_empty() {
                return Err((Discard, "length is not 0"));
            }
            attrs.atomic_aggregate = true;
        }
        ATTR_AGGREGATOR => attrs.aggregator = Some(decode_aggregator(value, four_octet)?),
        ATTR_COMMUNITIES => {
            let items =
                chunks::<4>(value).map_err(|_| (Withdraw, "length is 0 or not a multiple of 4"))?;
            attrs.communities = items.map(|c| Community(u32::from_be_bytes(c))).collect();
        }
        ATTR_LARGE_COMMUNITIES => {
            let items = chunks::<12>(value)
                .map_err(|_| (Withdraw, "length is 0 or not a multiple of 12"))?;
            attrs.large_communities = items
                .map(|c| {
                    let word = |i: usize| u32_of(c.get(i..i + 4).unwrap_or_default()).unwrap_or(0);
                    LargeCommunity {
                        global: word(0),
                        local1: word(4),
                        local2: word(8),
                    }
                })
                .collect();
        }
        ATTR_EXTENDED_COMMUNITIES => {
            let items =
                chunks::<8>(value).map_err(|_| (Withdraw, "length is 0 or not a multiple of 8"))?;
            attrs.extended_communities = items.map(ExtendedCommunity).collect();
        }
        ATTR_ORIGINATOR_ID => {
            attrs.originator_id = Some(Ipv4Addr::from(
                u32_of(value).ok_or((Withdraw, "length is not 4"))?,
            ));
        }
        ATTR_CLUSTER_LIST => {
            let items =
                chunks::<4>(value).map_err(|_| (Withdraw, "length is 0 or not a multiple of 4"))?;
            attrs.cluster_list = items.map(Ipv4Addr::from).collect();
        }
        _ => return Err((Discard, "not decoded here")),
    }
    Ok(())
}

/// AGGREGATOR: 6 octets on 2-octet sessions, 8 on 4-octet ones; AS4_AGGREGATOR
/// is always 8 (RFC 7606 7.7, RFC 6793 6).
pub(crate) fn decode_aggregator(
    value: &[u8],
    four_octet: bool,
) -> Result<Aggregator, (ErrorAction, &'static str)> {
    let mut r = Reader::new(value);
    let asn = if four_octet {
        r.u32()
    } else {
        r.u16().map(u32::from)
    };
    match (asn, r.u32(), r.is_empty()) {
        (Some(asn), Some(addr), true) => Ok(Aggregator {
            asn,
            address: Ipv4Addr::from(addr),
        }),
        _ => Err((
            ErrorAction::AttributeDiscard,
            if four_octet {
                "length is not 8"
            } else {
                "length is not 6"
            },
        )),
    }
}

/// Append one attribute: flags, code, a one- or two-octet length, the value.
/// Values too long for two octets are cut by the caller's message limit.
pub(crate) fn put_attr(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    let flags = flags & !FLAG_EXTENDED_LENGTH;
    if let Ok(len) = u8::try_from(value.len()) {
        out.extend_from_slice(&[flags, code, len]);
    } else {
        out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, code]);
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(value);
}

impl PathAttributes {
    /// Encode the attributes (not MP_*) in type-code order. On a 2-octet
    /// session, a path or aggregator with a 4-octet AS is sent as AS_TRANS
    /// with AS4_PATH / AS4_AGGREGATOR beside it (RFC 6793 4.2.2).
    pub(crate) fn encode(&self, four_octet: bool, out: &mut Vec<u8>, mp: &[(u8, Vec<u8>)]) {
        const WK: u8 = FLAG_TRANSITIVE;
        const OT: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
        const ON: u8 = FLAG_OPTIONAL;
        if let Some(origin) = self.origin {
            put_attr(out, WK, ATTR_ORIGIN, &[origin.code()]);
        }
        if let Some(path) = &self.as_path {
            let mut v = Vec::new();
            path.encode(four_octet, &mut v);
            put_attr(out, WK, ATTR_AS_PATH, &v);
        }
        if let Some(nh) = self.next_hop {
            put_attr(out, WK, ATTR_NEXT_HOP, &nh.octets());
        }
        if let Some(med) = self.med {
            put_attr(out, ON, ATTR_MED, &med.to_be_bytes());
        }
        if let Some(lp) = self.local_pref {
            put_attr(out, WK, ATTR_LOCAL_PREF, &lp.to_be_bytes());
        }
        if self.atomic_aggregate {
            put_attr(out, WK, ATTR_ATOMIC_AGGREGATE, &[]);
        }
        if let Some(agg) = self.aggregator {
            let mut v = Vec::with_capacity(8);
            if four_octet {
                v.extend_from_slice(&agg.asn.to_be_bytes());
            } else {
                let two = u16::try_from(agg.asn).unwrap_or(AS_TRANS as u16);
                v.extend_from_slice(&two.to_be_bytes());
            }
            v.extend_from_slice(&agg.address.octets());
            put_attr(out, OT, ATTR_AGGREGATOR, &v);
        }
        if !self.communities.is_empty() {
            let v: Vec<u8> = self
                .communities
                .iter()
                .flat_map(|c| c.0.to_be_bytes())
                .collect();
            put_attr(out, OT, ATTR_COMMUNITIES, &v);
        }
        if let Some(id) = self.originator_id {
            put_attr(out, ON, ATTR_ORIGINATOR_ID, &id.octets());
        }
        if !self.cluster_list.is_empty() {
            let v: Vec<u8> = self.cluster_list.iter().flat_map(|a| a.octets()).collect();
            put_attr(out, ON, ATTR_CLUSTER_LIST, &v);
        }
        for (code, value) in mp {
            put_attr(out, ON, *code, value);
        }
        if !self.extended_communities.is_empty() {
            let v: Vec<u8> = self.extended_communities.iter().flat_map(|c| c.0).collect();
            put_attr(out, OT, ATTR_EXTENDED_COMMUNITIES, &v);
        }
        if !four_octet {
            if let Some(path) = self.as_path.as_ref().filter(|p| p.needs_four_octets()) {
                let mut v = Vec::new();
                path.encode(true, &mut v);
                put_attr(out, OT, ATTR_AS4_PATH, &v);
            }
            if let Some(agg) = self.aggregator.filter(|a| a.asn > u32::from(u16::MAX)) {
                let mut v = agg.asn.to_be_bytes().to_vec();
                v.extend_from_slice(&agg.address.octets());
                put_attr(out, OT, ATTR_AS4_AGGREGATOR, &v);
            }
        }
        if !self.large_communities.is_empty() {
            let v: Vec<u8> = self
                .large_communities
                .iter()
                .flat_map(|c| {
                    let mut b = [0u8; 12];
                    b[..4].copy_from_slice(&c.global.to_be_bytes());
                    b[4..8].copy_from_slice(&c.local1.to_be_bytes());
                    b[8..].copy_from_slice(&c.local2.to_be_bytes());
                    b
                })
                .collect();
            put_attr(out, OT, ATTR_LARGE_COMMUNITIES, &v);
        }
        for raw in &self.unknown {
            put_attr(out, raw.flags, raw.code, &raw.value);
        }
    }
}
