//! The daemon's one seam to the kernel's sockets, signals and clock: a small
//! completion-based interface ([`Reactor`]) with three backends.
//!
//! - [`uring::UringReactor`]: io_uring, multishot accept, one submission per turn for
//!   every receive and send armed in it.
//! - [`epoll::EpollReactor`]: edge-triggered epoll over non-blocking sockets, for hosts
//!   that refuse io_uring (Docker's default seccomp profile, Kubernetes'
//!   `RuntimeDefault`, `kernel.io_uring_disabled`).
//! - [`sim::SimReactor`]: in-memory sockets and simulated time, so that a test drives
//!   the whole daemon in one process, deterministically.
//!
//! The interface is io_uring's shape, because that is the one that cannot be emulated
//! cheaply the other way round: the caller *arms* an operation on a buffer it owns and
//! later receives its [`Completion`]. epoll emulates that by doing the system call when
//! the socket is ready; the simulator by copying bytes between in-memory queues.
//!
//! Buffer ownership (as in the `io-uring` crate): arming a receive or a send is
//! `unsafe`, because the reactor may write into (read from) the buffer at any time until
//! the operation's completion has been returned by [`Reactor::wait`]. The daemon keeps
//! every connection's buffers in a table allocated at start-up and touches a buffer
//! again only after its completion (its `recv_in_flight` / `send_in_flight` flags).

pub mod epoll;
mod explain;
pub mod sim;
pub mod uring;

pub use explain::{explain_uring_refusal, UringRefusal};

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

/// Which backend a reactor is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// io_uring.
    IoUring,
    /// epoll, edge-triggered.
    Epoll,
    /// The in-process simulator.
    Sim,
}

impl Backend {
    /// The name used by `herald serve --io` and `herald status`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::IoUring => "io-uring",
            Backend::Epoll => "epoll",
            Backend::Sim => "sim",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bits of [`Token::slot`]: io_uring's `user_data` packs an operation kind (8 bits), the
/// slot (24 bits) and the generation (32 bits) into 64.
pub const SLOT_BITS: u32 = 24;
/// Largest slot a token can name.
pub const SLOT_MAX: u32 = (1 << SLOT_BITS) - 1;

/// Whose operation a completion answers: a connection slot and the generation of the
/// connection in it. A completion for an older generation belongs to a connection that
/// has since been closed and its slot reused; the caller ignores it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Token {
    /// The connection slot, at most [`SLOT_MAX`].
    pub slot: u32,
    /// The slot's generation when the operation was armed.
    pub generation: u32,
}

/// Where an outbound connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// A Unix stream socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "{}", path.display()),
            Address::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// Names a listener given to [`Reactor::listen`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u16);

/// Who is at the other end of a Unix socket, as the kernel says (`SO_PEERCRED`): the
/// process that called `connect`, with the credentials it had then. Read once per
/// accepted connection, never per frame; the simulator gives each connection whatever
/// a test asks for ([`sim::SimNet::connect_as`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The connecting process (0 when the kernel does not know it).
    pub pid: i32,
    /// Its effective user id.
    pub uid: u32,
    /// Its effective group id.
    pub gid: u32,
}

/// A connection a listener accepted: the socket and who connected.
#[derive(Debug)]
pub struct Accepted<S> {
    /// The new socket, not yet attached.
    pub socket: S,
    /// The peer's credentials; None when the kernel gave none (a getsockopt that
    /// failed, or a transport without them: a TCP listener's identity will be its
    /// client certificate, known after the TLS handshake, above this seam).
    pub peer: Option<PeerCredentials>,
}

/// An operation's outcome. Errors are the kernel's errno values (positive).
#[derive(Debug)]
pub enum Completion<S> {
    /// A listener accepted a connection (or failed to).
    Accepted {
        /// Which listener.
        listener: ListenerId,
        /// The new socket and its peer's credentials.
        result: Result<Accepted<S>, i32>,
    },
    /// An outbound connection armed with [`Reactor::connect`] was made (or not).
    Connected {
        /// The slot it was armed for.
        token: Token,
        /// The socket, already attached to `token`.
        result: Result<S, i32>,
    },
    /// A receive finished: bytes written into the armed buffer; 0 = end of stream.
    Received {
        /// The connection.
        token: Token,
        /// Bytes received.
        result: Result<usize, i32>,
    },
    /// A send finished: bytes taken from the armed buffer (may be fewer than armed).
    Sent {
        /// The connection.
        token: Token,
        /// Bytes sent.
        result: Result<usize, i32>,
    },
    /// A sync armed with [`Reactor::sync`] finished.
    Synced {
        /// The token it was armed with.
        token: u32,
        /// Ok, or the errno of `fdatasync`.
        result: Result<(), i32>,
    },
    /// SIGTERM or SIGINT arrived: the daemon should stop.
    Terminate,
}

/// The interface the daemon's core runs over. Every method is cheap; the only one that
/// may block is [`Reactor::wait`].
pub trait Reactor {
    /// A connected socket, owned by the caller between [`Completion::Accepted`] (or
    /// [`Completion::Connected`]) and [`Reactor::close`].
    type Socket;
    /// A bound, listening socket handed to [`Reactor::listen`].
    type Listener;

    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Monotonic time in nanoseconds (simulated time for the simulator).
    fn now_ns(&self) -> u64;

    /// Wall-clock time in nanoseconds since the Unix epoch (event timestamps, the
    /// idempotency window's ages).
    fn unix_ns(&self) -> u64;

    /// Starts accepting on `listener` (a bound, listening socket; the reactor owns it
    /// from now on). Accepted sockets arrive as [`Completion::Accepted`] until
    /// [`Reactor::stop_accepting`].
    fn listen(&mut self, listener: Self::Listener) -> io::Result<ListenerId>;

    /// Stops accepting on every listener (shutdown).
    fn stop_accepting(&mut self);

    /// Starts an outbound connection for slot `token`; it completes with
    /// [`Completion::Connected`].
    fn connect(&mut self, address: &Address, token: Token) -> io::Result<()>;

    /// Binds an accepted socket to a slot before the first operation on it.
    fn attach(&mut self, socket: &Self::Socket, token: Token) -> io::Result<()>;

    /// Arms a receive of up to `len` bytes into `buf`.
    ///
    /// # Safety
    /// `buf..buf + len` must stay valid, and must be neither read nor written by the
    /// caller, until this operation's [`Completion::Received`] has been returned by
    /// [`Reactor::wait`] (or the reactor is dropped). At most one receive per slot is
    /// in flight.
    unsafe fn recv(&mut self, socket: &Self::Socket, buf: *mut u8, len: usize, token: Token);

    /// Arms a send of `len` bytes from `buf`.
    ///
    /// # Safety
    /// `buf..buf + len` must stay valid and unchanged until this operation's
    /// [`Completion::Sent`] has been returned by [`Reactor::wait`] (or the reactor is
    /// dropped). At most one send per slot is in flight.
    unsafe fn send(&mut self, socket: &Self::Socket, buf: *const u8, len: usize, token: Token);

    /// Shuts both directions of `socket` down: its armed operations complete soon
    /// (receives with end of stream, sends with an error).
    fn shutdown(&mut self, socket: &Self::Socket);

    /// Closes `socket` (attached to `token`, or never attached: None). Only once none
    /// of its operations is in flight.
    fn close(&mut self, socket: Self::Socket, token: Option<Token>);

    /// Starts making a file's data durable (`fdatasync` of `file`) without waiting; it
    /// completes with [`Completion::Synced`] carrying `token`. One at a time. Without
    /// a file (a simulated medium) it completes after the simulated disk's delay.
    fn sync(&mut self, file: Option<std::os::fd::RawFd>, token: u32);

    /// Closes a socket that was never attached after writing `farewell` (a short error
    /// frame) if the socket takes it at once, without waiting: how a connection beyond
    /// every slot learns why it is turned away.
    fn refuse(&mut self, socket: Self::Socket, farewell: &[u8]);

    /// Submits what was armed and waits up to `timeout` for at least one completion,
    /// appending every completion available to `out`.
    fn wait(
        &mut self,
        timeout: Duration,
        out: &mut Vec<Completion<Self::Socket>>,
    ) -> io::Result<()>;
}

/// Blocks SIGTERM and SIGINT for the calling thread (they are read from a signalfd
/// instead, as a completion) and ignores SIGPIPE (a subscriber that vanishes must not
/// kill the daemon; sends also carry `MSG_NOSIGNAL`). Returns the signalfd,
/// non-blocking if asked (epoll reads it when ready; io_uring wants it blocking).
pub fn termination_signals(nonblocking: bool) -> io::Result<OwnedFd> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().map_err(io::Error::from)?;
    // SAFETY: setting a signal disposition to ignore has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let mut flags = nix::sys::signalfd::SfdFlags::SFD_CLOEXEC;
    if nonblocking {
        flags |= nix::sys::signalfd::SfdFlags::SFD_NONBLOCK;
    }
    let fd = nix::sys::signalfd::SignalFd::with_flags(&set, flags).map_err(io::Error::from)?;
    use std::os::fd::{AsFd, AsRawFd, FromRawFd};
    let raw = fd.as_fd().as_raw_fd();
    // nix 0.29 cannot give the descriptor up; forgetting the wrapper leaves it with
    // exactly one owner.
    std::mem::forget(fd);
    // SAFETY: `raw` is open and owned by nothing else now.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Wall-clock nanoseconds since the Unix epoch (0 before it).
pub fn system_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The last OS error's errno (EIO when there is none).
fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Creates a non-blocking, close-on-exec stream socket for `address` and starts
/// connecting it. Returns the socket and whether the connection is already made
/// (`false`: `EINPROGRESS`, writable once it is).
fn start_connect(address: &Address) -> io::Result<(OwnedFd, bool)> {
    use std::os::fd::FromRawFd;
    let (storage, len, domain) = sockaddr_of(address)?;
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor we own.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `storage` holds a valid address of `len` bytes.
    let r = unsafe { libc::connect(fd, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if r == 0 {
        return Ok((socket, true));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS) | Some(libc::EAGAIN) => Ok((socket, false)),
        _ => Err(e),
    }
}

/// The socket address of `address`, its length and its domain.
fn sockaddr_of(address: &Address) -> io::Result<(libc::sockaddr_storage, libc::socklen_t, i32)> {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match address {
        Address::Unix(path) => {
            use std::os::unix::ffi::OsStrExt;
            let bytes = path.as_os_str().as_bytes();
            // SAFETY: sockaddr_storage is larger than sockaddr_un and suitably aligned.
            let un = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>()
            };
            if bytes.len() >= un.sun_path.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "socket path {} is longer than {} bytes",
                        path.display(),
                        un.sun_path.len() - 1
                    ),
                ));
            }
            un.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (dst, src) in un.sun_path.iter_mut().zip(bytes) {
                *dst = *src as libc::c_char;
            }
            let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
            Ok((storage, len as libc::socklen_t, libc::AF_UNIX))
        }
        Address::Tcp(SocketAddr::V4(v4)) => {
            // SAFETY: as above, for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            };
            Ok((
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                libc::AF_INET,
            ))
        }
        Address::Tcp(SocketAddr::V6(v6)) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            Ok((
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                libc::AF_INET6,
            ))
        }
    }
}

/// Writes `farewell` to `socket` if it takes it at once, then closes it (the real
/// backends' [`Reactor::refuse`]).
fn refuse_fd(socket: OwnedFd, farewell: &[u8]) {
    use std::os::fd::AsRawFd;
    // SAFETY: `farewell` is valid for its length; a failed or short send is fine (the
    // connection is being turned away either way).
    unsafe {
        libc::send(
            socket.as_raw_fd(),
            farewell.as_ptr().cast(),
            farewell.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    drop(socket);
}

/// The credentials of a Unix socket's peer (one `getsockopt(SO_PEERCRED)`), or None if
/// the kernel gives none.
fn peer_credentials(fd: std::os::fd::RawFd) -> Option<PeerCredentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of their sizes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0 && len as usize == std::mem::size_of::<libc::ucred>()).then_some(PeerCredentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// An accepted descriptor with its peer's credentials.
fn accepted_fd(socket: OwnedFd) -> Accepted<OwnedFd> {
    use std::os::fd::AsRawFd;
    let peer = peer_credentials(socket.as_raw_fd());
    Accepted { socket, peer }
}

/// The pending error of a socket whose non-blocking connect finished (0 = connected).
fn socket_error(fd: std::os::fd::RawFd) -> i32 {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `error` and `len` are valid for writes of their sizes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        last_errno()
    } else {
        error
    }
}

#[cfg(test)]
mod conformance;
