//! From the file as written to a checked [`Config`]: every value's range,
//! every reference between sections, every conflict between sections. All
//! faults are collected, each with its line and dotted field.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use dataplane::fib::table::{GroupPolicy, Prefix};
use dataplane::tracker::{TrackerConfig, DEFAULT_WAYS, MAX_CAPACITY, MAX_WAYS};
use hashing::{Algorithm, AnySelector, FieldSelection, HashFields, HashFunction, Member};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors, ConfigWarning, Locator, Outline};
use super::schema::{
    AsList, File, RawBfdProfile, RawDataplane, RawForwarding, RawListenRange, RawPeer, RawPolicy,
    RawRange, RawRouter, RawSession, Scalar,
};
use super::values::{
    check_asn, family_name, parse_action, parse_asn, parse_duration, parse_family, prefix_range,
    prefixes_overlap, show_duration, Community, LargeCommunity, Password, PeerAs, PeerAsMatch,
    PolicyAction, PrefixRange,
};
use super::{
    Api, Backend, BfdProfile, Config, Dataplane, Forwarding, ForwardingRule, GracefulRestart,
    ImportPolicy, ListenRange, MaxPrefix, Multipath, Peer, PolicyRule, Router, Session, Timers,
    BGP_PORT, DEFAULT_API_LISTEN,
};
use crate::bgp::wire::AfiSafi;

/// How a bare number is read where a duration is expected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bare {
    /// BGP timers, as FRR's `timers bgp 30 90`.
    Seconds,
    /// BFD intervals, as MetalLB's BFDProfile and FRR's `bfd` profiles.
    Millis,
}

pub(crate) fn parse(src: &str, path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let loc = Locator {
        outline: Outline::new(src),
        path,
    };
    let file: File =
        toml::from_str(src).map_err(|e| ConfigErrors::new(vec![serde_error(src, &loc, &e)]))?;
    let mut c = Checker {
        loc: &loc,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut config = c.check(&file);
    let by_line = |l: Option<usize>| l.unwrap_or(usize::MAX);
    if c.errors.is_empty() {
        c.warnings.sort_by_key(|w| by_line(w.line));
        config.warnings = c.warnings;
        Ok(config)
    } else {
        c.errors.sort_by_key(|e| by_line(e.line));
        Err(ConfigErrors::new(c.errors))
    }
}

/// A syntax or type error from the TOML reader, located.
fn serde_error(src: &str, loc: &Locator<'_>, e: &toml::de::Error) -> ConfigError {
    let message = e
        .message()
        .trim()
        .replace("expected i64", "expected an integer")
        .replace("expected u64", "expected a non-negative integer");
    let span = e.span();
    // An empty span at the start, or one over the whole text, is the
    // top-level table.
    let whole = span
        .as_ref()
        .is_some_and(|s| s.start == 0 && (s.end == 0 || s.end >= src.trim_end().len()));
    let mut field = if whole {
        String::new()
    } else {
        span.as_ref()
            .and_then(|s| loc.outline.field_at(s.start))
            .unwrap_or_default()
    };
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        field = if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        };
    }
    let span = if whole { None } else { span };
    loc.error(span, field, message)
}

struct Checker<'a> {
    loc: &'a Locator<'a>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

fn names<V>(map: &BTreeMap<String, V>) -> String {
    if map.is_empty() {
        "none are defined".to_string()
    } else {
        let v: Vec<&str> = map.keys().map(String::as_str).collect();
        format!("defined: {}", v.join(", "))
    }
}

fn host(addr: IpAddr) -> Prefix {
    match addr {
        IpAddr::V4(a) => Prefix::V4(a, 32),
        IpAddr::V6(a) => Prefix::V6(a, 128),
    }
}

impl Checker<'_> {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let e = self.loc.error(None, field, message);
        self.errors.push(e);
    }

    fn err_at<T>(&mut self, at: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) {
        let e = self.loc.error(Some(at.span()), field, message);
        self.errors.push(e);
    }

    fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let w = self.loc.warning(None, field, message);
        self.warnings.push(w);
    }

    /// An integer in `lo..=hi`, or an error naming the range.
    fn int<T: TryFrom<i64>>(&mut self, v: i64, field: &str, lo: i64, hi: i64) -> Option<T> {
        if v < lo || v > hi {
            self.err(field, format!("must be {lo}..={hi}, not {v}"));
            return None;
        }
        T::try_from(v).ok()
    }

    fn opt_int<T: TryFrom<i64> + Copy>(
        &mut self,
        v: Option<i64>,
        field: &str,
        lo: i64,
        hi: i64,
        default: T,
    ) -> T {
        v.and_then(|v| self.int(v, field, lo, hi))
            .unwrap_or(default)
    }

    fn duration(&mut self, v: &Scalar, field: &str, bare: Bare) -> Option<Duration> {
        let (example, unit) = match bare {
            Bare::Seconds => ("\"90s\" or 90 (seconds)", "seconds"),
            Bare::Millis => ("\"300ms\" or 300 (milliseconds)", "milliseconds"),
        };
        match v {
            Scalar::Int(n) if *n < 0 => {
                self.err(field, format!("{n} is negative"));
                None
            }
            Scalar::Int(n) => Some(match bare {
                Bare::Seconds => Duration::from_secs(*n as u64),
                Bare::Millis => Duration::from_millis(*n as u64),
            }),
            Scalar::Text(t) => match parse_duration(t) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(
                        field,
                        format!("{e}; a bare number, without quotes, is read as {unit}"),
                    );
                    None
                }
            },
            Scalar::Bool(b) => {
                self.err(
                    field,
                    format!("expected a duration such as {example}, found {b}"),
                );
                None
            }
        }
    }

    /// A duration in whole seconds within `lo..=hi` seconds.
    fn secs(&mut self, v: &Scalar, field: &str, lo: u64, hi: u64) -> Option<Duration> {
        let d = self.duration(v, field, Bare::Seconds)?;
        if d.subsec_nanos() != 0 {
            self.err(
                field,
                format!(
                    "{} is not a whole number of seconds (BGP counts seconds)",
                    show_duration(d)
                ),
            );
            return None;
        }
        if d.as_secs() < lo || d.as_secs() > hi {
            self.err(
                field,
                format!("must be {lo}s..={hi}s, not {}", show_duration(d)),
            );
            return None;
        }
        Some(d)
    }

    /// A duration in whole milliseconds within `lo..=hi` ms.
    fn millis(&mut self, v: &Scalar, field: &str, lo: u64, hi: u64) -> Option<Duration> {
        let d = self.duration(v, field, Bare::Millis)?;
        if d.as_nanos() % 1_000_000 != 0 {
            self.err(
                field,
                format!("{} is not a whole number of milliseconds", show_duration(d)),
            );
            return None;
        }
        let ms = d.as_millis();
        if ms < u128::from(lo) || ms > u128::from(hi) {
            self.err(
                field,
                format!("must be {lo}ms..={hi}ms, not {}", show_duration(d)),
            );
            return None;
        }
        Some(d)
    }

    fn check(&mut self, f: &File) -> Config {
        let router = self.router(&f.router);
        let api = self.api(f);
        let bfd_profiles: BTreeMap<String, BfdProfile> = f
            .bfd_profile
            .iter()
            .map(|(name, p)| (name.clone(), self.bfd_profile(name, p)))
            .collect();
        let policies: BTreeMap<String, ImportPolicy> = f
            .policy
            .iter()
            .map(|(name, p)| (name.clone(), self.policy(name, p)))
            .collect();
        let ctx = Refs {
            router: &router,
            bfd: &bfd_profiles,
            policies: &policies,
        };
        let listen_ranges: Vec<Option<ListenRange>> = f
            .listen_ranges
            .iter()
            .enumerate()
            .map(|(i, r)| self.listen_range(i, r, &ctx))
            .collect();
        self.range_overlaps(&listen_ranges);
        let peers: Vec<Option<Peer>> = f
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| self.peer(i, p, &ctx))
            .collect();
        self.peer_conflicts(&peers, &listen_ranges);
        if !listen_ranges.is_empty() && router.listen.is_empty() {
            self.err(
                "router.listen",
                "is empty, but [[listen_range]] needs the router to accept connections",
            );
        }
        // References nobody makes.
        let sessions = || {
            f.peers
                .iter()
                .map(RawPeer::session)
                .chain(f.listen_ranges.iter().map(RawListenRange::session))
        };
        for name in bfd_profiles.keys() {
            if !sessions().any(|s| s.bfd_profile.as_ref() == Some(name)) {
                self.warn(
                    format!("bfd_profile.{name}"),
                    "is defined but no peer or listen range uses it",
                );
            }
        }
        for name in policies.keys() {
            if !sessions().any(|s| s.import.as_ref() == Some(name)) {
                self.warn(
                    format!("policy.{name}"),
                    "is defined but no peer or listen range imports with it",
                );
            }
        }
        let multipath = self.multipath(f);
        let forwarding = self.forwarding(&f.forwarding, &multipath);
        let dataplane = self.dataplane(&f.dataplane);
        Config {
            router,
            api,
            peers: peers.into_iter().flatten().collect(),
            listen_ranges: listen_ranges.into_iter().flatten().collect(),
            bfd_profiles,
            policies,
            multipath,
            forwarding,
            dataplane,
            warnings: Vec::new(),
        }
    }

    fn router(&mut self, r: &RawRouter) -> Router {
        if r.id.is_unspecified() || r.id.is_multicast() || r.id.is_broadcast() {
            self.err("router.id", format!("{} cannot be a BGP identifier", r.id));
        }
        let asn = self.asn(&r.asn, "router.asn").unwrap_or(1);
        let listen: Vec<SocketAddr> = match &r.listen {
            None => vec![
                SocketAddr::from(([0, 0, 0, 0], BGP_PORT)),
                SocketAddr::from(([0u16; 8], BGP_PORT)),
            ],
            Some(list) => {
                let mut out = Vec::new();
                for (i, a) in list.iter().enumerate() {
                    let field = format!("router.listen[{i}]");
                    if a.get_ref().port() == 0 {
                        self.err_at(a, field, "port 0 is not a port to listen on (BGP uses 179)");
                    } else if out.contains(a.get_ref()) {
                        self.err_at(a, field, format!("{} is listed twice", a.get_ref()));
                    } else {
                        out.push(*a.get_ref());
                    }
                }
                out
            }
        };
        let timers = self.timers(
            r.hold_time.as_ref(),
            r.keepalive.as_ref(),
            "router",
            Timers::default(),
        );
        let connect_retry = r
            .connect_retry
            .as_ref()
            .and_then(|v| self.secs(v, "router.connect_retry", 1, 3600))
            .unwrap_or(Duration::from_secs(5));
        let connect_retry_max = r
            .connect_retry_max
            .as_ref()
            .and_then(|v| self.secs(v, "router.connect_retry_max", 1, 3600))
            .unwrap_or(Duration::from_secs(120));
        if connect_retry_max < connect_retry {
            self.err(
                "router.connect_retry_max",
                format!(
                    "{} is less than connect_retry ({})",
                    show_duration(connect_retry_max),
                    show_duration(connect_retry)
                ),
            );
        }
        let restart_time = r
            .restart_time
            .as_ref()
            .and_then(|v| self.secs(v, "router.restart_time", 1, 4095))
            .unwrap_or(Duration::from_secs(120));
        Router {
            id: r.id,
            asn,
            listen,
            timers,
            connect_retry,
            connect_retry_max,
            graceful_restart: GracefulRestart {
                helper: r.graceful_restart.unwrap_or(true),
                restart_time,
            },
        }
    }

    fn asn(&mut self, v: &Scalar, field: &str) -> Option<u32> {
        let r = match v {
            Scalar::Int(n) => check_asn(*n),
            Scalar::Text(t) => parse_asn(t),
            Scalar::Bool(b) => Err(format!("expected an AS number, found {b}")),
        };
        r.map_err(|e| self.err(field, e)).ok()
    }

    fn api(&mut self, f: &File) -> Api {
        let default: SocketAddr = DEFAULT_API_LISTEN
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 2179)));
        let listen = f.api.listen.unwrap_or(default);
        if !listen.ip().is_loopback() && !f.api.allow_remote {
            self.err(
                "api.listen",
                format!(
                    "{listen} is not a loopback address; the API changes routes and has no authentication, so set allow_remote = true to serve it beyond this host"
                ),
            );
        }
        if listen.port() == 0 {
            self.err("api.listen", "port 0 is not a port to listen on");
        }
        Api {
            listen,
            allow_remote: f.api.allow_remote,
        }
    }

    fn timers(
        &mut self,
        hold: Option<&Scalar>,
        keep: Option<&Scalar>,
        base: &str,
        default: Timers,
    ) -> Timers {
        let hf = format!("{base}.hold_time");
        let kf = format!("{base}.keepalive");
        let hold_time = hold.and_then(|v| {
            let d = self.secs(v, &hf, 0, 65535)?;
            if d.as_secs() > 0 && d.as_secs() < 3 {
                self.err(
                    &hf,
                    format!(
                        "must be 0 (no keepalives) or at least 3s (RFC 4271), not {}",
                        show_duration(d)
                    ),
                );
                return None;
            }
            Some(d)
        });
        let keepalive = keep.and_then(|v| self.secs(v, &kf, 0, 21845));
        let t = match (hold_time, keepalive) {
            (None, None) => default,
            // As MetalLB: a hold time alone brings a keepalive of a third of it.
            (Some(h), None) => Timers {
                hold_time: h,
                keepalive: Duration::from_secs(h.as_secs() / 3),
            },
            (None, Some(k)) => Timers {
                hold_time: default.hold_time,
                keepalive: k,
            },
            (Some(h), Some(k)) => Timers {
                hold_time: h,
                keepalive: k,
            },
        };
        if t.hold_time.is_zero() {
            if keepalive.is_some_and(|k| !k.is_zero()) {
                self.warn(&kf, "is ignored: hold_time 0 turns keepalives off");
            }
            return Timers {
                hold_time: Duration::ZERO,
                keepalive: Duration::ZERO,
            };
        }
        if keepalive.is_some() || hold_time.is_some() {
            if t.keepalive.is_zero() || t.keepalive >= t.hold_time {
                self.err(
                    &kf,
                    format!(
                        "{} must be more than 0 and less than the hold time ({})",
                        show_duration(t.keepalive),
                        show_duration(t.hold_time)
                    ),
                );
            } else if t.keepalive * 3 > t.hold_time {
                self.warn(
                    &kf,
                    format!(
                        "{} is more than a third of the hold time ({}); one lost keepalive may drop the session",
                        show_duration(t.keepalive),
                        show_duration(t.hold_time)
                    ),
                );
            }
        }
        t
    }

    fn bfd_profile(&mut self, name: &str, p: &RawBfdProfile) -> BfdProfile {
        let base = format!("bfd_profile.{name}");
        if !valid_name(name) {
            self.err(
                &base,
                format!("`{name}` is not a usable name (letters, digits, '-', '_', '.')"),
            );
        }
        let d = BfdProfile::default();
        let f = |k: &str| format!("{base}.{k}");
        let interval = |c: &mut Self, v: &Option<Scalar>, k: &str, default: Duration| {
            v.as_ref()
                .and_then(|v| c.millis(v, &f(k), 10, 60_000))
                .unwrap_or(default)
        };
        let receive_interval = interval(
            self,
            &p.receive_interval,
            "receive_interval",
            d.receive_interval,
        );
        let transmit_interval = interval(
            self,
            &p.transmit_interval,
            "transmit_interval",
            d.transmit_interval,
        );
        let echo_interval = interval(self, &p.echo_interval, "echo_interval", d.echo_interval);
        let detect_multiplier = self.opt_int(
            p.detect_multiplier,
            &f("detect_multiplier"),
            2,
            255,
            d.detect_multiplier,
        );
        let minimum_ttl = self.opt_int(p.minimum_ttl, &f("minimum_ttl"), 1, 254, d.minimum_ttl);
        if p.echo_mode {
            self.warn(
                f("echo_mode"),
                "is accepted but not supported: ecmpd sends no BFD echo packets, the session runs on control packets alone",
            );
        }
        BfdProfile {
            receive_interval,
            transmit_interval,
            detect_multiplier,
            echo_interval,
            echo_mode: p.echo_mode,
            passive_mode: p.passive_mode,
            minimum_ttl,
        }
    }

    fn prefix(
        &mut self,
        text: &str,
        field: &str,
        span: Option<std::ops::Range<usize>>,
    ) -> Option<Prefix> {
        let e = match Prefix::from_str(text) {
            Ok(p) => match p.normalized() {
                Some(n) if n == p => return Some(p),
                Some(n) => format!("{p} has host bits set; write {n}"),
                None => format!("{p} has an invalid length"),
            },
            Err(e) => e.to_string(),
        };
        let err = self.loc.error(span, field, e);
        self.errors.push(err);
        None
    }

    fn range(&mut self, r: &Spanned<RawRange>, field: &str) -> Option<PrefixRange> {
        let span = Some(r.span());
        let (text, ge, le) = match r.get_ref() {
            RawRange::Table(t) => (t.prefix.clone(), t.ge, t.le),
            RawRange::Text(s) => {
                let mut words = s.split_whitespace();
                let p = words.next().unwrap_or("").to_string();
                let (mut ge, mut le) = (None, None);
                let rest: Vec<&str> = words.collect();
                let bad = format!("`{s}` is not a prefix range: write \"10.0.0.0/16\", \"10.0.0.0/16 le 32\" or \"10.0.0.0/16 ge 24 le 32\"");
                if rest.len() % 2 != 0 {
                    self.errors.push(self.loc.error(span, field, bad));
                    return None;
                }
                for pair in rest.chunks(2) {
                    let n: Option<i64> = pair[1].parse().ok();
                    let slot = match pair[0] {
                        "ge" => &mut ge,
                        "le" => &mut le,
                        _ => {
                            self.errors.push(self.loc.error(span, field, bad));
                            return None;
                        }
                    };
                    if slot.is_some() || n.is_none() {
                        self.errors.push(self.loc.error(span, field, bad));
                        return None;
                    }
                    *slot = n;
                }
                (p, ge, le)
            }
        };
        let prefix = self.prefix(&text, field, span.clone())?;
        let bound = |v: Option<i64>| v.map(|v| u8::try_from(v.clamp(0, 255)).unwrap_or(255));
        if [ge, le].iter().flatten().any(|v| *v < 0 || *v > 128) {
            self.errors.push(
                self.loc
                    .error(span, field, "ge and le are prefix lengths, 0..=128"),
            );
            return None;
        }
        match prefix_range(prefix, bound(ge), bound(le)) {
            Ok(r) => Some(r),
            Err(e) => {
                self.errors.push(self.loc.error(span, field, e));
                None
            }
        }
    }

    fn policy(&mut self, name: &str, p: &RawPolicy) -> ImportPolicy {
        let base = format!("policy.{name}");
        if !valid_name(name) {
            self.err(
                &base,
                format!("`{name}` is not a usable name (letters, digits, '-', '_', '.')"),
            );
        }
        let accept = match &p.accept {
            None => {
                self.err(
                    format!("{base}.accept"),
                    "is missing: list the prefixes this policy's neighbours may announce, e.g. [\"203.0.113.0/24 le 32\"] (\"0.0.0.0/0 le 32\" accepts any IPv4 route)",
                );
                Vec::new()
            }
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, r)| self.range(r, &format!("{base}.accept[{i}]")))
                .collect(),
        };
        let mut rules = Vec::new();
        for (i, r) in p.rule.iter().enumerate() {
            let rb = format!("{base}.rule[{i}]");
            let action = self.action(r.action.as_deref(), &format!("{rb}.action"));
            let prefix = r
                .prefix
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, x)| self.range(x, &format!("{rb}.prefix[{j}]")))
                .collect();
            let mut community = Vec::new();
            for (j, c) in r.community.iter().flatten().enumerate() {
                match c.get_ref().parse::<Community>() {
                    Ok(v) => community.push(v),
                    Err(e) => self.err_at(c, format!("{rb}.community[{j}]"), e),
                }
            }
            let mut large_community = Vec::new();
            for (j, c) in r.large_community.iter().flatten().enumerate() {
                match c.get_ref().parse::<LargeCommunity>() {
                    Ok(v) => large_community.push(v),
                    Err(e) => self.err_at(c, format!("{rb}.large_community[{j}]"), e),
                }
            }
            let set_local_pref = r.set_local_pref.and_then(|v| {
                self.int::<u32>(v, &format!("{rb}.set_local_pref"), 0, i64::from(u32::MAX))
            });
            let action = match (action, set_local_pref) {
                (PolicyAction::Deny, Some(_)) => {
                    self.err(
                        format!("{rb}.set_local_pref"),
                        "cannot be set on a rule whose action is deny",
                    );
                    PolicyAction::Deny
                }
                (PolicyAction::Accept, Some(lp)) => PolicyAction::SetLocalPref(lp),
                (a, _) => a,
            };
            rules.push(PolicyRule {
                prefixes: prefix,
                communities: community,
                large_communities: large_community,
                action: Some(action),
            });
        }
        let default_action = self.action(p.default_action.as_deref(), &format!("{base}.default"));
        ImportPolicy {
            ranges: accept,
            rules,
            default_action,
        }
    }

    fn action(&mut self, v: Option<&str>, field: &str) -> PolicyAction {
        match v.map(parse_action) {
            None => PolicyAction::Accept,
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                self.err(field, e);
                PolicyAction::Accept
            }
        }
    }

    fn session(
        &mut self,
        s: &RawSession,
        base: &str,
        internal: Option<bool>,
        refs: &Refs<'_>,
    ) -> Session {
        let f = |k: &str| format!("{base}.{k}");
        let timers = self.timers(
            s.hold_time.as_ref(),
            s.keepalive.as_ref(),
            base,
            refs.router.timers,
        );
        let password = s.password.as_deref().and_then(|p| match Password::new(p) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(f("password"), e);
                None
            }
        });
        let ebgp_multihop = match &s.ebgp_multihop {
            None | Some(Scalar::Bool(false)) => None,
            Some(Scalar::Bool(true)) => Some(255),
            Some(Scalar::Int(n)) => self.int(*n, &f("ebgp_multihop"), 1, 255),
            Some(Scalar::Text(t)) => {
                self.err(
                    f("ebgp_multihop"),
                    format!("expected a TTL 1..=255 or true, found \"{t}\""),
                );
                None
            }
        };
        let ttl_security = s
            .ttl_security
            .and_then(|n| self.int(n, &f("ttl_security"), 1, 254));
        if ebgp_multihop.is_some() && ttl_security.is_some() {
            self.err(
                f("ttl_security"),
                "cannot be combined with ebgp_multihop: GTSM sends TTL 255 and checks the TTL of what arrives, multihop lowers it (FRR refuses both too)",
            );
        }
        if ebgp_multihop.is_some() && internal == Some(true) {
            self.warn(
                f("ebgp_multihop"),
                "applies to eBGP sessions only; this one is iBGP",
            );
        }
        let bfd_profile = s.bfd_profile.clone().filter(|name| {
            let known = refs.bfd.contains_key(name);
            if !known {
                self.err(
                    f("bfd_profile"),
                    format!("no BFD profile named \"{name}\"; {}", names(refs.bfd)),
                );
            }
            known
        });
        let import = s.import.clone().filter(|name| {
            let known = refs.policies.contains_key(name);
            if !known {
                self.err(
                    f("import"),
                    format!("no policy named \"{name}\"; {}", names(refs.policies)),
                );
            }
            known
        });
        let max_prefix = s.max_prefix.as_ref().map(|m| {
            let mf = |k: &str| format!("{base}.max_prefix.{k}");
            let limit = self
                .int(m.limit, &mf("limit"), 1, i64::from(u32::MAX))
                .unwrap_or(1);
            let warning_threshold =
                self.opt_int(m.warning_threshold, &mf("warning_threshold"), 1, 100, 75u8);
            let restart_after = m
                .restart_after
                .as_ref()
                .and_then(|v| self.secs(v, &mf("restart_after"), 1, 65535 * 60));
            if m.warning_only && restart_after.is_some() {
                self.err(
                    mf("restart_after"),
                    "means nothing with warning_only = true: the session is never torn down",
                );
            }
            MaxPrefix {
                limit,
                warning_threshold,
                restart_after,
                warning_only: m.warning_only,
            }
        });
        let families = match &s.families {
            None => vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
            Some(list) => {
                if list.is_empty() {
                    self.err(
                        f("families"),
                        "is empty: a session needs at least one of ipv4-unicast, ipv6-unicast",
                    );
                }
                let mut out = Vec::new();
                for (i, x) in list.iter().enumerate() {
                    let field = format!("{base}.families[{i}]");
                    match parse_family(x.get_ref()) {
                        Ok(fam) if out.contains(&fam) => {
                            self.err_at(x, field, format!("{} is listed twice", family_name(fam)))
                        }
                        Ok(fam) => out.push(fam),
                        Err(e) => self.err_at(x, field, e),
                    }
                }
                out
            }
        };
        // A policy that can only accept one family's routes on a session
        // that does not carry that family accepts nothing.
        if let Some(policy) = import.as_ref().and_then(|n| refs.policies.get(n)) {
            let wanted: Vec<AfiSafi> = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
                .into_iter()
                .filter(|fam| policy.ranges.iter().any(|r| family_of(&r.prefix) == *fam))
                .collect();
            if !policy.ranges.is_empty()
                && !wanted.iter().any(|w| families.contains(w))
                && !families.is_empty()
            {
                let have: Vec<&str> = families.iter().map(|x| family_name(*x)).collect();
                let want: Vec<&str> = wanted.iter().map(|x| family_name(*x)).collect();
                self.err(
                    f("families"),
                    format!(
                        "carries {} but policy \"{}\" accepts only {} routes, so nothing would be installed",
                        have.join(", "),
                        import.as_deref().unwrap_or(""),
                        want.join(", ")
                    ),
                );
            }
        }
        Session {
            timers,
            password,
            ebgp_multihop,
            ttl_security,
            bfd_profile,
            graceful_restart: s
                .graceful_restart
                .unwrap_or(refs.router.graceful_restart.helper),
            max_prefix,
            families,
            import,
        }
    }

    fn peer(&mut self, i: usize, p: &RawPeer, refs: &Refs<'_>) -> Option<Peer> {
        let base = format!("peer[{i}]");
        let f = |k: &str| format!("{base}.{k}");
        let a = p.address;
        if a.is_unspecified() || a.is_multicast() || matches!(a, IpAddr::V4(v) if v.is_broadcast())
        {
            self.err(f("address"), format!("{a} cannot be a neighbour's address"));
        }
        let asn = match &p.asn {
            Scalar::Text(t) if t.eq_ignore_ascii_case("internal") => Some(PeerAs::Internal),
            Scalar::Text(t) if t.eq_ignore_ascii_case("external") => Some(PeerAs::External),
            Scalar::Text(t) if t.eq_ignore_ascii_case("any") => {
                self.err(f("asn"), "a configured peer needs its AS, \"internal\" or \"external\"; \"any\" is for listen ranges");
                None
            }
            v => self.asn(v, &f("asn")).map(PeerAs::Exact),
        };
        if let Some(src) = p.source {
            if src.is_ipv4() != a.is_ipv4() {
                self.err(
                    f("source"),
                    format!("{src} and the peer's address {a} are of different families"),
                );
            } else if src.is_unspecified() || src.is_multicast() {
                self.err(f("source"), format!("{src} cannot be a source address"));
            }
        }
        let port = self.opt_int(p.port, &f("port"), 1, 65535, BGP_PORT);
        let internal = asn.map(|a| a.is_internal(refs.router.asn));
        let session = self.session(&p.session(), &base, internal, refs);
        Some(Peer {
            address: a,
            asn: asn?,
            description: p.description.clone(),
            passive: p.passive,
            source: p.source,
            port,
            upstream: p.upstream,
            session,
        })
    }

    fn listen_range(
        &mut self,
        i: usize,
        r: &RawListenRange,
        refs: &Refs<'_>,
    ) -> Option<ListenRange> {
        let base = format!("listen_range[{i}]");
        let f = |k: &str| format!("{base}.{k}");
        let prefix = self.prefix(&r.prefix, &f("prefix"), None);
        let one = |c: &mut Self, v: &Scalar, field: &str| -> Option<PeerAsMatch> {
            match v {
                Scalar::Text(t) if t.eq_ignore_ascii_case("any") => Some(PeerAsMatch::Any),
                Scalar::Text(t) if t.eq_ignore_ascii_case("internal") => {
                    Some(PeerAsMatch::Internal)
                }
                Scalar::Text(t) if t.eq_ignore_ascii_case("external") => {
                    Some(PeerAsMatch::External)
                }
                v => c.asn(v, field).map(PeerAsMatch::Exact),
            }
        };
        let asn = match &r.asn {
            AsList::One(v) => one(self, v, &f("asn")),
            AsList::Many(list) => {
                if list.is_empty() {
                    self.err(f("asn"), "is an empty list: give AS numbers, or \"any\"");
                }
                let mut v = Vec::new();
                for (j, x) in list.iter().enumerate() {
                    let field = format!("{base}.asn[{j}]");
                    let n = match x.get_ref() {
                        Scalar::Int(n) => check_asn(*n),
                        Scalar::Text(t) => parse_asn(t),
                        Scalar::Bool(b) => Err(format!("expected an AS number, found {b}")),
                    };
                    match n {
                        Ok(n) if v.contains(&n) => {
                            self.err_at(x, field, format!("AS {n} is listed twice"))
                        }
                        Ok(n) => v.push(n),
                        Err(e) => self.err_at(x, field, e),
                    }
                }
                v.sort_unstable();
                match v.as_slice() {
                    [] => None,
                    [one] => Some(PeerAsMatch::Exact(*one)),
                    _ => Some(PeerAsMatch::OneOf(v)),
                }
            }
        };
        let limit = self.opt_int(r.limit, &f("limit"), 1, 65535, 1024u32);
        let internal = asn.as_ref().map(|a| a.is_internal(refs.router.asn));
        let session = self.session(&r.session(), &base, internal, refs);
        if let Some(p) = &prefix {
            if p.prefix_len() == 0 && session.password.is_none() {
                self.warn(
                    f("prefix"),
                    format!("{p} accepts neighbours from any address, without a password"),
                );
            }
        }
        Some(ListenRange {
            prefix: prefix?,
            asn: asn?,
            limit,
            session,
        })
    }

    fn range_overlaps(&mut self, ranges: &[Option<ListenRange>]) {
        for (j, b) in ranges.iter().enumerate() {
            let Some(b) = b else { continue };
            for (i, a) in ranges[..j].iter().enumerate() {
                let Some(a) = a else { continue };
                if prefixes_overlap(&a.prefix, &b.prefix) {
                    self.err(
                        format!("listen_range[{j}].prefix"),
                        format!(
                            "{} overlaps listen_range[{i}] ({}); a connecting address must fall in one range only",
                            b.prefix, a.prefix
                        ),
                    );
                }
            }
        }
    }

    fn peer_conflicts(&mut self, peers: &[Option<Peer>], ranges: &[Option<ListenRange>]) {
        let mut seen: HashMap<IpAddr, usize> = HashMap::new();
        for (i, p) in peers.iter().enumerate() {
            let Some(p) = p else { continue };
            if let Some(first) = seen.get(&p.address) {
                self.err(
                    format!("peer[{i}].address"),
                    format!("{} is already peer[{first}]'s address", p.address),
                );
                continue;
            }
            seen.insert(p.address, i);
            for (j, r) in ranges.iter().enumerate() {
                let Some(r) = r else { continue };
                if super::prefix_covers(&r.prefix, &host(p.address)) {
                    self.err(
                        format!("peer[{i}].address"),
                        format!(
                            "{} is inside listen_range[{j}] ({}); a neighbour is either configured or dynamic, so narrow the range or remove this [[peer]]",
                            p.address, r.prefix
                        ),
                    );
                }
            }
        }
    }

    fn multipath(&mut self, f: &File) -> Multipath {
        let d = Multipath::default();
        let m = &f.multipath;
        Multipath {
            maximum_paths: self.opt_int(
                m.maximum_paths,
                "multipath.maximum_paths",
                1,
                1024,
                d.maximum_paths,
            ),
            as_path_relax: m.as_path_relax.unwrap_or(d.as_path_relax),
            ibgp: m.ibgp.unwrap_or(d.ibgp),
        }
    }

    fn forwarding(&mut self, list: &[RawForwarding], multipath: &Multipath) -> Forwarding {
        let mut rules: Vec<ForwardingRule> = Vec::new();
        let mut seen: HashMap<Prefix, usize> = HashMap::new();
        for (i, r) in list.iter().enumerate() {
            let base = format!("forwarding[{i}]");
            let f = |k: &str| format!("{base}.{k}");
            let prefix = self.prefix(&r.prefix, &f("prefix"), None);
            if let Some(p) = prefix {
                if let Some(first) = seen.insert(p, i) {
                    self.err(
                        f("prefix"),
                        format!("{p} is already forwarding[{first}]'s prefix"),
                    );
                }
            }
            let mut policy = GroupPolicy::default();
            if let Some(a) = &r.algorithm {
                match a.parse::<Algorithm>() {
                    Ok(a) => policy.algorithm = a,
                    Err(e) => self.err(f("algorithm"), e.to_string()),
                }
            }
            if let Some(x) = &r.fields {
                match x.parse::<HashFields>() {
                    Ok(x) => policy.fields = FieldSelection::new(x),
                    Err(e) => self.err(f("fields"), e.to_string()),
                }
            }
            policy.fields = policy.fields.symmetric(r.symmetric.unwrap_or(false));
            if let Some(x) = &r.hash {
                match x.parse::<HashFunction>() {
                    Ok(x) => policy.hash = x,
                    Err(e) => self.err(f("hash"), e.to_string()),
                }
            }
            if let Some(s) = r.seed {
                policy.seed = s;
                policy.params.seed = s;
            }
            let rp = &mut policy.params.resilient;
            if let Some(b) = r.buckets {
                rp.buckets = self
                    .int(b, &f("buckets"), 1, i64::from(hashing::select::MAX_BUCKETS))
                    .unwrap_or(rp.buckets);
            }
            let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            if let Some(v) = &r.idle_timer {
                if let Some(d) = self.duration(v, &f("idle_timer"), Bare::Seconds) {
                    policy.params.resilient.idle_timer = nanos(d);
                }
            }
            if let Some(v) = &r.unbalanced_timer {
                if let Some(d) = self.duration(v, &f("unbalanced_timer"), Bare::Seconds) {
                    policy.params.resilient.unbalanced_timer = nanos(d);
                }
            }
            if let Some(t) = r.table_size {
                policy.params.maglev_table_size = self
                    .int(
                        t,
                        &f("table_size"),
                        1,
                        i64::from(hashing::select::MAX_TABLE_SIZE),
                    )
                    .unwrap_or(policy.params.maglev_table_size);
            }
            // Settings the chosen algorithm does not read.
            let alg = policy.algorithm;
            if alg != Algorithm::Resilient {
                for (k, set) in [
                    ("buckets", r.buckets.is_some()),
                    ("idle_timer", r.idle_timer.is_some()),
                    ("unbalanced_timer", r.unbalanced_timer.is_some()),
                ] {
                    if set {
                        self.warn(
                            f(k),
                            format!(
                                "is ignored: only resilient groups use it, this range uses {alg}"
                            ),
                        );
                    }
                }
            }
            if alg != Algorithm::Maglev && r.table_size.is_some() {
                self.warn(
                    f("table_size"),
                    format!("is ignored: only Maglev uses it, this range uses {alg}"),
                );
            }
            if alg == Algorithm::Resilient
                && u32::from(multipath.maximum_paths) > policy.params.resilient.buckets
            {
                self.warn(
                    f("buckets"),
                    format!(
                        "{} buckets cannot give each of up to {} paths (multipath.maximum_paths) a bucket",
                        policy.params.resilient.buckets, multipath.maximum_paths
                    ),
                );
            }
            // Build the selector once to check what only it knows (a prime
            // Maglev table, timer limits).
            if let Err(e) = AnySelector::new(alg, &policy.params, &[Member::new(0)], 0) {
                self.err(&base, format!("{alg}: {e}"));
            }
            if let Some(prefix) = prefix {
                rules.push(ForwardingRule { prefix, policy });
            }
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.prefix_len()));
        Forwarding {
            rules,
            default: GroupPolicy::default(),
        }
    }

    fn dataplane(&mut self, d: &RawDataplane) -> Dataplane {
        let backend = match d.backend.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
            None => Some(Backend::PacketMmap),
            Some(s) => match s.as_str() {
                "memory" => Some(Backend::Memory),
                "packet-mmap" | "packet_mmap" | "mmap" => Some(Backend::PacketMmap),
                "pnet" => Some(Backend::Pnet),
                other => {
                    self.err(
                        "dataplane.backend",
                        format!("unknown backend `{other}`: choose packet-mmap, pnet or memory"),
                    );
                    None
                }
            },
        };
        let mut ports: Vec<String> = Vec::new();
        for (i, p) in d.ports.iter().flatten().enumerate() {
            let name = p.get_ref();
            let field = format!("dataplane.ports[{i}]");
            let ok = !name.is_empty()
                && name.len() <= 15
                && name != "."
                && name != ".."
                && !name
                    .chars()
                    .any(|c| c == '/' || c == ':' || c.is_whitespace());
            if !ok {
                self.err_at(
                    p,
                    field,
                    format!(
                        "`{name}` is not an interface name (1 to 15 bytes, no '/', ':' or spaces)"
                    ),
                );
            } else if ports.contains(name) {
                self.err_at(p, field, format!("`{name}` is listed twice"));
            } else {
                ports.push(name.clone());
            }
        }
        let needs_ports = backend.filter(|b| *b != Backend::Memory);
        if let Some(backend) = needs_ports.filter(|_| d.ports.as_ref().map_or(true, Vec::is_empty))
        {
            self.err(
                "dataplane.ports",
                format!("the {} backend needs at least one interface, e.g. ports = [\"eth1\", \"eth2\"]", backend.name()),
            );
        }
        let workers = self.opt_int(d.workers, "dataplane.workers", 0, 1024, 0usize);
        let t = d.tracker.clone().unwrap_or_default();
        let capacity = self.opt_int(
            t.capacity,
            "dataplane.tracker.capacity",
            1,
            MAX_CAPACITY as i64,
            1usize << 20,
        );
        let ways = self.opt_int(
            t.ways,
            "dataplane.tracker.ways",
            1,
            MAX_WAYS as i64,
            DEFAULT_WAYS,
        );
        let idle = t
            .idle_timeout
            .as_ref()
            .and_then(|v| self.duration(v, "dataplane.tracker.idle_timeout", Bare::Seconds))
            .unwrap_or(Duration::from_secs(120));
        if idle.is_zero() {
            self.err("dataplane.tracker.idle_timeout", "must be more than 0");
        }
        let mut tracker =
            TrackerConfig::new(capacity, u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX));
        tracker.ways = ways;
        Dataplane {
            backend: backend.unwrap_or(Backend::PacketMmap),
            ports,
            workers,
            tracker,
        }
    }
}

/// What sessions refer to.
struct Refs<'a> {
    router: &'a Router,
    bfd: &'a BTreeMap<String, BfdProfile>,
    policies: &'a BTreeMap<String, ImportPolicy>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn family_of(p: &Prefix) -> AfiSafi {
    match p {
        Prefix::V4(..) => AfiSafi::IPV4_UNICAST,
        Prefix::V6(..) => AfiSafi::IPV6_UNICAST,
    }
}
