//! Writes an emulation's report: a self-contained `index.html` with charts,
//! `report.md`, `results.json` and `results.csv`, and derives the verdict a
//! reader wants first: which variant (algorithm / hash fields) broke fewest
//! connections at each step of the timeline, and how far that is from the
//! least any algorithm must break.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dataplane::emulator::{StepResult, Totals, VariantRun};
use hashing::Algorithm;
use plotters::style::{full_palette, RGBColor};
use serde::Serialize;

use super::Emulation;
use crate::compare::chart::{self, Marker, Series, Stack, YAxis};

/// The files a report consists of.
pub struct Written {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub csv: PathBuf,
}

/// Collateral below this share of live connections counts as none (Maglev
/// moves a handful of table entries on removal).
const CLEAN: f64 = 0.005;

// ---------------------------------------------------------------------------
// Figures derived from the runs.

fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// `8917` as `8,917`.
fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time in seconds, without float noise: `20 s`, `10.5 s`.
fn secs(t: f64) -> String {
    format!("{} s", (t * 1000.0).round() / 1000.0)
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The least a step must break: for `down`, the live connections on the
/// node that left; for `up`, none (new connections can fill the node); for
/// a weight change the emulator has no figure.
pub fn ideal(s: &StepResult) -> Option<u64> {
    match s.kind {
        "down" => Some(s.on_node),
        "up" => Some(0),
        _ => None,
    }
}

/// How the flow tracker's count compares with the exact one.
fn tracker_diff(s: &StepResult) -> String {
    let du = s.tracker.unavoidable as i64 - s.exact.unavoidable as i64;
    let dc = s.tracker.collateral as i64 - s.exact.collateral as i64;
    if du == 0 && dc == 0 {
        return "matches".into();
    }
    let mut parts = Vec::new();
    if du != 0 {
        parts.push(format!("{du:+} unavoidable"));
    }
    if dc != 0 {
        parts.push(format!("{dc:+} collateral"));
    }
    parts.join(", ")
}

/// A run with its figures for one step.
type Row<'a> = (&'a VariantRun, &'a StepResult);

/// One timeline step as every run saw it.
struct Step<'a> {
    /// The first run's view: time, label, kind and node are the same in all.
    info: &'a StepResult,
    /// Each run with its figures for this step, in run order.
    rows: Vec<(&'a VariantRun, &'a StepResult)>,
    /// The end of the window the step owns: the next step, or the run's end.
    until_s: f64,
}

impl Step<'_> {
    fn title(&self) -> String {
        format!("{}: {}", secs(self.info.time_s), self.info.label)
    }

    /// The rows that broke fewest and most, ties together.
    fn extremes(&self) -> (Vec<Row<'_>>, Vec<Row<'_>>) {
        let lo = self.rows.iter().map(|r| r.1.exact.broken()).min();
        let hi = self.rows.iter().map(|r| r.1.exact.broken()).max();
        let pick = |v: Option<u64>| {
            self.rows
                .iter()
                .filter(|r| Some(r.1.exact.broken()) == v)
                .copied()
                .collect()
        };
        (pick(lo), pick(hi))
    }
}

fn steps(e: &Emulation) -> Vec<Step<'_>> {
    let Some(first) = e.runs.iter().find(|r| !r.steps.is_empty()) else {
        return Vec::new();
    };
    first
        .steps
        .iter()
        .enumerate()
        .map(|(i, info)| Step {
            info,
            rows: e
                .runs
                .iter()
                .filter_map(|r| r.steps.iter().find(|s| s.step == info.step).map(|s| (r, s)))
                .collect(),
            until_s: first
                .steps
                .get(i + 1)
                .map_or(e.scenario.duration_s, |n| n.time_s),
        })
        .collect()
}

/// How a node that joined took up traffic in one run, from the samples
/// between its step and the next (resolution: one sample interval).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Uptake {
    /// Time after the step of the first sample in which the node got packets.
    pub first_packets_s: Option<f64>,
    /// ... in which it got at least half its fair share (1/N of the packets).
    pub half_share_s: Option<f64>,
    /// ... in which the run's break count first grew.
    pub first_break_s: Option<f64>,
    /// The window's length (to the next step or the run's end).
    pub window_s: f64,
    /// Breaks in the window (any step's, exact).
    pub window_breaks: u64,
    /// Breaks in the window before the node got its first packets.
    pub breaks_before_packets: u64,
}

pub fn uptake(e: &Emulation, run: &VariantRun, step: &StepResult, until_s: f64) -> Uptake {
    const EPS: f64 = 1e-6;
    let t = step.time_s;
    let before = run
        .samples
        .iter()
        .take_while(|s| s.time_s <= t + EPS)
        .last()
        .map_or(0, |s| s.broken_total);
    let node = e.scenario.nodes.iter().position(|n| *n == step.node);
    let fair = 1.0 / step.members_after.len().max(1) as f64;
    let mut u = Uptake {
        window_s: until_s - t,
        ..Uptake::default()
    };
    for s in run
        .samples
        .iter()
        .filter(|s| s.time_s > t + EPS && s.time_s <= until_s + EPS)
    {
        let after = s.time_s - t;
        let got = node
            .and_then(|n| s.node_packets.get(n))
            .copied()
            .unwrap_or(0);
        let all = s.node_packets.iter().sum::<u64>() + s.unrouted;
        if got > 0 && u.first_packets_s.is_none() {
            u.first_packets_s = Some(after);
        }
        if u.first_packets_s.is_none() {
            u.breaks_before_packets = s.broken_total.saturating_sub(before);
        }
        if got > 0 && share(got, all) >= fair / 2.0 && u.half_share_s.is_none() {
            u.half_share_s = Some(after);
        }
        if s.broken_total > before && u.first_break_s.is_none() {
            u.first_break_s = Some(after);
        }
        u.window_breaks = s.broken_total.saturating_sub(before);
    }
    u
}

/// Whether a joining node's take-up was held back: no packets to the node
/// for more than three sample intervals after it joined.
fn delayed(u: &Uptake, sample_s: f64) -> bool {
    u.window_s > 3.0 * sample_s
        && u.first_packets_s
            .map_or(true, |d| d > 3.0 * sample_s + 1e-6)
}

/// What broke while a joining node waited for traffic, as words.
fn waiting_words(u: &Uptake, live: u64, buckets: bool) -> String {
    let of_live = |n: u64| format!("{} ({} of live)", num(n), pct(share(n, live)));
    let before = if u.breaks_before_packets == 0 {
        "no connection broke meanwhile".to_string()
    } else {
        format!(
            "{} connections ({} of live) broke meanwhile",
            num(u.breaks_before_packets),
            pct(share(u.breaks_before_packets, live))
        )
    };
    let later = u.window_breaks - u.breaks_before_packets;
    if later == 0 {
        before
    } else {
        format!(
            "{before}; then {} broke{}",
            of_live(later),
            if buckets {
                " as buckets moved to it"
            } else {
                ""
            }
        )
    }
}

/// The least the whole run had to break: the connections on each node as
/// it went down.
fn ideal_total(run: &VariantRun) -> u64 {
    run.steps
        .iter()
        .filter(|s| s.kind == "down")
        .map(|s| s.on_node)
        .sum()
}

/// Busiest node's packets over the mean, over the samples up to the first
/// step (the whole run if none), among the nodes that got packets.
pub fn imbalance(e: &Emulation, run: &VariantRun) -> Option<f64> {
    let until = run
        .steps
        .first()
        .map_or(e.scenario.duration_s, |s| s.time_s);
    let mut per_node = vec![0u64; e.scenario.nodes.len()];
    for s in run.samples.iter().filter(|s| s.time_s <= until + 1e-6) {
        for (i, p) in s.node_packets.iter().enumerate() {
            if let Some(n) = per_node.get_mut(i) {
                *n += p;
            }
        }
    }
    let busy: Vec<u64> = per_node.into_iter().filter(|&n| n > 0).collect();
    if busy.len() < 2 {
        return None;
    }
    let mean = busy.iter().sum::<u64>() as f64 / busy.len() as f64;
    Some(*busy.iter().max()? as f64 / mean)
}

// ---------------------------------------------------------------------------
// The verdict.

fn labels(rows: &[(&VariantRun, &StepResult)]) -> String {
    and_list(&rows.iter().map(|r| r.0.label()).collect::<Vec<_>>())
}

/// A down step's broken count against its ideal, as words.
fn vs_ideal(s: &StepResult) -> String {
    if s.on_node == 0 {
        return "with no connection on the node".into();
    }
    format!(
        "{:.2}× its ideal of {} ({} of live, the connections on {})",
        share(s.exact.broken(), s.on_node),
        num(s.on_node),
        pct(share(s.on_node, s.exact.live)),
        s.node
    )
}

fn collateral_words(s: &StepResult) -> String {
    if s.exact.collateral == 0 {
        "none on nodes that stayed".into()
    } else {
        format!(
            "{} of them ({} of live) on nodes that stayed",
            num(s.exact.collateral),
            pct(s.exact.collateral_share())
        )
    }
}

fn overall_sentence(e: &Emulation) -> Option<String> {
    let lo = e.runs.iter().map(|r| r.totals.breaks).min()?;
    let hi = e.runs.iter().map(|r| r.totals.breaks).max()?;
    let conns = e.workload.connections.max(1);
    let describe = |r: &VariantRun, first: bool| {
        let mut s = format!(
            "{} breaks ({} connections, {}{}",
            num(r.totals.breaks),
            num(r.totals.connections_broken),
            pct(share(r.totals.connections_broken, conns)),
            if first {
                format!(" of the {} the run opened", num(e.workload.connections))
            } else {
                String::new()
            }
        );
        let ideal = ideal_total(r);
        if ideal > 0 {
            let _ = write!(
                s,
                "; {:.2}× its ideal of {}{}",
                share(r.totals.breaks, ideal),
                num(ideal),
                if first {
                    ", the connections on each node as it went down"
                } else {
                    ""
                }
            );
        }
        s.push(')');
        s
    };
    let named =
        |v: u64| -> Vec<&VariantRun> { e.runs.iter().filter(|r| r.totals.breaks == v).collect() };
    let names = |rs: &[&VariantRun]| and_list(&rs.iter().map(|r| r.label()).collect::<Vec<_>>());
    if e.runs.len() == 1 {
        let r = &e.runs[0];
        return Some(format!(
            "Over the whole run {} made {}.",
            r.label(),
            describe(r, true)
        ));
    }
    if lo == hi {
        return Some(format!(
            "Every variant broke the same number of connections over the whole run: {}.",
            num(lo)
        ));
    }
    let best = named(lo);
    let worst = named(hi);
    Some(format!(
        "Over the whole run {} broke fewest connections: {}; {} broke most: {}.",
        names(&best),
        describe(best[0], true),
        names(&worst),
        describe(worst[0], false)
    ))
}

fn down_sentences(step: &Step, out: &mut Vec<String>) {
    let (best, worst) = step.extremes();
    let head = format!(
        "{} ({} connections live):",
        step.title(),
        num(step.info.exact.live)
    );
    if step.rows.len() == 1 || best.len() == step.rows.len() {
        let s = best[0].1;
        out.push(format!(
            "{head} {} broke {} ({}), {}, {}.",
            labels(&best),
            num(s.exact.broken()),
            pct(s.exact.broken_share()),
            vs_ideal(s),
            collateral_words(s)
        ));
    } else {
        let (b, w) = (best[0].1, worst[0].1);
        out.push(format!(
            "{head} fewest broken by {}: {} ({}), {}, {}; most by {}: {} ({}), {}, {}.",
            labels(&best),
            num(b.exact.broken()),
            pct(b.exact.broken_share()),
            vs_ideal(b),
            collateral_words(b),
            labels(&worst),
            num(w.exact.broken()),
            pct(w.exact.broken_share()),
            vs_ideal(w),
            collateral_words(w)
        ));
    }
    let clean: Vec<(&VariantRun, &StepResult)> = step
        .rows
        .iter()
        .filter(|r| r.1.exact.collateral_share() < CLEAN)
        .copied()
        .collect();
    let mut dirty: Vec<(&VariantRun, &StepResult)> = step
        .rows
        .iter()
        .filter(|r| r.1.exact.collateral_share() >= CLEAN)
        .copied()
        .collect();
    dirty.sort_by(|a, b| {
        b.1.exact
            .collateral_share()
            .total_cmp(&a.1.exact.collateral_share())
    });
    let dirty_list = and_list(
        &dirty
            .iter()
            .map(|r| format!("{} {}", r.0.label(), pct(r.1.exact.collateral_share())))
            .collect::<Vec<_>>(),
    );
    if step.rows.len() > 1 {
        out.push(match (clean.is_empty(), dirty.is_empty()) {
            (false, false) => format!(
                "Only {}'s own connections broke (collateral under {} of live) with {}; connections on nodes that stayed broke too with {}.",
                step.info.node,
                pct(CLEAN),
                labels(&clean),
                dirty_list
            ),
            (false, true) => format!(
                "No variant broke connections on nodes that stayed (collateral under {} of live): every one broke only {}'s own connections.",
                pct(CLEAN),
                step.info.node
            ),
            _ => format!(
                "Every variant broke connections on nodes that stayed: {dirty_list} of live."
            ),
        });
    }
}

fn up_sentences(step: &Step, out: &mut Vec<String>) {
    let (best, worst) = step.extremes();
    let at_once = 1.0 / step.info.members_after.len().max(1) as f64;
    let head = format!(
        "{} ({} connections live; a joining node needs none to break, since new connections can fill it, while moving its fair share at once breaks about {}):",
        step.title(),
        num(step.info.exact.live),
        pct(at_once)
    );
    let (b, w) = (best[0].1, worst[0].1);
    if step.rows.len() == 1 || best.len() == step.rows.len() {
        out.push(format!(
            "{head} {} broke {} ({}).",
            labels(&best),
            num(b.exact.broken()),
            pct(b.exact.broken_share())
        ));
    } else {
        out.push(format!(
            "{head} fewest broken by {}: {} ({}); most by {}: {} ({}).",
            labels(&best),
            num(b.exact.broken()),
            pct(b.exact.broken_share()),
            labels(&worst),
            num(w.exact.broken()),
            pct(w.exact.broken_share())
        ));
    }
}

/// A joining node that got no traffic for a while, in one run.
struct Wait<'a> {
    run: &'a VariantRun,
    step: &'a StepResult,
    until_s: f64,
    uptake: Uptake,
}

fn waits<'a>(e: &'a Emulation, steps: &[Step<'a>]) -> Vec<Wait<'a>> {
    let mut out = Vec::new();
    for step in steps.iter().filter(|s| s.info.kind == "up") {
        for &(run, s) in &step.rows {
            let u = uptake(e, run, s, step.until_s);
            if delayed(&u, e.scenario.sample_s) {
                out.push(Wait {
                    run,
                    step: s,
                    until_s: step.until_s,
                    uptake: u,
                });
            }
        }
    }
    out
}

fn wait_why(e: &Emulation, run: &VariantRun) -> String {
    if run.algorithm == "resilient" {
        format!(
            " (a resilient group moves a bucket to a new member only once the bucket has been idle for the idle timer, or when the unbalanced timer forces it; here {})",
            e.scenario.resilient
        )
    } else {
        String::new()
    }
}

fn wait_words(e: &Emulation, w: &Wait) -> String {
    let towards = if w.until_s >= e.scenario.duration_s - 1e-6 {
        "the end of the run"
    } else {
        "the next step"
    };
    match w.uptake.first_packets_s {
        None => format!(
            "{} received no packets in the {} to {towards}",
            w.step.node,
            secs(w.uptake.window_s)
        ),
        Some(d) => format!(
            "{} received its first packets only {} after joining",
            w.step.node,
            secs(d)
        ),
    }
}

/// Sentences on joining nodes held back from traffic: one per occurrence,
/// or one per variant when it happened at several steps.
fn wait_sentences(e: &Emulation, steps: &[Step], out: &mut Vec<String>) {
    let waits = waits(e, steps);
    let mut runs: Vec<&VariantRun> = Vec::new();
    for w in &waits {
        if !runs.iter().any(|r| std::ptr::eq(*r, w.run)) {
            runs.push(w.run);
        }
    }
    for run in runs {
        let mine: Vec<&Wait> = waits.iter().filter(|w| std::ptr::eq(w.run, run)).collect();
        let why = wait_why(e, run);
        let buckets = run.totals.buckets_migrated > 0;
        if let [w] = mine.as_slice() {
            out.push(format!(
                "Under {}, {}{why}; {}.",
                run.label(),
                wait_words(e, w),
                waiting_words(&w.uptake, w.step.exact.live, buckets)
            ));
        } else {
            let before: u64 = mine.iter().map(|w| w.uptake.breaks_before_packets).sum();
            let list = if mine.iter().all(|w| w.uptake.first_packets_s.is_none()) {
                format!(
                    "{} received no packets up to the next step (or the run's end)",
                    and_list(
                        &mine
                            .iter()
                            .map(|w| format!("{} at {}", w.step.node, secs(w.step.time_s)))
                            .collect::<Vec<_>>()
                    )
                )
            } else {
                and_list(
                    &mine
                        .iter()
                        .map(|w| {
                            format!(
                                "{} at {}: {}",
                                w.step.node,
                                secs(w.step.time_s),
                                w.uptake.first_packets_s.map_or_else(
                                    || format!("no packets in {}", secs(w.uptake.window_s)),
                                    |d| format!("first packets {} later", secs(d))
                                )
                            )
                        })
                        .collect::<Vec<_>>(),
                )
            };
            out.push(format!(
                "Under {}, no node that joined got traffic soon: {list}{why}; {} broke meanwhile.",
                run.label(),
                if before == 0 {
                    "no connection".to_string()
                } else {
                    format!("{} connections in all", num(before))
                }
            ));
        }
    }
}

fn other_sentences(step: &Step, out: &mut Vec<String>) {
    let (best, worst) = step.extremes();
    let (b, w) = (best[0].1, worst[0].1);
    out.push(format!(
        "{} ({} connections live): fewest broken by {}: {} ({}), {}; most by {}: {} ({}), {}.",
        step.title(),
        num(step.info.exact.live),
        labels(&best),
        num(b.exact.broken()),
        pct(b.exact.broken_share()),
        collateral_words(b),
        labels(&worst),
        num(w.exact.broken()),
        pct(w.exact.broken_share()),
        collateral_words(w)
    ));
}

fn balance_sentence(e: &Emulation) -> Option<String> {
    let figures: Vec<(&VariantRun, f64)> = e
        .runs
        .iter()
        .filter_map(|r| imbalance(e, r).map(|x| (r, x)))
        .collect();
    let (uneven, even): (Vec<_>, Vec<_>) = figures.iter().partition(|(_, x)| *x > 1.15);
    if uneven.is_empty() {
        return None;
    }
    let when = if e.runs.iter().any(|r| !r.steps.is_empty()) {
        "before the first step"
    } else {
        "over the run"
    };
    let mut s = format!(
        "Load is uneven {when}: the busiest node gets {}",
        and_list(
            &uneven
                .iter()
                .enumerate()
                .map(|(i, (r, x))| {
                    format!(
                        "{x:.2}×{} under {}",
                        if i == 0 { " the mean packet count" } else { "" },
                        r.label()
                    )
                })
                .collect::<Vec<_>>()
        )
    );
    let fields = uneven[0].0.fields.as_str();
    let others: Vec<f64> = figures
        .iter()
        .filter(|(r, _)| r.fields != fields)
        .map(|(_, x)| *x)
        .collect();
    let by_fields = uneven.iter().all(|(r, _)| r.fields == fields)
        && !others.is_empty()
        && others.iter().all(|&x| x <= 1.15);
    // Even variants on the same fields (when the fields explain it) or at
    // all (when they do not).
    let same: Option<f64> = even
        .iter()
        .filter(|(r, _)| !by_fields || r.fields == fields)
        .map(|(_, x)| *x)
        .reduce(f64::max);
    if let Some(m) = same {
        let _ = write!(
            s,
            ", against at most {m:.2}× under the other variants{}",
            if by_fields {
                format!(" on {fields}")
            } else {
                String::new()
            }
        );
    }
    s.push('.');
    if by_fields {
        let _ = write!(
            s,
            " Every uneven variant hashes on {fields}; on other fields every variant keeps the busiest node within {:.2}× the mean",
            others.iter().cloned().fold(0.0, f64::max)
        );
        if e.workload.clients > 0 && e.workload.clients * 4 < e.workload.connections {
            let _ = write!(
                s,
                ". The {} connections come from only {} client addresses, so hashing fewer fields leaves few distinct hash inputs",
                num(e.workload.connections),
                num(e.workload.clients)
            );
        }
        s.push('.');
    }
    Some(s)
}

fn tracker_sentence(e: &Emulation) -> Option<String> {
    let rows: Vec<&StepResult> = e.runs.iter().flat_map(|r| &r.steps).collect();
    if rows.is_empty() {
        return None;
    }
    let diff = |s: &StepResult| {
        s.tracker.unavoidable.abs_diff(s.exact.unavoidable)
            + s.tracker.collateral.abs_diff(s.exact.collateral)
    };
    let off: Vec<u64> = rows.iter().map(|s| diff(s)).filter(|&d| d > 0).collect();
    Some(if off.is_empty() {
        "The flow tracker, counting as the live router would, matches the exact count at every step of every run.".into()
    } else {
        format!(
            "The flow tracker, counting as the live router would, differs from the exact count in {} of {} step figures, by at most {} (it misses connections silent longer than its idle timeout, or that it had no room for).",
            off.len(),
            rows.len(),
            match off.iter().max().copied().unwrap_or(0) {
                1 => "1 connection".to_string(),
                n => format!("{} connections", num(n)),
            }
        )
    })
}

/// The verdict, as plain sentences derived from the data.
pub fn verdict(e: &Emulation) -> Vec<String> {
    let mut out = Vec::new();
    if e.runs.is_empty() {
        out.push("No runs.".into());
        return out;
    }
    if let Some(s) = overall_sentence(e) {
        out.push(s);
    }
    let all = steps(e);
    for step in &all {
        match step.info.kind {
            "down" => down_sentences(step, &mut out),
            "up" => up_sentences(step, &mut out),
            _ => other_sentences(step, &mut out),
        }
    }
    wait_sentences(e, &all, &mut out);
    if let Some(s) = balance_sentence(e) {
        out.push(s);
    }
    let counted = [
        (
            runs_with(e, |t| t.unrouted),
            "Packets that found no route (a service with every node down): {}.",
        ),
        (
            runs_with(e, |t| t.blackholed),
            "Packets forwarded to a node after it had died, before the router found out (a live run only): {}. They differ by how much of the traffic each algorithm had given the dead node.",
        ),
        (
            runs_with(e, |t| t.dropped),
            "Warning: packets dropped for another reason than a missing route (expected none): {}.",
        ),
    ];
    for (runs, sentence) in counted {
        if !runs.is_empty() {
            out.push(sentence.replace("{}", &and_list(&runs)));
        }
    }
    if let Some(s) = tracker_sentence(e) {
        out.push(s);
    }
    out
}

/// `label count` for every run where `count` of its totals is not zero.
pub fn runs_with(e: &Emulation, count: impl Fn(&Totals) -> u64) -> Vec<String> {
    e.runs
        .iter()
        .filter(|r| count(&r.totals) > 0)
        .map(|r| format!("{} {}", r.label(), num(count(&r.totals))))
        .collect()
}

/// A few lines for the terminal: the least and most broken at each step
/// against the ideal, then any notable finding. Each line starts with two
/// spaces and ends with a newline.
pub fn summary_text(e: &Emulation) -> String {
    let mut t = String::new();
    if e.runs.is_empty() {
        return t;
    }
    let lo = e.runs.iter().min_by_key(|r| r.totals.breaks);
    let hi = e.runs.iter().max_by_key(|r| r.totals.breaks);
    if let (Some(lo), Some(hi)) = (lo, hi) {
        if e.runs.len() > 1 && lo.totals.breaks != hi.totals.breaks {
            let _ = writeln!(
                t,
                "  Whole run: fewest breaks {} ({}), most {} ({}).",
                lo.label(),
                num(lo.totals.breaks),
                hi.label(),
                num(hi.totals.breaks)
            );
        } else {
            let _ = writeln!(t, "  Whole run: {} breaks.", num(lo.totals.breaks));
        }
    }
    for step in steps(e) {
        let (best, worst) = step.extremes();
        let (b, w) = (best[0].1, worst[0].1);
        let ideal = match ideal(step.info) {
            Some(_) if step.info.kind == "down" => {
                format!(" (ideal {})", pct(share(b.on_node, b.exact.live)))
            }
            Some(_) => " (ideal 0)".into(),
            None => String::new(),
        };
        let _ = writeln!(
            t,
            "  {}: least {} {}{ideal}, most {} {} ({} collateral).",
            step.title(),
            labels(&best),
            pct(b.exact.broken_share()),
            labels(&worst),
            pct(w.exact.broken_share()),
            pct(w.exact.collateral_share())
        );
        if step.info.kind == "up" {
            for &(run, s) in &step.rows {
                let u = uptake(e, run, s, step.until_s);
                if delayed(&u, e.scenario.sample_s) {
                    let _ = writeln!(
                        t,
                        "  {}: under {} {} got no packets {}; {} broke meanwhile.",
                        step.title(),
                        run.label(),
                        s.node,
                        u.first_packets_s.map_or_else(
                            || format!("in the {} that followed", secs(u.window_s)),
                            |d| format!("for {}", secs(d))
                        ),
                        num(u.breaks_before_packets)
                    );
                }
            }
        }
    }
    for r in &e.runs {
        if let Some(x) = imbalance(e, r).filter(|&x| x > 1.15) {
            let _ = writeln!(
                t,
                "  {}: uneven load, busiest node at {x:.2}× the mean.",
                r.label()
            );
        }
    }
    let off = e
        .runs
        .iter()
        .flat_map(|r| &r.steps)
        .filter(|s| tracker_diff(s) != "matches")
        .count();
    if off > 0 {
        let _ = writeln!(
            t,
            "  The flow tracker's count differs from the exact one in {off} step figures (see the report)."
        );
    }
    t
}

// ---------------------------------------------------------------------------
// Tables.

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escape what Markdown would read as table or inline syntax.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One cell row of a step table, shared by HTML and Markdown.
struct Cells {
    label: String,
    cells: Vec<String>,
}

fn step_header(step: &Step) -> Vec<&'static str> {
    let mut h = vec![
        "variant",
        "live",
        "broken (% of live)",
        "unavoidable",
        "collateral (% of live)",
    ];
    if step.info.kind != "up" {
        h.push("ideal");
        h.push("vs ideal");
    }
    h.push("tracker: unavoidable / collateral of live");
    h.push("tracker vs exact");
    if step.info.kind == "up" {
        h.push("node's first packets after");
        h.push("first break after");
    }
    h
}

fn step_rows(e: &Emulation, step: &Step) -> Vec<Cells> {
    step.rows
        .iter()
        .map(|&(run, s)| {
            let x = &s.exact;
            let mut cells = vec![
                num(x.live),
                format!("{} ({})", num(x.broken()), pct(x.broken_share())),
                num(x.unavoidable),
                format!("{} ({})", num(x.collateral), pct(x.collateral_share())),
            ];
            if s.kind != "up" {
                cells.push(match ideal(s) {
                    Some(i) => format!("{} ({})", num(i), pct(share(i, x.live))),
                    None => "—".into(),
                });
                cells.push(match ideal(s) {
                    Some(i) if i > 0 => format!("{:.2}×", share(x.broken(), i)),
                    _ => "—".into(),
                });
            }
            cells.push(format!(
                "{} / {} of {}",
                num(s.tracker.unavoidable),
                num(s.tracker.collateral),
                num(s.tracker.live)
            ));
            cells.push(tracker_diff(s));
            if s.kind == "up" {
                let u = uptake(e, run, s, step.until_s);
                let show = |v: Option<f64>| {
                    v.map_or_else(|| format!("none in {}", secs(u.window_s)), secs)
                };
                cells.push(show(u.first_packets_s));
                cells.push(show(u.first_break_s));
            }
            Cells {
                label: run.label(),
                cells,
            }
        })
        .collect()
}

fn step_note(step: &Step) -> String {
    let i = step.info;
    let members = if i.members_before != i.members_after {
        format!(
            "; {} before, {} after",
            i.members_before.join(", "),
            i.members_after.join(", ")
        )
    } else {
        String::new()
    };
    let ideal = match i.kind {
        "down" => format!(
            " Ideal: the connections live on {} at the step, which no algorithm can save.",
            i.node
        ),
        "up" => format!(
            " Ideal: nothing breaks (new connections can fill {}); every break is collateral.",
            i.node
        ),
        _ => String::new(),
    };
    format!(
        "Services: {}{members}.{ideal}",
        if i.services.is_empty() {
            "none".to_string()
        } else {
            i.services.join(", ")
        }
    )
}

fn totals_header() -> [&'static str; 9] {
    [
        "variant",
        "connections broken at least once",
        "breaks",
        "vs ideal",
        "unrouted packets",
        "other drops",
        "buckets migrated",
        "run time",
        "Mpps",
    ]
}

fn totals_rows(e: &Emulation) -> Vec<Cells> {
    e.runs
        .iter()
        .map(|r| {
            let t = &r.totals;
            let ideal = ideal_total(r);
            Cells {
                label: r.label(),
                cells: vec![
                    format!(
                        "{} ({})",
                        num(t.connections_broken),
                        pct(share(t.connections_broken, t.connections))
                    ),
                    num(t.breaks),
                    if ideal > 0 {
                        format!("{:.2}× of {}", share(t.breaks, ideal), num(ideal))
                    } else {
                        "—".into()
                    },
                    num(t.unrouted),
                    num(t.dropped),
                    num(t.buckets_migrated),
                    format!("{:.2} s", t.elapsed_s),
                    format!("{:.2}", t.mpps),
                ],
            }
        })
        .collect()
}

fn html_table(header: &[&str], rows: &[Cells], pick: &[String]) -> String {
    let mut h = String::from("<div class=\"wide\"><table><thead><tr>");
    for c in header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr></thead><tbody>");
    for r in rows {
        let class = if pick.contains(&r.label) {
            " class=\"pick\""
        } else {
            ""
        };
        let _ = write!(h, "<tr{class}><td>{}</td>", esc(&r.label));
        for c in &r.cells {
            let _ = write!(h, "<td>{}</td>", esc(c));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div>");
    h
}

fn md_table(header: &[&str], rows: &[Cells], pick: &[String]) -> String {
    let mut m = String::from("|");
    for c in header {
        let _ = write!(m, " {} |", md(c));
    }
    m.push_str("\n|---|");
    for _ in 1..header.len() {
        m.push_str("---:|");
    }
    m.push('\n');
    for r in rows {
        if pick.contains(&r.label) {
            let _ = write!(m, "| **{}** |", md(&r.label));
        } else {
            let _ = write!(m, "| {} |", md(&r.label));
        }
        for c in &r.cells {
            let _ = write!(m, " {} |", md(c));
        }
        m.push('\n');
    }
    m
}

fn best_labels(step: &Step) -> Vec<String> {
    step.extremes().0.iter().map(|r| r.0.label()).collect()
}

fn settings(e: &Emulation) -> Vec<(&'static str, String)> {
    let s = &e.scenario;
    let w = &e.workload;
    let mut v = vec![
        ("nodes", s.nodes.join(", ")),
        ("services", s.services.join("; ")),
        ("traffic", s.traffic.clone()),
        ("hash function", s.hash_function.clone()),
        ("resilient groups", s.resilient.clone()),
        ("flow tracker", s.tracker.clone()),
        (
            "timeline",
            if s.timeline.is_empty() {
                "no steps".into()
            } else {
                s.timeline
                    .iter()
                    .map(|(t, l)| format!("{}: {l}", secs(*t)))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ),
        (
            "run",
            format!(
                "{} long, sampled every {}, seed {}",
                secs(s.duration_s),
                secs(s.sample_s),
                s.seed
            ),
        ),
        (
            "workload",
            format!(
                "{} traffic: {} connections ({} IPv6) from {} client addresses; {} packets per run; at most {} open at once{}",
                w.model,
                num(w.connections),
                num(w.ipv6_connections),
                num(w.clients),
                num(w.packets),
                num(w.peak_open),
                if w.skipped > 0 {
                    format!("; {} capture flows skipped", num(w.skipped))
                } else {
                    String::new()
                }
            ),
        ),
        (
            "variants",
            e.runs
                .iter()
                .map(|r| r.label())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    if let Some(f) = &s.file {
        v.push(("scenario file", f.clone()));
    }
    v
}

const HOW: &str = "Every variant replays the identical packet sequence through the real forwarding pipeline on virtual time. A connection breaks when a packet reaches another node than its previous packet did: unavoidable if its old node no longer backs the service, collateral if the node is still there. Breaks count against the service's latest step, so breaks that come later (a resilient bucket moving once idle) still count against the step that caused them. The ideal of a node-down step is the connections live on that node at the step (no algorithm can save them; a few end before sending again, so an algorithm with no collateral can break slightly fewer); a node joining needs nothing to break. The flow tracker's figures are what the live router would report: its live count covers flows seen within its idle timeout, so it differs from the exact live count, but its broken counts should match.";

// ---------------------------------------------------------------------------
// Charts.

fn color_of(algorithm: &str) -> RGBColor {
    let i = Algorithm::ALL
        .iter()
        .position(|a| a.name() == algorithm)
        .unwrap_or(Algorithm::ALL.len());
    chart::color(i)
}

/// Whether a run's line is dashed: when several field selections were
/// compared, those other than the 5-tuple (or the first).
fn dashed(e: &Emulation, run: &VariantRun) -> bool {
    let mut fields: Vec<&str> = e.runs.iter().map(|r| r.fields.as_str()).collect();
    fields.dedup();
    fields.sort_unstable();
    fields.dedup();
    if fields.len() < 2 {
        return false;
    }
    let main = if fields.contains(&"l4") {
        "l4"
    } else {
        e.runs[0].fields.as_str()
    };
    run.fields != main
}

fn node_color(i: usize) -> RGBColor {
    chart::color(i)
}

const UNAVOIDABLE: RGBColor = full_palette::GREY_500;
const COLLATERAL: RGBColor = full_palette::RED_700;
const UNROUTED: RGBColor = full_palette::GREY_300;

fn markers(e: &Emulation) -> Vec<Marker> {
    e.scenario
        .timeline
        .iter()
        .map(|(t, l)| Marker {
            x: *t,
            label: l.clone(),
        })
        .collect()
}

/// Short step labels (`node-a down`) for small charts.
fn short_markers(e: &Emulation) -> Vec<Marker> {
    match e.runs.iter().find(|r| !r.steps.is_empty()) {
        Some(r) => r
            .steps
            .iter()
            .map(|s| Marker {
                x: s.time_s,
                label: format!("{} {}", s.node, s.kind),
            })
            .collect(),
        None => markers(e),
    }
}

/// A chart (or a grid of small ones) and what to look at.
struct Figure {
    title: String,
    /// HTML legend shown above small multiples (already escaped).
    legend: String,
    svgs: Vec<String>,
    grid: bool,
    caption: String,
}

fn html_legend(entries: &[(String, RGBColor, bool)]) -> String {
    let mut h = String::from("<p class=\"legend\">");
    for (name, c, tick) in entries {
        let swatch = if *tick {
            format!(
                "<span class=\"tick\" style=\"border-color:rgb({},{},{})\"></span>",
                c.0, c.1, c.2
            )
        } else {
            format!(
                "<span class=\"sw\" style=\"background:rgb({},{},{})\"></span>",
                c.0, c.1, c.2
            )
        };
        let _ = write!(h, "<span class=\"entry\">{swatch}{}</span>", esc(name));
    }
    h.push_str("</p>");
    h
}

fn breakage_figure(e: &Emulation, steps: &[Step]) -> Option<Figure> {
    if steps.is_empty() {
        return None;
    }
    let width = if steps.len() == 1 { 860 } else { 480 };
    let svgs = steps
        .iter()
        .map(|step| {
            let categories: Vec<String> = step.rows.iter().map(|r| r.0.label()).collect();
            let stacks = vec![
                Stack {
                    name: "unavoidable".into(),
                    color: UNAVOIDABLE,
                    values: step
                        .rows
                        .iter()
                        .map(|r| share(r.1.exact.unavoidable, r.1.exact.live))
                        .collect(),
                },
                Stack {
                    name: "collateral".into(),
                    color: COLLATERAL,
                    values: step
                        .rows
                        .iter()
                        .map(|r| share(r.1.exact.collateral, r.1.exact.live))
                        .collect(),
                },
            ];
            let ticks: Vec<Option<f64>> = step
                .rows
                .iter()
                .map(|r| (r.1.kind == "down").then(|| share(r.1.on_node, r.1.exact.live)))
                .collect();
            chart::stacked_hbars(
                &format!("{} ({} live)", step.title(), num(step.info.exact.live)),
                "share of live connections broken",
                &categories,
                &stacks,
                &ticks,
                width,
            )
        })
        .collect();
    let mut legend = vec![
        ("unavoidable (node left)".to_string(), UNAVOIDABLE, false),
        ("collateral (node stayed)".to_string(), COLLATERAL, false),
    ];
    if steps.iter().any(|s| s.info.kind == "down") {
        legend.push((
            "ideal: connections on the node that left".to_string(),
            plotters::style::BLACK,
            true,
        ));
    }
    let _ = e;
    Some(Figure {
        title: "Connections broken at each step".into(),
        legend: html_legend(&legend),
        svgs,
        grid: steps.len() > 1,
        caption: "Each bar is one variant's breakage at that step, as a share of the connections live then. Grey broke because their node left: no algorithm saves them. Red broke although their node stayed: damage done by the algorithm alone. On a node-down step the black tick marks the ideal; a bar ending at the tick with no red is as good as it gets. On a node-up step nothing needs to break, so every bar is red.".into(),
    })
}

fn cumulative_figure(e: &Emulation, steps: &[Step]) -> Figure {
    let end = e.scenario.duration_s;
    let mut series: Vec<Series> = e
        .runs
        .iter()
        .map(|r| {
            let mut points = vec![(0.0, 0.0)];
            points.extend(r.samples.iter().map(|s| (s.time_s, s.broken_total as f64)));
            Series {
                name: r.label(),
                color: color_of(&r.algorithm),
                points,
                dashed: dashed(e, r),
            }
        })
        .collect();
    let downs: Vec<&Step> = steps.iter().filter(|s| s.info.kind == "down").collect();
    if !downs.is_empty() && !e.runs.is_empty() {
        // The ideal as a staircase: the mean over variants of the
        // connections on the node, added at each node-down step.
        let mut points = vec![(0.0, 0.0)];
        let mut total = 0.0;
        for s in &downs {
            let mean =
                s.rows.iter().map(|r| r.1.on_node as f64).sum::<f64>() / s.rows.len().max(1) as f64;
            points.push((s.info.time_s, total));
            total += mean;
            points.push((s.info.time_s, total));
        }
        points.push((end, total));
        series.push(Series {
            name: "ideal".into(),
            color: plotters::style::BLACK,
            points,
            dashed: true,
        });
    }
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(10.0)
        * 1.05;
    Figure {
        title: "Breaks over time".into(),
        legend: String::new(),
        svgs: vec![chart::time_lines(
            &format!("Connections broken so far ({})", e.scenario.name),
            "time (s)",
            "breaks (cumulative)",
            &series,
            &markers(e),
            end,
            YAxis::Linear(0.0, max),
        )],
        grid: false,
        caption: format!(
            "Every break so far, per variant, sampled every {}; dashed grey lines mark the timeline's steps.{} A line that climbs right after a step breaks connections at once (they break when they next send a packet, so the climb takes a second or two); a flat line across a step broke nothing; a climb long after a step is a deferred rebalance (a resilient bucket moving once idle, or forced by the unbalanced timer).{}",
            secs(e.scenario.sample_s),
            if downs.is_empty() {
                ""
            } else {
                " The black dashed staircase is the ideal: the connections on each node as it went down (mean over the variants)."
            },
            if dashed_any(e) {
                " Dashed variant lines hash on fewer fields than the 5-tuple."
            } else {
                ""
            }
        ),
    }
}

fn dashed_any(e: &Emulation) -> bool {
    e.runs.iter().any(|r| dashed(e, r))
}

fn load_figure(e: &Emulation) -> Option<Figure> {
    if e.runs.is_empty() || e.scenario.nodes.is_empty() {
        return None;
    }
    let any_unrouted = e
        .runs
        .iter()
        .any(|r| r.samples.iter().any(|s| s.unrouted > 0));
    let svgs = e
        .runs
        .iter()
        .map(|r| {
            let xs: Vec<f64> = r.samples.iter().map(|s| s.time_s).collect();
            let total =
                |s: &dataplane::emulator::Sample| s.node_packets.iter().sum::<u64>() + s.unrouted;
            let mut layers: Vec<Stack> = e
                .scenario
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| Stack {
                    name: n.clone(),
                    color: node_color(i),
                    values: r
                        .samples
                        .iter()
                        .map(|s| share(s.node_packets.get(i).copied().unwrap_or(0), total(s)))
                        .collect(),
                })
                .collect();
            if any_unrouted {
                layers.push(Stack {
                    name: "no route".into(),
                    color: UNROUTED,
                    values: r
                        .samples
                        .iter()
                        .map(|s| share(s.unrouted, total(s)))
                        .collect(),
                });
            }
            chart::stacked_area(
                &r.label(),
                &xs,
                &layers,
                &short_markers(e),
                e.scenario.duration_s,
                (480, 240),
            )
        })
        .collect();
    let mut legend: Vec<(String, RGBColor, bool)> = e
        .scenario
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), node_color(i), false))
        .collect();
    if any_unrouted {
        legend.push(("no route".into(), UNROUTED, false));
    }
    Some(Figure {
        title: "Load per node over time".into(),
        legend: html_legend(&legend),
        svgs,
        grid: true,
        caption: format!(
            "One chart per variant: the share of packets each node received in each {} interval, stacked to 100%. With N nodes serving, even bands are 1/N each. Look for bands of unequal height (few distinct hash inputs, such as clients behind a CGNAT hashed on the 3-tuple), a band that vanishes at a node-down step and how the rest share its load, and how fast a joining node's band grows: at once (the group rehashed, breaking connections) or only later (a resilient group waits for buckets to go idle).",
            secs(e.scenario.sample_s)
        ),
    })
}

fn figures(e: &Emulation) -> Vec<Figure> {
    let steps = steps(e);
    let mut out = Vec::new();
    out.extend(breakage_figure(e, &steps));
    if !e.runs.is_empty() {
        out.push(cumulative_figure(e, &steps));
    }
    out.extend(load_figure(e));
    out
}

// ---------------------------------------------------------------------------
// The documents.

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1060px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{margin-bottom:.2em}.sub{color:#666;margin-top:0}.verdict{background:#f3f8f1;border-left:5px solid #2e7d32;padding:.8em 1.2em;margin:1.2em 0}\
.verdict p{margin:.4em 0}table{border-collapse:collapse;margin:1em 0;font-size:.86em}th,td{border:1px solid #ccc;padding:.3em .45em;text-align:right}td{white-space:nowrap}th{font-weight:600;vertical-align:bottom}\
th:first-child,td:first-child{text-align:left}tr.pick{background:#e8f5e9;font-weight:600}figure{margin:2em 0}figcaption{color:#444;max-width:760px}\
.params{background:#f7f7f9;border:1px solid #ddd;padding:.2em 1em;margin:1em 0}.params table{margin:.6em 0}.wide{overflow-x:auto}.params td{white-space:normal;text-align:left;border:none;padding:.15em .6em;vertical-align:top}.params td:first-child{color:#555;white-space:nowrap}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:6px}.legend{margin:.3em 0}.legend .entry{margin-right:1.2em;white-space:nowrap}\
.legend .sw{display:inline-block;width:14px;height:12px;margin-right:.35em;vertical-align:-1px}.legend .tick{display:inline-block;width:0;height:14px;border-left:2px solid;margin:0 .5em 0 .4em;vertical-align:-2px}\
.note{color:#555;font-size:.92em}.warning{background:#fff4e5;border-left:5px solid #ef6c00;padding:.5em 1em}code{background:#f4f4f4;padding:0 .2em}";

/// `of virtual time` for an emulation, `live` for the demo's wall clock.
fn clock(e: &Emulation) -> &'static str {
    if e.command == "emulate" {
        "of virtual time"
    } else {
        "on the wall clock"
    }
}

fn html(e: &Emulation) -> String {
    let s = &e.scenario;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ecmpd emulate: {}</title><style>{STYLE}</style></head><body>",
        esc(&s.name)
    );
    let _ = write!(
        h,
        "<h1>Emulation: {}</h1><p class=\"sub\">ecmpd {} · {} runs on the same {} packets · {} {} · seed {} · {:.1} s</p>",
        esc(&s.name),
        e.command,
        e.runs.len(),
        num(e.workload.packets),
        secs(s.duration_s),
        clock(e),
        s.seed,
        e.elapsed_s
    );
    if !s.description.trim().is_empty() {
        let _ = write!(h, "<p>{}</p>", esc(s.description.trim()));
    }
    h.push_str("<section class=\"verdict\"><h2>What broke</h2>");
    for v in verdict(e) {
        let _ = write!(h, "<p>{}</p>", esc(&v));
    }
    h.push_str("</section><section class=\"params\"><table>");
    for (k, v) in settings(e) {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table></section>");
    let steps = steps(e);
    if !steps.is_empty() {
        h.push_str("<h2>Each step</h2><p class=\"note\">Counts are connections; percentages are shares of the connections live at the step. The highlighted row broke fewest. “Tracker vs exact” compares the flow tracker's broken counts with the exact ones.</p>");
    }
    for step in &steps {
        let _ = write!(
            h,
            "<h3>{}</h3><p class=\"note\">{}</p>",
            esc(&step.title()),
            esc(&step_note(step))
        );
        h.push_str(&html_table(
            &step_header(step),
            &step_rows(e, step),
            &best_labels(step),
        ));
    }
    for f in figures(e) {
        let _ = write!(h, "<figure><h3>{}</h3>{}", esc(&f.title), f.legend);
        if f.grid {
            h.push_str("<div class=\"grid\">");
        }
        for svg in &f.svgs {
            h.push_str(svg);
        }
        if f.grid {
            h.push_str("</div>");
        }
        let _ = write!(h, "<figcaption>{}</figcaption></figure>", esc(&f.caption));
    }
    h.push_str("<h2>Totals per run</h2>");
    let least = e.runs.iter().map(|r| r.totals.breaks).min();
    let pick: Vec<String> = e
        .runs
        .iter()
        .filter(|r| Some(r.totals.breaks) == least && e.runs.len() > 1)
        .map(|r| r.label())
        .collect();
    h.push_str(&html_table(&totals_header(), &totals_rows(e), &pick));
    h.push_str("<p class=\"note\">A connection may break at several steps: breaks count each time, “connections broken at least once” each connection once. “vs ideal” compares breaks with the connections on each node as it went down. Run time and Mpps are wall-clock figures of the emulation on this machine (runs share its cores), not of a live router.</p>");
    let _ = write!(
        h,
        "<h2>How this was measured</h2><p>{}</p><p class=\"note\">Also in this folder: report.md, results.csv (one row per variant and step), results.json (everything, including every sample).</p></body></html>",
        esc(HOW)
    );
    h
}

fn markdown(e: &Emulation) -> String {
    let s = &e.scenario;
    let mut m = format!("# Emulation: {}\n\n", md(&s.name));
    let _ = writeln!(
        m,
        "ecmpd {}, {} runs on the same {} packets, {} {}, seed {}, {:.1} s.\n",
        e.command,
        e.runs.len(),
        num(e.workload.packets),
        secs(s.duration_s),
        clock(e),
        s.seed,
        e.elapsed_s
    );
    if !s.description.trim().is_empty() {
        let _ = writeln!(m, "{}\n", s.description.trim());
    }
    m.push_str("## What broke\n\n");
    for v in verdict(e) {
        let _ = writeln!(m, "- {v}");
    }
    m.push_str("\n## Settings\n\n| | |\n|---|---|\n");
    for (k, v) in settings(e) {
        let _ = writeln!(m, "| {k} | {} |", md(&v));
    }
    let steps = steps(e);
    if !steps.is_empty() {
        m.push_str("\n## Each step\n\nCounts are connections; percentages are shares of the connections live at the step. Bold: broke fewest.\n");
    }
    for step in &steps {
        let _ = writeln!(
            m,
            "\n### {}\n\n{}\n",
            md(&step.title()),
            md(&step_note(step))
        );
        m.push_str(&md_table(
            &step_header(step),
            &step_rows(e, step),
            &best_labels(step),
        ));
    }
    m.push_str("\n## Totals per run\n\n");
    let least = e.runs.iter().map(|r| r.totals.breaks).min();
    let pick: Vec<String> = e
        .runs
        .iter()
        .filter(|r| Some(r.totals.breaks) == least && e.runs.len() > 1)
        .map(|r| r.label())
        .collect();
    m.push_str(&md_table(&totals_header(), &totals_rows(e), &pick));
    let _ = writeln!(m, "\n## How this was measured\n\n{HOW}");
    m.push_str("\nCharts (breakage per step, breaks over time, load per node over time) are in `index.html` only. Every figure: `results.csv` (one row per variant and step), `results.json` (everything, including every sample).\n");
    m
}

/// One CSV row: one variant at one step.
#[derive(Serialize)]
struct CsvRow {
    algorithm: String,
    fields: String,
    step: usize,
    time_s: f64,
    label: String,
    kind: String,
    node: String,
    services: String,
    members_before: String,
    members_after: String,
    live: u64,
    broken: u64,
    broken_share: f64,
    unavoidable: u64,
    collateral: u64,
    collateral_share: f64,
    on_node: u64,
    ideal: Option<u64>,
    ideal_share: Option<f64>,
    broken_over_ideal: Option<f64>,
    tracker_live: u64,
    tracker_unavoidable: u64,
    tracker_collateral: u64,
    tracker_matches: bool,
    node_first_packets_after_s: Option<f64>,
    first_break_after_s: Option<f64>,
    window_breaks: Option<u64>,
}

fn csv(e: &Emulation) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let all = steps(e);
    for run in &e.runs {
        for s in &run.steps {
            let until = all
                .iter()
                .find(|st| st.info.step == s.step)
                .map_or(e.scenario.duration_s, |st| st.until_s);
            let u = (s.kind == "up").then(|| uptake(e, run, s, until));
            let ideal = ideal(s);
            w.serialize(CsvRow {
                algorithm: run.algorithm.clone(),
                fields: run.fields.clone(),
                step: s.step,
                time_s: s.time_s,
                label: s.label.clone(),
                kind: s.kind.to_string(),
                node: s.node.clone(),
                services: s.services.join(" "),
                members_before: s.members_before.join(" "),
                members_after: s.members_after.join(" "),
                live: s.exact.live,
                broken: s.exact.broken(),
                broken_share: s.exact.broken_share(),
                unavoidable: s.exact.unavoidable,
                collateral: s.exact.collateral,
                collateral_share: s.exact.collateral_share(),
                on_node: s.on_node,
                ideal,
                ideal_share: ideal.map(|i| share(i, s.exact.live)),
                broken_over_ideal: ideal.filter(|&i| i > 0).map(|i| share(s.exact.broken(), i)),
                tracker_live: s.tracker.live,
                tracker_unavoidable: s.tracker.unavoidable,
                tracker_collateral: s.tracker.collateral,
                tracker_matches: s.tracker.unavoidable == s.exact.unavoidable
                    && s.tracker.collateral == s.exact.collateral,
                node_first_packets_after_s: u.as_ref().and_then(|u| u.first_packets_s),
                first_break_after_s: u.as_ref().and_then(|u| u.first_break_s),
                window_breaks: u.as_ref().map(|u| u.window_breaks),
            })?;
        }
    }
    w.flush()?;
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("writing the CSV: {}", e.error()))
}

/// Write the four files into `dir`.
pub fn write(e: &Emulation, dir: &Path) -> Result<Written> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let w = Written {
        html: dir.join("index.html"),
        markdown: dir.join("report.md"),
        json: dir.join("results.json"),
        csv: dir.join("results.csv"),
    };
    let put = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    put(&w.html, html(e).as_bytes())?;
    put(&w.markdown, markdown(e).as_bytes())?;
    put(&w.json, &serde_json::to_vec_pretty(e)?)?;
    put(&w.csv, &csv(e)?)?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulate::ScenarioSummary;
    use dataplane::emulator::{Breakage, Sample, Totals, WorkloadStats};

    fn summary(name: &str) -> ScenarioSummary {
        ScenarioSummary {
            name: name.into(),
            description: "Three nodes; node-b fails at 10 s & returns at 20 s.".into(),
            file: None,
            duration_s: 30.0,
            sample_s: 1.0,
            seed: 1,
            nodes: vec!["node-a".into(), "node-b".into(), "node-c".into()],
            services: vec!["203.0.113.10: node-a, node-b, node-c".into()],
            traffic: "uniform".into(),
            hash_function: "xxh3".into(),
            resilient: "128 buckets, idle timer 120s, unbalanced timer off".into(),
            tracker: "1024 flows, idle timeout 10s".into(),
            timeline: vec![(10.0, "node-b down".into()), (20.0, "node-b up".into())],
        }
    }

    fn breakage(live: u64, unavoidable: u64, collateral: u64) -> Breakage {
        Breakage {
            live,
            unavoidable,
            collateral,
        }
    }

    fn step(index: usize, kind: &'static str, on_node: u64, exact: Breakage) -> StepResult {
        let (time_s, before, after) = if kind == "down" {
            (
                10.0,
                vec!["node-a", "node-b", "node-c"],
                vec!["node-a", "node-c"],
            )
        } else {
            (
                20.0,
                vec!["node-a", "node-c"],
                vec!["node-a", "node-b", "node-c"],
            )
        };
        StepResult {
            step: index,
            time_s,
            label: format!("node-b {kind}"),
            kind,
            node: "node-b".into(),
            services: vec!["203.0.113.10".into()],
            members_before: before.into_iter().map(String::from).collect(),
            members_after: after.into_iter().map(String::from).collect(),
            on_node,
            tracker: exact.clone(),
            exact,
        }
    }

    /// Samples every second to 30 s: breaks `down` right after 10 s and
    /// `up` right after 20 s (or `late_up` from 25 s on); node-b gets
    /// packets except while down, or (if `node_b_back` is false) not after
    /// the up step either.
    fn samples(down: u64, up: u64, node_b_back: bool) -> Vec<Sample> {
        (1..=30)
            .map(|t| {
                let t = t as f64;
                let node_b = if t <= 10.0 || (t > 20.0 && node_b_back) {
                    100
                } else {
                    0
                };
                let broken_total = if t <= 10.0 {
                    0
                } else if t <= 20.0 || (!node_b_back && t < 25.0) {
                    down
                } else {
                    down + up
                };
                Sample {
                    time_s: t,
                    node_packets: vec![100, node_b, 100],
                    unrouted: 0,
                    open: 100,
                    broken_total,
                }
            })
            .collect()
    }

    fn run(algorithm: &str, down: (u64, u64, u64), up: u64, node_b_back: bool) -> VariantRun {
        let (unavoidable, collateral, on_node) = down;
        let steps = vec![
            step(0, "down", on_node, breakage(100, unavoidable, collateral)),
            step(1, "up", 0, breakage(100, 0, up)),
        ];
        let breaks = unavoidable + collateral + up;
        VariantRun {
            algorithm: algorithm.into(),
            fields: "l4".into(),
            samples: samples(unavoidable + collateral, up, node_b_back),
            steps,
            totals: Totals {
                packets: 9000,
                forwarded: 9000,
                connections: 200,
                connections_broken: breaks.min(200),
                breaks,
                elapsed_s: 0.1,
                mpps: 0.09,
                ..Totals::default()
            },
        }
    }

    /// Resilient: no collateral and nothing on the node's return (node-b
    /// gets no packets after it); modulo: much collateral; maglev: a little.
    fn emulation(name: &str) -> Emulation {
        Emulation {
            command: "emulate",
            scenario: summary(name),
            workload: WorkloadStats {
                model: "uniform".into(),
                connections: 200,
                clients: 200,
                packets: 9000,
                peak_open: 120,
                ..WorkloadStats::default()
            },
            runs: vec![
                run("modulo", (30, 35, 33), 40, true),
                run("resilient", (30, 0, 32), 0, false),
                run("maglev", (31, 0, 32), 25, true),
            ],
            elapsed_s: 0.3,
        }
    }

    #[test]
    fn the_verdict_names_the_variant_that_broke_fewest_and_most() {
        let v = verdict(&emulation("t"));
        assert!(
            v[0].starts_with(
                "Over the whole run resilient / l4 broke fewest connections: 30 breaks"
            ),
            "{v:#?}"
        );
        assert!(
            v[0].contains("modulo / l4 broke most: 105 breaks"),
            "{v:#?}"
        );
        let down = v
            .iter()
            .find(|s| s.starts_with("10 s: node-b down"))
            .unwrap();
        assert!(
            down.contains(
                "fewest broken by resilient / l4: 30 (30.0%), 0.94× its ideal of 32 (32.0% of live"
            ),
            "{down}"
        );
        assert!(
            down.contains("most by modulo / l4: 65 (65.0%), 1.97× its ideal of 33"),
            "{down}"
        );
        assert!(
            down.contains("35 of them (35.0% of live) on nodes that stayed"),
            "{down}"
        );
        let clean = v
            .iter()
            .find(|s| s.starts_with("Only node-b's own"))
            .unwrap();
        assert!(
            clean.contains("with resilient / l4 and maglev / l4;"),
            "{clean}"
        );
        assert!(clean.contains("too with modulo / l4 35.0%."), "{clean}");
        let up = v.iter().find(|s| s.starts_with("20 s: node-b up")).unwrap();
        assert!(
            up.contains("fewest broken by resilient / l4: 0 (0.0%)"),
            "{up}"
        );
        assert!(up.contains("most by modulo / l4: 40 (40.0%)"), "{up}");
        assert!(up.contains("at once breaks about 33.3%"), "{up}");
        // Resilient kept node-b without packets to the end of the run.
        let wait = v
            .iter()
            .find(|s| s.starts_with("Under resilient / l4"))
            .unwrap();
        assert!(
            wait.contains("node-b received no packets in the 10 s to the end of the run"),
            "{wait}"
        );
        assert!(wait.contains("no connection broke meanwhile"), "{wait}");
        assert!(!v.iter().any(|s| s.starts_with("Under modulo")), "{v:#?}");
        assert!(
            v.last().unwrap().contains("matches the exact count"),
            "{v:#?}"
        );
    }

    #[test]
    fn ties_are_named_together() {
        let mut e = emulation("t");
        e.runs[2] = run("maglev", (30, 0, 31), 0, false);
        let v = verdict(&e);
        assert!(
            v[0].starts_with("Over the whole run resilient / l4 and maglev / l4 broke fewest"),
            "{v:#?}"
        );
        let down = v
            .iter()
            .find(|s| s.starts_with("10 s: node-b down"))
            .unwrap();
        assert!(
            down.contains("fewest broken by resilient / l4 and maglev / l4: 30"),
            "{down}"
        );
    }

    #[test]
    fn ideal_and_shares() {
        let down = step(0, "down", 32, breakage(100, 30, 5));
        let up = step(1, "up", 3, breakage(100, 0, 7));
        let mut weight = step(1, "up", 0, breakage(100, 0, 7));
        weight.kind = "weight";
        assert_eq!(ideal(&down), Some(32));
        assert_eq!(ideal(&up), Some(0));
        assert_eq!(ideal(&weight), None);
        assert_eq!(tracker_diff(&down), "matches");
        let mut off = down.clone();
        off.tracker.unavoidable -= 1;
        off.tracker.collateral += 2;
        assert_eq!(tracker_diff(&off), "-1 unavoidable, +2 collateral");
        assert_eq!(num(8917), "8,917");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(num(12), "12");
        assert_eq!(secs(10.000000001), "10 s");
        assert_eq!(secs(0.5), "0.5 s");
    }

    #[test]
    fn uptake_finds_when_a_joining_node_gets_traffic() {
        let e = emulation("t");
        let resilient = &e.runs[1];
        let u = uptake(&e, resilient, &resilient.steps[1], 30.0);
        assert_eq!(u.first_packets_s, None);
        assert_eq!(u.first_break_s, None);
        assert_eq!(u.window_breaks, 0);
        assert!(delayed(&u, 1.0));
        let modulo = &e.runs[0];
        let u = uptake(&e, modulo, &modulo.steps[1], 30.0);
        assert_eq!(u.first_packets_s, Some(1.0));
        assert_eq!(u.first_break_s, Some(1.0));
        assert_eq!(u.window_breaks, 40);
        assert!(!delayed(&u, 1.0));
        // A node that gets packets only from 25 s, with breaks from then on.
        let mut late = run("resilient", (30, 0, 32), 12, false);
        for s in late.samples.iter_mut().filter(|s| s.time_s >= 25.0) {
            s.node_packets[1] = 50;
        }
        let u = uptake(&e, &late, &late.steps[1], 30.0);
        assert_eq!(u.first_packets_s, Some(5.0));
        assert_eq!(u.first_break_s, Some(5.0));
        assert_eq!(u.breaks_before_packets, 0);
        assert_eq!(u.window_breaks, 12);
        assert_eq!(u.half_share_s, Some(5.0));
        let mut e = e;
        e.runs[1] = late;
        let v = verdict(&e);
        let wait = v
            .iter()
            .find(|s| s.starts_with("Under resilient / l4"))
            .unwrap();
        assert!(
            wait.contains("node-b received its first packets only 5 s after joining"),
            "{wait}"
        );
        assert!(
            wait.contains("no connection broke meanwhile; then 12 (12.0% of live) broke"),
            "{wait}"
        );
    }

    #[test]
    fn uneven_load_is_reported_with_its_fields() {
        let mut e = emulation("t");
        e.workload.clients = 8;
        let mut l3 = run("maglev", (31, 0, 32), 25, true);
        l3.fields = "l3-proto".into();
        for s in &mut l3.samples {
            s.node_packets = vec![300, s.node_packets[1], 50];
        }
        e.runs.push(l3);
        let v = verdict(&e);
        let load = v.iter().find(|s| s.starts_with("Load is uneven")).unwrap();
        assert!(
            load.contains("2.00× the mean packet count under maglev / l3-proto."),
            "{load}"
        );
        assert!(load.contains("within 1.00× the mean"), "{load}");
        assert!(
            load.contains("Every uneven variant hashes on l3-proto"),
            "{load}"
        );
        assert!(load.contains("only 8 client addresses"), "{load}");
        assert!(summary_text(&e).contains("maglev / l3-proto: uneven load, busiest node at 2.00×"));
        // Dashed lines for the fields other than the 5-tuple.
        assert!(dashed(&e, &e.runs[3]));
        assert!(!dashed(&e, &e.runs[0]));
    }

    #[test]
    fn the_summary_has_indented_lines() {
        let t = summary_text(&emulation("t"));
        assert!(!t.is_empty());
        assert!(t.ends_with('\n'));
        for line in t.lines() {
            assert!(line.starts_with("  "), "{line:?}");
        }
        assert!(
            t.contains("  Whole run: fewest breaks resilient / l4 (30), most modulo / l4 (105).\n"),
            "{t}"
        );
        assert!(
            t.contains("  10 s: node-b down: least resilient / l4 30.0% (ideal 32.0%), most modulo / l4 65.0% (35.0% collateral).\n"),
            "{t}"
        );
        assert!(
            t.contains("under resilient / l4 node-b got no packets"),
            "{t}"
        );
        assert_eq!(
            summary_text(&Emulation {
                runs: vec![],
                ..emulation("t")
            }),
            ""
        );
    }

    #[test]
    fn the_csv_has_a_header_and_a_row_per_variant_and_step() {
        let e = emulation("t");
        let bytes = csv(&e).unwrap();
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        for h in [
            "algorithm",
            "fields",
            "step",
            "live",
            "broken",
            "unavoidable",
            "collateral",
            "ideal",
            "ideal_share",
            "tracker_matches",
            "node_first_packets_after_s",
        ] {
            assert!(header.iter().any(|c| c == h), "{h} missing from {header:?}");
        }
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), e.runs.len() * 2);
        let col = |name: &str| header.iter().position(|c| c == name).unwrap();
        let modulo_down = &rows[0];
        assert_eq!(&modulo_down[col("algorithm")], "modulo");
        assert_eq!(&modulo_down[col("kind")], "down");
        assert_eq!(&modulo_down[col("broken")], "65");
        assert_eq!(&modulo_down[col("ideal")], "33");
        assert_eq!(&modulo_down[col("ideal_share")], "0.33");
        assert_eq!(&modulo_down[col("tracker_matches")], "true");
        assert_eq!(&modulo_down[col("node_first_packets_after_s")], "");
        let resilient_up = &rows[3];
        assert_eq!(&resilient_up[col("algorithm")], "resilient");
        assert_eq!(&resilient_up[col("kind")], "up");
        assert_eq!(&resilient_up[col("ideal")], "0");
        assert_eq!(&resilient_up[col("window_breaks")], "0");
    }

    #[test]
    fn the_html_has_every_variant_a_chart_per_step_and_escapes() {
        let e = emulation("a<b & \"c\"");
        let h = html(&e);
        assert!(h.starts_with("<!doctype html>"));
        assert!(h.ends_with("</html>"));
        for r in &e.runs {
            assert!(h.contains(&r.label()), "{}", r.label());
        }
        // A bar chart per step, the cumulative chart, a load chart per run.
        assert_eq!(h.matches("<svg").count(), 2 + 1 + e.runs.len());
        assert_eq!(h.matches("<svg").count(), h.matches("</svg>").count());
        assert!(h.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(!h.contains("a<b"));
        assert!(h.contains("node-b fails at 10 s &amp; returns"));
        assert!(h.contains("<tr class=\"pick\"><td>resilient / l4</td>"));
        let m = markdown(&e);
        assert!(m.starts_with("# Emulation: a<b & \"c\""));
        assert!(m.contains("| **resilient / l4** |"));
        assert!(m.contains("Charts (breakage per step"));
        assert!(m.contains("## What broke"));
        assert_eq!(m.matches("### ").count(), 2);
    }

    #[test]
    fn an_emulation_without_steps_still_reports() {
        let mut e = emulation("t");
        e.scenario.timeline.clear();
        for r in &mut e.runs {
            r.steps.clear();
            r.totals.breaks = 0;
        }
        let h = html(&e);
        assert_eq!(h.matches("<svg").count(), 1 + e.runs.len());
        assert_eq!(csv(&e).unwrap().iter().filter(|&&b| b == b'\n').count(), 0);
        assert!(verdict(&e)[0].starts_with("Every variant broke the same number"));
    }

    #[test]
    fn write_creates_the_four_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report");
        let e = emulation("t");
        let w = write(&e, &out).unwrap();
        for p in [&w.html, &w.markdown, &w.json, &w.csv] {
            assert!(p.starts_with(&out));
            assert!(std::fs::metadata(p).unwrap().len() > 0, "{}", p.display());
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&w.json).unwrap()).unwrap();
        assert_eq!(json["runs"].as_array().unwrap().len(), 3);
        assert_eq!(json["scenario"]["name"], "t");
        let csv = std::fs::read_to_string(&w.csv).unwrap();
        assert_eq!(csv.lines().count(), 1 + 3 * 2);
    }
}
