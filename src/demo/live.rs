//! The live half of the demo: one emulator [`Engine`] per compared
//! algorithm, fed the same modelled packets on the wall clock, and every
//! member change the router's control plane makes, at the moment it makes
//! it. So the breakage each algorithm shows is what that algorithm would
//! have done on this router, in this run, with these BGP events.
//!
//! The engines run on their own thread, a little behind real time
//! ([`LAG`]), so that a FIB change the router made at time t reaches them
//! before they forward packets past t.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dataplane::emulator::{Engine, Scenario, Step, VariantRun, Workload};
use hashing::Nanos;

/// How far behind the wall clock the engines forward packets.
pub const LAG: Duration = Duration::from_millis(150);

/// What the live side tells the engines.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// The router now forwards service `service` to these nodes (indexes
    /// into the scenario's nodes), since `at`.
    Members {
        at: Instant,
        service: usize,
        nodes: Vec<usize>,
        /// Why, for the report (`node-c withdrew`, `hold timer expired`).
        cause: String,
    },
    /// The demo stopped (`dead: true`) or restarted a node's speaker: packets
    /// still sent to a dead node are counted as blackholed.
    NodeDead {
        at: Instant,
        node: usize,
        dead: bool,
    },
}

/// What the live run produced.
pub struct LiveResult {
    pub runs: Vec<VariantRun>,
    /// The steps as they happened, for the report's timeline.
    pub steps: Vec<Step>,
}

fn nanos_since(t0: Instant, t: Instant) -> Nanos {
    t.saturating_duration_since(t0).as_nanos() as Nanos
}

/// Drive one engine per variant of `scenario` from `t0` until the
/// scenario's duration has passed on the wall clock, applying `events` as
/// they come. `tick` is called about every 100 ms with the virtual time
/// reached, for progress display.
pub fn drive(
    scenario: &Scenario,
    workload: &Workload,
    events: Receiver<LiveEvent>,
    t0: Instant,
    tick: &dyn Fn(Nanos),
) -> Result<LiveResult> {
    let mut engines: Vec<Engine<'_>> = scenario
        .variants
        .iter()
        .map(|&v| Engine::new(scenario, workload, v).with_context(|| format!("starting {v}")))
        .collect::<Result<_>>()?;
    let no_progress = |_: u64| {};
    let mut members: Vec<Vec<usize>> = scenario.services.iter().map(|(_, n)| n.clone()).collect();
    let mut steps: Vec<Step> = Vec::new();
    // Virtual time the engines have reached.
    let mut reached: Nanos = 0;
    let mut last_tick = Instant::now();
    let end = scenario.duration;
    loop {
        let now = nanos_since(t0, Instant::now()).saturating_sub(LAG.as_nanos() as Nanos);
        let target = now.min(end);
        // Every event that has arrived, in order; each at its own time, never
        // before what the engines already did.
        while let Ok(ev) = events.try_recv() {
            let at = match &ev {
                LiveEvent::Members { at, .. } | LiveEvent::NodeDead { at, .. } => {
                    nanos_since(t0, *at).max(reached).min(end)
                }
            };
            for e in engines.iter_mut() {
                e.advance(at, &no_progress);
            }
            reached = at;
            match ev {
                LiveEvent::NodeDead { node, dead, .. } => {
                    for e in engines.iter_mut() {
                        e.set_node_dead(node, dead.then_some(at));
                    }
                }
                LiveEvent::Members {
                    service,
                    nodes,
                    cause,
                    ..
                } => {
                    let Some(current) = members.get_mut(service) else {
                        continue;
                    };
                    for step in
                        diff_steps(scenario, service, current, &nodes, at, &cause, steps.len())
                    {
                        for e in engines.iter_mut() {
                            e.apply(&step)
                                .with_context(|| format!("applying {}", step.label))?;
                        }
                        steps.push(step);
                    }
                    *current = nodes;
                }
            }
        }
        if target > reached {
            for e in engines.iter_mut() {
                e.advance(target, &no_progress);
            }
            reached = target;
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            tick(reached);
            last_tick = Instant::now();
        }
        if reached >= end {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let runs = engines
        .into_iter()
        .map(|e| e.finish(&no_progress))
        .collect();
    Ok(LiveResult { runs, steps })
}

/// One step per node that left or joined `service` when its members went
/// from `before` to `after`.
fn diff_steps(
    scenario: &Scenario,
    service: usize,
    before: &[usize],
    after: &[usize],
    at: Nanos,
    cause: &str,
    first_index: usize,
) -> Vec<Step> {
    let mut out = Vec::new();
    let name = |n: usize| {
        scenario
            .nodes
            .get(n)
            .map_or("?", |x| x.name.as_str())
            .to_string()
    };
    for &n in before.iter().filter(|n| !after.contains(n)) {
        out.push(Step {
            index: first_index + out.len(),
            time: at,
            node: n,
            services: vec![service],
            weight: None,
            label: format!("{} down ({cause})", name(n)),
            kind: "down",
        });
    }
    for &n in after.iter().filter(|n| !before.contains(n)) {
        out.push(Step {
            index: first_index + out.len(),
            time: at,
            node: n,
            services: vec![service],
            weight: Some(scenario.nodes.get(n).map_or(1, |x| x.weight)),
            label: format!("{} up ({cause})", name(n)),
            kind: "up",
        });
    }
    out
}
