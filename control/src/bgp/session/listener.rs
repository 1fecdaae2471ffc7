//! Listening sockets: bound with the MD5 keys of every neighbour and range
//! that has a password, so the kernel drops unsigned or wrongly signed
//! segments before any connection exists; the accept loop hands each
//! connection to the instance task.

use std::net::SocketAddr;
use std::time::Duration;

use dataplane::fib::table::Prefix;
use socket2::SockRef;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

use super::config::BgpConfig;
use super::connection::IoEvent;
use super::sockopt::{set_md5_key, set_min_ttl, set_ttl};
use super::SessionError;

/// TTL of SYN-ACKs.
const MAX_TTL: u32 = 255;

/// Pause after an accept error (out of file descriptors, say).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Bind and listen on `addr` with the MD5 keys of `config`.
pub(crate) fn bind(addr: SocketAddr, config: &BgpConfig) -> Result<TcpListener, SessionError> {
    let bind_error = |e: std::io::Error| SessionError::Listen { addr, source: e };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(bind_error)?;
    socket.set_reuseaddr(true).map_err(bind_error)?;
    {
        let sock = SockRef::from(&socket);
        if addr.is_ipv6() {
            sock.set_only_v6(true).map_err(bind_error)?;
        }
        // SYN-ACKs leave with the listener's TTL: 255 passes a GTSM peer's
        // check and is harmless to the others (FRR does the same); each
        // accepted connection then gets its neighbour's own TTL.
        set_ttl(&sock, addr.ip(), MAX_TTL)?;
    }
    socket.bind(addr).map_err(bind_error)?;
    {
        let sock = SockRef::from(&socket);
        for n in &config.neighbors {
            if let Some(pw) = &n.password {
                if n.address.is_ipv6() == addr.is_ipv6() {
                    set_md5_key(&sock, n.address, None, pw.as_bytes())?;
                }
            }
        }
        for r in &config.listen_ranges {
            if let Some(pw) = &r.password {
                let (net, len) = match r.prefix {
                    Prefix::V4(a, l) => (std::net::IpAddr::V4(a), l),
                    Prefix::V6(a, l) => (std::net::IpAddr::V6(a), l),
                };
                if net.is_ipv6() == addr.is_ipv6() {
                    set_md5_key(&sock, net, Some(len), pw.as_bytes())?;
                }
            }
        }
    }
    if let Some(min) = listener_min_ttl(addr, config) {
        set_min_ttl(&SockRef::from(&socket), addr.ip(), min)?;
    }
    socket.listen(1024).map_err(bind_error)
}

/// The GTSM check for the listener itself, when every neighbour and range
/// of its family asks for one: then even SYNs and the first segments,
/// which arrive before an accepted socket gets its own check, are checked
/// (accepted sockets inherit it). With mixed settings each accepted
/// connection gets its check once accepted; segments queued before that
/// are not checked.
fn listener_min_ttl(addr: SocketAddr, config: &BgpConfig) -> Option<u32> {
    let same_family = |a: std::net::IpAddr| a.is_ipv6() == addr.is_ipv6();
    let hops: Vec<_> = config
        .neighbors
        .iter()
        .filter(|n| same_family(n.address))
        .map(|n| n.hops)
        .chain(
            config
                .listen_ranges
                .iter()
                .filter(|r| matches!(r.prefix, Prefix::V6(..)) == addr.is_ipv6())
                .map(|r| r.hops),
        )
        .collect();
    let mins: Option<Vec<u32>> = hops.iter().map(|h| h.min_ttl()).collect();
    mins.and_then(|m| m.into_iter().min())
}

/// Accept connections until the instance goes away.
pub(crate) async fn accept_loop(listener: TcpListener, io: mpsc::Sender<IoEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                if io.send(IoEvent::Accepted { stream, remote }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a BGP connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}
