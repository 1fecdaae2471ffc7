//! A network namespace owned by the test: created with a unique name, deleted on drop
//! after every process still inside it has been killed by PID.

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{run, Error, Prefix, PrefixExt, Result};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace named `ecmpd-<pid>-<n>`, unique per test process and call.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// One nexthop of a kernel route, as `ip -j route` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteNexthop {
    pub gateway: IpAddr,
    pub dev: String,
}

impl Netns {
    /// Creates a namespace and brings its `lo` up.
    pub fn new() -> Result<Netns> {
        crate::require_root()?;
        crate::require_programs(&["ip"])?;
        let name = format!(
            "ecmpd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.set_link("lo", true)?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec` execs it, so
    /// the child's PID is the program's own).
    pub fn command(&self, program: &str) -> Command {
        command_in(&self.name, program)
    }

    /// Runs `argv` inside the namespace and returns its stdout.
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        let (program, args) = argv.split_first().expect("exec needs a program");
        run(self.command(program).args(args))
    }

    /// Runs `ip -n <ns> args...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Sets a sysctl inside this namespace only (`net.*` keys are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec(&["sysctl", "-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// Adds an address to `dev`; IPv6 addresses skip duplicate address detection.
    pub fn add_addr(&self, dev: &str, addr: IpAddr, len: u8) -> Result<()> {
        let cidr = format!("{addr}/{len}");
        let mut args = vec!["addr", "add", &cidr, "dev", dev];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// Brings `dev` up or down (down cuts the link, e.g. for BFD tests).
    pub fn set_link(&self, dev: &str, up: bool) -> Result<()> {
        self.ip(&["link", "set", "dev", dev, if up { "up" } else { "down" }])
            .map(drop)
    }

    /// The nexthops of the kernel route for exactly `prefix` in the main table; empty
    /// when there is no such route.
    pub fn route_nexthops(&self, prefix: &Prefix) -> Result<Vec<RouteNexthop>> {
        let family = if prefix.is_ipv4() { "-4" } else { "-6" };
        let text = self.ip(&[family, "-j", "route", "show", "exact", &prefix.to_string()])?;
        parse_route_nexthops(&text).ok_or_else(|| Error::Parse {
            what: format!("routes of {} in {}", prefix, self.name),
            detail: text,
        })
    }

    /// A counter of the namespace's TCP stack from `/proc/net/netstat` (`TcpExt:` row),
    /// e.g. `TCPMD5Failure` (segments dropped for a wrong MD5 signature).
    pub fn tcp_ext_counter(&self, name: &str) -> Result<u64> {
        let text = self.exec(&["cat", "/proc/net/netstat"])?;
        parse_netstat(&text, "TcpExt", name).ok_or_else(|| Error::Parse {
            what: format!("TcpExt {name} in {}", self.name),
            detail: text,
        })
    }

    /// Runs `f` on a thread that has entered this namespace, and returns its result.
    /// Sockets `f` creates belong to the namespace for their whole life, whichever
    /// thread uses them later: a test can listen in a node and connect from a client
    /// without a helper program.
    pub fn in_namespace<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).map_err(crate::io_err(format!("opening {path}")))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a valid namespace fd changes only this thread's
                // network namespace; the thread ends when `f` returns.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(Error::Io {
                        what: format!("entering {path}"),
                        source: std::io::Error::last_os_error(),
                    });
                }
                Ok(f())
            })
            .join()
            .expect("a thread in the namespace panicked")
        })
    }

    /// PIDs of every process whose network namespace is this one.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let out = run(Command::new("ip").args(["netns", "pids", &self.name]))?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }
}

/// `/proc/net/netstat` pairs a header row and a value row per group.
fn parse_netstat(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut rows = text.lines().filter(|l| l.starts_with(&prefix));
    let names = rows.next()?.split_whitespace().skip(1);
    let values = rows.next()?.split_whitespace().skip(1);
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn parse_route_nexthops(json: &str) -> Option<Vec<RouteNexthop>> {
    if json.trim().is_empty() {
        return Some(Vec::new());
    }
    let routes: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    let mut hops = Vec::new();
    for route in routes.as_array()? {
        let one = |v: &serde_json::Value| -> Option<RouteNexthop> {
            Some(RouteNexthop {
                gateway: v.get("gateway")?.as_str()?.parse().ok()?,
                dev: v.get("dev")?.as_str()?.to_string(),
            })
        };
        match route.get("nexthops").and_then(|n| n.as_array()) {
            Some(list) => hops.extend(list.iter().filter_map(one)),
            None => hops.extend(one(route)),
        }
    }
    Some(hops)
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Daemons normally stop through their own guards first; anything left is ours.
        for _ in 0..20 {
            let pids = self.pids().unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: plain signal to a PID living in a namespace this guard created.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("testbed: could not delete namespace {}: {e}", self.name);
        }
    }
}

/// A command that runs `program` inside the namespace called `ns`.
pub(crate) fn command_in(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// Creates a veth pair with one end in each namespace (`ip link add name A netns NS1 type
/// veth peer name B netns NS2`); both ends start down.
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) -> Result<()> {
    run(Command::new("ip").args([
        "link", "add", "name", a_name, "netns", &a.name, "type", "veth", "peer", "name", b_name,
        "netns", &b.name,
    ]))
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_single_and_multipath_routes() {
        let multi = r#"[{"dst":"192.168.100.10","nhid":33,"protocol":"bgp","metric":20,"flags":[],"nexthops":[{"gateway":"10.10.0.11","dev":"br0","weight":1,"flags":[]},{"gateway":"10.10.0.12","dev":"br0","weight":1,"flags":[]}]}]"#;
        let hops = parse_route_nexthops(multi).unwrap();
        assert_eq!(hops.len(), 2);
        assert_eq!(hops[1].gateway, "10.10.0.12".parse::<IpAddr>().unwrap());
        let single = r#"[{"dst":"192.168.100.10","nhid":9,"gateway":"10.10.0.11","dev":"br0","protocol":"bgp","metric":20,"flags":[]}]"#;
        assert_eq!(parse_route_nexthops(single).unwrap().len(), 1);
        assert_eq!(parse_route_nexthops("[]").unwrap().len(), 0);
    }

    #[test]
    fn reads_a_tcp_ext_counter() {
        let text = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Failure\nTcpExt: 0 1 7\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_netstat(text, "TcpExt", "TCPMD5Failure"), Some(7));
        assert_eq!(parse_netstat(text, "TcpExt", "Nope"), None);
    }
}
