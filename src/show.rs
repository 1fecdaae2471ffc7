//! `ecmpd show ...`: read a running router's state over its management API
//! and print it the way vtysh users expect, or as JSON.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use control::api::view::{ApiError, BfdPeerView, BgpSummary, FibView, RouteEntry};
use control::config::Config;
use serde::de::DeserializeOwned;

/// Where to find the router, shared by every `show` command.
#[derive(Args, Debug, Clone)]
pub struct ApiTarget {
    /// The management API address (default: the [api] listen address of
    /// --config, else the built-in configuration's, 127.0.0.1:2179).
    #[arg(long, global = true, value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// The router's configuration file, to find its API address.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Show a running router's state (BGP neighbours and routes, the FIB, BFD).
#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(subcommand)]
    what: ShowWhat,
    #[command(flatten)]
    target: ApiTarget,
}

#[derive(Subcommand, Debug)]
enum ShowWhat {
    /// BGP neighbours or routes.
    Bgp {
        #[command(subcommand)]
        what: BgpWhat,
    },
    /// The forwarding table: every route's nexthop group and members.
    Fib,
    /// BFD sessions.
    Bfd {
        #[command(subcommand)]
        what: BfdWhat,
    },
}

#[derive(Subcommand, Debug)]
enum BgpWhat {
    /// One line per neighbour: AS, messages, up time or state, prefixes.
    Summary,
    /// Every prefix with its paths, best (>) and multipath (=) marked.
    Routes {
        /// Only this prefix, or prefixes inside it.
        prefix: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum BfdWhat {
    /// One line per BFD session.
    Peers,
}

/// Run `show`.
pub fn show(args: ShowArgs) -> anyhow::Result<()> {
    let base = api_base(&args.target)?;
    let json = args.target.json;
    match args.what {
        ShowWhat::Bgp {
            what: BgpWhat::Summary,
        } => {
            let (raw, v): (String, BgpSummary) = fetch(&base, "/api/v1/bgp/summary")?;
            emit(json, raw, || render_summary(&v))
        }
        ShowWhat::Bgp {
            what: BgpWhat::Routes { prefix },
        } => {
            let path = match &prefix {
                Some(p) => format!("/api/v1/bgp/routes?prefix={}", p.replace('/', "%2F")),
                None => "/api/v1/bgp/routes".into(),
            };
            let (raw, v): (String, Vec<RouteEntry>) = fetch(&base, &path)?;
            emit(json, raw, || render_routes(&v))
        }
        ShowWhat::Fib => {
            let (raw, v): (String, FibView) = fetch(&base, "/api/v1/fib")?;
            emit(json, raw, || render_fib(&v))
        }
        ShowWhat::Bfd {
            what: BfdWhat::Peers,
        } => {
            let (raw, v): (String, Vec<BfdPeerView>) = fetch(&base, "/api/v1/bfd/peers")?;
            emit(json, raw, || render_bfd(&v))
        }
    }
}

/// `http://ADDR` of the router's API, from `--api`, `--config` or the
/// built-in default.
pub fn api_base(t: &ApiTarget) -> anyhow::Result<String> {
    let addr = match (t.api, &t.config) {
        (Some(a), _) => a,
        (None, Some(path)) => {
            Config::load(path)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .api
                .listen
        }
        (None, None) => Config::embedded_default().api.listen,
    };
    Ok(format!("http://{addr}"))
}

/// GET `path`, returning the body as text and parsed.
fn fetch<T: DeserializeOwned>(base: &str, path: &str) -> anyhow::Result<(String, T)> {
    request(base, path, false)
}

/// POST `path` (no body), returning the answer as text and parsed.
pub fn post<T: DeserializeOwned>(base: &str, path: &str) -> anyhow::Result<(String, T)> {
    request(base, path, true)
}

fn request<T: DeserializeOwned>(base: &str, path: &str, post: bool) -> anyhow::Result<(String, T)> {
    let url = format!("{base}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let sent = if post {
        agent.post(&url).send_empty()
    } else {
        agent.get(&url).call()
    };
    let mut resp = sent.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the router's management API at {base}: {e} (is `ecmpd router` running? pass --api ADDR or --config FILE)"
        )
    })?;
    let status = resp.status();
    let text = resp
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading {url}"))?;
    if !status.is_success() {
        let msg = serde_json::from_str::<ApiError>(&text).map_or(text.clone(), |e| e.error);
        bail!("{url}: {status}: {msg}");
    }
    let parsed =
        serde_json::from_str(&text).with_context(|| format!("{url} returned unexpected JSON"))?;
    Ok((text, parsed))
}

fn emit(json: bool, raw: String, table: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        let v: serde_json::Value = serde_json::from_str(&raw)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", table());
    }
    Ok(())
}

/// `hh:mm:ss`, or `XdYYh` past a day, as vtysh prints up times.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// The vtysh-style table of `show bgp summary`.
pub fn render_summary(v: &BgpSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "BGP router identifier {}, local AS number {}",
        v.router_id, v.local_as
    );
    let _ = writeln!(out, "RIB entries {}, paths {}", v.rib_prefixes, v.rib_paths);
    let established = v.peers.iter().filter(|p| p.state == "Established").count();
    let _ = writeln!(
        out,
        "Peers {}, established {}\n",
        v.peers.len(),
        established
    );
    let _ = writeln!(
        out,
        "{:<39} {:>10} {:>8} {:>8} {:>10} {:>14} {:>8} {:<6} Desc",
        "Neighbor", "AS", "MsgRcvd", "MsgSent", "Up/Down", "State/PfxRcd", "Filtered", "BFD"
    );
    for p in &v.peers {
        let state = if p.state == "Established" {
            p.prefixes_accepted.to_string()
        } else {
            p.state.clone()
        };
        let asn = p.asn.map_or("-".to_string(), |a| a.to_string());
        let name = match &p.range {
            Some(r) => format!("*{} ({r})", p.address),
            None => p.address.to_string(),
        };
        let desc = p.description.clone().unwrap_or_else(|| "N/A".into());
        let _ = writeln!(
            out,
            "{:<39} {:>10} {:>8} {:>8} {:>10} {:>14} {:>8} {:<6} {}",
            name,
            asn,
            p.msg_rcvd,
            p.msg_sent,
            uptime(p.state_secs),
            state,
            p.prefixes_filtered,
            p.bfd.as_deref().unwrap_or("-"),
            desc
        );
        if let Some(err) = &p.last_error {
            if p.state != "Established" {
                let _ = writeln!(out, "    last error: {err}");
            }
        }
    }
    if v.peers.iter().any(|p| p.range.is_some()) {
        let _ = writeln!(out, "\n* dynamic neighbour (listen range in brackets)");
    }
    out
}

/// The vtysh-style table of `show bgp routes`.
pub fn render_routes(v: &[RouteEntry]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Status codes: * valid, > best, = multipath, S stale, F filtered by policy"
    );
    let _ = writeln!(out, "Origin codes: i - IGP, e - EGP, ? - incomplete\n");
    let _ = writeln!(
        out,
        "   {:<24} {:<26} {:>10} {:>7} Path",
        "Network", "Next Hop", "Metric", "LocPrf"
    );
    for r in v {
        for (i, p) in r.paths.iter().enumerate() {
            let mut code = String::new();
            code.push(if p.filtered {
                'F'
            } else if p.stale {
                'S'
            } else {
                '*'
            });
            code.push(if p.best {
                '>'
            } else if p.multipath {
                '='
            } else {
                ' '
            });
            let net = if i == 0 { r.prefix.as_str() } else { "" };
            let _ = writeln!(
                out,
                "{code} {:<24} {:<26} {:>10} {:>7} {}{}{}",
                net,
                p.next_hop.to_string(),
                p.med.map_or(String::new(), |m| m.to_string()),
                p.local_pref.map_or(String::new(), |l| l.to_string()),
                p.as_path,
                if p.as_path.is_empty() { "" } else { " " },
                p.origin
            );
        }
    }
    let paths: usize = v.iter().map(|r| r.paths.len()).sum();
    let _ = writeln!(
        out,
        "\nDisplayed {} routes and {} total paths",
        v.len(),
        paths
    );
    out
}

/// `show fib`: one block per route with its group's members.
pub fn render_fib(v: &FibView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} routes, {} nexthop groups\n",
        v.routes.len(),
        v.groups
    );
    for r in &v.routes {
        let pkts = r
            .packets
            .map_or(String::new(), |p| format!(", {p} packets"));
        let _ = writeln!(
            out,
            "{} via group {} ({}, {}){}",
            r.prefix, r.group, r.algorithm, r.fields, pkts
        );
        for m in &r.members {
            let share = m
                .share
                .map_or(String::new(), |s| format!(", {:.1}% of buckets", s * 100.0));
            let _ = writeln!(
                out,
                "    nexthop {} id {} weight {}{}",
                m.address, m.id, m.weight, share
            );
        }
    }
    out
}

/// `show bfd peers`.
pub fn render_bfd(v: &[BfdPeerView]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<39} {:<9} {:>8} {:>9} {:<30} Last down (detect / FIB)",
        "Peer", "State", "TX ms", "Detect ms", "Diagnostic"
    );
    for p in v {
        let down = p.last_down.as_ref().map_or("-".to_string(), |d| {
            format!(
                "{:.0} ms / {}",
                d.detect_ms,
                d.fib_ms.map_or("-".to_string(), |f| format!("{f:.0} ms"))
            )
        });
        let _ = writeln!(
            out,
            "{:<39} {:<9} {:>8} {:>9} {:<30} {}",
            p.peer.to_string(),
            p.state,
            p.tx_ms,
            p.detect_ms,
            p.diagnostic,
            down
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes_read_like_vtysh() {
        assert_eq!(uptime(0), "00:00:00");
        assert_eq!(uptime(3725), "01:02:05");
        assert_eq!(uptime(90061), "1d01h01m");
    }
}
