//! The file as written: serde structs that mirror the TOML tables one for one
//! and refuse unknown keys. Values whose meaning needs context (durations
//! whose bare numbers are seconds or milliseconds, AS numbers, prefixes) stay
//! raw here; `validate` turns them into [`super::Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A value that may be written as a number, a string or a boolean; which
/// forms are legal is decided where it is used.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    Int(i64),
    Text(String),
    Bool(bool),
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a string")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A listen range's `asn`: one value or a list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AsList {
    One(Scalar),
    Many(Vec<Spanned<Scalar>>),
}

impl<'de> Deserialize<'de> for AsList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AsList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an AS number, a list of AS numbers, \"any\", \"internal\" or \"external\"",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsList, E> {
                Ok(AsList::One(Scalar::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsList, E> {
                Ok(AsList::One(Scalar::Int(
                    i64::try_from(v).unwrap_or(i64::MAX),
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AsList, E> {
                Ok(AsList::One(Scalar::Text(v.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AsList, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<Spanned<Scalar>>()? {
                    v.push(x);
                }
                Ok(AsList::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A prefix-list entry as written: `"10.0.0.0/16 le 32"` or
/// `{ prefix = "10.0.0.0/16", le = 32 }`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RawRange {
    Text(String),
    Table(RawRangeTable),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRangeTable {
    pub prefix: String,
    pub ge: Option<i64>,
    pub le: Option<i64>,
}

impl<'de> Deserialize<'de> for RawRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a prefix range such as \"10.0.0.0/16 le 32\" or { prefix = \"10.0.0.0/16\", le = 32 }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRange, E> {
                Ok(RawRange::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRange, A::Error> {
                RawRangeTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawRange::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub router: RawRouter,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default, rename = "peer")]
    pub peers: Vec<RawPeer>,
    #[serde(default, rename = "listen_range")]
    pub listen_ranges: Vec<RawListenRange>,
    #[serde(default)]
    pub bfd_profile: BTreeMap<String, RawBfdProfile>,
    #[serde(default)]
    pub policy: BTreeMap<String, RawPolicy>,
    #[serde(default)]
    pub multipath: RawMultipath,
    #[serde(default)]
    pub forwarding: Vec<RawForwarding>,
    #[serde(default)]
    pub dataplane: RawDataplane,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouter {
    pub id: Ipv4Addr,
    pub asn: Scalar,
    pub listen: Option<Vec<Spanned<SocketAddr>>>,
    pub hold_time: Option<Scalar>,
    pub keepalive: Option<Scalar>,
    pub connect_retry: Option<Scalar>,
    pub connect_retry_max: Option<Scalar>,
    pub graceful_restart: Option<bool>,
    pub restart_time: Option<Scalar>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub listen: Option<SocketAddr>,
    #[serde(default)]
    pub allow_remote: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaxPrefix {
    pub limit: i64,
    pub warning_threshold: Option<i64>,
    pub restart_after: Option<Scalar>,
    #[serde(default)]
    pub warning_only: bool,
}

/// The session options a `[[peer]]` and a `[[listen_range]]` share (serde's
/// `flatten` cannot be combined with `deny_unknown_fields`, so both structs
/// list them and hand them over as this).
#[derive(Clone, Debug, Default)]
pub(crate) struct RawSession {
    pub hold_time: Option<Scalar>,
    pub keepalive: Option<Scalar>,
    pub password: Option<String>,
    pub ebgp_multihop: Option<Scalar>,
    pub ttl_security: Option<i64>,
    pub bfd_profile: Option<String>,
    pub graceful_restart: Option<bool>,
    pub max_prefix: Option<RawMaxPrefix>,
    pub families: Option<Vec<Spanned<String>>>,
    pub import: Option<String>,
}

// `RawPeer` and `RawListenRange` repeat the session fields instead of
// flattening a `RawSession` into both: serde's `flatten` and
// `deny_unknown_fields` do not work together, and unknown keys must be
// refused with the valid names listed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    pub address: IpAddr,
    pub asn: Scalar,
    pub description: Option<String>,
    #[serde(default)]
    pub passive: bool,
    pub source: Option<IpAddr>,
    pub port: Option<i64>,
    #[serde(default)]
    pub upstream: bool,
    pub hold_time: Option<Scalar>,
    pub keepalive: Option<Scalar>,
    pub password: Option<String>,
    pub ebgp_multihop: Option<Scalar>,
    pub ttl_security: Option<i64>,
    pub bfd_profile: Option<String>,
    pub graceful_restart: Option<bool>,
    pub max_prefix: Option<RawMaxPrefix>,
    pub families: Option<Vec<Spanned<String>>>,
    pub import: Option<String>,
}

impl RawPeer {
    pub(crate) fn session(&self) -> RawSession {
        RawSession {
            hold_time: self.hold_time.clone(),
            keepalive: self.keepalive.clone(),
            password: self.password.clone(),
            ebgp_multihop: self.ebgp_multihop.clone(),
            ttl_security: self.ttl_security,
            bfd_profile: self.bfd_profile.clone(),
            graceful_restart: self.graceful_restart,
            max_prefix: self.max_prefix.clone(),
            families: self.families.clone(),
            import: self.import.clone(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenRange {
    pub prefix: String,
    pub asn: AsList,
    pub limit: Option<i64>,
    pub hold_time: Option<Scalar>,
    pub keepalive: Option<Scalar>,
    pub password: Option<String>,
    pub ebgp_multihop: Option<Scalar>,
    pub ttl_security: Option<i64>,
    pub bfd_profile: Option<String>,
    pub graceful_restart: Option<bool>,
    pub max_prefix: Option<RawMaxPrefix>,
    pub families: Option<Vec<Spanned<String>>>,
    pub import: Option<String>,
}

impl RawListenRange {
    pub(crate) fn session(&self) -> RawSession {
        RawSession {
            hold_time: self.hold_time.clone(),
            keepalive: self.keepalive.clone(),
            password: self.password.clone(),
            ebgp_multihop: self.ebgp_multihop.clone(),
            ttl_security: self.ttl_security,
            bfd_profile: self.bfd_profile.clone(),
            graceful_restart: self.graceful_restart,
            max_prefix: self.max_prefix.clone(),
            families: self.families.clone(),
            import: self.import.clone(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBfdProfile {
    pub receive_interval: Option<Scalar>,
    pub transmit_interval: Option<Scalar>,
    pub detect_multiplier: Option<i64>,
    pub echo_interval: Option<Scalar>,
    #[serde(default)]
    pub echo_mode: bool,
    #[serde(default)]
    pub passive_mode: bool,
    pub minimum_ttl: Option<i64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub accept: Option<Vec<Spanned<RawRange>>>,
    #[serde(default)]
    pub rule: Vec<RawRule>,
    #[serde(rename = "default")]
    pub default_action: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub prefix: Option<Vec<Spanned<RawRange>>>,
    pub community: Option<Vec<Spanned<String>>>,
    pub large_community: Option<Vec<Spanned<String>>>,
    pub action: Option<String>,
    pub set_local_pref: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMultipath {
    pub maximum_paths: Option<i64>,
    pub as_path_relax: Option<bool>,
    pub ibgp: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwarding {
    pub prefix: String,
    pub algorithm: Option<String>,
    pub fields: Option<String>,
    pub symmetric: Option<bool>,
    pub hash: Option<String>,
    pub seed: Option<u64>,
    pub buckets: Option<i64>,
    pub idle_timer: Option<Scalar>,
    pub unbalanced_timer: Option<Scalar>,
    pub table_size: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataplane {
    pub backend: Option<String>,
    pub ports: Option<Vec<Spanned<String>>>,
    pub workers: Option<i64>,
    pub tracker: Option<RawTracker>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracker {
    pub capacity: Option<i64>,
    pub idle_timeout: Option<Scalar>,
    pub ways: Option<i64>,
}
