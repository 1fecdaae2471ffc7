//! `ecmpd demo`: the whole system on loopback, no root, no configuration.
//!
//! The real router (BGP sessions, RIB with multipath, FIB writer, management
//! API) starts on 127.0.0.1; emulated MetalLB native speakers on 127.0.0.2,
//! .3, ... dial in and announce a service IP. Modelled client connections
//! flow, on the wall clock, through one in-memory data plane per compared
//! algorithm (the emulator's engine, the same pipeline the router forwards
//! with), each programmed with every FIB change the router makes, the
//! moment it makes it. Then nodes go away and come back the ways they do in
//! a cluster: a speaker stops cleanly (node drained), returns, and a node
//! dies silently (its speaker stops sending, the router's hold timer finds
//! out). The report shows the connections each algorithm broke at each of
//! those moments, and the packets sent to a dead node before the router
//! noticed.

pub mod live;

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use control::bgp::speaker::{self, SpeakerConfig, SpeakerHandle};
use control::config::Config;
use control::router::{FibBatch, Router, RouterOptions};
use dataplane::emulator::{Scenario, Workload};
use dataplane::fib::table::{FibUpdate, Prefix};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::emulate::{report, Emulation, ScenarioSummary};
use live::LiveEvent;

/// The service IP the speakers announce.
const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The router's and the speakers' AS numbers (eBGP, one AS per node as
/// MetalLB clusters often have, so multipath needs as-path relax).
const ROUTER_AS: u32 = 64512;
const NODE_AS_BASE: u32 = 64600;
/// Hold time the speakers propose: short, so a silent node is found out in
/// seconds, not MetalLB's 90.
const HOLD_TIME: u16 = 3;

/// Run the whole router on loopback and measure, per algorithm, the
/// connections that break when nodes leave and return.
///
/// Starts the router (BGP on 127.0.0.1, dynamic neighbours from
/// 127.0.0.0/8), N emulated MetalLB speakers on 127.0.0.2.. announcing
/// 198.51.100.10/32, and modelled client traffic through one in-memory data
/// plane per algorithm, programmed by the router's live FIB changes. Then,
/// at a quarter of the run node-b's speaker stops (node drained), at half
/// it returns, and at three quarters node-d dies silently and the router's
/// hold timer (3 s) finds out. Needs no root and no configuration; writes an
/// HTML/Markdown/JSON/CSV report like `ecmpd emulate`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Nodes (speakers), at least 4.
    #[arg(long, default_value_t = 4)]
    nodes: u8,
    /// Length of the run, seconds (at least 20).
    #[arg(long, default_value_t = 36)]
    seconds: u64,
    /// Folder for the report.
    #[arg(short, long, default_value = "ecmpd-report/demo")]
    out: PathBuf,
    /// Also print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Node `i`'s name and address.
fn node(i: usize) -> (String, IpAddr) {
    let letter = (b'a' + i as u8) as char;
    (
        format!("node-{letter}"),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)),
    )
}

/// The scenario the engines run: the nodes, the service, the algorithms,
/// the traffic; no timeline (the live router makes it).
fn scenario(nodes: usize, seconds: u64) -> Result<Scenario> {
    let mut toml = format!(
        r#"name = "demo"
description = """
The live router on loopback: {nodes} emulated MetalLB speakers announce {SERVICE}; node-b's speaker stops and returns, node-d dies silently and the hold timer finds out."""
duration = "{seconds}s"
sample = "1s"
seed = 7
"#
    );
    for i in 0..nodes {
        let (name, addr) = node(i);
        toml.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\naddress = \"{addr}\"\n"
        ));
    }
    toml.push_str(&format!(
        r#"
[[service]]
address = "{SERVICE}"

[hashing]
algorithms = ["modulo", "hash-threshold", "resilient", "maglev", "rendezvous"]
fields = ["l4"]
resilient_buckets = 128
resilient_idle_timer = "120s"

[traffic]
model = "uniform"
arrivals = 100
open_at_start = 2000
duration = {{ distribution = "lognormal", median = "30s", sigma = 1.0 }}
packet_interval = {{ distribution = "exponential", mean = "500ms" }}

[tracker]
idle_timeout = "10s"
"#
    ));
    Scenario::parse(&toml, None).map_err(|e| anyhow::anyhow!("the demo's scenario: {e}"))
}

/// The router's configuration: the built-in loopback one, with a short hold
/// time for the speakers' listen range.
fn router_config() -> Result<Config> {
    let src = format!(
        r#"
[router]
id = "127.0.0.1"
asn = {ROUTER_AS}
listen = ["127.0.0.1:1179"]

[api]
listen = "127.0.0.1:2179"

[[listen_range]]
prefix = "127.0.0.0/8"
asn = "external"
hold_time = "{HOLD_TIME}s"
import = "services"

[policy.services]
accept = ["198.51.100.0/24 le 32"]

[multipath]
as_path_relax = true

[dataplane]
backend = "memory"
"#
    );
    Config::parse(&src, None).map_err(|e| anyhow::anyhow!("the demo's router configuration: {e}"))
}

fn start_speaker(i: usize, router: SocketAddr) -> SpeakerHandle {
    let (_, addr) = node(i);
    let mut c = SpeakerConfig::new(NODE_AS_BASE + i as u32, ROUTER_AS, addr, router);
    c.hold_time = HOLD_TIME;
    c.retry_interval = Duration::from_secs(2);
    let s = speaker::spawn(c);
    s.announce(Prefix::V4(SERVICE, 32), Vec::new());
    s
}

/// The node indexes a FIB batch gives the service, if it touches it.
fn members_of(batch: &FibBatch, nodes: usize) -> Option<Vec<usize>> {
    let service = Prefix::V4(SERVICE, 32);
    let mut out = None;
    for u in &batch.updates {
        match u {
            FibUpdate::SetRoute {
                prefix, nexthops, ..
            } if *prefix == service => {
                let mut m: Vec<usize> = nexthops
                    .iter()
                    .filter_map(|n| (0..nodes).find(|&i| node(i).1 == n.addr))
                    .collect();
                m.sort_unstable();
                out = Some(m);
            }
            FibUpdate::RemoveRoute { prefix } if *prefix == service => out = Some(Vec::new()),
            _ => {}
        }
    }
    out
}

fn elapsed(t0: Instant) -> String {
    format!("{:5.1} s", t0.elapsed().as_secs_f64())
}

/// Run `ecmpd demo`.
pub fn demo(args: DemoArgs) -> Result<()> {
    if args.nodes < 4 || args.nodes > 26 {
        bail!("--nodes must be between 4 and 26 (node-d is the one that dies)");
    }
    if args.seconds < 20 {
        bail!("--seconds must be at least 20: the timeline needs room");
    }
    let nodes = usize::from(args.nodes);
    let mut scenario = scenario(nodes, args.seconds)?;
    let workload = Workload::generate(&scenario).context("building the demo's traffic")?;
    let config = router_config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Speakers are spawned from this thread too.
    let _runtime = rt.enter();

    // The router, with every FIB batch mirrored to us.
    let (fib_tx, mut fib_rx) = mpsc::unbounded_channel::<FibBatch>();
    let router = rt.block_on(Router::start(
        config,
        RouterOptions {
            bgp_listen: Some(vec!["127.0.0.1:0".parse()?]),
            api_listen: Some("127.0.0.1:0".parse()?),
            fib_listener: Some(fib_tx),
            ..RouterOptions::default()
        },
    ))?;
    let bgp_addr = router.bgp_addrs()[0];
    let api = router.api_addr();
    eprintln!(
        "router: BGP on {bgp_addr}, API on {} (try `ecmpd show bgp summary --api {}` while it runs)",
        api.map_or("-".into(), |a| format!("http://{a}")),
        api.map_or("-".into(), |a| a.to_string())
    );

    // The speakers, and a wait until the FIB holds all of them.
    let mut speakers: Vec<Option<SpeakerHandle>> = (0..nodes)
        .map(|i| Some(start_speaker(i, bgp_addr)))
        .collect();
    let converged = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            if let Some(batch) = tokio::time::timeout(Duration::from_millis(200), fib_rx.recv())
                .await
                .ok()
                .flatten()
            {
                if members_of(&batch, nodes).is_some_and(|m| m.len() == nodes) {
                    return true;
                }
            }
        }
        false
    });
    if !converged {
        bail!("the router did not install {SERVICE}/32 with {nodes} nexthops within 15 s");
    }
    eprintln!("router: {SERVICE}/32 via {nodes} nodes; traffic starts\n");

    // The engines, on their own thread, from t0.
    let (ev_tx, ev_rx) = std_mpsc::channel::<LiveEvent>();
    let t0 = Instant::now();
    let duration = Duration::from_secs(args.seconds);
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(args.seconds * 10);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos:>4}/{len} tenths of a second",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message("traffic through 5 data planes");
        bar
    } else {
        ProgressBar::hidden()
    };
    let say = |bar: &ProgressBar, line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };

    let result = std::thread::scope(|scope| -> Result<live::LiveResult> {
        let engines = scope.spawn(|| {
            let tick = |t: u64| bar.set_position(t / 100_000_000);
            live::drive(&scenario, &workload, ev_rx, t0, &tick)
        });

        // The control side: the timeline, and FIB changes to the engines.
        rt.block_on(async {
            let at = |f: f64| t0 + duration.mul_f64(f);
            let mut plan = vec![(at(0.25), 0u8), (at(0.5), 1), (at(0.75), 2)];
            plan.reverse();
            // node-d, once dead, must not come back when its speaker would
            // redial after the router drops the session.
            let mut d_dead = false;
            loop {
                let next = plan.last().map(|(t, _)| *t);
                let end = t0 + duration;
                tokio::select! {
                    batch = fib_rx.recv() => {
                        let Some(batch) = batch else { break };
                        if let Some(members) = members_of(&batch, nodes) {
                            let cause = batch.causes.iter().find(|c| c.contains("down") || c.contains("up")).cloned()
                                .unwrap_or_else(|| batch.causes.first().cloned().unwrap_or_else(|| "FIB change".into()));
                            let names: Vec<String> = members.iter().map(|&i| node(i).0).collect();
                            say(&bar, format!("{}  router: {cause}; {SERVICE}/32 now via {}", elapsed(t0), names.join(", ")));
                            if d_dead && !members.contains(&3) {
                                if let Some(s) = speakers[3].take() { s.kill().await; }
                            }
                            let _ = ev_tx.send(LiveEvent::Members { at: batch.at, service: 0, nodes: members, cause });
                        }
                    }
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next.unwrap_or(end))) => {
                        if Instant::now() >= end && next.is_none() { break; }
                        let Some((_, what)) = plan.pop() else { continue };
                        match what {
                            0 => {
                                say(&bar, format!("{}  node-b: speaker stops (node drained; it closes the TCP session)", elapsed(t0)));
                                if let Some(s) = speakers[1].take() { s.stop().await; }
                            }
                            1 => {
                                say(&bar, format!("{}  node-b: speaker starts again and announces {SERVICE}", elapsed(t0)));
                                speakers[1] = Some(start_speaker(1, bgp_addr));
                            }
                            _ => {
                                say(&bar, format!("{}  node-d: dies silently (no FIN, no keepalives); packets to it are lost until the router notices", elapsed(t0)));
                                if let Some(s) = &speakers[3] { s.pause_keepalives(); }
                                d_dead = true;
                                let _ = ev_tx.send(LiveEvent::NodeDead { at: Instant::now(), node: 3, dead: true });
                            }
                        }
                    }
                }
            }
        });
        drop(ev_tx);
        engines
            .join()
            .map_err(|_| anyhow::anyhow!("the data-plane thread panicked"))?
    })?;
    bar.finish_and_clear();

    // Stop everything.
    rt.block_on(async {
        for s in speakers.into_iter().flatten() {
            s.kill().await;
        }
        router.shutdown().await;
    });

    // The report, as `ecmpd emulate` writes one.
    scenario.steps = result.steps;
    let emulation = Emulation {
        command: "demo",
        scenario: ScenarioSummary::of(&scenario),
        workload: workload.stats.clone(),
        runs: result.runs,
        elapsed_s: t0.elapsed().as_secs_f64(),
    };
    let written = report::write(&emulation, &args.out)?;
    let mut text = format!(
        "\nLive run: {} connections, {} packets through each of {} data planes in {:.0} s.\n",
        emulation.workload.connections,
        emulation.workload.packets,
        emulation.runs.len(),
        emulation.elapsed_s
    );
    text.push_str(&report::summary_text(&emulation));
    let blackholed = report::runs_with(&emulation, |t| t.blackholed);
    text.push_str(&format!(
        "  Packets sent to node-d after it died, before the hold timer expired: {}.\n",
        blackholed.join(", ")
    ));
    crate::emulate::print_result(&emulation, &written, text, args.json)
}
