//! The NATS client protocol, as far as herald's JetStream forwarder speaks it: the
//! server's lines (`INFO`, `MSG`, `HMSG`, `PING`, `PONG`, `+OK`, `-ERR`) parsed from a
//! byte buffer, the client's (`CONNECT`, `SUB`, `HPUB`, `PING`, `PONG`) written into
//! one, and JetStream's publish acknowledgement read from a reply's payload.
//!
//! Written by hand because every NATS client crate needs an async runtime (async-nats:
//! tokio) or its own threads (the old `nats` crate), and the daemon runs one
//! completion-shaped loop on one thread: the forwarder's bytes go through the same
//! reactor as every connection's. This module does no I/O and allocates nothing: it
//! reads and writes caller-owned buffers, and every malformed or oversized input is an
//! error value, never a panic.

mod encode;
mod parse;
mod puback;

pub use encode::{hpub, sub, Headers, Writer, CONNECT, HPUB_OVERHEAD_BYTES, PING, PONG};
pub use parse::{header_status, parse, ParseError, ServerOp};
pub use puback::{parse_puback, PubAck};
