//! The instance task: owns the peer table and every FSM, feeds them what the
//! I/O tasks report and the handle asks, fires their timers, and carries out
//! their actions.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::bgp::fsm::{
    resolve_collision, Action, Direction, Event, Fsm, InboundDecision, PeerAsMatch, StartMode,
    State,
};
use crate::bgp::wire::{decode_update, Message, UpdateContext, MAX_MESSAGE_LEN};

use super::config::{BgpConfig, Hops};
use super::connection::{self, ConnId, DialSpec, IoEvent, Outgoing};
use super::sockopt::apply_hops;
use super::{
    configured_as, listener, BgpSummary, Command, NeighborSummary, PeerKey, RefusedCounts,
    SessionError, SessionEvent, SessionEventKind,
};

/// News for the RIB queued beyond the channel before network input pauses.
const MAX_PENDING: usize = 1024;
/// Capacity of the channel from the I/O tasks to the instance.
const IO_CHANNEL: usize = 1024;
/// How long shutdown waits for connections to flush their Cease.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Shutdown communication sent to every neighbour on shutdown.
const SHUTDOWN_MESSAGE: &str = "ecmpd is shutting down";

/// Bind the listeners and spawn the instance task.
pub(crate) fn spawn(
    config: BgpConfig,
    events: mpsc::Sender<SessionEvent>,
    commands: mpsc::Receiver<Command>,
) -> Result<(JoinHandle<()>, Vec<SocketAddr>), SessionError> {
    validate(&config)?;
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for addr in &config.listen {
        let l = listener::bind(*addr, &config)?;
        addrs.push(l.local_addr().map_err(|e| SessionError::Listen {
            addr: *addr,
            source: e,
        })?);
        listeners.push(l);
    }
    let (io_tx, io_rx) = mpsc::channel(IO_CHANNEL);
    let mut listener_tasks = JoinSet::new();
    for l in listeners {
        listener_tasks.spawn(listener::accept_loop(l, io_tx.clone()));
    }
    let mut instance = Instance {
        start: Instant::now(),
        peers: HashMap::new(),
        conns: HashMap::new(),
        next_conn: 0,
        next_dial: 0,
        next_generation: 0,
        io_tx,
        events,
        tasks: JoinSet::new(),
        refused: RefusedCounts::default(),
        collisions: 0,
        pending: VecDeque::new(),
        config,
    };
    instance.start_configured();
    let task = tokio::spawn(instance.run(io_rx, commands, listener_tasks));
    Ok((task, addrs))
}

fn validate(config: &BgpConfig) -> Result<(), SessionError> {
    for (i, n) in config.neighbors.iter().enumerate() {
        if config.neighbors[..i].iter().any(|m| m.address == n.address) {
            return Err(SessionError::Config(format!(
                "neighbour {} is configured twice",
                n.address
            )));
        }
    }
    for r in &config.listen_ranges {
        if !r.prefix.is_valid() {
            return Err(SessionError::Config(format!(
                "listen range {} has an invalid length",
                r.prefix
            )));
        }
    }
    if config.router_id.is_unspecified() {
        return Err(SessionError::Config("the router id must not be 0".into()));
    }
    Ok(())
}

/// Where a peer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// `config.neighbors[i]`.
    Configured(usize),
    /// Accepted through `config.listen_ranges[i]`.
    Dynamic(usize),
}

/// Which of a peer's FSMs an action or event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The peer's own FSM.
    Main,
    /// The FSM running a colliding connection.
    Second,
}

struct Peer {
    key: PeerKey,
    origin: Origin,
    hops: Hops,
    fsm: Fsm,
    conn: Option<ConnId>,
    dial: Option<(u64, AbortHandle)>,
    /// The latest dial started.
    last_dial: u64,
    collision: Option<(Fsm, ConnId)>,
    update_ctx: UpdateContext,
    updates_sent: u64,
}

struct Conn {
    peer: IpAddr,
    outbox: mpsc::UnboundedSender<Outgoing>,
    max_len: Arc<AtomicUsize>,
}

struct Instance {
    config: BgpConfig,
    start: Instant,
    peers: HashMap<IpAddr, Peer>,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    next_dial: u64,
    next_generation: u64,
    io_tx: mpsc::Sender<IoEvent>,
    events: mpsc::Sender<SessionEvent>,
    /// Connection and dial tasks.
    tasks: JoinSet<()>,
    refused: RefusedCounts,
    collisions: u64,
    /// News for the RIB not yet in the channel.
    pending: VecDeque<SessionEvent>,
}

/// IPv4-mapped IPv6 addresses as IPv4, so a peer has one key.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl Instance {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn new_key(&mut self, address: IpAddr) -> PeerKey {
        self.next_generation += 1;
        PeerKey {
            address,
            generation: self.next_generation,
        }
    }

    fn start_configured(&mut self) {
        let now = self.now();
        for i in 0..self.config.neighbors.len() {
            let n = self.config.neighbors[i].clone();
            let key = self.new_key(n.address);
            let mut fsm = Fsm::new(self.config.peer_config(n.address, n.remote_as, &n.timers));
            let mode = if n.passive {
                StartMode::Passive
            } else {
                StartMode::Active
            };
            let actions = fsm.handle(Event::ManualStart(mode), now);
            self.peers.insert(
                n.address,
                Peer {
                    key,
                    origin: Origin::Configured(i),
                    hops: n.hops,
                    fsm,
                    conn: None,
                    dial: None,
                    last_dial: 0,
                    collision: None,
                    update_ctx: UpdateContext::default(),
                    updates_sent: 0,
                },
            );
            // Only Connect can come out of a start; no events to send.
            let _ = self.apply(n.address, Role::Main, actions);
        }
    }

    async fn run(
        mut self,
        mut io: mpsc::Receiver<IoEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut listeners: JoinSet<()>,
    ) {
        let events = self.events.clone();
        loop {
            let deadline = self.next_deadline().map(|d| self.start + d);
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // A slow RIB holds back network input only: timers (our
            // keepalives) and commands go on, so a RIB task that calls the
            // handle while the channel is full cannot deadlock with us.
            let reading = self.pending.len() < MAX_PENDING;
            tokio::select! {
                permit = events.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(ev) = self.pending.pop_front() {
                            permit.send(ev);
                        }
                        // Hand over whatever else fits without waiting: one
                        // wake-up of the RIB task per burst, not per event.
                        while let Some(ev) = self.pending.pop_front() {
                            match events.try_send(ev) {
                                Ok(()) => {}
                                Err(mpsc::error::TrySendError::Full(ev)) => {
                                    self.pending.push_front(ev);
                                    break;
                                }
                                Err(mpsc::error::TrySendError::Closed(_)) => {
                                    self.pending.clear();
                                    break;
                                }
                            }
                        }
                    }
                    // Nobody listens any more; the sessions run on.
                    Err(_) => self.pending.clear(),
                },
                ev = io.recv(), if reading => match ev {
                    Some(ev) => {
                        self.io_event(ev);
                        // Take what else is waiting (a table arriving) before
                        // going round the loop, which recomputes every
                        // session's next deadline.
                        while self.pending.len() < MAX_PENDING {
                            match io.try_recv() {
                                Ok(ev) => self.io_event(ev),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown) | None => break,
                    Some(cmd) => self.command(cmd),
                },
                () = sleep => self.fire_timers(),
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
        // Connection tasks blocked on reporting to us give up at once.
        drop(io);
        self.shutdown(&mut listeners).await;
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.peers
            .values()
            .flat_map(|p| {
                [
                    p.fsm.next_deadline(),
                    p.collision.as_ref().and_then(|(f, _)| f.next_deadline()),
                ]
            })
            .flatten()
            .min()
    }

    fn fire_timers(&mut self) {
        let now = self.now();
        let due: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.fsm.next_deadline().is_some_and(|d| d <= now)
                    || p.collision
                        .as_ref()
                        .and_then(|(f, _)| f.next_deadline())
                        .is_some_and(|d| d <= now)
            })
            .map(|(a, _)| *a)
            .collect();
        for addr in due {
            let mut out = Vec::new();
            if let Some(p) = self.peers.get_mut(&addr) {
                let actions = p.fsm.poll(now);
                out.extend(self.apply(addr, Role::Main, actions));
            }
            if let Some(p) = self.peers.get_mut(&addr) {
                if let Some((second, _)) = p.collision.as_mut() {
                    let actions = second.poll(now);
                    out.extend(self.apply(addr, Role::Second, actions));
                }
            }
            out.extend(self.settle(addr));
            self.emit(out);
        }
    }

    /// Queue news for the RIB; the run loop hands it over as the channel
    /// has room.
    fn emit(&mut self, events: Vec<SessionEvent>) {
        self.pending.extend(events);
    }

    fn io_event(&mut self, ev: IoEvent) {
        let out = match ev {
            IoEvent::Accepted { stream, remote } => self.accepted(stream, remote),
            IoEvent::Dialled { peer, dial, result } => self.dialled(peer, dial, result),
            IoEvent::Received { conn, message } => self.feed(conn, Event::Message(message)),
            IoEvent::Malformed { conn, error } => {
                tracing::info!(conn, %error, "malformed message from a BGP neighbour");
                self.feed(conn, Event::DecodeError(error))
            }
            IoEvent::Closed { conn, error } => {
                if let Some(error) = &error {
                    tracing::debug!(conn, %error, "BGP connection failed");
                }
                let out = self.feed(conn, Event::TcpConnectionFailed);
                self.conns.remove(&conn);
                out
            }
        };
        self.emit(out);
    }

    /// Feed an event from connection `conn` to the FSM that owns it.
    fn feed(&mut self, conn: ConnId, event: Event) -> Vec<SessionEvent> {
        let Some(addr) = self.conns.get(&conn).map(|c| c.peer) else {
            return Vec::new();
        };
        let now = self.now();
        let Some(p) = self.peers.get_mut(&addr) else {
            self.close(Some(conn));
            return Vec::new();
        };
        let mut out = if p.conn == Some(conn) {
            let actions = p.fsm.handle(event, now);
            self.apply(addr, Role::Main, actions)
        } else if let Some((second, _)) = p.collision.as_mut().filter(|(_, c)| *c == conn) {
            let actions = second.handle(event, now);
            self.apply(addr, Role::Second, actions)
        } else {
            // Nobody owns it any more (never expected): close it.
            self.close(Some(conn));
            Vec::new()
        };
        out.extend(self.settle(addr));
        out
    }

    /// Register a new connection and spawn its task.
    fn add_conn(&mut self, peer: IpAddr, stream: TcpStream) -> ConnId {
        self.next_conn += 1;
        let id = self.next_conn;
        let (outbox, rx) = mpsc::unbounded_channel();
        let max_len = Arc::new(AtomicUsize::new(MAX_MESSAGE_LEN));
        self.tasks.spawn(connection::run(
            id,
            stream,
            max_len.clone(),
            rx,
            self.io_tx.clone(),
        ));
        self.conns.insert(
            id,
            Conn {
                peer,
                outbox,
                max_len,
            },
        );
        id
    }

    fn write(&self, conn: Option<ConnId>, message: &Message) {
        let Some(c) = conn.and_then(|id| self.conns.get(&id)) else {
            return;
        };
        match message.encode() {
            Ok(bytes) => {
                let _ = c.outbox.send(Outgoing::Bytes(bytes));
            }
            Err(e) => tracing::error!(peer = %c.peer, error = %e, "cannot encode a BGP message"),
        }
    }

    fn close(&mut self, conn: Option<ConnId>) {
        if let Some(c) = conn.and_then(|id| self.conns.remove(&id)) {
            let _ = c.outbox.send(Outgoing::Close);
        }
    }

    fn accepted(&mut self, stream: TcpStream, remote: SocketAddr) -> Vec<SessionEvent> {
        let addr = canonical(remote.ip());
        let now = self.now();
        if !self.peers.contains_key(&addr) {
            let Some(range) = self.config.range_for(addr) else {
                self.refused.unknown_address += 1;
                tracing::warn!(%remote, "refused a BGP connection from an address that is no neighbour and in no listen range");
                return Vec::new();
            };
            let r = &self.config.listen_ranges[range];
            let in_range = self
                .peers
                .values()
                .filter(|p| p.origin == Origin::Dynamic(range))
                .count();
            if in_range >= r.limit {
                self.refused.range_limit += 1;
                tracing::warn!(%remote, range = %r.prefix, limit = r.limit, "refused a BGP connection: the listen range has its limit of dynamic neighbours");
                return Vec::new();
            }
            let (remote_as, timers, hops) = (r.remote_as.clone(), r.timers, r.hops);
            let key = self.new_key(addr);
            let mut fsm = Fsm::new(self.config.peer_config(addr, remote_as, &timers));
            fsm.handle(Event::ManualStart(StartMode::Passive), now);
            tracing::info!(peer = %key, range = %self.config.listen_ranges[range].prefix, "new dynamic BGP neighbour");
            self.peers.insert(
                addr,
                Peer {
                    key,
                    origin: Origin::Dynamic(range),
                    hops,
                    fsm,
                    conn: None,
                    dial: None,
                    last_dial: 0,
                    collision: None,
                    update_ctx: UpdateContext::default(),
                    updates_sent: 0,
                },
            );
        }
        let Some(p) = self.peers.get(&addr) else {
            return Vec::new();
        };
        let internal = p.fsm.config().peer_as == PeerAsMatch::Internal;
        if let Err(e) = apply_hops(&SockRef::from(&stream), addr, p.hops, internal) {
            self.refused.socket_error += 1;
            tracing::error!(peer = %p.key, error = %e, "refused a BGP connection");
            let out = self.settle(addr);
            return out;
        }
        let _ = SockRef::from(&stream).set_tcp_nodelay(true);
        let decision = p.fsm.inbound_decision();
        let mut out = Vec::new();
        match decision {
            InboundDecision::Accept => out.extend(self.take_inbound(addr, stream, now)),
            InboundDecision::PeerRestarted => {
                if let Some(p) = self.peers.get_mut(&addr) {
                    let actions = p.fsm.handle(Event::TcpConnectionFailed, now);
                    out.extend(self.apply(addr, Role::Main, actions));
                }
                out.extend(self.take_inbound(addr, stream, now));
            }
            InboundDecision::Refuse(n) => {
                self.refused.by_session += 1;
                tracing::info!(peer = %addr, notification = %n, "refused a BGP connection");
                let id = self.add_conn(addr, stream);
                self.write(Some(id), &Message::Notification(n));
                self.close(Some(id));
            }
            InboundDecision::Collision => {
                let busy = self.peers.get(&addr).is_some_and(|p| p.collision.is_some());
                let id = self.add_conn(addr, stream);
                if busy {
                    // A third connection while a collision is pending.
                    self.refused.by_session += 1;
                    self.close(Some(id));
                } else if let Some(p) = self.peers.get_mut(&addr) {
                    tracing::info!(peer = %p.key, "connection collision");
                    let mut second = Fsm::new(p.fsm.config().clone());
                    second.handle(Event::ManualStart(StartMode::Passive), now);
                    let actions = second.handle(Event::TcpConnectionConfirmed, now);
                    p.collision = Some((second, id));
                    out.extend(self.apply(addr, Role::Second, actions));
                }
            }
        }
        out.extend(self.settle(addr));
        out
    }

    /// Give an accepted connection to the peer's FSM.
    fn take_inbound(
        &mut self,
        addr: IpAddr,
        stream: TcpStream,
        now: Duration,
    ) -> Vec<SessionEvent> {
        let id = self.add_conn(addr, stream);
        let Some(p) = self.peers.get_mut(&addr) else {
            return Vec::new();
        };
        p.conn = Some(id);
        let actions = p.fsm.handle(Event::TcpConnectionConfirmed, now);
        self.apply(addr, Role::Main, actions)
    }

    fn dialled(
        &mut self,
        addr: IpAddr,
        dial: u64,
        result: Result<TcpStream, String>,
    ) -> Vec<SessionEvent> {
        let now = self.now();
        let current = self
            .peers
            .get(&addr)
            .and_then(|p| p.dial.as_ref())
            .is_some_and(|(d, _)| *d == dial);
        if !current {
            return match result {
                Ok(stream) => self.outbound_collision(addr, dial, stream, now),
                Err(_) => Vec::new(),
            };
        }
        if let Some(p) = self.peers.get_mut(&addr) {
            p.dial = None;
        }
        let mut out = match result {
            Ok(stream) => {
                let id = self.add_conn(addr, stream);
                match self.peers.get_mut(&addr) {
                    Some(p) => {
                        p.conn = Some(id);
                        let actions = p.fsm.handle(Event::TcpConnected, now);
                        self.apply(addr, Role::Main, actions)
                    }
                    None => Vec::new(),
                }
            }
            Err(error) => {
                tracing::debug!(peer = %addr, %error, "BGP dial failed");
                match self.peers.get_mut(&addr) {
                    Some(p) => {
                        let actions = p.fsm.handle(Event::TcpConnectionFailed, now);
                        self.apply(addr, Role::Main, actions)
                    }
                    None => Vec::new(),
                }
            }
        };
        out.extend(self.settle(addr));
        out
    }

    /// Our dial connected just after the FSM cancelled it for the peer's
    /// inbound connection: both connections exist, and the peer may pick
    /// ours, so run it as a collision (RFC 4271 6.8) rather than drop it.
    fn outbound_collision(
        &mut self,
        addr: IpAddr,
        dial: u64,
        stream: TcpStream,
        now: Duration,
    ) -> Vec<SessionEvent> {
        let wanted = self.peers.get(&addr).is_some_and(|p| {
            p.last_dial == dial
                && p.dial.is_none()
                && p.collision.is_none()
                && p.fsm.connection() == Some(Direction::Inbound)
                && matches!(p.fsm.state(), State::OpenSent | State::OpenConfirm)
        });
        if !wanted {
            return Vec::new();
        }
        let id = self.add_conn(addr, stream);
        let mut out = Vec::new();
        if let Some(p) = self.peers.get_mut(&addr) {
            tracing::info!(peer = %p.key, "connection collision with our own dial");
            let mut second = Fsm::new(p.fsm.config().clone());
            second.handle(Event::ManualStart(StartMode::Passive), now);
            let actions = second.handle(Event::TcpConnected, now);
            p.collision = Some((second, id));
            out = self.apply(addr, Role::Second, actions);
        }
        out.extend(self.settle(addr));
        out
    }

    /// Carry out one FSM's actions; returns the news for the RIB.
    fn apply(&mut self, addr: IpAddr, role: Role, actions: Vec<Action>) -> Vec<SessionEvent> {
        let mut out = Vec::new();
        let mut queue: VecDeque<Action> = actions.into();
        let now = self.now();
        // Frame with the negotiated size as soon as it is known.
        if let Some(p) = self.peers.get(&addr) {
            let (fsm, conn) = match role {
                Role::Main => (Some(&p.fsm), p.conn),
                Role::Second => (
                    p.collision.as_ref().map(|(f, _)| f),
                    p.collision.as_ref().map(|(_, c)| *c),
                ),
            };
            if let (Some(neg), Some(c)) = (
                fsm.and_then(|f| f.negotiated()),
                conn.and_then(|c| self.conns.get(&c)),
            ) {
                c.max_len.store(neg.max_message_len(), Ordering::Release);
            }
        }
        while let Some(action) = queue.pop_front() {
            let Some(p) = self.peers.get_mut(&addr) else {
                break;
            };
            let key = p.key;
            let conn = match role {
                Role::Main => p.conn,
                Role::Second => p.collision.as_ref().map(|(_, c)| *c),
            };
            match action {
                Action::Connect => {
                    if role == Role::Main {
                        self.start_dial(addr);
                    }
                }
                Action::CancelConnect => {
                    if let Some((_, handle)) = p.dial.take() {
                        handle.abort();
                    }
                }
                Action::Send(m) => self.write(conn, &m),
                Action::CloseConnection => {
                    match role {
                        Role::Main => p.conn = None,
                        Role::Second => p.collision = None,
                    }
                    self.close(conn);
                }
                Action::SessionEstablished(neg) => {
                    if role == Role::Second {
                        // Collisions are resolved as soon as an OPEN is
                        // known, so the second FSM never gets this far.
                        tracing::warn!(peer = %key, "a colliding connection reached Established");
                    }
                    p.update_ctx = UpdateContext {
                        four_octet_as: neg.four_octet_as,
                        ibgp: neg.internal,
                        peer_as: (!neg.internal).then_some(neg.peer_as),
                    };
                    tracing::info!(peer = %key, asn = neg.peer_as, hold = neg.hold_time, "BGP session established");
                    out.push(SessionEvent {
                        peer: key,
                        kind: SessionEventKind::Established(neg),
                    });
                }
                Action::SessionDown { reason, stale } => {
                    tracing::info!(peer = %key, %reason, "BGP session down");
                    out.push(SessionEvent {
                        peer: key,
                        kind: SessionEventKind::Down { reason, stale },
                    });
                }
                Action::Update(body) => match decode_update(&body, &p.update_ctx) {
                    Ok(decoded) => {
                        let kind = match decoded.update.end_of_rib_family() {
                            Some(family) => SessionEventKind::EndOfRib(family),
                            None => SessionEventKind::Update(Box::new(decoded)),
                        };
                        out.push(SessionEvent { peer: key, kind });
                    }
                    Err(error) => {
                        tracing::info!(peer = %key, %error, "UPDATE needs a session reset");
                        let fsm = match role {
                            Role::Main => Some(&mut p.fsm),
                            Role::Second => p.collision.as_mut().map(|(f, _)| f),
                        };
                        if let Some(fsm) = fsm {
                            queue.extend(fsm.handle(Event::DecodeError(error), now));
                        }
                    }
                },
                Action::RouteRefresh(rr) => out.push(SessionEvent {
                    peer: key,
                    kind: SessionEventKind::RouteRefreshRequest(rr),
                }),
            }
        }
        out
    }

    fn start_dial(&mut self, addr: IpAddr) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        let Origin::Configured(i) = p.origin else {
            return;
        };
        let Some(n) = self.config.neighbors.get(i) else {
            return;
        };
        if let Some((_, old)) = p.dial.take() {
            old.abort();
        }
        self.next_dial += 1;
        let dial = self.next_dial;
        let spec = DialSpec {
            target: n.target(),
            source: n.source,
            password: n.password.clone(),
            hops: n.hops,
            internal: n.remote_as == PeerAsMatch::Internal,
        };
        let io = self.io_tx.clone();
        let handle = self.tasks.spawn(async move {
            let result = connection::dial(spec).await;
            let _ = io
                .send(IoEvent::Dialled {
                    peer: addr,
                    dial,
                    result,
                })
                .await;
        });
        p.dial = Some((dial, handle));
        p.last_dial = dial;
    }

    /// After anything happened to a peer: resolve a pending collision, and
    /// forget a dynamic neighbour whose connection is gone.
    fn settle(&mut self, addr: IpAddr) -> Vec<SessionEvent> {
        let out = self.resolve(addr);
        if let Some(p) = self.peers.get(&addr) {
            let gone = matches!(p.origin, Origin::Dynamic(_))
                && !p.fsm.state().has_connection()
                && p.conn.is_none()
                && p.collision.is_none()
                && !p.fsm.is_held_down();
            if gone {
                tracing::info!(peer = %p.key, "dynamic BGP neighbour forgotten");
                if let Some(p) = self.peers.remove(&addr) {
                    if let Some((_, h)) = p.dial {
                        h.abort();
                    }
                }
            }
        }
        out
    }

    /// Decide a pending collision once the peer's OPEN is known on either
    /// connection (RFC 4271 6.8).
    fn resolve(&mut self, addr: IpAddr) -> Vec<SessionEvent> {
        let now = self.now();
        let mut out = Vec::new();
        let Some(p) = self.peers.get_mut(&addr) else {
            return out;
        };
        let Some((second, _)) = p.collision.as_ref() else {
            return out;
        };
        // The peer's own connection is gone: the new one simply takes over.
        // If it cannot (the peer was stopped or held down meanwhile), the
        // new one is dropped once its OPEN has come.
        if p.conn.is_none() && !p.fsm.state().has_connection() {
            let Some((second, conn)) = p.collision.take() else {
                return out;
            };
            if p.fsm.take_connection_from(second.clone(), now) {
                p.conn = Some(conn);
                return out;
            }
            let decidable = second.peer_open().is_some();
            p.collision = Some((second, conn));
            if decidable {
                out.extend(self.dump(addr, Role::Second, now));
            }
            return out;
        }
        let Some(open) = p.fsm.peer_open().or(second.peer_open()).cloned() else {
            return out;
        };
        let second_dir = second.connection().unwrap_or(Direction::Inbound);
        let keep = match p.fsm.connection() {
            // One each way: RFC 4271 6.8. The same way twice (the peer
            // dialled again): it gave up on the older one, keep the newer.
            Some(main_dir) if main_dir != second_dir => {
                resolve_collision(
                    u32::from(self.config.router_id),
                    self.config.local_as,
                    open.bgp_id,
                    open.peer_as(),
                )
                .keep
            }
            _ => second_dir,
        };
        let keep_second = keep == second_dir;
        tracing::info!(peer = %p.key, ?keep, "connection collision resolved");
        self.collisions += 1;
        if !keep_second {
            out.extend(self.dump(addr, Role::Second, now));
            return out;
        }
        out.extend(self.dump(addr, Role::Main, now));
        let Some(p) = self.peers.get_mut(&addr) else {
            return out;
        };
        if let Some((second, conn)) = p.collision.take() {
            if p.fsm.take_connection_from(second.clone(), now) {
                p.conn = Some(conn);
            } else {
                p.collision = Some((second, conn));
                out.extend(self.dump(addr, Role::Second, now));
            }
        }
        out
    }

    /// Cease / Connection Collision Resolution on one of the peer's
    /// connections.
    fn dump(&mut self, addr: IpAddr, role: Role, now: Duration) -> Vec<SessionEvent> {
        let Some(p) = self.peers.get_mut(&addr) else {
            return Vec::new();
        };
        let actions = match role {
            Role::Main => p.fsm.handle(Event::CollisionDump, now),
            Role::Second => match p.collision.as_mut() {
                Some((f, _)) => f.handle(Event::CollisionDump, now),
                None => return Vec::new(),
            },
        };
        let out = self.apply(addr, role, actions);
        if role == Role::Second {
            let second = self.peers.get_mut(&addr).and_then(|p| p.collision.take());
            if let Some((_, conn)) = second {
                self.close(Some(conn));
            }
        }
        out
    }

    fn peer_mut(&mut self, key: PeerKey) -> Result<&mut Peer, SessionError> {
        self.peers
            .get_mut(&key.address)
            .filter(|p| p.key == key)
            .ok_or(SessionError::UnknownPeer(key))
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::SendUpdate {
                peer,
                update,
                reply,
            } => {
                let result = self.send_update(peer, &update);
                let _ = reply.send(result);
            }
            Command::RouteRefresh {
                peer,
                family,
                reply,
            } => {
                let result = self.send_route_refresh(peer, family);
                let _ = reply.send(result);
            }
            Command::ShutdownPeer {
                peer,
                message,
                reply,
            } => {
                let out = self.event_for(
                    peer,
                    Event::ManualStop {
                        shutdown_message: message,
                    },
                    now,
                );
                self.finish_command(out, reply);
            }
            Command::MaxPrefix {
                peer,
                family,
                limit,
                hold_down,
                reply,
            } => {
                let out = self.event_for(
                    peer,
                    Event::MaxPrefixExceeded {
                        family,
                        limit,
                        hold_down,
                    },
                    now,
                );
                self.finish_command(out, reply);
            }
            Command::BfdDown { peer, reply } => {
                let out = self.event_for(peer, Event::BfdDown, now);
                self.finish_command(out, reply);
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.summary(now));
            }
            Command::Shutdown => {}
        }
    }

    fn finish_command(
        &mut self,
        out: Result<Vec<SessionEvent>, SessionError>,
        reply: tokio::sync::oneshot::Sender<Result<(), SessionError>>,
    ) {
        match out {
            Ok(events) => {
                let _ = reply.send(Ok(()));
                self.emit(events);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn event_for(
        &mut self,
        key: PeerKey,
        event: Event,
        now: Duration,
    ) -> Result<Vec<SessionEvent>, SessionError> {
        let p = self.peer_mut(key)?;
        let actions = p.fsm.handle(event, now);
        let mut out = self.apply(key.address, Role::Main, actions);
        out.extend(self.settle(key.address));
        Ok(out)
    }

    /// Queue a message `build` makes from the session's negotiated
    /// parameters on an Established neighbour's connection.
    fn send_built(
        &mut self,
        key: PeerKey,
        build: impl FnOnce(
            &crate::bgp::fsm::Negotiated,
            &crate::bgp::wire::UpdateContext,
        ) -> Result<Vec<u8>, SessionError>,
    ) -> Result<(), SessionError> {
        let p = self.peer_mut(key)?;
        let Some(neg) = p
            .fsm
            .negotiated()
            .filter(|_| p.fsm.state() == crate::bgp::fsm::State::Established)
        else {
            return Err(SessionError::NotEstablished(key));
        };
        let bytes = build(neg, &p.update_ctx)?;
        let conn = p.conn;
        if let Some(c) = conn.and_then(|id| self.conns.get(&id)) {
            let _ = c.outbox.send(Outgoing::Bytes(bytes));
        }
        Ok(())
    }

    fn send_update(
        &mut self,
        key: PeerKey,
        update: &crate::bgp::wire::Update,
    ) -> Result<(), SessionError> {
        self.send_built(key, |neg, ctx| {
            let max = neg.max_message_len();
            let body = update.encode_body(ctx)?;
            let bytes = Message::Update(body).encode()?;
            if bytes.len() > max {
                return Err(SessionError::MessageTooLong {
                    len: bytes.len(),
                    max,
                });
            }
            Ok(bytes)
        })?;
        if let Ok(p) = self.peer_mut(key) {
            p.updates_sent += 1;
        }
        Ok(())
    }

    fn send_route_refresh(
        &mut self,
        key: PeerKey,
        family: crate::bgp::wire::AfiSafi,
    ) -> Result<(), SessionError> {
        self.send_built(key, |neg, _| {
            let missing = if !neg.route_refresh {
                Some("route refresh".to_string())
            } else if !neg.families.contains(&family) {
                Some(format!("AFI {} SAFI {}", family.afi.0, family.safi.0))
            } else {
                None
            };
            if let Some(what) = missing {
                return Err(SessionError::NotNegotiated { peer: key, what });
            }
            Ok(Message::RouteRefresh(crate::bgp::wire::RouteRefresh::request(family)).encode()?)
        })
    }

    fn summary(&self, now: Duration) -> BgpSummary {
        let mut neighbors: Vec<NeighborSummary> =
            self.peers
                .values()
                .map(|p| {
                    let stats = p.fsm.stats();
                    NeighborSummary {
                        peer: p.key,
                        remote_as: p.fsm.negotiated().map(|n| n.peer_as).or_else(|| {
                            configured_as(&p.fsm.config().peer_as, self.config.local_as)
                        }),
                        dynamic: matches!(p.origin, Origin::Dynamic(_)),
                        state: p.fsm.state(),
                        uptime: p.fsm.uptime(now),
                        state_for: now.saturating_sub(stats.state_since),
                        messages_received: stats.received.total(),
                        messages_sent: stats.sent.total() + p.updates_sent,
                        established_count: stats.established_count,
                        dropped_count: stats.dropped_count,
                        last_error: stats.last_error.as_ref().map(|e| e.reason.to_string()),
                    }
                })
                .collect();
        neighbors.sort_by_key(|n| n.peer.address);
        BgpSummary {
            local_as: self.config.local_as,
            router_id: self.config.router_id,
            neighbors,
            refused: self.refused,
            collisions: self.collisions,
        }
    }

    async fn shutdown(&mut self, listeners: &mut JoinSet<()>) {
        listeners.abort_all();
        while listeners.join_next().await.is_some() {}
        let now = self.now();
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        let mut out = Vec::new();
        for addr in addrs {
            if let Some(p) = self.peers.get_mut(&addr) {
                let actions = p.fsm.handle(
                    Event::ManualStop {
                        shutdown_message: Some(SHUTDOWN_MESSAGE.into()),
                    },
                    now,
                );
                out.extend(self.apply(addr, Role::Main, actions));
            }
            let second = self.peers.get_mut(&addr).and_then(|p| {
                if let Some((_, h)) = p.dial.take() {
                    h.abort();
                }
                p.collision.take()
            });
            if let Some((_, conn)) = second {
                self.close(Some(conn));
            }
        }
        // The RIB may not be reading any more: do not wait for it.
        self.pending.extend(out);
        for ev in self.pending.drain(..) {
            let _ = self.events.try_send(ev);
        }
        for (_, c) in self.conns.drain() {
            let _ = c.outbox.send(Outgoing::Close);
        }
        self.peers.clear();
        let tasks = &mut self.tasks;
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}
