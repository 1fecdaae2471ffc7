//! Processes and directories a speaker owns: a daemon started inside a namespace and
//! stopped by its PID, and a working directory removed on drop.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{io_err, tail, Error, Result};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A private directory under the system temp dir for one speaker's configuration, logs,
/// PID files and control sockets. Removed on drop unless `TESTBED_KEEP=1` is set.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
}

impl Workdir {
    pub fn new(tag: &str) -> Result<Workdir> {
        let path = std::env::temp_dir().join(format!(
            "ecmpd-testbed-{}-{}-{tag}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).map_err(io_err(format!("creating {}", path.display())))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(io_err(format!("chmod {}", path.display())))?;
        Ok(Workdir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `name` in the directory, readable by everyone (daemons that drop privileges
    /// read their configuration after doing so).
    pub fn write(&self, name: &str, contents: &str) -> Result<PathBuf> {
        let p = self.join(name);
        fs::write(&p, contents).map_err(io_err(format!("writing {}", p.display())))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
            .map_err(io_err(format!("chmod {}", p.display())))?;
        Ok(p)
    }

    /// Hands the directory to a system user (FRR's daemons run as frr:frr and create
    /// their sockets and PID files here).
    pub fn chown(&self, user: &str, group: &str) -> Result<()> {
        crate::run(std::process::Command::new("chown").args([
            &format!("{user}:{group}"),
            self.path.to_str().expect("temp paths are UTF-8"),
        ]))
        .map(drop)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::env::var_os("TESTBED_KEEP").is_some_and(|v| v == "1") {
            eprintln!("testbed: keeping {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A daemon running in the foreground inside a namespace, its stdout and stderr going to
/// a file. Stopped on drop: SIGTERM to its PID, SIGKILL after two seconds.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    output: PathBuf,
}

impl Daemon {
    /// Starts `argv` in the namespace called `ns` with extra environment `env`, output
    /// to `output`.
    pub fn spawn(
        ns: &str,
        name: &str,
        argv: &[&str],
        env: &[(&str, &str)],
        output: PathBuf,
    ) -> Result<Daemon> {
        let (program, args) = argv.split_first().expect("a daemon needs a program");
        crate::require_programs(&[program])?;
        let out = File::options()
            .create(true)
            .append(true)
            .open(&output)
            .map_err(io_err(format!("opening {}", output.display())))?;
        let err = out
            .try_clone()
            .map_err(io_err(format!("opening {}", output.display())))?;
        let mut cmd = crate::netns::command_in(ns, program);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let line = crate::command_line(&cmd);
        let child = cmd.spawn().map_err(io_err(format!("starting `{line}`")))?;
        Ok(Daemon {
            name: name.to_string(),
            child,
            output,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the daemon's stdout and stderr go.
    pub fn output(&self) -> &Path {
        &self.output
    }

    /// Whether the process is still running (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Fails with [`Error::Exited`] (and the tail of the daemon's output) if the daemon
    /// is no longer running. Reads `/proc`, so it needs no `&mut`: an exited child
    /// stays a zombie until this guard reaps it.
    pub fn ensure_running(&self) -> Result<()> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id()));
        // The state follows the parenthesised command name: `pid (comm) S ...`.
        let state = stat
            .as_deref()
            .ok()
            .and_then(|s| s.rsplit_once(')'))
            .and_then(|(_, rest)| rest.split_whitespace().next());
        match state {
            Some(s) if s != "Z" && s != "X" => Ok(()),
            _ => Err(Error::Exited {
                daemon: self.name.clone(),
                pid: self.child.id(),
                output: tail(&self.output, 30),
            }),
        }
    }

    /// Sends SIGTERM and waits up to `grace` for the daemon to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if !self.is_running() {
            return;
        }
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// SIGKILL, then reaps: the daemon gets no chance to say goodbye to its peers (for
    /// BGP, no NOTIFICATION: the peer sees the TCP connection close, as in a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGHUP: daemons that reload their configuration on it (gobgpd) do so.
    pub fn hangup(&mut self) {
        if self.is_running() {
            self.signal(libc::SIGHUP);
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: a plain signal to the PID of a child this guard spawned and has not
        // reaped yet (is_running was checked), so the PID cannot have been reused.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}
