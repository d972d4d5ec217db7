//! The relay's side of an upstream herald (ARCHITECTURE.md, "The relay"): a durable
//! subscription held at another herald, from inside this daemon's loop, over one
//! outbound connection made through the reactor (no blocking client, no thread).
//! Every event it is sent is committed to this node's region as a **relayed** record
//! (its origin and hop kept, FORMAT.md), in the same group commit as local publishes;
//! only once that group is durable is it confirmed upstream. Local subscribers then
//! receive it like any other event.
//!
//! Exactly once into this region, across crashes of either side: the upstream sends a
//! subscription's events in seq order (redeliveries are the only exception), and the
//! relay takes them strictly in order, never skipping one. So one number per upstream
//! node, the **mark** (every upstream seq below it is stored here), tells a redelivery
//! from a new event. The mark lives in a link entry of the subscription table
//! (`log/links.rs`), written once the events it covers are durable, and is rebuilt at
//! start from the relayed records still in the ring too.
//!
//! Back-pressure, never loss: when the ring has no room, the relay stops reading the
//! connection; the upstream's window then fills and the events wait in the upstream's
//! ring.
//!
//! - `link.rs`: the connection, its buffers, the handshake and the frames received.
//! - `relay.rs`: deliveries into the group commit, confirmations once durable, the
//!   mark.

mod link;
mod relay;

pub use link::Upstream;
pub use relay::IngestStop;

use crate::event::Severity;
use crate::reactor::Address;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Events the upstream may have in flight to the relay when not told otherwise.
pub const DEFAULT_WINDOW: u32 = 1024;
/// How long the upstream waits for the relay's confirmation before it sends an event
/// again (the relay confirms within a sync of storing it; a relay whose ring is full
/// confirms nothing until there is room, and then drops the resent copies as
/// duplicates).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// What `herald serve --upstream` asks for.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// The address as the operator wrote it (shown by `status`).
    pub text: String,
    /// Where to connect.
    pub address: UpstreamAddress,
    /// The durable subscription's name at the upstream.
    pub name: String,
    /// Topic patterns taken (empty: every event).
    pub filters: Vec<String>,
    /// Least severe level taken.
    pub min_severity: Severity,
    /// Most events in flight from the upstream.
    pub window: u32,
    /// The upstream's ack deadline for this subscription.
    pub ack_timeout: Duration,
    /// For a `tls://` address: the client configuration.
    pub tls: Option<UpstreamTls>,
}

/// Where an upstream herald listens.
#[derive(Clone, Debug)]
pub enum UpstreamAddress {
    /// Its Unix socket.
    Unix(PathBuf),
    /// Its TLS listener (`--listen-tls` there): the host name its certificate must
    /// carry, and where that resolved at start.
    Tls {
        /// The name the server's certificate is checked against.
        host: String,
        /// The address connected to.
        address: SocketAddr,
    },
}

impl UpstreamAddress {
    /// The reactor's address to connect to.
    pub fn reactor_address(&self) -> Address {
        match self {
            UpstreamAddress::Unix(path) => Address::Unix(path.clone()),
            UpstreamAddress::Tls { address, .. } => Address::Tcp(*address),
        }
    }
}

/// The client side of TLS upstreams: one configuration (`--upstream-ca`,
/// `--upstream-cert`, `--upstream-key`) for all of them.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    /// The rustls client configuration, built and checked at start.
    pub config: Arc<rustls::ClientConfig>,
}

/// Reads an `--upstream` address: a socket path (a directory means its `herald.sock`),
/// or `tls://HOST:PORT`, resolved now.
pub fn parse_address(text: &str) -> Result<UpstreamAddress, String> {
    if text.is_empty() {
        return Err("an empty --upstream address".into());
    }
    if let Some(rest) = text.strip_prefix("tls://") {
        let (host, port) = crate::tls::host_port(rest)
            .ok_or_else(|| format!("{text:?}: give tls://HOST:PORT (an IPv6 host in brackets)"))?;
        let address = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("{text:?} does not resolve: {e}"))?
            .next()
            .ok_or_else(|| format!("{text:?} resolves to no address"))?;
        return Ok(UpstreamAddress::Tls {
            host: host.to_owned(),
            address,
        });
    }
    if text.contains("://") {
        return Err(format!(
            "{text:?}: give the upstream herald's socket path (such as /run/herald/herald.sock) \
             or tls://HOST:PORT"
        ));
    }
    let path = PathBuf::from(text);
    let path = if path.is_dir() {
        path.join("herald.sock")
    } else {
        path
    };
    Ok(UpstreamAddress::Unix(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(matches!(
            parse_address("/run/herald/herald.sock"),
            Ok(UpstreamAddress::Unix(p)) if p == std::path::Path::new("/run/herald/herald.sock")
        ));
        let dir = std::env::temp_dir();
        assert!(matches!(
            parse_address(dir.to_str().unwrap()),
            Ok(UpstreamAddress::Unix(p)) if p == dir.join("herald.sock")
        ));
        assert!(parse_address("").is_err());
        assert!(parse_address("nats://x:1").is_err());
        assert!(matches!(
            parse_address("tls://127.0.0.1:7400"),
            Ok(UpstreamAddress::Tls { host, address }) if host == "127.0.0.1" && address.port() == 7400
        ));
        assert!(parse_address("tls://127.0.0.1").is_err());
        assert!(parse_address("tls://:7400").is_err());
    }
}
