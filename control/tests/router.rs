//! The router assembled from a configuration: emulated MetalLB speakers on
//! loopback dial in, and the FIB (read through the same queries the
//! management API answers) holds one multipath group per service IP that
//! follows the speakers coming and going.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use control::api::view::FibView;
use control::bgp::speaker::{self, SpeakerConfig, SpeakerHandle};
use control::config::Config;
use control::router::{Router, RouterOptions};
use dataplane::fib::table::Prefix;

const SERVICE: &str = "198.51.100.10/32";

fn config(extra: &str) -> Config {
    let src = format!(
        r#"
[router]
id = "127.0.0.1"
asn = 64512
listen = ["127.0.0.1:1179"]

[api]
listen = "127.0.0.1:2179"

[[listen_range]]
prefix = "127.0.0.0/8"
asn = "external"
import = "services"

[policy.services]
accept = ["198.51.100.0/24 le 32"]

[dataplane]
backend = "memory"
{extra}
"#
    );
    Config::parse(&src, None).unwrap_or_else(|e| panic!("{e}"))
}

async fn start(config: Config) -> Router {
    Router::start(
        config,
        RouterOptions {
            bgp_listen: Some(vec!["127.0.0.1:0".parse().unwrap()]),
            api_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..RouterOptions::default()
        },
    )
    .await
    .expect("router starts")
}

async fn speaker(router: &Router, n: u8) -> SpeakerHandle {
    let addr: SocketAddr = router.bgp_addrs()[0];
    let source: IpAddr = format!("127.0.0.{n}").parse().unwrap();
    let s = speaker::spawn(SpeakerConfig::new(64600 + u32::from(n), 64512, source, addr));
    assert!(s.established(Duration::from_secs(10)).await, "speaker 127.0.0.{n} establishes");
    s
}

/// The member addresses of `prefix` in the FIB.
fn members(fib: &FibView, prefix: &str) -> Vec<(IpAddr, u32)> {
    fib.routes
        .iter()
        .find(|r| r.prefix == prefix)
        .map(|r| r.members.iter().map(|m| (m.address, m.id)).collect())
        .unwrap_or_default()
}

/// Wait until the FIB shows `n` members for `prefix`.
async fn wait_members(router: &Router, prefix: &str, n: usize) -> Vec<(IpAddr, u32)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fib = router.fib().await.expect("the owner answers");
        let m = members(&fib, prefix);
        if m.len() == n {
            return m;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{prefix} has {} members, not {n}: {fib:?}", m.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speakers_build_and_shrink_one_resilient_group() {
    let router = start(config("")).await;
    let service: Prefix = SERVICE.parse().unwrap();
    let mut speakers = Vec::new();
    for n in 2..=4 {
        let s = speaker(&router, n).await;
        s.announce(service, vec![]);
        speakers.push(s);
    }
    let before = wait_members(&router, SERVICE, 3).await;
    let fib = router.fib().await.unwrap();
    let route = &fib.routes[0];
    assert_eq!(route.algorithm, "resilient", "the default forwarding policy");
    assert_eq!(route.fields, "l4");

    // A node leaves the way MetalLB's speaker does: it closes the socket.
    let gone = speakers.remove(1);
    gone.stop().await;
    let after = wait_members(&router, SERVICE, 2).await;
    for m in &after {
        assert!(before.contains(m), "member ids of the survivors are kept: {before:?} -> {after:?}");
    }
    assert!(!after.iter().any(|(a, _)| *a == "127.0.0.3".parse::<IpAddr>().unwrap()));

    // Summary: two established neighbours, each with one accepted prefix.
    let summary = router.bgp_summary().await.unwrap();
    let up: Vec<_> = summary.peers.iter().filter(|p| p.state == "Established").collect();
    assert_eq!(up.len(), 2, "{summary:?}");
    assert!(up.iter().all(|p| p.prefixes_accepted == 1 && p.range.as_deref() == Some("127.0.0.0/8")));

    for s in speakers {
        s.stop().await;
    }
    wait_members(&router, SERVICE, 0).await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_policy_keeps_a_hijack_out_of_the_fib() {
    let router = start(config("")).await;
    let s = speaker(&router, 2).await;
    s.announce(SERVICE.parse().unwrap(), vec![]);
    s.announce("192.0.2.0/24".parse().unwrap(), vec![]);
    wait_members(&router, SERVICE, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fib = router.fib().await.unwrap();
    assert_eq!(fib.routes.len(), 1, "only the service IP: {fib:?}");
    let summary = router.bgp_summary().await.unwrap();
    assert_eq!(summary.peers[0].prefixes_filtered, 1);
    s.stop().await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_rule_picks_the_algorithm_per_range() {
    let router = start(config(
        r#"
[[forwarding]]
prefix = "198.51.100.0/28"
algorithm = "maglev"
fields = "l3"
"#,
    ))
    .await;
    let s = speaker(&router, 2).await;
    s.announce(SERVICE.parse().unwrap(), vec![]);
    s.announce("198.51.100.200/32".parse().unwrap(), vec![]);
    wait_members(&router, SERVICE, 1).await;
    wait_members(&router, "198.51.100.200/32", 1).await;
    let fib = router.fib().await.unwrap();
    let by = |p: &str| fib.routes.iter().find(|r| r.prefix == p).unwrap().algorithm.clone();
    assert_eq!(by(SERVICE), "maglev");
    assert_eq!(by("198.51.100.200/32"), "resilient");
    s.stop().await;
    router.shutdown().await;
}
