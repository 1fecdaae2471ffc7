//! The router configuration: the shipped example, the embedded default, the
//! defaults MetalLB documents, and every cross-check reporting the right line
//! and dotted field.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use control::bgp::wire::attrs::PathAttributes;
use control::bgp::wire::AfiSafi;
use control::config::{
    parse_asn, parse_duration, prefix_range, Backend, BfdProfile, Community, Config, ConfigError,
    ConfigErrors, LargeCommunity, PeerAs, PeerAsMatch, PolicyAction, Timers,
};
use dataplane::fib::table::{GroupPolicy, Prefix};
use hashing::{Algorithm, HashFields, HashFunction};
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../testbed/router/router.toml");

/// A small valid file; tests append to it or replace parts of it.
const BASE: &str = r#"[router]
id = "10.0.0.1"
asn = 64512

[bfd_profile.default]

[bfd_profile.slow]
receive_interval = 1000
transmit_interval = 1000

[[listen_range]]
prefix = "172.18.0.0/16"
asn = 64513

[[peer]]
address = "10.20.0.11"
asn = 64514
bfd_profile = "default"

[dataplane]
backend = "memory"
"#;

fn ok(src: &str) -> Config {
    match Config::parse(src, Some(Path::new("router.toml"))) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

fn errs(src: &str) -> ConfigErrors {
    match Config::parse(src, Some(Path::new("router.toml"))) {
        Ok(_) => panic!("expected the configuration to be refused:\n{src}"),
        Err(e) => e,
    }
}

/// The single fault of a refused configuration.
fn err(src: &str) -> ConfigError {
    let e = errs(src);
    assert_eq!(e.len(), 1, "expected one fault, got:\n{e}");
    e.first().clone()
}

/// 1-based line of the first line of `src` containing `needle`.
fn line(src: &str, needle: &str) -> usize {
    src.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the text"))
        + 1
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

#[test]
fn the_example_file_parses_with_the_expected_values() {
    let c = ok(EXAMPLE);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.router.id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(c.router.asn, 64512);
    assert_eq!(c.router.timers, Timers::default());
    assert_eq!(c.router.connect_retry, Duration::from_secs(5));
    assert_eq!(c.router.connect_retry_max, Duration::from_secs(120));
    assert!(c.router.graceful_restart.helper);
    assert_eq!(
        c.router.graceful_restart.restart_time,
        Duration::from_secs(120)
    );
    assert_eq!(
        c.api.listen,
        "127.0.0.1:2179".parse::<SocketAddr>().unwrap()
    );

    let r = &c.listen_ranges[0];
    assert_eq!(r.prefix, pfx("172.18.0.0/16"));
    assert_eq!(r.asn, PeerAsMatch::Exact(64513));
    assert_eq!(r.limit, 256);
    assert_eq!(
        r.session.password.as_ref().unwrap().expose(),
        "metallb-lab-secret"
    );
    assert_eq!(r.session.families, vec![AfiSafi::IPV4_UNICAST]);
    let mp = r.session.max_prefix.unwrap();
    assert_eq!(
        (mp.limit, mp.restart_after),
        (1000, Some(Duration::from_secs(300)))
    );
    assert_eq!(c.listen_range_for("172.18.0.5".parse().unwrap()), Some(r));

    assert_eq!(c.peers.len(), 3);
    let frr = &c.peers[0];
    assert_eq!(frr.asn, PeerAs::Exact(64514));
    assert!(frr.passive);
    assert_eq!(frr.port, 179);
    assert_eq!(frr.session.timers.hold_time, Duration::from_secs(9));
    assert_eq!(frr.session.timers.keepalive, Duration::from_secs(3));
    let fast = c.bfd_for(&frr.session).unwrap();
    assert_eq!(fast.receive_interval, Duration::from_millis(100));
    assert_eq!(fast.detect_multiplier, 3);
    assert!(frr.session.max_prefix.unwrap().warning_only);

    let up = c.peer("192.0.2.254".parse().unwrap()).unwrap();
    assert_eq!(up.asn, PeerAs::External);
    assert!(up.upstream);
    assert_eq!(up.session.ttl_security, Some(1));
    assert_eq!(up.session.ebgp_multihop, None);
    assert_eq!(up.source, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(c.bfd_for(&up.session), Some(&BfdProfile::default()));
    // The upstream's timers are the router's.
    assert_eq!(up.session.timers, c.router.timers);

    let p = &c.policies["metallb-services"];
    assert_eq!(p.ranges.len(), 3);
    assert_eq!(p.rules.len(), 3);
    assert_eq!(p.rules[0].action, Some(PolicyAction::Deny));
    assert_eq!(p.rules[1].action, Some(PolicyAction::SetLocalPref(150)));
    assert_eq!(p.default_action, PolicyAction::Accept);
    assert!(c.policies["nothing"].ranges.is_empty());

    assert_eq!(c.multipath.maximum_paths, 128);
    assert_eq!(c.forwarding.rules.len(), 3);
    assert_eq!(c.dataplane.backend, Backend::PacketMmap);
    assert_eq!(c.dataplane.ports, ["eth1", "eth2", "eth3", "eth4", "eth5"]);
    assert_eq!(c.dataplane.workers, 2);
    assert_eq!(c.dataplane.tracker.capacity, 1 << 20);
    assert_eq!(c.dataplane.tracker.idle_timeout, 120_000_000_000);
}

#[test]
fn the_embedded_default_validates_and_needs_no_root() {
    let c = Config::embedded_default();
    assert!(c.api.listen.ip().is_loopback());
    assert!(!c.api.allow_remote);
    assert!(c
        .router
        .listen
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() >= 1024));
    assert_eq!(c.listen_ranges.len(), 1);
    assert_eq!(c.listen_ranges[0].prefix, pfx("127.0.0.0/8"));
    assert_eq!(c.listen_ranges[0].asn, PeerAsMatch::Any);
    assert!(c.listen_ranges[0].asn.accepts(4_200_000_000, 64512));
    assert_eq!(c.dataplane.backend, Backend::Memory);
    assert!(c.peers.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn defaults_match_metallb_and_frr() {
    let c = ok("[router]\nid = \"10.0.0.1\"\nasn = 64512\n[dataplane]\nbackend = \"memory\"\n[bfd_profile.x]\n");
    // MetalLB BGPPeer: holdTime 90s, keepalive 30s.
    assert_eq!(c.router.timers.hold_time, Duration::from_secs(90));
    assert_eq!(c.router.timers.keepalive, Duration::from_secs(30));
    assert_eq!(
        c.router.listen,
        vec![
            "0.0.0.0:179".parse::<SocketAddr>().unwrap(),
            "[::]:179".parse().unwrap()
        ]
    );
    assert_eq!(
        c.api.listen,
        "127.0.0.1:2179".parse::<SocketAddr>().unwrap()
    );
    // MetalLB BFDProfile defaults.
    let b = c.bfd_profiles["x"];
    assert_eq!(b, BfdProfile::default());
    assert_eq!(b.receive_interval, Duration::from_millis(300));
    assert_eq!(b.transmit_interval, Duration::from_millis(300));
    assert_eq!(b.detect_multiplier, 3);
    assert_eq!(b.echo_interval, Duration::from_millis(50));
    assert!(!b.echo_mode && !b.passive_mode);
    assert_eq!(b.minimum_ttl, 254);
    // FRR's graceful-restart time; multipath wide enough for a cluster.
    assert_eq!(
        c.router.graceful_restart.restart_time,
        Duration::from_secs(120)
    );
    assert_eq!(c.multipath.maximum_paths, 128);
    assert!(c.multipath.as_path_relax && c.multipath.ibgp);
    assert_eq!(c.forwarding.default, GroupPolicy::default());
    assert_eq!(c.forwarding.default.algorithm, Algorithm::Resilient);
}

#[test]
fn a_session_inherits_the_router_timers_and_families() {
    let c = ok(BASE);
    let s = &c.peers[0].session;
    assert_eq!(s.timers, Timers::default());
    assert_eq!(
        s.families,
        vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
    );
    assert!(s.graceful_restart);
    assert_eq!(s.import, None);
}

#[test]
fn durations_parse_with_units_and_bare_numbers_by_context() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert!(parse_duration("90").unwrap_err().contains("no unit"));
    // BGP timers: a bare number is seconds; BFD intervals: milliseconds.
    let c = ok(&BASE
        .replace(
            "bfd_profile = \"default\"",
            "bfd_profile = \"default\"\nhold_time = 30\nkeepalive = \"10s\"",
        )
        .replace("receive_interval = 1000", "receive_interval = \"1s\""));
    assert_eq!(c.peers[0].session.timers.hold_time, Duration::from_secs(30));
    assert_eq!(c.peers[0].session.timers.keepalive, Duration::from_secs(10));
    assert_eq!(
        c.bfd_profiles["slow"].receive_interval,
        Duration::from_secs(1)
    );
    assert_eq!(
        c.bfd_profiles["slow"].transmit_interval,
        Duration::from_secs(1)
    );
    // A hold time alone brings a keepalive of a third of it, as MetalLB.
    let c = ok(&BASE.replace("asn = 64512", "asn = 64512\nhold_time = \"240s\""));
    assert_eq!(c.router.timers.keepalive, Duration::from_secs(80));
    // Hold 0 turns keepalives off.
    let c = ok(&BASE.replace("asn = 64512", "asn = 64512\nhold_time = 0"));
    assert_eq!(c.router.timers.keepalive, Duration::ZERO);
}

#[test]
fn as_numbers_parse_in_every_written_form() {
    assert_eq!(parse_asn("64512"), Ok(64512));
    assert_eq!(parse_asn("1.10"), Ok(65546));
    assert_eq!(parse_asn("4294967295"), Ok(u32::MAX));
    assert!(parse_asn("0").unwrap_err().contains("reserved"));
    assert!(parse_asn("23456").unwrap_err().contains("AS_TRANS"));
    assert!(parse_asn("4294967296").is_err());

    let c = ok(&BASE.replace("asn = 64514", "asn = \"internal\""));
    assert_eq!(c.peers[0].asn, PeerAs::Internal);
    assert!(c.peers[0].asn.matches(64512, 64512));
    let c = ok(&BASE.replace("asn = 64514", "asn = \"1.10\""));
    assert_eq!(c.peers[0].asn, PeerAs::Exact(65546));
    let c = ok(&BASE
        .replace("asn = 64513", "asn = [64515, 64513, \"external\"]")
        .replace(", \"external\"", ""));
    assert_eq!(
        c.listen_ranges[0].asn,
        PeerAsMatch::OneOf(vec![64513, 64515])
    );
    assert!(c.listen_ranges[0].asn.accepts(64515, 64512));
    assert!(!c.listen_ranges[0].asn.accepts(64514, 64512));
    let c = ok(&BASE.replace("asn = 64513", "asn = \"external\""));
    assert!(c.listen_ranges[0].asn.accepts(64513, 64512));
    assert!(!c.listen_ranges[0].asn.accepts(64512, 64512));
}

#[test]
fn the_router_as_must_be_a_real_as() {
    for bad in ["0", "23456", "4294967296", "-1", "\"x\""] {
        let e = err(&BASE.replace("asn = 64512", &format!("asn = {bad}")));
        assert_eq!(e.field, "router.asn", "{e}");
        assert_eq!(e.line, Some(3), "{e}");
    }
}

#[test]
fn an_unknown_bfd_profile_names_the_line_field_and_defined_profiles() {
    let src = format!(
        "{BASE}\n[[peer]]\naddress = \"10.20.0.12\"\nasn = 64514\n\n[[peer]]\naddress = \"10.20.0.13\"\nasn = 64514\nbfd_profile = \"fast\"\n"
    );
    let e = err(&src);
    let l = line(&src, "\"fast\"");
    assert_eq!(e.line, Some(l));
    assert_eq!(
        e.to_string(),
        format!("router.toml:{l}: peer[2].bfd_profile: no BFD profile named \"fast\"; defined: default, slow")
    );
}

#[test]
fn an_unknown_import_policy_is_refused() {
    let src = BASE.replace("asn = 64513", "asn = 64513\nimport = \"services\"");
    let e = err(&src);
    assert_eq!(e.field, "listen_range[0].import");
    assert_eq!(e.line, Some(line(&src, "import")));
    assert!(
        e.message
            .contains("no policy named \"services\"; none are defined"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_refused_with_the_valid_names() {
    let src = BASE.replace(
        "bfd_profile = \"default\"",
        "bfd_profile = \"default\"\nhold = \"90s\"",
    );
    let e = err(&src);
    assert_eq!(e.line, Some(line(&src, "hold =")));
    assert_eq!(e.field, "peer[0].hold");
    assert!(e.message.contains("unknown field `hold`"), "{e}");
    assert!(
        e.message.contains("hold_time") && e.message.contains("ebgp_multihop"),
        "{e}"
    );

    let src = format!("{BASE}\n[routing]\nx = 1\n");
    let e = err(&src);
    assert!(
        e.message.contains("unknown field `routing`") && e.message.contains("listen_range"),
        "{e}"
    );
    assert_eq!(e.line, Some(line(&src, "[routing]")));

    let src = BASE.replace(
        "receive_interval = 1000",
        "receive_interval = 1000\necho = true",
    );
    let e = err(&src);
    assert_eq!(e.field, "bfd_profile.slow.echo");
    assert!(e.message.contains("echo_mode"), "{e}");
}

#[test]
fn a_missing_required_field_is_named() {
    let e = err(&BASE.replace("asn = 64514\n", ""));
    assert_eq!(e.field, "peer[0].asn", "{e}");
    assert!(e.message.contains("missing field `asn`"), "{e}");
    let e = err("[dataplane]\nbackend = \"memory\"\n");
    assert_eq!(e.field, "router", "{e}");
}

#[test]
fn duplicate_peer_addresses_are_refused() {
    let src = format!("{BASE}\n[[peer]]\naddress = \"10.20.0.11\" # again\nasn = 64514\n");
    let e = err(&src);
    assert_eq!(e.field, "peer[1].address");
    assert_eq!(e.line, Some(line(&src, "# again")));
    assert!(e.message.contains("already peer[0]'s address"), "{e}");
}

#[test]
fn a_peer_inside_a_listen_range_is_refused() {
    let src = format!("{BASE}\n[[peer]]\naddress = \"172.18.0.9\"\nasn = 64513\n");
    let e = err(&src);
    assert_eq!(e.field, "peer[1].address");
    assert_eq!(e.line, Some(line(&src, "172.18.0.9")));
    assert!(
        e.message.contains("inside listen_range[0] (172.18.0.0/16)"),
        "{e}"
    );
}

#[test]
fn overlapping_listen_ranges_are_refused() {
    let src = format!("{BASE}\n[[listen_range]]\nprefix = \"172.18.4.0/24\"\nasn = \"any\"\n");
    let e = err(&src);
    assert_eq!(e.field, "listen_range[1].prefix");
    assert_eq!(e.line, Some(line(&src, "172.18.4.0/24")));
    assert!(e.message.contains("overlaps listen_range[0]"), "{e}");
    // Different families never overlap.
    ok(&format!(
        "{BASE}\n[[listen_range]]\nprefix = \"fd00::/64\"\nasn = \"any\"\n"
    ));
}

#[test]
fn host_bits_in_prefixes_are_refused_with_the_fix() {
    let src = BASE.replace("172.18.0.0/16", "172.18.0.1/16");
    let e = err(&src);
    assert_eq!(e.field, "listen_range[0].prefix");
    assert_eq!(e.line, Some(12));
    assert!(
        e.message.contains("host bits set; write 172.18.0.0/16"),
        "{e}"
    );

    let src = format!("{BASE}\n[[forwarding]]\nprefix = \"198.51.100.7/24\"\n");
    let e = err(&src);
    assert_eq!(e.field, "forwarding[0].prefix");
    assert_eq!(e.line, Some(line(&src, "198.51.100.7")));
}

#[test]
fn multihop_and_ttl_security_exclude_each_other() {
    let src = BASE.replace(
        "bfd_profile = \"default\"",
        "ebgp_multihop = 2\nttl_security = 1",
    );
    let e = err(&src);
    assert_eq!(e.field, "peer[0].ttl_security");
    assert_eq!(e.line, Some(line(&src, "ttl_security")));
    assert!(e.message.contains("ebgp_multihop"), "{e}");
    // MetalLB's boolean form means TTL 255.
    let c = ok(&BASE.replace("bfd_profile = \"default\"", "ebgp_multihop = true"));
    assert_eq!(c.peers[0].session.ebgp_multihop, Some(255));
    let e = err(&BASE.replace("bfd_profile = \"default\"", "ttl_security = 255"));
    assert_eq!(e.field, "peer[0].ttl_security");
}

#[test]
fn families_must_fit_the_session_and_its_policy() {
    let policy = "\n[policy.v6]\naccept = [\"2001:db8:100::/56 le 128\"]\n";
    let src = format!(
        "{}{policy}",
        BASE.replace(
            "bfd_profile = \"default\"",
            "families = [\"ipv4-unicast\"]\nimport = \"v6\""
        )
    );
    let e = err(&src);
    assert_eq!(e.field, "peer[0].families");
    assert_eq!(e.line, Some(line(&src, "families")));
    assert!(e.message.contains("accepts only ipv6-unicast"), "{e}");

    let e = err(&BASE.replace("bfd_profile = \"default\"", "source = \"fd00::1\""));
    assert_eq!(e.field, "peer[0].source");
    assert!(e.message.contains("different families"), "{e}");

    let src = BASE.replace(
        "bfd_profile = \"default\"",
        "families = [\"ipv4-unicast\", \"l2vpn-evpn\"]",
    );
    let e = err(&src);
    assert_eq!(e.field, "peer[0].families[1]");
    assert!(e.message.contains("ipv4-unicast, ipv6-unicast"), "{e}");
}

#[test]
fn passwords_longer_than_tcp_md5_allows_are_refused() {
    ok(&BASE.replace(
        "asn = 64513",
        &format!("asn = 64513\npassword = \"{}\"", "k".repeat(80)),
    ));
    let src = BASE.replace(
        "asn = 64513",
        &format!("asn = 64513\npassword = \"{}\"", "k".repeat(81)),
    );
    let e = err(&src);
    assert_eq!(e.field, "listen_range[0].password");
    assert_eq!(e.line, Some(line(&src, "password")));
    assert!(e.message.contains("81 bytes"), "{e}");
    // The key never shows in debug output.
    let c = ok(&BASE.replace("asn = 64513", "asn = 64513\npassword = \"s3cret\""));
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn bgp_timers_follow_rfc_4271() {
    let e = err(&BASE.replace("asn = 64512", "asn = 64512\nhold_time = \"2s\""));
    assert_eq!(
        (e.field.as_str(), e.line),
        ("router.hold_time", Some(4)),
        "{e}"
    );
    let e = err(&BASE.replace(
        "asn = 64512",
        "asn = 64512\nhold_time = \"30s\"\nkeepalive = \"30s\"",
    ));
    assert_eq!(
        (e.field.as_str(), e.line),
        ("router.keepalive", Some(5)),
        "{e}"
    );
    let e = err(&BASE.replace("asn = 64512", "asn = 64512\nhold_time = \"1500ms\""));
    assert!(e.message.contains("whole number of seconds"), "{e}");
    let e = err(&BASE.replace("asn = 64512", "asn = 64512\nhold_time = \"90\""));
    assert!(e.message.contains("no unit"), "{e}");
}

#[test]
fn bfd_values_follow_metallb_ranges() {
    for (k, v) in [
        ("receive_interval", "9"),
        ("transmit_interval", "60001"),
        ("echo_interval", "\"5ms\""),
        ("detect_multiplier", "1"),
        ("detect_multiplier", "256"),
        ("minimum_ttl", "255"),
        ("minimum_ttl", "0"),
    ] {
        let src = BASE.replace(
            "[bfd_profile.default]",
            &format!("[bfd_profile.default]\n{k} = {v}"),
        );
        let e = err(&src);
        assert_eq!(e.field, format!("bfd_profile.default.{k}"), "{e}");
        assert_eq!(e.line, Some(6), "{e}");
    }
    let src = BASE.replace(
        "[bfd_profile.default]",
        "[bfd_profile.default]\necho_mode = true",
    );
    let c = ok(&src);
    assert!(c.bfd_profiles["default"].echo_mode);
    let w = c
        .warnings
        .iter()
        .find(|w| w.field == "bfd_profile.default.echo_mode");
    let w = w.unwrap_or_else(|| panic!("{:?}", c.warnings));
    assert_eq!(w.line, Some(6));
    assert!(w.message.contains("not supported"));
    // BASE defines `slow` and never uses it.
    let w = c
        .warnings
        .iter()
        .find(|w| w.field == "bfd_profile.slow")
        .unwrap();
    assert_eq!(
        w.to_string(),
        "router.toml:8: bfd_profile.slow: is defined but no peer or listen range uses it"
    );
}

#[test]
fn the_api_stays_on_loopback_unless_allowed() {
    let src = format!("{BASE}\n[api]\nlisten = \"0.0.0.0:2179\"\n");
    let e = err(&src);
    assert_eq!(e.field, "api.listen");
    assert_eq!(e.line, Some(line(&src, "0.0.0.0:2179")));
    assert!(e.message.contains("allow_remote = true"), "{e}");
    let c = ok(&format!("{src}allow_remote = true\n"));
    assert_eq!(c.api.listen.ip(), IpAddr::from([0, 0, 0, 0]));
}

#[test]
fn prefix_ranges_check_their_bounds() {
    let policy = |accept: &str| {
        format!(
            "{}\n[policy.p]\naccept = [{accept}]\n",
            BASE.replace("asn = 64513", "asn = 64513\nimport = \"p\"")
        )
    };
    // MetalLB's aggregationLength /24 inside a /16 pool.
    let c = ok(&policy("\"10.10.0.0/16 ge 24 le 24\""));
    let r = c.policies["p"].ranges[0];
    assert!(r.contains(&pfx("10.10.7.0/24")));
    assert!(!r.contains(&pfx("10.10.7.0/25")));
    assert!(!r.contains(&pfx("10.10.0.0/16")));
    assert!(!r.contains(&pfx("10.11.0.0/24")));
    for (bad, why) in [
        ("\"10.10.0.0/16 le 33\"", "longer than an IPv4 prefix"),
        (
            "\"10.10.0.0/16 ge 8\"",
            "shorter than the prefix's own length",
        ),
        (
            "{ prefix = \"10.10.0.0/16\", ge = 28, le = 24 }",
            "ge 28 is more than le 24",
        ),
        ("\"10.10.0.0/16 lt 24\"", "not a prefix range"),
        ("\"10.10.0.1/16 le 32\"", "host bits"),
    ] {
        let src = policy(bad);
        let e = err(&src);
        assert_eq!(e.field, "policy.p.accept[0]", "{e}");
        assert_eq!(e.line, Some(line(&src, "accept =")), "{e}");
        assert!(e.message.contains(why), "{bad}: {e}");
    }
    assert_eq!(
        prefix_range(pfx("10.0.0.0/8"), None, Some(32))
            .unwrap()
            .to_string(),
        "10.0.0.0/8 le 32"
    );
}

#[test]
fn import_policies_filter_prefixes_then_apply_rules_in_order() {
    let c = ok(EXAMPLE);
    let p = &c.policies["metallb-services"];
    let none: [Community; 0] = [];
    let drained = ["64513:1:0".parse::<LargeCommunity>().unwrap()];
    let gold: Community = "64500:100".parse().unwrap();
    let no_export: Community = "no-export".parse().unwrap();
    assert_eq!(no_export, Community(0xFFFF_FF01));
    assert_eq!(gold.to_string(), "64500:100");
    // The RIB runs the policy: the prefix list first, then the rules.
    let verdict = |prefix: &str, communities: &[Community], large: &[LargeCommunity]| {
        let prefix = pfx(prefix);
        if !p.allows_prefix(&prefix) {
            return PolicyAction::Deny;
        }
        let attrs = PathAttributes {
            communities: communities.to_vec(),
            large_communities: large.to_vec(),
            ..PathAttributes::default()
        };
        p.action_for(&prefix, &attrs)
    };
    // Outside every accepted range: refused whatever it carries.
    assert_eq!(verdict("192.0.2.10/32", &[gold], &[]), PolicyAction::Deny);
    assert_eq!(
        verdict("198.51.100.10/32", &none, &[]),
        PolicyAction::Accept
    );
    assert_eq!(
        verdict("198.51.100.10/32", &[gold], &drained),
        PolicyAction::Deny
    );
    assert_eq!(
        verdict("203.0.113.0/24", &[gold], &[]),
        PolicyAction::SetLocalPref(150)
    );
    assert_eq!(
        verdict("2001:db8:100::5/128", &[no_export], &[]),
        PolicyAction::SetLocalPref(50)
    );
    assert_eq!(verdict("203.0.113.0/23", &none, &[]), PolicyAction::Deny);
}

#[test]
fn policy_rules_check_communities_and_actions() {
    let with_rule = |rule: &str| {
        format!(
            "{}\n[policy.p]\naccept = [\"10.0.0.0/8 le 32\"]\n\n[[policy.p.rule]]\n{rule}\n",
            BASE.replace("asn = 64513", "asn = 64513\nimport = \"p\"")
        )
    };
    let src = with_rule("community = [\"65000:100\", \"65000:70000\"]");
    let e = err(&src);
    assert_eq!(e.field, "policy.p.rule[0].community[1]");
    assert_eq!(e.line, Some(line(&src, "70000")));
    let e = err(&with_rule("large_community = [\"65000:1\"]"));
    assert_eq!(e.field, "policy.p.rule[0].large_community[0]");
    let src = with_rule("action = \"deny\"\nset_local_pref = 10");
    let e = err(&src);
    assert_eq!(e.field, "policy.p.rule[0].set_local_pref");
    assert_eq!(e.line, Some(line(&src, "set_local_pref")));
    let e = err(&with_rule("action = \"drop\""));
    assert_eq!(e.field, "policy.p.rule[0].action");
    let c = ok(&with_rule(
        "community = [\"no-advertise\", \"blackhole\"]\naction = \"deny\"",
    ));
    assert_eq!(
        c.policies["p"].rules[0].communities,
        [Community(0xFFFF_FF02), Community(0xFFFF_029A)]
    );
}

#[test]
fn forwarding_policy_is_chosen_by_longest_match() {
    let src = format!(
        "{BASE}
[[forwarding]]
prefix = \"198.51.100.0/24\"
algorithm = \"maglev\"
fields = \"l3-proto\"
hash = \"crc32\"
table_size = 251

[[forwarding]]
prefix = \"198.51.100.128/25\"
algorithm = \"resilient\"
buckets = 256
idle_timer = \"30s\"
unbalanced_timer = \"5m\"
seed = 9

[[forwarding]]
prefix = \"::/0\"
algorithm = \"hash-threshold\"
fields = \"src-ip+dst-ip+flow-label\"
"
    );
    let c = ok(&src);
    let f = &c.forwarding;
    let p = f.policy_for_addr("198.51.100.200".parse().unwrap());
    assert_eq!(p.algorithm, Algorithm::Resilient);
    assert_eq!(p.params.resilient.buckets, 256);
    assert_eq!(p.params.resilient.idle_timer, 30_000_000_000);
    assert_eq!(p.params.resilient.unbalanced_timer, 300_000_000_000);
    assert_eq!((p.seed, p.params.seed), (9, 9));
    assert_eq!(p.fields.fields, HashFields::L4);
    let p = f.policy_for(&pfx("198.51.100.10/32"));
    assert_eq!(p.algorithm, Algorithm::Maglev);
    assert_eq!(p.params.maglev_table_size, 251);
    assert_eq!(p.fields.fields, HashFields::L3Proto);
    assert_eq!(p.hash, HashFunction::Crc32);
    assert_eq!(f.policy_for(&pfx("203.0.113.1/32")), GroupPolicy::default());
    assert_eq!(
        f.policy_for(&pfx("2001:db8::1/128")).algorithm,
        Algorithm::HashThreshold
    );
    assert_eq!(
        f.rule_for(&pfx("198.51.100.0/24")).unwrap().prefix,
        pfx("198.51.100.0/24")
    );
}

#[test]
fn forwarding_settings_are_checked_against_the_algorithm() {
    let fwd =
        |body: &str| format!("{BASE}\n[[forwarding]]\nprefix = \"198.51.100.0/24\"\n{body}\n");
    let e = err(&fwd("algorithm = \"maglev\"\ntable_size = 1000"));
    assert_eq!(e.field, "forwarding[0]", "{e}");
    assert!(e.message.contains("prime"), "{e}");
    let e = err(&fwd("algorithm = \"round-robin\""));
    assert_eq!(e.field, "forwarding[0].algorithm");
    assert!(e.message.contains("maglev"), "{e}");
    let e = err(&fwd("fields = \"src-mac\""));
    assert_eq!(e.field, "forwarding[0].fields");
    let e = err(&fwd("buckets = 0"));
    assert_eq!(e.field, "forwarding[0].buckets");
    let src = format!(
        "{}[[forwarding]]\nprefix = \"198.51.100.0/24\" # again\n",
        fwd("")
    );
    let e = err(&src);
    assert_eq!(e.field, "forwarding[1].prefix");
    assert_eq!(e.line, Some(line(&src, "# again")));
    assert!(e.message.contains("already forwarding[0]'s prefix"), "{e}");
    // Settings another algorithm reads, and too few buckets for the paths,
    // are warnings.
    let on_buckets = |c: &Config| {
        let w = c
            .warnings
            .iter()
            .find(|w| w.field == "forwarding[0].buckets");
        w.unwrap_or_else(|| panic!("{:?}", c.warnings))
            .message
            .clone()
    };
    let c = ok(&fwd("algorithm = \"maglev\"\nbuckets = 64"));
    assert!(on_buckets(&c).contains("only resilient groups use it"));
    let c = ok(&fwd("buckets = 64"));
    assert!(on_buckets(&c).contains("maximum_paths"));
}

#[test]
fn the_data_plane_needs_ports_unless_in_memory() {
    let src = BASE.replace("backend = \"memory\"", "backend = \"packet-mmap\"");
    let e = err(&src);
    assert_eq!(e.field, "dataplane.ports");
    assert_eq!(e.line, Some(line(&src, "[dataplane]")));
    let c = ok(&BASE.replace(
        "backend = \"memory\"",
        "backend = \"pnet\"\nports = [\"eth1\", \"veth-node2\"]",
    ));
    assert_eq!(c.dataplane.backend, Backend::Pnet);
    let src = BASE.replace("backend = \"memory\"", "ports = [\"eth1\",\n  \"eth1\"]");
    let e = err(&src);
    assert_eq!(e.field, "dataplane.ports[1]");
    assert_eq!(e.line, Some(line(&src, "  \"eth1\"]")));
    let e = err(&BASE.replace("backend = \"memory\"", "backend = \"dpdk\""));
    assert!(e.message.contains("packet-mmap, pnet or memory"), "{e}");
}

#[test]
fn max_prefix_options_are_checked() {
    let with = |mp: &str| BASE.replace("asn = 64513", &format!("asn = 64513\nmax_prefix = {mp}"));
    let c = ok(&with("{ limit = 500 }"));
    let m = c.listen_ranges[0].session.max_prefix.unwrap();
    assert_eq!(
        (
            m.limit,
            m.warning_threshold,
            m.restart_after,
            m.warning_only
        ),
        (500, 75, None, false)
    );
    let e = err(&with("{ limit = 0 }"));
    assert_eq!(e.field, "listen_range[0].max_prefix.limit");
    assert_eq!(e.line, Some(14));
    let e = err(&with(
        "{ limit = 5, warning_only = true, restart_after = \"1m\" }",
    ));
    assert_eq!(e.field, "listen_range[0].max_prefix.restart_after");
}

#[test]
fn every_fault_is_reported_in_line_order() {
    let src = BASE
        .replace("asn = 64512", "asn = 0")
        .replace("bfd_profile = \"default\"", "bfd_profile = \"nope\"")
        .replace("172.18.0.0/16", "172.18.0.0/33");
    let e = errs(&src);
    let fields: Vec<&str> = e.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "router.asn",
            "listen_range[0].prefix",
            "peer[0].bfd_profile"
        ],
        "{e}"
    );
    let lines: Vec<String> = e.to_string().lines().map(String::from).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("router.toml:3: router.asn: "), "{e}");
}

#[test]
fn syntax_errors_name_their_line() {
    let src = BASE.replace("asn = 64514", "asn = 64514 64515");
    let e = err(&src);
    assert_eq!(e.line, Some(line(&src, "64514 64515")), "{e}");
    let e = err(&BASE.replace("address = \"10.20.0.11\"", "address = \"10.20.0.300\""));
    assert_eq!(e.field, "peer[0].address", "{e}");
    assert_eq!(e.line, Some(16), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random TOML-ish text never panics the parser.
    #[test]
    fn random_text_never_panics(s in "[\\[\\]a-z_.=\"0-9:/ \n{},#-]{0,300}") {
        let _ = Config::parse(&s, None);
    }

    /// The example file with any one line dropped or any byte changed is
    /// either accepted or refused with a located message, never a panic.
    #[test]
    fn mutated_example_never_panics(drop in 0usize..200, at in 0usize..5000, b in any::<u8>()) {
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let dropped: String = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != drop % lines.len())
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        let _ = Config::parse(&dropped, None);
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        let at = at % bytes.len();
        bytes[at] = b;
        if let Ok(text) = String::from_utf8(bytes) {
            if let Err(e) = Config::parse(&text, None) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn router_level_timers_and_listeners_are_checked() {
    let with = |extra: &str| BASE.replace("asn = 64512", &format!("asn = 64512\n{extra}"));
    let c = ok(&with("hold_time = 10"));
    assert_eq!(
        c.router.timers.keepalive,
        Duration::from_secs(3),
        "whole seconds"
    );
    let e = err(&with(
        "connect_retry = \"30s\"\nconnect_retry_max = \"10s\"",
    ));
    assert_eq!(
        (e.field.as_str(), e.line),
        ("router.connect_retry_max", Some(5)),
        "{e}"
    );
    let e = err(&with("restart_time = \"4096s\""));
    assert_eq!(e.field, "router.restart_time", "{e}");
    let e = err(&with("listen = []"));
    assert_eq!(e.field, "router.listen", "{e}");
    assert!(e.message.contains("listen_range"), "{e}");
    let e = err(&with("listen = [\"0.0.0.0:179\", \"0.0.0.0:179\"]"));
    assert_eq!(e.field, "router.listen[1]", "{e}");
    let e = err(&BASE.replace("id = \"10.0.0.1\"", "id = \"0.0.0.0\""));
    assert_eq!((e.field.as_str(), e.line), ("router.id", Some(2)), "{e}");
    let c = ok(&with("graceful_restart = false"));
    assert!(!c.router.graceful_restart.helper);
    assert!(
        !c.peers[0].session.graceful_restart,
        "sessions inherit the helper setting"
    );
}
