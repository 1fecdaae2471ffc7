//! `ecmpd show ...` against a management API served by the real server
//! (`control::api`) with a stand-in state owner: tables read like vtysh,
//! `--json` passes the API's JSON through, errors are one clear sentence.

use std::net::IpAddr;
use std::process::{Command, Output};

use control::api::view::{
    BfdDownView, BfdPeerView, BgpSummary, FibMember, FibRoute, FibView, NeighbourSummary, PathView,
    RouteEntry,
};
use control::api::{ApiServer, Query};
use tokio::sync::mpsc;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn neighbour(addr: &str, state: &str, accepted: u64) -> NeighbourSummary {
    NeighbourSummary {
        address: ip(addr),
        asn: Some(64513),
        range: Some("127.0.0.0/8".into()),
        description: None,
        state: state.into(),
        state_secs: 3725,
        msg_rcvd: 12,
        msg_sent: 10,
        prefixes_received: accepted + 1,
        prefixes_accepted: accepted,
        prefixes_filtered: 1,
        prefixes_stale: 0,
        bfd: Some("Up".into()),
        last_error: (state != "Established").then(|| "peer closed the connection".into()),
    }
}

fn path(peer: &str, best: bool) -> PathView {
    PathView {
        peer: ip(peer),
        next_hop: ip(peer),
        med: Some(0),
        local_pref: None,
        as_path: "64513".into(),
        origin: "i".into(),
        communities: vec!["65000:100".into()],
        large_communities: vec![],
        best,
        multipath: true,
        stale: false,
        filtered: false,
    }
}

/// Answer every query with fixed views until the channel closes; record the
/// prefix filters asked for.
async fn owner(mut rx: mpsc::Receiver<Query>) {
    while let Some(q) = rx.recv().await {
        match q {
            Query::BgpSummary(tx) => {
                let _ = tx.send(BgpSummary {
                    router_id: "127.0.0.1".into(),
                    local_as: 64512,
                    rib_prefixes: 1,
                    rib_paths: 2,
                    peers: vec![
                        neighbour("127.0.0.2", "Established", 1),
                        neighbour("127.0.0.3", "Active", 0),
                    ],
                });
            }
            Query::BgpRoutes(filter, tx) => {
                let entry = RouteEntry {
                    prefix: "198.51.100.10/32".into(),
                    paths: vec![path("127.0.0.2", true), path("127.0.0.4", false)],
                };
                let keep = filter.map_or(true, |f| f.starts_with("198.51.100."));
                let _ = tx.send(if keep { vec![entry] } else { vec![] });
            }
            Query::Fib(tx) => {
                let _ = tx.send(FibView {
                    groups: 1,
                    routes: vec![FibRoute {
                        prefix: "198.51.100.10/32".into(),
                        group: 3,
                        algorithm: "resilient".into(),
                        fields: "l4".into(),
                        members: vec![
                            FibMember {
                                id: 1,
                                address: ip("127.0.0.2"),
                                weight: 1,
                                share: Some(0.5),
                            },
                            FibMember {
                                id: 2,
                                address: ip("127.0.0.4"),
                                weight: 1,
                                share: Some(0.5),
                            },
                        ],
                        packets: Some(1000),
                    }],
                });
            }
            Query::BfdPeers(tx) => {
                let _ = tx.send(vec![BfdPeerView {
                    peer: ip("127.0.0.2"),
                    state: "Down".into(),
                    diagnostic: "Control Detection Time Expired".into(),
                    local_discr: 1,
                    remote_discr: 7,
                    tx_ms: 300,
                    detect_ms: 900,
                    last_down: Some(BfdDownView {
                        detect_ms: 912.0,
                        fib_ms: Some(913.5),
                    }),
                }]);
            }
            Query::Metrics(tx) => {
                let _ = tx.send("ecmpd_bgp_peers 2\n".into());
            }
            Query::Refresh(peer, tx) => {
                let _ = tx.send(if peer == ip("127.0.0.2") {
                    Ok(vec!["ipv4-unicast".into()])
                } else {
                    Err(format!("{peer} has no established session"))
                });
            }
            Query::Counts(tx) => {
                let _ = tx.send(Default::default());
            }
        }
    }
}

fn show(addr: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecmpd"))
        .arg("show")
        .args(args)
        .args(["--api", addr])
        .output()
        .unwrap()
}

#[test]
fn show_commands_read_the_api_as_tables_and_json() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = mpsc::channel(8);
    rt.spawn(owner(rx));
    let server = rt
        .block_on(ApiServer::start("127.0.0.1:0".parse().unwrap(), tx))
        .unwrap();
    let addr = server.addr.to_string();

    let out = show(&addr, &["bgp", "summary"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("BGP router identifier 127.0.0.1, local AS number 64512"),
        "{text}"
    );
    let line = text.lines().find(|l| l.contains("127.0.0.2")).unwrap();
    assert!(
        line.contains("01:02:05") && line.trim_end().ends_with("N/A"),
        "{line}"
    );
    assert!(text
        .lines()
        .any(|l| l.contains("127.0.0.3") && l.contains("Active")));
    assert!(text.contains("last error: peer closed the connection"));

    let out = show(&addr, &["bgp", "summary", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["peers"][0]["prefixes_accepted"], 1);

    let out = show(&addr, &["bgp", "routes"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("*> 198.51.100.10/32") && l.contains("64513 i")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("*=") && l.contains("127.0.0.4")),
        "{text}"
    );
    assert!(text.contains("Displayed 1 routes and 2 total paths"));
    let out = show(&addr, &["bgp", "routes", "10.0.0.0/8", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        0,
        "the prefix filter reached the owner"
    );

    let out = show(&addr, &["fib"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("198.51.100.10/32 via group 3 (resilient, l4), 1000 packets"),
        "{text}"
    );
    assert!(
        text.contains("nexthop 127.0.0.4 id 2 weight 1, 50.0% of buckets"),
        "{text}"
    );

    let out = show(&addr, &["bfd", "peers"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("912 ms / 914 ms") || text.contains("912 ms / 913 ms"),
        "{text}"
    );

    // ROUTE-REFRESH on demand, and a clear refusal.
    let refresh = |peer: &str| {
        Command::new(env!("CARGO_BIN_EXE_ecmpd"))
            .args(["bgp", "refresh", peer, "--api", &addr])
            .output()
            .unwrap()
    };
    let out = refresh("127.0.0.2");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("ROUTE-REFRESH sent to 127.0.0.2 for ipv4-unicast"));
    let out = refresh("127.0.0.9");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no established session"));

    rt.block_on(server.shutdown());
}

#[test]
fn a_router_that_is_not_running_gets_one_clear_sentence() {
    // Bind then drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = show(&format!("127.0.0.1:{port}"), &["bgp", "summary"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot reach the router's management API"),
        "{err}"
    );
    assert!(err.contains("ecmpd router"), "{err}");
}

#[test]
fn a_state_owner_that_is_gone_gives_503_with_a_reason() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = mpsc::channel::<Query>(1);
    drop(rx);
    let server = rt
        .block_on(ApiServer::start("127.0.0.1:0".parse().unwrap(), tx))
        .unwrap();
    let out = show(&server.addr.to_string(), &["fib"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("503") && err.contains("shutting down"),
        "{err}"
    );
    rt.block_on(server.shutdown());
}
