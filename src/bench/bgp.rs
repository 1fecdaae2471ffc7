//! `ecmpd bench bgp`: how long a BGP speaker takes to ingest a full IPv4
//! table from one peer, and 10 prefixes from each of 1,000 peers, from the
//! first byte on the wire until its forwarding table holds every prefix.
//!
//! The feeder is a minimal BGP speaker ([`control::bgp::speaker::connect`]
//! does the OPEN exchange); every UPDATE of a load is encoded before the
//! clock starts and then written as fast as the socket takes it. The router
//! under test is a separate process: `ecmpd router` started here (polled on
//! its management API's `/api/v1/counts`), or any other daemon reached with
//! `--target` and polled with `--wait-cmd` (see `scripts/compare-bgp`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use control::api::view::Counts;
use control::bgp::speaker::{connect, SpeakerConfig};
use control::bgp::wire::attrs::{AsPath, Community, Origin, PathAttributes};
use control::bgp::wire::{Message, Update, UpdateContext, HEADER_LEN, MAX_MESSAGE_LEN};
use dataplane::fib::table::Prefix;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;

use super::Machine;

/// The feeder's AS (eBGP to the router).
const FEEDER_AS: u32 = 65001;
/// The router's AS in the configuration written for `ecmpd router`.
const ROUTER_AS: u32 = 64512;
/// Origin ASes of the full table.
const ORIGIN_ASES: u32 = 4000;
/// Attribute variants per origin AS (different transit paths, MED,
/// communities), so the table has up to `ORIGIN_ASES * VARIANTS` distinct
/// attribute sets.
const VARIANTS: u32 = 64;
const MAX_PREFIXES: usize = 4_000_000;
const MAX_SESSIONS: usize = 16_000;
const SEED: u64 = 7;

/// Which load to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Load {
    /// One peer sends a full IPv4 table.
    FullTable,
    /// Many peers send a few prefixes each.
    ManySessions,
    /// Both, one after the other.
    Both,
}

/// BGP ingestion, end to end: a full IPv4 table from one peer, and a few
/// prefixes from each of many peers, until the FIB holds every prefix.
///
/// Without --target, starts `ecmpd router` as a separate process for each
/// run (a generated configuration on loopback), feeds it and polls its
/// management API (GET /api/v1/counts) until the FIB holds every prefix;
/// the router's peak RSS is VmHWM from /proc. With --target, feeds any
/// BGP speaker at ADDR:PORT and polls with --wait-cmd (scripts/compare-bgp
/// does this for FRR, BIRD and GoBGP). Times are medians over --runs.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  ecmpd bench bgp
  ecmpd bench bgp --load full-table --runs 5 --json > bgp.json
  ecmpd bench bgp --prefixes 5000 --sessions 20 --runs 1
  ecmpd bench bgp --target 127.0.0.1:179 --peer-as 64512 --load full-table \\
      --wait-cmd 'birdc -s /tmp/bird.ctl show route count | ...' --wait-labels table --pid 1234")]
pub struct BgpBenchArgs {
    /// Which load: full-table, many-sessions, or both.
    #[arg(long, value_enum, default_value = "both")]
    load: Load,

    /// Prefixes in the full table.
    #[arg(long, value_parser = prefixes, default_value = "900000")]
    prefixes: usize,

    /// Sessions of the many-sessions load (sources 127.0.x.y).
    #[arg(long, value_parser = sessions, default_value = "1000")]
    sessions: usize,

    /// Prefixes each of those sessions announces (all distinct).
    #[arg(long, value_parser = per_session, default_value = "10")]
    per_session: usize,

    /// Runs per load (a fresh router process each); medians are reported.
    #[arg(long, value_parser = runs, default_value = "3")]
    runs: usize,

    /// Give up on a run after this many seconds.
    #[arg(long, default_value = "600")]
    timeout: u64,

    /// Milliseconds between two polls of the router's counts.
    #[arg(long, default_value = "20")]
    poll_ms: u64,

    /// Feed the BGP speaker at ADDR:PORT instead of starting `ecmpd router`.
    #[arg(long, value_name = "ADDR:PORT")]
    target: Option<SocketAddr>,

    /// With --target: only feed and poll (the daemon is started and
    /// stopped by the caller; `--runs` must be 1).
    #[arg(long, requires = "target")]
    feed_only: bool,

    /// The target's AS (eBGP; the feeder is AS 65001).
    #[arg(long, default_value_t = ROUTER_AS)]
    peer_as: u32,

    /// With --target: an ecmpd management API to poll (GET /api/v1/counts).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "wait_cmd")]
    wait_api: Option<SocketAddr>,

    /// With --target: a shell command printing one or more counts
    /// (whitespace-separated); the load is done when each reaches the
    /// number of prefixes sent.
    #[arg(long, value_name = "CMD")]
    wait_cmd: Option<String>,

    /// Names of the counts --wait-cmd prints, comma-separated (e.g.
    /// `rib,fib`); the first is the headline time.
    #[arg(long, value_delimiter = ',', default_value = "count")]
    wait_labels: Vec<String>,

    /// With --target: processes whose peak RSS (VmHWM) to report, as
    /// NAME=PID or PID (repeatable).
    #[arg(long, value_name = "[NAME=]PID")]
    pid: Vec<String>,

    /// First two octets of the feeder's addresses: the full table comes
    /// from A.B.0.2, session i of the many from A.B.(1 + i / 250).(1 + i %
    /// 250); each is its session's NEXT_HOP. They must be local addresses
    /// (all of 127.0.0.0/8 is, on loopback).
    #[arg(long, value_name = "A.B", value_parser = source_net, default_value = "127.0")]
    source_net: [u8; 2],

    /// The ecmpd binary to run as the router (default: this one).
    #[arg(long, value_name = "FILE")]
    router_bin: Option<PathBuf>,

    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// No progress lines.
    #[arg(short, long)]
    quiet: bool,
}

fn bounded(s: &str, what: &str, max: usize) -> Result<usize, String> {
    super::count(s, what, max)
}
fn prefixes(s: &str) -> Result<usize, String> {
    bounded(s, "prefixes", MAX_PREFIXES)
}
fn sessions(s: &str) -> Result<usize, String> {
    bounded(s, "sessions", MAX_SESSIONS)
}
fn per_session(s: &str) -> Result<usize, String> {
    bounded(s, "prefixes per session", 10_000)
}
fn source_net(s: &str) -> Result<[u8; 2], String> {
    let bad = || format!("'{s}' is not the first two octets of an IPv4 address (e.g. 127.0)");
    let (a, b) = s.trim().split_once('.').ok_or_else(bad)?;
    Ok([a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?])
}
fn runs(s: &str) -> Result<usize, String> {
    bounded(s, "runs", 100)
}

// ----- The loads ------------------------------------------------------------

/// One session's part of a load: its source address and every message it
/// sends after the OPEN exchange, pre-encoded.
struct Feed {
    source: IpAddr,
    bytes: Vec<u8>,
}

/// A load, encoded.
struct Encoded {
    name: &'static str,
    feeds: Vec<Feed>,
    prefixes: usize,
    updates: usize,
    bytes: usize,
    attribute_sets: usize,
    encode_s: f64,
}

/// DFZ-like prefix lengths: mostly /24, then /22, /23, /20, /21, /19, /16..
/// /18, and a few shorter (per mille).
fn dfz_length(rng: &mut Pcg64) -> u8 {
    match rng.gen_range(0..1000u32) {
        0..=579 => 24,
        580..=699 => 22,
        700..=799 => 23,
        800..=859 => 20,
        860..=909 => 21,
        910..=944 => 19,
        945..=964 => 16,
        965..=979 => 18,
        980..=994 => 17,
        _ => rng.gen_range(8..=15),
    }
}

/// A unicast first octet that is not 0, 10, 127 or multicast and beyond.
fn public_first_octet(rng: &mut Pcg64) -> u32 {
    loop {
        let o = rng.gen_range(1..224u32);
        if o != 10 && o != 127 {
            return o;
        }
    }
}

fn random_prefix(rng: &mut Pcg64) -> (u32, u8) {
    let len = dfz_length(rng);
    let addr = (public_first_octet(rng) << 24) | rng.gen_range(0..1u32 << 24);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (addr & mask, len)
}

/// The attributes of attribute set `key` (origin AS, variant): ORIGIN IGP,
/// an AS path of 1..=10 ASes starting with the feeder's, ~7% with 1..=3
/// communities, ~20% with a MED; NEXT_HOP the feeder.
fn attributes(key: u32, next_hop: Ipv4Addr) -> PathAttributes {
    let mut rng = Pcg64::seed_from_u64(u64::from(key) ^ 0xa77_5e75);
    let origin = key / VARIANTS;
    let origin_as = 131_072 + origin * 7 % 200_000;
    // Mostly 3..=5 ASes long, as seen from a transit peer.
    let len = match rng.gen_range(0..100u32) {
        0..=4 => 1,
        5..=19 => 2,
        20..=44 => 3,
        45..=69 => 4,
        70..=84 => 5,
        85..=92 => 6,
        93..=96 => 7,
        97 => 8,
        98 => 9,
        _ => 10,
    };
    let mut path = vec![FEEDER_AS];
    for _ in 2..len {
        path.push(rng.gen_range(1..60u32) * 97 + 1000);
    }
    if len >= 2 {
        path.push(origin_as);
    }
    let communities = if rng.gen_range(0..100u32) < 7 {
        (0..rng.gen_range(1..=3u32))
            .map(|_| Community((FEEDER_AS << 16) | rng.gen_range(1..1000u32)))
            .collect()
    } else {
        Vec::new()
    };
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path)),
        next_hop: Some(next_hop),
        med: (rng.gen_range(0..100u32) < 20).then(|| rng.gen_range(0..1000u32)),
        communities,
        ..PathAttributes::default()
    }
}

fn update_context() -> UpdateContext {
    UpdateContext {
        four_octet_as: true,
        ibgp: false,
        peer_as: None,
    }
}

/// Append UPDATEs carrying `prefixes` with `attrs`, as many per message as
/// fit in 4096 bytes; returns how many messages.
fn put_updates(out: &mut Vec<u8>, attrs: &PathAttributes, prefixes: &[Prefix]) -> Result<usize> {
    let ctx = update_context();
    let mut update = Update {
        attributes: attrs.clone(),
        ..Update::default()
    };
    let base = update
        .encode_body(&ctx)
        .map_err(|e| anyhow!("cannot encode an UPDATE: {e}"))?
        .len();
    let room = MAX_MESSAGE_LEN - HEADER_LEN;
    let mut messages = 0;
    let mut rest = prefixes;
    while !rest.is_empty() {
        let mut used = base;
        let mut n = 0;
        for p in rest {
            let bytes = 1 + usize::from(p.prefix_len()).div_ceil(8);
            if used + bytes > room {
                break;
            }
            used += bytes;
            n += 1;
        }
        let n = n.max(1);
        update.nlri = rest[..n].to_vec();
        let body = update
            .encode_body(&ctx)
            .map_err(|e| anyhow!("cannot encode an UPDATE: {e}"))?;
        let msg = Message::Update(body)
            .encode()
            .map_err(|e| anyhow!("cannot encode an UPDATE: {e}"))?;
        out.extend_from_slice(&msg);
        messages += 1;
        rest = &rest[n..];
    }
    Ok(messages)
}

/// End-of-RIB for IPv4 unicast: an empty UPDATE.
fn put_end_of_rib(out: &mut Vec<u8>) -> Result<()> {
    let body = Update::default()
        .encode_body(&update_context())
        .map_err(|e| anyhow!("cannot encode End-of-RIB: {e}"))?;
    let msg = Message::Update(body)
        .encode()
        .map_err(|e| anyhow!("cannot encode End-of-RIB: {e}"))?;
    out.extend_from_slice(&msg);
    Ok(())
}

/// The full table: `n` distinct prefixes, grouped by attribute set into
/// UPDATEs as a router packs its Adj-RIB-Out, then End-of-RIB.
fn full_table(n: usize, source: Ipv4Addr) -> Result<Encoded> {
    let started = Instant::now();
    let mut rng = Pcg64::seed_from_u64(SEED);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut groups: HashMap<u32, Vec<Prefix>> = HashMap::new();
    let mut order: Vec<u32> = Vec::new();
    while seen.len() < n {
        let (addr, len) = random_prefix(&mut rng);
        if !seen.insert((addr, len)) {
            continue;
        }
        // Skewed towards small origin indices: a few ASes originate many
        // prefixes, most originate a few.
        let u: f64 = rng.gen();
        let origin = ((u * u * u) * f64::from(ORIGIN_ASES)) as u32;
        let key = origin.min(ORIGIN_ASES - 1) * VARIANTS + rng.gen_range(0..VARIANTS);
        groups
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(Prefix::V4(Ipv4Addr::from(addr), len));
    }
    let mut bytes = Vec::with_capacity(n * 6);
    let mut updates = 0;
    for key in &order {
        updates += put_updates(&mut bytes, &attributes(*key, source), &groups[key])?;
    }
    put_end_of_rib(&mut bytes)?;
    Ok(Encoded {
        name: "full-table",
        prefixes: n,
        updates,
        bytes: bytes.len(),
        attribute_sets: order.len(),
        feeds: vec![Feed {
            source: IpAddr::V4(source),
            bytes,
        }],
        encode_s: started.elapsed().as_secs_f64(),
    })
}

/// Source address of session `i` of the many-sessions load: A.B.x.y,
/// from A.B.1.1 on.
fn session_source(net: [u8; 2], i: usize) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], (1 + i / 250) as u8, (1 + i % 250) as u8)
}

/// Many sessions, each announcing `per` distinct /24s of its own in one
/// UPDATE (ORIGIN IGP, AS_PATH [65001], NEXT_HOP itself), then End-of-RIB.
fn many_sessions(net: [u8; 2], sessions: usize, per: usize) -> Result<Encoded> {
    let started = Instant::now();
    let mut feeds = Vec::with_capacity(sessions);
    let mut updates = 0;
    let mut total = 0;
    for i in 0..sessions {
        let source = session_source(net, i);
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([FEEDER_AS])),
            next_hop: Some(source),
            ..PathAttributes::default()
        };
        // 100.64.0.0/10 and up: distinct /24s, session after session.
        let prefixes: Vec<Prefix> = (0..per)
            .map(|j| {
                let k = (i * per + j) as u32;
                Prefix::V4(Ipv4Addr::from(0x6440_0000u32 + (k << 8)), 24)
            })
            .collect();
        let mut bytes = Vec::new();
        updates += put_updates(&mut bytes, &attrs, &prefixes)?;
        put_end_of_rib(&mut bytes)?;
        total += bytes.len();
        feeds.push(Feed {
            source: IpAddr::V4(source),
            bytes,
        });
    }
    Ok(Encoded {
        name: "many-sessions",
        prefixes: sessions * per,
        updates,
        bytes: total,
        attribute_sets: sessions,
        feeds,
        encode_s: started.elapsed().as_secs_f64(),
    })
}

// ----- Waiting for the router -----------------------------------------------

/// How to learn what the router holds.
#[derive(Clone)]
enum Poller {
    /// ecmpd's management API: counts `rib` and `fib`.
    Api(SocketAddr),
    /// A shell command printing counts, one per label.
    Cmd(String, Vec<String>),
}

impl Poller {
    fn labels(&self) -> Vec<String> {
        match self {
            // The FIB first: it is the headline time.
            Poller::Api(_) => vec!["fib".into(), "rib".into()],
            Poller::Cmd(_, labels) => labels.clone(),
        }
    }

    fn poll(&self, agent: &ureq::Agent) -> Result<Vec<u64>> {
        match self {
            Poller::Api(addr) => {
                let c: Counts = agent
                    .get(&format!("http://{addr}/api/v1/counts"))
                    .call()
                    .map_err(|e| anyhow!("GET /api/v1/counts: {e}"))?
                    .body_mut()
                    .read_json()
                    .map_err(|e| anyhow!("GET /api/v1/counts: {e}"))?;
                Ok(vec![c.fib_routes, c.rib_prefixes])
            }
            Poller::Cmd(cmd, labels) => {
                let out = Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stderr(Stdio::null())
                    .output()
                    .with_context(|| format!("cannot run `{cmd}`"))?;
                let text = String::from_utf8_lossy(&out.stdout);
                let mut v: Vec<u64> = text
                    .split_whitespace()
                    .map(|w| w.parse().unwrap_or(0))
                    .collect();
                v.resize(labels.len(), 0);
                Ok(v)
            }
        }
    }
}

/// When each count first reached the target, from `start`.
struct Waited {
    reached: Vec<Option<Instant>>,
    last: Vec<u64>,
    polls: u64,
}

/// Poll until every count reaches `expected`, or `stop` is set, or the
/// deadline passes.
fn wait_for(
    poller: &Poller,
    expected: u64,
    interval: Duration,
    deadline: Instant,
    stop: &AtomicBool,
) -> Waited {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let n = poller.labels().len();
    let mut w = Waited {
        reached: vec![None; n],
        last: vec![0; n],
        polls: 0,
    };
    loop {
        if let Ok(v) = poller.poll(&agent) {
            let now = Instant::now();
            w.polls += 1;
            for (i, c) in v.iter().enumerate().take(n) {
                w.last[i] = *c;
                if *c >= expected && w.reached[i].is_none() {
                    w.reached[i] = Some(now);
                }
            }
        }
        if w.reached.iter().all(Option::is_some)
            || stop.load(Ordering::Relaxed)
            || Instant::now() > deadline
        {
            return w;
        }
        std::thread::sleep(interval);
    }
}

// ----- Memory ---------------------------------------------------------------

/// A field of /proc/PID/status in KiB (`VmHWM`, `VmRSS`).
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system) a process has used, from /proc/PID/stat.
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / if hz > 0 { hz as f64 } else { 100.0 })
}

// ----- One run --------------------------------------------------------------

/// One run of one load.
#[derive(Clone, Debug, Serialize)]
struct Run {
    /// From the first byte of the first OPEN until the headline count held
    /// every prefix (includes opening the sessions).
    since_first_byte_s: f64,
    /// From every session Established (the first UPDATE byte) until the
    /// headline count held every prefix.
    since_established_s: f64,
    /// Opening every session (TCP and the OPEN exchange).
    session_setup_s: f64,
    /// Writing every UPDATE into the sockets, from the first.
    send_s: f64,
    /// Each count's time since established (e.g. `fib`, `rib`).
    done_s: HashMap<String, Option<f64>>,
    /// Each count when the run ended.
    final_counts: HashMap<String, u64>,
    /// UPDATE messages per second, over `since_established_s`.
    updates_per_s: f64,
    /// Prefixes per second, over `since_established_s`.
    prefixes_per_s: f64,
    /// Peak RSS (VmHWM) of each process watched, in MiB.
    peak_rss_mib: HashMap<String, f64>,
    /// Sum of `peak_rss_mib`.
    peak_rss_total_mib: f64,
    /// CPU seconds (user + system) each process watched used during the
    /// run, from the session setup until every count was reached.
    cpu_s: HashMap<String, f64>,
    /// Sum of `cpu_s`.
    cpu_total_s: f64,
    /// Every count reached every prefix.
    all_arrived: bool,
    polls: u64,
}

struct Target {
    addr: SocketAddr,
    peer_as: u32,
    poller: Poller,
    pids: Vec<(String, u32)>,
}

/// Open every session, write every feed, wait until the router holds it
/// all.
fn feed(load: &Encoded, target: &Target, args: &BgpBenchArgs) -> Result<Run> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let failure: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let deadline = Instant::now() + Duration::from_secs(args.timeout);

    let cpu_before: HashMap<String, f64> = target
        .pids
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), proc_cpu_s(*p)?)))
        .collect();
    // Open every session, a bounded number at a time.
    let t_open = Instant::now();
    let writers: Vec<OwnedWriteHalf> = runtime.block_on(async {
        let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::new();
        writers.resize_with(load.feeds.len(), || None);
        let mut set = tokio::task::JoinSet::new();
        let mut next = 0;
        let mut done = 0;
        while done < load.feeds.len() {
            while next < load.feeds.len() && set.len() < 128 {
                let mut config = SpeakerConfig::new(
                    FEEDER_AS,
                    target.peer_as,
                    load.feeds[next].source,
                    target.addr,
                );
                config.hold_time = 0;
                let i = next;
                set.spawn(async move {
                    let mut last = String::new();
                    for _ in 0..5 {
                        match tokio::time::timeout(Duration::from_secs(30), connect(config.clone()))
                            .await
                        {
                            Ok(Ok((stream, _, _))) => return (i, Ok(stream)),
                            Ok(Err(e)) => last = e,
                            Err(_) => last = "the OPEN exchange took over 30 s".into(),
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    (i, Err(last))
                });
                next += 1;
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let (i, r) = joined.map_err(|e| anyhow!("a session task failed: {e}"))?;
            let stream = r.map_err(|e| anyhow!("session from {}: {e}", load.feeds[i].source))?;
            let (mut rd, wr) = stream.into_split();
            let failure = Arc::clone(&failure);
            let source = load.feeds[i].source;
            // Drain what the router sends; a close is a failure.
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            failure
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(format!(
                                    "the router closed the session from {source}"
                                ));
                            return;
                        }
                        Ok(n) => {
                            if n >= HEADER_LEN && buf[18] == 3 {
                                failure
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_or_insert(format!(
                                        "the router sent a NOTIFICATION to {source}"
                                    ));
                            }
                        }
                    }
                }
            });
            writers[i] = Some(wr);
            done += 1;
        }
        writers
            .into_iter()
            .map(|w| w.ok_or_else(|| anyhow!("a session did not open")))
            .collect::<Result<Vec<_>>>()
    })?;
    let t_established = Instant::now();

    // Poll from another thread while this one writes.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = target.poller.clone();
    let expected = load.prefixes as u64;
    let interval = Duration::from_millis(args.poll_ms.max(1));
    let stop_poll = Arc::clone(&stop);
    let waiter =
        std::thread::spawn(move || wait_for(&poller, expected, interval, deadline, &stop_poll));

    // (Dropping a write half would close the session: keep them to the end.)
    let mut writers = writers;
    let send_result: Result<()> = runtime.block_on(async {
        for (w, f) in writers.iter_mut().zip(&load.feeds) {
            w.write_all(&f.bytes)
                .await
                .map_err(|e| anyhow!("write to the router from {}: {e}", f.source))?;
        }
        Ok(())
    });
    let t_sent = Instant::now();
    // Keep the sockets open (and drained) until the poller is done.
    runtime.block_on(async {
        loop {
            if waiter.is_finished() {
                break;
            }
            if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                stop.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let waited = waiter
        .join()
        .map_err(|_| anyhow!("the poller thread panicked"))?;
    // Memory and CPU now: closing the sessions makes the router withdraw
    // everything, which is not part of ingesting.
    let mut peak = HashMap::new();
    let mut cpu = HashMap::new();
    for (name, pid) in &target.pids {
        if let (Some(after), Some(before)) = (proc_cpu_s(*pid), cpu_before.get(name)) {
            cpu.insert(name.clone(), after - before);
        }
        if let Some(kib) = proc_kib(*pid, "VmHWM") {
            peak.insert(name.clone(), kib as f64 / 1024.0);
        }
    }
    send_result?;
    let failed = failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Closing now is not a failure.
    drop(writers);
    drop(runtime);
    if let Some(f) = failed {
        bail!("{f}");
    }

    let labels = target.poller.labels();
    let since = |t: Option<Instant>| t.map(|t| t.duration_since(t_established).as_secs_f64());
    let headline = waited.reached[0];
    let all_arrived = waited.reached.iter().all(Option::is_some);
    let end = headline.unwrap_or_else(Instant::now);
    let since_established = end.duration_since(t_established).as_secs_f64();
    Ok(Run {
        since_first_byte_s: end.duration_since(t_open).as_secs_f64(),
        since_established_s: since_established,
        session_setup_s: t_established.duration_since(t_open).as_secs_f64(),
        send_s: t_sent.duration_since(t_established).as_secs_f64(),
        done_s: labels
            .iter()
            .cloned()
            .zip(waited.reached.iter().map(|t| since(*t)))
            .collect(),
        final_counts: labels
            .iter()
            .cloned()
            .zip(waited.last.iter().copied())
            .collect(),
        updates_per_s: load.updates as f64 / since_established.max(1e-9),
        prefixes_per_s: load.prefixes as f64 / since_established.max(1e-9),
        peak_rss_total_mib: peak.values().sum(),
        peak_rss_mib: peak,
        cpu_total_s: cpu.values().sum(),
        cpu_s: cpu,
        all_arrived,
        polls: waited.polls,
    })
}

// ----- ecmpd as the router --------------------------------------------------

/// A free TCP port on 127.0.0.1 (bound and released).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// The configuration `ecmpd router` runs with: every 127.0.0.0/8 source
/// accepted in any other AS, no import policy, multipath on.
fn router_config(bgp: SocketAddr, api: SocketAddr, sessions: usize) -> String {
    format!(
        r#"# Written by `ecmpd bench bgp`.
[router]
id = "127.0.0.1"
asn = {ROUTER_AS}
listen = ["{bgp}"]
hold_time = "90s"
keepalive = "30s"

[api]
listen = "{api}"

[[listen_range]]
prefix = "127.0.0.0/8"
asn = "any"
limit = {limit}

[multipath]
maximum_paths = 64
as_path_relax = true

[dataplane]
backend = "memory"
"#,
        limit = sessions + 16
    )
}

/// A running `ecmpd router` child, killed on drop.
struct RouterProcess {
    child: Child,
    _dir: TempDir,
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        // SAFETY: sending SIGTERM to our own child by its PID.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_router(args: &BgpBenchArgs, sessions: usize) -> Result<(RouterProcess, Target)> {
    let bgp = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port()?);
    let api = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port()?);
    let dir = std::env::temp_dir().join(format!(
        "ecmpd-bench-bgp-{}-{}",
        std::process::id(),
        bgp.port()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = TempDir(dir);
    let config = dir.0.join("router.toml");
    std::fs::write(&config, router_config(bgp, api, sessions))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let bin = match &args.router_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("cannot find the ecmpd binary")?,
    };
    let mut child = Command::new(&bin)
        .arg("router")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} router", bin.display()))?;
    // Keep its stderr flowing (warnings), and show it when not quiet.
    if let Some(err) = child.stderr.take() {
        let quiet = args.quiet;
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if !quiet {
                    eprintln!("router: {line}");
                }
            }
        });
    }
    let pid = child.id();
    let mut process = RouterProcess { child, _dir: dir };
    // Up when the API answers.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if Poller::Api(api).poll(&agent).is_ok() {
            break;
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            bail!("ecmpd router exited ({status}) before answering on {api}");
        }
        if Instant::now() > deadline {
            bail!("ecmpd router did not answer on {api} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((
        process,
        Target {
            addr: bgp,
            peer_as: ROUTER_AS,
            poller: Poller::Api(api),
            pids: vec![("ecmpd".into(), pid)],
        },
    ))
}

// ----- Report ---------------------------------------------------------------

/// Medians over the runs of one load.
#[derive(Clone, Debug, Serialize)]
struct Median {
    since_first_byte_s: f64,
    since_established_s: f64,
    session_setup_s: f64,
    send_s: f64,
    done_s: HashMap<String, Option<f64>>,
    updates_per_s: f64,
    prefixes_per_s: f64,
    peak_rss_mib: HashMap<String, f64>,
    peak_rss_total_mib: f64,
    cpu_total_s: f64,
}

#[derive(Clone, Debug, Serialize)]
struct LoadReport {
    load: &'static str,
    sessions: usize,
    prefixes: usize,
    updates: usize,
    bytes: usize,
    attribute_sets: usize,
    prefixes_per_update: f64,
    encode_s: f64,
    /// The count the headline time waits for.
    headline: String,
    runs: Vec<Run>,
    median: Median,
    all_arrived: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    benchmark: &'static str,
    /// `ecmpd router` or the address fed.
    target: String,
    machine: Machine,
    loads: Vec<LoadReport>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn medians(runs: &[Run]) -> Median {
    let m = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let mut done_s = HashMap::new();
    let mut peak = HashMap::new();
    if let Some(first) = runs.first() {
        for k in first.done_s.keys() {
            let all: Option<Vec<f64>> = runs
                .iter()
                .map(|r| r.done_s.get(k).copied().flatten())
                .collect();
            done_s.insert(k.clone(), all.map(median));
        }
        for k in first.peak_rss_mib.keys() {
            peak.insert(
                k.clone(),
                median(
                    runs.iter()
                        .filter_map(|r| r.peak_rss_mib.get(k).copied())
                        .collect(),
                ),
            );
        }
    }
    Median {
        since_first_byte_s: m(&|r| r.since_first_byte_s),
        since_established_s: m(&|r| r.since_established_s),
        session_setup_s: m(&|r| r.session_setup_s),
        send_s: m(&|r| r.send_s),
        done_s,
        updates_per_s: m(&|r| r.updates_per_s),
        prefixes_per_s: m(&|r| r.prefixes_per_s),
        peak_rss_total_mib: m(&|r| r.peak_rss_total_mib),
        peak_rss_mib: peak,
        cpu_total_s: m(&|r| r.cpu_total_s),
    }
}

fn parse_pids(list: &[String]) -> Result<Vec<(String, u32)>> {
    list.iter()
        .map(|s| {
            let (name, pid) = s.split_once('=').unwrap_or(("", s));
            let pid: u32 = pid
                .trim()
                .parse()
                .map_err(|_| anyhow!("--pid {s}: not a process id"))?;
            let name = if name.is_empty() {
                pid.to_string()
            } else {
                name.to_string()
            };
            Ok((name, pid))
        })
        .collect()
}

/// Run `ecmpd bench bgp`.
pub fn bgp(args: BgpBenchArgs) -> Result<()> {
    let progress = !args.quiet;
    crate::router_cmd::raise_fd_limit();
    if args.target.is_some() && args.wait_api.is_none() && args.wait_cmd.is_none() {
        bail!("with --target, say how to poll the daemon: --wait-api ADDR or --wait-cmd CMD");
    }
    if args.feed_only && args.runs != 1 {
        bail!("--feed-only feeds one daemon once: use --runs 1 (the caller restarts it)");
    }
    let loads: &[Load] = match args.load {
        Load::FullTable => &[Load::FullTable],
        Load::ManySessions => &[Load::ManySessions],
        Load::Both => &[Load::FullTable, Load::ManySessions],
    };
    let mut reports = Vec::new();
    for &load in loads {
        if progress {
            eprintln!("bench bgp: encoding the {} load ...", name_of(load));
        }
        let encoded = match load {
            Load::FullTable => full_table(
                args.prefixes,
                Ipv4Addr::new(args.source_net[0], args.source_net[1], 0, 2),
            )?,
            _ => many_sessions(args.source_net, args.sessions, args.per_session)?,
        };
        if progress {
            eprintln!(
                "bench bgp: {} prefixes in {} UPDATEs ({:.1} MB, {} attribute sets) over {} session(s), encoded in {:.2} s",
                encoded.prefixes,
                encoded.updates,
                encoded.bytes as f64 / 1e6,
                encoded.attribute_sets,
                encoded.feeds.len(),
                encoded.encode_s
            );
        }
        let mut runs = Vec::new();
        for i in 0..args.runs {
            let (router, target) = match args.target {
                None => {
                    let (p, t) = start_router(&args, encoded.feeds.len())?;
                    (Some(p), t)
                }
                Some(addr) => (
                    None,
                    Target {
                        addr,
                        peer_as: args.peer_as,
                        poller: match (&args.wait_api, &args.wait_cmd) {
                            (Some(a), _) => Poller::Api(*a),
                            (None, Some(c)) => Poller::Cmd(c.clone(), args.wait_labels.clone()),
                            (None, None) => unreachable!("checked above"),
                        },
                        pids: parse_pids(&args.pid)?,
                    },
                ),
            };
            let run = feed(&encoded, &target, &args);
            drop(router);
            let run = run.map_err(|e| anyhow!("{} run {}: {e:#}", encoded.name, i + 1))?;
            if progress {
                eprintln!(
                    "bench bgp: {} run {}: {:.3} s since established ({:.3} s since the first byte), {:.0} prefixes/s, peak RSS {:.1} MiB{}",
                    encoded.name,
                    i + 1,
                    run.since_established_s,
                    run.since_first_byte_s,
                    run.prefixes_per_s,
                    run.peak_rss_total_mib,
                    if run.all_arrived { "" } else { " -- NOT ALL ARRIVED" }
                );
            }
            runs.push(run);
        }
        let labels = match (&args.target, &args.wait_cmd) {
            (Some(_), Some(_)) => args.wait_labels.clone(),
            _ => Poller::Api(SocketAddr::from(([127, 0, 0, 1], 0))).labels(),
        };
        reports.push(LoadReport {
            load: encoded.name,
            sessions: encoded.feeds.len(),
            prefixes: encoded.prefixes,
            updates: encoded.updates,
            bytes: encoded.bytes,
            attribute_sets: encoded.attribute_sets,
            prefixes_per_update: encoded.prefixes as f64 / encoded.updates.max(1) as f64,
            encode_s: encoded.encode_s,
            headline: labels.first().cloned().unwrap_or_default(),
            median: medians(&runs),
            all_arrived: runs.iter().all(|r| r.all_arrived),
            runs,
        });
    }
    let report = Report {
        benchmark: "bgp",
        target: args
            .target
            .map_or_else(|| "ecmpd router".to_string(), |a| a.to_string()),
        machine: Machine::detect(),
        loads: reports,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", summary(&report));
    }
    if let Some(bad) = report.loads.iter().find(|l| !l.all_arrived) {
        bail!(
            "not every prefix of the {} load arrived within {} s",
            bad.load,
            args.timeout
        );
    }
    Ok(())
}

fn name_of(load: Load) -> &'static str {
    match load {
        Load::FullTable => "full-table",
        Load::ManySessions => "many-sessions",
        Load::Both => "both",
    }
}

fn summary(r: &Report) -> String {
    let mut s = format!(
        "ecmpd BGP ingestion benchmark: {}\nmachine: {} CPUs, {}\n\n",
        r.target,
        r.machine.nproc,
        r.machine.cpu_model.as_deref().unwrap_or("unknown CPU")
    );
    s.push_str(&format!(
        "{:<14} {:>8} {:>9} {:>8} {:>5} {:>10} {:>11} {:>9} {:>11} {:>12} {:>7} {:>9}\n",
        "load",
        "sessions",
        "prefixes",
        "UPDATEs",
        "runs",
        "since est",
        "since 1st B",
        "setup s",
        "UPDATEs/s",
        "prefixes/s",
        "CPU s",
        "peak MiB"
    ));
    for l in &r.loads {
        let m = &l.median;
        s.push_str(&format!(
            "{:<14} {:>8} {:>9} {:>8} {:>5} {:>9.3}s {:>10.3}s {:>9.3} {:>11.0} {:>12.0} {:>7.2} {:>9.1}\n",
            l.load,
            l.sessions,
            l.prefixes,
            l.updates,
            l.runs.len(),
            m.since_established_s,
            m.since_first_byte_s,
            m.session_setup_s,
            m.updates_per_s,
            m.prefixes_per_s,
            m.cpu_total_s,
            m.peak_rss_total_mib
        ));
    }
    s.push_str(&format!(
        "\nMedians. Times end when the {} count holds every prefix; \"since est\" starts when every \
         session is Established (the first UPDATE byte), \"since 1st B\" at the first OPEN byte. CPU s and peak MiB are the router's (/proc).\n",
        r.loads.first().map_or("FIB", |l| l.headline.as_str())
    ));
    s
}
