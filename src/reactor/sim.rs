//! The simulated backend: sockets are pairs of bounded in-memory byte queues and time
//! only moves when the daemon waits, so a test drives the whole daemon in one thread,
//! deterministically, with its clients on the other ends of the queues.
//!
//! A [`SimNet`] is shared (single-threaded, `Rc`) by every [`SimReactor`] on it and by
//! the test's [`SimStream`] clients. Transfers are bounded by each direction's capacity
//! (the kernel's socket buffer) and by `chunk_max` (to exercise partial receives and
//! sends). Every queue is allocated when its connection is made; moving bytes
//! allocates nothing.

use super::{Accepted, Address, Backend, Completion, ListenerId, PeerCredentials, Reactor, Token};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// One direction of a connection.
struct Queue {
    bytes: VecDeque<u8>,
    capacity: usize,
}

impl Queue {
    fn free(&self) -> usize {
        self.capacity - self.bytes.len()
    }
}

/// A connection: side 0 is the connecting end, side 1 the accepted end.
struct Pipe {
    /// `to[s]`: bytes travelling towards side `s`.
    to: [Queue; 2],
    /// Side `s` has closed (or shut down) its end.
    closed: [bool; 2],
    /// Who the connecting end is, as `SO_PEERCRED` would say on the accepted end.
    peer: PeerCredentials,
}

struct Net {
    now_ns: u64,
    unix_base_ns: u64,
    capacity: usize,
    chunk_max: usize,
    pipes: Vec<Pipe>,
    /// Each listener's backlog of accepted ends (pipe indices), and its address.
    listeners: Vec<(PathBuf, VecDeque<usize>)>,
    /// A SIGTERM for the daemon is pending.
    terminate: bool,
    /// How long a simulated disk takes to sync.
    sync_delay_ns: u64,
    /// Simulated time one turn of the daemon takes, even a busy one (so that time
    /// passes, and syncs complete, under a steady load).
    turn_ns: u64,
}

/// The in-memory network.
#[derive(Clone)]
pub struct SimNet(Rc<RefCell<Net>>);

impl SimNet {
    /// A network whose connections hold `capacity` bytes each way and move at most
    /// `chunk_max` bytes per transfer. Time starts at 0; the wall clock at a fixed date.
    pub fn new(capacity: usize, chunk_max: usize) -> SimNet {
        SimNet(Rc::new(RefCell::new(Net {
            now_ns: 0,
            // 2026-01-01T00:00:00Z: a fixed wall clock keeps runs identical.
            unix_base_ns: 1_767_225_600_000_000_000,
            capacity,
            chunk_max: chunk_max.max(1),
            pipes: Vec::new(),
            listeners: Vec::new(),
            terminate: false,
            sync_delay_ns: 100_000,
            turn_ns: 10_000,
        })))
    }

    /// Sets the simulated time one busy turn takes (10 µs unless set).
    pub fn set_turn_time(&self, turn: Duration) {
        self.0.borrow_mut().turn_ns = turn.as_nanos() as u64;
    }

    /// Sets how long a simulated disk takes to sync (100 µs unless set).
    pub fn set_sync_delay(&self, delay: Duration) {
        self.0.borrow_mut().sync_delay_ns = delay.as_nanos() as u64;
    }

    /// A listener at `path` (the address outbound connections name).
    pub fn listener(&self, path: impl Into<PathBuf>) -> SimListener {
        let mut net = self.0.borrow_mut();
        net.listeners.push((path.into(), VecDeque::new()));
        SimListener(net.listeners.len() - 1)
    }

    /// Connects a client to `listener` as [`SimNet::DEFAULT_PEER`]; the daemon accepts
    /// it on its next wait.
    pub fn connect(&self, listener: &SimListener) -> SimStream {
        self.connect_as(listener, SimNet::DEFAULT_PEER)
    }

    /// Connects a client with the credentials `peer` (the daemon sees them as a real
    /// socket's `SO_PEERCRED`): how a test is another user.
    pub fn connect_as(&self, listener: &SimListener, peer: PeerCredentials) -> SimStream {
        let pipe = self.new_pipe(peer);
        self.0.borrow_mut().listeners[listener.0].1.push_back(pipe);
        SimStream {
            net: self.clone(),
            pipe,
        }
    }

    /// Who a simulated connection is unless a test says otherwise: root, as the
    /// process running the tests usually is.
    pub const DEFAULT_PEER: PeerCredentials = PeerCredentials {
        pid: 1,
        uid: 0,
        gid: 0,
    };

    fn new_pipe(&self, peer: PeerCredentials) -> usize {
        let mut net = self.0.borrow_mut();
        let capacity = net.capacity;
        let queue = || Queue {
            bytes: VecDeque::with_capacity(capacity),
            capacity,
        };
        net.pipes.push(Pipe {
            to: [queue(), queue()],
            closed: [false, false],
            peer,
        });
        net.pipes.len() - 1
    }

    /// Simulated monotonic time, nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.0.borrow().now_ns
    }

    /// Moves simulated time forward.
    pub fn advance(&self, by: Duration) {
        self.0.borrow_mut().now_ns += by.as_nanos() as u64;
    }

    /// Sends the daemon a SIGTERM (a `Terminate` completion on its next wait).
    pub fn terminate(&self) {
        self.0.borrow_mut().terminate = true;
    }
}

/// A listener on a [`SimNet`].
#[derive(Clone, Debug)]
pub struct SimListener(usize);

/// The test's end of a simulated connection.
pub struct SimStream {
    net: SimNet,
    pipe: usize,
}

impl SimStream {
    /// Writes as much of `bytes` as the connection has room for; returns how much.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let mut net = self.net.0.borrow_mut();
        let pipe = &mut net.pipes[self.pipe];
        if pipe.closed[0] || pipe.closed[1] {
            return 0;
        }
        let n = bytes.len().min(pipe.to[1].free());
        pipe.to[1].bytes.extend(&bytes[..n]);
        n
    }

    /// Reads what has arrived into `buf`: `Some(n)` bytes (0: nothing yet), `None` once
    /// the daemon closed its end and everything was read.
    pub fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut net = self.net.0.borrow_mut();
        let pipe = &mut net.pipes[self.pipe];
        let queue = &mut pipe.to[0].bytes;
        if queue.is_empty() && pipe.closed[1] {
            return None;
        }
        let n = buf.len().min(queue.len());
        for (dst, src) in buf.iter_mut().zip(queue.drain(..n)) {
            *dst = src;
        }
        Some(n)
    }

    /// Closes this end: the daemon's receive sees end of stream.
    pub fn close(&mut self) {
        self.net.0.borrow_mut().pipes[self.pipe].closed[0] = true;
    }
}

/// A socket of the daemon's: one end of a pipe.
#[derive(Debug)]
pub struct SimSocket {
    pipe: usize,
    side: usize,
}

#[derive(Copy, Clone)]
struct Armed {
    ptr: *mut u8,
    len: usize,
}

#[derive(Default)]
struct SimSlot {
    /// The attached socket's pipe and side.
    socket: Option<(usize, usize)>,
    generation: u32,
    recv: Option<Armed>,
    send: Option<Armed>,
}

/// The daemon's side of a [`SimNet`].
pub struct SimReactor {
    net: SimNet,
    slots: Vec<SimSlot>,
    listeners: Vec<usize>,
    accepting: bool,
    connects: Vec<(Token, Result<SimSocket, i32>)>,
    /// The sync under way: its token and when (simulated time) it completes.
    sync: Option<(u32, u64)>,
}

impl SimReactor {
    /// A reactor for `slots` connection slots on `net`.
    pub fn new(net: &SimNet, slots: usize) -> SimReactor {
        SimReactor {
            net: net.clone(),
            slots: (0..slots).map(|_| SimSlot::default()).collect(),
            listeners: Vec::new(),
            accepting: true,
            connects: Vec::with_capacity(slots),
            sync: None,
        }
    }

    /// Whether a sync is under way (the simulator decides when a power cut falls).
    pub fn sync_in_flight(&self) -> bool {
        self.sync.is_some()
    }

    /// Carries out every armed operation the queues allow; returns whether any did.
    fn transfer(&mut self, out: &mut Vec<Completion<SimSocket>>) -> bool {
        let mut net = self.net.0.borrow_mut();
        let chunk_max = net.chunk_max;
        let before = out.len();
        for (slot, s) in self.slots.iter_mut().enumerate() {
            let Some((pipe, side)) = s.socket else {
                continue;
            };
            let token = Token {
                slot: slot as u32,
                generation: s.generation,
            };
            let p = &mut net.pipes[pipe];
            if let Some(armed) = s.recv {
                let queue = &mut p.to[side].bytes;
                let n = armed.len.min(queue.len()).min(chunk_max);
                if n > 0 || p.closed[1 - side] || p.closed[side] {
                    for (i, byte) in queue.drain(..n).enumerate() {
                        // SAFETY: the caller of `recv` keeps `ptr..ptr + len` valid and
                        // untouched until this completion; `i < n <= len`.
                        unsafe { armed.ptr.add(i).write(byte) };
                    }
                    s.recv = None;
                    out.push(Completion::Received {
                        token,
                        result: Ok(n),
                    });
                }
            }
            if let Some(armed) = s.send {
                let result = if p.closed[side] || p.closed[1 - side] {
                    Some(Err(libc::EPIPE))
                } else {
                    let queue = &mut p.to[1 - side];
                    let n = armed.len.min(queue.free()).min(chunk_max);
                    for i in 0..n {
                        // SAFETY: as above, for the caller of `send`.
                        queue.bytes.push_back(unsafe { armed.ptr.add(i).read() });
                    }
                    (n > 0).then_some(Ok(n))
                };
                if let Some(result) = result {
                    s.send = None;
                    out.push(Completion::Sent { token, result });
                }
            }
        }
        if self.accepting {
            for (index, &listener) in self.listeners.iter().enumerate() {
                while let Some(pipe) = net.listeners[listener].1.pop_front() {
                    out.push(Completion::Accepted {
                        listener: ListenerId(index as u16),
                        result: Ok(Accepted {
                            socket: SimSocket { pipe, side: 1 },
                            peer: Some(net.pipes[pipe].peer),
                        }),
                    });
                }
            }
        }
        if std::mem::take(&mut net.terminate) {
            out.push(Completion::Terminate);
        }
        if let Some((token, due)) = self.sync {
            if net.now_ns >= due {
                self.sync = None;
                out.push(Completion::Synced {
                    token,
                    result: Ok(()),
                });
            }
        }
        drop(net);
        for (token, result) in self.connects.drain(..) {
            if let (Ok(socket), Some(s)) = (&result, self.slots.get_mut(token.slot as usize)) {
                s.socket = Some((socket.pipe, socket.side));
                s.generation = token.generation;
            }
            out.push(Completion::Connected { token, result });
        }
        out.len() > before
    }
}

impl Reactor for SimReactor {
    type Socket = SimSocket;
    type Listener = SimListener;

    fn backend(&self) -> Backend {
        Backend::Sim
    }

    fn now_ns(&self) -> u64 {
        self.net.now_ns()
    }

    fn unix_ns(&self) -> u64 {
        let net = self.net.0.borrow();
        net.unix_base_ns + net.now_ns
    }

    fn listen(&mut self, listener: SimListener) -> io::Result<ListenerId> {
        self.listeners.push(listener.0);
        Ok(ListenerId(self.listeners.len() as u16 - 1))
    }

    fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    fn connect(&mut self, address: &Address, token: Token) -> io::Result<()> {
        let target = match address {
            Address::Unix(path) => {
                let net = self.net.0.borrow();
                net.listeners.iter().position(|(p, _)| p == path)
            }
            Address::Tcp(_) => None,
        };
        let result = match target {
            Some(listener) => {
                let pipe = self.net.new_pipe(SimNet::DEFAULT_PEER);
                self.net.0.borrow_mut().listeners[listener]
                    .1
                    .push_back(pipe);
                Ok(SimSocket { pipe, side: 0 })
            }
            None => Err(libc::ECONNREFUSED),
        };
        self.connects.push((token, result));
        Ok(())
    }

    fn attach(&mut self, socket: &SimSocket, token: Token) -> io::Result<()> {
        let s = self.slots.get_mut(token.slot as usize).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "slot beyond the reactor's slots",
            )
        })?;
        s.socket = Some((socket.pipe, socket.side));
        s.generation = token.generation;
        Ok(())
    }

    unsafe fn recv(&mut self, _socket: &SimSocket, buf: *mut u8, len: usize, token: Token) {
        if let Some(s) = self.slots.get_mut(token.slot as usize) {
            s.recv = Some(Armed { ptr: buf, len });
        }
    }

    unsafe fn send(&mut self, _socket: &SimSocket, buf: *const u8, len: usize, token: Token) {
        if let Some(s) = self.slots.get_mut(token.slot as usize) {
            s.send = Some(Armed {
                ptr: buf.cast_mut(),
                len,
            });
        }
    }

    fn shutdown(&mut self, socket: &SimSocket) {
        self.net.0.borrow_mut().pipes[socket.pipe].closed[socket.side] = true;
    }

    fn close(&mut self, socket: SimSocket, token: Option<Token>) {
        self.net.0.borrow_mut().pipes[socket.pipe].closed[socket.side] = true;
        if let Some(s) = token.and_then(|t| self.slots.get_mut(t.slot as usize)) {
            if s.socket == Some((socket.pipe, socket.side)) {
                *s = SimSlot::default();
            }
        }
    }

    fn sync(&mut self, _file: Option<std::os::fd::RawFd>, token: u32) {
        let net = self.net.0.borrow();
        self.sync = Some((token, net.now_ns + net.sync_delay_ns));
    }

    fn refuse(&mut self, socket: SimSocket, farewell: &[u8]) {
        let mut net = self.net.0.borrow_mut();
        let pipe = &mut net.pipes[socket.pipe];
        let queue = &mut pipe.to[1 - socket.side];
        let n = farewell.len().min(queue.free());
        queue.bytes.extend(&farewell[..n]);
        pipe.closed[socket.side] = true;
    }

    fn wait(&mut self, timeout: Duration, out: &mut Vec<Completion<SimSocket>>) -> io::Result<()> {
        // A turn takes time even when busy.
        let turn_ns = self.net.0.borrow().turn_ns;
        self.net.advance(Duration::from_nanos(turn_ns));
        if !self.transfer(out) {
            // Nothing can happen until a client acts or time passes: the daemon sleeps
            // its whole timeout, or until the sync under way completes.
            let now = self.net.now_ns();
            let wake = match self.sync {
                Some((_, due)) => (now + timeout.as_nanos() as u64).min(due.max(now)),
                None => now + timeout.as_nanos() as u64,
            };
            self.net.advance(Duration::from_nanos(wake - now));
            self.transfer(out);
        }
        Ok(())
    }
}
