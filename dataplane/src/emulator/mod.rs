//! The emulator: runs the real forwarding pipeline (FIB, nexthop groups,
//! flow hash, selector, rewrite, flow tracker) on virtual time over a
//! scenario's connections, once per compared algorithm and field selection,
//! every run on the identical packet sequence, and measures what each change
//! of the timeline breaks.
//!
//! How a run goes (see [`run_variant`]):
//!
//! * The router has port 0 towards the clients and one port per node (as a
//!   containerlab lab router with eth1..ethN), so the egress port names the
//!   node. Each service IP is a /32 or /128 route whose nexthops are the
//!   nodes announcing it, with the variant's algorithm and hash fields.
//! * Connections (one direction, client to service) arrive, send packets and
//!   end as the scenario's traffic model says; [`Workload`] draws them once,
//!   and every run replays the same packets in the same order.
//! * Packets go through [`Pipeline::process`](crate::pipeline::Pipeline::process)
//!   in batches of up to 32 that never straddle a timeline step or a sample
//!   tick; the batch's `now` is its last packet's time.
//! * At a step the FIB writer applies the new member sets and the group
//!   changes go to the flow tracker. At each sample tick the writer's
//!   [`upkeep`](crate::fib::table::FibWriter::upkeep) runs (resilient groups
//!   move idle buckets, as Linux's upkeep does) and per-node load is sampled.
//! * Breakage is counted twice: exactly, from each connection's identity (a
//!   connection whose packet reaches a different node than its previous
//!   packet broke; unavoidable if its old node left the service since that
//!   previous packet, attributed to that departure; collateral otherwise,
//!   attributed to the service's latest step), and by the flow tracker as the
//!   live router measures it (which knows only the current members, so a
//!   connection silent across a whole restart of its node counts as
//!   collateral of the return). They agree while the tracker holds every
//!   connection and no connection is silent longer than its idle timeout or
//!   across a restart.
//! * A broken connection keeps sending (as a client reconnecting at once
//!   would), so that every run sees the identical packet sequence; it counts
//!   once per step that breaks it.

mod engine;
mod frames;
pub mod scenario;
mod workload;

use serde::Serialize;

pub use engine::{run_variant, EmulateError, Engine};
pub use frames::build_frame;
pub use scenario::{Scenario, ScenarioError, Step, Variant};
pub use workload::{Workload, WorkloadStats};

/// Breakage of one timeline step, summed over the services it touched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Breakage {
    /// Connections open at the step's time on the services it touched.
    pub live: u64,
    /// Broke because their node left.
    pub unavoidable: u64,
    /// Broke although their node stayed.
    pub collateral: u64,
}

impl Breakage {
    /// Unavoidable plus collateral.
    pub fn broken(&self) -> u64 {
        self.unavoidable + self.collateral
    }

    /// Broken share of live connections (0 when none were live).
    pub fn broken_share(&self) -> f64 {
        share(self.broken(), self.live)
    }

    /// Collateral share of live connections.
    pub fn collateral_share(&self) -> f64 {
        share(self.collateral, self.live)
    }
}

fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// What one timeline step did in one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepResult {
    /// Index into [`Scenario::steps`].
    pub step: usize,
    pub time_s: f64,
    pub label: String,
    /// `down`, `up` or `weight`.
    pub kind: &'static str,
    pub node: String,
    /// The services the step touched.
    pub services: Vec<String>,
    /// Node names backing the first touched service before and after.
    pub members_before: Vec<String>,
    pub members_after: Vec<String>,
    /// Live connections on the node at the step (for `down`, the least that
    /// must break: the ideal).
    pub on_node: u64,
    /// Exact count from connection identities.
    pub exact: Breakage,
    /// As the flow tracker measured it (its live figure counts flows seen
    /// within its idle timeout).
    pub tracker: Breakage,
}

/// One load sample: what happened in the sample interval ending at `time_s`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub time_s: f64,
    /// Packets forwarded to each node in the interval (scenario node order).
    pub node_packets: Vec<u64>,
    /// Packets that found no route (a service with every node down).
    pub unrouted: u64,
    /// Connections open at `time_s`.
    pub open: u64,
    /// Breaks so far (exact, every step).
    pub broken_total: u64,
}

/// Whole-run figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub packets: u64,
    pub forwarded: u64,
    /// No route (a service with no node), counted by the pipeline.
    pub unrouted: u64,
    /// Any other drop (should be 0).
    pub dropped: u64,
    pub connections: u64,
    /// Connections broken at least once.
    pub connections_broken: u64,
    /// Breaks over the run (a connection may break at several steps).
    pub breaks: u64,
    /// Buckets resilient upkeep moved over the run.
    pub buckets_migrated: u64,
    /// Packets forwarded to a node already dead (only a live run knows):
    /// the cost of detecting a failure late.
    pub blackholed: u64,
    /// Wall-clock time of the run, and the pipeline rate it implies.
    pub elapsed_s: f64,
    pub mpps: f64,
}

/// One run: one algorithm with one field selection over the whole scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantRun {
    pub algorithm: String,
    pub fields: String,
    pub steps: Vec<StepResult>,
    pub samples: Vec<Sample>,
    pub totals: Totals,
}

impl VariantRun {
    /// `algorithm / fields`.
    pub fn label(&self) -> String {
        format!("{} / {}", self.algorithm, self.fields)
    }
}
