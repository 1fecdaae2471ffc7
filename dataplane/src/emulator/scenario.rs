//! Scenario files: what `ecmpd emulate` runs. A scenario is one TOML file;
//! `testbed/scenarios/README.md` documents every field with an example.
//! Errors name the line and the field at fault.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use hashing::{Algorithm, HashFields, HashFunction, Nanos, SelectorParams};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Nanoseconds per second.
pub const SEC: Nanos = 1_000_000_000;

/// Most connections a scenario may open in total (arrivals plus open at start).
pub const MAX_CONNECTIONS: u64 = 2_000_000;

/// Most packets a scenario may send, per variant (as estimated from its
/// traffic model before running).
pub const MAX_PACKETS: u64 = 200_000_000;

/// A bad scenario: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    /// The file, if the scenario came from one.
    pub file: Option<PathBuf>,
    /// 1-based line of the fault, when known.
    pub line: Option<usize>,
    /// The field at fault, as a dotted path (`event[2].node`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

/// A duration written as `"30s"`, `"250ms"`, `"2m"`, `"1h"`, `"10us"`,
/// `"0"` (units may be combined: `"1m30s"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Duration(pub Nanos);

impl Duration {
    /// In seconds.
    pub fn secs(self) -> f64 {
        self.0 as f64 / SEC as f64
    }

    /// Parses `"1m30s"`-style text.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let t = s.trim();
        if t == "0" {
            return Ok(Duration(0));
        }
        let mut total: u128 = 0;
        let mut rest = t;
        if rest.is_empty() {
            return Err("an empty duration".into());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("`{t}` has no unit (write e.g. `{t}s` or `{t}ms`)"))?;
            if digits == 0 {
                return Err(format!("`{t}` is not a duration (e.g. `30s`, `250ms`)"));
            }
            let value: f64 = rest[..digits]
                .parse()
                .map_err(|_| format!("`{}` is not a number", &rest[..digits]))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale: f64 = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" | "min" => 60e9,
                "h" => 3600e9,
                u => {
                    return Err(format!(
                        "unknown unit `{u}` in `{t}` (use ns, us, ms, s, m or h)"
                    ))
                }
            };
            rest = &rest[unit_len..];
            total += (value * scale).round() as u128;
        }
        u64::try_from(total)
            .map(Duration)
            .map_err(|_| format!("`{t}` is too long"))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns == 0 {
            write!(f, "0s")
        } else if ns % SEC == 0 {
            write!(f, "{}s", ns / SEC)
        } else if ns % 1_000_000 == 0 {
            write!(f, "{}ms", ns / 1_000_000)
        } else {
            write!(f, "{}us", ns / 1_000)
        }
    }
}

/// A random duration: a fixed value (written as a plain string, `"30s"`) or
/// a distribution table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Distribution {
    /// Always this long.
    Fixed(Duration),
    /// A distribution, see [`DistributionSpec`].
    Spec(DistributionSpec),
}

impl<'de> Deserialize<'de> for Distribution {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Duration::parse(&s).map(Distribution::Fixed).map_err(D::Error::custom),
            v @ toml::Value::Table(_) => v
                .try_into::<DistributionSpec>()
                .map(Distribution::Spec)
                .map_err(|e| D::Error::custom(e.message().trim())),
            other => Err(D::Error::custom(format!(
                "expected a duration such as \"30s\" or a table such as {{ distribution = \"exponential\", mean = \"1s\" }}, found {}",
                other.type_str()
            ))),
        }
    }
}

/// A duration distribution.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "distribution", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DistributionSpec {
    /// `{ distribution = "fixed", value = "30s" }`
    Fixed { value: Duration },
    /// `{ distribution = "exponential", mean = "30s" }`: memoryless.
    Exponential { mean: Duration },
    /// `{ distribution = "lognormal", median = "30s", sigma = 1.0 }`.
    Lognormal { median: Duration, sigma: f64 },
    /// `{ distribution = "pareto", min = "5s", shape = 1.5 }`: heavy tailed.
    Pareto { min: Duration, shape: f64 },
    /// `{ distribution = "uniform", min = "10s", max = "60s" }`.
    Uniform { min: Duration, max: Duration },
}

impl Distribution {
    /// The distribution's mean in nanoseconds (infinite Pareto means are
    /// capped at 100 x min).
    pub fn mean(&self) -> f64 {
        match self {
            Distribution::Fixed(d) | Distribution::Spec(DistributionSpec::Fixed { value: d }) => {
                d.0 as f64
            }
            Distribution::Spec(DistributionSpec::Exponential { mean }) => mean.0 as f64,
            Distribution::Spec(DistributionSpec::Lognormal { median, sigma }) => {
                median.0 as f64 * (sigma * sigma / 2.0).exp()
            }
            Distribution::Spec(DistributionSpec::Pareto { min, shape }) => {
                if *shape > 1.0 {
                    (min.0 as f64 * shape / (shape - 1.0)).min(min.0 as f64 * 100.0)
                } else {
                    min.0 as f64 * 100.0
                }
            }
            Distribution::Spec(DistributionSpec::Uniform { min, max }) => {
                (min.0 as f64 + max.0 as f64) / 2.0
            }
        }
    }

    /// A sample for `u` uniform in (0, 1) and `z` standard normal.
    pub fn sample(&self, u: f64, z: f64) -> Nanos {
        let v = match self {
            Distribution::Fixed(d) | Distribution::Spec(DistributionSpec::Fixed { value: d }) => {
                d.0 as f64
            }
            Distribution::Spec(DistributionSpec::Exponential { mean }) => -(mean.0 as f64) * u.ln(),
            Distribution::Spec(DistributionSpec::Lognormal { median, sigma }) => {
                median.0 as f64 * (sigma * z).exp()
            }
            Distribution::Spec(DistributionSpec::Pareto { min, shape }) => {
                min.0 as f64 / u.powf(1.0 / shape)
            }
            Distribution::Spec(DistributionSpec::Uniform { min, max }) => {
                min.0 as f64 + (max.0 as f64 - min.0 as f64) * u
            }
        };
        if v.is_finite() && v > 0.0 {
            v.min(u64::MAX as f64 / 4.0) as Nanos
        } else {
            0
        }
    }

    fn check(&self, field: &str) -> Result<(), String> {
        let positive = |d: &Duration, name: &str| {
            if d.0 == 0 {
                Err(format!("{field}.{name} must be more than 0"))
            } else {
                Ok(())
            }
        };
        match self {
            Distribution::Fixed(d) | Distribution::Spec(DistributionSpec::Fixed { value: d }) => {
                positive(d, "value")
            }
            Distribution::Spec(DistributionSpec::Exponential { mean }) => positive(mean, "mean"),
            Distribution::Spec(DistributionSpec::Lognormal { median, sigma }) => {
                positive(median, "median")?;
                if !(0.0..=4.0).contains(sigma) {
                    return Err(format!("{field}.sigma must be in 0..=4, not {sigma}"));
                }
                Ok(())
            }
            Distribution::Spec(DistributionSpec::Pareto { min, shape }) => {
                positive(min, "min")?;
                if !(*shape > 0.0 && shape.is_finite()) {
                    return Err(format!("{field}.shape must be more than 0, not {shape}"));
                }
                Ok(())
            }
            Distribution::Spec(DistributionSpec::Uniform { min, max }) => {
                positive(max, "max")?;
                if min > max {
                    return Err(format!("{field}.min ({min}) is more than max ({max})"));
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Fixed(d) | Distribution::Spec(DistributionSpec::Fixed { value: d }) => {
                write!(f, "{d}")
            }
            Distribution::Spec(DistributionSpec::Exponential { mean }) => {
                write!(f, "exponential, mean {mean}")
            }
            Distribution::Spec(DistributionSpec::Lognormal { median, sigma }) => {
                write!(f, "log-normal, median {median}, sigma {sigma}")
            }
            Distribution::Spec(DistributionSpec::Pareto { min, shape }) => {
                write!(f, "Pareto, min {min}, shape {shape}")
            }
            Distribution::Spec(DistributionSpec::Uniform { min, max }) => {
                write!(f, "uniform {min}..{max}")
            }
        }
    }
}

/// A node (a Kubernetes node running a speaker): a nexthop of the services
/// it backs.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique name, used by services and events.
    pub name: String,
    /// The node's address: the BGP next hop the router forwards to.
    pub address: IpAddr,
    /// Relative weight where the algorithm takes weights (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// A LoadBalancer service IP and the nodes announcing it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service IP (a /32 or /128 route).
    pub address: IpAddr,
    /// Nodes behind it, by name; every node when absent.
    #[serde(default)]
    pub nodes: Option<Vec<Spanned<String>>>,
}

/// What algorithms and hash settings to compare.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashingSpec {
    /// Algorithm names (`modulo`, `hash-threshold`, `resilient`, `maglev`,
    /// `rendezvous`, `jump`, `ring`, `dxhash`, `anchor`), or `["all"]`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Spanned<Vec<String>>,
    /// Field selections: `l4` (5-tuple), `l3-proto` (3-tuple), `l3`, or a
    /// custom list such as `src-ip+dst-ip+dst-port`.
    #[serde(default = "default_fields")]
    pub fields: Spanned<Vec<String>>,
    /// The hash function (default `xxh3`).
    #[serde(default = "default_function")]
    pub function: Spanned<String>,
    /// The router's hash seed (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Resilient groups: buckets (default 128).
    #[serde(default = "default_buckets")]
    pub resilient_buckets: u32,
    /// Resilient groups: a bucket unused this long may move (default 120s,
    /// Linux's default).
    #[serde(default = "default_idle")]
    pub resilient_idle_timer: Duration,
    /// Resilient groups: after this long unbalanced, busy buckets move too;
    /// `0` = never (Linux's default).
    #[serde(default = "zero")]
    pub resilient_unbalanced_timer: Duration,
    /// Maglev: lookup-table size, a prime (default 65537).
    #[serde(default = "default_maglev")]
    pub maglev_table_size: u32,
}

fn default_algorithms() -> Spanned<Vec<String>> {
    Spanned::new(
        0..0,
        [
            "modulo",
            "hash-threshold",
            "resilient",
            "maglev",
            "rendezvous",
        ]
        .map(String::from)
        .to_vec(),
    )
}

fn default_fields() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["l4".to_string()])
}

fn default_function() -> Spanned<String> {
    Spanned::new(0..0, "xxh3".to_string())
}

fn default_buckets() -> u32 {
    128
}

fn default_idle() -> Duration {
    Duration(120 * SEC)
}

fn zero() -> Duration {
    Duration(0)
}

fn default_maglev() -> u32 {
    65_537
}

impl Default for HashingSpec {
    fn default() -> Self {
        HashingSpec {
            algorithms: default_algorithms(),
            fields: default_fields(),
            function: default_function(),
            seed: 0,
            resilient_buckets: default_buckets(),
            resilient_idle_timer: default_idle(),
            resilient_unbalanced_timer: zero(),
            maglev_table_size: default_maglev(),
        }
    }
}

/// Where connections come from and how they behave.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    /// `uniform`, `cgnat`, `zipf` or `pcap` (see [`crate::traffic::TrafficModel`]).
    #[serde(default = "default_model")]
    pub model: Spanned<String>,
    /// New connections per second (a Poisson process); 0 for none.
    #[serde(default = "default_arrivals")]
    pub arrivals: f64,
    /// Connections already open at time 0 (their remaining lifetime drawn
    /// from `duration`).
    #[serde(default)]
    pub open_at_start: u64,
    /// How long a connection lasts.
    #[serde(default = "default_duration")]
    pub duration: Distribution,
    /// The gap between two packets of a connection (client to service).
    #[serde(default = "default_interval")]
    pub packet_interval: Distribution,
    /// Share of connections over IPv6 (needs an IPv6 service), 0..=1.
    #[serde(default)]
    pub ipv6_share: f64,
    /// `cgnat`: the NAT's public addresses (default 8).
    #[serde(default)]
    pub public_ips: Option<u32>,
    /// `zipf`: distinct clients (default 10,000).
    #[serde(default)]
    pub clients: Option<u32>,
    /// `zipf`: popularity exponent (default 1.1).
    #[serde(default)]
    pub exponent: Option<f64>,
    /// `pcap`: the capture to replay, relative to the scenario file.
    #[serde(default)]
    pub file: Option<Spanned<PathBuf>>,
    /// `pcap`: most flows read from the capture (default 100,000).
    #[serde(default)]
    pub max_flows: Option<usize>,
}

fn default_model() -> Spanned<String> {
    Spanned::new(0..0, "uniform".to_string())
}

fn default_arrivals() -> f64 {
    100.0
}

fn default_duration() -> Distribution {
    Distribution::Spec(DistributionSpec::Lognormal {
        median: Duration(20 * SEC),
        sigma: 1.0,
    })
}

fn default_interval() -> Distribution {
    Distribution::Spec(DistributionSpec::Exponential {
        mean: Duration(SEC),
    })
}

impl Default for TrafficSpec {
    fn default() -> Self {
        TrafficSpec {
            model: default_model(),
            arrivals: default_arrivals(),
            open_at_start: 0,
            duration: default_duration(),
            packet_interval: default_interval(),
            ipv6_share: 0.0,
            public_ips: None,
            clients: None,
            exponent: None,
            file: None,
            max_flows: None,
        }
    }
}

/// The flow tracker's settings (the live measurement the emulator checks
/// against its exact count).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerSpec {
    /// A flow silent this long is forgotten (default 120s).
    #[serde(default = "default_tracker_idle")]
    pub idle_timeout: Duration,
    /// Flows the table holds (default 1,048,576).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
}

fn default_tracker_idle() -> Duration {
    Duration(120 * SEC)
}

fn default_capacity() -> usize {
    1 << 20
}

impl Default for TrackerSpec {
    fn default() -> Self {
        TrackerSpec {
            idle_timeout: default_tracker_idle(),
            capacity: default_capacity(),
        }
    }
}

/// What happens at an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The node withdraws its routes (speaker stopped, node drained or dead).
    Down,
    /// The node announces its routes again.
    Up,
    /// Down, then up `down_for` later.
    Flap,
    /// The node's weight becomes `weight`.
    Weight,
}

/// One timeline entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// When, from the start of the run.
    pub at: Spanned<Duration>,
    /// `down`, `up`, `flap` or `weight`.
    pub kind: EventKind,
    /// The node concerned.
    pub node: Spanned<String>,
    /// Services concerned; every service the node backs when absent.
    #[serde(default)]
    pub services: Option<Vec<Spanned<IpAddr>>>,
    /// `flap`: how long the node stays down.
    #[serde(default)]
    pub down_for: Option<Duration>,
    /// `weight`: the new weight (>= 1).
    #[serde(default)]
    pub weight: Option<u32>,
    /// A label for reports (default: "<node> <kind>").
    #[serde(default)]
    pub label: Option<String>,
}

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    #[serde(default)]
    description: String,
    duration: Spanned<Duration>,
    #[serde(default = "default_sample")]
    sample: Spanned<Duration>,
    #[serde(default)]
    seed: u64,
    #[serde(default, rename = "node")]
    nodes: Vec<Spanned<Node>>,
    #[serde(default, rename = "service")]
    services: Vec<Spanned<Service>>,
    #[serde(default)]
    hashing: HashingSpec,
    #[serde(default)]
    traffic: TrafficSpec,
    #[serde(default)]
    tracker: TrackerSpec,
    #[serde(default, rename = "event")]
    events: Vec<EventSpec>,
}

fn default_sample() -> Spanned<Duration> {
    Spanned::new(0..0, Duration(SEC))
}

/// One comparison run: an algorithm with a field selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    pub algorithm: Algorithm,
    pub fields: HashFields,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.algorithm, self.fields)
    }
}

/// A timeline change, after expanding flaps: at `time`, `node` leaves
/// (`weight: None`) or is (re)announced with `weight` in `services`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Index in [`Scenario::steps`].
    pub index: usize,
    pub time: Nanos,
    /// The node's index in [`Scenario::nodes`].
    pub node: usize,
    /// Service indexes concerned.
    pub services: Vec<usize>,
    /// `None`: the node withdraws; `Some(w)`: it is present with weight `w`.
    pub weight: Option<u32>,
    /// For reports: `node-b down`, `node-b up (flap)`, ...
    pub label: String,
    /// What kind of change this was.
    pub kind: &'static str,
}

/// A checked scenario, ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where it was read from (for relative paths and messages).
    pub path: Option<PathBuf>,
    pub duration: Nanos,
    /// Load sampling interval; also how often resilient groups' upkeep runs.
    pub sample: Nanos,
    pub seed: u64,
    pub nodes: Vec<Node>,
    /// Each service's address and its initial node indexes.
    pub services: Vec<(IpAddr, Vec<usize>)>,
    pub variants: Vec<Variant>,
    pub function: HashFunction,
    pub hash_seed: u64,
    pub params: SelectorParams,
    pub traffic: TrafficSpec,
    pub tracker: TrackerSpec,
    /// The timeline, flaps expanded, in time order.
    pub steps: Vec<Step>,
}

/// 1-based line of byte offset `at` in `src`.
fn line_of(src: &str, at: usize) -> usize {
    src.as_bytes()[..at.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Ctx<'a> {
    src: &'a str,
    path: Option<&'a Path>,
}

impl Ctx<'_> {
    fn err(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let field = field.into();
        let line = span
            .filter(|s| s.end > 0)
            .map(|s| line_of(self.src, s.start))
            .or_else(|| line_of_field(self.src, &field));
        ScenarioError {
            file: self.path.map(Path::to_path_buf),
            line,
            field,
            message: message.into(),
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let src = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: Some(path.to_path_buf()),
            line: None,
            field: String::new(),
            message: format!("cannot read the scenario: {e}"),
        })?;
        Scenario::parse(&src, Some(path))
    }

    /// Parses and checks scenario text; `path` is used in messages and to
    /// resolve a relative capture path.
    pub fn parse(src: &str, path: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let ctx = Ctx { src, path };
        let file: File = toml::from_str(src).map_err(|e| {
            let field = e
                .span()
                .and_then(|sp| field_at(src, sp.start))
                .unwrap_or_default();
            ctx.err(e.span(), field, e.message().trim().to_string())
        })?;
        check(file, &ctx)
    }
}

/// The line where `field` (`traffic.arrivals`, `event[1]`) is written, if
/// it is.
fn line_of_field(src: &str, field: &str) -> Option<usize> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut table = String::new();
    for (i, l) in src.lines().enumerate() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim();
            let n = counts.entry(name).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        } else if let Some((k, _)) = l.split_once('=') {
            let k = k.trim().trim_matches('"');
            let path = if table.is_empty() {
                k.to_string()
            } else {
                format!("{table}.{k}")
            };
            if path == field {
                return Some(i + 1);
            }
            continue;
        } else {
            continue;
        }
        if table == field {
            return Some(i + 1);
        }
    }
    None
}

/// The dotted path of the key written on the line holding byte `at`
/// (`traffic.arrivals`, `event[1].kind`), from the line's `key =` and the
/// nearest table header above it.
fn field_at(src: &str, at: usize) -> Option<String> {
    let at = at.min(src.len());
    let start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = src[start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut table: Option<String> = None;
    for l in src[..start].lines() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim();
            let n = counts.entry(name).or_insert(0);
            table = Some(format!("{name}[{n}]"));
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = Some(name.trim().to_string());
        }
    }
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

fn check(file: File, ctx: &Ctx<'_>) -> Result<Scenario, ScenarioError> {
    let name = file.name.clone().unwrap_or_else(|| {
        ctx.path
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".to_string())
    });
    let duration = file.duration.get_ref().0;
    if duration == 0 || duration > 24 * 3600 * SEC {
        return Err(ctx.err(
            Some(file.duration.span()),
            "duration",
            "must be more than 0 and at most 24h",
        ));
    }
    let sample = file.sample.get_ref().0;
    if sample < 1_000_000 || duration / sample > 100_000 {
        return Err(ctx.err(
            Some(file.sample.span()),
            "sample",
            format!(
                "must be at least 1ms and at most 100,000 samples per run ({} over {})",
                Duration(sample),
                Duration(duration)
            ),
        ));
    }

    // Nodes.
    if file.nodes.is_empty() {
        return Err(ctx.err(None, "node", "a scenario needs at least one [[node]]"));
    }
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut addrs = HashSet::new();
    for (i, n) in file.nodes.iter().enumerate() {
        let node = n.get_ref();
        let field = format!("node[{i}]");
        if node.name.is_empty() {
            return Err(ctx.err(Some(n.span()), format!("{field}.name"), "is empty"));
        }
        if by_name.insert(node.name.as_str(), i).is_some() {
            return Err(ctx.err(
                Some(n.span()),
                format!("{field}.name"),
                format!("a node named `{}` is already defined", node.name),
            ));
        }
        if !addrs.insert(node.address) {
            return Err(ctx.err(
                Some(n.span()),
                format!("{field}.address"),
                format!("{} is already another node's address", node.address),
            ));
        }
        if node.weight == 0 {
            return Err(ctx.err(
                Some(n.span()),
                format!("{field}.weight"),
                "must be at least 1",
            ));
        }
    }
    let node_names = || {
        file.nodes
            .iter()
            .map(|n| n.get_ref().name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let node_index = |name: &Spanned<String>, field: String| {
        by_name
            .get(name.get_ref().as_str())
            .copied()
            .ok_or_else(|| {
                ctx.err(
                    Some(name.span()),
                    field,
                    format!(
                        "no node named `{}` (nodes: {})",
                        name.get_ref(),
                        node_names()
                    ),
                )
            })
    };

    // Services.
    if file.services.is_empty() {
        return Err(ctx.err(None, "service", "a scenario needs at least one [[service]]"));
    }
    let mut services = Vec::new();
    let mut seen = HashSet::new();
    for (i, s) in file.services.iter().enumerate() {
        let svc = s.get_ref();
        if !seen.insert(svc.address) {
            return Err(ctx.err(
                Some(s.span()),
                format!("service[{i}].address"),
                format!("{} is defined twice", svc.address),
            ));
        }
        if svc.address.is_unspecified() || svc.address.is_multicast() || svc.address.is_loopback() {
            return Err(ctx.err(
                Some(s.span()),
                format!("service[{i}].address"),
                format!("{} cannot be a service address", svc.address),
            ));
        }
        let nodes = match &svc.nodes {
            None => (0..file.nodes.len()).collect(),
            Some(list) => {
                let mut v = Vec::new();
                for (j, n) in list.iter().enumerate() {
                    let idx = node_index(n, format!("service[{i}].nodes[{j}]"))?;
                    if v.contains(&idx) {
                        return Err(ctx.err(
                            Some(n.span()),
                            format!("service[{i}].nodes[{j}]"),
                            format!("`{}` is listed twice", n.get_ref()),
                        ));
                    }
                    v.push(idx);
                }
                v
            }
        };
        services.push((svc.address, nodes));
    }

    // Hashing.
    let h = &file.hashing;
    let mut algorithms = Vec::new();
    for a in h.algorithms.get_ref() {
        if a == "all" {
            algorithms.extend(Algorithm::ALL);
            continue;
        }
        let alg: Algorithm = a.parse().map_err(|e| {
            ctx.err(
                Some(h.algorithms.span()),
                "hashing.algorithms",
                format!("{e}"),
            )
        })?;
        algorithms.push(alg);
    }
    algorithms.dedup();
    if algorithms.is_empty() {
        return Err(ctx.err(Some(h.algorithms.span()), "hashing.algorithms", "is empty"));
    }
    let mut fields = Vec::new();
    for f in h.fields.get_ref() {
        let hf: HashFields = f
            .parse()
            .map_err(|e| ctx.err(Some(h.fields.span()), "hashing.fields", format!("{e}")))?;
        fields.push(hf);
    }
    if fields.is_empty() {
        return Err(ctx.err(Some(h.fields.span()), "hashing.fields", "is empty"));
    }
    let function: HashFunction = h
        .function
        .get_ref()
        .parse()
        .map_err(|e| ctx.err(Some(h.function.span()), "hashing.function", format!("{e}")))?;
    let mut params = SelectorParams::default();
    params.resilient.buckets = h.resilient_buckets;
    params.resilient.idle_timer = h.resilient_idle_timer.0;
    params.resilient.unbalanced_timer = h.resilient_unbalanced_timer.0;
    params.maglev_table_size = h.maglev_table_size;
    params.seed = h.seed;
    let mut variants = Vec::new();
    for &f in &fields {
        for &a in &algorithms {
            let v = Variant {
                algorithm: a,
                fields: f,
            };
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
    }
    // Build each algorithm once to check its parameters (the table size, the
    // bucket count, weights).
    for &a in &algorithms {
        let members: Vec<hashing::Member> = file
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let w = if a.supports_weights() {
                    n.get_ref().weight
                } else {
                    1
                };
                hashing::Member::weighted(i as u32, w)
            })
            .collect();
        if let Err(e) = hashing::AnySelector::new(a, &params, &members, 0) {
            return Err(ctx.err(None, "hashing", format!("{a}: {e}")));
        }
    }

    // Traffic.
    let t = &file.traffic;
    let model = t.model.get_ref().as_str();
    let tfield = |f: &str| format!("traffic.{f}");
    match model {
        "uniform" | "cgnat" | "zipf" => {
            if t.file.is_some() {
                return Err(ctx.err(
                    Some(t.model.span()),
                    "traffic.file",
                    format!("only the pcap model reads a file (model is `{model}`)"),
                ));
            }
        }
        "pcap" => {
            if t.file.is_none() {
                return Err(ctx.err(
                    Some(t.model.span()),
                    "traffic.file",
                    "the pcap model needs `file = \"capture.pcap\"`",
                ));
            }
        }
        other => {
            return Err(ctx.err(
                Some(t.model.span()),
                "traffic.model",
                format!("unknown model `{other}` (uniform, cgnat, zipf or pcap)"),
            ))
        }
    }
    if !(t.arrivals.is_finite() && t.arrivals >= 0.0) {
        return Err(ctx.err(
            None,
            tfield("arrivals"),
            "must be 0 or more connections per second",
        ));
    }
    if !(0.0..=1.0).contains(&t.ipv6_share) {
        return Err(ctx.err(None, tfield("ipv6_share"), "must be in 0..=1"));
    }
    let has_v6 = services.iter().any(|(a, _)| a.is_ipv6());
    let has_v4 = services.iter().any(|(a, _)| a.is_ipv4());
    if t.ipv6_share > 0.0 && !has_v6 {
        return Err(ctx.err(
            None,
            tfield("ipv6_share"),
            "is above 0 but no service is IPv6",
        ));
    }
    if t.ipv6_share < 1.0 && !has_v4 && model != "pcap" {
        return Err(ctx.err(
            None,
            tfield("ipv6_share"),
            "is below 1 but no service is IPv4 (set ipv6_share = 1.0)",
        ));
    }
    t.duration
        .check(&tfield("duration"))
        .map_err(|m| ctx.err(None, tfield("duration"), m))?;
    t.packet_interval
        .check(&tfield("packet_interval"))
        .map_err(|m| ctx.err(None, tfield("packet_interval"), m))?;
    if model != "pcap" {
        let connections = (t.arrivals * duration as f64 / SEC as f64) as u64 + t.open_at_start;
        if connections == 0 {
            return Err(ctx.err(
                None,
                tfield("arrivals"),
                "the scenario opens no connection (set arrivals or open_at_start)",
            ));
        }
        if connections > MAX_CONNECTIONS {
            return Err(ctx.err(
                None,
                tfield("arrivals"),
                format!(
                    "about {connections} connections in total; at most {MAX_CONNECTIONS} are allowed"
                ),
            ));
        }
        let life = t.duration.mean().min(duration as f64);
        let packets = connections as f64 * (1.0 + life / t.packet_interval.mean().max(1.0));
        if packets > MAX_PACKETS as f64 {
            return Err(ctx.err(
                None,
                tfield("packet_interval"),
                format!(
                    "about {packets:.0} packets per run; at most {MAX_PACKETS} are allowed (send less often or open fewer connections)"
                ),
            ));
        }
    }
    for (name, v) in [
        ("public_ips", t.public_ips.map(u64::from)),
        ("clients", t.clients.map(u64::from)),
    ] {
        if v == Some(0) {
            return Err(ctx.err(None, tfield(name), "must be at least 1"));
        }
    }
    let mut traffic = t.clone();
    if let Some(f) = &t.file {
        let p = f.get_ref();
        let resolved = match ctx.path.and_then(Path::parent) {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.clone(),
        };
        traffic.file = Some(Spanned::new(f.span(), resolved));
    }

    // Tracker.
    if file.tracker.capacity == 0 {
        return Err(ctx.err(None, "tracker.capacity", "must be at least 1"));
    }
    if file.tracker.idle_timeout.0 == 0 {
        return Err(ctx.err(None, "tracker.idle_timeout", "must be more than 0"));
    }

    // Events.
    let mut steps: Vec<Step> = Vec::new();
    for (i, e) in file.events.iter().enumerate() {
        let field = |f: &str| format!("event[{i}].{f}");
        let at = e.at.get_ref().0;
        if at >= duration {
            return Err(ctx.err(
                Some(e.at.span()),
                field("at"),
                format!(
                    "{} is not before the end of the run ({})",
                    Duration(at),
                    Duration(duration)
                ),
            ));
        }
        let node = node_index(&e.node, field("node"))?;
        let backs: Vec<usize> = services
            .iter()
            .enumerate()
            .filter(|(_, (_, nodes))| nodes.contains(&node))
            .map(|(s, _)| s)
            .collect();
        let svc = match &e.services {
            None => {
                if backs.is_empty() {
                    return Err(ctx.err(
                        Some(e.node.span()),
                        field("node"),
                        format!(
                            "`{}` backs no service at the start; name the services it joins with `services = [\"...\"]`",
                            e.node.get_ref()
                        ),
                    ));
                }
                backs
            }
            Some(list) => {
                let mut v = Vec::new();
                for (j, a) in list.iter().enumerate() {
                    let Some(s) = services.iter().position(|(addr, _)| addr == a.get_ref()) else {
                        return Err(ctx.err(
                            Some(a.span()),
                            format!("event[{i}].services[{j}]"),
                            format!("no service has address {}", a.get_ref()),
                        ));
                    };
                    if !v.contains(&s) {
                        v.push(s);
                    }
                }
                v
            }
        };
        let node_name = &file.nodes[node].get_ref().name;
        let weight = file.nodes[node].get_ref().weight;
        let label = |what: &str| {
            e.label
                .clone()
                .unwrap_or_else(|| format!("{node_name} {what}"))
        };
        let for_kind = |f: &str, allowed: EventKind, present: bool| {
            if present && e.kind != allowed {
                Err(ctx.err(
                    Some(e.at.span()),
                    field(f),
                    format!("only a `{}` event takes `{f}`", kind_name(allowed)),
                ))
            } else {
                Ok(())
            }
        };
        for_kind("down_for", EventKind::Flap, e.down_for.is_some())?;
        for_kind("weight", EventKind::Weight, e.weight.is_some())?;
        let mut push = |time, weight, label: String, kind| {
            steps.push(Step {
                index: 0,
                time,
                node,
                services: svc.clone(),
                weight,
                label,
                kind,
            })
        };
        match e.kind {
            EventKind::Down => push(at, None, label("down"), "down"),
            EventKind::Up => push(at, Some(weight), label("up"), "up"),
            EventKind::Flap => {
                let Some(d) = e.down_for.filter(|d| d.0 > 0) else {
                    return Err(ctx.err(
                        Some(e.at.span()),
                        field("down_for"),
                        "a flap needs `down_for = \"5s\"` (more than 0)",
                    ));
                };
                push(at, None, format!("{} (down)", label("flap")), "down");
                let up = at.saturating_add(d.0);
                if up < duration {
                    push(up, Some(weight), format!("{} (up)", label("flap")), "up");
                }
            }
            EventKind::Weight => {
                let Some(w) = e.weight.filter(|&w| w > 0) else {
                    return Err(ctx.err(
                        Some(e.at.span()),
                        field("weight"),
                        "a weight event needs `weight = N` (at least 1)",
                    ));
                };
                push(at, Some(w), label(&format!("weight {w}")), "weight");
            }
        }
    }
    steps.sort_by_key(|s| s.time);
    for (i, s) in steps.iter_mut().enumerate() {
        s.index = i;
    }

    Ok(Scenario {
        name,
        description: file.description.trim().to_string(),
        path: ctx.path.map(Path::to_path_buf),
        duration,
        sample,
        seed: file.seed,
        nodes: file.nodes.into_iter().map(Spanned::into_inner).collect(),
        services,
        variants,
        function,
        hash_seed: h.seed,
        params,
        traffic,
        tracker: file.tracker,
        steps,
    })
}

fn kind_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Down => "down",
        EventKind::Up => "up",
        EventKind::Flap => "flap",
        EventKind::Weight => "weight",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
duration = "60s"

[[node]]
name = "a"
address = "192.0.2.1"

[[node]]
name = "b"
address = "192.0.2.2"

[[service]]
address = "203.0.113.10"

[[event]]
at = "10s"
kind = "flap"
node = "b"
down_for = "5s"
"#;

    #[test]
    fn durations_parse() {
        assert_eq!(Duration::parse("30s"), Ok(Duration(30 * SEC)));
        assert_eq!(Duration::parse("1m30s"), Ok(Duration(90 * SEC)));
        assert_eq!(Duration::parse("250ms"), Ok(Duration(250_000_000)));
        assert_eq!(Duration::parse("1.5s"), Ok(Duration(1_500_000_000)));
        assert_eq!(Duration::parse("0"), Ok(Duration(0)));
        assert!(Duration::parse("30").unwrap_err().contains("no unit"));
        assert!(Duration::parse("3d").unwrap_err().contains("unknown unit"));
        assert!(Duration::parse("").is_err());
        assert!(Duration::parse("s").is_err());
    }

    #[test]
    fn a_good_scenario_expands_flaps_and_defaults() {
        let s = Scenario::parse(GOOD, None).unwrap();
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.steps[0].weight, None);
        assert_eq!(s.steps[1].time, 15 * SEC);
        assert_eq!(s.steps[1].weight, Some(1));
        assert_eq!(s.services[0].1, vec![0, 1]);
        assert_eq!(s.variants.len(), 5);
        assert_eq!(s.params.resilient.idle_timer, 120 * SEC);
    }

    fn err(src: &str) -> ScenarioError {
        Scenario::parse(src, Some(Path::new("x.toml"))).unwrap_err()
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let e = err(&GOOD.replace("node = \"b\"", "node = \"c\""));
        assert_eq!(e.field, "event[0].node");
        assert_eq!(e.line, Some(19));
        assert!(
            e.to_string()
                .starts_with("x.toml:19: event[0].node: no node named `c`"),
            "{e}"
        );

        let e = err(&GOOD.replace("duration = \"60s\"", "duration = \"60\""));
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("no unit"), "{e}");

        let e = err(&GOOD.replace("address = \"192.0.2.2\"", "address = \"192.0.2.300\""));
        assert_eq!(e.line, Some(11), "{e}");

        let e = err(&GOOD.replace("down_for = \"5s\"", "colour = \"red\""));
        assert!(e.message.contains("colour"), "{e}");
        assert_eq!(e.line, Some(20), "{e}");

        let e = err(&GOOD.replace("down_for = \"5s\"", ""));
        assert_eq!(e.field, "event[0].down_for");

        let e = err(&format!(
            "{GOOD}\n[hashing]\nalgorithms = [\"modulo\", \"nope\"]\n"
        ));
        assert_eq!(e.field, "hashing.algorithms");
        assert_eq!(e.line, Some(23), "{e}");

        let e = err(&GOOD.replace("at = \"10s\"", "at = \"90s\""));
        assert_eq!(e.field, "event[0].at");
        assert!(e.message.contains("not before the end"), "{e}");

        let e = err(&format!("{GOOD}\n[traffic]\narrivals = 1e9\n"));
        assert_eq!(e.field, "traffic.arrivals");
    }
}
