//! Socket options a BGP session needs on Linux: TCP MD5 signatures (RFC
//! 2385) per peer address or per prefix, the outgoing TTL (single hop,
//! multihop, GTSM), and the GTSM receive check (RFC 5082). Every failure
//! names the option, the address and what the system needs.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockRef;

/// `tcp_md5sig.tcpm_flags`: the key covers `tcpm_prefixlen` bits of the
/// address (Linux 4.14+).
const TCP_MD5SIG_FLAG_PREFIX: u8 = 0x1;
/// Longest TCP MD5 key the kernel takes.
pub const MAX_MD5_KEY_LEN: usize = 80;

/// How far away a peer may be, which sets the TTL we send with and the TTL
/// we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hops {
    /// Directly connected: TTL 1 for eBGP, 255 for iBGP (FRR's defaults).
    #[default]
    Direct,
    /// eBGP multihop: send with this TTL.
    Multihop(u8),
    /// GTSM (RFC 5082, FRR's `ttl-security hops N`): send with TTL 255 and
    /// drop segments that arrive with a TTL below 256 - N.
    Gtsm(u8),
}

impl Hops {
    /// The TTL (hop limit) to send with; `internal` when the peer is
    /// configured in our own AS.
    pub fn outgoing_ttl(self, internal: bool) -> u32 {
        match self {
            Hops::Direct if internal => 255,
            Hops::Direct => 1,
            Hops::Multihop(n) => u32::from(n.max(1)),
            Hops::Gtsm(_) => 255,
        }
    }

    /// The lowest TTL accepted (GTSM), if any.
    pub fn min_ttl(self) -> Option<u32> {
        match self {
            Hops::Gtsm(n) => Some(256 - u32::from(n.clamp(1, 255))),
            _ => None,
        }
    }
}

/// A socket option that could not be set.
#[derive(Debug, thiserror::Error)]
#[error("cannot set {option} for {target}: {source}{hint}")]
pub struct SockoptError {
    /// The option (`TCP_MD5SIG`, `IP_TTL`, ...).
    pub option: &'static str,
    /// What it was set for (a peer address or prefix).
    pub target: String,
    /// The system's error.
    pub source: io::Error,
    /// What is needed to make it work, if known (with a leading "; ").
    pub hint: &'static str,
}

fn error(option: &'static str, target: String, source: io::Error) -> SockoptError {
    let hint = match (option, source.raw_os_error()) {
        ("TCP_MD5SIG" | "TCP_MD5SIG_EXT", Some(libc::ENOPROTOOPT | libc::ENOENT)) => {
            "; this kernel has no TCP MD5 signature support (it needs CONFIG_TCP_MD5SIG)"
        }
        ("TCP_MD5SIG_EXT", Some(libc::EINVAL)) => {
            "; MD5 keys for a prefix need Linux 4.14 or later"
        }
        ("IP_MINTTL" | "IPV6_MINHOPCOUNT", Some(libc::ENOPROTOOPT)) => {
            "; this kernel does not support the GTSM minimum TTL check"
        }
        (_, Some(libc::EPERM | libc::EACCES)) => "; the process lacks the permission",
        _ => "",
    };
    SockoptError {
        option,
        target,
        source,
        hint,
    }
}

/// `struct tcp_md5sig` from `linux/tcp.h`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_MD5_KEY_LEN],
}

/// True if the socket is IPv6 (so IPv4 peers are written as mapped
/// addresses).
fn is_ipv6(sock: &SockRef<'_>) -> bool {
    sock.local_addr()
        .ok()
        .is_some_and(|a| a.family() == libc::AF_INET6 as libc::sa_family_t)
}

/// Install (or with an empty `key`, remove) the TCP MD5 key for `peer`, or
/// with `prefix_len` for every address in `peer/prefix_len`. On a listening
/// socket the key applies to the connections it accepts.
pub fn set_md5_key(
    sock: &SockRef<'_>,
    peer: IpAddr,
    prefix_len: Option<u8>,
    key: &[u8],
) -> Result<(), SockoptError> {
    let (option_name, option) = match prefix_len {
        Some(_) => ("TCP_MD5SIG_EXT", libc::TCP_MD5SIG_EXT),
        None => ("TCP_MD5SIG", libc::TCP_MD5SIG),
    };
    let target = match prefix_len {
        Some(len) => format!("{peer}/{len}"),
        None => peer.to_string(),
    };
    if key.len() > MAX_MD5_KEY_LEN {
        return Err(error(
            option_name,
            target,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the password is longer than {MAX_MD5_KEY_LEN} octets"),
            ),
        ));
    }
    let (addr, prefix_len) = match (peer, is_ipv6(sock)) {
        (IpAddr::V4(v4), true) => (
            IpAddr::V6(v4.to_ipv6_mapped()),
            prefix_len.map(|l| l.saturating_add(96)),
        ),
        _ => (peer, prefix_len),
    };
    let sockaddr = socket2::SockAddr::from(SocketAddr::new(addr, 0));
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    // SAFETY: `sockaddr` holds at most `sockaddr_storage` bytes; both are
    // plain data.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sockaddr.as_ptr().cast::<u8>(),
            (&mut sig.addr as *mut libc::sockaddr_storage).cast::<u8>(),
            (sockaddr.len() as usize).min(mem::size_of::<libc::sockaddr_storage>()),
        );
    }
    if let Some(len) = prefix_len {
        sig.flags = TCP_MD5SIG_FLAG_PREFIX;
        sig.prefix_len = len;
    }
    sig.key_len = key.len() as u16;
    if let Some(dst) = sig.key.get_mut(..key.len()) {
        dst.copy_from_slice(key);
    }
    // SAFETY: `sig` is a valid `tcp_md5sig` that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
            (&sig as *const TcpMd5Sig).cast(),
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(error(option_name, target, io::Error::last_os_error()));
    }
    Ok(())
}

fn set_int(
    sock: &SockRef<'_>,
    level: libc::c_int,
    option: libc::c_int,
    value: u32,
) -> io::Result<()> {
    let value = value as libc::c_int;
    // SAFETY: `value` is a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            option,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Send with this TTL (IPv4) or hop limit (IPv6), for a peer at `peer`.
pub fn set_ttl(sock: &SockRef<'_>, peer: IpAddr, ttl: u32) -> Result<(), SockoptError> {
    if is_ipv6(sock) {
        sock.set_unicast_hops_v6(ttl)
            .map_err(|e| error("IPV6_UNICAST_HOPS", peer.to_string(), e))?;
        // A dual-stack socket talking to an IPv4 peer uses the IPv4 TTL.
        if peer.is_ipv4() {
            sock.set_ttl_v4(ttl)
                .map_err(|e| error("IP_TTL", peer.to_string(), e))?;
        }
        Ok(())
    } else {
        sock.set_ttl_v4(ttl)
            .map_err(|e| error("IP_TTL", peer.to_string(), e))
    }
}

/// Drop segments from `peer` that arrive with a TTL (hop limit) below
/// `min_ttl` (GTSM, RFC 5082).
pub fn set_min_ttl(sock: &SockRef<'_>, peer: IpAddr, min_ttl: u32) -> Result<(), SockoptError> {
    if is_ipv6(sock) && peer.is_ipv6() {
        set_int(sock, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min_ttl)
            .map_err(|e| error("IPV6_MINHOPCOUNT", peer.to_string(), e))
    } else {
        set_int(sock, libc::IPPROTO_IP, libc::IP_MINTTL, min_ttl)
            .map_err(|e| error("IP_MINTTL", peer.to_string(), e))
    }
}

/// Apply the TTL policy for a connection to `peer`.
pub fn apply_hops(
    sock: &SockRef<'_>,
    peer: IpAddr,
    hops: Hops,
    internal: bool,
) -> Result<(), SockoptError> {
    set_ttl(sock, peer, hops.outgoing_ttl(internal))?;
    if let Some(min) = hops.min_ttl() {
        set_min_ttl(sock, peer, min)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_md5sig_has_the_kernel_layout() {
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn a_kernel_without_tcp_md5_is_named_in_the_error() {
        let e = error(
            "TCP_MD5SIG",
            "192.0.2.1".into(),
            io::Error::from_raw_os_error(libc::ENOPROTOOPT),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("cannot set TCP_MD5SIG for 192.0.2.1: "),
            "{text}"
        );
        assert!(text.contains("CONFIG_TCP_MD5SIG"), "{text}");
    }

    #[test]
    fn gtsm_sends_255_and_accepts_within_the_hop_count() {
        assert_eq!(Hops::Gtsm(1).outgoing_ttl(false), 255);
        assert_eq!(Hops::Gtsm(1).min_ttl(), Some(255));
        assert_eq!(Hops::Gtsm(3).min_ttl(), Some(253));
        assert_eq!(Hops::Direct.outgoing_ttl(false), 1);
        assert_eq!(Hops::Direct.outgoing_ttl(true), 255);
        assert_eq!(Hops::Multihop(4).outgoing_ttl(false), 4);
        assert_eq!(Hops::Direct.min_ttl(), None);
    }
}
