//! One emulation run: a FIB, a pipeline with its flow tracker, and the
//! workload's packets on virtual time; see the module docs of
//! [`crate::emulator`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashing::{FieldSelection, MemberId, Nanos};

use super::scenario::{Scenario, Step, Variant};
use super::workload::{Packets, Workload, UPLINK_MAC};
use super::{Breakage, Sample, StepResult, Totals, VariantRun};
use crate::fib::lpm4::Lpm4Config;
use crate::fib::lpm6::Lpm6Config;
use crate::fib::table::{self, FibConfig, FibUpdate, GroupPolicy, Nexthop, Prefix};
use crate::io::PacketBatch;
use crate::neigh::{Neighbour, StaticNeighbours};
use crate::pipeline::{
    ControlPacket, ControlReason, Disposition, Pipeline, PipelineConfig, PortConfig,
};
use crate::tracker::{EventId, TrackerConfig, TrackerError};

/// Packets per pipeline batch.
const BATCH: usize = 32;

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    #[error("the flow tracker: {0}")]
    Tracker(#[from] TrackerError),
    #[error("programming the FIB for {variant}: {message}")]
    Fib { variant: String, message: String },
}

/// No node yet.
const NONE: u32 = u32::MAX;

/// The MAC of node `i`'s port on the router.
fn port_mac(port: u32) -> [u8; 6] {
    let b = port.to_be_bytes();
    [0x02, 0xec, 0x3d, b[1], b[2], b[3]]
}

/// The MAC of node `i`.
fn node_mac(i: usize) -> [u8; 6] {
    let b = (i as u32).to_be_bytes();
    [0x02, 0x4e, 0x0d, b[1], b[2], b[3]]
}

/// Router addresses on the client port (never a service or a node).
fn router_addrs() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1)),
    ]
}

fn host_prefix(a: IpAddr) -> Prefix {
    match a {
        IpAddr::V4(a) => Prefix::V4(a, 32),
        IpAddr::V6(a) => Prefix::V6(a, 128),
    }
}

/// Runs `variant` over `scenario` with `workload`'s packets. `progress` is
/// called now and then with the packets done so far.
pub fn run_variant(
    scenario: &Scenario,
    workload: &Workload,
    variant: Variant,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VariantRun, EmulateError> {
    let mut engine = Engine::new(scenario, workload, variant)?;
    for step in &scenario.steps {
        if step.time > scenario.duration {
            break;
        }
        engine.advance(step.time, progress);
        engine.apply(step)?;
    }
    Ok(engine.finish(progress))
}

/// One variant's run, driven step by step: [`run_variant`] drives it from a
/// scenario's timeline; a live caller (the router demo) drives it from the
/// member changes its control plane makes, at the moments it makes them.
pub struct Engine<'a> {
    scenario: &'a Scenario,
    workload: &'a Workload,
    variant: Variant,
    started: Instant,
    weights: bool,
    fib: table::FibWriter,
    pipeline: Pipeline,
    /// Member sets: (node, weight) per service.
    members: Vec<Vec<(usize, u32)>>,
    run: Run<'a>,
    rx: PacketBatch,
    tx: PacketBatch,
    control: Vec<ControlPacket>,
    batch_conns: Vec<u32>,
    batch_time: Nanos,
    packets: Packets<'a>,
    next_sample: Nanos,
}

impl<'a> Engine<'a> {
    /// A FIB holding every service with its initial nodes, a pipeline with
    /// its tracker, and the workload's packets ready to send.
    pub fn new(
        scenario: &'a Scenario,
        workload: &'a Workload,
        variant: Variant,
    ) -> Result<Engine<'a>, EmulateError> {
        let policy = GroupPolicy {
            algorithm: variant.algorithm,
            params: scenario.params,
            fields: FieldSelection::new(variant.fields),
            hash: scenario.function,
            seed: scenario.hash_seed,
        };
        let (mut fib, reader) = table::new(FibConfig {
            lpm4: Lpm4Config { tbl8_groups: 256 },
            lpm6: Lpm6Config { groups: 1024 },
            default_policy: policy,
            grace: Duration::from_millis(10),
            ..FibConfig::default()
        });
        let neighbours = Arc::new(StaticNeighbours::new());
        let mut ports = vec![PortConfig {
            mac: UPLINK_MAC,
            addrs: router_addrs(),
        }];
        for (i, n) in scenario.nodes.iter().enumerate() {
            let port = i as u32 + 1;
            ports.push(PortConfig {
                mac: port_mac(port),
                addrs: Vec::new(),
            });
            neighbours.insert(
                n.address,
                Neighbour {
                    mac: node_mac(i),
                    port,
                },
            );
        }
        let mut config = PipelineConfig::new(ports);
        config.track_flows = true;
        config.tracker =
            TrackerConfig::new(scenario.tracker.capacity, scenario.tracker.idle_timeout.0);
        let pipeline = Pipeline::new(config, reader, neighbours)?;
        let members: Vec<Vec<(usize, u32)>> = scenario
            .services
            .iter()
            .map(|(_, nodes)| {
                nodes
                    .iter()
                    .map(|&n| (n, scenario.nodes[n].weight))
                    .collect()
            })
            .collect();
        let weights = variant.algorithm.supports_weights();
        let initial: Vec<FibUpdate> = members
            .iter()
            .enumerate()
            .map(|(s, m)| route(scenario, weights, s, m))
            .collect();
        fib.apply(&initial, 0).map_err(|e| fib_error(variant, &e))?;
        let run = Run {
            scenario,
            workload,
            last_node: vec![NONE; workload.connections.len()],
            last_seen: vec![0; workload.connections.len()],
            removed: vec![vec![None; scenario.nodes.len()]; scenario.services.len()],
            broken_once: vec![false; workload.connections.len()],
            latest_step: vec![None; scenario.services.len()],
            service_nodes: members
                .iter()
                .map(|m| m.iter().map(|&(n, _)| n).collect())
                .collect(),
            steps: Vec::new(),
            events: HashMap::new(),
            window: vec![0; scenario.nodes.len()],
            window_unrouted: 0,
            samples: Vec::new(),
            dead_since: vec![None; scenario.nodes.len()],
            totals: Totals {
                connections: workload.connections.len() as u64,
                ..Totals::default()
            },
        };
        Ok(Engine {
            scenario,
            workload,
            variant,
            started: Instant::now(),
            weights,
            fib,
            pipeline,
            members,
            run,
            rx: PacketBatch::new(BATCH, 128),
            tx: PacketBatch::new(BATCH * 2, 128),
            control: Vec::new(),
            batch_conns: Vec::with_capacity(BATCH),
            batch_time: 0,
            packets: workload.packets(scenario.duration),
            next_sample: scenario.sample,
        })
    }

    /// The variant this engine runs.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Forward every packet sent before `t`, running resilient upkeep and
    /// taking load samples at the sample ticks before `t`.
    pub fn advance(&mut self, t: Nanos, progress: &(dyn Fn(u64) + Sync)) {
        loop {
            let boundary = self.next_sample.min(t);
            while let Some(pt) = self.packets.peek_time() {
                if pt >= boundary {
                    break;
                }
                let Some((pt, c)) = self.packets.next() else {
                    break;
                };
                self.rx.push(0, &self.workload.frames[c as usize]);
                self.batch_conns.push(c);
                self.batch_time = pt;
                if self.rx.is_full() {
                    self.flush();
                    if self.run.totals.packets % (1 << 16) < BATCH as u64 {
                        progress(self.run.totals.packets);
                    }
                }
            }
            self.flush();
            if self.next_sample < t && self.next_sample <= self.scenario.duration {
                let tick = self.next_sample;
                let up = self.fib.upkeep(tick);
                self.run.totals.buckets_migrated +=
                    up.migrated.iter().map(|&(_, n)| u64::from(n)).sum::<u64>();
                self.run.sample(tick);
                self.next_sample = tick.saturating_add(self.scenario.sample);
                continue;
            }
            break;
        }
    }

    fn flush(&mut self) {
        self.run.flush(
            &mut self.pipeline,
            &mut self.rx,
            &mut self.tx,
            &mut self.control,
            &mut self.batch_conns,
            self.batch_time,
        );
    }

    /// Apply a timeline step at its time: the node leaves its services or
    /// (re)joins them with its weight. Call [`Engine::advance`] to the
    /// step's time first.
    pub fn apply(&mut self, step: &Step) -> Result<(), EmulateError> {
        let scenario = self.scenario;
        let run = &mut self.run;
        let before: Vec<Vec<usize>> = run.service_nodes.clone();
        let mut updates = Vec::new();
        for &s in &step.services {
            let Some(m) = self.members.get_mut(s) else {
                continue;
            };
            m.retain(|&(n, _)| n != step.node);
            if let Some(w) = step.weight {
                m.push((step.node, w));
                m.sort_unstable();
            }
            updates.push(route(scenario, self.weights, s, m));
            run.service_nodes[s] = m.iter().map(|&(n, _)| n).collect();
            run.latest_step[s] = Some(step.index);
            if step.weight.is_none() && before[s].contains(&step.node) {
                run.removed[s][step.node] = Some((step.time, step.index));
            }
        }
        let applied = self
            .fib
            .apply(&updates, step.time)
            .map_err(|e| fib_error(self.variant, &e))?;
        for change in applied.changes {
            if let Some(id) = self.pipeline.group_changed(change) {
                run.events.insert(id, step.index);
            }
        }
        for &freed in &applied.freed {
            self.pipeline.group_freed(freed, step.time);
        }
        self.fib.release_lpm_quarantine();
        let first = step.services.first().copied().unwrap_or(0);
        let names = |nodes: &[usize]| {
            nodes
                .iter()
                .map(|&n| scenario.nodes[n].name.clone())
                .collect::<Vec<_>>()
        };
        let workload = self.workload;
        let on_node = workload
            .connections
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                c.start <= step.time
                    && step.time <= c.end
                    && step.services.contains(&(c.service as usize))
                    && run.last_node[*i] == step.node as u32
            })
            .count() as u64;
        run.steps.push(StepResult {
            step: step.index,
            time_s: step.time as f64 / 1e9,
            label: step.label.clone(),
            kind: step.kind,
            node: scenario.nodes[step.node].name.clone(),
            services: step
                .services
                .iter()
                .map(|&s| scenario.services[s].0.to_string())
                .collect(),
            members_before: names(&before[first]),
            members_after: names(&run.service_nodes[first]),
            on_node,
            exact: Breakage {
                live: workload.open_at(step.time, Some(&step.services)),
                ..Breakage::default()
            },
            tracker: Breakage::default(),
        });
        Ok(())
    }

    /// Mark `node` dead from `t` (a live caller that stopped it) or alive
    /// again (`None`): packets the router still sends to a dead node are
    /// counted as blackholed, the cost of detecting the failure late.
    pub fn set_node_dead(&mut self, node: usize, since: Option<Nanos>) {
        if let Some(d) = self.run.dead_since.get_mut(node) {
            *d = since;
        }
    }

    /// Forward the rest of the packets and gather the run's figures.
    pub fn finish(mut self, progress: &(dyn Fn(u64) + Sync)) -> VariantRun {
        self.advance(Nanos::MAX, progress);
        let duration = self.scenario.duration;
        let run = &mut self.run;
        if run
            .samples
            .last()
            .map_or(true, |s| s.time_s * 1e9 < duration as f64 - 0.5)
        {
            run.sample(duration);
        }
        progress(run.totals.packets);

        // The tracker's view, per step.
        if let Some(tracker) = self.pipeline.tracker() {
            for r in tracker.reports() {
                let Some(&step) = run.events.get(&r.event) else {
                    continue;
                };
                if let Some(s) = run.steps.iter_mut().find(|s| s.step == step) {
                    s.tracker.live += r.live_flows;
                    s.tracker.unavoidable += r.unavoidable;
                    s.tracker.collateral += r.collateral;
                }
            }
        }
        let counters = self.pipeline.counters();
        run.totals.forwarded = counters.forwarded;
        run.totals.unrouted = counters.control_count(ControlReason::NoRoute);
        run.totals.dropped = counters.drops();
        run.totals.connections_broken = run.broken_once.iter().filter(|&&b| b).count() as u64;
        run.totals.elapsed_s = self.started.elapsed().as_secs_f64();
        run.totals.mpps = if run.totals.elapsed_s > 0.0 {
            run.totals.packets as f64 / run.totals.elapsed_s / 1e6
        } else {
            0.0
        };
        VariantRun {
            algorithm: self.variant.algorithm.to_string(),
            fields: self.variant.fields.to_string(),
            steps: std::mem::take(&mut run.steps),
            samples: std::mem::take(&mut run.samples),
            totals: std::mem::take(&mut run.totals),
        }
    }
}

/// The route of service `s` to its members.
fn route(scenario: &Scenario, weights: bool, s: usize, m: &[(usize, u32)]) -> FibUpdate {
    FibUpdate::SetRoute {
        prefix: host_prefix(scenario.services[s].0),
        nexthops: m
            .iter()
            .map(|&(n, w)| {
                Nexthop::weighted(
                    n as MemberId,
                    scenario.nodes[n].address,
                    if weights { w } else { 1 },
                )
            })
            .collect(),
        policy: None,
    }
}

fn fib_error(variant: Variant, e: &dyn std::fmt::Display) -> EmulateError {
    EmulateError::Fib {
        variant: variant.to_string(),
        message: e.to_string(),
    }
}

/// The state of one run.
struct Run<'a> {
    scenario: &'a Scenario,
    workload: &'a Workload,
    /// The node each connection's last packet reached.
    last_node: Vec<u32>,
    /// When each connection's last packet was forwarded.
    last_seen: Vec<Nanos>,
    /// Per service and node: when (and at which step) the node last left it.
    removed: Vec<Vec<Option<(Nanos, usize)>>>,
    broken_once: Vec<bool>,
    /// The latest step that changed each service.
    latest_step: Vec<Option<usize>>,
    /// The nodes backing each service now.
    service_nodes: Vec<Vec<usize>>,
    steps: Vec<StepResult>,
    /// Tracker events and the step they belong to.
    events: HashMap<EventId, usize>,
    /// Packets per node in the current sample interval.
    window: Vec<u64>,
    window_unrouted: u64,
    samples: Vec<Sample>,
    /// Per node: dead since (set by a live caller), for blackhole counting.
    dead_since: Vec<Option<Nanos>>,
    totals: Totals,
}

impl Run<'_> {
    fn flush(
        &mut self,
        pipeline: &mut Pipeline,
        rx: &mut PacketBatch,
        tx: &mut PacketBatch,
        control: &mut Vec<ControlPacket>,
        conns: &mut Vec<u32>,
        now: Nanos,
    ) {
        if rx.is_empty() {
            return;
        }
        pipeline.process(rx, tx, control, now);
        for (&d, &c) in pipeline.dispositions().iter().zip(conns.iter()) {
            self.totals.packets += 1;
            match d {
                Disposition::Forward { port } if port > 0 => {
                    let node = port - 1;
                    if let Some(w) = self.window.get_mut(node as usize) {
                        *w += 1;
                    }
                    if self
                        .dead_since
                        .get(node as usize)
                        .copied()
                        .flatten()
                        .is_some_and(|t| t <= now)
                    {
                        self.totals.blackholed += 1;
                    }
                    self.observe(c, node, now);
                }
                Disposition::Control(ControlReason::NoRoute) => self.window_unrouted += 1,
                _ => {}
            }
        }
        conns.clear();
        tx.clear();
        control.clear();
    }

    /// Exact breakage: connection `c`'s packet reached `node` at `now`.
    ///
    /// A move is unavoidable when the connection's old node left the service
    /// since the connection's previous packet (even if it is back now: a
    /// connection silent across a restart lost its node), and is then
    /// attributed to that departure; otherwise it is collateral, attributed
    /// to the service's latest step.
    fn observe(&mut self, c: u32, node: u32, now: Nanos) {
        let last = std::mem::replace(&mut self.last_node[c as usize], node);
        let seen = std::mem::replace(&mut self.last_seen[c as usize], now);
        if last == NONE || last == node {
            return;
        }
        let service = self.workload.connections[c as usize].service as usize;
        let departure = self.removed[service]
            .get(last as usize)
            .copied()
            .flatten()
            .filter(|&(t, _)| t >= seen);
        self.totals.breaks += 1;
        self.broken_once[c as usize] = true;
        let (step, unavoidable) = match departure {
            Some((_, step)) => (step, true),
            None => match self.latest_step[service] {
                Some(step) => (step, false),
                None => return,
            },
        };
        if let Some(s) = self.steps.iter_mut().rev().find(|s| s.step == step) {
            if unavoidable {
                s.exact.unavoidable += 1;
            } else {
                s.exact.collateral += 1;
            }
        }
    }

    fn sample(&mut self, t: Nanos) {
        let t = t.min(self.scenario.duration);
        self.samples.push(Sample {
            time_s: t as f64 / 1e9,
            node_packets: std::mem::replace(&mut self.window, vec![0; self.scenario.nodes.len()]),
            unrouted: std::mem::take(&mut self.window_unrouted),
            open: self.workload.open_at(t, None),
            broken_total: self.totals.breaks,
        });
    }
}
