//! systemd's notification protocol (`sd_notify(3)`), for `Type=notify` services.
//!
//! Written here rather than taken from libsystemd (or a crate binding it): the protocol
//! is one datagram of `KEY=value` lines sent to the socket named by `NOTIFY_SOCKET`, a
//! dozen lines of std, while libsystemd would add a C library to link and to package
//! for a binary that otherwise needs only libc. What herald sends:
//!
//! - `STATUS=` while it starts: scanning or creating the region;
//! - `READY=1` with `STATUS=serving on SOCKET` once the socket serves (from the `ready`
//!   callback of [`herald::delivery::serve_notifying`]), with the replay still to do
//!   after a crash; further `STATUS=` lines as subscriptions finish their replay;
//! - `STOPPING=1` when SIGTERM starts the shutdown;
//! - `WATCHDOG=1` every half `WATCHDOG_USEC`, from the daemon's loop (so a loop that
//!   stops turning is caught), when systemd set a watchdog for this process.
//!
//! The socket is non-blocking: a notification systemd cannot take at once is dropped
//! rather than stalling the loop (systemd drains its socket continuously; a lost
//! `WATCHDOG=1` is sent again half an interval later).

use herald::delivery::{Notifier, ServeInfo};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

/// A connection to systemd's notification socket.
pub struct SdNotify {
    socket: UnixDatagram,
    address: SocketAddr,
    /// Half of `WATCHDOG_USEC`, in ns, when the watchdog is on for this process.
    watchdog_every_ns: Option<u64>,
}

impl SdNotify {
    /// The socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract
    /// namespace), or None when herald does not run under a notify-aware supervisor or
    /// the socket cannot be used (which is logged: the service would then time out).
    pub fn from_env() -> Option<SdNotify> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        match SdNotify::open(&name) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(socket = %Path::new(&name).display(), error = %e, "cannot use NOTIFY_SOCKET; systemd will not hear that herald is ready");
                None
            }
        }
    }

    fn open(name: &std::ffi::OsStr) -> std::io::Result<SdNotify> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name)?
            }
            None => SocketAddr::from_pathname(name)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(SdNotify {
            socket,
            address,
            watchdog_every_ns: watchdog_from_env(),
        })
    }

    /// Sends one notification (`KEY=value` lines); a failure is logged at debug and
    /// otherwise ignored: notifications are advice to the supervisor, never a reason to
    /// stop serving.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            tracing::debug!(error = %e, "a notification to systemd was not sent");
        }
    }

    /// `STATUS=text`: one line of progress (`systemctl status` shows the last).
    pub fn status(&self, text: &str) {
        self.send(&format!("STATUS={}", one_line(text)));
    }

    /// `READY=1`: the socket serves.
    pub fn ready(&self, info: &ServeInfo) {
        let events = info.recovery.as_ref().map_or(0, |r| r.live_events);
        let status = match info.replaying_subscriptions {
            0 => format!("serving on {}", info.socket.display()),
            subscriptions => format!(
                "serving on {}; replaying {events} unconfirmed events to {subscriptions} subscription{}",
                info.socket.display(),
                plural(subscriptions)
            ),
        };
        self.send(&format!("READY=1\nSTATUS={}", one_line(&status)));
    }

    /// The notifier the daemon's loop calls: a second handle on the same socket.
    pub fn loop_notifier(&self, socket: &Path) -> LoopNotifier {
        let copy = self.socket.try_clone().map(|socket| SdNotify {
            socket,
            address: self.address.clone(),
            watchdog_every_ns: self.watchdog_every_ns,
        });
        if let Err(e) = &copy {
            tracing::warn!(error = %e, "cannot duplicate the notification socket; systemd will hear neither the watchdog nor the shutdown");
        }
        LoopNotifier {
            notify: copy.ok(),
            socket: socket.to_owned(),
            next_watchdog_ns: 0,
        }
    }
}

/// `WATCHDOG_USEC`, halved into ns, when it is set and meant for this process
/// (`WATCHDOG_PID`, when set, names the process the watchdog watches).
fn watchdog_from_env() -> Option<u64> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str() != Some(&std::process::id().to_string()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| usec.saturating_mul(1000) / 2)
}

/// What the daemon's loop tells systemd: the watchdog, recovery progress, the shutdown.
pub struct LoopNotifier {
    notify: Option<SdNotify>,
    /// The socket served, named in the status lines.
    socket: PathBuf,
    /// When `WATCHDOG=1` is next due (monotonic ns; 0: at the first turn).
    next_watchdog_ns: u64,
}

impl Notifier for LoopNotifier {
    fn turn(&mut self, now_ns: u64) {
        let Some(notify) = &self.notify else { return };
        let Some(every) = notify.watchdog_every_ns else {
            return;
        };
        if now_ns >= self.next_watchdog_ns {
            self.next_watchdog_ns = now_ns + every;
            notify.send("WATCHDOG=1");
        }
    }

    fn replaying(&mut self, subscriptions: usize) {
        let Some(notify) = &self.notify else { return };
        let socket = self.socket.display();
        notify.status(&match subscriptions {
            0 => format!("serving on {socket}; every replay after the crash is done"),
            n => format!(
                "serving on {socket}; {n} subscription{} still replaying unconfirmed events",
                plural(n)
            ),
        });
    }

    fn stopping(&mut self) {
        if let Some(notify) = &self.notify {
            notify.send("STOPPING=1\nSTATUS=shutting down: finishing in-flight commits");
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A status is one line: a newline would start another `KEY=value` assignment.
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}
