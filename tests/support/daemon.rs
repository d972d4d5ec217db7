//! Starts the real `herald serve` binary in a temporary data directory and waits for
//! its `ready` line (no sleeping, no polling of the socket).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running daemon; killed (SIGKILL) when dropped unless stopped first.
pub struct Daemon {
    pub child: Child,
    pub data_dir: PathBuf,
    pub ready_line: String,
}

impl Daemon {
    /// Starts `herald serve --data-dir DIR` with extra arguments.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
        let mut child = Command::new(herald_binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn herald serve");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).expect("read ready line");
        assert!(line.starts_with("ready:"), "daemon did not start: {line:?}");
        Daemon {
            child,
            data_dir: data_dir.to_owned(),
            ready_line: line,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("herald.sock")
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

/// The `herald` binary: cargo's path in integration tests; for tools, `HERALD_BIN` or
/// the `herald` beside the tool's own directory (target/<profile>/examples/..).
pub fn herald_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_herald") {
        return PathBuf::from(path);
    }
    if let Ok(path) = std::env::var("HERALD_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/examples")
        .join("herald")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
