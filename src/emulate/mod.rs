//! `ecmpd emulate`: runs a scenario file through the real data plane on
//! virtual time, once per algorithm and field selection, and writes the
//! breakage per event, per-node load over time and charts.

pub mod report;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use dataplane::emulator::{self, Scenario, VariantRun, Workload, WorkloadStats};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

/// The scenarios shipped in `testbed/scenarios/`, embedded so that
/// `ecmpd emulate --builtin NAME` works from any directory.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "node-failure-5tuple",
        include_str!("../../testbed/scenarios/node-failure-5tuple.toml"),
    ),
    (
        "node-failure-3tuple",
        include_str!("../../testbed/scenarios/node-failure-3tuple.toml"),
    ),
    (
        "rolling-restart",
        include_str!("../../testbed/scenarios/rolling-restart.toml"),
    ),
    (
        "cgnat-clients",
        include_str!("../../testbed/scenarios/cgnat-clients.toml"),
    ),
    (
        "scale-out-busy",
        include_str!("../../testbed/scenarios/scale-out-busy.toml"),
    ),
];

/// A scenario as the report describes it.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioSummary {
    pub name: String,
    pub description: String,
    pub file: Option<String>,
    pub duration_s: f64,
    pub sample_s: f64,
    pub seed: u64,
    /// Node names, in the order of [`emulator::Sample::node_packets`].
    pub nodes: Vec<String>,
    /// `address: node, node, ...` per service.
    pub services: Vec<String>,
    pub traffic: String,
    pub hash_function: String,
    pub resilient: String,
    pub tracker: String,
    /// The timeline, flaps expanded: `(time in s, label)`.
    pub timeline: Vec<(f64, String)>,
}

/// Everything one `ecmpd emulate` run produced.
#[derive(Clone, Debug, Serialize)]
pub struct Emulation {
    /// The command that made it: `emulate` (virtual time) or `demo` (live).
    pub command: &'static str,
    pub scenario: ScenarioSummary,
    pub workload: WorkloadStats,
    /// One run per algorithm x fields, in the scenario's order (fields
    /// outer, algorithms inner).
    pub runs: Vec<VariantRun>,
    pub elapsed_s: f64,
}

impl ScenarioSummary {
    pub fn of(s: &Scenario) -> ScenarioSummary {
        let t = &s.traffic;
        let traffic = format!(
            "{} model, {} new connections/s, {} open at start, lasting {}, a packet every {}{}",
            t.model.get_ref(),
            t.arrivals,
            t.open_at_start,
            t.duration,
            t.packet_interval,
            if t.ipv6_share > 0.0 {
                format!(", {:.0}% IPv6", t.ipv6_share * 100.0)
            } else {
                String::new()
            }
        );
        let r = s.params.resilient;
        ScenarioSummary {
            name: s.name.clone(),
            description: s.description.clone(),
            file: s.path.as_ref().map(|p| p.display().to_string()),
            duration_s: s.duration as f64 / 1e9,
            sample_s: s.sample as f64 / 1e9,
            seed: s.seed,
            nodes: s.nodes.iter().map(|n| n.name.clone()).collect(),
            services: s
                .services
                .iter()
                .map(|(a, nodes)| {
                    let names: Vec<&str> =
                        nodes.iter().map(|&n| s.nodes[n].name.as_str()).collect();
                    format!("{a}: {}", names.join(", "))
                })
                .collect(),
            traffic,
            hash_function: s.function.to_string(),
            resilient: format!(
                "{} buckets, idle timer {}, unbalanced timer {}",
                r.buckets,
                emulator::scenario::Duration(r.idle_timer),
                if r.unbalanced_timer == 0 {
                    "off".to_string()
                } else {
                    emulator::scenario::Duration(r.unbalanced_timer).to_string()
                }
            ),
            tracker: format!(
                "{} flows, idle timeout {}",
                s.tracker.capacity, s.tracker.idle_timeout
            ),
            timeline: s
                .steps
                .iter()
                .map(|st| (st.time as f64 / 1e9, st.label.clone()))
                .collect(),
        }
    }
}

/// Loads a scenario by path, or by the name of a built-in one.
pub fn load(arg: &str) -> Result<Scenario> {
    let path = Path::new(arg);
    if path.exists() {
        return Ok(Scenario::load(path)?);
    }
    let name = arg.trim_end_matches(".toml");
    if let Some((n, src)) = BUILTIN.iter().find(|(n, _)| *n == name) {
        let shown = PathBuf::from(format!("testbed/scenarios/{n}.toml"));
        return Ok(Scenario::parse(src, Some(&shown))?);
    }
    anyhow::bail!(
        "no scenario file `{arg}`, and no built-in scenario of that name (built in: {})",
        BUILTIN
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Runs every variant of `scenario` (in parallel), with a progress bar if
/// `progress`.
pub fn run(scenario: &Scenario, progress: bool) -> Result<Emulation> {
    let started = Instant::now();
    let workload = Workload::generate(scenario)
        .with_context(|| format!("building the traffic of scenario {}", scenario.name))?;
    let total = workload.stats.packets * scenario.variants.len() as u64;
    let bar = if progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} packets, {eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("emulating {}", scenario.name));
        bar
    } else {
        ProgressBar::hidden()
    };
    let done = AtomicU64::new(0);
    let runs: Vec<VariantRun> = scenario
        .variants
        .par_iter()
        .map(|&v| {
            let last = AtomicU64::new(0);
            let report = |n: u64| {
                let prev = last.swap(n, Ordering::Relaxed);
                let d = done.fetch_add(n.saturating_sub(prev), Ordering::Relaxed);
                bar.set_position(d + n.saturating_sub(prev));
            };
            emulator::run_variant(scenario, &workload, v, &report)
                .with_context(|| format!("running {v}"))
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    Ok(Emulation {
        command: "emulate",
        scenario: ScenarioSummary::of(scenario),
        workload: workload.stats,
        runs,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// Run a scenario file through the real data plane on virtual time and
/// measure the connections each event breaks, per algorithm.
///
/// A scenario (TOML) names the nodes and the service IPs they announce, the
/// algorithms and hash fields to compare, a traffic model (connection
/// arrivals, lifetimes and packet gaps from uniform, CGNAT or Zipf clients,
/// or a pcap to replay) and a timeline of events (node down, up, flap,
/// weight change). Every algorithm sees the identical packet sequence.
/// Breakage is counted exactly from connection identities and, as a live
/// router would, by the flow tracker; the report shows both.
#[derive(Args, Debug)]
#[command(after_help = "Built-in scenarios (also in testbed/scenarios/):
  node-failure-5tuple   one node of three fails, 5-tuple hashing
  node-failure-3tuple   the same with 3-tuple hashing
  rolling-restart       every node of four restarts in turn
  cgnat-clients         clients behind a CGNAT, 3- and 5-tuple
  scale-out-busy        a node joins busy resilient groups (idle timer)

Examples:
  ecmpd emulate node-failure-5tuple
  ecmpd emulate testbed/scenarios/rolling-restart.toml -o rolling
  ecmpd emulate my-scenario.toml --json > results.json")]
pub struct EmulateArgs {
    /// Scenario file, or the name of a built-in scenario.
    scenario: String,

    /// Folder to write index.html, report.md, results.json and results.csv into
    /// (default: emulate-<scenario name>).
    #[arg(short, long)]
    out: Option<PathBuf>,

    /// Also print the results as JSON on stdout (the summary then goes to stderr).
    #[arg(long)]
    json: bool,

    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,

    /// Only check the scenario file and print what it would run.
    #[arg(long)]
    check: bool,
}

pub fn emulate(args: EmulateArgs) -> Result<()> {
    let scenario = load(&args.scenario)?;
    if args.check {
        let s = ScenarioSummary::of(&scenario);
        println!(
            "{}: {} nodes, {} services, {} runs ({}), {} s, {} timeline steps\n  traffic: {}",
            s.name,
            s.nodes.len(),
            s.services.len(),
            scenario.variants.len(),
            scenario
                .variants
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            s.duration_s,
            s.timeline.len(),
            s.traffic
        );
        return Ok(());
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("emulate-{}", scenario.name)));
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let result = run(&scenario, progress)?;
    let written = report::write(&result, &out)?;
    let mut text = format!(
        "Emulated {} ({} connections, {} packets per run) with {} runs in {:.1} s.\n",
        result.scenario.name,
        result.workload.connections,
        result.workload.packets,
        result.runs.len(),
        result.elapsed_s
    );
    text.push_str(&report::summary_text(&result));
    text.push_str(&format!(
        "Report: {}\n  also {}, {}, {}",
        written.html.display(),
        written.markdown.display(),
        written.json.display(),
        written.csv.display()
    ));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    Ok(())
}
