//! The connections of a scenario and the packet sequence they send: drawn
//! once from the scenario's seed, replayed identically for every run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;

use hashing::{FlowKey, Nanos};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, Exp, StandardNormal};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use super::scenario::{Distribution, Scenario, SEC};
use crate::traffic::{self, TrafficModel};

/// Shortest gap between two packets of a connection.
const MIN_GAP: Nanos = 1_000;

/// One connection (client to service direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub key: FlowKey,
    /// Index of its service in [`Scenario::services`].
    pub service: u32,
    /// Its first packet.
    pub start: Nanos,
    /// No packet after this.
    pub end: Nanos,
    /// A fixed gap between packets (replayed captures); `None` draws gaps
    /// from the scenario's `packet_interval`.
    pub gap: Option<Nanos>,
}

/// Counts over a workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WorkloadStats {
    /// The traffic model's name (`uniform`, `cgnat`, `pcap:<file>`, ...).
    pub model: String,
    pub connections: u64,
    pub ipv6_connections: u64,
    /// Distinct client addresses.
    pub clients: u64,
    /// Packets one run sends.
    pub packets: u64,
    /// Connections open at the same time, at most (sampled at each packet
    /// of the sequence's start and end).
    pub peak_open: u64,
    /// Capture flows left out (no service of their address family).
    pub skipped: u64,
}

/// A scenario's connections and the frames they send.
#[derive(Clone, Debug)]
pub struct Workload {
    pub connections: Vec<Connection>,
    /// Frame of each connection (it never changes: same flow, same bytes).
    pub frames: Vec<Vec<u8>>,
    pub stats: WorkloadStats,
    interval: Distribution,
    seed: u64,
}

/// MAC of the router's client-facing port (port 0).
pub const UPLINK_MAC: [u8; 6] = [0x02, 0xec, 0x3d, 0x00, 0x00, 0x00];
/// MAC of the clients' side (the upstream router).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x1e, 0x00, 0x00, 0x01];

impl Workload {
    /// Draws the connections of `scenario` (or reads its capture).
    pub fn generate(scenario: &Scenario) -> Result<Workload, traffic::TrafficError> {
        let t = &scenario.traffic;
        let services: Vec<IpAddr> = scenario.services.iter().map(|(a, _)| *a).collect();
        let model = match t.model.get_ref().as_str() {
            "cgnat" => TrafficModel::Cgnat {
                public_ips: t
                    .public_ips
                    .unwrap_or(TrafficModel::DEFAULT_CGNAT_PUBLIC_IPS),
            },
            "zipf" => TrafficModel::Zipf {
                clients: t.clients.unwrap_or(TrafficModel::DEFAULT_ZIPF_CLIENTS),
                exponent: t.exponent.unwrap_or(TrafficModel::DEFAULT_ZIPF_EXPONENT),
            },
            "pcap" => TrafficModel::Pcap(
                t.file
                    .as_ref()
                    .map(|f| f.get_ref().clone())
                    .unwrap_or_default(),
            ),
            _ => TrafficModel::Uniform,
        };
        let mut rng = Pcg64Mcg::seed_from_u64(scenario.seed ^ 0x656d_756c_6174_6f72);
        let mut skipped = 0;
        let (name, connections) = if let TrafficModel::Pcap(path) = &model {
            let pop = traffic::read_capture(path, t.max_flows.unwrap_or(100_000))?;
            let mut conns = Vec::new();
            for f in &pop.flows {
                let family: Vec<u32> = services
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.is_ipv6() == f.key.dst.is_ipv6())
                    .map(|(i, _)| i as u32)
                    .collect();
                if family.is_empty() {
                    skipped += 1;
                    continue;
                }
                // The capture's own destination picks the service, so that
                // its flows to one server stay together.
                let pick =
                    (hashing::select::mix64(addr_bits(f.key.dst)) % family.len() as u64) as usize;
                let service = family[pick];
                let mut key = f.key;
                key.dst = services[service as usize];
                let start = f.first_seen_ns;
                let end = f.last_seen_ns.max(start);
                let gap = if f.packets > 1 {
                    ((end - start) / (f.packets - 1)).max(MIN_GAP)
                } else {
                    end - start + 1
                };
                if start < scenario.duration {
                    conns.push(Connection {
                        key,
                        service,
                        start,
                        end,
                        gap: Some(gap),
                    });
                }
            }
            (pop.name, conns)
        } else {
            let mut starts = vec![0; t.open_at_start as usize];
            if t.arrivals > 0.0 {
                let exp = Exp::new(t.arrivals / SEC as f64).expect("arrivals checked > 0");
                let mut at = 0.0;
                loop {
                    at += exp.sample(&mut rng);
                    if at >= scenario.duration as f64 {
                        break;
                    }
                    starts.push(at as Nanos);
                }
            }
            let spec = traffic::TrafficSpec {
                model,
                flows: starts.len().max(1),
                seed: scenario.seed,
                services: services.clone(),
                ipv6_share: t.ipv6_share,
            };
            let pop = spec.generate()?;
            let conns = starts
                .iter()
                .zip(&pop.flows)
                .map(|(&start, f)| {
                    let life = t
                        .duration
                        .sample(open(&mut rng), rng.sample(StandardNormal));
                    // A connection open at time 0 has been open for a while:
                    // its first packet comes within one packet interval.
                    let first = if start == 0 && t.open_at_start > 0 {
                        (t.packet_interval.mean() * rng.gen::<f64>()) as Nanos
                    } else {
                        start
                    };
                    Connection {
                        key: f.key,
                        service: services.iter().position(|a| *a == f.key.dst).unwrap_or(0) as u32,
                        start: first,
                        end: first.saturating_add(life),
                        gap: None,
                    }
                })
                .collect();
            (pop.name, conns)
        };
        let frames = connections
            .iter()
            .map(|c| super::frames::build_frame(&c.key, CLIENT_MAC, UPLINK_MAC, 64))
            .collect();
        let mut clients: Vec<IpAddr> = connections.iter().map(|c| c.key.src).collect();
        clients.sort_unstable();
        clients.dedup();
        let mut w = Workload {
            stats: WorkloadStats {
                model: name,
                connections: connections.len() as u64,
                ipv6_connections: connections.iter().filter(|c| c.key.dst.is_ipv6()).count() as u64,
                clients: clients.len() as u64,
                packets: 0,
                peak_open: 0,
                skipped,
            },
            connections,
            frames,
            interval: t.packet_interval.clone(),
            seed: scenario.seed,
        };
        let mut open_now: i64 = 0;
        let mut edges: Vec<(Nanos, i64)> = Vec::new();
        for c in &w.connections {
            edges.push((c.start, 1));
            edges.push((c.end.min(scenario.duration), -1));
        }
        edges.sort_unstable();
        let mut peak = 0;
        for (_, d) in edges {
            open_now += d;
            peak = peak.max(open_now);
        }
        w.stats.peak_open = peak as u64;
        w.stats.packets = w.packets(scenario.duration).count() as u64;
        Ok(w)
    }

    /// The packet sequence up to `until`, in time order (ties by
    /// connection): `(time, connection index)`.
    pub fn packets(&self, until: Nanos) -> Packets<'_> {
        let heap = self
            .connections
            .iter()
            .enumerate()
            .filter(|(_, c)| c.start < until)
            .map(|(i, c)| Reverse((c.start, i as u32, 0u32)))
            .collect();
        Packets {
            workload: self,
            heap,
            until,
        }
    }

    /// The gap after packet `k` of connection `c` (stateless, so any run
    /// replays it exactly).
    fn gap(&self, c: u32, k: u32) -> Nanos {
        if let Some(g) = self.connections[c as usize].gap {
            return g;
        }
        let h = hashing::select::mix64(
            self.seed ^ (u64::from(c) << 32 | u64::from(k)).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let u1 = unit(h);
        let u2 = unit(hashing::select::mix64(h));
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        self.interval.sample(u1, z).max(MIN_GAP)
    }

    /// Connections open at `t` among `services` (`None`: all).
    pub fn open_at(&self, t: Nanos, services: Option<&[usize]>) -> u64 {
        self.connections
            .iter()
            .filter(|c| c.start <= t && t <= c.end)
            .filter(|c| services.map_or(true, |s| s.contains(&(c.service as usize))))
            .count() as u64
    }
}

/// Uniform in (0, 1) from 53 bits of `h`.
fn unit(h: u64) -> f64 {
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn open(rng: &mut Pcg64Mcg) -> f64 {
    (rng.gen::<f64>()).max(f64::MIN_POSITIVE)
}

fn addr_bits(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let b = u128::from(a);
            (b as u64) ^ ((b >> 64) as u64)
        }
    }
}

/// The packets of a workload in time order; see [`Workload::packets`].
pub struct Packets<'a> {
    workload: &'a Workload,
    heap: BinaryHeap<Reverse<(Nanos, u32, u32)>>,
    until: Nanos,
}

impl Packets<'_> {
    /// The time of the next packet, without taking it.
    pub fn peek_time(&self) -> Option<Nanos> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }
}

impl Iterator for Packets<'_> {
    type Item = (Nanos, u32);

    fn next(&mut self) -> Option<(Nanos, u32)> {
        let Reverse((t, c, k)) = self.heap.pop()?;
        let next = t.saturating_add(self.workload.gap(c, k));
        let conn = &self.workload.connections[c as usize];
        if next <= conn.end && next < self.until {
            self.heap.push(Reverse((next, c, k.wrapping_add(1))));
        }
        Some((t, c))
    }
}
