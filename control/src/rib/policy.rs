//! Import policy and forwarding policy, as runtime types: which prefixes a
//! peer may announce and what its communities do to them, and which nexthop
//! group policy a route's FIB group gets. The TOML configuration layer
//! converts into these.
//!
//! # Import policy
//!
//! An [`ImportPolicy`] is evaluated in two steps, like an FRR prefix-list
//! followed by a route-map:
//!
//! 1. **Prefix ranges.** A prefix is accepted only if it lies inside one of
//!    [`ImportPolicy::ranges`] with a length within that range's `ge`/`le`
//!    bounds. A MetalLB speaker may announce its pool's /32s, or an
//!    `aggregationLength` /24 inside a /16 pool, but not a prefix outside the
//!    pool (that would hijack someone else's traffic). An empty list accepts
//!    nothing (fail closed); [`ImportPolicy::accept_all`] covers everything.
//! 2. **Rules**, in order, first match wins: a rule matches when the path
//!    carries any of its communities or large communities (a rule with none
//!    matches every path). Its action accepts, denies, or accepts with a
//!    LOCAL_PREF. When no rule matches, [`ImportPolicy::default_action`]
//!    applies.
//!
//! A path refused by either step is kept in the Adj-RIB-In, marked
//! filtered (with why), counted per peer, and kept out of the decision
//! process. Because the received attributes are kept, changing a peer's
//! policy ([`super::Rib::set_import_policy`]) re-evaluates its paths at once
//! without a route refresh.

use std::net::IpAddr;

use dataplane::fib::table::{GroupPolicy, Prefix};

use crate::bgp::wire::attrs::{Community, LargeCommunity, PathAttributes};

/// A range of prefixes: those inside `prefix` whose length is within
/// `ge..=le`.
///
/// Unlike an FRR prefix-list entry, a range without bounds matches every
/// prefix inside it (`ge` defaults to the range's own length, `le` to the
/// family's maximum): the question asked of a speaker's announcement is
/// "is it inside the pool?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixRange {
    /// The covering prefix (host bits are ignored).
    pub prefix: Prefix,
    /// Shortest accepted length; `None`: the covering prefix's length.
    pub ge: Option<u8>,
    /// Longest accepted length; `None`: 32 or 128.
    pub le: Option<u8>,
}

impl PrefixRange {
    /// Every prefix inside `prefix`, itself included.
    pub fn new(prefix: Prefix) -> Self {
        PrefixRange {
            prefix,
            ge: None,
            le: None,
        }
    }

    /// Prefixes inside `prefix` with a length within `ge..=le`.
    pub fn with_bounds(prefix: Prefix, ge: Option<u8>, le: Option<u8>) -> Self {
        PrefixRange { prefix, ge, le }
    }

    /// Whether `p` lies inside the range and its length is within bounds.
    /// A range whose bounds are inverted or out of range matches nothing.
    pub fn contains(&self, p: &Prefix) -> bool {
        let ge = self.ge.unwrap_or(self.prefix.prefix_len());
        let le = self.le.unwrap_or(self.prefix.max_len());
        let len = p.prefix_len();
        len >= ge && len <= le && covers(&self.prefix, p)
    }

    /// Why the range can never match, if it cannot: a bound shorter than
    /// the prefix, longer than the family allows, or `ge` above `le`. For
    /// the configuration layer to refuse such a range with one sentence.
    pub fn problem(&self) -> Option<String> {
        let len = self.prefix.prefix_len();
        let max = self.prefix.max_len();
        let ge = self.ge.unwrap_or(len);
        let le = self.le.unwrap_or(max);
        if !self.prefix.is_valid() {
            Some(format!("{} has a length out of range", self.prefix))
        } else if ge < len || ge > max {
            Some(format!("ge {ge} must be between {len} and {max}"))
        } else if le < len || le > max {
            Some(format!("le {le} must be between {len} and {max}"))
        } else if ge > le {
            Some(format!(
                "ge {ge} is above le {le}: the range matches nothing"
            ))
        } else {
            None
        }
    }
}

impl std::fmt::Display for PrefixRange {
    /// FRR prefix-list style: `203.0.113.0/24 le 32`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.prefix)?;
        let len = self.prefix.prefix_len();
        let ge = self.ge.unwrap_or(len);
        let le = self.le.unwrap_or(self.prefix.max_len());
        if ge != len {
            write!(f, " ge {ge}")?;
        }
        if le != len {
            write!(f, " le {le}")?;
        }
        Ok(())
    }
}

/// Whether `outer` covers `inner` ([`Prefix::covers`]).
pub fn covers(outer: &Prefix, inner: &Prefix) -> bool {
    outer.covers(inner)
}

/// What a rule (or the default) does with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    /// Accept as received.
    Accept,
    /// Filter the path out.
    Deny,
    /// Accept, with this LOCAL_PREF (replacing any received).
    SetLocalPref(u32),
}

/// One import rule: conditions on the prefix and the communities, and an
/// action. Every condition given must hold; a rule with none matches every
/// path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PolicyRule {
    /// Matches when the prefix lies in any of these ranges (none: any).
    pub prefixes: Vec<PrefixRange>,
    /// Matches when the path carries any of these standard communities.
    pub communities: Vec<Community>,
    /// Matches when the path carries any of these large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// What to do on a match.
    pub action: Option<PolicyAction>,
}

impl PolicyRule {
    /// A rule matching any of `communities`.
    pub fn community(communities: Vec<Community>, action: PolicyAction) -> Self {
        PolicyRule {
            prefixes: Vec::new(),
            communities,
            large_communities: Vec::new(),
            action: Some(action),
        }
    }

    /// A rule matching any of `large`.
    pub fn large_community(large: Vec<LargeCommunity>, action: PolicyAction) -> Self {
        PolicyRule {
            prefixes: Vec::new(),
            communities: Vec::new(),
            large_communities: large,
            action: Some(action),
        }
    }

    /// Whether the rule matches a path for `prefix` with `attrs`: the
    /// prefix in one of the listed ranges (if any are listed), and one of
    /// the listed communities or large communities present (if any are
    /// listed).
    pub fn matches(&self, prefix: &Prefix, attrs: &PathAttributes) -> bool {
        let prefix_ok =
            self.prefixes.is_empty() || self.prefixes.iter().any(|r| r.contains(prefix));
        let communities_ok = (self.communities.is_empty() && self.large_communities.is_empty())
            || self
                .communities
                .iter()
                .any(|c| attrs.communities.contains(c))
            || self
                .large_communities
                .iter()
                .any(|c| attrs.large_communities.contains(c));
        prefix_ok && communities_ok
    }
}

/// A peer's import policy; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImportPolicy {
    /// Prefixes the peer may announce; empty accepts nothing.
    pub ranges: Vec<PrefixRange>,
    /// Ordered rules, first match wins.
    pub rules: Vec<PolicyRule>,
    /// The action when no rule matches (a rule without an action counts
    /// as this too).
    pub default_action: PolicyAction,
}

impl Default for ImportPolicy {
    /// [`ImportPolicy::accept_all`].
    fn default() -> Self {
        ImportPolicy::accept_all()
    }
}

/// Why a path is kept out of the decision process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterReason {
    /// The prefix is outside every allowed range.
    OutsideRanges,
    /// A rule (or the default action) denied it.
    Denied,
    /// The AS_PATH holds our own AS (RFC 4271 9.1.2).
    AsLoop,
    /// No usable next hop (unspecified, multicast, or an IPv6
    /// link-local one without a link-local alternative).
    NoNexthop,
    /// The peer was over its prefix limit when the path arrived.
    OverLimit,
}

impl std::fmt::Display for FilterReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FilterReason::OutsideRanges => "outside the allowed prefix ranges",
            FilterReason::Denied => "denied by import policy",
            FilterReason::AsLoop => "AS path contains our AS",
            FilterReason::NoNexthop => "no usable next hop",
            FilterReason::OverLimit => "over the prefix limit",
        })
    }
}

impl ImportPolicy {
    /// Accept every IPv4 and IPv6 prefix as received.
    pub fn accept_all() -> Self {
        ImportPolicy {
            ranges: vec![
                PrefixRange::new(Prefix::V4(std::net::Ipv4Addr::UNSPECIFIED, 0)),
                PrefixRange::new(Prefix::V6(std::net::Ipv6Addr::UNSPECIFIED, 0)),
            ],
            rules: Vec::new(),
            default_action: PolicyAction::Accept,
        }
    }

    /// Accept only prefixes inside `ranges`, as received.
    pub fn ranges(ranges: Vec<PrefixRange>) -> Self {
        ImportPolicy {
            ranges,
            rules: Vec::new(),
            default_action: PolicyAction::Accept,
        }
    }

    /// Whether `prefix` is inside an allowed range.
    pub fn allows_prefix(&self, prefix: &Prefix) -> bool {
        self.ranges.iter().any(|r| r.contains(prefix))
    }

    /// The action the rules take on a path for `prefix` with `attrs`
    /// (first match, else default).
    pub fn action_for(&self, prefix: &Prefix, attrs: &PathAttributes) -> PolicyAction {
        self.rules
            .iter()
            .find(|r| r.matches(prefix, attrs))
            .and_then(|r| r.action)
            .unwrap_or(self.default_action)
    }
}

/// Which [`GroupPolicy`] a route's nexthop group gets: the policy of the
/// longest configured range that covers the route's prefix, else the
/// default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForwardingPolicies {
    /// The policy of routes no range covers.
    pub default: GroupPolicy,
    /// (covering range, policy); the longest covering range wins, the first
    /// listed among equally long ones.
    pub ranges: Vec<(Prefix, GroupPolicy)>,
}

impl ForwardingPolicies {
    /// Every route gets `default`.
    pub fn new(default: GroupPolicy) -> Self {
        ForwardingPolicies {
            default,
            ranges: Vec::new(),
        }
    }

    /// Add a range with its policy.
    pub fn with_range(mut self, range: Prefix, policy: GroupPolicy) -> Self {
        self.ranges.push((range, policy));
        self
    }

    /// The policy for `prefix`.
    pub fn lookup(&self, prefix: &Prefix) -> GroupPolicy {
        let mut best: Option<(u8, &GroupPolicy)> = None;
        for (range, policy) in &self.ranges {
            if covers(range, prefix) && best.map_or(true, |(len, _)| range.prefix_len() > len) {
                best = Some((range.prefix_len(), policy));
            }
        }
        best.map_or(self.default, |(_, p)| *p)
    }
}

/// Whether an address can be a forwarding next hop: not unspecified,
/// multicast or broadcast, and for IPv6 not link-local (those are handled
/// separately). Loopback addresses are usable: on a lab router whose
/// speakers run on 127.0.0.x (the demo, the loopback tests) they name the
/// nodes, and the in-memory data plane resolves them like any other.
pub(crate) fn usable_nexthop(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => {
            let link_local = (a.segments()[0] & 0xffc0) == 0xfe80;
            !(a.is_unspecified() || a.is_multicast() || link_local)
        }
    }
}
