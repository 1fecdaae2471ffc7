//! Command-line arguments of each subcommand and the glue that runs them.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use clap::Args;
use dataplane::traffic::TrafficModel;
use hashing::disrupt::Change;
use hashing::{
    Algorithm, AnySelector, FieldSelection, FlowHasher, FlowKey, HashFields, HashFunction, Member,
    Selector, SelectorParams,
};
use serde::Serialize;

use crate::compare::{self, report, Matrix};

/// Parse a comma-separated list; `all` stands for every value where given.
fn list<T>(s: &str, all: Option<&[T]>) -> Result<Vec<T>, String>
where
    T: FromStr + Clone,
    T::Err: std::fmt::Display,
{
    if let (Some(all), "all") = (all, s.trim()) {
        return Ok(all.to_vec());
    }
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse::<T>().map_err(|e| e.to_string()))
        .collect()
}

fn algorithms(s: &str) -> Result<Vec<Algorithm>, String> {
    list(s, Some(&Algorithm::ALL))
}
fn changes(s: &str) -> Result<Vec<Change>, String> {
    list(s, Some(&Change::ALL))
}
fn functions(s: &str) -> Result<Vec<HashFunction>, String> {
    list(s, Some(&HashFunction::ALL))
}
fn fields(s: &str) -> Result<Vec<HashFields>, String> {
    list(s, None)
}
fn traffic(s: &str) -> Result<Vec<TrafficModel>, String> {
    list(s, None)
}
fn sizes(s: &str) -> Result<Vec<usize>, String> {
    let v: Vec<usize> = list(s, None)?;
    if let Some(bad) = v.iter().find(|&&n| n == 0 || n > compare::MAX_MEMBERS) {
        return Err(format!(
            "member count {bad} is out of range: groups have 1 to {} members",
            compare::MAX_MEMBERS
        ));
    }
    if v.is_empty() {
        return Err("give at least one member count".into());
    }
    Ok(v)
}

/// Compare nexthop-selection algorithms on the same traffic and write a
/// report (HTML with charts, Markdown, JSON, CSV).
///
/// For every algorithm x group size x change x traffic model x hash fields,
/// ecmpd maps each flow to a member, applies the change (a node leaves,
/// joins, restarts, or gets twice the weight), and counts the connections
/// that would break: unavoidable (their node left) and collateral (their
/// node stayed). It also measures load balance and lookup cost.
///
/// With no options it runs the embedded default matrix (every algorithm,
/// 2..64 members, three traffic models, 3- and 5-tuple hashing, 100,000 flows
/// each) in about ten seconds on two cores.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  ecmpd compare
  ecmpd compare -a resilient,maglev,hash-threshold -n 3,8,32 -c remove
  ecmpd compare --pcap capture.pcap -f l4 --hash toeplitz,crc16-ccitt --json > results.json")]
pub struct CompareArgs {
    /// Algorithms to compare, comma-separated, or `all`:
    /// modulo, hash-threshold, resilient, maglev, rendezvous, jump, ring, dxhash, anchorhash.
    #[arg(short, long, value_parser = algorithms, default_value = "all")]
    algorithms: ::std::vec::Vec<Algorithm>,

    /// Group sizes (number of nodes behind the service IP), comma-separated.
    #[arg(short = 'n', long, value_parser = sizes, default_value = "2,4,8,16,32,64")]
    members: ::std::vec::Vec<usize>,

    /// Changes to apply, comma-separated, or `all`: remove (a node leaves),
    /// add (a node joins), flap (a node restarts), weight (a node's weight doubles).
    #[arg(short, long, value_parser = changes, default_value = "all")]
    changes: ::std::vec::Vec<Change>,

    /// Traffic models, comma-separated: uniform (random clients and ports),
    /// cgnat[:PUBLIC_IPS] (few source addresses, default 8), zipf[:EXPONENT[:CLIENTS]]
    /// (heavy hitters, default 1.1 and 10000), or pcap:FILE.
    #[arg(short, long, value_parser = traffic, default_value = "uniform,cgnat,zipf")]
    traffic: ::std::vec::Vec<TrafficModel>,

    /// Also use the flows of this capture (pcap or pcapng) as a traffic model.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,

    /// Header fields to hash, comma-separated: l3, l3-proto (3-tuple), l4
    /// (5-tuple), a Linux fib_multipath_hash_fields mask such as 0x37, or
    /// names joined by '+' (src-ip+dst-ip+src-port).
    #[arg(short, long, value_parser = fields, default_value = "l3-proto,l4")]
    fields: ::std::vec::Vec<HashFields>,

    /// Hash functions, comma-separated, or `all`: toeplitz, crc32, crc32-hi16,
    /// crc32-lo16, crc16-ccitt, crc16-bisync, jhash, siphash, xxh3.
    #[arg(long, value_parser = functions, default_value = "xxh3")]
    hash: ::std::vec::Vec<HashFunction>,

    /// Hash both directions of a flow alike.
    #[arg(long)]
    symmetric: bool,

    /// Flows per traffic model (synthetic models).
    #[arg(long, default_value_t = compare::DEFAULT_FLOWS)]
    flows: usize,

    /// Seed for traffic generation and hashing; the same seed gives the same figures.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Buckets of a resilient group.
    #[arg(long, default_value_t = SelectorParams::default().resilient.buckets)]
    buckets: u32,

    /// Maglev lookup-table size (a prime).
    #[arg(long, default_value_t = SelectorParams::default().maglev_table_size)]
    maglev_size: u32,

    /// Ring points per member.
    #[arg(long, default_value_t = SelectorParams::default().ring_vnodes)]
    ring_vnodes: u32,

    /// Folder to write index.html, report.md, results.json and results.csv into.
    #[arg(short, long, default_value = "ecmpd-report")]
    out: PathBuf,

    /// Also print the results as JSON on stdout (the summary then goes to stderr).
    #[arg(long)]
    json: bool,

    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

pub fn compare(args: CompareArgs) -> Result<()> {
    let mut matrix = Matrix::default_matrix();
    matrix.algorithms = dedup(args.algorithms);
    matrix.members = dedup(args.members);
    matrix.changes = dedup(args.changes);
    matrix.traffic = args.traffic;
    if let Some(pcap) = args.pcap {
        matrix.traffic.push(TrafficModel::Pcap(pcap));
    }
    matrix.fields = dedup(args.fields);
    matrix.hashes = dedup(args.hash);
    matrix.symmetric = args.symmetric;
    matrix.flows = args.flows;
    matrix.seed = args.seed;
    matrix.params.seed = args.seed;
    matrix.params.resilient.buckets = args.buckets;
    matrix.params.maglev_table_size = args.maglev_size;
    matrix.params.ring_vnodes = args.ring_vnodes;

    compare::prepare_output(&args.out)?;
    for w in matrix.warnings() {
        eprintln!("ecmpd: warning: {w}");
    }
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let results = compare::run(&matrix, progress)?;
    let written = report::write(&results, &args.out)?;

    let reference = report::Reference::of(&results);
    let mut summary = String::new();
    if let Some(reference) = &reference {
        for s in report::verdict(&results, reference).sentences {
            summary.push_str(&format!("  {s}\n"));
        }
    }
    let text = format!(
        "Compared {} figures in {:.1} s.\n{summary}Report: {}\n  also {}, {}, {}",
        results.records.len(),
        results.elapsed_s,
        written.html.display(),
        written.markdown.display(),
        written.json.display(),
        written.csv.display()
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    Ok(())
}

fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Hash one flow with every hash function (or one), and show which member
/// each algorithm picks: the tool for checking a router's choice by hand.
#[derive(Args, Debug)]
#[command(after_help = "Example:
  ecmpd hash --src 66.9.149.187 --sport 2794 --dst 161.142.100.80 --dport 1766 \\
             --fields src-ip+dst-ip+src-port+dst-port --function toeplitz")]
pub struct HashArgs {
    /// Source address.
    #[arg(long)]
    src: IpAddr,
    /// Destination address.
    #[arg(long)]
    dst: IpAddr,
    /// Source port.
    #[arg(long, default_value_t = 0)]
    sport: u16,
    /// Destination port.
    #[arg(long, default_value_t = 0)]
    dport: u16,
    /// IP protocol: tcp, udp, sctp, icmp, or a number.
    #[arg(long, default_value = "tcp", value_parser = protocol)]
    proto: u8,
    /// IPv6 flow label.
    #[arg(long, default_value_t = 0)]
    flow_label: u32,
    /// Fields to hash (as for `compare --fields`).
    #[arg(short, long, default_value = "l4")]
    fields: HashFields,
    /// Only this hash function (default: all).
    #[arg(long)]
    function: Option<HashFunction>,
    /// Hash both directions alike.
    #[arg(long)]
    symmetric: bool,
    /// Router seed (0 = each function's canonical form, e.g. the Microsoft RSS key).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also show the member each algorithm picks in a group of this many.
    #[arg(short = 'n', long)]
    members: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn protocol(s: &str) -> Result<u8, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "sctp" => Ok(132),
        "icmp" => Ok(1),
        "icmpv6" | "ipv6-icmp" => Ok(58),
        n => n.parse().map_err(|_| {
            format!("unknown protocol '{s}': use tcp, udp, sctp, icmp, icmpv6 or a number 0-255")
        }),
    }
}

#[derive(Serialize)]
struct HashLine {
    function: &'static str,
    hash: String,
    picks: Vec<(String, Option<u32>)>,
}

pub fn hash(args: HashArgs) -> Result<()> {
    if args.src.is_ipv4() != args.dst.is_ipv4() {
        bail!("source and destination must both be IPv4 or both IPv6");
    }
    let key = FlowKey {
        src: args.src,
        dst: args.dst,
        proto: args.proto,
        src_port: args.sport,
        dst_port: args.dport,
        flow_label: args.flow_label,
        ingress_port: 0,
    };
    let selection = FieldSelection::new(args.fields).symmetric(args.symmetric);
    let functions: Vec<HashFunction> = match args.function {
        Some(f) => vec![f],
        None => HashFunction::ALL.to_vec(),
    };
    let selectors = match args.members {
        Some(0) => bail!("a group needs at least one member"),
        Some(n) => {
            let members: Vec<Member> = (1..=n as u32).map(Member::new).collect();
            let params = SelectorParams {
                seed: args.seed,
                ..SelectorParams::default()
            };
            Algorithm::ALL
                .iter()
                .map(|&a| {
                    AnySelector::new(a, &params, &members, 0)
                        .with_context(|| format!("building {a}"))
                })
                .collect::<Result<Vec<_>>>()?
        }
        None => Vec::new(),
    };
    let lines: Vec<HashLine> = functions
        .iter()
        .map(|&f| {
            let h = FlowHasher::new(f, selection, args.seed).hash(&key);
            HashLine {
                function: f.name(),
                hash: format!("0x{h:08x}"),
                picks: selectors
                    .iter()
                    .map(|s| (s.algorithm().name().to_string(), s.select(h)))
                    .collect(),
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(());
    }
    println!("input: {:?}", selection.input(&key));
    for l in &lines {
        let picks: Vec<String> = l
            .picks
            .iter()
            .map(|(a, m)| {
                format!(
                    "{a}={}",
                    m.map(|m| m.to_string()).unwrap_or_else(|| "-".into())
                )
            })
            .collect();
        println!("{:<13} {}  {}", l.function, l.hash, picks.join(" "));
    }
    Ok(())
}
