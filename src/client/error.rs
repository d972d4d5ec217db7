//! What can go wrong between a client and the daemon, each error saying what failed, on
//! which socket, and what to do next.

use crate::protocol::{ClientState, DecodeError, EncodeError, ErrorCode, FrameType, PatternError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// An error of [`Client`](super::Client).
///
/// After any error except [`ClientError::Refused`] with a code that leaves the
/// connection open (`full`, `forbidden`), and the local refusals that send nothing
/// ([`NotAllowed`](ClientError::NotAllowed), [`InvalidFrame`](ClientError::InvalidFrame),
/// [`InvalidPattern`](ClientError::InvalidPattern),
/// [`PatternCount`](ClientError::PatternCount),
/// [`TooLargeForServer`](ClientError::TooLargeForServer),
/// [`RepliesOutstanding`](ClientError::RepliesOutstanding),
/// [`NothingOutstanding`](ClientError::NothingOutstanding),
/// [`DeliveryWaiting`](ClientError::DeliveryWaiting),
/// [`ReplyWaiting`](ClientError::ReplyWaiting)), the connection is closed and every later
/// call returns [`ClientError::Closed`]; connect again.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Nothing listens on the socket: it does not exist, or it is left over from a daemon
    /// that stopped.
    #[error(
        "cannot connect to herald at {}: {error}; the daemon is probably not running \
         (start it with `herald serve --data-dir {}`)",
        socket.display(),
        data_dir_of(socket).display()
    )]
    NotRunning {
        /// The socket path tried.
        socket: PathBuf,
        /// What `connect` reported.
        error: io::Error,
    },
    /// Connecting failed for another reason (permissions, a path too long for a socket).
    #[error("cannot connect to herald at {}: {error}{}", socket.display(), connect_hint(error))]
    Connect {
        /// The socket path tried.
        socket: PathBuf,
        /// What `connect` reported.
        error: io::Error,
    },
    /// TLS failed: the server refused this client's certificate (or its absence), the
    /// server's certificate is not trusted, or a certificate file cannot be used.
    #[error("TLS with herald at {address} failed: {message}")]
    Tls {
        /// `tls://HOST:PORT`.
        address: String,
        /// What went wrong, and what to do.
        message: String,
    },
    /// Reading from or writing to the socket failed.
    #[error("connection to herald at {} failed: {error}", socket.display())]
    Io {
        /// The daemon's socket.
        socket: PathBuf,
        /// What the operating system reported.
        error: io::Error,
    },
    /// The daemon closed the connection without saying why (it stopped or crashed).
    #[error(
        "herald at {} closed the connection; it may have stopped or restarted. \
         Events without a `stored` reply may not be stored: publish them again",
        socket.display()
    )]
    Disconnected {
        /// The daemon's socket.
        socket: PathBuf,
    },
    /// The daemon answered with an `Error` frame. With code `full` the connection stays
    /// open and the refused publish may be retried later; with `forbidden` (the access
    /// policy refused it) the connection stays open for what it may do; every other
    /// code closes it.
    #[error("herald refused the request: {code}: {message}")]
    Refused {
        /// Why, as the protocol names it; match on it.
        code: ErrorCode,
        /// The daemon's explanation, for people.
        message: String,
        /// The refused publish's correlation, or 0 when the refusal is not about one.
        correlation: u64,
    },
    /// The daemon sent bytes that are not a valid frame.
    #[error(
        "herald at {} sent a malformed frame ({error}); the connection is closed. \
         Is the socket really herald's, and of the same protocol version?",
        socket.display()
    )]
    Malformed {
        /// The daemon's socket.
        socket: PathBuf,
        /// What is wrong with the bytes.
        error: DecodeError,
    },
    /// The daemon sent a well-formed frame that makes no sense at this point.
    #[error(
        "herald at {} sent a {frame_type} frame while the client was {state:?}, \
         waiting for {waiting_for}; the connection is closed",
        socket.display()
    )]
    UnexpectedFrame {
        /// The daemon's socket.
        socket: PathBuf,
        /// The frame received.
        frame_type: FrameType,
        /// The client's state when it arrived.
        state: ClientState,
        /// What the client was waiting for.
        waiting_for: &'static str,
    },
    /// A reply answered a different request than the oldest one outstanding; replies
    /// must come in the order of the requests.
    #[error(
        "herald at {} answered correlation {found} while {expected} was the oldest \
         request outstanding; the connection is closed",
        socket.display()
    )]
    CorrelationMismatch {
        /// The daemon's socket.
        socket: PathBuf,
        /// The correlation the client expected.
        expected: u64,
        /// The correlation the reply carried.
        found: u64,
    },
    /// The daemon chose a protocol version this client did not offer.
    #[error(
        "herald at {} chose protocol version {version}, which this client does not speak; \
         the connection is closed",
        socket.display()
    )]
    UnsupportedVersion {
        /// The daemon's socket.
        socket: PathBuf,
        /// The version in its `HelloOk`.
        version: u16,
    },
    /// No reply came within the reply timeout.
    #[error(
        "herald at {} sent no {waiting_for} within {waited:?}; the connection is closed. \
         Is the daemon overloaded or stuck?",
        socket.display()
    )]
    ReplyTimeout {
        /// The daemon's socket.
        socket: PathBuf,
        /// The reply awaited.
        waiting_for: &'static str,
        /// How long the client waited.
        waited: Duration,
    },
    /// The daemon read nothing from the connection within the reply timeout while the
    /// client was writing.
    #[error(
        "herald at {} stopped reading from the connection for longer than the reply timeout; \
         the connection is closed. Is the daemon overloaded or stuck?",
        socket.display()
    )]
    Stalled {
        /// The daemon's socket.
        socket: PathBuf,
    },
    /// The connection is closed: after `goodbye`, or after an error that closed it.
    #[error("the connection to herald is closed; connect again")]
    Closed,
    /// The frame is not valid on this connection at this point (wrong role, or before
    /// subscribing); herald would refuse it and close. Nothing was sent.
    #[error(
        "cannot send {frame_type} on a {role} connection in state {state:?}: herald would \
         refuse it as {code}; nothing was sent"
    )]
    NotAllowed {
        /// The frame the caller tried to send.
        frame_type: FrameType,
        /// The connection's role, chosen at connect.
        role: &'static str,
        /// The client's state.
        state: ClientState,
        /// The code herald would answer with.
        code: ErrorCode,
    },
    /// The caller's data breaks a protocol rule (a field too long, an empty batch, a
    /// window out of range). Nothing was sent.
    #[error("cannot send {frame_type}: {error}; nothing was sent")]
    InvalidFrame {
        /// The frame the caller tried to send.
        frame_type: FrameType,
        /// The rule broken.
        error: EncodeError,
    },
    /// A subscription pattern breaks the pattern grammar. Nothing was sent.
    #[error("invalid subscription pattern {pattern:?}: {error}; nothing was sent")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// The rule broken.
        error: PatternError,
    },
    /// A subscription needs between 1 and 16 patterns. Nothing was sent.
    #[error(
        "a subscription takes 1 to {max} patterns; {count} were given; nothing was sent",
        max = crate::protocol::SUBSCRIPTION_PATTERNS_MAX
    )]
    PatternCount {
        /// How many were given.
        count: usize,
    },
    /// The frame is within the protocol's limits but above the smaller limit this daemon
    /// announced in its `HelloOk`. Nothing was sent.
    #[error(
        "{what} of {bytes} bytes exceeds this daemon's limit of {limit} bytes; nothing was sent"
    )]
    TooLargeForServer {
        /// Which limit: "frame" or "event payload".
        what: &'static str,
        /// The size.
        bytes: usize,
        /// The daemon's limit.
        limit: usize,
    },
    /// A blocking request was made while pipelined publishes still wait for replies;
    /// its reply would come after theirs. Nothing was sent.
    #[error(
        "{count} publish replies are still outstanding; collect them with recv_stored \
         before making a blocking request; nothing was sent"
    )]
    RepliesOutstanding {
        /// How many replies are outstanding.
        count: u64,
    },
    /// `recv_stored` was called with no publish waiting for its reply.
    #[error("recv_stored was called with no publish outstanding")]
    NothingOutstanding,
    /// A delivery (or `RecoveryDone`) arrived before the awaited reply. It is kept: read
    /// it with `next_incoming`, which also returns the reply once it comes.
    #[error(
        "a delivery arrived before the reply; it is kept: read it (and the reply) with \
         next_incoming"
    )]
    DeliveryWaiting,
    /// `next_delivery` found a reply (`Stored`, `Pong`) ahead of the next delivery. It is
    /// kept: a connection that publishes and subscribes reads with `next_incoming`.
    #[error(
        "a {frame_type} reply arrived ahead of the next delivery; it is kept: read it with \
         next_incoming (or recv_stored)"
    )]
    ReplyWaiting {
        /// The reply's type.
        frame_type: FrameType,
    },
}

/// The data directory a socket lives in, for the "start the daemon" hint.
fn data_dir_of(socket: &Path) -> &Path {
    match socket.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn connect_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::PermissionDenied => {
            "; check the socket's owner and mode, or run as a user allowed to use it (the \
             daemon's socket_mode, 600 by default, lets only its own user in; socket_group \
             and [[access]] rules in its configuration let others in)"
        }
        io::ErrorKind::InvalidInput => {
            "; a socket path must be shorter than 108 bytes: use a shorter --data-dir"
        }
        _ => "",
    }
}
