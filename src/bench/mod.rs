//! `ecmpd bench dataplane`: packets per second per core through the whole
//! forwarding pipeline (parse, LPM, nexthop group, selector, neighbour,
//! rewrite), with an hdrhistogram of per-batch latency.
//!
//! Each worker thread owns a [`Pipeline`] over a clone of one FIB reader and
//! the shared neighbour table, and its own rx/tx batches. It refills rx by
//! copying pre-built frames from a pool (standing in for a NIC's receive),
//! processes the batch, and clears tx (standing in for transmit). The clock
//! is read once per batch, here in the harness; the pipeline reads none.

mod bgp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use dataplane::fib::lpm4::{self, Lpm4Config};
use dataplane::fib::lpm6::{self, Lpm6Config};
use dataplane::fib::table::{self, FibConfig, FibReader, FibUpdate, GroupPolicy, Nexthop, Prefix};
use dataplane::io::PacketBatch;
use dataplane::neigh::{Neighbour, NeighbourTable, StaticNeighbours};
use dataplane::packet::internet_checksum;
use dataplane::pipeline::{
    ControlReason, Counters, Pipeline, PipelineConfig, PipelineDrop, PortConfig,
};
use dataplane::tracker::TrackerConfig;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::Serialize;

/// Bytes of every frame: 14 Ethernet + 20 IPv4 + 20 TCP + 6 payload + 4
/// FCS, the 64-byte minimum Ethernet frame.
pub const FRAME_BYTES: usize = 64;
/// Bytes of each IPv6/TCP frame with `--ipv6` (the headers and the FCS, no
/// payload).
pub const FRAME6_BYTES: usize = 78;
const ROUTER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Nexthop groups the routes point at.
pub const GROUPS: u32 = 8;
/// Members of each group.
pub const MEMBERS: u32 = 4;
const MAX_ROUTES: usize = 4_000_000;
const MAX_WORKERS: usize = 256;
const MAX_BATCH: usize = 4096;
const MAX_FLOWS: usize = 1 << 24;
const MAX_SECONDS: f64 = 3600.0;
const NANOS_PER_SEC: u64 = 1_000_000_000;
/// `now` of the first batch (the pipeline's clock is arbitrary but nonzero).
const CLOCK_BASE: u64 = NANOS_PER_SEC;
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0];
const CLIENT_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 1];
const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SEED: u64 = 1;

/// Benchmarks.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: BenchTarget,
}

#[derive(Subcommand, Debug)]
enum BenchTarget {
    Dataplane(DataplaneArgs),
    Bgp(bgp::BgpBenchArgs),
}

/// Whether the pipeline feeds the flow tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TrackerMode {
    Off,
    On,
    Both,
}

/// Packets per second per core through the whole forwarding pipeline, on
/// 64-byte TCP packets over a large synthetic BGP table.
///
/// Each worker thread owns a pipeline, refills its receive batch by copying
/// frames from a pre-built pool (the copy is measured, like a NIC's
/// receive), processes it, and discards what it would transmit. Reports
/// Mpps in total and per worker, per-batch latency percentiles, and the
/// pipeline's counters; every packet must be forwarded.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  ecmpd bench dataplane
  ecmpd bench dataplane --workers 1 --tracker off --seconds 10
  ecmpd bench dataplane --routes 100000 --batch 64 --json > bench.json")]
struct DataplaneArgs {
    /// Routes in the synthetic BGP-like IPv4 table (each points at one of 8
    /// groups of 4 nexthops, resilient hashing over the 5-tuple).
    #[arg(long, value_parser = routes, default_value = "900000")]
    routes: usize,

    /// Worker thread counts to run, comma-separated (one run each).
    #[arg(short, long, value_parser = workers, default_value = "1,2")]
    workers: Workers,

    /// Seconds per run.
    #[arg(short, long, value_parser = seconds, default_value = "3")]
    seconds: f64,

    /// Packets per batch.
    #[arg(short, long, value_parser = batch, default_value = "32")]
    batch: usize,

    /// Distinct 5-tuples in the traffic.
    #[arg(long, value_parser = flows, default_value = "65536")]
    flows: usize,

    /// Flow tracker: off, on, or both (one run each).
    #[arg(long, value_enum, default_value = "both")]
    tracker: TrackerMode,

    /// IPv6/TCP frames (78 bytes) over a synthetic IPv6 BGP-like table of
    /// `--routes` prefixes instead of IPv4 (try `--routes 200000`).
    #[arg(long)]
    ipv6: bool,

    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// No progress lines.
    #[arg(short, long)]
    quiet: bool,
}

/// A worker-count list (a newtype so clap takes the whole list as one value).
#[derive(Clone, Debug)]
struct Workers(Vec<usize>);

fn count(s: &str, what: &str, max: usize) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number of {what}"))?;
    if n == 0 || n > max {
        return Err(format!("{what} must be between 1 and {max}, not {n}"));
    }
    Ok(n)
}

fn routes(s: &str) -> Result<usize, String> {
    count(s, "routes", MAX_ROUTES)
}

fn batch(s: &str) -> Result<usize, String> {
    count(s, "packets per batch", MAX_BATCH)
}

fn flows(s: &str) -> Result<usize, String> {
    count(s, "flows", MAX_FLOWS)
}

fn workers(s: &str) -> Result<Workers, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let n = count(part, "workers", MAX_WORKERS)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Err("give at least one worker count".into());
    }
    Ok(Workers(out))
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(v > 0.0 && v <= MAX_SECONDS) {
        return Err(format!(
            "seconds per run must be above 0 and at most {MAX_SECONDS}, not {s}"
        ));
    }
    Ok(v)
}

pub fn bench(args: BenchArgs) -> Result<()> {
    match args.target {
        BenchTarget::Dataplane(args) => dataplane(args),
        BenchTarget::Bgp(args) => bgp::bgp(args),
    }
}

/// Latency percentiles of one run, in nanoseconds per batch.
#[derive(Clone, Debug, Serialize)]
struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    #[serde(rename = "p99.9")]
    p99_9: u64,
    max: u64,
    mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// One run: a tracker setting and a worker count.
#[derive(Clone, Debug, Serialize)]
struct Run {
    tracker: &'static str,
    workers: usize,
    packets: u64,
    batches: u64,
    elapsed_s: f64,
    mpps_total: f64,
    mpps_per_worker: f64,
    /// Each worker's own rate.
    worker_mpps: Vec<f64>,
    /// Mean nanoseconds per packet on one worker (elapsed / its packets).
    ns_per_packet: f64,
    /// Millions of packets per second of CPU time the workers were given
    /// (from `/proc/thread-self/schedstat`; unaffected by other processes
    /// taking the CPU, unlike the wall-clock rates), per worker. `None`
    /// where the kernel does not report it.
    mpps_per_cpu_second: Option<f64>,
    /// CPU nanoseconds per packet on one worker.
    cpu_ns_per_packet: Option<f64>,
    batch_latency_ns: Latency,
    /// Packets received by the pipelines, warm-up included.
    rx_packets: u64,
    forwarded: u64,
    drops: u64,
    /// Drops by reason (only reasons with drops).
    drop_reasons: Vec<(String, u64)>,
    control: u64,
    all_forwarded: bool,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) cpu_model: Option<String>,
}

impl Machine {
    pub(crate) fn detect() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    benchmark: &'static str,
    routes: usize,
    groups: u32,
    members_per_group: u32,
    policy: String,
    flows: usize,
    frame_bytes: usize,
    /// "IPv4" or "IPv6".
    family: &'static str,
    batch: usize,
    seconds: f64,
    fib_build_s: f64,
    machine: Machine,
    runs: Vec<Run>,
}

/// The FIB, neighbours and traffic shared by every run.
struct Setup {
    reader: FibReader,
    neighbours: Arc<StaticNeighbours>,
    pool: Pool,
    ports: Vec<PortConfig>,
    build_s: f64,
    policy: String,
}

/// The frames the workers copy into their receive batches.
#[derive(Clone)]
enum Pool {
    V4(Arc<Vec<[u8; FRAME_BYTES]>>),
    V6(Arc<Vec<[u8; FRAME6_BYTES]>>),
}

impl Pool {
    fn frame_bytes(&self) -> usize {
        match self {
            Pool::V4(_) => FRAME_BYTES,
            Pool::V6(_) => FRAME6_BYTES,
        }
    }
}

fn nexthop(group: u32, member: u32) -> Nexthop {
    Nexthop::new(
        group * MEMBERS + member + 1,
        IpAddr::V4(Ipv4Addr::new(10, 0, group as u8, member as u8 + 1)),
    )
}

/// Egress port of member `member` of a group (port 0 is the ingress).
fn member_port(member: u32) -> u32 {
    member + 1
}

fn member_mac(group: u32, member: u32) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, group as u8, member as u8 + 1]
}

fn port_mac(port: u32) -> [u8; 6] {
    let mut mac = ROUTER_MAC;
    mac[5] = port as u8;
    mac
}

fn setup(args: &DataplaneArgs) -> Result<Setup> {
    let started = Instant::now();
    let table_routes: Vec<(Prefix, u32)> = if args.ipv6 {
        lpm6::synthetic_bgp6_table(args.routes, SEED)
            .into_iter()
            .map(|(a, l, v)| (Prefix::V6(a, l), v))
            .collect()
    } else {
        lpm4::synthetic_bgp_table(args.routes, SEED)
            .into_iter()
            .map(|(a, l, v)| (Prefix::V4(a, l), v))
            .collect()
    };
    let (mut writer, reader) = table::new(FibConfig {
        // More-specifics than /24 cluster into about routes / 100 /24s.
        lpm4: Lpm4Config {
            tbl8_groups: (args.routes / 100 + 1024)
                .try_into()
                .unwrap_or(lpm4::MAX_TBL8_GROUPS),
        },
        // About one pool group per prefix (see `Lpm6Config::groups`).
        lpm6: if args.ipv6 {
            Lpm6Config {
                groups: (args.routes + (1 << 16))
                    .try_into()
                    .unwrap_or(lpm6::MAX_GROUPS),
            }
        } else {
            Lpm6Config::default()
        },
        grace: Duration::from_millis(1),
        ..FibConfig::default()
    });
    let groups: Vec<Vec<Nexthop>> = (0..GROUPS)
        .map(|g| (0..MEMBERS).map(|m| nexthop(g, m)).collect())
        .collect();
    let updates: Vec<FibUpdate> = table_routes
        .iter()
        .map(|&(prefix, value)| FibUpdate::SetRoute {
            prefix,
            nexthops: groups[(value % GROUPS) as usize].clone(),
            policy: None,
        })
        .collect();
    writer
        .apply(&updates, 0)
        .map_err(|e| anyhow!("could not build the FIB: {e}"))?;
    if writer.group_count() != GROUPS as usize {
        bail!(
            "the FIB has {} nexthop groups instead of {GROUPS}",
            writer.group_count()
        );
    }
    let p = GroupPolicy::default();
    let policy = format!(
        "{} ({} buckets), {:?}, {}",
        p.algorithm.name(),
        p.params.resilient.buckets,
        p.fields,
        p.hash.name()
    );

    let neighbours = Arc::new(StaticNeighbours::new());
    for (g, group) in groups.iter().enumerate() {
        for (m, nh) in group.iter().enumerate() {
            neighbours.insert(
                nh.addr,
                Neighbour {
                    mac: member_mac(g as u32, m as u32),
                    port: member_port(m as u32),
                },
            );
        }
    }
    let mut ports = vec![PortConfig {
        mac: port_mac(0),
        addrs: vec![IpAddr::V4(ROUTER_V4), IpAddr::V6(ROUTER_V6)],
    }];
    for m in 0..MEMBERS {
        let p = member_port(m);
        ports.push(PortConfig {
            mac: port_mac(p),
            addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 255, 0, p as u8))],
        });
    }

    // Destinations inside announced routes, from random clients.
    let mut rng = Pcg64::seed_from_u64(SEED ^ 0x5eed);
    let snapshot = reader.snapshot();
    let mut pool = Vec::with_capacity(args.flows);
    let mut pool6 = Vec::new();
    while pool.len() + pool6.len() < args.flows {
        let (prefix, _) = table_routes[rng.gen_range(0..table_routes.len())];
        let dst = match prefix {
            Prefix::V4(addr, len) => {
                let host_bits = if len >= 32 {
                    0
                } else {
                    rng.gen::<u32>() >> len
                };
                IpAddr::V4(Ipv4Addr::from(u32::from(addr) | host_bits))
            }
            Prefix::V6(addr, len) => {
                let host_bits = if len >= 128 {
                    0
                } else {
                    rng.gen::<u128>() >> len
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(addr) | host_bits))
            }
        };
        if dst == IpAddr::V4(ROUTER_V4)
            || dst == IpAddr::V6(ROUTER_V6)
            || snapshot.lookup(dst).is_none()
        {
            continue;
        }
        let sport = rng.gen_range(1024..=65535);
        match dst {
            IpAddr::V4(dst) => {
                let src = Ipv4Addr::from(rng.gen_range(0x0100_0000u32..0xE000_0000));
                pool.push(frame(src, sport, dst, 443));
            }
            IpAddr::V6(dst) => {
                let src = Ipv6Addr::from((0x2400u128 << 112) | (rng.gen::<u128>() >> 16));
                pool6.push(frame6(src, sport, dst, 443));
            }
        }
    }
    drop(snapshot);
    let pool = if args.ipv6 {
        Pool::V6(Arc::new(pool6))
    } else {
        Pool::V4(Arc::new(pool))
    };
    Ok(Setup {
        reader,
        neighbours,
        pool,
        ports,
        build_s: started.elapsed().as_secs_f64(),
        policy,
    })
}

/// A 64-byte Ethernet/IPv4/TCP frame to the router's port 0 MAC, TTL 64,
/// valid IPv4 and TCP checksums, a 4-byte (zero) FCS at the end.
fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> [u8; FRAME_BYTES] {
    const IP: usize = 14;
    const TCP: usize = IP + 20;
    const END: usize = FRAME_BYTES - 4;
    let mut f = [0u8; FRAME_BYTES];
    f[0..6].copy_from_slice(&port_mac(0));
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[IP..TCP];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((END - IP) as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = internet_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut f[TCP..END];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x10; // ACK
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    tcp[20..].copy_from_slice(b"ecmpd!");
    let tcp_len = (END - TCP) as u16;
    let mut pseudo = Vec::with_capacity(12 + usize::from(tcp_len));
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&tcp_len.to_be_bytes());
    pseudo.extend_from_slice(tcp);
    let c = internet_checksum(&pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f
}

/// A 78-byte Ethernet/IPv6/TCP frame (no payload) to the router's port 0
/// MAC, hop limit 64, flow label 0, a valid TCP checksum, a 4-byte (zero) FCS
/// at the end.
fn frame6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> [u8; FRAME6_BYTES] {
    const IP: usize = 14;
    const TCP: usize = IP + 40;
    const END: usize = FRAME6_BYTES - 4;
    let mut f = [0u8; FRAME6_BYTES];
    f[0..6].copy_from_slice(&port_mac(0));
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let tcp_len = (END - TCP) as u16;
    let ip = &mut f[IP..TCP];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&tcp_len.to_be_bytes());
    ip[6] = 6;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    let tcp = &mut f[TCP..END];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x10; // ACK
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(40 + usize::from(tcp_len));
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&u32::from(tcp_len).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 6]);
    pseudo.extend_from_slice(tcp);
    let c = internet_checksum(&pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f
}

/// What one worker measured.
struct WorkerResult {
    packets: u64,
    batches: u64,
    elapsed: Duration,
    /// CPU time the thread ran while measuring, if the kernel reports it.
    cpu: Option<Duration>,
    histogram: Histogram<u64>,
    counters: Counters,
    control: usize,
}

struct RunSpec {
    workers: usize,
    tracking: bool,
    batch: usize,
    duration: Duration,
    tracker_capacity: usize,
}

fn run(setup: &Setup, spec: &RunSpec) -> Result<Run> {
    let mut config = PipelineConfig::new(setup.ports.clone());
    config.track_flows = spec.tracking;
    config.tracker = TrackerConfig::new(spec.tracker_capacity, 120 * NANOS_PER_SEC);
    let barrier = Arc::new(Barrier::new(spec.workers));
    let handles: Vec<_> = (0..spec.workers)
        .map(|w| {
            let neighbours: Arc<dyn NeighbourTable> = setup.neighbours.clone();
            let pipeline = Pipeline::new(config.clone(), setup.reader.clone(), neighbours)
                .map_err(|e| anyhow!("could not build a pipeline: {e}"))?;
            let pool = setup.pool.clone();
            let barrier = Arc::clone(&barrier);
            let (batch, duration) = (spec.batch, spec.duration);
            std::thread::Builder::new()
                .name(format!("bench-worker-{w}"))
                .spawn(move || match pool {
                    Pool::V4(pool) => worker(pipeline, &pool, w, batch, duration, &barrier),
                    Pool::V6(pool) => worker(pipeline, &pool, w, batch, duration, &barrier),
                })
                .map_err(|e| anyhow!("could not start a worker thread: {e}"))
        })
        .collect::<Result<_>>()?;
    let results: Vec<WorkerResult> = handles
        .into_iter()
        .map(|h| h.join().map_err(|_| anyhow!("a worker thread panicked")))
        .collect::<Result<_>>()?;

    let mut histogram = Histogram::<u64>::new(3).map_err(|e| anyhow!("histogram: {e}"))?;
    let mut counters = Counters::default();
    let (mut packets, mut batches, mut control) = (0, 0, 0);
    let mut elapsed = Duration::ZERO;
    for r in &results {
        histogram
            .add(&r.histogram)
            .map_err(|e| anyhow!("histogram: {e}"))?;
        counters.merge(&r.counters);
        packets += r.packets;
        batches += r.batches;
        control += r.control;
        elapsed = elapsed.max(r.elapsed);
    }
    let worker_mpps: Vec<f64> = results
        .iter()
        .map(|r| r.packets as f64 / r.elapsed.as_secs_f64().max(1e-9) / 1e6)
        .collect();
    let mpps_total: f64 = worker_mpps.iter().sum();
    let cpu: Option<Vec<Duration>> = results.iter().map(|r| r.cpu).collect();
    let cpu_ns_per_packet = cpu.map(|cpu| {
        let ns: f64 = cpu.iter().map(|c| c.as_nanos() as f64).sum();
        ns / packets.max(1) as f64
    });
    let mut drop_reasons: Vec<(String, u64)> = PipelineDrop::ALL
        .iter()
        .map(|&r| (r.as_str().to_string(), counters.pipeline_drops[r.index()]))
        .filter(|(_, n)| *n > 0)
        .collect();
    if counters.parse_drops.total() > 0 {
        drop_reasons.push(("parse".to_string(), counters.parse_drops.total()));
    }
    for reason in ControlReason::ALL {
        let n = counters.control_count(reason);
        if n > 0 {
            drop_reasons.push((format!("control:{}", reason.as_str()), n));
        }
    }
    let all_forwarded = counters.forwarded == counters.rx_packets
        && counters.drops() == 0
        && counters.control_total() == 0
        && control == 0;
    Ok(Run {
        tracker: if spec.tracking { "on" } else { "off" },
        workers: spec.workers,
        packets,
        batches,
        elapsed_s: elapsed.as_secs_f64(),
        mpps_total,
        mpps_per_worker: mpps_total / spec.workers as f64,
        ns_per_packet: 1e3 * spec.workers as f64 / mpps_total.max(1e-9),
        mpps_per_cpu_second: cpu_ns_per_packet.map(|ns| 1e3 / ns.max(1e-9)),
        cpu_ns_per_packet,
        worker_mpps,
        batch_latency_ns: Latency::of(&histogram),
        rx_packets: counters.rx_packets,
        forwarded: counters.forwarded,
        drops: counters.drops(),
        drop_reasons,
        control: counters.control_total(),
        all_forwarded,
    })
}

/// One worker: a warm-up pass over the pool, then batches until `duration`
/// has passed.
fn worker<const N: usize>(
    mut pipeline: Pipeline,
    pool: &[[u8; N]],
    index: usize,
    batch: usize,
    duration: Duration,
    barrier: &Barrier,
) -> WorkerResult {
    let mut rx = PacketBatch::new(batch, dataplane::io::DEFAULT_BUFFER_SIZE);
    let mut tx = PacketBatch::new(batch, dataplane::io::DEFAULT_BUFFER_SIZE);
    let mut control = Vec::new();
    // Workers start at different places in the pool, as RSS queues see
    // different flows.
    let mut next = (index * pool.len() / 2 + index) % pool.len();
    let mut fill = |rx: &mut PacketBatch| {
        for _ in 0..batch {
            rx.push(0, &pool[next]);
            next += 1;
            if next == pool.len() {
                next = 0;
            }
        }
    };
    // Warm-up: every flow once (caches, tracker entries), untimed.
    for _ in 0..pool.len().div_ceil(batch) {
        fill(&mut rx);
        pipeline.process(&mut rx, &mut tx, &mut control, CLOCK_BASE);
        tx.clear();
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60 * NANOS_PER_SEC, 3)
        .expect("valid histogram bounds");
    barrier.wait();
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    let deadline = start + duration;
    let (mut packets, mut batches) = (0u64, 0u64);
    let mut t0 = start;
    while t0 < deadline {
        fill(&mut rx);
        let now = CLOCK_BASE + t0.duration_since(start).as_nanos() as u64;
        pipeline.process(&mut rx, &mut tx, &mut control, now);
        tx.clear();
        let t1 = Instant::now();
        histogram.saturating_record(t1.duration_since(t0).as_nanos() as u64);
        packets += batch as u64;
        batches += 1;
        t0 = t1;
    }
    WorkerResult {
        packets,
        batches,
        elapsed: t0.duration_since(start),
        cpu: thread_cpu_time()
            .zip(cpu_start)
            .map(|(end, start)| end.saturating_sub(start)),
        histogram,
        counters: pipeline.counters().clone(),
        control: control.len(),
    }
}

/// The CPU time the calling thread has run, from Linux's
/// `/proc/thread-self/schedstat` (nanoseconds on the CPU, first field).
fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn dataplane(args: DataplaneArgs) -> Result<()> {
    let progress = !args.quiet;
    if progress {
        eprintln!(
            "bench: building {} routes over {GROUPS} groups of {MEMBERS} and {} flows ...",
            args.routes, args.flows
        );
    }
    let setup = setup(&args)?;
    if progress {
        eprintln!("bench: FIB and traffic ready in {:.1} s", setup.build_s);
    }
    let trackers: &[bool] = match args.tracker {
        TrackerMode::Off => &[false],
        TrackerMode::On => &[true],
        TrackerMode::Both => &[false, true],
    };
    let machine = Machine::detect();
    let mut runs = Vec::new();
    for &tracking in trackers {
        for &workers in &args.workers.0 {
            let spec = RunSpec {
                workers,
                tracking,
                batch: args.batch,
                duration: Duration::from_secs_f64(args.seconds),
                tracker_capacity: (2 * args.flows).next_power_of_two().max(1 << 16),
            };
            let r = run(&setup, &spec)?;
            if progress {
                eprintln!(
                    "bench: tracker {:<3} {} worker{}: {:.2} Mpps ({:.2} per worker), \
                     batch p50 {} ns, p99 {} ns",
                    r.tracker,
                    r.workers,
                    if r.workers == 1 { " " } else { "s" },
                    r.mpps_total,
                    r.mpps_per_worker,
                    r.batch_latency_ns.p50,
                    r.batch_latency_ns.p99
                );
            }
            runs.push(r);
        }
    }
    let report = Report {
        benchmark: "dataplane",
        routes: args.routes,
        groups: GROUPS,
        members_per_group: MEMBERS,
        policy: setup.policy.clone(),
        flows: args.flows,
        frame_bytes: setup.pool.frame_bytes(),
        family: if args.ipv6 { "IPv6" } else { "IPv4" },
        batch: args.batch,
        seconds: args.seconds,
        fib_build_s: setup.build_s,
        machine,
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table_text(&report));
    }
    if let Some(bad) = report.runs.iter().find(|r| !r.all_forwarded) {
        let reasons: Vec<String> = bad
            .drop_reasons
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        bail!(
            "{} of {} packets were not forwarded with the tracker {} on {} worker(s) ({})",
            bad.rx_packets - bad.forwarded,
            bad.rx_packets,
            bad.tracker,
            bad.workers,
            reasons.join(", ")
        );
    }
    Ok(())
}

fn table_text(r: &Report) -> String {
    let mut s = format!(
        "ecmpd data-plane benchmark: {} routes -> {} groups x {} nexthops, {} flows, \
         {}-byte {}/TCP frames, batch {}, {} s per run\nmachine: {} CPUs, {}\n\n",
        r.routes,
        r.groups,
        r.members_per_group,
        r.flows,
        r.frame_bytes,
        r.family,
        r.batch,
        r.seconds,
        r.machine.nproc,
        r.machine.cpu_model.as_deref().unwrap_or("unknown CPU")
    );
    s.push_str(&format!(
        "{:<8} {:>7} {:>10} {:>11} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}\n",
        "tracker",
        "workers",
        "Mpps",
        "Mpps/worker",
        "ns/pkt",
        "cpu ns/pkt",
        "p50 ns",
        "p90 ns",
        "p99 ns",
        "p99.9 ns",
        "max ns",
        "drops"
    ));
    for run in &r.runs {
        let l = &run.batch_latency_ns;
        s.push_str(&format!(
            "{:<8} {:>7} {:>10.2} {:>11.2} {:>8.1} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}\n",
            run.tracker,
            run.workers,
            run.mpps_total,
            run.mpps_per_worker,
            run.ns_per_packet,
            run.cpu_ns_per_packet
                .map_or_else(|| "-".to_string(), |ns| format!("{ns:.1}")),
            l.p50,
            l.p90,
            l.p99,
            l.p99_9,
            l.max,
            run.rx_packets - run.forwarded
        ));
    }
    s.push_str(
        "\nLatency is per batch (refill by copy + process + discard tx). cpu ns/pkt counts \
         only the time the workers were on a CPU.\n",
    );
    s
}
