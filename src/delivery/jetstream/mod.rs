//! The JetStream forwarder: a sink of its own kind (ARCHITECTURE.md, "Sinks"). It is a
//! durable subscription inside the daemon whose deliveries are NATS `HPUB`s into a
//! JetStream stream over one outbound TCP connection made through the reactor; an
//! event is settled (and so may be released) only when JetStream's PubAck for it
//! arrives. A negative PubAck, a "no responders" answer (no stream listens on the
//! subject) or a missing one (the subscription's ack deadline) makes the event due
//! again after the subscription's backoff; a lost connection makes every unsettled
//! event due again once it is made anew. Nothing is ever dead-lettered: the window
//! bounds what is in flight and the ring holds the rest.
//!
//! - `link.rs`: the connection, its buffers, the NATS handshake and the PubAcks.
//! - `sink.rs`: the [`Sink`](super::sink::Sink) that writes an event as an `HPUB`.

mod link;
mod sink;

pub use link::Forwarder;
pub use sink::ForwardSink;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The subscription name when `--forward-name` is not given.
pub const DEFAULT_NAME: &str = "jetstream";
/// Events in flight (published, PubAck not yet received) when not told otherwise.
pub const DEFAULT_WINDOW: u32 = 256;
/// How long a PubAck may take before the event is published again.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// NATS' port when a URL names none.
pub const DEFAULT_PORT: u16 = 4222;

/// What `herald serve --forward-jetstream` asks for.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// The URL as the operator wrote it (shown by `status`).
    pub url: String,
    /// Where it resolved to at start.
    pub address: SocketAddr,
    /// Subjects are `<prefix>.<topic>`.
    pub subject_prefix: String,
    /// Topic patterns forwarded (empty: every event).
    pub filters: Vec<String>,
    /// The durable subscription's name.
    pub name: String,
    /// Most events published and not yet acknowledged.
    pub window: u32,
    /// A PubAck not received this long after the publish: the event is published
    /// again (JetStream's duplicate window drops it if the first one was stored).
    pub ack_timeout: Duration,
}

/// Reads `nats://HOST[:PORT]` (or `HOST[:PORT]`) and resolves it once, now.
pub fn parse_url(text: &str) -> Result<SocketAddr, String> {
    let rest = text.strip_prefix("nats://").unwrap_or(text);
    if rest.contains("://") {
        return Err(format!(
            "{text:?}: only nats://HOST:PORT is supported (no TLS, no credentials in the URL)"
        ));
    }
    if rest.contains('@') || rest.contains(',') || rest.contains('/') {
        return Err(format!(
            "{text:?}: give one server as nats://HOST:PORT (no credentials, no list, no path)"
        ));
    }
    let with_port = if rest.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')
    }) {
        rest.to_owned()
    } else {
        format!("{rest}:{DEFAULT_PORT}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("{text:?} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// Checks a subject prefix: NATS tokens separated by dots, none empty, no wildcard or
/// white space; herald's topics (themselves dot-separated tokens of `A-Z a-z 0-9 _ -`)
/// are appended after one more dot.
pub fn check_subject_prefix(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > 128 {
        return Err(format!("subject prefix {text:?} must be 1 to 128 bytes"));
    }
    for token in text.split('.') {
        let bad = token.is_empty()
            || token
                .bytes()
                .any(|b| b <= b' ' || b == b'*' || b == b'>' || b >= 0x7f);
        if bad {
            return Err(format!(
                "subject prefix {text:?}: each dot-separated token must be non-empty \
                 printable ASCII without spaces, `*` or `>`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_prefixes() {
        assert_eq!(
            parse_url("nats://127.0.0.1:4333").unwrap(),
            "127.0.0.1:4333".parse().unwrap()
        );
        assert_eq!(parse_url("127.0.0.1").unwrap().port(), DEFAULT_PORT);
        assert!(parse_url("tls://127.0.0.1:1").is_err());
        assert!(parse_url("nats://u:p@127.0.0.1:1").is_err());
        assert!(check_subject_prefix("herald.events").is_ok());
        for bad in ["", "a..b", "a.*", "a b", ">", "a."] {
            assert!(check_subject_prefix(bad).is_err(), "{bad}");
        }
    }
}
