//! UPDATE messages (RFC 4271 4.3, RFC 4760 for IPv6) and the revised error
//! handling of RFC 7606.
//!
//! [`decode_update`] reads an UPDATE body into an [`Update`] and sorts every
//! fault into one of three outcomes:
//! - **attribute-discard**: a malformed ATOMIC_AGGREGATE, AGGREGATOR,
//!   AS4_PATH or AS4_AGGREGATOR, or LOCAL_PREF from an external peer, is
//!   dropped and the routes are kept;
//! - **treat-as-withdraw**: a malformed ORIGIN, AS_PATH, NEXT_HOP, MED,
//!   LOCAL_PREF (iBGP), COMMUNITIES, LARGE_COMMUNITY, EXTENDED COMMUNITIES,
//!   ORIGINATOR_ID or CLUSTER_LIST, wrong optional/transitive flags, a
//!   missing well-known mandatory attribute, an attribute list whose lengths
//!   overrun it, or (eBGP) a path that does not start with the peer's AS:
//!   every route the message carries is withdrawn and the session stays up;
//! - **session reset** (`Err`, with the NOTIFICATION to send): only where the
//!   routes cannot be located any more: the withdrawn-routes or NLRI fields
//!   do not parse, MP_REACH_NLRI or MP_UNREACH_NLRI is malformed or appears
//!   twice, or an unrecognised well-known attribute arrives.
//!
//! Every problem found is reported in [`DecodedUpdate::problems`], so a tool
//! can say what was wrong and what was done about it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::fib::table::Prefix;
use serde::{Serialize, Serializer};

use super::attrs::{
    attribute_name, decode_aggregator, decode_simple, expected_flags, put_attr, AsPath,
    ErrorAction, PathAttributes, RawAttribute, ATTR_AGGREGATOR, ATTR_AS4_AGGREGATOR, ATTR_AS4_PATH,
    ATTR_AS_PATH, ATTR_ATOMIC_AGGREGATE, ATTR_MP_REACH_NLRI, ATTR_MP_UNREACH_NLRI, ATTR_NEXT_HOP,
    ATTR_ORIGIN, FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE,
};
use super::error::{EncodeError, WireError};
use super::notification::{
    UPDATE_ATTRIBUTE_FLAGS_ERROR, UPDATE_INVALID_NETWORK_FIELD, UPDATE_MALFORMED_ATTRIBUTE_LIST,
    UPDATE_OPTIONAL_ATTRIBUTE_ERROR, UPDATE_UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
};
use super::open::{Afi, AfiSafi, Safi};
use crate::reader::Reader;

/// What the session negotiated that changes how an UPDATE reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateContext {
    /// Both sides advertised the 4-octet AS capability (RFC 6793): AS_PATH
    /// and AGGREGATOR carry 4-octet AS numbers.
    pub four_octet_as: bool,
    /// The peer is internal (same AS): LOCAL_PREF is honoured, and no
    /// first-AS check applies.
    pub ibgp: bool,
    /// For an external peer, its AS: a path whose first AS differs is
    /// treated as withdrawn (RFC 4271 6.3, RFC 7606 7.2; FRR's
    /// `enforce-first-as`). `None` disables the check.
    pub peer_as: Option<u32>,
}

impl Default for UpdateContext {
    /// A 4-octet-AS external session without the first-AS check, the usual
    /// case today.
    fn default() -> Self {
        UpdateContext {
            four_octet_as: true,
            ibgp: false,
            peer_as: None,
        }
    }
}

/// The next hop of MP_REACH_NLRI (RFC 4760 3): one address, or for IPv6 a
/// global address and a link-local one (RFC 2545 3, 32 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct MpNextHop {
    /// The global (or only) next hop.
    pub global: IpAddr,
    /// The link-local next hop of a 32-octet IPv6 next hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_local: Option<Ipv6Addr>,
}

/// MP_REACH_NLRI for IPv4 or IPv6 unicast (RFC 4760 3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MpReach {
    /// The address family.
    #[serde(serialize_with = "family_name")]
    pub family: AfiSafi,
    /// Where the routes point.
    pub next_hop: MpNextHop,
    /// The routes announced.
    #[serde(serialize_with = "prefixes")]
    pub nlri: Vec<Prefix>,
}

/// MP_UNREACH_NLRI for IPv4 or IPv6 unicast (RFC 4760 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MpUnreach {
    /// The address family.
    #[serde(serialize_with = "family_name")]
    pub family: AfiSafi,
    /// The routes withdrawn.
    #[serde(serialize_with = "prefixes")]
    pub withdrawn: Vec<Prefix>,
}

/// An UPDATE: IPv4 routes withdrawn and announced in the classic fields,
/// path attributes, and the multiprotocol attributes for IPv6 (or IPv4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Update {
    /// IPv4 routes withdrawn (Withdrawn Routes field).
    #[serde(serialize_with = "prefixes")]
    pub withdrawn: Vec<Prefix>,
    /// Path attributes other than MP_REACH_NLRI and MP_UNREACH_NLRI.
    pub attributes: PathAttributes,
    /// MP_REACH_NLRI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mp_unreach: Option<MpUnreach>,
    /// IPv4 routes announced (NLRI field).
    #[serde(serialize_with = "prefixes")]
    pub nlri: Vec<Prefix>,
}

/// How the UPDATE as a whole is to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Apply as sent (possibly minus discarded attributes).
    Accept,
    /// Withdraw every route it announces or withdraws (RFC 7606 2).
    TreatAsWithdraw,
}

/// One fault found in an UPDATE and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AttributeProblem {
    /// Attribute type code (0 for faults of the attribute list itself).
    pub code: u8,
    /// Attribute name (`AS_PATH`, ...).
    pub attribute: &'static str,
    /// Discarded, treated as withdraw, or (for a repeated attribute) the
    /// later copies ignored.
    pub action: ProblemAction,
    /// What was wrong.
    pub reason: &'static str,
}

/// What was done about one fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemAction {
    /// The attribute was dropped (RFC 7606 attribute-discard).
    AttributeDiscard,
    /// The message's routes are withdrawn (RFC 7606 treat-as-withdraw).
    TreatAsWithdraw,
    /// A repeated attribute: every copy after the first was ignored
    /// (RFC 7606 3 g), or an address family this router does not route.
    Ignored,
}

impl From<ErrorAction> for ProblemAction {
    fn from(a: ErrorAction) -> Self {
        match a {
            ErrorAction::AttributeDiscard => ProblemAction::AttributeDiscard,
            ErrorAction::TreatAsWithdraw => ProblemAction::TreatAsWithdraw,
        }
    }
}

/// A decoded UPDATE with its RFC 7606 outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecodedUpdate {
    /// What the message says, minus anything discarded.
    pub update: Update,
    /// Accept, or treat as withdraw.
    pub outcome: Outcome,
    /// Every fault found, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<AttributeProblem>,
}

impl DecodedUpdate {
    /// The routes to install with [`Update::attributes`], per family: none
    /// when the message is treated as withdraw.
    pub fn announced(&self) -> impl Iterator<Item = Prefix> + '_ {
        let live = self.outcome == Outcome::Accept;
        let mp = self.update.mp_reach.iter().flat_map(|m| m.nlri.iter());
        self.update
            .nlri
            .iter()
            .chain(mp)
            .copied()
            .filter(move |_| live)
    }

    /// The routes to remove: those withdrawn, and under treat-as-withdraw
    /// also those announced.
    pub fn withdrawn(&self) -> impl Iterator<Item = Prefix> + '_ {
        let taw = self.outcome == Outcome::TreatAsWithdraw;
        let mp_un = self
            .update
            .mp_unreach
            .iter()
            .flat_map(|m| m.withdrawn.iter());
        let as_withdraw = self
            .update
            .nlri
            .iter()
            .chain(self.update.mp_reach.iter().flat_map(|m| m.nlri.iter()))
            .filter(move |_| taw);
        self.update
            .withdrawn
            .iter()
            .chain(mp_un)
            .chain(as_withdraw)
            .copied()
    }
}

impl Update {
    /// The End-of-RIB marker for `family` (RFC 4724 2): an empty UPDATE for
    /// IPv4 unicast, otherwise an UPDATE holding only an empty
    /// MP_UNREACH_NLRI.
    pub fn end_of_rib(family: AfiSafi) -> Update {
        let mut u = Update::default();
        if family != AfiSafi::IPV4_UNICAST {
            u.mp_unreach = Some(MpUnreach {
                family,
                withdrawn: Vec::new(),
            });
        }
        u
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<AfiSafi> {
        let no_routes =
            self.withdrawn.is_empty() && self.nlri.is_empty() && self.mp_reach.is_none();
        if !no_routes || self.attributes != PathAttributes::default() {
            return None;
        }
        match &self.mp_unreach {
            None => Some(AfiSafi::IPV4_UNICAST),
            Some(un) if un.withdrawn.is_empty() => Some(un.family),
            Some(_) => None,
        }
    }

    /// Encode the body (after the header). IPv4 prefixes in `withdrawn` and
    /// `nlri`, the family's in the MP attributes; the caller checks the
    /// negotiated message size.
    pub fn encode_body(&self, ctx: &UpdateContext) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        let mut withdrawn = Vec::new();
        put_prefixes(&self.withdrawn, Afi::IPV4, &mut withdrawn)?;
        let len = u16::try_from(withdrawn.len())
            .map_err(|_| EncodeError::MessageTooLong(withdrawn.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&withdrawn);

        let mut mp = Vec::new();
        if let Some(reach) = &self.mp_reach {
            mp.push((ATTR_MP_REACH_NLRI, encode_mp_reach(reach)?));
        }
        if let Some(unreach) = &self.mp_unreach {
            let mut v = family_octets(unreach.family);
            put_prefixes(&unreach.withdrawn, unreach.family.afi, &mut v)?;
            mp.push((ATTR_MP_UNREACH_NLRI, v));
        }
        let mut attrs = Vec::new();
        self.attributes.encode(ctx.four_octet_as, &mut attrs, &mp);
        let len =
            u16::try_from(attrs.len()).map_err(|_| EncodeError::MessageTooLong(attrs.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&attrs);
        put_prefixes(&self.nlri, Afi::IPV4, &mut out)?;
        Ok(out)
    }
}

fn family_octets(family: AfiSafi) -> Vec<u8> {
    let mut v = family.afi.0.to_be_bytes().to_vec();
    v.push(family.safi.0);
    v
}

fn encode_mp_reach(reach: &MpReach) -> Result<Vec<u8>, EncodeError> {
    let mut v = family_octets(reach.family);
    let mut nh = match reach.next_hop.global {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    if let Some(ll) = reach.next_hop.link_local {
        nh.extend_from_slice(&ll.octets());
    }
    v.push(nh.len() as u8);
    v.extend_from_slice(&nh);
    v.push(0); // Reserved (RFC 4760 3).
    put_prefixes(&reach.nlri, reach.family.afi, &mut v)?;
    Ok(v)
}

/// Append prefixes in NLRI encoding: the length in bits, then as many
/// octets as it needs (RFC 4271 4.3).
fn put_prefixes(prefixes: &[Prefix], afi: Afi, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for p in prefixes {
        let len = p.prefix_len();
        let octets: Vec<u8> = match (*p, afi) {
            (Prefix::V4(a, l), Afi::IPV4) if l <= 32 => a.octets().to_vec(),
            (Prefix::V6(a, l), Afi::IPV6) if l <= 128 => a.octets().to_vec(),
            _ => return Err(EncodeError::PrefixFamily(p.to_string())),
        };
        out.push(len);
        out.extend_from_slice(
            octets
                .get(..usize::from(len).div_ceil(8))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

/// Read prefixes in NLRI encoding for `afi`; host bits past the length are
/// cleared. `None` when a length exceeds the family's or a prefix is cut
/// short (RFC 7606 5.3).
fn read_prefixes(buf: &[u8], afi: Afi) -> Option<Vec<Prefix>> {
    let max = if afi == Afi::IPV6 { 128 } else { 32 };
    let mut r = Reader::new(buf);
    let mut out = Vec::with_capacity(buf.len() / 4 + 1);
    while let Some(len) = r.u8() {
        if len > max {
            return None;
        }
        let bytes = r.take(usize::from(len).div_ceil(8))?;
        let prefix = if afi == Afi::IPV6 {
            let mut a = [0u8; 16];
            a.get_mut(..bytes.len())?.copy_from_slice(bytes);
            Prefix::V6(Ipv6Addr::from(a), len)
        } else {
            let mut a = [0u8; 4];
            a.get_mut(..bytes.len())?.copy_from_slice(bytes);
            Prefix::V4(Ipv4Addr::from(a), len)
        };
        out.push(prefix.normalized()?);
    }
    Some(out)
}

fn update_error(subcode: u8, reason: &'static str, data: Vec<u8>) -> WireError {
    WireError::Update {
        subcode,
        reason,
        data,
    }
}

/// The attribute as received (flags, type, length, value) for a
/// NOTIFICATION's data field (RFC 4271 6.3).
fn attr_bytes(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 4);
    put_attr(&mut v, flags, code, value);
    v
}

/// Decode MP_REACH_NLRI. `Ok(None)` for a family this router does not
/// route; `Err` when the attribute is malformed, which resets the session
/// because its routes cannot be located (RFC 7606 7.11, 5.3).
fn decode_mp_reach(value: &[u8]) -> Result<Option<MpReach>, &'static str> {
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return Err("shorter than its fixed fields");
    };
    let family = AfiSafi::new(Afi(afi), Safi(safi));
    let nh = r
        .take(usize::from(nh_len))
        .ok_or("next hop longer than the attribute")?;
    r.u8().ok_or("no reserved octet after the next hop")?;
    if family != AfiSafi::IPV4_UNICAST && family != AfiSafi::IPV6_UNICAST {
        return Ok(None);
    }
    let v6 = |b: &[u8]| <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from);
    let next_hop = match nh.len() {
        4 if family.afi == Afi::IPV4 => MpNextHop {
            global: IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(nh).map_err(|_| "next hop")?,
            )),
            link_local: None,
        },
        // IPv6 global, or global and link-local (RFC 2545 3); for IPv4 routes
        // an IPv6 next hop is RFC 8950's.
        16 | 32 => MpNextHop {
            global: IpAddr::V6(v6(nh.get(..16).unwrap_or_default()).ok_or("next hop")?),
            link_local: nh.get(16..).and_then(v6),
        },
        _ => return Err("next hop length does not fit the address family"),
    };
    let nlri = read_prefixes(r.rest(), family.afi).ok_or("NLRI do not parse")?;
    Ok(Some(MpReach {
        family,
        next_hop,
        nlri,
    }))
}

/// Decode MP_UNREACH_NLRI; `Ok(None)` for a family this router does not
/// route.
fn decode_mp_unreach(value: &[u8]) -> Result<Option<MpUnreach>, &'static str> {
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err("shorter than its fixed fields");
    };
    let family = AfiSafi::new(Afi(afi), Safi(safi));
    if family != AfiSafi::IPV4_UNICAST && family != AfiSafi::IPV6_UNICAST {
        return Ok(None);
    }
    let withdrawn = read_prefixes(r.rest(), family.afi).ok_or("withdrawn routes do not parse")?;
    Ok(Some(MpUnreach { family, withdrawn }))
}

/// Decode an UPDATE body (after the 19-octet header) with RFC 7606 error
/// handling. `Err` only where the session must be reset; its
/// [`WireError::notification`] is the NOTIFICATION to send.
pub fn decode_update(body: &[u8], ctx: &UpdateContext) -> Result<DecodedUpdate, WireError> {
    let mut r = Reader::new(body);
    let malformed = |reason| update_error(UPDATE_MALFORMED_ATTRIBUTE_LIST, reason, Vec::new());
    let wlen = r
        .u16()
        .ok_or_else(|| malformed("no withdrawn routes length"))?;
    let wbytes = r
        .take(usize::from(wlen))
        .ok_or_else(|| malformed("withdrawn routes length overruns the message"))?;
    let alen = r
        .u16()
        .ok_or_else(|| malformed("no total path attribute length"))?;
    let abytes = r
        .take(usize::from(alen))
        .ok_or_else(|| malformed("total path attribute length overruns the message"))?;
    let invalid_network = |reason| update_error(UPDATE_INVALID_NETWORK_FIELD, reason, Vec::new());
    let withdrawn = read_prefixes(wbytes, Afi::IPV4)
        .ok_or_else(|| invalid_network("withdrawn routes do not parse"))?;
    let nlri =
        read_prefixes(r.rest(), Afi::IPV4).ok_or_else(|| invalid_network("NLRI do not parse"))?;

    let mut update = Update {
        withdrawn,
        nlri,
        ..Update::default()
    };
    let mut problems = Vec::new();
    let mut seen = [false; 256];
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator = None;
    let mut problem = |code: u8, action: ProblemAction, reason: &'static str| {
        problems.push(AttributeProblem {
            code,
            attribute: attribute_name(code),
            action,
            reason,
        })
    };

    let mut a = Reader::new(abytes);
    while !a.is_empty() {
        let flags = a.peek_at(0).unwrap_or(0);
        let header_len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            4
        } else {
            3
        };
        if a.remaining() < header_len {
            // RFC 7606 4: too few octets left for an attribute header.
            problem(
                0,
                ProblemAction::TreatAsWithdraw,
                "attribute list ends inside an attribute header",
            );
            break;
        }
        let (_, code) = (a.u8().unwrap_or(0), a.u8().unwrap_or(0));
        let len = if header_len == 4 {
            a.u16().map(usize::from)
        } else {
            a.u8().map(usize::from)
        }
        .unwrap_or(0);
        let Some(value) = a.take(len) else {
            if code == ATTR_MP_REACH_NLRI || code == ATTR_MP_UNREACH_NLRI {
                return Err(update_error(
                    UPDATE_OPTIONAL_ATTRIBUTE_ERROR,
                    "multiprotocol attribute overruns the attribute list",
                    Vec::new(),
                ));
            }
            // RFC 7606 4: the attribute overruns the list; the NLRI field is
            // still found from the total length.
            problem(
                code,
                ProblemAction::TreatAsWithdraw,
                "attribute length overruns the attribute list",
            );
            break;
        };
        let slot = usize::from(code);
        if seen.get(slot).copied().unwrap_or(false) {
            if code == ATTR_MP_REACH_NLRI || code == ATTR_MP_UNREACH_NLRI {
                return Err(malformed("multiprotocol attribute appears twice"));
            }
            problem(
                code,
                ProblemAction::Ignored,
                "repeated; copies after the first ignored",
            );
            continue;
        }
        if let Some(s) = seen.get_mut(slot) {
            *s = true;
        }

        let Some(expected) = expected_flags(code) else {
            if flags & FLAG_OPTIONAL == 0 {
                return Err(update_error(
                    UPDATE_UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    "unrecognised well-known attribute",
                    attr_bytes(flags, code, value),
                ));
            }
            if flags & FLAG_TRANSITIVE != 0 {
                // Passed on with the Partial bit set (RFC 4271 9); the
                // length form and the unused low bits are not kept.
                update.attributes.unknown.push(RawAttribute {
                    flags: (flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE)) | FLAG_PARTIAL,
                    code,
                    value: value.to_vec(),
                });
            }
            continue;
        };
        let mp = code == ATTR_MP_REACH_NLRI || code == ATTR_MP_UNREACH_NLRI;
        if flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) != expected {
            if mp {
                return Err(update_error(
                    UPDATE_ATTRIBUTE_FLAGS_ERROR,
                    "multiprotocol attribute with wrong flags",
                    attr_bytes(flags, code, value),
                ));
            }
            // RFC 7606 3 c, except where the attribute's own rule is discard.
            let action = match code {
                ATTR_ATOMIC_AGGREGATE | ATTR_AGGREGATOR | ATTR_AS4_PATH | ATTR_AS4_AGGREGATOR => {
                    ProblemAction::AttributeDiscard
                }
                _ => ProblemAction::TreatAsWithdraw,
            };
            problem(code, action, "optional or transitive flag is wrong");
            continue;
        }
        match code {
            ATTR_MP_REACH_NLRI | ATTR_MP_UNREACH_NLRI => {
                let decoded = if code == ATTR_MP_REACH_NLRI {
                    decode_mp_reach(value).map(|r| r.map(|r| update.mp_reach = Some(r)))
                } else {
                    decode_mp_unreach(value).map(|u| u.map(|u| update.mp_unreach = Some(u)))
                };
                match decoded {
                    Ok(Some(())) => {}
                    Ok(None) => problem(
                        code,
                        ProblemAction::Ignored,
                        "address family not routed here",
                    ),
                    Err(reason) => {
                        return Err(update_error(
                            UPDATE_OPTIONAL_ATTRIBUTE_ERROR,
                            reason,
                            attr_bytes(flags, code, value),
                        ))
                    }
                }
            }
            // RFC 6793 6: malformed AS4 attributes are discarded; a 4-octet
            // session ignores them altogether (RFC 6793 4.1).
            ATTR_AS4_PATH if !ctx.four_octet_as => match AsPath::decode(value, true) {
                Ok(path) => as4_path = Some(path),
                Err(reason) => problem(code, ProblemAction::AttributeDiscard, reason),
            },
            ATTR_AS4_AGGREGATOR if !ctx.four_octet_as => match decode_aggregator(value, true) {
                Ok(agg) => as4_aggregator = Some(agg),
                Err((action, reason)) => problem(code, action.into(), reason),
            },
            ATTR_AS4_PATH | ATTR_AS4_AGGREGATOR => {
                problem(code, ProblemAction::Ignored, "sent on a 4-octet AS session")
            }
            _ => {
                if let Err((action, reason)) = decode_simple(
                    code,
                    value,
                    ctx.four_octet_as,
                    ctx.ibgp,
                    &mut update.attributes,
                ) {
                    problem(code, action.into(), reason);
                }
            }
        }
    }

    // RFC 6793 4.2.3: rebuild the 4-octet path and aggregator.
    let attrs = &mut update.attributes;
    if let Some(as4) = as4_path {
        match attrs.as_path.as_ref().map(|p| p.merge_as4(&as4)) {
            Some(Some(merged)) => attrs.as_path = Some(merged),
            Some(None) => problem(ATTR_AS4_PATH, ProblemAction::Ignored, "longer than AS_PATH"),
            None => {}
        }
    }
    if let (Some(agg4), Some(agg)) = (as4_aggregator, attrs.aggregator.as_mut()) {
        if agg.asn == 23456 {
            *agg = agg4;
        }
    }

    // Well-known mandatory attributes, needed only when routes are announced
    // (RFC 4271 6.3, RFC 4760 for NEXT_HOP, RFC 7606 3 d).
    let reach = !update.nlri.is_empty();
    if reach || update.mp_reach.is_some() {
        if attrs.origin.is_none() && !seen[usize::from(ATTR_ORIGIN)] {
            problem(ATTR_ORIGIN, ProblemAction::TreatAsWithdraw, "missing");
        }
        if attrs.as_path.is_none() && !seen[usize::from(ATTR_AS_PATH)] {
            problem(ATTR_AS_PATH, ProblemAction::TreatAsWithdraw, "missing");
        }
        if reach && attrs.next_hop.is_none() && !seen[usize::from(ATTR_NEXT_HOP)] {
            problem(ATTR_NEXT_HOP, ProblemAction::TreatAsWithdraw, "missing");
        }
    }
    // RFC 4271 6.3: an external peer's path starts with its AS.
    if let (Some(peer_as), Some(path), false) = (ctx.peer_as, attrs.as_path.as_ref(), ctx.ibgp) {
        if (reach || update.mp_reach.is_some()) && path.first_as() != Some(peer_as) {
            problem(
                ATTR_AS_PATH,
                ProblemAction::TreatAsWithdraw,
                "does not start with the peer's AS",
            );
        }
    }

    let outcome = if problems
        .iter()
        .any(|p| p.action == ProblemAction::TreatAsWithdraw)
    {
        Outcome::TreatAsWithdraw
    } else {
        Outcome::Accept
    };
    Ok(DecodedUpdate {
        update,
        outcome,
        problems,
    })
}

fn prefixes<S: Serializer>(p: &[Prefix], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(|p| p.to_string()))
}

fn family_name<S: Serializer>(f: &AfiSafi, s: S) -> Result<S::Ok, S::Error> {
    match *f {
        AfiSafi::IPV4_UNICAST => s.serialize_str("ipv4-unicast"),
        AfiSafi::IPV6_UNICAST => s.serialize_str("ipv6-unicast"),
        AfiSafi { afi, safi } => s.collect_str(&format_args!("afi-{}-safi-{}", afi.0, safi.0)),
    }
}
