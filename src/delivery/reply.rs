//! Answers owed to clients, how much room each needs, and how they are encoded.

use super::conn::{Conn, REPLY_RESERVE_BYTES};
use crate::protocol::{
    self, encode, encoded_len, ErrorCode, Frame, HelloOk, Rule, ServerState, FRAME_BYTES_MAX,
};

/// An answer owed to a connection. Copy and small: queued without allocating, encoded
/// when it may go (see `commit::CommitPipeline`).
#[derive(Copy, Clone, Debug)]
pub enum Reply {
    /// Hello accepted.
    HelloOk,
    /// Events durable.
    Stored {
        /// The publish's correlation.
        correlation: u64,
        /// Lowest sequence number.
        first: u64,
        /// Highest sequence number.
        last: u64,
        /// Distinct events.
        count: u16,
    },
    /// A request failed.
    Error {
        /// The failed request's correlation, or 0.
        correlation: u64,
        /// Why.
        code: ErrorCode,
        /// For people.
        message: &'static str,
    },
    /// The subscription is active.
    Subscribed {
        /// Normal or recovering.
        mode: protocol::SubscriptionMode,
        /// Events waiting for it.
        pending: u64,
    },
    /// Answer to a ping.
    Pong {
        /// The ping's token.
        token: u64,
    },
    /// A refusal whose message names a number (a limit, a table size): the text is
    /// `before`, the number, `after`, put together only when it is encoded.
    Refused {
        /// Why.
        code: ErrorCode,
        /// The text before the number.
        before: &'static str,
        /// The number.
        number: u64,
        /// The text after it.
        after: &'static str,
    },
}

impl Reply {
    /// A failure answer.
    pub fn error(correlation: u64, code: ErrorCode, message: &'static str) -> Reply {
        Reply::Error {
            correlation,
            code,
            message,
        }
    }

    /// Bytes it takes in the send buffer. A reply that would not encode (a bug: every
    /// reply is built valid) counts as the largest; [`encode_reply`] then closes its
    /// connection instead of sending it.
    pub fn bytes(self) -> usize {
        let mut text = MessageText::new();
        encoded_len(&self.frame(1, 0, 0, &mut text)).unwrap_or(REPLY_BYTES_MAX)
    }

    /// Whether the connection closes after it.
    pub fn closes(self) -> bool {
        match self {
            Reply::Error { code, .. } | Reply::Refused { code, .. } => code.closes_connection(),
            _ => false,
        }
    }

    /// The frame that carries it (`text` holds a refusal's message while the frame is
    /// encoded).
    fn frame<'t>(
        self,
        version: u16,
        node_id: u64,
        payload_max: u32,
        text: &'t mut MessageText,
    ) -> Frame<'t> {
        match self {
            Reply::Refused {
                code,
                before,
                number,
                after,
            } => Frame::Error {
                correlation: 0,
                code,
                message: text.compose(before, number, after),
            },
            Reply::HelloOk => Frame::HelloOk(HelloOk {
                version,
                node_id,
                frame_bytes_max: FRAME_BYTES_MAX as u32,
                event_payload_bytes_max: payload_max,
            }),
            Reply::Stored {
                correlation,
                first,
                last,
                count,
            } => Frame::Stored {
                correlation,
                first_seq: protocol::Seq(first),
                last_seq: protocol::Seq(last),
                count,
            },
            Reply::Error {
                correlation,
                code,
                message,
            } => Frame::Error {
                correlation,
                code,
                message,
            },
            Reply::Subscribed { mode, pending } => Frame::Subscribed {
                mode,
                pending_events: pending,
            },
            Reply::Pong { token } => Frame::Pong { token },
        }
    }
}

/// A refusal's message, put together on the stack (nothing allocated).
pub struct MessageText {
    bytes: [u8; 256],
    len: usize,
}

impl MessageText {
    /// An empty message.
    pub fn new() -> MessageText {
        MessageText {
            bytes: [0; 256],
            len: 0,
        }
    }

    /// `before`, `number` in decimal, `after`; cut at the buffer's end (on a character
    /// boundary: the parts are ASCII-safe UTF-8 and digits).
    pub fn compose(&mut self, before: &str, number: u64, after: &str) -> &str {
        self.len = 0;
        self.push(before.as_bytes());
        let mut digits = [0u8; 20];
        let mut n = number;
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
        self.push(after.as_bytes());
        // Whole parts or whole digits only were copied, so this is valid UTF-8 unless
        // a part was cut inside a character: then the text ends before it.
        match std::str::from_utf8(&self.bytes[..self.len]) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&self.bytes[..e.valid_up_to()]).unwrap_or_default(),
        }
    }

    fn push(&mut self, part: &[u8]) {
        let n = part.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&part[..n]);
        self.len += n;
    }
}

impl Default for MessageText {
    fn default() -> Self {
        MessageText::new()
    }
}

/// The largest answer other than `StatusReply`: an `Error` with the longest message.
pub const REPLY_BYTES_MAX: usize =
    protocol::FRAME_HEADER_BYTES + protocol::ERROR_FIXED_BYTES + protocol::ERROR_MESSAGE_BYTES_MAX;
// Every answer fits the room deliveries leave free, a whole status frame included.
const _: () = assert!(REPLY_BYTES_MAX <= REPLY_RESERVE_BYTES);
const _: () = assert!(FRAME_BYTES_MAX <= REPLY_RESERVE_BYTES);

/// What a daemon tells a client in `HelloOk` beside the version.
#[derive(Copy, Clone, Debug)]
pub struct Identity {
    /// The daemon's node identity.
    pub node_id: u64,
    /// The largest payload it accepts.
    pub payload_max: u32,
}

/// Encodes `reply` into `conn`'s send buffer (its room was reserved when the frame it
/// answers was read). Marks the connection for closing after a closing error, or if the
/// reply does not encode (a bug, which costs this connection and never the daemon).
pub fn encode_reply<S>(conn: &mut Conn<S>, slot: usize, reply: Reply, identity: Identity) {
    if reply.closes() {
        conn.close_after_flush = true;
    }
    let version = conn.machine.version().unwrap_or(1);
    let mut text = MessageText::new();
    let frame = reply.frame(version, identity.node_id, identity.payload_max, &mut text);
    conn.send_free();
    match encode(&frame, conn.send_tail()) {
        Ok(n) => conn.wrote(n),
        Err(e) => {
            tracing::error!(slot, error = %e, ?reply, "an answer could not be encoded; closing the connection");
            conn.close_after_flush = true;
        }
    }
}

/// Send-buffer room the answer to `frame` needs before the frame may be read, in
/// `state`. Settling frames are answered by nothing, so they are read even while the
/// connection's output is blocked (PROTOCOL.md section 10.6): the confirmations that
/// free a subscriber's window are never stuck behind its deliveries.
pub fn answer_bytes(frame: &Frame<'_>, state: ServerState) -> usize {
    if matches!(
        protocol::server_rule(state, frame.frame_type().as_u8()),
        Rule::Reject(_)
    ) {
        return REPLY_BYTES_MAX;
    }
    match frame {
        Frame::Confirm { .. }
        | Frame::Nak { .. }
        | Frame::Working { .. }
        | Frame::Reject { .. }
        | Frame::Recovered
        | Frame::Goodbye => 0,
        Frame::Status | Frame::Admin { .. } => FRAME_BYTES_MAX,
        _ => REPLY_BYTES_MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_the_daemon_builds_encodes_within_the_largest_size() {
        let replies = [
            Reply::HelloOk,
            Reply::Stored {
                correlation: u64::MAX,
                first: 1,
                last: 1,
                count: 1,
            },
            Reply::Stored {
                correlation: 0,
                first: 10,
                last: 10 + 255,
                count: 256,
            },
            Reply::error(7, ErrorCode::Full, "the log is full"),
            Reply::Subscribed {
                mode: protocol::SubscriptionMode::Recovering,
                pending: u64::MAX,
            },
            Reply::Pong { token: 3 },
            Reply::Refused {
                code: ErrorCode::Busy,
                before: "connection limit reached: --connections-max is ",
                number: u64::MAX,
                after: "; try again later",
            },
        ];
        for reply in replies {
            let n = encoded_len(&reply.frame(1, 7, 65536, &mut MessageText::new())).expect("valid");
            assert!(n <= REPLY_BYTES_MAX, "{reply:?}: {n}");
            assert_eq!(reply.bytes(), n);
        }
        // An invalid one (count beyond its range) counts as the largest, not a panic.
        let bad = Reply::Stored {
            correlation: 0,
            first: 5,
            last: 5,
            count: 2,
        };
        assert_eq!(bad.bytes(), REPLY_BYTES_MAX);
    }

    #[test]
    fn a_refusal_names_its_number_and_a_long_text_is_cut_not_broken() {
        let mut text = MessageText::new();
        assert_eq!(text.compose("limit ", 128, "; later"), "limit 128; later");
        assert_eq!(text.compose("", 0, ""), "0");
        let long = "é".repeat(200);
        let cut = text.compose(&long, 7, "").to_owned();
        assert!(cut.len() <= 256 && cut.chars().all(|c| c == 'é'), "{cut}");
    }
}
