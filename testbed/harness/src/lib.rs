//! Test topologies built from network namespaces, with real BGP speakers (FRR, BIRD 2,
//! GoBGP, ExaBGP) started inside them, for ecmpd's interop tests.
//!
//! Everything this crate creates is owned by a guard that undoes it on drop, also while a
//! test panics: namespaces are deleted after every process left in them is killed by PID,
//! daemons are stopped by PID and their working directories removed. Nothing touches the
//! host's own interfaces, routes or sysctls; traffic stays inside the namespaces.
//!
//! ```no_run
//! use testbed::{Topology, speakers::{frr::Frr, Neighbor, SpeakerConfig}};
//! let topo = Topology::new(3).expect("topology");
//! let node = &topo.nodes[0];
//! let cfg = SpeakerConfig::new(64512, node.v4)
//!     .neighbor(Neighbor::new(topo.router.v4.into(), 64500))
//!     .announce("192.168.100.10/32".parse().unwrap());
//! let speaker = Frr::start_node(&node.ns, cfg).expect("frr");
//! testbed::wait_established(&speaker, topo.router.v4.into(), testbed::SESSION_TIMEOUT).unwrap();
//! ```

pub mod daemon;
pub mod ecmpd;
pub mod netns;
pub mod prefix;
pub mod speakers;
pub mod topology;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

pub use netns::{veth, Netns, RouteNexthop};
pub use prefix::{Prefix, PrefixExt};
pub use speakers::{SessionState, Speaker};
pub use topology::{Client, Node, Router, Topology};

/// How long a test waits for a BGP session to reach Established with the short timers
/// the harness uses by default (connect retry 5 s).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(40);

/// Everything that can go wrong while building a testbed or talking to its daemons.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the interop testbed needs root (it creates network namespaces and veth pairs); \
         run the tests as root, e.g. `sudo -E cargo test -p ecmpd --test interop_harness`"
    )]
    NotRoot,
    #[error("`{0}` is not installed; run scripts/install-test-deps (as root) first")]
    Missing(String),
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{daemon} (pid {pid}) exited; its last output:\n{output}")]
    Exited {
        daemon: String,
        pid: u32,
        output: String,
    },
    #[error("{what}: could not understand {detail}")]
    Parse { what: String, detail: String },
    /// A bounded wait ended without its condition: timed out, or a daemon it depends
    /// on exited. Carries the configuration and logs of the daemons involved.
    #[error("gave up after {waited:.1?} waiting for {what}: {reason}\n{diagnostics}")]
    Wait {
        what: String,
        waited: Duration,
        reason: String,
        diagnostics: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Fails with [`Error::NotRoot`] unless the process runs as root.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

/// Fails with [`Error::Missing`] naming the first program not found on PATH (or at its
/// absolute path).
pub fn require_programs(programs: &[&str]) -> Result<()> {
    for program in programs {
        let found = if program.starts_with('/') {
            std::path::Path::new(program).exists()
        } else {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
            })
        };
        if !found {
            return Err(Error::Missing((*program).to_string()));
        }
    }
    Ok(())
}

/// Runs a command to completion and returns its stdout; a non-zero exit becomes
/// [`Error::Command`] carrying the command line and its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let line = command_line(cmd);
    let out = cmd.output().map_err(io_err(format!("running `{line}`")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr,
        })
    }
}

pub(crate) fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Something that can explain itself when a wait times out: its configuration files and
/// the tails of its logs.
pub trait Diagnose {
    fn diagnostics(&self) -> String;
}

/// Polls `probe` every 200 ms until it returns `Some`, for at most `timeout`. Errors from
/// the probe do not end the wait (a daemon may not be listening yet), except
/// [`Error::Exited`]: a daemon that died will not come back. The last error is reported
/// with the timeout, followed by the diagnostics of `explain`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    explain: &[&dyn Diagnose],
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let give_up = |reason: String| {
        let mut diagnostics = String::new();
        for d in explain {
            let _ = writeln!(diagnostics, "{}", d.diagnostics());
        }
        Error::Wait {
            what: what.to_string(),
            waited: start.elapsed(),
            reason,
            diagnostics,
        }
    };
    loop {
        let last = match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e @ Error::Exited { .. }) => return Err(give_up(e.to_string())),
            Err(e) => Some(e),
        };
        if start.elapsed() >= timeout {
            return Err(give_up(match last {
                Some(e) => format!("timed out; last error: {e}"),
                None => "timed out".to_string(),
            }));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `speaker` reports its session with `peer` Established; on timeout the
/// error carries the speaker's configuration and log.
pub fn wait_established(speaker: &dyn Speaker, peer: IpAddr, timeout: Duration) -> Result<()> {
    wait_state(speaker, peer, timeout, &[], |s| {
        s == &SessionState::Established
    })
}

/// Waits until `speaker`'s session with `peer` is in a state `accept` takes; `also`
/// names further daemons whose diagnostics help on timeout (the other side, usually).
pub fn wait_state(
    speaker: &dyn Speaker,
    peer: IpAddr,
    timeout: Duration,
    also: &[&dyn Diagnose],
    accept: impl Fn(&SessionState) -> bool,
) -> Result<()> {
    let what = format!(
        "{} in {} to see its session with {peer} change",
        speaker.kind(),
        speaker.namespace()
    );
    let mut explain: Vec<&dyn Diagnose> = vec![speaker.as_diagnose()];
    explain.extend_from_slice(also);
    let mut seen = SessionState::Idle;
    wait_for(&what, timeout, &explain, || {
        seen = speaker.session_state(peer)?;
        Ok(accept(&seen).then_some(()))
    })
    .map_err(|e| match e {
        Error::Wait {
            what,
            waited,
            reason,
            diagnostics,
        } => Error::Wait {
            what,
            waited,
            reason: format!("{reason}; last state {seen:?}"),
            diagnostics,
        },
        e => e,
    })
}

/// The last `lines` lines of a text file, or a note that it cannot be read.
pub(crate) fn tail(path: &std::path::Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
