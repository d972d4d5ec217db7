//! What the daemon sends back, in the form the client hands to its caller.

use crate::protocol::{Deliver, Seq, SubscriptionMode};

/// The daemon's promise that a publish (or batch) is durable in its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The publish's correlation, as [`Client::send_publish`](super::Client::send_publish)
    /// returned it.
    pub correlation: u64,
    /// Sequence number of the first event stored.
    pub first_seq: Seq,
    /// Sequence number of the last event stored (equal to `first_seq` for one event).
    pub last_seq: Seq,
    /// How many events were stored: 1 for a publish, the batch's length for a batch.
    pub count: u16,
}

/// The daemon accepted a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// [`SubscriptionMode::Recovering`]: unsettled events from before a restart are
    /// replayed first, followed by [`Incoming::RecoveryDone`].
    pub mode: SubscriptionMode,
    /// Events waiting for the subscription when it was attached (0 when live-only).
    pub pending_events: u64,
}

/// One event delivered to the subscription, borrowed from the client's receive buffer
/// until the next call on the client. Settle it by its `seq`.
pub type Delivery<'a> = Deliver<'a>;

/// Anything the daemon sends without being asked at that moment: what
/// [`Client::next_incoming`](super::Client::next_incoming) returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// An event for the subscription.
    Deliver(Delivery<'a>),
    /// Every replayed event has been sent (recovery mode only).
    RecoveryDone,
    /// The reply to the oldest pipelined publish.
    Stored(Stored),
    /// The reply to a ping, with its token.
    Pong(u64),
}
