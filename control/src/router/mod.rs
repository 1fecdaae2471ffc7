//! The router: every control-plane task wired together from one
//! configuration.
//!
//! Tasks and what flows between them (the one place that shows them all):
//!
//! ```text
//!  speakers ──TCP──▶ BgpInstance (session tasks, one instance task owning the FSMs)
//!                        │ SessionEvent (bounded mpsc)
//!                        ▼
//!  BfdRunner ─PeerEvent─▶ owner task ◀── Query (bounded mpsc) ── ApiServer ◀─HTTP─ `ecmpd show`
//!                        │   owns the Rib and the FibWriter; single owner, no locks
//!                        ├──▶ FibWriter::apply (one publish per burst of events)
//!                        ├──▶ BgpInstance commands (max-prefix Cease, BFD down,
//!                        │    UPDATEs re-advertising the FIB to upstream peers)
//!                        └──▶ FibBatch listeners (the demo mirrors every FIB change)
//! ```
//!
//! The owner task drains whatever events are waiting, lets the RIB decide
//! the prefixes they touched, and applies the resulting FIB updates as one
//! batch, so a burst of UPDATEs costs one FIB publish. A BFD Down takes the
//! BGP session down at once; the time from the last BFD packet received to
//! the FIB change is recorded per peer and shown by `ecmpd show bfd peers`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::fib::table::{self, FibConfig, FibUpdate, FibWriter, Prefix};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::api::view::{
    BfdDownView, BfdPeerView, BgpSummary, Counts, FibMember, FibRoute, FibView, NeighbourSummary,
    PathView as ApiPath, RouteEntry,
};
use crate::api::{ApiServer, ApiStartError, Query};
use crate::bfd::runner::{BfdRunner, PeerEvent, RunnerConfig};
use crate::bfd::State as BfdState;
use crate::bgp::fsm::{PeerAsMatch, RetryBackoff};
use crate::bgp::session::{
    BgpConfig, BgpInstance, Hops, ListenRange as SessionRange, NeighborConfig, PeerKey,
    SessionError, SessionEvent, SessionEventKind, SessionTimers,
};
use crate::bgp::wire::attrs::{Origin, PathAttributes};
use crate::bgp::wire::update::{MpNextHop, MpReach, MpUnreach};
use crate::bgp::wire::{AfiSafi, DecodedUpdate, Outcome, RouteRefreshSubtype, Update};
use crate::config::{Config, PeerAs, Session};
use crate::rib::policy::{ForwardingPolicies, ImportPolicy};
use crate::rib::{MaxPrefix, PeerId, PeerInfo, Rib, RibConfig, SessionCommand};

/// The longest the owner task keeps taking a burst of session events
/// before applying what it has to the FIB.
const BURST_MAX: Duration = Duration::from_millis(20);

/// One FIB batch the router applied, for listeners such as the demo.
#[derive(Debug, Clone)]
pub struct FibBatch {
    /// When it was applied.
    pub at: Instant,
    /// The updates, as given to the FIB writer.
    pub updates: Vec<FibUpdate>,
    /// What caused it, in words (`127.0.0.4 down: peer closed the
    /// connection`).
    pub causes: Vec<String>,
}

/// How to start a router beyond its configuration.
#[derive(Debug, Default)]
pub struct RouterOptions {
    /// BGP listen addresses instead of the configuration's (port 0 picks
    /// one).
    pub bgp_listen: Option<Vec<SocketAddr>>,
    /// Management API address instead of the configuration's; port 0 picks
    /// one.
    pub api_listen: Option<SocketAddr>,
    /// No management API at all (in-process users query directly).
    pub no_api: bool,
    /// Told of every FIB batch.
    pub fib_listener: Option<mpsc::UnboundedSender<FibBatch>>,
}

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The BGP side could not start.
    #[error("BGP: {0}")]
    Bgp(#[from] SessionError),
    /// The management API could not start.
    #[error("{0}")]
    Api(#[from] ApiStartError),
    /// BFD could not start.
    #[error("BFD on {addr}: {message}")]
    Bfd {
        /// The address it was to bind.
        addr: IpAddr,
        /// What went wrong.
        message: String,
    },
}

/// A running router.
pub struct Router {
    bgp_addrs: Vec<SocketAddr>,
    api: Option<ApiServer>,
    queries: mpsc::Sender<Query>,
    stop: Option<oneshot::Sender<()>>,
    owner: JoinHandle<()>,
}

impl Router {
    /// Start every task of `config`.
    pub async fn start(config: Config, options: RouterOptions) -> Result<Router, RouterError> {
        let config = Arc::new(config);
        let mut bgp_config = bgp_config(&config);
        if let Some(listen) = options.bgp_listen.clone() {
            bgp_config.listen = listen;
        }
        let (bgp, events) = BgpInstance::start(bgp_config)?;
        let bgp_addrs = bgp.listen_addrs().to_vec();

        let mut bfd = Vec::new();
        let (bfd_tx, bfd_rx) = mpsc::channel::<PeerEvent>(1024);
        if uses_bfd(&config) {
            for family_v6 in [false, true] {
                let Some(local) = bgp_addrs
                    .iter()
                    .map(|a| a.ip())
                    .find(|ip| ip.is_ipv6() == family_v6)
                else {
                    continue;
                };
                let (runner, mut rx) =
                    BfdRunner::start(RunnerConfig::new(local)).map_err(|e| RouterError::Bfd {
                        addr: local,
                        message: e.to_string(),
                    })?;
                let tx = bfd_tx.clone();
                tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        if tx.send(ev).await.is_err() {
                            break;
                        }
                    }
                });
                bfd.push(runner);
            }
        }

        let (queries, query_rx) = mpsc::channel::<Query>(64);
        let api = if options.no_api {
            None
        } else {
            let addr = options.api_listen.unwrap_or(config.api.listen);
            Some(ApiServer::start(addr, queries.clone()).await?)
        };

        let (stop, stopped) = oneshot::channel();
        let owner = Owner::new(config, bgp, bfd, options.fib_listener);
        let task = tokio::spawn(owner.run(events, query_rx, bfd_rx, stopped));
        Ok(Router {
            bgp_addrs,
            api,
            queries,
            stop: Some(stop),
            owner: task,
        })
    }

    /// Where BGP listens (real ports).
    pub fn bgp_addrs(&self) -> &[SocketAddr] {
        &self.bgp_addrs
    }

    /// Where the management API listens, if it runs.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(|a| a.addr)
    }

    /// Ask the owner task directly (what the API does over HTTP).
    pub fn queries(&self) -> mpsc::Sender<Query> {
        self.queries.clone()
    }

    /// The FIB as `show fib` sees it.
    pub async fn fib(&self) -> Option<FibView> {
        let (tx, rx) = oneshot::channel();
        self.queries.send(Query::Fib(tx)).await.ok()?;
        rx.await.ok()
    }

    /// `show bgp summary`.
    pub async fn bgp_summary(&self) -> Option<BgpSummary> {
        let (tx, rx) = oneshot::channel();
        self.queries.send(Query::BgpSummary(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stop every task: sessions close, the API stops.
    pub async fn shutdown(mut self) {
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.owner).await;
    }
}

/// Whether any session asks for BFD.
fn uses_bfd(config: &Config) -> bool {
    config
        .peers
        .iter()
        .map(|p| &p.session)
        .chain(config.listen_ranges.iter().map(|r| &r.session))
        .any(|s| s.bfd_profile.is_some())
}

fn secs_u16(d: Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}

fn timers(config: &Config, s: &Session) -> SessionTimers {
    SessionTimers {
        hold_time: secs_u16(s.timers.hold_time),
        keepalive: Some(secs_u16(s.timers.keepalive)),
        connect_retry: RetryBackoff {
            base: config.router.connect_retry,
            max: config.router.connect_retry_max,
        },
        ..SessionTimers::default()
    }
}

fn hops(s: &Session) -> Hops {
    match (s.ttl_security, s.ebgp_multihop) {
        (Some(n), _) => Hops::Gtsm(n),
        (None, Some(ttl)) => Hops::Multihop(ttl),
        (None, None) => Hops::Direct,
    }
}

/// The session layer's configuration from the router's.
pub fn bgp_config(config: &Config) -> BgpConfig {
    let mut b = BgpConfig::new(config.router.asn, config.router.id);
    b.listen = config.router.listen.clone();
    for p in &config.peers {
        let mut n = NeighborConfig::new(
            p.address,
            match p.asn {
                PeerAs::Exact(a) => PeerAsMatch::Exact(a),
                PeerAs::Internal => PeerAsMatch::Internal,
                PeerAs::External => PeerAsMatch::External,
            },
        );
        n.port = p.port;
        n.passive = p.passive;
        n.timers = timers(config, &p.session);
        n.password = p.session.password.as_ref().map(|k| k.expose().to_string());
        n.hops = hops(&p.session);
        n.source = p.source;
        b.neighbors.push(n);
    }
    for r in &config.listen_ranges {
        let mut l = SessionRange::new(r.prefix, r.asn.clone());
        l.timers = timers(config, &r.session);
        l.password = r.session.password.as_ref().map(|k| k.expose().to_string());
        l.hops = hops(&r.session);
        l.limit = r.limit as usize;
        b.listen_ranges.push(l);
    }
    b
}

/// The RIB's configuration from the router's.
pub fn rib_config(config: &Config) -> RibConfig {
    let mut r = RibConfig::new(config.router.asn);
    let max = usize::from(config.multipath.maximum_paths.max(1));
    r.maximum_paths = max;
    r.maximum_paths_ibgp = if config.multipath.ibgp { max } else { 1 };
    r.as_path_relax = config.multipath.as_path_relax;
    r.forwarding = ForwardingPolicies {
        default: config.forwarding.default,
        ranges: config
            .forwarding
            .rules
            .iter()
            .map(|rule| (rule.prefix, rule.policy))
            .collect(),
    };
    r
}

/// How fast one BFD failure was acted on.
#[derive(Debug, Clone)]
struct BfdDown {
    /// The diagnostic of the Down.
    diag: String,
    last_rx: Option<Instant>,
    detected: Instant,
    fib: Option<Instant>,
}

/// The task that owns the RIB and the FIB writer.
struct Owner {
    config: Arc<Config>,
    start: Instant,
    rib: Rib,
    fib: FibWriter,
    bgp: BgpInstance,
    bfd: Vec<BfdRunner>,
    policies: HashMap<String, Arc<ImportPolicy>>,
    accept_all: Arc<ImportPolicy>,
    peer_ids: HashMap<IpAddr, PeerId>,
    keys: HashMap<IpAddr, PeerKey>,
    last_errors: HashMap<IpAddr, String>,
    bfd_downs: HashMap<IpAddr, BfdDown>,
    listener: Option<mpsc::UnboundedSender<FibBatch>>,
    causes: Vec<String>,
    /// Established upstream peers (`upstream = true`): they are sent every
    /// installed route.
    upstreams: HashMap<IpAddr, Upstream>,
    /// Families each established neighbour negotiated.
    families: HashMap<IpAddr, Vec<AfiSafi>>,
}

/// An upstream peer the router re-advertises its routes to.
#[derive(Debug, Clone)]
struct Upstream {
    key: PeerKey,
    internal: bool,
    families: Vec<AfiSafi>,
}

impl Owner {
    fn new(
        config: Arc<Config>,
        bgp: BgpInstance,
        bfd: Vec<BfdRunner>,
        listener: Option<mpsc::UnboundedSender<FibBatch>>,
    ) -> Owner {
        let rib = Rib::new(rib_config(&config));
        let (fib, _reader) = table::new(FibConfig {
            default_policy: config.forwarding.default,
            ..FibConfig::default()
        });
        let policies = config
            .policies
            .iter()
            .map(|(name, p)| (name.clone(), Arc::new(p.clone())))
            .collect();
        Owner {
            config,
            start: Instant::now(),
            rib,
            fib,
            bgp,
            bfd,
            policies,
            accept_all: Arc::new(ImportPolicy::accept_all()),
            peer_ids: HashMap::new(),
            keys: HashMap::new(),
            last_errors: HashMap::new(),
            bfd_downs: HashMap::new(),
            listener,
            causes: Vec::new(),
            upstreams: HashMap::new(),
            families: HashMap::new(),
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<SessionEvent>,
        mut queries: mpsc::Receiver<Query>,
        mut bfd_events: mpsc::Receiver<PeerEvent>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let mut upkeep = tokio::time::interval(Duration::from_secs(1));
        upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let rib_deadline = self
                .rib
                .next_deadline()
                .map(|d| tokio::time::Instant::from_std(self.start + d));
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    self.on_session(ev).await;
                    let mut handled = 1;
                    let burst = Instant::now();
                    loop {
                        while let Ok(ev) = events.try_recv() {
                            self.on_session(ev).await;
                            handled += 1;
                        }
                        // In a burst (a table arriving), let the session task
                        // queue more before writing the FIB, so it is written
                        // in fewer, larger batches; a lone event (a BFD
                        // failure, one withdrawal) is applied at once, and a
                        // burst at least every BURST_MAX.
                        if handled < 2 || burst.elapsed() >= BURST_MAX {
                            break;
                        }
                        tokio::task::yield_now().await;
                        if events.is_empty() {
                            break;
                        }
                    }
                }
                Some(q) = queries.recv() => self.answer(q).await,
                Some(ev) = bfd_events.recv() => self.on_bfd(ev).await,
                _ = sleep_until(rib_deadline) => {
                    let now = self.now();
                    self.rib.poll(now);
                    self.causes.push("graceful-restart timer".into());
                }
                _ = upkeep.tick() => {
                    let now = self.now().as_nanos() as u64;
                    let up = self.fib.upkeep(now);
                    if !up.migrated.is_empty() {
                        tracing::debug!("resilient upkeep moved buckets of {} groups", up.migrated.len());
                    }
                }
                _ = &mut stopped => break,
            }
            self.flush().await;
        }
        for runner in self.bfd.drain(..) {
            runner.shutdown().await;
        }
        self.bgp.shutdown().await;
    }

    fn peer_id(&mut self, addr: IpAddr) -> PeerId {
        let next = self.peer_ids.len() as u32;
        *self.peer_ids.entry(addr).or_insert(PeerId(next))
    }

    /// The session options that apply to a neighbour: its `[[peer]]`, or
    /// its listen range.
    fn session_for(&self, addr: IpAddr) -> Option<&Session> {
        self.config
            .peer(addr)
            .map(|p| &p.session)
            .or_else(|| self.config.listen_range_for(addr).map(|r| &r.session))
    }

    async fn on_session(&mut self, ev: SessionEvent) {
        let addr = ev.peer.address;
        let now = self.now();
        let id = self.peer_id(addr);
        match ev.kind {
            SessionEventKind::Established(neg) => {
                self.keys.insert(addr, ev.peer);
                let session = self.session_for(addr).cloned();
                let import = session
                    .as_ref()
                    .and_then(|s| s.import.as_ref())
                    .and_then(|n| self.policies.get(n).cloned())
                    .unwrap_or_else(|| self.accept_all.clone());
                let max_prefix = session
                    .as_ref()
                    .and_then(|s| s.max_prefix)
                    .map(|m| MaxPrefix {
                        limit: m.limit,
                        warning_only: m.warning_only,
                        hold_down: m.restart_after,
                    });
                let info = PeerInfo::from_negotiated(addr, &neg, import, max_prefix);
                self.rib.peer_up(id, info, now);
                self.families.insert(addr, neg.families.clone());
                if self.config.peer(addr).is_some_and(|p| p.upstream) {
                    let up = Upstream {
                        key: ev.peer,
                        internal: neg.internal,
                        families: neg.families.clone(),
                    };
                    self.upstreams.insert(addr, up);
                    self.send_table(addr).await;
                } else {
                    // A speaker gets nothing from us, so our initial update is
                    // complete at once: say so with End-of-RIB per family (RFC 4724
                    // 2). A restarting speaker (BIRD -R, GoBGP -r, FRR -K) holds
                    // its own routes back until every peer's End-of-RIB is in.
                    for family in &neg.families {
                        if let Err(e) = self
                            .bgp
                            .send_update(ev.peer, Update::end_of_rib(*family))
                            .await
                        {
                            tracing::debug!(peer = %addr, "cannot send End-of-RIB: {e}");
                        }
                    }
                }
                self.causes.push(format!("{addr} up (AS {})", neg.peer_as));
                tracing::info!(peer = %addr, asn = neg.peer_as, "BGP session established");
                if let Some(profile) = session
                    .as_ref()
                    .and_then(|s| self.config.bfd_for(s))
                    .copied()
                {
                    if let Some(runner) = self
                        .bfd
                        .iter()
                        .find(|r| r.local_addr().is_ipv6() == addr.is_ipv6())
                    {
                        if let Err(e) = runner.add_peer(addr, profile).await {
                            tracing::warn!(peer = %addr, "cannot start BFD: {e}");
                        }
                    }
                }
            }
            SessionEventKind::Down { reason, stale } => {
                let graceful = self.session_for(addr).map_or(true, |s| s.graceful_restart)
                    && self.config.router.graceful_restart.helper;
                let stale = stale.filter(|_| graceful);
                let kept = stale.is_some();
                self.upstreams.remove(&addr);
                self.families.remove(&addr);
                self.rib.peer_down(id, stale.as_ref(), now);
                let why = reason.to_string();
                tracing::info!(peer = %addr, stale = kept, "BGP session down: {why}");
                self.causes.push(format!("{addr} down: {why}"));
                self.last_errors.insert(addr, why);
                for runner in &self.bfd {
                    if runner.local_addr().is_ipv6() == addr.is_ipv6() {
                        let _ = runner.remove_peer(addr).await;
                    }
                }
            }
            SessionEventKind::Update(decoded) => {
                if decoded.outcome == Outcome::TreatAsWithdraw {
                    tracing::warn!(peer = %addr, problems = ?decoded.problems, "UPDATE treated as withdraw (RFC 7606)");
                }
                if let Err(e) = self.rib.apply_update(id, &decoded, now) {
                    tracing::warn!(peer = %addr, "UPDATE not applied: {e}");
                }
                // Causes are for FIB listeners only; skip the allocation
                // per UPDATE when nobody listens.
                if self.listener.is_some() {
                    self.causes.push(format!("UPDATE from {addr}"));
                }
            }
            SessionEventKind::EndOfRib(family) => {
                let eor = DecodedUpdate {
                    update: Update::end_of_rib(family),
                    outcome: Outcome::Accept,
                    problems: Vec::new(),
                };
                if let Err(e) = self.rib.apply_update(id, &eor, now) {
                    tracing::debug!(peer = %addr, "End-of-RIB not applied: {e}");
                }
                self.causes.push(format!("End-of-RIB from {addr}"));
            }
            SessionEventKind::RouteRefreshRequest(rr) => {
                if rr.subtype == RouteRefreshSubtype::Request && self.upstreams.contains_key(&addr)
                {
                    self.send_table(addr).await;
                } else {
                    self.rib.route_refresh(id, &rr, now);
                }
            }
        }
    }

    async fn on_bfd(&mut self, ev: PeerEvent) {
        tracing::info!(peer = %ev.peer, state = ?ev.state, diag = ?ev.diag, "BFD state change");
        if ev.state != BfdState::Down || ev.from != BfdState::Up {
            return;
        }
        self.bfd_downs.insert(
            ev.peer,
            BfdDown {
                diag: format!("{:?}", ev.diag),
                last_rx: ev.last_rx,
                detected: ev.at,
                fib: None,
            },
        );
        if let Some(key) = self.keys.get(&ev.peer).copied() {
            if let Err(e) = self.bgp.bfd_down(key).await {
                tracing::warn!(peer = %ev.peer, "cannot take the BGP session down: {e}");
            }
        }
    }

    /// Apply what the RIB decided as one FIB batch, and pass its session
    /// commands on.
    async fn flush(&mut self) {
        let out = self.rib.take_output();
        if !out.fib.is_empty() {
            let at = Instant::now();
            let now = self.now().as_nanos() as u64;
            match self.fib.apply(&out.fib, now) {
                Ok(_) => self.fib.release_lpm_quarantine(),
                Err(e) => tracing::error!("the FIB refused {} updates: {e}", out.fib.len()),
            }
            for down in self.bfd_downs.values_mut().filter(|d| d.fib.is_none()) {
                down.fib = Some(at);
                if let Some(rx) = down.last_rx {
                    tracing::info!(
                        "BFD failure acted on: detected {:.0} ms and FIB changed {:.0} ms after the last packet",
                        down.detected.saturating_duration_since(rx).as_secs_f64() * 1e3,
                        at.saturating_duration_since(rx).as_secs_f64() * 1e3
                    );
                }
            }
            if !self.upstreams.is_empty() {
                self.readvertise(&out.fib).await;
            }
            if let Some(l) = &self.listener {
                let _ = l.send(FibBatch {
                    at,
                    updates: out.fib,
                    causes: std::mem::take(&mut self.causes),
                });
            }
        }
        self.causes.clear();
        for cmd in out.sessions {
            match cmd {
                SessionCommand::MaxPrefixExceeded {
                    peer,
                    family,
                    limit,
                    hold_down,
                } => {
                    let Some(key) = self.key_of(peer) else {
                        continue;
                    };
                    tracing::warn!(peer = %key.address, limit, "maximum prefixes exceeded: sending Cease");
                    let _ = self
                        .bgp
                        .max_prefix_exceeded(key, family, limit, hold_down)
                        .await;
                }
                SessionCommand::MaxPrefixWarning { peer, limit, .. } => {
                    if let Some(key) = self.key_of(peer) {
                        tracing::warn!(peer = %key.address, limit, "over the prefix limit (warning only)");
                    }
                }
            }
        }
    }

    /// Our next hop towards an upstream peer: its configured `source`, else
    /// a specific BGP listen address of the family, else (IPv4) the router
    /// id.
    fn next_hop_self(&self, peer: IpAddr, v6: bool) -> Option<IpAddr> {
        let source = self.config.peer(peer).and_then(|p| p.source);
        source
            .filter(|s| s.is_ipv6() == v6)
            .or_else(|| {
                self.config
                    .router
                    .listen
                    .iter()
                    .map(|a| a.ip())
                    .find(|ip| ip.is_ipv6() == v6 && !ip.is_unspecified())
            })
            .or_else(|| (!v6).then_some(IpAddr::V4(self.config.router.id)))
    }

    /// The UPDATE announcing `prefix` to upstream `to`: the best path's AS
    /// path (with our AS in front towards an external peer), ORIGIN of the
    /// best path, next hop self. `None` when we have no next hop of the
    /// family or the peer did not negotiate it.
    fn announcement(&self, to: IpAddr, up: &Upstream, prefix: Prefix) -> Option<Update> {
        let v6 = matches!(prefix, Prefix::V6(..));
        let family = if v6 {
            AfiSafi::IPV6_UNICAST
        } else {
            AfiSafi::IPV4_UNICAST
        };
        if !up.families.contains(&family) {
            return None;
        }
        let nh = self.next_hop_self(to, v6)?;
        let best = self.rib.route(&prefix).and_then(|r| {
            r.paths
                .iter()
                .find(|p| p.best)
                .map(|p| p.attributes.attrs.clone())
        });
        let path = best
            .as_ref()
            .and_then(|a| a.as_path.clone())
            .unwrap_or_default();
        let attributes = PathAttributes {
            origin: Some(best.as_ref().and_then(|a| a.origin).unwrap_or(Origin::Igp)),
            as_path: Some(if up.internal {
                path
            } else {
                path.prepend(self.config.router.asn)
            }),
            local_pref: up.internal.then_some(100),
            communities: best.map(|a| a.communities).unwrap_or_default(),
            ..PathAttributes::default()
        };
        let mut u = Update {
            attributes,
            ..Update::default()
        };
        match (prefix, nh) {
            (Prefix::V4(..), IpAddr::V4(a)) => {
                u.attributes.next_hop = Some(a);
                u.nlri.push(prefix);
            }
            (Prefix::V6(..), IpAddr::V6(_)) => {
                u.mp_reach = Some(MpReach {
                    family,
                    next_hop: MpNextHop {
                        global: nh,
                        link_local: None,
                    },
                    nlri: vec![prefix],
                });
            }
            _ => return None,
        }
        Some(u)
    }

    /// The withdrawal of `prefix`.
    fn withdrawal(prefix: Prefix) -> Update {
        match prefix {
            Prefix::V4(..) => Update {
                withdrawn: vec![prefix],
                ..Update::default()
            },
            Prefix::V6(..) => Update {
                mp_unreach: Some(MpUnreach {
                    family: AfiSafi::IPV6_UNICAST,
                    withdrawn: vec![prefix],
                }),
                ..Update::default()
            },
        }
    }

    /// Send every installed route to upstream `to`, then End-of-RIB per
    /// family.
    async fn send_table(&self, to: IpAddr) {
        let Some(up) = self.upstreams.get(&to) else {
            return;
        };
        let prefixes: Vec<Prefix> = self.rib.installed_routes().map(|(p, _)| p).collect();
        for prefix in prefixes {
            if let Some(u) = self.announcement(to, up, prefix) {
                if let Err(e) = self.bgp.send_update(up.key, u).await {
                    tracing::warn!(peer = %to, "cannot re-advertise {prefix}: {e}");
                    return;
                }
            }
        }
        for family in &up.families {
            let _ = self
                .bgp
                .send_update(up.key, Update::end_of_rib(*family))
                .await;
        }
    }

    /// Pass a FIB batch on to every upstream peer: announce what is
    /// installed, withdraw what is gone.
    async fn readvertise(&self, batch: &[FibUpdate]) {
        for (to, up) in &self.upstreams {
            for u in batch {
                let update = match u {
                    FibUpdate::SetRoute {
                        prefix, nexthops, ..
                    } if !nexthops.is_empty() => self.announcement(*to, up, *prefix),
                    FibUpdate::SetRoute { prefix, .. } | FibUpdate::RemoveRoute { prefix } => {
                        Some(Self::withdrawal(*prefix))
                    }
                    FibUpdate::SetDefaultPolicy(_) => None,
                };
                if let Some(update) = update {
                    if let Err(e) = self.bgp.send_update(up.key, update).await {
                        tracing::warn!(peer = %to, "cannot re-advertise: {e}");
                        break;
                    }
                }
            }
        }
    }

    fn key_of(&self, peer: PeerId) -> Option<PeerKey> {
        let addr = self.peer_ids.iter().find(|(_, id)| **id == peer)?.0;
        self.keys.get(addr).copied()
    }

    async fn answer(&mut self, q: Query) {
        match q {
            Query::BgpSummary(tx) => {
                let _ = tx.send(self.summary().await);
            }
            Query::BgpRoutes(filter, tx) => {
                let _ = tx.send(self.routes(filter.as_deref()));
            }
            Query::Fib(tx) => {
                let _ = tx.send(self.fib_view());
            }
            Query::Counts(tx) => {
                let _ = tx.send(Counts {
                    rib_prefixes: self.rib.len() as u64,
                    fib_routes: self.fib.route_count() as u64,
                    fib_groups: self.fib.group_count() as u64,
                });
            }
            Query::BfdPeers(tx) => {
                let _ = tx.send(self.bfd_view().await);
            }
            Query::Metrics(tx) => {
                let _ = tx.send(self.metrics().await);
            }
            Query::Refresh(peer, tx) => {
                let _ = tx.send(self.refresh(peer).await);
            }
        }
    }

    /// Send ROUTE-REFRESH for every family `peer` negotiated.
    async fn refresh(&self, peer: IpAddr) -> Result<Vec<String>, String> {
        let (Some(key), Some(families)) = (self.keys.get(&peer), self.families.get(&peer)) else {
            return Err(format!("{peer} has no established session"));
        };
        let mut asked = Vec::new();
        for f in families {
            self.bgp
                .route_refresh(*key, *f)
                .await
                .map_err(|e| e.to_string())?;
            asked.push(match *f {
                AfiSafi::IPV4_UNICAST => "ipv4-unicast".to_string(),
                AfiSafi::IPV6_UNICAST => "ipv6-unicast".to_string(),
                other => format!("AFI {} SAFI {}", other.afi.0, other.safi.0),
            });
        }
        Ok(asked)
    }

    async fn summary(&self) -> BgpSummary {
        let snap = self.bgp.snapshot().await.ok();
        let mut peers = Vec::new();
        for n in snap.iter().flat_map(|s| s.neighbors.iter()) {
            let addr = n.peer.address;
            let counts = self
                .peer_ids
                .get(&addr)
                .and_then(|id| self.rib.peer_counts(*id))
                .unwrap_or_default();
            let range = self
                .config
                .listen_range_for(addr)
                .filter(|_| n.dynamic)
                .map(|r| r.prefix.to_string());
            let state = format!("{:?}", n.state);
            let established = state == "Established";
            peers.push(NeighbourSummary {
                address: addr,
                asn: n.remote_as,
                range,
                description: self.config.peer(addr).and_then(|p| p.description.clone()),
                state,
                state_secs: n.state_for.as_secs(),
                msg_rcvd: n.messages_received,
                msg_sent: n.messages_sent,
                prefixes_received: u64::from(counts.received),
                prefixes_accepted: u64::from(counts.accepted_ipv4)
                    + u64::from(counts.accepted_ipv6),
                prefixes_filtered: u64::from(counts.filtered),
                prefixes_stale: u64::from(counts.stale),
                bfd: None,
                last_error: n
                    .last_error
                    .clone()
                    .or_else(|| self.last_errors.get(&addr).cloned())
                    .filter(|_| !established),
            });
        }
        // BFD state per neighbour, when it runs.
        for runner in &self.bfd {
            if let Ok(list) = runner.peers().await {
                for st in list {
                    if let Some(p) = peers.iter_mut().find(|p| p.address == st.peer) {
                        p.bfd = Some(format!("{:?}", st.session.state));
                    }
                }
            }
        }
        let routes = self.rib.routes().count() as u64;
        let paths = self.rib.routes().map(|r| r.paths.len() as u64).sum();
        BgpSummary {
            router_id: self.config.router.id.to_string(),
            local_as: self.config.router.asn,
            rib_prefixes: routes,
            rib_paths: paths,
            peers,
        }
    }

    fn routes(&self, filter: Option<&str>) -> Vec<RouteEntry> {
        let filter: Option<Prefix> = filter.and_then(|f| {
            f.parse::<Prefix>()
                .ok()
                .or_else(|| f.parse::<IpAddr>().ok().map(Prefix::host))
        });
        self.rib
            .routes()
            .filter(|r| filter.map_or(true, |f| f.covers(&r.prefix) || r.prefix.covers(&f)))
            .map(|r| {
                let mut paths: Vec<ApiPath> = r
                    .paths
                    .iter()
                    .map(|p| {
                        let a = &p.attributes.attrs;
                        ApiPath {
                            peer: p.peer_address,
                            next_hop: p
                                .attributes
                                .nexthop
                                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                            med: a.med,
                            local_pref: a.local_pref,
                            as_path: a
                                .as_path
                                .as_ref()
                                .map(|x| x.to_string())
                                .unwrap_or_default(),
                            origin: match a.origin {
                                Some(Origin::Igp) => "i",
                                Some(Origin::Egp) => "e",
                                _ => "?",
                            }
                            .to_string(),
                            communities: a.communities.iter().map(|c| c.to_string()).collect(),
                            large_communities: a
                                .large_communities
                                .iter()
                                .map(|c| c.to_string())
                                .collect(),
                            best: p.best,
                            multipath: p.multipath,
                            stale: p.stale,
                            filtered: p.filtered.is_some(),
                        }
                    })
                    .collect();
                paths.sort_by_key(|p| (!p.best, !p.multipath, p.filtered, p.peer));
                RouteEntry {
                    prefix: r.prefix.to_string(),
                    paths,
                }
            })
            .collect()
    }

    fn fib_view(&self) -> FibView {
        let mut routes: Vec<FibRoute> = Vec::new();
        for (prefix, _) in self.rib.installed_routes() {
            let Some(gid) = self.fib.route(prefix) else {
                continue;
            };
            let Some(group) = self.fib.group(gid) else {
                continue;
            };
            let policy = group.policy();
            // Resilient groups: each member's share of the buckets (uneven
            // while buckets wait for their idle timer).
            let shares: Option<Vec<(u32, f64)>> = match group.selector() {
                hashing::select::AnySelector::Resilient(r) => {
                    use hashing::select::Selector as _;
                    let total = f64::from(r.bucket_count().max(1));
                    Some(
                        r.members()
                            .iter()
                            .zip(r.buckets_per_member())
                            .map(|(m, &c)| (m.id, f64::from(c) / total))
                            .collect(),
                    )
                }
                _ => None,
            };
            routes.push(FibRoute {
                prefix: prefix.to_string(),
                group: gid,
                algorithm: policy.algorithm.to_string(),
                fields: policy.fields.fields.to_string(),
                members: group
                    .nexthops()
                    .iter()
                    .map(|n| FibMember {
                        id: n.id,
                        address: n.addr,
                        weight: n.weight,
                        share: shares
                            .as_ref()
                            .and_then(|s| s.iter().find(|(id, _)| *id == n.id).map(|(_, v)| *v)),
                    })
                    .collect(),
                packets: None,
            });
        }
        routes.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        FibView {
            routes,
            groups: self.fib.group_count() as u64,
        }
    }

    async fn bfd_view(&self) -> Vec<BfdPeerView> {
        let mut out = Vec::new();
        for runner in &self.bfd {
            let Ok(list) = runner.peers().await else {
                continue;
            };
            for p in list {
                let s = &p.session;
                let last_down = self.bfd_downs.get(&p.peer).and_then(|d| {
                    let rx = d.last_rx?;
                    Some(BfdDownView {
                        detect_ms: d.detected.saturating_duration_since(rx).as_secs_f64() * 1e3,
                        fib_ms: d
                            .fib
                            .map(|f| f.saturating_duration_since(rx).as_secs_f64() * 1e3),
                    })
                });
                out.push(BfdPeerView {
                    peer: p.peer,
                    state: format!("{:?}", s.state),
                    diagnostic: format!("{:?}", s.local_diag),
                    local_discr: s.local_discr,
                    remote_discr: s.remote_discr,
                    tx_ms: s.tx_interval.as_millis() as u64,
                    detect_ms: s.detection_time.map_or(0, |d| d.as_millis() as u64),
                    last_down,
                });
            }
        }
        // A BFD Down takes the BGP session down, which ends the BFD session: keep
        // showing how fast that failure was acted on until the session comes back.
        for (peer, d) in &self.bfd_downs {
            if out.iter().any(|p| p.peer == *peer) {
                continue;
            }
            let Some(rx) = d.last_rx else { continue };
            out.push(BfdPeerView {
                peer: *peer,
                state: "Down".into(),
                diagnostic: d.diag.clone(),
                local_discr: 0,
                remote_discr: 0,
                tx_ms: 0,
                detect_ms: 0,
                last_down: Some(BfdDownView {
                    detect_ms: d.detected.saturating_duration_since(rx).as_secs_f64() * 1e3,
                    fib_ms: d
                        .fib
                        .map(|f| f.saturating_duration_since(rx).as_secs_f64() * 1e3),
                }),
            });
        }
        out.sort_by_key(|p| p.peer);
        out
    }

    async fn metrics(&self) -> String {
        let summary = self.summary().await;
        let mut out = String::new();
        out.push_str("# HELP ecmpd_bgp_neighbors BGP neighbours by FSM state.\n# TYPE ecmpd_bgp_neighbors gauge\n");
        let mut states: HashMap<&str, u64> = HashMap::new();
        for p in &summary.peers {
            *states.entry(p.state.as_str()).or_default() += 1;
        }
        let mut states: Vec<_> = states.into_iter().collect();
        states.sort();
        for (s, n) in states {
            out.push_str(&format!("ecmpd_bgp_neighbors{{state=\"{s}\"}} {n}\n"));
        }
        out.push_str(&format!(
            "# HELP ecmpd_rib_prefixes Prefixes in the RIB.\n# TYPE ecmpd_rib_prefixes gauge\necmpd_rib_prefixes {}\n",
            summary.rib_prefixes
        ));
        out.push_str(&format!(
            "# HELP ecmpd_fib_routes Routes in the FIB.\n# TYPE ecmpd_fib_routes gauge\necmpd_fib_routes {}\n",
            self.fib.route_count()
        ));
        out.push_str(&format!(
            "# HELP ecmpd_fib_groups Nexthop groups in the FIB.\n# TYPE ecmpd_fib_groups gauge\necmpd_fib_groups {}\n",
            self.fib.group_count()
        ));
        out
    }
}

/// Sleep until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
