//! `ecmpd compare`: run every algorithm of a matrix on the same flow
//! populations and measure breakage, balance and cost, then write the report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dataplane::traffic::{Population as Traffic, TrafficError, TrafficModel, TrafficSpec};
use hashing::disrupt::{self, Change, Population};
use hashing::select::SelectError;
use hashing::{
    Algorithm, AnySelector, FieldSelection, FlowHasher, HashFields, HashFunction, Member, Selector,
    SelectorParams,
};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

pub mod chart;
pub mod report;

/// What to compare.
#[derive(Clone, Debug)]
pub struct Matrix {
    pub algorithms: Vec<Algorithm>,
    pub members: Vec<usize>,
    pub changes: Vec<Change>,
    pub traffic: Vec<TrafficModel>,
    pub fields: Vec<HashFields>,
    pub hashes: Vec<HashFunction>,
    pub symmetric: bool,
    pub flows: usize,
    pub seed: u64,
    pub params: SelectorParams,
}

impl Matrix {
    /// The embedded default: every algorithm, 2..64 members, every change,
    /// three synthetic traffic models, 3-tuple and 5-tuple hashing.
    pub fn default_matrix() -> Matrix {
        Matrix {
            algorithms: Algorithm::ALL.to_vec(),
            members: vec![2, 4, 8, 16, 32, 64],
            changes: Change::ALL.to_vec(),
            traffic: vec![
                TrafficModel::Uniform,
                TrafficModel::Cgnat { public_ips: 8 },
                TrafficModel::Zipf {
                    clients: 10_000,
                    exponent: 1.1,
                },
            ],
            fields: vec![HashFields::L3Proto, HashFields::L4],
            hashes: vec![HashFunction::Xxh3],
            symmetric: false,
            flows: DEFAULT_FLOWS,
            seed: 1,
            params: SelectorParams::default(),
        }
    }

    /// Settings that make some figures meaningless or noisy.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let largest = self.members.iter().copied().max().unwrap_or(1);
        let synthetic = self
            .traffic
            .iter()
            .any(|t| !matches!(t, TrafficModel::Pcap(_)));
        if synthetic && self.flows < 100 * largest {
            w.push(format!(
                "{} flows over {largest} members leave {:.0} flows per member: balance and breakage figures at that size are noisy (give --flows {} or more).",
                self.flows,
                self.flows as f64 / largest as f64,
                100 * largest
            ));
        }
        let buckets = self.params.resilient.buckets as usize;
        if self.algorithms.contains(&Algorithm::Resilient) && buckets < 2 * largest {
            w.push(format!(
                "A resilient group of {largest} members has only {buckets} buckets ({:.1} per member): shares are coarse{} (raise --buckets).",
                buckets as f64 / largest as f64,
                if buckets < largest { " and some members get no traffic at all" } else { "" }
            ));
        }
        let table = self.params.maglev_table_size as usize;
        if self.algorithms.contains(&Algorithm::Maglev) && table < 100 * largest {
            w.push(format!(
                "A Maglev table of {table} entries for {largest} members is under the paper's M >= 100 N: expect imbalance and extra disruption (raise --maglev-size to a prime of {} or more).",
                100 * largest
            ));
        }
        w
    }

    fn validate(&self) -> Result<(), CompareError> {
        let empty = |what: &str| {
            CompareError::Invalid(format!("the matrix has no {what}: give at least one"))
        };
        if self.algorithms.is_empty() {
            return Err(empty("algorithms"));
        }
        if self.members.is_empty() {
            return Err(empty("member counts"));
        }
        if self.changes.is_empty() {
            return Err(empty("changes"));
        }
        if self.traffic.is_empty() {
            return Err(empty("traffic models"));
        }
        if self.fields.is_empty() {
            return Err(empty("hash fields"));
        }
        if self.hashes.is_empty() {
            return Err(empty("hash functions"));
        }
        if let Some(bad) = self.members.iter().find(|&&n| n == 0 || n > MAX_MEMBERS) {
            return Err(CompareError::Invalid(format!(
                "member count {bad} is out of range: groups have 1 to {MAX_MEMBERS} members"
            )));
        }
        if self.flows < 100 {
            return Err(CompareError::Invalid(format!(
                "{} flows are too few for stable figures: give at least 100",
                self.flows
            )));
        }
        Ok(())
    }
}

/// Enough flows that a breakage fraction is stable to 0.5 point: for
/// independent flows the standard error is at most 0.5/sqrt(flows) = 0.16
/// point, so three standard errors stay under 0.5 point.
pub const DEFAULT_FLOWS: usize = 100_000;

/// The largest group the compare matrix accepts.
pub const MAX_MEMBERS: usize = 4096;

/// One figure of the matrix: an algorithm under one change, on one traffic,
/// hashed one way.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Record {
    pub algorithm: String,
    pub fields: String,
    pub hash: String,
    pub members: usize,
    pub change: String,
    pub traffic: String,
    /// Fraction of flows that broke.
    pub remapped: f64,
    /// Fraction of flows that broke because their member left.
    pub unavoidable: f64,
    /// Fraction of flows that broke although their member stayed.
    pub collateral: f64,
    /// Fraction of bytes carried by the flows that broke.
    pub remapped_bytes: f64,
    /// The least any algorithm must move for this change (theory).
    pub ideal: f64,
    /// Most loaded member over its fair share, before the change.
    pub balance_max_over_mean: f64,
    /// Coefficient of variation of the members' loads, before the change.
    pub balance_cv: f64,
    /// Median nanoseconds per lookup (select) on this machine.
    pub lookup_ns: f64,
    /// Median microseconds to build the selector for this group.
    pub build_us: f64,
    pub flows: usize,
}

/// Everything a comparison produced.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub ecmpd_version: &'static str,
    pub flows: usize,
    pub seed: u64,
    pub params: SelectorParams,
    pub symmetric: bool,
    pub traffic: Vec<TrafficSummary>,
    pub records: Vec<Record>,
    /// Every hash function on every traffic model and field selection.
    pub hash_quality: Vec<HashQuality>,
    /// Parts of the matrix whose figures a reader should not trust as they
    /// stand (too few flows per member, too few resilient buckets, ...).
    pub warnings: Vec<String>,
    pub elapsed_s: f64,
}

/// How evenly one hash function spreads one traffic model's flows, whatever
/// the algorithm: flow counts (not bytes, so heavy hitters do not mask the
/// hash) over N members, read through the low bits (`hash % N`, as modulo,
/// resilient buckets and Maglev read them) and the high bits (as
/// hash-threshold reads them).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HashQuality {
    pub hash: String,
    pub traffic: String,
    pub fields: String,
    pub members: usize,
    /// Distinct hash values among the flows.
    pub distinct_hashes: usize,
    pub low_bits_max_over_mean: f64,
    pub high_bits_max_over_mean: f64,
}

/// What each traffic model looked like.
#[derive(Clone, Debug, Serialize)]
pub struct TrafficSummary {
    pub name: String,
    pub flows: usize,
    pub distinct_sources: usize,
    pub top1pct_byte_share: f64,
}

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error("cannot build a {algorithm} group of {members}: {source}")]
    Select {
        algorithm: Algorithm,
        members: usize,
        source: SelectError,
    },
    #[error("cannot write the report to {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A traffic model's flows hashed one way: the input of every cell.
struct Hashed {
    traffic: String,
    fields: HashFields,
    hash: HashFunction,
    hashes: Vec<u32>,
    weights: Vec<u64>,
}

/// One cell of the matrix before it runs.
struct Cell<'a> {
    input: &'a Hashed,
    algorithm: Algorithm,
    members: usize,
    change: Change,
}

/// Check that the report can be written before spending minutes on it.
pub fn prepare_output(dir: &Path) -> Result<(), CompareError> {
    let fail = |source| CompareError::Output {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".ecmpd-write-test");
    std::fs::write(&probe, b"ok").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)?;
    Ok(())
}

/// Run the matrix. `progress` shows a bar on a terminal.
pub fn run(matrix: &Matrix, progress: bool) -> Result<Results, CompareError> {
    matrix.validate()?;
    let started = Instant::now();
    let populations = matrix
        .traffic
        .iter()
        .map(|model| {
            TrafficSpec {
                model: model.clone(),
                flows: matrix.flows,
                seed: matrix.seed,
                services: dataplane::traffic::default_services(),
                ipv6_share: 0.0,
            }
            .generate()
        })
        .collect::<Result<Vec<Traffic>, _>>()?;
    for p in &populations {
        tracing::info!(
            traffic = %p.name,
            flows = p.flows.len(),
            sources = p.stats.distinct_sources,
            "traffic ready"
        );
    }
    let summaries = populations.iter().map(summarise).collect();
    let hash_quality = hash_quality(matrix, &populations);

    let mut inputs = Vec::new();
    for population in &populations {
        let weights: Vec<u64> = population.flows.iter().map(|f| f.bytes).collect();
        for &fields in &matrix.fields {
            for &hash in &matrix.hashes {
                let hasher = FlowHasher::new(
                    hash,
                    FieldSelection::new(fields).symmetric(matrix.symmetric),
                    matrix.seed,
                );
                inputs.push(Hashed {
                    traffic: population.name.clone(),
                    fields,
                    hash,
                    hashes: population
                        .flows
                        .iter()
                        .map(|f| hasher.hash(&f.key))
                        .collect(),
                    weights: weights.clone(),
                });
            }
        }
    }

    let mut cells = Vec::new();
    for input in &inputs {
        for &algorithm in &matrix.algorithms {
            for &members in &matrix.members {
                for &change in &matrix.changes {
                    if change.applies_to(algorithm) {
                        cells.push(Cell {
                            input,
                            algorithm,
                            members,
                            change,
                        });
                    }
                }
            }
        }
    }

    tracing::info!(
        cells = cells.len(),
        "matrix ready; measuring lookup and build costs"
    );
    let costs = measure_costs(matrix, &inputs[0].hashes)?;

    let bar = if progress {
        let bar = ProgressBar::new(cells.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} comparing [{bar:40}] {pos}/{len} cells, {elapsed} elapsed, ~{eta} left",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let records = cells
        .par_iter()
        .map(|cell| {
            let record = run_cell(matrix, cell, &costs);
            tracing::debug!(
                algorithm = %cell.algorithm,
                members = cell.members,
                change = %cell.change,
                traffic = %cell.input.traffic,
                fields = %cell.input.fields,
                "cell done"
            );
            bar.inc(1);
            record
        })
        .collect::<Result<Vec<Record>, CompareError>>()?;
    bar.finish_and_clear();
    tracing::info!(
        records = records.len(),
        elapsed_s = started.elapsed().as_secs_f64(),
        "comparison done"
    );

    Ok(Results {
        ecmpd_version: env!("CARGO_PKG_VERSION"),
        flows: matrix.flows,
        seed: matrix.seed,
        params: matrix.params,
        symmetric: matrix.symmetric,
        traffic: summaries,
        records,
        hash_quality,
        warnings: matrix.warnings(),
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

fn group(n: usize) -> Vec<Member> {
    (1..=n as u32).map(Member::new).collect()
}

fn run_cell(matrix: &Matrix, cell: &Cell<'_>, costs: &Costs) -> Result<Record, CompareError> {
    let population = Population::new(&cell.input.hashes, &cell.input.weights);
    let wrap = |source| CompareError::Select {
        algorithm: cell.algorithm,
        members: cell.members,
        source,
    };
    let before =
        AnySelector::new(cell.algorithm, &matrix.params, &group(cell.members), 0).map_err(wrap)?;
    let balance = disrupt::balance(&before, population);
    let d = disrupt::analyse(
        cell.algorithm,
        &matrix.params,
        cell.change,
        cell.members,
        population,
    )
    .map_err(wrap)?
    .unwrap_or_default();
    let (lookup_ns, build_us) = costs.get(cell.algorithm, cell.members);
    Ok(Record {
        algorithm: cell.algorithm.name().to_string(),
        fields: cell.input.fields.to_string(),
        hash: cell.input.hash.name().to_string(),
        members: cell.members,
        change: cell.change.name().to_string(),
        traffic: cell.input.traffic.clone(),
        remapped: d.remapped,
        unavoidable: d.unavoidable,
        collateral: d.collateral,
        remapped_bytes: d.remapped_bytes,
        ideal: cell.change.ideal(cell.members),
        balance_max_over_mean: balance.max_over_mean,
        balance_cv: balance.cv,
        lookup_ns,
        build_us,
        flows: cell.input.hashes.len(),
    })
}

/// Lookup and build cost per (algorithm, members), measured one at a time so
/// that the parallel matrix does not disturb the timings.
struct Costs {
    entries: Vec<(Algorithm, usize, f64, f64)>,
}

impl Costs {
    fn get(&self, algorithm: Algorithm, members: usize) -> (f64, f64) {
        self.entries
            .iter()
            .find(|e| e.0 == algorithm && e.1 == members)
            .map(|e| (e.2, e.3))
            .unwrap_or((f64::NAN, f64::NAN))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure_costs(matrix: &Matrix, hashes: &[u32]) -> Result<Costs, CompareError> {
    const ROUNDS: usize = 5;
    let sample = &hashes[..hashes.len().min(20_000)];
    let mut entries = Vec::new();
    for &algorithm in &matrix.algorithms {
        for &members in &matrix.members {
            let wrap = |source| CompareError::Select {
                algorithm,
                members,
                source,
            };
            let mut builds = Vec::with_capacity(ROUNDS);
            let mut lookups = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                let t = Instant::now();
                let selector = AnySelector::new(algorithm, &matrix.params, &group(members), 0)
                    .map_err(wrap)?;
                builds.push(t.elapsed().as_secs_f64() * 1e6);
                let t = Instant::now();
                let mut acc = 0u64;
                for &h in sample {
                    acc = acc.wrapping_add(u64::from(
                        std::hint::black_box(&selector).select(h).unwrap_or(0),
                    ));
                }
                std::hint::black_box(acc);
                lookups.push(t.elapsed().as_secs_f64() * 1e9 / sample.len() as f64);
            }
            entries.push((algorithm, members, median(lookups), median(builds)));
        }
    }
    Ok(Costs { entries })
}

/// Busiest bin over the mean bin when `hashes` are binned by `bin`.
fn max_over_mean(hashes: &[u32], n: usize, bin: impl Fn(u32) -> usize) -> f64 {
    let mut counts = vec![0u64; n];
    for &h in hashes {
        counts[bin(h)] += 1;
    }
    let mean = hashes.len() as f64 / n as f64;
    counts.iter().copied().max().unwrap_or(0) as f64 / mean
}

fn hash_quality(matrix: &Matrix, populations: &[Traffic]) -> Vec<HashQuality> {
    let mut jobs = Vec::new();
    for p in populations {
        for &fields in &matrix.fields {
            for function in HashFunction::ALL {
                jobs.push((p, fields, function));
            }
        }
    }
    jobs.par_iter()
        .flat_map_iter(|&(p, fields, function)| {
            let hasher = FlowHasher::new(
                function,
                FieldSelection::new(fields).symmetric(matrix.symmetric),
                matrix.seed,
            );
            let hashes: Vec<u32> = p.flows.iter().map(|f| hasher.hash(&f.key)).collect();
            let mut distinct = hashes.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let distinct = distinct.len();
            matrix
                .members
                .iter()
                .map(move |&n| HashQuality {
                    hash: function.name().to_string(),
                    traffic: p.name.clone(),
                    fields: fields.to_string(),
                    members: n,
                    distinct_hashes: distinct,
                    low_bits_max_over_mean: max_over_mean(&hashes, n, |h| h as usize % n),
                    high_bits_max_over_mean: max_over_mean(&hashes, n, |h| {
                        ((u64::from(h) * n as u64) >> 32) as usize
                    }),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn summarise(p: &Traffic) -> TrafficSummary {
    let sources: std::collections::HashSet<_> = p.flows.iter().map(|f| f.key.src).collect();
    let mut bytes: Vec<u64> = p.flows.iter().map(|f| f.bytes).collect();
    bytes.sort_unstable_by(|a, b| b.cmp(a));
    let total: u128 = bytes.iter().map(|&b| u128::from(b)).sum();
    let top = bytes.len().div_ceil(100);
    let top_sum: u128 = bytes[..top].iter().map(|&b| u128::from(b)).sum();
    TrafficSummary {
        name: p.name.clone(),
        flows: p.flows.len(),
        distinct_sources: sources.len(),
        top1pct_byte_share: if total == 0 {
            0.0
        } else {
            top_sum as f64 / total as f64
        },
    }
}
