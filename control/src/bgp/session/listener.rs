//! Listening sockets: bound with the MD5 keys of every neighbour and range
//! that has a password, so the kernel drops unsigned or wrongly signed
//! segments before any connection exists; the accept loop hands each
//! connection to the instance task.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::SockRef;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;

use super::config::BgpConfig;
use super::connection::IoEvent;
use super::sockopt::set_md5_key;
use super::SessionError;

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
                    dataplane::fib::table::Prefix::V4(a, l) => (std::net::IpAddr::V4(a), l),
                    dataplane::fib::table::Prefix::V6(a, l) => (std::net::IpAddr::V6(a), l),
                };
                if net.is_ipv6() == addr.is_ipv6() {
                    set_md5_key(&sock, net, Some(len), pw.as_bytes())?;
                }
            }
        }
    }
    socket.listen(1024).map_err(bind_error)
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
