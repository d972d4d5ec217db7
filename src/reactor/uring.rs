//! The io_uring backend: multishot accept, receives and sends armed during a turn and
//! submitted together by the one `io_uring_enter` that waits for the next completions.

use super::{
    explain::io_uring_sysctl, explain_uring_refusal, start_connect, Address, Backend, Completion,
    ListenerId, Reactor, Token, UringRefusal, SLOT_MAX,
};
use io_uring::{cqueue, opcode, types, IoUring};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Operation kinds, in the top byte of `user_data`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Signal = 4,
    Connect = 5,
    Sync = 6,
}

/// Packs an operation, a slot and its generation into `user_data`.
fn tag(op: Op, slot: u32, generation: u32) -> u64 {
    ((op as u64) << 56) | ((u64::from(slot) & u64::from(SLOT_MAX)) << 32) | u64::from(generation)
}

/// Unpacks [`tag`].
fn untag(user_data: u64) -> (Option<Op>, Token) {
    let op = match user_data >> 56 {
        1 => Some(Op::Accept),
        2 => Some(Op::Recv),
        3 => Some(Op::Send),
        4 => Some(Op::Signal),
        5 => Some(Op::Connect),
        6 => Some(Op::Sync),
        _ => None,
    };
    let token = Token {
        slot: ((user_data >> 32) & u64::from(SLOT_MAX)) as u32,
        generation: user_data as u32,
    };
    (op, token)
}

/// The io_uring reactor.
pub struct UringReactor {
    ring: IoUring,
    listeners: Vec<OwnedFd>,
    accepting: bool,
    signal_fd: OwnedFd,
    /// Where the armed signalfd read puts its `signalfd_siginfo` (128 bytes); boxed so
    /// that it never moves while the read is in flight.
    signal_buf: Box<[u8; 128]>,
    spin: Duration,
    clock: Instant,
    /// Outbound connections in progress: their sockets, until the poll for
    /// writability completes.
    connecting: Vec<(Token, OwnedFd)>,
    /// Completions made without the kernel's help (a connect that finished at once).
    ready: Vec<Completion<OwnedFd>>,
    /// Completion-queue entries copied out, so that handling one may push new entries.
    cqes: Vec<(u64, i32, u32)>,
}

impl UringReactor {
    /// A ring of `entries` submission entries that polls for completions for up to
    /// `spin` before sleeping in the kernel; or why the host refuses io_uring.
    pub fn new(entries: u32, spin: Duration) -> Result<UringReactor, UringRefusal> {
        let ring = IoUring::builder()
            .build(entries)
            .map_err(|e| explain_uring_refusal(e.raw_os_error(), io_uring_sysctl()))?;
        let signal_fd = super::termination_signals(false).map_err(|e| UringRefusal {
            errno: e.raw_os_error(),
            sysctl: None,
            cause: "signalfd",
            explanation: format!("cannot set up the signal descriptor: {e}"),
        })?;
        let mut reactor = UringReactor {
            ring,
            listeners: Vec::new(),
            accepting: true,
            signal_fd,
            signal_buf: Box::new([0; 128]),
            spin,
            clock: Instant::now(),
            connecting: Vec::new(),
            ready: Vec::new(),
            cqes: Vec::with_capacity(entries as usize * 2),
        };
        reactor.arm_signal().map_err(|e| UringRefusal {
            errno: e.raw_os_error(),
            sysctl: None,
            cause: "submit",
            explanation: format!("io_uring accepted no submission: {e}"),
        })?;
        Ok(reactor)
    }

    fn push(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        // SAFETY: every buffer an entry points at is either the caller's (its contract
        // on `recv`/`send` keeps it alive until the completion) or `signal_buf`, which
        // lives as long as the ring.
        unsafe {
            if self.ring.submission().push(entry).is_err() {
                self.ring.submit()?;
                self.ring
                    .submission()
                    .push(entry)
                    .map_err(|_| io::Error::other("io_uring submission queue full after submit"))?;
            }
        }
        Ok(())
    }

    fn arm_accept(&mut self, index: usize) -> io::Result<()> {
        let fd = self.listeners[index].as_raw_fd();
        let entry = opcode::AcceptMulti::new(types::Fd(fd))
            .build()
            .user_data(tag(Op::Accept, index as u32, 0));
        self.push(&entry)
    }

    fn arm_signal(&mut self) -> io::Result<()> {
        let entry = opcode::Read::new(
            types::Fd(self.signal_fd.as_raw_fd()),
            self.signal_buf.as_mut_ptr(),
            self.signal_buf.len() as u32,
        )
        .build()
        .user_data(tag(Op::Signal, 0, 0));
        self.push(&entry)
    }

    /// Submits and waits for a completion: polling the queue for up to `spin` (a cheap
    /// wake-up for a busy daemon), then sleeping in the kernel for at most `timeout`.
    fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.ring.submit()?;
        if !self.ring.completion().is_empty() || timeout.is_zero() {
            return Ok(());
        }
        if !self.spin.is_zero() {
            let until = Instant::now() + self.spin.min(timeout);
            while Instant::now() < until {
                if !self.ring.completion().is_empty() {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
        }
        let ts = types::Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Reactor for UringReactor {
    type Socket = OwnedFd;
    type Listener = OwnedFd;

    fn backend(&self) -> Backend {
        Backend::IoUring
    }

    fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn unix_ns(&self) -> u64 {
        super::system_unix_ns()
    }

    fn listen(&mut self, listener: OwnedFd) -> io::Result<ListenerId> {
        let index = self.listeners.len();
        self.listeners.push(listener);
        self.arm_accept(index)?;
        Ok(ListenerId(index as u16))
    }

    fn stop_accepting(&mut self) {
        self.accepting = false;
        for index in 0..self.listeners.len() {
            let entry = opcode::AsyncCancel::new(tag(Op::Accept, index as u32, 0))
                .build()
                .user_data(0);
            let _ = self.push(&entry);
        }
    }

    fn connect(&mut self, address: &Address, token: Token) -> io::Result<()> {
        let (socket, done) = start_connect(address)?;
        if done {
            set_blocking(&socket)?;
            self.ready.push(Completion::Connected {
                token,
                result: Ok(socket),
            });
            return Ok(());
        }
        let entry = opcode::PollAdd::new(types::Fd(socket.as_raw_fd()), libc::POLLOUT as u32)
            .build()
            .user_data(tag(Op::Connect, token.slot, token.generation));
        self.connecting.push((token, socket));
        self.push(&entry)
    }

    fn attach(&mut self, _socket: &OwnedFd, _token: Token) -> io::Result<()> {
        Ok(())
    }

    unsafe fn recv(&mut self, socket: &OwnedFd, buf: *mut u8, len: usize, token: Token) {
        let entry = opcode::Recv::new(types::Fd(socket.as_raw_fd()), buf, len as u32)
            .build()
            .user_data(tag(Op::Recv, token.slot, token.generation));
        if let Err(e) = self.push(&entry) {
            self.ready.push(Completion::Received {
                token,
                result: Err(e.raw_os_error().unwrap_or(libc::EIO)),
            });
        }
    }

    unsafe fn send(&mut self, socket: &OwnedFd, buf: *const u8, len: usize, token: Token) {
        let entry = opcode::Send::new(types::Fd(socket.as_raw_fd()), buf, len as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(tag(Op::Send, token.slot, token.generation));
        if let Err(e) = self.push(&entry) {
            self.ready.push(Completion::Sent {
                token,
                result: Err(e.raw_os_error().unwrap_or(libc::EIO)),
            });
        }
    }

    fn shutdown(&mut self, socket: &OwnedFd) {
        // SAFETY: plain syscall on a live descriptor we own. It completes an armed
        // receive at once, so the slot can be released.
        unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_RDWR) };
    }

    fn close(&mut self, socket: OwnedFd, _token: Option<Token>) {
        drop(socket);
    }

    fn refuse(&mut self, socket: OwnedFd, farewell: &[u8]) {
        super::refuse_fd(socket, farewell);
    }

    fn sync(&mut self, file: Option<std::os::fd::RawFd>, token: u32) {
        let Some(fd) = file else {
            self.ready.push(Completion::Synced {
                token,
                result: Ok(()),
            });
            return;
        };
        let entry = opcode::Fsync::new(types::Fd(fd))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(tag(Op::Sync, 0, token));
        if let Err(e) = self.push(&entry) {
            self.ready.push(Completion::Synced {
                token,
                result: Err(e.raw_os_error().unwrap_or(libc::EIO)),
            });
        }
    }

    fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion<OwnedFd>>) -> io::Result<()> {
        let timeout = if self.ready.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        self.submit_and_wait(timeout)?;
        out.append(&mut self.ready);
        self.cqes.clear();
        for cqe in self.ring.completion() {
            self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
        for i in 0..self.cqes.len() {
            let (user_data, result, flags) = self.cqes[i];
            let (op, token) = untag(user_data);
            match op {
                Some(Op::Accept) => {
                    let listener = ListenerId(token.slot as u16);
                    if !cqueue::more(flags) && self.accepting {
                        self.arm_accept(token.slot as usize)?;
                    }
                    let result = if result >= 0 {
                        // SAFETY: a successful accept carries a new descriptor we own.
                        Ok(super::accepted_fd(unsafe { OwnedFd::from_raw_fd(result) }))
                    } else {
                        Err(-result)
                    };
                    // A cancelled accept (at shutdown) is no connection and no error.
                    if !matches!(result, Err(libc::ECANCELED)) {
                        out.push(Completion::Accepted { listener, result });
                    }
                }
                Some(Op::Recv) => out.push(Completion::Received {
                    token,
                    result: if result >= 0 {
                        Ok(result as usize)
                    } else {
                        Err(-result)
                    },
                }),
                Some(Op::Send) => out.push(Completion::Sent {
                    token,
                    result: if result >= 0 {
                        Ok(result as usize)
                    } else {
                        Err(-result)
                    },
                }),
                Some(Op::Signal) => {
                    if result > 0 {
                        out.push(Completion::Terminate);
                    }
                    self.arm_signal()?;
                }
                Some(Op::Connect) => {
                    let Some(at) = self.connecting.iter().position(|(t, _)| *t == token) else {
                        continue;
                    };
                    let (_, socket) = self.connecting.swap_remove(at);
                    let error = if result < 0 {
                        -result
                    } else {
                        super::socket_error(socket.as_raw_fd())
                    };
                    let result = if error == 0 {
                        set_blocking(&socket)
                            .map(|()| socket)
                            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
                    } else {
                        Err(error)
                    };
                    out.push(Completion::Connected { token, result });
                }
                Some(Op::Sync) => out.push(Completion::Synced {
                    token: token.generation,
                    result: if result >= 0 { Ok(()) } else { Err(-result) },
                }),
                // Cancellations and other internal entries.
                None => {}
            }
        }
        Ok(())
    }
}

/// io_uring retries a blocking socket's operations itself (by polling it); on an
/// `O_NONBLOCK` one some kernels hand `EAGAIN` back instead. Connected sockets are made
/// blocking for that reason.
fn set_blocking(socket: &OwnedFd) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    // SAFETY: fcntl on a live descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether io_uring can be set up here, and if not why: for tests that need it (they
/// say loudly when they skip).
pub fn probe() -> Result<(), UringRefusal> {
    IoUring::new(8)
        .map(drop)
        .map_err(|e| explain_uring_refusal(e.raw_os_error(), io_uring_sysctl()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for op in [
            Op::Accept,
            Op::Recv,
            Op::Send,
            Op::Signal,
            Op::Connect,
            Op::Sync,
        ] {
            let t = tag(op, 4097, 0xdead_beef);
            assert_eq!(
                untag(t),
                (
                    Some(op),
                    Token {
                        slot: 4097,
                        generation: 0xdead_beef
                    }
                )
            );
        }
        let top = tag(Op::Recv, SLOT_MAX, 1);
        assert_eq!(untag(top).1.slot, SLOT_MAX);
        assert_eq!(untag(0).0, None);
    }
}
