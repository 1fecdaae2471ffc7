//! The configurations each launcher renders, pinned against the examples in
//! `testbed/speakers/` so a change to a generator shows up as a diff there. Run with
//! `TESTBED_BLESS=1` to rewrite the examples after an intended change.

use std::path::{Path, PathBuf};

use testbed::speakers::{bird, exabgp, frr, gobgp, BfdProfile, Neighbor, SpeakerConfig};

const DIR: &str = "/tmp/ecmpd-testbed-example";

/// Node 1 of the cluster as the proof tests configure it, with every option on: IPv4
/// and IPv6 sessions, MD5, graceful restart, a BFD profile, two service prefixes.
fn node() -> SpeakerConfig {
    let full = |n: Neighbor| n.password("metallb-secret").graceful_restart();
    SpeakerConfig::new(64512, "10.10.0.11".parse().unwrap())
        .hostname("node1")
        .local_v6("fd00:10::11".parse().unwrap())
        .neighbor(full(Neighbor::new("10.10.0.1".parse().unwrap(), 64500)).bfd_profile("fast"))
        .neighbor(full(Neighbor::new("fd00:10::1".parse().unwrap(), 64500)))
        .announce("192.168.100.10/32".parse().unwrap())
        .announce("fd00:100::10/128".parse().unwrap())
        .bfd(BfdProfile::new("fast"))
}

/// The reference router facing three nodes over IPv4 and IPv6.
fn router() -> SpeakerConfig {
    let mut cfg = SpeakerConfig::new(64500, "10.10.0.1".parse().unwrap())
        .hostname("router")
        .local_v6("fd00:10::1".parse().unwrap())
        .bfd(BfdProfile::new("fast"));
    for i in 1..=3u8 {
        let v4 = format!("10.10.0.{}", 10 + i).parse().unwrap();
        let v6 = format!("fd00:10::{}", 10 + i).parse().unwrap();
        cfg = cfg
            .neighbor(
                Neighbor::new(v4, 64512)
                    .password("metallb-secret")
                    .bfd_profile("fast"),
            )
            .neighbor(Neighbor::new(v6, 64512).password("metallb-secret"));
    }
    cfg
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../speakers")
}

fn check(name: &str, rendered: &str) {
    let path = examples().join(name);
    if std::env::var_os("TESTBED_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, rendered).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (TESTBED_BLESS=1 writes it)", path.display()));
    assert_eq!(
        pinned,
        rendered,
        "{} differs from what the launcher renders; if intended, rerun with TESTBED_BLESS=1",
        path.display()
    );
}

#[test]
fn frr_node_renders_metallb_frr_mode_config() {
    let files = frr::render(&node(), frr::FrrRole::MetalLbNode, Path::new(DIR));
    check("frr-node/zebra.conf", &files.zebra);
    check("frr-node/bgpd.conf", &files.bgpd);
    check(
        "frr-node/bfdd.conf",
        files.bfdd.as_deref().expect("a BFD profile"),
    );
}

#[test]
fn frr_router_renders_multipath_config() {
    let files = frr::render(
        &router(),
        frr::FrrRole::MultipathRouter { maximum_paths: 16 },
        Path::new(DIR),
    );
    check("frr-router/bgpd.conf", &files.bgpd);
    check(
        "frr-router/bfdd.conf",
        files.bfdd.as_deref().expect("a BFD profile"),
    );
}

#[test]
fn bird_node_renders_static_services_and_one_protocol_per_neighbor() {
    check("bird-node.conf", &bird::render(&node(), Path::new(DIR)));
}

#[test]
fn gobgp_node_renders_toml_and_adds_paths_with_origin_igp() {
    let cfg = node();
    let mut text = gobgp::render(&cfg);
    text.push_str("\n# paths, added after start with the gobgp CLI:\n");
    for p in &cfg.announce {
        text.push_str(&format!(
            "#   gobgp {}\n",
            gobgp::add_path_args(&cfg, p).join(" ")
        ));
    }
    check("gobgpd-node.toml", &text);
}

#[test]
fn exabgp_node_renders_static_routes_and_runs_as_root() {
    let mut text = exabgp::render(&node(), Path::new(DIR));
    text.push_str("\n# environment:\n");
    for (k, v) in exabgp::environment(Path::new(DIR)) {
        text.push_str(&format!("#   {k}={v}\n"));
    }
    check("exabgp-node.conf", &text);
}

/// ecmpd as the interop tests configure it for native speakers (listen ranges) and
/// FRR-mode speakers (passive peers with BFD) at once; ecmpd's own parser must take it
/// without a warning.
#[test]
fn ecmpd_router_renders_a_config_ecmpd_accepts() {
    use testbed::ecmpd::{self, EcmpdConfig, PeerConfig, SessionOptions};
    let session = SessionOptions::default()
        .timers(1, 3)
        .password("metallb-secret")
        .import("services");
    let cfg = EcmpdConfig::new(
        64500,
        "10.10.0.1".parse().unwrap(),
        &["10.10.0.1".parse().unwrap(), "fd00:10::1".parse().unwrap()],
    )
    .policy(
        "services",
        &["192.168.100.0/24 le 32", "fd00:100::/64 le 128"],
    )
    .bfd(BfdProfile::new("metallb"))
    .range("10.10.0.0/25".parse().unwrap(), 64512, session.clone())
    .range("fd00:10::/64".parse().unwrap(), 64512, session.clone())
    .peer(PeerConfig {
        address: "10.10.0.200".parse().unwrap(),
        asn: 64513,
        passive: true,
        description: Some("node200 (MetalLB FRR mode)".into()),
        session: session.timers(3, 9).bfd_profile("metallb"),
    });
    let text = ecmpd::render(&cfg);
    check("ecmpd-router.toml", &text);
    let parsed = control::config::Config::parse(&text, None)
        .unwrap_or_else(|e| panic!("ecmpd refuses the rendered configuration: {e}\n{text}"));
    assert!(
        parsed.warnings.is_empty(),
        "warnings: {:?}",
        parsed.warnings
    );
}
