//! What a picky subscriber does with a delivery, shared by the crash loop
//! (`crashloop.rs`) and the soak (`soak/`), which each draw an event's treatment from
//! its number in their own way.

#![allow(dead_code)]

use herald::client::{Client, ClientError};
use herald::protocol::Seq;

/// `herald serve` flags for a run with a picky subscriber: what it ignores or naks
/// comes back after 10 ms (at most 40 ms), and the daemon does not busy-poll (a core
/// of two).
pub const DAEMON_ARGS: [&str; 6] = [
    "--busy-poll-us",
    "0",
    "--redelivery-backoff",
    "10ms",
    "--redelivery-backoff-max",
    "40ms",
];

/// How a picky subscriber treats an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Treatment {
    Confirm,
    Reject,
    NeverSettle,
    /// Lets the first delivery's deadline pass, confirms a redelivery.
    IgnoreOnce,
    /// Naks the first delivery, confirms a redelivery.
    NakOnce,
}

/// What [`settle`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    Confirmed,
    Rejected,
    Nakked,
    /// Nothing: the deadline will pass.
    Left,
}

impl Treatment {
    /// The reason the event must end up a dead letter with, if it must: `rejected`
    /// for one rejected, `max_deliveries` for one never settled.
    pub fn dead_reason(self) -> Option<&'static str> {
        match self {
            Treatment::Reject => Some("rejected"),
            Treatment::NeverSettle => Some("max_deliveries"),
            _ => None,
        }
    }
}

/// Treats delivery `seq` as `treatment` says; `first` is whether this is its first
/// delivery. `before_confirm` runs just before a confirm is queued (so that a record of
/// it can never lag behind the daemon's).
pub fn settle(
    client: &mut Client,
    treatment: Treatment,
    seq: Seq,
    first: bool,
    nak_delay_ms: u32,
    before_confirm: impl FnOnce(),
) -> Result<Settled, ClientError> {
    let confirm = |client: &mut Client| {
        before_confirm();
        client.confirm(seq, seq).map(|_| Settled::Confirmed)
    };
    match treatment {
        Treatment::Confirm => confirm(client),
        Treatment::Reject => client.reject(seq).map(|_| Settled::Rejected),
        Treatment::NeverSettle => Ok(Settled::Left),
        Treatment::IgnoreOnce if first => Ok(Settled::Left),
        Treatment::NakOnce if first => client.nak(seq, nak_delay_ms).map(|_| Settled::Nakked),
        Treatment::IgnoreOnce | Treatment::NakOnce => confirm(client),
    }
}
