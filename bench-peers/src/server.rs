//! A peer's server process, started on a throwaway directory and always stopped.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopped server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of a server's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// What to do when a peer's program is not installed.
pub const INSTALL_HINT: &str = "run tools/install-peers.sh (installs redis-server, nats-server and libpmemlog-dev from Debian's packages)";

/// A child server process, its log file and its data directory. Dropping it stops the
/// server (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]) and removes the directory.
pub struct ServerProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// Removed after the server stopped (fields drop after `drop` ran).
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `program` with `args` in a new directory under `scratch`, its output to
    /// `NAME.log` there. `args` may name files in the directory, given to it first.
    pub fn start(
        name: &'static str,
        program: &str,
        scratch: &Path,
        args: impl FnOnce(&Path) -> anyhow::Result<Vec<String>>,
    ) -> anyhow::Result<ServerProcess> {
        let path = find_program(program)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(scratch)?;
        let log = dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&path)
            .args(args(dir.path())?)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(ServerProcess {
            name,
            child,
            log,
            _dir: dir,
        })
    }

    /// Calls `ready` until it succeeds; fails with the server's log tail if the server
    /// exits or does not become ready in time.
    pub fn wait_ready<T>(
        &mut self,
        mut ready: impl FnMut() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        loop {
            let attempt = ready();
            match attempt {
                Ok(value) => return Ok(value),
                Err(e) => {
                    if let Some(status) = self.child.try_wait()? {
                        anyhow::bail!(
                            "{} exited ({status}) before it was ready; its log {}:\n{}",
                            self.name,
                            self.log.display(),
                            self.log_tail()
                        );
                    }
                    if started.elapsed() > READY_TIMEOUT {
                        anyhow::bail!(
                            "{} was not ready after {:?} (last attempt: {e:#}); its log {}:\n{}",
                            self.name,
                            READY_TIMEOUT,
                            self.log.display(),
                            self.log_tail()
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Our own child, not waited for yet, so its pid cannot have been reused.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The full path of `program` from `PATH` (plus `/usr/sbin`, where Debian puts
/// nats-server and where a non-root `PATH` may not look).
pub fn find_program(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} is not installed: {INSTALL_HINT}"))
}

/// The first line `program --version` prints.
pub fn version(program: &str) -> String {
    find_program(program)
        .ok()
        .and_then(|p| Command::new(p).arg("--version").output().ok())
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_else(|| "unknown".into())
}
