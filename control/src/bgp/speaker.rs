//! An in-process emulation of MetalLB's native BGP speaker, to test the
//! router against on loopback without Kubernetes.
//!
//! It behaves as MetalLB's `internal/bgp/native` session does: it only
//! dials out (binding a source address, so many speakers can share
//! loopback as 127.0.0.2, 127.0.0.3, ...), with a TCP MD5 key when a
//! password is set; its OPEN carries Multiprotocol IPv4 unicast,
//! Multiprotocol IPv6 unicast and 4-octet AS all in ONE optional parameter,
//! hold time 90 s by default; TCP connect and the OPEN exchange must finish
//! within 10 s or it gives up and tries again. Once up it announces one
//! prefix per UPDATE (IPv4 in the NLRI field with ORIGIN IGP, AS_PATH [its
//! AS] for eBGP or empty for iBGP, NEXT_HOP its address, COMMUNITIES,
//! LOCAL_PREF on iBGP only; IPv6 in MP_REACH_NLRI), and sends KEEPALIVEs
//! every third of the negotiated hold time. It runs no receive hold timer,
//! never sends End-of-RIB, and never sends NOTIFICATION: on any error it
//! closes the socket and dials again.
//!
//! ```no_run
//! # async fn demo() {
//! use control::bgp::speaker::{spawn, SpeakerConfig};
//! let router = "127.0.0.1:1179".parse().unwrap();
//! let speaker = spawn(SpeakerConfig::new(64513, 64512, "127.0.0.2".parse().unwrap(), router));
//! speaker.announce("192.0.2.10/32".parse().unwrap(), vec![]);
//! speaker.established(std::time::Duration::from_secs(5)).await;
//! speaker.stop().await;
//! # }
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use dataplane::fib::table::Prefix;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::bgp::session::sockopt::set_md5_key;
use crate::bgp::wire::attrs::{AsPath, Community, Origin, PathAttributes};
use crate::bgp::wire::open::AS_TRANS;
use crate::bgp::wire::update::{MpNextHop, MpReach, MpUnreach};
use crate::bgp::wire::{
    frame, AfiSafi, Capability, Message, Open, Update, UpdateContext, MAX_MESSAGE_LEN,
};

/// How one emulated speaker is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// The speaker's AS.
    pub local_as: u32,
    /// The router's AS (the same: iBGP).
    pub peer_as: u32,
    /// The speaker's BGP Identifier; its source address when IPv4 by
    /// default.
    pub router_id: Ipv4Addr,
    /// Address to dial.
    pub router: SocketAddr,
    /// Source address (the node's address); also the IPv4 NEXT_HOP.
    pub source: IpAddr,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// Hold time proposed (MetalLB: 90 s).
    pub hold_time: u16,
    /// Next hop of IPv6 announcements: the source if IPv6, else this, else
    /// the IPv4-mapped source.
    pub ipv6_next_hop: Option<Ipv6Addr>,
    /// LOCAL_PREF on iBGP.
    pub local_pref: u32,
    /// Connect and OPEN exchange must finish within this (MetalLB: 10 s).
    pub connect_timeout: Duration,
    /// Wait between a failure and the next dial.
    pub retry_interval: Duration,
}

impl SpeakerConfig {
    /// A speaker in `local_as` dialling `router` (in `peer_as`) from
    /// `source`, with MetalLB's defaults: hold time 90 s, 10 s to connect,
    /// LOCAL_PREF 100 on iBGP, a new try every second.
    pub fn new(local_as: u32, peer_as: u32, source: IpAddr, router: SocketAddr) -> Self {
        let router_id = match source {
            IpAddr::V4(a) => a,
            IpAddr::V6(a) => {
                let o = a.octets();
                Ipv4Addr::new(o[12], o[13], o[14], o[15].max(1))
            }
        };
        Self {
            local_as,
            peer_as,
            router_id,
            router,
            source,
            password: None,
            hold_time: 90,
            ipv6_next_hop: None,
            local_pref: 100,
            connect_timeout: Duration::from_secs(10),
            retry_interval: Duration::from_secs(1),
        }
    }

    fn ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }

    /// MetalLB's OPEN: every capability in one optional parameter.
    pub fn open(&self) -> Open {
        Open {
            my_as: u16::try_from(self.local_as).unwrap_or(AS_TRANS),
            hold_time: self.hold_time,
            bgp_id: u32::from(self.router_id),
            optional_parameters: vec![vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
                Capability::FourOctetAs(self.local_as),
            ]],
            extended_parameters: false,
        }
    }

    /// The UPDATE announcing `prefix`.
    pub fn announcement(&self, prefix: Prefix, communities: &[Community]) -> Update {
        let attributes = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if self.ibgp() {
                AsPath::default()
            } else {
                AsPath::sequence([self.local_as])
            }),
            local_pref: self.ibgp().then_some(self.local_pref),
            communities: communities.to_vec(),
            ..PathAttributes::default()
        };
        let mut u = Update {
            attributes,
            ..Update::default()
        };
        match prefix {
            Prefix::V4(..) => {
                u.attributes.next_hop = Some(match self.source {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(_) => self.router_id,
                });
                u.nlri.push(prefix);
            }
            Prefix::V6(..) => {
                let global = match self.source {
                    IpAddr::V6(a) => a,
                    IpAddr::V4(a) => self.ipv6_next_hop.unwrap_or(a.to_ipv6_mapped()),
                };
                u.mp_reach = Some(MpReach {
                    family: AfiSafi::IPV6_UNICAST,
                    next_hop: MpNextHop {
                        global: IpAddr::V6(global),
                        link_local: None,
                    },
                    nlri: vec![prefix],
                });
            }
        }
        u
    }

    /// The UPDATE withdrawing `prefix`.
    pub fn withdrawal(&self, prefix: Prefix) -> Update {
        let mut u = Update::default();
        match prefix {
            Prefix::V4(..) => u.withdrawn.push(prefix),
            Prefix::V6(..) => {
                u.mp_unreach = Some(MpUnreach {
                    family: AfiSafi::IPV6_UNICAST,
                    withdrawn: vec![prefix],
                })
            }
        }
        u
    }
}

/// Where a speaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerState {
    /// Dialling, exchanging OPENs, or waiting to dial again.
    Connecting,
    /// OPENs exchanged and its KEEPALIVE sent: it considers the session up
    /// (it does not wait for the router's KEEPALIVE, as MetalLB).
    Established,
    /// Stopped or killed.
    Stopped,
}

/// A speaker's state and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerStatus {
    /// Where it is.
    pub state: SpeakerState,
    /// Times it got a session up.
    pub sessions: u32,
    /// Dials started.
    pub attempts: u32,
    /// The negotiated hold time of the current session.
    pub hold_time: Option<u16>,
    /// Why the last session or attempt ended.
    pub last_error: Option<String>,
}

#[derive(Debug)]
enum SpeakerCommand {
    Announce(Prefix, Vec<Community>),
    Withdraw(Prefix),
    PauseKeepalives(bool),
    Stop,
    Kill,
}

/// The handle of a running emulated speaker.
#[derive(Debug)]
pub struct SpeakerHandle {
    commands: mpsc::UnboundedSender<SpeakerCommand>,
    status: watch::Receiver<SpeakerStatus>,
    task: JoinHandle<()>,
}

/// Start a speaker; it dials at once. Must be called within a tokio
/// runtime.
pub fn spawn(config: SpeakerConfig) -> SpeakerHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(SpeakerStatus {
        state: SpeakerState::Connecting,
        sessions: 0,
        attempts: 0,
        hold_time: None,
        last_error: None,
    });
    let speaker = Speaker {
        config,
        table: Vec::new(),
        keepalives_paused: false,
        commands: rx,
        status: status_tx,
    };
    SpeakerHandle {
        commands,
        status,
        task: tokio::spawn(speaker.run()),
    }
}

impl SpeakerHandle {
    /// Announce `prefix` (now if up, else once up), as a service IP.
    pub fn announce(&self, prefix: Prefix, communities: Vec<Community>) {
        let _ = self
            .commands
            .send(SpeakerCommand::Announce(prefix, communities));
    }

    /// Withdraw `prefix`.
    pub fn withdraw(&self, prefix: Prefix) {
        let _ = self.commands.send(SpeakerCommand::Withdraw(prefix));
    }

    /// Test hook: stop sending KEEPALIVEs (the speaker looks dead to the
    /// router's hold timer while the TCP connection stays up).
    pub fn pause_keepalives(&self) {
        let _ = self.commands.send(SpeakerCommand::PauseKeepalives(true));
    }

    /// Send KEEPALIVEs again.
    pub fn resume_keepalives(&self) {
        let _ = self.commands.send(SpeakerCommand::PauseKeepalives(false));
    }

    /// The current status.
    pub fn status(&self) -> SpeakerStatus {
        self.status.borrow().clone()
    }

    /// Wait until the speaker considers its session up, at most `within`;
    /// true if it did.
    pub async fn established(&self, within: Duration) -> bool {
        let mut status = self.status.clone();
        tokio::time::timeout(
            within,
            status.wait_for(|s| s.state == SpeakerState::Established),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// Close the TCP connection (FIN) and stop, as a node leaving.
    pub async fn stop(self) {
        let _ = self.commands.send(SpeakerCommand::Stop);
        let _ = self.task.await;
    }

    /// Stop abruptly: reset the connection (SO_LINGER 0, so RST and no
    /// FIN), as a node crashing or its link going away.
    pub async fn kill(self) {
        let _ = self.commands.send(SpeakerCommand::Kill);
        let _ = self.task.await;
    }
}

/// How a session ended.
enum End {
    Stop,
    Failed(String),
}

struct Speaker {
    config: SpeakerConfig,
    /// Announced prefixes, in announcement order.
    table: Vec<(Prefix, Vec<Community>)>,
    keepalives_paused: bool,
    commands: mpsc::UnboundedReceiver<SpeakerCommand>,
    status: watch::Sender<SpeakerStatus>,
}

impl Speaker {
    async fn run(mut self) {
        loop {
            self.status.send_modify(|s| {
                s.state = SpeakerState::Connecting;
                s.attempts += 1;
                s.hold_time = None;
            });
            let timeout = self.config.connect_timeout;
            let config = self.config.clone();
            let connect = tokio::time::timeout(timeout, connect(config));
            tokio::pin!(connect);
            // Keep taking commands while connecting.
            let connected = loop {
                tokio::select! {
                    r = &mut connect => break r,
                    cmd = self.commands.recv() => {
                        if self.command_offline(cmd) {
                            return self.stopped();
                        }
                    }
                }
            };
            let end = match connected {
                Err(_) => End::Failed(format!(
                    "connect and OPEN did not finish within {timeout:?}"
                )),
                Ok(Err(e)) => End::Failed(e),
                Ok(Ok((stream, leftover, hold))) => self.session(stream, leftover, hold).await,
            };
            match end {
                End::Stop => return self.stopped(),
                End::Failed(e) => self.status.send_modify(|s| {
                    s.state = SpeakerState::Connecting;
                    s.last_error = Some(e);
                }),
            }
            let wait = tokio::time::sleep(self.config.retry_interval);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    cmd = self.commands.recv() => {
                        if self.command_offline(cmd) {
                            return self.stopped();
                        }
                    }
                }
            }
        }
    }

    fn remember(&mut self, prefix: Prefix, communities: Vec<Community>) {
        match self.table.iter_mut().find(|(p, _)| *p == prefix) {
            Some(entry) => entry.1 = communities,
            None => self.table.push((prefix, communities)),
        }
    }

    /// Forget `prefix`; true if it was announced.
    fn forget(&mut self, prefix: Prefix) -> bool {
        let before = self.table.len();
        self.table.retain(|(p, _)| *p != prefix);
        self.table.len() != before
    }

    fn stopped(&self) {
        self.status.send_modify(|s| s.state = SpeakerState::Stopped);
    }

    /// Apply a command while no session is up; true to stop.
    fn command_offline(&mut self, cmd: Option<SpeakerCommand>) -> bool {
        match cmd {
            Some(SpeakerCommand::Announce(p, c)) => {
                self.remember(p, c);
                false
            }
            Some(SpeakerCommand::Withdraw(p)) => {
                self.forget(p);
                false
            }
            Some(SpeakerCommand::PauseKeepalives(b)) => {
                self.keepalives_paused = b;
                false
            }
            Some(SpeakerCommand::Stop | SpeakerCommand::Kill) | None => true,
        }
    }

    async fn send_update(&self, stream: &mut TcpStream, update: &Update) -> Result<(), String> {
        let ctx = UpdateContext {
            four_octet_as: true,
            ibgp: self.config.ibgp(),
            peer_as: None,
        };
        let body = update.encode_body(&ctx).map_err(|e| e.to_string())?;
        let bytes = Message::Update(body).encode().map_err(|e| e.to_string())?;
        stream
            .write_all(&bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    async fn session(&mut self, mut stream: TcpStream, mut buf: Vec<u8>, hold: u16) -> End {
        self.status.send_modify(|s| {
            s.state = SpeakerState::Established;
            s.sessions += 1;
            s.hold_time = Some(hold);
        });
        let table = self.table.clone();
        for (prefix, communities) in table {
            let u = self.config.announcement(prefix, &communities);
            if let Err(e) = self.send_update(&mut stream, &u).await {
                return End::Failed(e);
            }
        }
        let period = Duration::from_secs(u64::from(hold / 3).max(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                cmd = self.commands.recv() => {
                    let result = match cmd {
                        Some(SpeakerCommand::Announce(p, c)) => {
                            let u = self.config.announcement(p, &c);
                            self.remember(p, c);
                            self.send_update(&mut stream, &u).await
                        }
                        Some(SpeakerCommand::Withdraw(p)) => {
                            if self.forget(p) {
                                let u = self.config.withdrawal(p);
                                self.send_update(&mut stream, &u).await
                            } else {
                                Ok(())
                            }
                        }
                        Some(SpeakerCommand::PauseKeepalives(b)) => {
                            self.keepalives_paused = b;
                            Ok(())
                        }
                        Some(SpeakerCommand::Stop) | None => {
                            let _ = stream.shutdown().await;
                            return End::Stop;
                        }
                        Some(SpeakerCommand::Kill) => {
                            let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                            drop(stream);
                            return End::Stop;
                        }
                    };
                    if let Err(e) = result {
                        return End::Failed(e);
                    }
                }
                _ = ticker.tick(), if hold > 0 && !self.keepalives_paused => {
                    if let Err(e) = write_message(&mut stream, &Message::Keepalive).await {
                        return End::Failed(e);
                    }
                }
                read = stream.read_buf(&mut buf) => {
                    match read {
                        Ok(0) => return End::Failed("the router closed the connection".into()),
                        Err(e) => return End::Failed(format!("read: {e}")),
                        Ok(_) => {}
                    }
                    // Read and discard, except NOTIFICATION (then close).
                    loop {
                        match frame(&buf, MAX_MESSAGE_LEN) {
                            Ok(Some((m, used))) => {
                                buf.drain(..used);
                                if let Message::Notification(n) = m {
                                    return End::Failed(format!("received {n}"));
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return End::Failed(format!("bad message: {e}")),
                        }
                    }
                }
            }
        }
    }
}

async fn write_message(stream: &mut TcpStream, m: &Message) -> Result<(), String> {
    let bytes = m.encode().map_err(|e| e.to_string())?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("write: {e}"))
}

/// Dial, send OPEN, read the router's OPEN, send KEEPALIVE. Returns the
/// stream, bytes read past the OPEN, and the negotiated hold time. Public
/// for load generators (`ecmpd bench bgp`) that then write their own
/// pre-encoded UPDATEs.
pub async fn connect(config: SpeakerConfig) -> Result<(TcpStream, Vec<u8>, u16), String> {
    let socket = match config.router {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    socket
        .set_reuseaddr(true)
        .and_then(|()| socket.bind(SocketAddr::new(config.source, 0)))
        .map_err(|e| format!("cannot bind {}: {e}", config.source))?;
    if let Some(pw) = &config.password {
        set_md5_key(
            &SockRef::from(&socket),
            config.router.ip(),
            None,
            pw.as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    let mut stream = socket
        .connect(config.router)
        .await
        .map_err(|e| format!("connect to {}: {e}", config.router))?;
    let _ = stream.set_nodelay(true);
    write_message(&mut stream, &Message::Open(config.open())).await?;
    let mut buf = Vec::with_capacity(4096);
    let open = loop {
        if stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("the router closed the connection before its OPEN".into());
        }
        match frame(&buf, MAX_MESSAGE_LEN) {
            Ok(Some((Message::Open(open), used))) => {
                buf.drain(..used);
                break open;
            }
            Ok(Some((Message::Notification(n), _))) => return Err(format!("received {n}")),
            Ok(Some((m, _))) => {
                return Err(format!("expected OPEN, got type {}", m.message_type()))
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad message: {e}")),
        }
    };
    if open.peer_as() != config.peer_as {
        return Err(format!(
            "the router's AS is {}, expected {}",
            open.peer_as(),
            config.peer_as
        ));
    }
    let hold = config.hold_time.min(open.hold_time);
    write_message(&mut stream, &Message::Keepalive).await?;
    Ok((stream, buf, hold))
}
