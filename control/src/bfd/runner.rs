//! The tokio glue for single-hop BFD (RFC 5881): one task owns every
//! [`Session`] of one local address, one socket receives Control packets on
//! port 3784 with their TTL, another sends them with TTL 255 from one source
//! port in 49152 to 65535. The task only does I/O and timers; all protocol
//! decisions are the sessions'.
//!
//! ```text
//! BfdRunner (handle) --Command--> runner task --Send--> tx socket (TTL 255)
//!   rx socket (3784, IP_RECVTTL) --recvmsg--> decode, TTL check, demux --> Session
//!   runner task --PeerEvent (bounded, never blocks)--> the router
//! ```
//!
//! Receipt (RFC 5881 5 and RFC 5880 6.8.6): a packet whose TTL / hop limit is
//! not 255, or whose TTL the kernel did not report, is dropped and counted;
//! then it is decoded; then it goes to the session named by Your
//! Discriminator, or, when that is 0, to the session of its source address. A
//! packet whose source address is not the session's peer is dropped too.
//! Sessions exist only for peers added with [`BfdRunner::add_peer`]; they are
//! active unless their profile says passive.
//!
//! Events go out on a bounded channel with `try_send`: the task never waits for
//! the router, because a stalled BFD task stops sending and takes every peer
//! down with it. An event that does not fit is counted
//! ([`RunnerCounters::events_dropped`]); [`BfdRunner::peers`] always tells the
//! current state.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant as StdInstant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::packet::{ControlPacket, Diagnostic, PacketError, State};
use super::session::{Action, Profile, ProfileError, Session, SessionStatus};

/// UDP port of single-hop BFD Control packets (RFC 5881 4).
pub const CONTROL_PORT: u16 = 3784;
/// The range our source port is taken from (RFC 5881 4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// TTL / hop limit of every single-hop packet, sent and received (RFC 5881 5).
pub const SINGLE_HOP_TTL: u8 = 255;

/// Where a runner listens and what it sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Local address: both sockets bind to it. IPv4 or IPv6; peers must be of
    /// the same family.
    pub local: IpAddr,
    /// Port to receive on: [`CONTROL_PORT`] unless testing unprivileged.
    pub port: u16,
    /// Port the peers receive on: [`CONTROL_PORT`] unless testing.
    pub peer_port: u16,
    /// Seed for discriminators, the source port and jitter.
    pub seed: u64,
    /// Capacity of the event channel.
    pub event_capacity: usize,
}

impl RunnerConfig {
    /// Listen on `local`, port 3784, and send to port 3784.
    pub fn new(local: IpAddr) -> Self {
        RunnerConfig {
            local,
            port: CONTROL_PORT,
            peer_port: CONTROL_PORT,
            seed: 0x6263_6d70_6466_6264,
            event_capacity: 1024,
        }
    }
}

/// A session changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerEvent {
    /// The remote system.
    pub peer: IpAddr,
    /// State before.
    pub from: State,
    /// State now.
    pub state: State,
    /// Our diagnostic (1: Detection Time expired, 3: neighbour said Down,
    /// 7: administratively down).
    pub diag: Diagnostic,
    /// When the session changed state.
    pub at: StdInstant,
    /// When the last valid packet from the peer arrived, if ever: on a
    /// timeout, the start of the silence.
    pub last_rx: Option<StdInstant>,
}

/// One session as `show bfd peers` would print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The remote system.
    pub peer: IpAddr,
    /// The session's state, intervals and counters (times relative to the
    /// runner's start).
    pub session: SessionStatus,
    /// Last valid packet received.
    pub last_rx: Option<StdInstant>,
}

/// What the runner has counted at the socket, before any session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerCounters {
    /// Datagrams received.
    pub received: u64,
    /// Dropped: TTL / hop limit not 255, or not reported.
    pub ttl_dropped: u64,
    /// Dropped: refused by [`ControlPacket::decode`], authentication aside.
    pub decode_errors: u64,
    /// Dropped: the A bit was set; authentication is not supported.
    pub auth_unsupported: u64,
    /// Dropped: no session for the discriminator or source address.
    pub no_session: u64,
    /// Packets sent.
    pub sent: u64,
    /// Packets the kernel would not take.
    pub send_errors: u64,
    /// State-change events lost because the channel was full.
    pub events_dropped: u64,
}

/// Why a runner call failed.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A socket could not be set up.
    #[error("BFD socket: {0}")]
    Io(#[from] io::Error),
    /// The peer's address family differs from the local address's.
    #[error("BFD peer {peer} is not of the address family of {local}")]
    AddressFamily {
        /// The peer.
        peer: IpAddr,
        /// Our address.
        local: IpAddr,
    },
    /// A session with this peer exists already.
    #[error("BFD peer {0} exists already")]
    PeerExists(IpAddr),
    /// No session with this peer.
    #[error("no BFD peer {0}")]
    UnknownPeer(IpAddr),
    /// The profile cannot be run.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// [`BfdRunner::start`] was called outside a tokio runtime.
    #[error("the BFD runner must be started inside a tokio runtime")]
    NoRuntime,
    /// The runner task has stopped.
    #[error("the BFD runner has stopped")]
    Stopped,
}

enum Command {
    AddPeer(IpAddr, Profile, oneshot::Sender<Result<(), RunnerError>>),
    RemovePeer(IpAddr, oneshot::Sender<Result<(), RunnerError>>),
    AdminDown(IpAddr, bool, oneshot::Sender<Result<(), RunnerError>>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Counters(oneshot::Sender<RunnerCounters>),
}

/// The handle of a running BFD task. Dropping it stops the task at once,
/// without telling the peers (as a crash would); [`BfdRunner::shutdown`] does
/// the same and waits for it.
#[derive(Debug)]
pub struct BfdRunner {
    commands: mpsc::Sender<Command>,
    task: Option<JoinHandle<()>>,
    local: SocketAddr,
    source: SocketAddr,
}

impl BfdRunner {
    /// Bind the sockets and start the task on the current tokio runtime (a
    /// call outside one is an error). Returns the handle and the receiver of
    /// state changes.
    pub fn start(
        config: RunnerConfig,
    ) -> Result<(BfdRunner, mpsc::Receiver<PeerEvent>), RunnerError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RunnerError::NoRuntime);
        }
        let rx = rx_socket(SocketAddr::new(config.local, config.port))?;
        let local = local_addr(&rx)?;
        let tx_sock = tx_socket(config.local, config.seed)?;
        let source = local_addr(&tx_sock)?;
        let tx = std::net::UdpSocket::from(tx_sock);
        // SAFETY: the socket owns its descriptor, which stays open and the
        // same until the AsyncFd (and with it the socket) is dropped.
        let rx = unsafe { AsyncFd::register_with_interest(rx, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let (commands, commands_rx) = mpsc::channel(64);
        let epoch = Instant::now();
        let task = RunnerTask {
            local: config.local,
            peer_port: config.peer_port,
            seed: config.seed,
            next_discr: (splitmix(config.seed) as u32).max(1),
            epoch,
            epoch_std: epoch.into_std(),
            peers: HashMap::new(),
            by_discr: HashMap::new(),
            counters: RunnerCounters::default(),
            events: events_tx,
            tx,
        };
        let handle = tokio::spawn(task.run(rx, commands_rx));
        Ok((
            BfdRunner {
                commands,
                task: Some(handle),
                local,
                source,
            },
            events_rx,
        ))
    }

    /// The address and port packets are received on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address and port packets are sent from.
    pub fn source_addr(&self) -> SocketAddr {
        self.source
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RunnerError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| RunnerError::Stopped)?;
        answer.await.map_err(|_| RunnerError::Stopped)
    }

    /// Start an active (or, per profile, passive) session with `peer`.
    pub async fn add_peer(&self, peer: IpAddr, profile: Profile) -> Result<(), RunnerError> {
        profile.validate()?;
        self.call(|r| Command::AddPeer(peer, profile, r)).await?
    }

    /// End the session with `peer` at once, without telling it.
    pub async fn remove_peer(&self, peer: IpAddr) -> Result<(), RunnerError> {
        self.call(|r| Command::RemovePeer(peer, r)).await?
    }

    /// Take the session with `peer` administratively down (RFC 5880 6.8.16).
    pub async fn admin_down(&self, peer: IpAddr) -> Result<(), RunnerError> {
        self.call(|r| Command::AdminDown(peer, true, r)).await?
    }

    /// Bring the session with `peer` back from administrative down.
    pub async fn admin_up(&self, peer: IpAddr) -> Result<(), RunnerError> {
        self.call(|r| Command::AdminDown(peer, false, r)).await?
    }

    /// Every session, sorted by peer address.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, RunnerError> {
        self.call(Command::Peers).await
    }

    /// The socket-level counters.
    pub async fn counters(&self) -> Result<RunnerCounters, RunnerError> {
        self.call(Command::Counters).await
    }

    /// Stop the task and close the sockets, without telling the peers.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for BfdRunner {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Peer {
    session: Session,
}

/// The task: owns the sessions and the send socket.
struct RunnerTask {
    local: IpAddr,
    peer_port: u16,
    seed: u64,
    next_discr: u32,
    epoch: Instant,
    epoch_std: StdInstant,
    peers: HashMap<IpAddr, Peer>,
    by_discr: HashMap<u32, IpAddr>,
    counters: RunnerCounters,
    events: mpsc::Sender<PeerEvent>,
    /// Non-blocking; sending a datagram never waits, so it needs no reactor.
    tx: std::net::UdpSocket,
}

/// Datagrams read per wake-up before timers get a turn.
const RX_BATCH: usize = 64;

impl RunnerTask {
    async fn run(mut self, rx: AsyncFd<Socket>, mut commands: mpsc::Receiver<Command>) {
        let mut buf = [0u8; 512];
        loop {
            let deadline = self
                .peers
                .values()
                .filter_map(|p| p.session.next_deadline())
                .min()
                .and_then(|d| self.epoch.checked_add(d));
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                guard = rx.readable() => {
                    let Ok(mut guard) = guard else { return };
                    let mut received = Vec::new();
                    for _ in 0..RX_BATCH {
                        match guard.try_io(|fd| recv_with_ttl(fd.get_ref().as_raw_fd(), &mut buf)) {
                            Ok(Ok((len, src, ttl))) => {
                                received.push((src, ttl, buf.get(..len).unwrap_or_default().to_vec()));
                            }
                            // A datagram-level error (e.g. ICMP unreachable
                            // reported on the socket): nothing to process.
                            Ok(Err(_)) => {}
                            Err(_would_block) => break,
                        }
                    }
                    drop(guard);
                    for (src, ttl, payload) in received {
                        self.receive(src, ttl, &payload);
                    }
                },
                () = sleep => {},
            }
            self.poll_all();
        }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    fn instant(&self, d: Duration) -> StdInstant {
        self.epoch_std.checked_add(d).unwrap_or(self.epoch_std)
    }

    fn command(&mut self, command: Command) {
        let now = self.now();
        match command {
            Command::AddPeer(peer, profile, reply) => {
                let _ = reply.send(self.add_peer(peer, profile, now));
            }
            Command::RemovePeer(peer, reply) => {
                let result = match self.peers.remove(&peer) {
                    Some(p) => {
                        self.by_discr.remove(&p.session.local_discr());
                        Ok(())
                    }
                    None => Err(RunnerError::UnknownPeer(peer)),
                };
                let _ = reply.send(result);
            }
            Command::AdminDown(peer, down, reply) => {
                let result = match self.peers.get_mut(&peer) {
                    Some(p) if down => Ok(p.session.admin_down(now)),
                    Some(p) => Ok(p.session.admin_up(now)),
                    None => Err(RunnerError::UnknownPeer(peer)),
                };
                let _ = reply.send(result.map(|actions| self.act(peer, actions)));
            }
            Command::Peers(reply) => {
                let mut peers: Vec<PeerStatus> = self
                    .peers
                    .iter()
                    .map(|(&peer, p)| {
                        let session = p.session.status();
                        PeerStatus {
                            peer,
                            last_rx: session.last_rx.map(|d| self.instant(d)),
                            session,
                        }
                    })
                    .collect();
                peers.sort_by_key(|p| p.peer);
                let _ = reply.send(peers);
            }
            Command::Counters(reply) => {
                let _ = reply.send(self.counters);
            }
        }
    }

    fn add_peer(
        &mut self,
        peer: IpAddr,
        profile: Profile,
        now: Duration,
    ) -> Result<(), RunnerError> {
        if peer.is_ipv4() != self.local.is_ipv4() {
            return Err(RunnerError::AddressFamily {
                peer,
                local: self.local,
            });
        }
        if self.peers.contains_key(&peer) {
            return Err(RunnerError::PeerExists(peer));
        }
        let discr = self.allocate_discr();
        let seed = splitmix(self.seed ^ u64::from(discr.get()));
        let mut session = Session::new(profile, discr, seed);
        let actions = session.poll(now);
        self.by_discr.insert(discr.get(), peer);
        self.peers.insert(peer, Peer { session });
        self.act(peer, actions);
        Ok(())
    }

    fn allocate_discr(&mut self) -> NonZeroU32 {
        loop {
            let candidate = self.next_discr;
            self.next_discr = self.next_discr.wrapping_add(1);
            if let Some(d) = NonZeroU32::new(candidate) {
                if !self.by_discr.contains_key(&d.get()) {
                    return d;
                }
            }
        }
    }

    fn receive(&mut self, src: SocketAddr, ttl: Option<u8>, payload: &[u8]) {
        self.counters.received += 1;
        if ttl != Some(SINGLE_HOP_TTL) {
            self.counters.ttl_dropped += 1;
            return;
        }
        let pkt = match ControlPacket::decode(payload) {
            Ok(pkt) => pkt,
            Err(PacketError::AuthenticationUnsupported { .. }) => {
                self.counters.auth_unsupported += 1;
                return;
            }
            Err(_) => {
                self.counters.decode_errors += 1;
                return;
            }
        };
        let peer_ip = src.ip();
        let peer = if pkt.your_discr != 0 {
            self.by_discr.get(&pkt.your_discr).copied()
        } else {
            Some(peer_ip)
        };
        let now = self.now();
        let Some(peer) = peer.filter(|&p| p == peer_ip) else {
            self.counters.no_session += 1;
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            self.counters.no_session += 1;
            return;
        };
        let actions = p.session.handle_packet(&pkt, now);
        self.act(peer, actions);
    }

    fn poll_all(&mut self) {
        let now = self.now();
        let mut all = Vec::new();
        for (&peer, p) in &mut self.peers {
            if p.session.next_deadline().is_some_and(|d| d <= now) {
                all.push((peer, p.session.poll(now)));
            }
        }
        for (peer, actions) in all {
            self.act(peer, actions);
        }
    }

    fn act(&mut self, peer: IpAddr, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(pkt) => {
                    let dst = SocketAddr::new(peer, self.peer_port);
                    match pkt.encode() {
                        Ok(bytes) => match self.tx.send_to(&bytes, dst) {
                            Ok(_) => self.counters.sent += 1,
                            Err(_) => self.counters.send_errors += 1,
                        },
                        Err(_) => self.counters.send_errors += 1,
                    }
                }
                Action::StateChanged(change) => {
                    let event = PeerEvent {
                        peer,
                        from: change.from,
                        state: change.to,
                        diag: change.diag,
                        at: self.instant(change.at),
                        last_rx: change.last_rx.map(|d| self.instant(d)),
                    };
                    if self.events.try_send(event).is_err() {
                        self.counters.events_dropped += 1;
                    }
                }
            }
        }
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn local_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("socket has no IP address"))
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket owned by the caller; the option value is
    // a c_int on the stack whose size is passed alongside it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The receive socket: bound to `addr`, non-blocking, reporting each
/// datagram's TTL / hop limit.
fn rx_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let fd = socket.as_raw_fd();
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// The send socket: TTL / hop limit 255, bound to `local` and the first free
/// port in [`SOURCE_PORTS`] from a start drawn from `seed`.
fn tx_socket(local: IpAddr, seed: u64) -> io::Result<Socket> {
    let domain = match local {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if local.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_unicast_hops_v6(u32::from(SINGLE_HOP_TTL))?;
    } else {
        socket.set_ttl_v4(u32::from(SINGLE_HOP_TTL))?;
    }
    socket.set_nonblocking(true)?;
    let first = *SOURCE_PORTS.start();
    let span = u32::from(*SOURCE_PORTS.end() - first) + 1;
    let start = (splitmix(seed ^ 0x5052_5450) % u64::from(span)) as u32;
    let mut last_err = io::Error::other("no free source port");
    for i in 0..span {
        let port = first + ((start + i) % span) as u16;
        match socket.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => return Ok(socket),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_err)
}

/// Receive one datagram with `recvmsg`, returning its length, source and
/// TTL / hop limit (from IP_TTL or IPV6_HOPLIMIT ancillary data; `None` if
/// the kernel gave none).
fn recv_with_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points to a live buffer of the stated
    // length for the duration of the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = n as usize;
    let mut ttl = None;
    // SAFETY: `msg` was filled in by recvmsg; the CMSG_* macros walk the
    // control buffer within msg_controllen, and each data read is of a c_int
    // inside a header whose level and type say it holds one.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let level = (*cmsg).cmsg_level;
            let kind = (*cmsg).cmsg_type;
            let is_ttl = (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT);
            if is_ttl && (*cmsg).cmsg_len as usize >= libc::CMSG_LEN(4) as usize {
                let value = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                ttl = u8::try_from(value).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        ttl = None;
    }
    // SAFETY: recvmsg wrote a socket address of msg_namelen octets into
    // `name`, which was zeroed before; the family says which struct it is.
    let src = unsafe { sockaddr(name.assume_init_ref(), msg.msg_namelen) }
        .ok_or_else(|| io::Error::other("datagram without an IP source address"))?;
    Ok((len, src, ttl))
}

/// The IP socket address in `storage`, if it holds one.
///
/// # Safety
/// `storage` must hold a socket address of `len` octets as written by the kernel.
unsafe fn sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            let sin = &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let sin6 = &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
