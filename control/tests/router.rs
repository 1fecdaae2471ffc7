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
prefix = "127.0.0.0/29"
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
    let s = speaker::spawn(SpeakerConfig::new(
        64600 + u32::from(n),
        64512,
        source,
        addr,
    ));
    assert!(
        s.established(Duration::from_secs(10)).await,
        "speaker 127.0.0.{n} establishes"
    );
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
        // One member at a time, as a cluster's speakers come up.
        wait_members(&router, SERVICE, speakers.len()).await;
    }
    let before = wait_members(&router, SERVICE, 3).await;
    let fib = router.fib().await.unwrap();
    let route = &fib.routes[0];
    assert_eq!(
        route.algorithm, "resilient",
        "the default forwarding policy"
    );
    assert_eq!(route.fields, "l4");
    // The speakers came up one after another, so the group formed one member
    // at a time; as in Linux, a bucket moves to a new member only once it
    // has been idle for the idle timer (120 s), so the first speaker still
    // holds every bucket.
    let shares: Vec<f64> = route.members.iter().map(|m| m.share.unwrap()).collect();
    assert!(
        (shares.iter().sum::<f64>() - 1.0).abs() < 1e-9,
        "{shares:?}"
    );
    assert_eq!(
        shares.iter().filter(|&&s| s == 1.0).count(),
        1,
        "{shares:?}"
    );

    // A node leaves the way MetalLB's speaker does: it closes the socket.
    let gone = speakers.remove(1);
    gone.stop().await;
    let after = wait_members(&router, SERVICE, 2).await;
    for m in &after {
        assert!(
            before.contains(m),
            "member ids of the survivors are kept: {before:?} -> {after:?}"
        );
    }
    assert!(!after
        .iter()
        .any(|(a, _)| *a == "127.0.0.3".parse::<IpAddr>().unwrap()));

    // Summary: two established neighbours, each with one accepted prefix.
    let summary = router.bgp_summary().await.unwrap();
    let up: Vec<_> = summary
        .peers
        .iter()
        .filter(|p| p.state == "Established")
        .collect();
    assert_eq!(up.len(), 2, "{summary:?}");
    assert!(up
        .iter()
        .all(|p| p.prefixes_accepted == 1 && p.range.as_deref() == Some("127.0.0.0/29")));

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
    let by = |p: &str| {
        fib.routes
            .iter()
            .find(|r| r.prefix == p)
            .unwrap()
            .algorithm
            .clone()
    };
    assert_eq!(by(SERVICE), "maglev");
    assert_eq!(by("198.51.100.200/32"), "resilient");
    s.stop().await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_routes_are_re_advertised_to_an_upstream_peer() {
    // B: an upstream router accepting A from a listen range.
    let b_cfg = Config::parse(
        r#"
[router]
id = "127.0.0.9"
asn = 65000
listen = ["127.0.0.9:1179"]

[[listen_range]]
prefix = "127.0.0.1/32"
asn = 64512

[dataplane]
backend = "memory"
"#,
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let b = Router::start(
        b_cfg,
        RouterOptions {
            bgp_listen: Some(vec!["127.0.0.9:0".parse().unwrap()]),
            no_api: true,
            ..RouterOptions::default()
        },
    )
    .await
    .unwrap();
    let b_port = b.bgp_addrs()[0].port();

    // A: learns the service from a speaker and has B as its upstream.
    let a = start(config(&format!(
        r#"
[[peer]]
address = "127.0.0.9"
port = {b_port}
asn = 65000
source = "127.0.0.1"
upstream = true
"#
    )))
    .await;
    let s = speaker(&a, 2).await;
    s.announce(SERVICE.parse().unwrap(), vec![]);
    wait_members(&a, SERVICE, 1).await;

    // B installs it via A (next hop self), with A's AS in front.
    let via = wait_members(&b, SERVICE, 1).await;
    assert_eq!(via[0].0, "127.0.0.1".parse::<IpAddr>().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    b.queries()
        .send(control::api::Query::BgpRoutes(None, tx))
        .await
        .unwrap();
    let routes = rx.await.unwrap();
    assert_eq!(routes[0].paths[0].as_path, "64512 64602", "{routes:?}");

    // Route refresh on demand: B asks A, which sends its table again.
    let (tx, rx) = tokio::sync::oneshot::channel();
    b.queries()
        .send(control::api::Query::Refresh(
            "127.0.0.1".parse().unwrap(),
            tx,
        ))
        .await
        .unwrap();
    assert_eq!(
        rx.await.unwrap(),
        Ok(vec!["ipv4-unicast".to_string(), "ipv6-unicast".to_string()])
    );
    // MetalLB's native speaker advertises no route refresh: A says so.
    let (tx, rx) = tokio::sync::oneshot::channel();
    a.queries()
        .send(control::api::Query::Refresh(
            "127.0.0.2".parse().unwrap(),
            tx,
        ))
        .await
        .unwrap();
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.contains("did not negotiate route refresh"), "{err}");
    wait_members(&b, SERVICE, 1).await;

    // The speaker leaves: A withdraws, B follows.
    s.stop().await;
    wait_members(&a, SERVICE, 0).await;
    wait_members(&b, SERVICE, 0).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A speaker gets End-of-RIB for each negotiated family as soon as its session is
/// up: the router has nothing to send it, and a speaker restarting in recovery mode
/// (BIRD -R, GoBGP -r) holds its own routes back until it has every peer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_gets_end_of_rib_once_established() {
    use control::bgp::wire::update::{decode_update, UpdateContext};
    use control::bgp::wire::{AfiSafi, Message};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let router = start(config("")).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut conn = socket.connect(router.bgp_addrs()[0]).await.unwrap();
    let cfg = SpeakerConfig::new(
        64603,
        64512,
        "127.0.0.3".parse().unwrap(),
        router.bgp_addrs()[0],
    );
    for m in [Message::Open(cfg.open()), Message::Keepalive] {
        conn.write_all(&m.encode().unwrap()).await.unwrap();
    }
    let ctx = UpdateContext {
        four_octet_as: true,
        ibgp: false,
        peer_as: Some(64512),
    };
    let mut eor = Vec::new();
    let read = async {
        while eor.len() < 2 {
            let mut header = [0u8; 19];
            conn.read_exact(&mut header).await.unwrap();
            let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
            let mut body = vec![0u8; len - 19];
            conn.read_exact(&mut body).await.unwrap();
            match header[18] {
                2 => {
                    let decoded = decode_update(&body, &ctx).unwrap();
                    eor.push(decoded.update.end_of_rib_family().expect("only End-of-RIB"));
                }
                4 => conn
                    .write_all(&Message::Keepalive.encode().unwrap())
                    .await
                    .unwrap(),
                t => assert_eq!(t, 1, "OPEN, KEEPALIVE or UPDATE, not type {t}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("End-of-RIB for both families within 10 s");
    assert_eq!(eor, [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]);
    router.shutdown().await;
}
