//! Reading frames: fill the receive buffer, decode and validate the frame at its head,
//! and consume it once the caller knows what to do with it.
//!
//! A frame is first *peeked*: decoded, checked against the client state table, and
//! summarised as an owned [`Head`]. Only a caller that wants it consumes it, so a
//! delivery that arrives while a reply is awaited stays in the buffer for
//! `next_incoming`. Frames handed out by borrow (`Deliver`, `StatusReply`) are decoded a
//! second time after being consumed, which costs a few bounds checks; decoding once and
//! returning the borrow from the read loop is a pattern today's borrow checker rejects.

use super::error::ClientError;
use super::reply::{Stored, Subscribed};
use super::Client;
use crate::protocol::{decode, ClientMachine, ClientState, ErrorCode, Frame, FrameType, HelloOk};
use std::io::{self, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

/// The validated frame at the head of the receive buffer, summarised without borrowing.
#[derive(Debug, Clone, Copy)]
pub(super) enum Head {
    HelloOk(HelloOk),
    Stored(Stored),
    Subscribed(Subscribed),
    Deliver,
    RecoveryDone,
    StatusReply,
    Pong(u64),
}

impl Head {
    pub(super) fn frame_type(self) -> FrameType {
        match self {
            Head::HelloOk(_) => FrameType::HelloOk,
            Head::Stored(_) => FrameType::Stored,
            Head::Subscribed(_) => FrameType::Subscribed,
            Head::Deliver => FrameType::Deliver,
            Head::RecoveryDone => FrameType::RecoveryDone,
            Head::StatusReply => FrameType::StatusReply,
            Head::Pong(_) => FrameType::Pong,
        }
    }
}

/// A peeked frame: its length, and the client state once it is consumed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peeked {
    len: usize,
    machine_after: ClientMachine,
}

impl Client {
    /// Waits until `deadline` (`None`: forever) for the next frame and returns its
    /// summary without consuming it; `Ok(None)` when the deadline passed first. An
    /// `Error` frame is consumed here and returned as [`ClientError::Refused`].
    pub(super) fn peek(&mut self, deadline: Option<Instant>) -> Result<Option<Head>, ClientError> {
        self.ensure_open()?;
        loop {
            let (frame, len) = match decode(self.receive.pending()) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => {
                    if self.read_more(deadline)? {
                        continue;
                    }
                    return Ok(None);
                }
                Err(error) => {
                    self.close();
                    return Err(ClientError::Malformed {
                        socket: self.socket.clone(),
                        error,
                    });
                }
            };
            let mut machine_after = self.machine;
            if let Err(rejection) = machine_after.on_receive(&frame) {
                return Err(self.unexpected(rejection.frame_type, "a frame valid in this state"));
            }
            let head = match frame {
                Frame::HelloOk(hello_ok) => Head::HelloOk(hello_ok),
                Frame::Stored {
                    correlation,
                    first_seq,
                    last_seq,
                    count,
                } => Head::Stored(Stored {
                    correlation,
                    first_seq,
                    last_seq,
                    count,
                }),
                Frame::Subscribed {
                    mode,
                    pending_events,
                } => Head::Subscribed(Subscribed {
                    mode,
                    pending_events,
                }),
                Frame::Deliver(_) => Head::Deliver,
                Frame::RecoveryDone => Head::RecoveryDone,
                Frame::StatusReply { .. } => Head::StatusReply,
                Frame::Pong { token } => Head::Pong(token),
                Frame::Error {
                    correlation,
                    code,
                    message,
                } => {
                    let message = message.to_owned();
                    self.receive.consume(len);
                    self.machine = machine_after;
                    return Err(self.refused(correlation, code, message));
                }
                // The client table refuses every client-to-server type, so the machine
                // check above already returned for these.
                other => return Err(self.unexpected(other.frame_type(), "a server frame")),
            };
            self.peeked = Some(Peeked { len, machine_after });
            return Ok(Some(head));
        }
    }

    /// Consumes the frame the last [`peek`](Self::peek) returned and applies its state
    /// change; returns where its bytes lie, valid until the next read.
    pub(super) fn consume(&mut self) -> Range<usize> {
        let peeked = self
            .peeked
            .take()
            .expect("consume follows a successful peek");
        self.machine = peeked.machine_after;
        self.receive.consume(peeked.len)
    }

    /// The frame at `range`, which [`consume`](Self::consume) just returned.
    pub(super) fn consumed_frame(&self, range: Range<usize>) -> Frame<'_> {
        match decode(self.receive.bytes(range)) {
            Ok(Some((frame, _))) => frame,
            // The same bytes decoded a moment ago and nothing has written to them since.
            _ => unreachable!("a validated frame no longer decodes"),
        }
    }

    /// Consumes a `Stored` reply after checking that it answers the oldest request
    /// outstanding: replies come in the order of the requests.
    pub(super) fn accept_stored(&mut self, stored: Stored) -> Result<Stored, ClientError> {
        if self.outstanding() == 0 || stored.correlation != self.oldest_unanswered {
            let expected = self.oldest_unanswered;
            self.close();
            return Err(ClientError::CorrelationMismatch {
                socket: self.socket.clone(),
                expected,
                found: stored.correlation,
            });
        }
        self.consume();
        self.oldest_unanswered += 1;
        Ok(stored)
    }

    /// An `Error` frame, already consumed, as the caller's error. A refusal of the
    /// oldest outstanding publish answers it.
    fn refused(&mut self, correlation: u64, code: ErrorCode, message: String) -> ClientError {
        if correlation != 0 && self.outstanding() > 0 && correlation == self.oldest_unanswered {
            self.oldest_unanswered += 1;
        }
        if code.closes_connection() {
            self.close();
        }
        ClientError::Refused {
            code,
            message,
            correlation,
        }
    }

    /// Closes the connection because the daemon sent `frame_type` out of turn.
    pub(super) fn unexpected(
        &mut self,
        frame_type: FrameType,
        waiting_for: &'static str,
    ) -> ClientError {
        let state = self.machine.state();
        self.close();
        ClientError::UnexpectedFrame {
            socket: self.socket.clone(),
            frame_type,
            state,
            waiting_for,
        }
    }

    /// Reads once more into the receive buffer, waiting until `deadline`. Returns
    /// whether bytes arrived (`false`: the deadline passed).
    fn read_more(&mut self, deadline: Option<Instant>) -> Result<bool, ClientError> {
        // Never wait for an answer while the request sits in the send buffer.
        self.write_queued()?;
        let timeout = deadline.map(|deadline| {
            // The kernel reads a zero timeout as "forever" and std refuses it; the
            // smallest positive one still takes whatever has already arrived.
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_micros(1))
        });
        if timeout != self.read_timeout {
            self.stream
                .set_read_timeout(timeout)
                .map_err(|error| self.io_failed(error))?;
            self.read_timeout = timeout;
        }
        loop {
            match self.receive.fill(&mut self.stream) {
                Ok(0) => {
                    self.close();
                    return Err(ClientError::Disconnected {
                        socket: self.socket.clone(),
                    });
                }
                Ok(_) => return Ok(true),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(false)
                }
                Err(error) => return Err(self.io_failed(error)),
            }
        }
    }

    /// Writes the send buffer to the socket.
    pub(super) fn write_queued(&mut self) -> Result<(), ClientError> {
        if self.send.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.send);
        // Sent, or lost with the connection: either way these bytes are done.
        self.send.clear();
        match result {
            Ok(()) => Ok(()),
            Err(error) => Err(self.write_failed(error)),
        }
    }

    /// A write failed. A daemon that closes the connection on purpose sends an `Error`
    /// first; report that rather than the broken pipe it left behind.
    fn write_failed(&mut self, error: io::Error) -> ClientError {
        if matches!(
            error.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            // Part of a frame may have been written: the stream cannot be resumed.
            self.close();
            return ClientError::Stalled {
                socket: self.socket.clone(),
            };
        }
        if !matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) || self.stream.tls_message(&error).is_some()
        {
            return self.io_failed(error);
        }
        // The peer has closed, so reads return at once (data, then end of stream); the
        // deadline only guards against a peer that shut down writing alone.
        let deadline = Some(Instant::now() + Duration::from_secs(1));
        loop {
            match self.peek(deadline) {
                Ok(Some(_)) => {
                    self.consume();
                }
                Err(refused @ ClientError::Refused { .. }) => {
                    self.close();
                    return refused;
                }
                Ok(None) | Err(_) => {
                    self.close();
                    return ClientError::Disconnected {
                        socket: self.socket.clone(),
                    };
                }
            }
        }
    }

    pub(super) fn io_failed(&mut self, error: io::Error) -> ClientError {
        let tls = self.stream.tls_message(&error);
        self.close();
        match tls {
            Some(message) => ClientError::Tls {
                address: self.socket.display().to_string(),
                message,
            },
            None => ClientError::Io {
                socket: self.socket.clone(),
                error,
            },
        }
    }

    /// Marks the connection closed; every later call returns [`ClientError::Closed`].
    pub(super) fn close(&mut self) {
        if self.machine.state() != ClientState::Closed {
            // `ClientMachine` reaches Closed by noting a Goodbye; nothing is sent.
            self.machine.on_send(FrameType::Goodbye);
        }
        self.send.clear();
        self.peeked = None;
        // The daemon sees end of stream at once; errors mean it is already gone.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    pub(super) fn ensure_open(&self) -> Result<(), ClientError> {
        if self.machine.state() == ClientState::Closed {
            return Err(ClientError::Closed);
        }
        Ok(())
    }
}
