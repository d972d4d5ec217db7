//! The epoll backend: edge-triggered readiness over non-blocking sockets, turned into
//! the completions of the [`Reactor`] interface.
//!
//! Each attached socket is registered once (`EPOLLIN | EPOLLOUT | EPOLLRDHUP |
//! EPOLLET`) and its readiness kept in two flags. An armed receive (send) is carried
//! out as soon as its socket is known readable (writable): at once if it already is,
//! else when epoll reports the edge. A short read or write, or `EAGAIN`, clears the
//! flag: with edge triggering the kernel reports the next arrival (or free space) as a
//! new edge, so nothing is polled twice and no `epoll_ctl` is made per operation.

use super::{
    last_errno, socket_error, start_connect, Address, Backend, Completion, ListenerId, Reactor,
    Token,
};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// epoll `data` of the signalfd.
const SIGNAL_DATA: u64 = 1 << 63;
/// epoll `data` of the sync thread's eventfd.
const SYNC_DATA: u64 = (1 << 63) | 1;
/// epoll `data` bit of a listener (its index below).
const LISTENER_DATA: u64 = 1 << 62;
/// Readiness events one `epoll_wait` returns at most (more wait for the next turn).
const EVENTS_MAX: usize = 256;
/// Connections accepted from one listener per turn at most (the rest on the next).
const ACCEPTS_PER_TURN: usize = 64;

/// An armed operation's buffer.
#[derive(Copy, Clone)]
struct Armed {
    ptr: *mut u8,
    len: usize,
}

/// What the reactor knows of one connection slot.
struct SlotIo {
    /// The attached socket (-1: none).
    fd: RawFd,
    generation: u32,
    readable: bool,
    writable: bool,
    recv: Option<Armed>,
    send: Option<Armed>,
    /// An outbound connection in progress: its socket until it is made.
    connecting: Option<OwnedFd>,
    /// Listed in `pending`.
    queued: bool,
}

impl SlotIo {
    const EMPTY: SlotIo = SlotIo {
        fd: -1,
        generation: 0,
        readable: false,
        writable: false,
        recv: None,
        send: None,
        connecting: None,
        queued: false,
    };
}

struct Listener {
    fd: OwnedFd,
    /// epoll reported it readable and `accept` has not yet said `EAGAIN`.
    readable: bool,
}

/// A finished sync: its token and its result (an errno on failure).
type SyncOutcome = (u32, Result<(), i32>);

/// The thread that runs `fdatasync` for the epoll backend, which has no way to wait
/// for a sync without blocking the loop: one request at a time (the caller never has
/// two under way); it writes the eventfd in the epoll set when done. Per group commit,
/// never per event.
struct SyncThread {
    requests: Option<std::sync::mpsc::SyncSender<(std::os::fd::RawFd, u32)>>,
    done: std::sync::Arc<std::sync::Mutex<Option<SyncOutcome>>>,
    event: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyncThread {
    fn start() -> io::Result<SyncThread> {
        // SAFETY: plain syscall; the result is checked.
        let event = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if event < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor we own.
        let event = unsafe { OwnedFd::from_raw_fd(event) };
        let (requests, incoming) = std::sync::mpsc::sync_channel::<(std::os::fd::RawFd, u32)>(1);
        let done = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (done_there, wake) = (done.clone(), event.as_raw_fd());
        let thread = std::thread::Builder::new()
            .name("herald-sync".into())
            .spawn(move || {
                for (fd, token) in incoming {
                    // SAFETY: a plain syscall; the daemon keeps the region's file open
                    // until this thread is joined (the reactor is dropped first).
                    let r = unsafe { libc::fdatasync(fd) };
                    let result = if r == 0 { Ok(()) } else { Err(last_errno()) };
                    if let Ok(mut slot) = done_there.lock() {
                        *slot = Some((token, result));
                    }
                    let one = 1u64;
                    // SAFETY: writes 8 bytes from `one` to the eventfd.
                    unsafe { libc::write(wake, (&one as *const u64).cast(), 8) };
                }
            })?;
        Ok(SyncThread {
            requests: Some(requests),
            done,
            event,
            thread: Some(thread),
        })
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its current sync.
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The epoll reactor.
pub struct EpollReactor {
    epoll: OwnedFd,
    signal_fd: OwnedFd,
    listeners: Vec<Listener>,
    accepting: bool,
    slots: Vec<SlotIo>,
    /// Slots with an armed operation that may be carried out now.
    pending: Vec<u32>,
    /// Completions made outside `wait` (a connect that finished at once).
    ready: Vec<Completion<OwnedFd>>,
    events: Vec<libc::epoll_event>,
    clock: Instant,
    /// `epoll_pwait2` (nanosecond timeouts, Linux 5.11) works here.
    pwait2: bool,
    /// Started at the first sync (only a region synced to disk needs it).
    sync_thread: Option<SyncThread>,
}

impl EpollReactor {
    /// A reactor for `slots` connection slots (all allocated now).
    pub fn new(slots: usize) -> io::Result<EpollReactor> {
        // SAFETY: plain syscall; the result is checked.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        let signal_fd = super::termination_signals(true)?;
        let reactor = EpollReactor {
            epoll,
            signal_fd,
            listeners: Vec::new(),
            accepting: true,
            slots: (0..slots).map(|_| SlotIo::EMPTY).collect(),
            pending: Vec::with_capacity(slots),
            ready: Vec::with_capacity(slots),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_MAX],
            clock: Instant::now(),
            pwait2: true,
            sync_thread: None,
        };
        reactor.add(
            reactor.signal_fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            SIGNAL_DATA,
        )?;
        Ok(reactor)
    }

    fn add(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: data };
        // SAFETY: `event` is valid for the call; the descriptors are live.
        let r =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Registers `fd` for slot `token` (edge-triggered, both directions).
    fn register(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        self.add(fd, events, slot_data(token))?;
        let slot = self.slot_mut(token)?;
        slot.fd = fd;
        slot.generation = token.generation;
        // Optimistic: the first operation is tried at once; `EAGAIN` corrects it.
        slot.readable = true;
        slot.writable = true;
        Ok(())
    }

    fn slot_mut(&mut self, token: Token) -> io::Result<&mut SlotIo> {
        let slots = self.slots.len();
        self.slots.get_mut(token.slot as usize).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("slot {} beyond the reactor's {slots} slots", token.slot),
            )
        })
    }

    fn queue(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if !s.queued {
            s.queued = true;
            self.pending.push(slot);
        }
    }

    /// Carries out whatever is armed on `slot` and its socket allows.
    fn attempt(&mut self, slot: u32, out: &mut Vec<Completion<OwnedFd>>) {
        let s = &mut self.slots[slot as usize];
        let token = Token {
            slot,
            generation: s.generation,
        };
        if let (Some(armed), true) = (s.recv, s.readable) {
            // SAFETY: the caller of `recv` keeps the buffer valid and untouched until
            // this completion is returned.
            let n = unsafe { libc::recv(s.fd, armed.ptr.cast(), armed.len, libc::MSG_DONTWAIT) };
            match n {
                n if n >= 0 => {
                    s.recv = None;
                    // Short: the socket is drained; its next arrival is a new edge.
                    if (n as usize) < armed.len {
                        s.readable = false;
                    }
                    out.push(Completion::Received {
                        token,
                        result: Ok(n as usize),
                    });
                }
                _ => match last_errno() {
                    libc::EAGAIN | libc::EINTR => s.readable = false,
                    errno => {
                        s.recv = None;
                        out.push(Completion::Received {
                            token,
                            result: Err(errno),
                        });
                    }
                },
            }
        }
        if let (Some(armed), true) = (s.send, s.writable) {
            // SAFETY: as above, for the caller of `send`.
            let n = unsafe {
                libc::send(
                    s.fd,
                    armed.ptr.cast_const().cast(),
                    armed.len,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            match n {
                n if n >= 0 => {
                    s.send = None;
                    if (n as usize) < armed.len {
                        s.writable = false;
                    }
                    out.push(Completion::Sent {
                        token,
                        result: Ok(n as usize),
                    });
                }
                _ => match last_errno() {
                    libc::EAGAIN | libc::EINTR => s.writable = false,
                    errno => {
                        s.send = None;
                        out.push(Completion::Sent {
                            token,
                            result: Err(errno),
                        });
                    }
                },
            }
        }
    }

    fn accept_from(&mut self, index: usize, out: &mut Vec<Completion<OwnedFd>>) {
        let listener = ListenerId(index as u16);
        for _ in 0..ACCEPTS_PER_TURN {
            if !self.accepting || !self.listeners[index].readable {
                return;
            }
            let fd = self.listeners[index].fd.as_raw_fd();
            // SAFETY: plain syscall; a null address is allowed.
            let r = unsafe {
                libc::accept4(
                    fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if r >= 0 {
                // SAFETY: a new descriptor we own.
                let socket = unsafe { OwnedFd::from_raw_fd(r) };
                out.push(Completion::Accepted {
                    listener,
                    result: Ok(super::accepted_fd(socket)),
                });
                continue;
            }
            match last_errno() {
                libc::EAGAIN => self.listeners[index].readable = false,
                libc::EINTR | libc::ECONNABORTED => {}
                errno => {
                    // EMFILE and friends: said once per turn; the listener stays
                    // readable, so the next turn tries again.
                    out.push(Completion::Accepted {
                        listener,
                        result: Err(errno),
                    });
                    return;
                }
            }
        }
    }

    fn epoll_wait(&mut self, timeout: Duration) -> io::Result<usize> {
        let epoll = self.epoll.as_raw_fd();
        let events = self.events.as_mut_ptr();
        if self.pwait2 {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `events` holds EVENTS_MAX entries; `ts` lives for the call.
            let n = unsafe {
                libc::epoll_pwait2(epoll, events, EVENTS_MAX as i32, &ts, std::ptr::null())
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            match last_errno() {
                libc::EINTR => return Ok(0),
                libc::ENOSYS => self.pwait2 = false,
                _ => return Err(io::Error::last_os_error()),
            }
        }
        // Milliseconds, rounded up, so that a deadline is never woken early.
        let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: as above.
        let n = unsafe { libc::epoll_wait(epoll, events, EVENTS_MAX as i32, ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        match last_errno() {
            libc::EINTR => Ok(0),
            _ => Err(io::Error::last_os_error()),
        }
    }

    fn read_signals(&mut self, out: &mut Vec<Completion<OwnedFd>>) {
        let mut info = [0u8; 128];
        loop {
            // SAFETY: `info` is valid for 128 bytes, the size of signalfd_siginfo.
            let n = unsafe {
                libc::read(
                    self.signal_fd.as_raw_fd(),
                    info.as_mut_ptr().cast(),
                    info.len(),
                )
            };
            if n <= 0 {
                return;
            }
            out.push(Completion::Terminate);
        }
    }

    fn sync_done(&mut self, out: &mut Vec<Completion<OwnedFd>>) {
        let Some(t) = &self.sync_thread else {
            return;
        };
        let mut count = 0u64;
        // SAFETY: reads the eventfd's 8-byte counter into `count`.
        unsafe { libc::read(t.event.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        let done = t.done.lock().ok().and_then(|mut slot| slot.take());
        if let Some((token, result)) = done {
            out.push(Completion::Synced { token, result });
        }
    }

    fn connected(&mut self, slot: u32, out: &mut Vec<Completion<OwnedFd>>) {
        let s = &mut self.slots[slot as usize];
        let Some(socket) = s.connecting.take() else {
            return;
        };
        let token = Token {
            slot,
            generation: s.generation,
        };
        let error = socket_error(socket.as_raw_fd());
        let result = if error == 0 {
            s.readable = true;
            s.writable = true;
            Ok(socket)
        } else {
            s.fd = -1;
            Err(error)
        };
        out.push(Completion::Connected { token, result });
    }
}

fn slot_data(token: Token) -> u64 {
    (u64::from(token.slot) << 32) | u64::from(token.generation)
}

impl Reactor for EpollReactor {
    type Socket = OwnedFd;
    type Listener = OwnedFd;

    fn backend(&self) -> Backend {
        Backend::Epoll
    }

    fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn unix_ns(&self) -> u64 {
        super::system_unix_ns()
    }

    fn listen(&mut self, listener: OwnedFd) -> io::Result<ListenerId> {
        let fd = listener.as_raw_fd();
        // SAFETY: fcntl on a live descriptor we own.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let index = self.listeners.len();
        self.add(
            fd,
            (libc::EPOLLIN | libc::EPOLLET) as u32,
            LISTENER_DATA | index as u64,
        )?;
        // Connections may already wait in the backlog (the socket was bound before
        // the region was scanned): look at once.
        self.listeners.push(Listener {
            fd: listener,
            readable: true,
        });
        Ok(ListenerId(index as u16))
    }

    fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    fn connect(&mut self, address: &Address, token: Token) -> io::Result<()> {
        let (socket, done) = start_connect(address)?;
        self.register(socket.as_raw_fd(), token)?;
        if done {
            self.ready.push(Completion::Connected {
                token,
                result: Ok(socket),
            });
        } else {
            let slot = self.slot_mut(token)?;
            slot.writable = false;
            slot.readable = false;
            slot.connecting = Some(socket);
        }
        Ok(())
    }

    fn attach(&mut self, socket: &OwnedFd, token: Token) -> io::Result<()> {
        self.register(socket.as_raw_fd(), token)
    }

    unsafe fn recv(&mut self, _socket: &OwnedFd, buf: *mut u8, len: usize, token: Token) {
        let Some(s) = self.slots.get_mut(token.slot as usize) else {
            return;
        };
        s.recv = Some(Armed { ptr: buf, len });
        if s.readable {
            self.queue(token.slot);
        }
    }

    unsafe fn send(&mut self, _socket: &OwnedFd, buf: *const u8, len: usize, token: Token) {
        let Some(s) = self.slots.get_mut(token.slot as usize) else {
            return;
        };
        s.send = Some(Armed {
            ptr: buf.cast_mut(),
            len,
        });
        if s.writable {
            self.queue(token.slot);
        }
    }

    fn shutdown(&mut self, socket: &OwnedFd) {
        // SAFETY: plain syscall on a live descriptor we own. epoll then reports a
        // hang-up, which completes an armed receive with end of stream.
        unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_RDWR) };
    }

    fn close(&mut self, socket: OwnedFd, token: Option<Token>) {
        if let Some(s) = token.and_then(|t| self.slots.get_mut(t.slot as usize)) {
            if s.fd == socket.as_raw_fd() {
                let queued = s.queued;
                *s = SlotIo::EMPTY;
                s.queued = queued;
                // SAFETY: the descriptor is live until `socket` drops below; a failed
                // DEL (already gone) changes nothing.
                unsafe {
                    libc::epoll_ctl(
                        self.epoll.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        socket.as_raw_fd(),
                        std::ptr::null_mut(),
                    )
                };
            }
        }
        drop(socket);
    }

    fn refuse(&mut self, socket: OwnedFd, farewell: &[u8]) {
        super::refuse_fd(socket, farewell);
    }

    fn sync(&mut self, file: Option<RawFd>, token: u32) {
        let Some(fd) = file else {
            self.ready.push(Completion::Synced {
                token,
                result: Ok(()),
            });
            return;
        };
        if self.sync_thread.is_none() {
            match SyncThread::start() {
                Ok(t) => {
                    if let Err(e) = self.add(t.event.as_raw_fd(), libc::EPOLLIN as u32, SYNC_DATA) {
                        self.ready.push(Completion::Synced {
                            token,
                            result: Err(e.raw_os_error().unwrap_or(libc::EIO)),
                        });
                        return;
                    }
                    self.sync_thread = Some(t);
                }
                Err(e) => {
                    self.ready.push(Completion::Synced {
                        token,
                        result: Err(e.raw_os_error().unwrap_or(libc::EIO)),
                    });
                    return;
                }
            }
        }
        let sent = self
            .sync_thread
            .as_ref()
            .and_then(|t| t.requests.as_ref())
            .map(|r| r.try_send((fd, token)));
        if !matches!(sent, Some(Ok(()))) {
            // Only one sync is ever under way, so the channel has room: this is the
            // thread gone, which fails the sync (and the log).
            self.ready.push(Completion::Synced {
                token,
                result: Err(libc::EIO),
            });
        }
    }

    fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion<OwnedFd>>) -> io::Result<()> {
        let before = out.len();
        out.append(&mut self.ready);
        for i in 0..self.pending.len() {
            let slot = self.pending[i];
            self.slots[slot as usize].queued = false;
            self.attempt(slot, out);
        }
        self.pending.clear();
        for index in 0..self.listeners.len() {
            self.accept_from(index, out);
        }
        let timeout = if out.len() > before {
            Duration::ZERO
        } else {
            timeout
        };
        let n = self.epoll_wait(timeout)?;
        for i in 0..n {
            let event = self.events[i];
            let (bits, data) = (event.events, event.u64);
            if data == SIGNAL_DATA {
                self.read_signals(out);
            } else if data == SYNC_DATA {
                self.sync_done(out);
            } else if data & LISTENER_DATA != 0 {
                let index = (data & !LISTENER_DATA) as usize;
                if let Some(l) = self.listeners.get_mut(index) {
                    l.readable = true;
                }
                self.accept_from(index, out);
            } else {
                let slot = (data >> 32) as u32;
                let generation = data as u32;
                let Some(s) = self.slots.get_mut(slot as usize) else {
                    continue;
                };
                if s.generation != generation || s.fd < 0 {
                    continue; // an event for a connection closed meanwhile
                }
                let error = bits & libc::EPOLLERR as u32 != 0;
                let hangup = bits & (libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0;
                if bits & libc::EPOLLIN as u32 != 0 || error || hangup {
                    s.readable = true;
                }
                if bits & libc::EPOLLOUT as u32 != 0 || error || hangup {
                    s.writable = true;
                }
                if s.connecting.is_some() {
                    if s.writable || error || hangup {
                        self.connected(slot, out);
                    }
                    continue;
                }
                self.attempt(slot, out);
            }
        }
        Ok(())
    }
}
