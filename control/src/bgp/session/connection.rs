//! The I/O of one TCP connection, and our dials. A connection task frames
//! what it reads into messages for the instance task and writes what the
//! instance queues; it keeps no BGP state of its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::bgp::wire::{frame, Message, WireError};

use super::sockopt::{apply_hops, set_md5_key, Hops};

/// How long a closing connection waits for the peer's FIN after ours, so
/// the kernel closes with FIN rather than RST.
const LINGER: Duration = Duration::from_secs(1);

/// Longest a single message may take to write before the peer is taken
/// for dead (its receive window stayed shut).
const WRITE_STALL: Duration = Duration::from_secs(60);

/// Identifies one TCP connection within the instance.
pub(crate) type ConnId = u64;

/// What the instance queues on a connection.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Write these bytes (one encoded message).
    Bytes(Vec<u8>),
    /// Write what is queued, then close.
    Close,
}

/// What the I/O tasks tell the instance task.
#[derive(Debug)]
pub(crate) enum IoEvent {
    /// A listener accepted a connection.
    Accepted {
        /// The connection.
        stream: TcpStream,
        /// Who connected.
        remote: SocketAddr,
    },
    /// A dial ended.
    Dialled {
        /// The peer dialled.
        peer: IpAddr,
        /// Which dial.
        dial: u64,
        /// The connection, or why not.
        result: Result<TcpStream, String>,
    },
    /// A message arrived.
    Received {
        /// On this connection.
        conn: ConnId,
        /// The message.
        message: Message,
    },
    /// The byte stream could not be framed or decoded; reading stopped.
    Malformed {
        /// On this connection.
        conn: ConnId,
        /// Why.
        error: WireError,
    },
    /// The peer closed the connection, or it failed.
    Closed {
        /// This connection.
        conn: ConnId,
        /// The error, if it failed.
        error: Option<String>,
    },
}

/// Run one connection until the instance closes it or the peer does.
/// `max_len` is the largest message accepted; the instance raises it once
/// Extended Message is negotiated.
pub(crate) async fn run(
    conn: ConnId,
    mut stream: TcpStream,
    max_len: Arc<AtomicUsize>,
    mut outbox: mpsc::UnboundedReceiver<Outgoing>,
    io: mpsc::Sender<IoEvent>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            out = outbox.recv() => match out {
                Some(Outgoing::Bytes(bytes)) => {
                    let error = match tokio::time::timeout(WRITE_STALL, stream.write_all(&bytes)).await {
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => format!("the peer read nothing for {WRITE_STALL:?}"),
                    };
                    let _ = io.send(IoEvent::Closed { conn, error: Some(error) }).await;
                    return;
                }
                Some(Outgoing::Close) | None => {
                    close_gracefully(stream).await;
                    return;
                }
            },
            read = stream.read_buf(&mut buf), if reading => {
                let error = match read {
                    Ok(0) => None,
                    Ok(_) => {
                        match drain_messages(conn, &mut buf, &max_len, &io).await {
                            Drained::More => continue,
                            Drained::Malformed => {
                                reading = false;
                                continue;
                            }
                            Drained::InstanceGone => return,
                        }
                    }
                    Err(e) => Some(e.to_string()),
                };
                let _ = io.send(IoEvent::Closed { conn, error }).await;
                return;
            }
        }
    }
}

enum Drained {
    More,
    Malformed,
    InstanceGone,
}

/// Pass every complete message in `buf` to the instance, keeping the rest.
async fn drain_messages(
    conn: ConnId,
    buf: &mut Vec<u8>,
    max_len: &AtomicUsize,
    io: &mpsc::Sender<IoEvent>,
) -> Drained {
    let mut used = 0;
    let mut result = Drained::More;
    loop {
        let rest = buf.get(used..).unwrap_or_default();
        match frame(rest, max_len.load(Ordering::Acquire)) {
            Ok(Some((message, len))) => {
                used += len;
                if io.send(IoEvent::Received { conn, message }).await.is_err() {
                    return Drained::InstanceGone;
                }
            }
            Ok(None) => break,
            Err(error) => {
                if io.send(IoEvent::Malformed { conn, error }).await.is_err() {
                    return Drained::InstanceGone;
                }
                result = Drained::Malformed;
                break;
            }
        }
    }
    buf.drain(..used.min(buf.len()));
    result
}

/// Send our FIN after what is queued, then read until the peer's FIN (or a
/// short while), so that unread data does not turn the close into a RST.
async fn close_gracefully(mut stream: TcpStream) {
    let _ = stream.flush().await;
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// How to dial a peer.
#[derive(Debug, Clone)]
pub(crate) struct DialSpec {
    pub target: SocketAddr,
    pub source: Option<IpAddr>,
    pub password: Option<String>,
    pub hops: Hops,
    pub internal: bool,
}

/// Dial a peer: bind the source address if any, set the MD5 key and TTL,
/// connect. The instance aborts the task when the FSM cancels the dial.
pub(crate) async fn dial(spec: DialSpec) -> Result<TcpStream, String> {
    let socket = match spec.target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("cannot create a socket: {e}"))?;
    if let Some(source) = spec.source {
        socket
            .set_reuseaddr(true)
            .and_then(|()| socket.bind(SocketAddr::new(source, 0)))
            .map_err(|e| format!("cannot bind source address {source}: {e}"))?;
    }
    prepare(&SockRef::from(&socket), spec.target.ip(), &spec).map_err(|e| e.to_string())?;
    socket
        .connect(spec.target)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", spec.target))
}

fn prepare(
    sock: &SockRef<'_>,
    peer: IpAddr,
    spec: &DialSpec,
) -> Result<(), super::sockopt::SockoptError> {
    if let Some(password) = &spec.password {
        set_md5_key(sock, peer, None, password.as_bytes())?;
    }
    apply_hops(sock, peer, spec.hops, spec.internal)?;
    let _ = sock.set_tcp_nodelay(true);
    Ok(())
}
