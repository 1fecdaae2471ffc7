//! ecmpd itself as the router under test: `ecmpd router --config FILE` started in the
//! router namespace with a configuration rendered from an [`EcmpdConfig`], its state
//! read from its management API with `ecmpd show ... --json --api ADDR` run inside the
//! same namespace (never from its log).
//!
//! The binary is whatever the test names (`env!("CARGO_BIN_EXE_ecmpd")` in the root
//! package's integration tests), so the harness needs no build step of its own.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use control::api::view::{BfdPeerView, BgpSummary, FibMember, FibRoute, FibView, RouteEntry};
use serde::de::DeserializeOwned;

use crate::daemon::{Daemon, Workdir};
use crate::speakers::{BfdProfile, SessionState, Speaker};
use crate::{run, tail, wait_for, Diagnose, Error, Netns, Prefix, Result};

/// Session options shared by a `[[listen_range]]` and a `[[peer]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    pub hold_s: u16,
    pub keepalive_s: u16,
    pub password: Option<String>,
    pub bfd_profile: Option<String>,
    /// `graceful_restart` for this session (helper mode); `None` inherits the router's.
    pub graceful_restart: Option<bool>,
    /// The `[policy.NAME]` routes pass through.
    pub import: Option<String>,
    /// `families`; empty keeps ecmpd's default (IPv4 and IPv6 unicast).
    pub families: Vec<String>,
}

impl Default for SessionOptions {
    /// Hold 9 s, keepalive 3 s (the speakers' defaults in this harness).
    fn default() -> Self {
        SessionOptions {
            hold_s: 9,
            keepalive_s: 3,
            password: None,
            bfd_profile: None,
            graceful_restart: None,
            import: None,
            families: Vec::new(),
        }
    }
}

impl SessionOptions {
    pub fn timers(mut self, keepalive_s: u16, hold_s: u16) -> Self {
        self.keepalive_s = keepalive_s;
        self.hold_s = hold_s;
        self
    }

    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    pub fn bfd_profile(mut self, name: &str) -> Self {
        self.bfd_profile = Some(name.to_string());
        self
    }

    pub fn import(mut self, policy: &str) -> Self {
        self.import = Some(policy.to_string());
        self
    }

    fn render(&self, s: &mut String) {
        let _ = writeln!(s, "hold_time = \"{}s\"", self.hold_s);
        let _ = writeln!(s, "keepalive = \"{}s\"", self.keepalive_s);
        if let Some(pw) = &self.password {
            let _ = writeln!(s, "password = \"{pw}\"");
        }
        if let Some(p) = &self.bfd_profile {
            let _ = writeln!(s, "bfd_profile = \"{p}\"");
        }
        if let Some(gr) = self.graceful_restart {
            let _ = writeln!(s, "graceful_restart = {gr}");
        }
        if let Some(i) = &self.import {
            let _ = writeln!(s, "import = \"{i}\"");
        }
        if !self.families.is_empty() {
            let list: Vec<String> = self.families.iter().map(|f| format!("\"{f}\"")).collect();
            let _ = writeln!(s, "families = [{}]", list.join(", "));
        }
    }
}

/// A `[[listen_range]]`: dynamic neighbours dialling in from `prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeConfig {
    pub prefix: Prefix,
    pub asn: u32,
    pub session: SessionOptions,
}

/// A `[[peer]]`: a configured neighbour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    pub address: IpAddr,
    pub asn: u32,
    pub passive: bool,
    pub description: Option<String>,
    pub session: SessionOptions,
}

/// What ecmpd is told: the file `ecmpd router --config` reads, in the fields the interop
/// tests need (every field is documented in `testbed/router/README.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcmpdConfig {
    pub router_id: Ipv4Addr,
    pub asn: u32,
    /// BGP listen addresses (port 179 on the router's addresses).
    pub listen: Vec<SocketAddr>,
    /// The management API (loopback of the router namespace).
    pub api: SocketAddr,
    pub graceful_restart: bool,
    pub restart_time_s: u16,
    pub connect_retry_s: u16,
    pub ranges: Vec<RangeConfig>,
    pub peers: Vec<PeerConfig>,
    pub bfd_profiles: Vec<BfdProfile>,
    /// `[policy.NAME]` with its `accept` list (prefix ranges as ecmpd writes them).
    pub policies: Vec<(String, Vec<String>)>,
    pub maximum_paths: u16,
}

impl EcmpdConfig {
    /// A router in `asn` with identifier `router_id`, BGP on port 179 of `listen`, the API
    /// on 127.0.0.1:2179, graceful restart on (restart time 120 s), connect retry 1 s,
    /// the in-memory data plane.
    pub fn new(asn: u32, router_id: Ipv4Addr, listen: &[IpAddr]) -> Self {
        EcmpdConfig {
            router_id,
            asn,
            listen: listen.iter().map(|a| SocketAddr::new(*a, 179)).collect(),
            api: "127.0.0.1:2179".parse().expect("valid"),
            graceful_restart: true,
            restart_time_s: 120,
            connect_retry_s: 1,
            ranges: Vec::new(),
            peers: Vec::new(),
            bfd_profiles: Vec::new(),
            policies: Vec::new(),
            maximum_paths: 16,
        }
    }

    pub fn range(mut self, prefix: Prefix, asn: u32, session: SessionOptions) -> Self {
        self.ranges.push(RangeConfig {
            prefix,
            asn,
            session,
        });
        self
    }

    pub fn peer(mut self, peer: PeerConfig) -> Self {
        self.peers.push(peer);
        self
    }

    pub fn bfd(mut self, profile: BfdProfile) -> Self {
        self.bfd_profiles.push(profile);
        self
    }

    pub fn policy(mut self, name: &str, accept: &[&str]) -> Self {
        self.policies.push((
            name.to_string(),
            accept.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }
}

/// Renders the TOML file `ecmpd router --config` reads.
pub fn render(cfg: &EcmpdConfig) -> String {
    let mut s = String::from("# ecmpd as the router under test: generated by ecmpd's testbed\n");
    s.push_str("[router]\n");
    let _ = writeln!(s, "id = \"{}\"", cfg.router_id);
    let _ = writeln!(s, "asn = {}", cfg.asn);
    let listen: Vec<String> = cfg.listen.iter().map(|a| format!("\"{a}\"")).collect();
    let _ = writeln!(s, "listen = [{}]", listen.join(", "));
    let _ = writeln!(s, "connect_retry = \"{}s\"", cfg.connect_retry_s);
    let _ = writeln!(s, "graceful_restart = {}", cfg.graceful_restart);
    let _ = writeln!(s, "restart_time = \"{}s\"", cfg.restart_time_s);
    let _ = writeln!(s, "\n[api]\nlisten = \"{}\"", cfg.api);
    for r in &cfg.ranges {
        s.push_str("\n[[listen_range]]\n");
        let _ = writeln!(s, "prefix = \"{}\"", r.prefix);
        let _ = writeln!(s, "asn = {}", r.asn);
        r.session.render(&mut s);
    }
    for p in &cfg.peers {
        s.push_str("\n[[peer]]\n");
        let _ = writeln!(s, "address = \"{}\"", p.address);
        let _ = writeln!(s, "asn = {}", p.asn);
        if let Some(d) = &p.description {
            let _ = writeln!(s, "description = \"{d}\"");
        }
        if p.passive {
            s.push_str("passive = true\n");
        }
        p.session.render(&mut s);
    }
    for b in &cfg.bfd_profiles {
        let _ = writeln!(s, "\n[bfd_profile.{}]", b.name);
        let _ = writeln!(s, "receive_interval = \"{}ms\"", b.receive_interval_ms);
        let _ = writeln!(s, "transmit_interval = \"{}ms\"", b.transmit_interval_ms);
        let _ = writeln!(s, "detect_multiplier = {}", b.detect_multiplier);
    }
    for (name, accept) in &cfg.policies {
        let list: Vec<String> = accept.iter().map(|a| format!("\"{a}\"")).collect();
        let _ = writeln!(s, "\n[policy.{name}]\naccept = [{}]", list.join(", "));
    }
    let _ = writeln!(
        s,
        "\n[multipath]\nmaximum_paths = {}\n\n[dataplane]\nbackend = \"memory\"",
        cfg.maximum_paths
    );
    s
}

/// A running `ecmpd router`; stopped by PID (SIGTERM, then SIGKILL) and its directory
/// removed on drop.
pub struct Ecmpd {
    ns: String,
    binary: PathBuf,
    config: String,
    api: SocketAddr,
    daemon: Daemon,
    dir: Workdir,
}

impl Ecmpd {
    /// Checks the configuration with `ecmpd config check`, starts `ecmpd router` in `ns`
    /// and waits until its API answers.
    pub fn start(ns: &Netns, binary: &Path, cfg: &EcmpdConfig) -> Result<Ecmpd> {
        crate::require_root()?;
        if !binary.exists() {
            return Err(Error::Missing(binary.display().to_string()));
        }
        let dir = Workdir::new("ecmpd-router")?;
        let config = render(cfg);
        let conf = dir.write("router.toml", &config)?;
        let conf = conf.to_str().expect("temp paths are UTF-8");
        let bin = binary.to_str().expect("the binary's path is UTF-8");
        run(std::process::Command::new(bin).args(["config", "check", conf])).map_err(|e| {
            Error::Parse {
                what: "the rendered router configuration".into(),
                detail: format!("{e}\n{config}"),
            }
        })?;
        let daemon = Daemon::spawn(
            ns.name(),
            "ecmpd",
            &[bin, "router", "--config", conf],
            &[("RUST_LOG", "info"), ("NO_COLOR", "1")],
            dir.join("ecmpd.log"),
        )?;
        let ecmpd = Ecmpd {
            ns: ns.name().to_string(),
            binary: binary.to_path_buf(),
            config,
            api: cfg.api,
            daemon,
            dir,
        };
        wait_for(
            "ecmpd to answer on its management API",
            Duration::from_secs(15),
            &[&ecmpd],
            || {
                ecmpd.daemon.ensure_running()?;
                Ok(ecmpd.bgp_summary().is_ok().then_some(()))
            },
        )?;
        Ok(ecmpd)
    }

    /// Runs `ecmpd show ARGS --json --api ADDR` inside the router namespace and parses
    /// its JSON.
    pub fn show<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T> {
        let text = self.show_text(args, true)?;
        serde_json::from_str(&text).map_err(|e| Error::Parse {
            what: format!("`ecmpd show {}` in {}", args.join(" "), self.ns),
            detail: format!("{e}: {text}"),
        })
    }

    fn show_text(&self, args: &[&str], json: bool) -> Result<String> {
        let api = self.api.to_string();
        let mut cmd = crate::netns::command_in(&self.ns, self.binary.to_str().expect("UTF-8 path"));
        cmd.arg("show").args(args).args(["--api", &api]);
        if json {
            cmd.arg("--json");
        }
        run(&mut cmd)
    }

    /// `show bgp summary`.
    pub fn bgp_summary(&self) -> Result<BgpSummary> {
        self.show(&["bgp", "summary"])
    }

    /// `show bgp routes [PREFIX]`.
    pub fn bgp_routes(&self, prefix: Option<&Prefix>) -> Result<Vec<RouteEntry>> {
        match prefix {
            Some(p) => self.show(&["bgp", "routes", &p.to_string()]),
            None => self.show(&["bgp", "routes"]),
        }
    }

    /// `show fib`.
    pub fn fib(&self) -> Result<FibView> {
        self.show(&["fib"])
    }

    /// The FIB route for exactly `prefix`, if installed.
    pub fn fib_route(&self, prefix: &Prefix) -> Result<Option<FibRoute>> {
        let want = prefix.to_string();
        Ok(self.fib()?.routes.into_iter().find(|r| r.prefix == want))
    }

    /// The members of `prefix`'s nexthop group; empty when the prefix is not installed.
    pub fn fib_members(&self, prefix: &Prefix) -> Result<Vec<FibMember>> {
        Ok(self
            .fib_route(prefix)?
            .map(|r| r.members)
            .unwrap_or_default())
    }

    /// `show bfd peers`.
    pub fn bfd_peers(&self) -> Result<Vec<BfdPeerView>> {
        self.show(&["bfd", "peers"])
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Where ecmpd's stderr (its log) goes.
    pub fn log(&self) -> PathBuf {
        self.dir.join("ecmpd.log")
    }

    pub fn config(&self) -> &str {
        &self.config
    }

    /// Fails with [`Error::Exited`] if ecmpd has exited.
    pub fn ensure_running(&self) -> Result<()> {
        self.daemon.ensure_running()
    }
}

impl Diagnose for Ecmpd {
    fn diagnostics(&self) -> String {
        let mut s = format!(
            "==== ecmpd in {} ({}, API {})\n",
            self.ns,
            self.dir.path().display(),
            self.api
        );
        let _ = writeln!(s, "---- router.toml\n{}", self.config);
        let _ = writeln!(s, "---- ecmpd.log (tail)\n{}", tail(&self.log(), 60));
        for what in [&["bgp", "summary"][..], &["fib"], &["bfd", "peers"]] {
            match self.show_text(what, false) {
                Ok(t) => {
                    let _ = writeln!(s, "---- show {}\n{t}", what.join(" "));
                }
                Err(e) => {
                    let _ = writeln!(s, "---- show {}: {e}", what.join(" "));
                }
            }
        }
        s
    }
}

impl Speaker for Ecmpd {
    fn kind(&self) -> &'static str {
        "ecmpd"
    }

    fn namespace(&self) -> &str {
        &self.ns
    }

    /// The neighbour's FSM state from `show bgp summary`; a dynamic neighbour that is not
    /// connected is not listed and reads as Idle.
    fn session_state(&self, peer: IpAddr) -> Result<SessionState> {
        self.daemon.ensure_running()?;
        let summary = self.bgp_summary()?;
        Ok(summary
            .peers
            .iter()
            .find(|p| p.address == peer)
            .map_or(SessionState::Idle, |p| SessionState::from_name(&p.state)))
    }

    fn as_diagnose(&self) -> &dyn Diagnose {
        self
    }
}
