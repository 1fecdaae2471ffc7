//! Criterion benchmark of the whole forwarding pipeline per batch: one
//! `Pipeline::process` call on a batch of 32 (and 256) 64-byte IPv4/TCP frames
//! over a 900k-route synthetic BGP table (8 resilient groups of 4 nexthops,
//! 5-tuple XXH3: the default policy), as `ecmpd bench dataplane` runs it, with
//! the flow tracker off and on.
//!
//! The FIB is built once. Each iteration refills the receive batch by copying
//! the next frames of a pool of 65,536 flows (untimed), then times the
//! `process` call alone; throughput is reported per packet. In test mode
//! (`cargo test --benches`, `cargo bench -- --test`, which run each benchmark
//! once, in a debug build under `scripts/test`) the table has 20,000 routes
//! so that setup stays quick.
//!
//! Run: `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::fib::lpm4::{self, Lpm4Config};
use dataplane::fib::table::{self, FibConfig, FibReader, FibUpdate, Nexthop, Prefix};
use dataplane::io::{PacketBatch, DEFAULT_BUFFER_SIZE};
use dataplane::neigh::{Neighbour, StaticNeighbours};
use dataplane::packet::internet_checksum;
use dataplane::pipeline::{Pipeline, PipelineConfig, PortConfig};
use dataplane::tracker::TrackerConfig;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const ROUTES: usize = 900_000;
/// Routes in test mode.
const TEST_ROUTES: usize = 20_000;
const GROUPS: u32 = 8;
const MEMBERS: u32 = 4;
const FLOWS: usize = 1 << 16;
const FRAME_BYTES: usize = 64;
const SEED: u64 = 1;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Criterion runs each benchmark once, unmeasured, without `--bench`.
fn test_mode() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn port_mac(port: u32) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, port as u8]
}

/// The FIB, the neighbours, the ports and a pool of routed frames.
struct Setup {
    reader: FibReader,
    neighbours: Arc<StaticNeighbours>,
    ports: Vec<PortConfig>,
    pool: Vec<[u8; FRAME_BYTES]>,
}

fn setup(routes: usize) -> Setup {
    let table_routes = lpm4::synthetic_bgp_table(routes, SEED);
    let (mut writer, reader) = table::new(FibConfig {
        lpm4: Lpm4Config {
            tbl8_groups: (routes / 100 + 1024) as u32,
        },
        grace: Duration::from_millis(1),
        ..FibConfig::default()
    });
    let nexthop = |g: u32, m: u32| {
        Nexthop::new(
            g * MEMBERS + m + 1,
            IpAddr::V4(Ipv4Addr::new(10, 0, g as u8, m as u8 + 1)),
        )
    };
    let groups: Vec<Vec<Nexthop>> = (0..GROUPS)
        .map(|g| (0..MEMBERS).map(|m| nexthop(g, m)).collect())
        .collect();
    let updates: Vec<FibUpdate> = table_routes
        .iter()
        .map(|&(addr, len, value)| FibUpdate::SetRoute {
            prefix: Prefix::V4(addr, len),
            nexthops: groups[(value % GROUPS) as usize].clone(),
            policy: None,
        })
        .collect();
    writer.apply(&updates, 0).expect("the synthetic table fits");

    let neighbours = Arc::new(StaticNeighbours::new());
    for (g, group) in groups.iter().enumerate() {
        for (m, nh) in group.iter().enumerate() {
            neighbours.insert(
                nh.addr,
                Neighbour {
                    mac: [0x02, 0xaa, 0, 0, g as u8, m as u8 + 1],
                    port: m as u32 + 1,
                },
            );
        }
    }
    let router = Ipv4Addr::new(192, 0, 2, 1);
    let ports = (0..=MEMBERS)
        .map(|p| PortConfig {
            mac: port_mac(p),
            addrs: vec![IpAddr::V4(if p == 0 {
                router
            } else {
                Ipv4Addr::new(10, 255, 0, p as u8)
            })],
        })
        .collect();

    let mut rng = Pcg64::seed_from_u64(SEED ^ 0x5eed);
    let snapshot = reader.snapshot();
    let mut pool = Vec::with_capacity(FLOWS);
    while pool.len() < FLOWS {
        let (addr, len, _) = table_routes[rng.gen_range(0..table_routes.len())];
        let host = if len >= 32 {
            0
        } else {
            rng.gen::<u32>() >> len
        };
        let dst = Ipv4Addr::from(u32::from(addr) | host);
        if dst == router || snapshot.lookup(IpAddr::V4(dst)).is_none() {
            continue;
        }
        let src = Ipv4Addr::from(rng.gen_range(0x0100_0000u32..0xE000_0000));
        pool.push(frame(src, rng.gen_range(1024..=65535), dst, 443));
    }
    drop(snapshot);
    Setup {
        reader,
        neighbours,
        ports,
        pool,
    }
}

/// A 64-byte Ethernet/IPv4/TCP frame to port 0, TTL 64, valid checksums.
fn frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> [u8; FRAME_BYTES] {
    const IP: usize = 14;
    const TCP: usize = IP + 20;
    const END: usize = FRAME_BYTES - 4;
    let mut f = [0u8; FRAME_BYTES];
    f[0..6].copy_from_slice(&port_mac(0));
    f[6..12].copy_from_slice(&[0x02, 0xcc, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[IP..TCP];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((END - IP) as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = internet_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut f[TCP..END];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    f
}

fn whole_pipeline(c: &mut Criterion) {
    let routes = if test_mode() { TEST_ROUTES } else { ROUTES };
    let s = setup(routes);
    let mut g = c.benchmark_group(format!("pipeline_{}k_routes", routes / 1000));
    for tracking in [false, true] {
        for batch in [32usize, 256] {
            let mut config = PipelineConfig::new(s.ports.clone());
            config.track_flows = tracking;
            config.tracker = TrackerConfig::new(2 * FLOWS, 120 * NANOS_PER_SEC);
            let mut pipeline = Pipeline::new(config, s.reader.clone(), s.neighbours.clone())
                .expect("valid tracker configuration");
            let mut rx = PacketBatch::new(batch, DEFAULT_BUFFER_SIZE);
            let mut tx = PacketBatch::new(batch, DEFAULT_BUFFER_SIZE);
            let mut control = Vec::new();
            let mut next = 0usize;
            let pool = &s.pool;
            let mut fill = |rx: &mut PacketBatch| {
                for _ in 0..batch {
                    rx.push(0, &pool[next]);
                    next = (next + 1) % pool.len();
                }
            };
            let mut now = NANOS_PER_SEC;
            g.throughput(Throughput::Elements(batch as u64));
            let name = if tracking {
                "tracker_on"
            } else {
                "tracker_off"
            };
            g.bench_function(BenchmarkId::new(name, batch), |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        fill(&mut rx);
                        now += 1000;
                        let t0 = Instant::now();
                        pipeline.process(black_box(&mut rx), &mut tx, &mut control, now);
                        timed += t0.elapsed();
                        tx.clear();
                    }
                    timed
                })
            });
            let c = pipeline.counters();
            assert_eq!(c.forwarded, c.rx_packets, "every frame is forwarded");
        }
    }
    g.finish();
}

criterion_group!(benches, whole_pipeline);
criterion_main!(benches);
