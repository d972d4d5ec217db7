//! Sinks: where a subscription's deliveries go. A connection speaking the herald
//! protocol is one kind; the relay's and the JetStream forwarder's are others. Fan-out
//! asks a sink to take one event at a time and stops when it has no room.

use super::conn::Conn;
use crate::log::EventView;
use crate::protocol::{self, encode, encoded_len, Deliver, DeliverRule, Event, Frame, Topic};
use crate::subscription::Sent;

/// What became of one event offered to a sink.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Taken.
    Sent,
    /// No room now: stop for this turn (room comes back with a completion).
    NoRoom,
    /// This sink can never carry it (a stored event outside the protocol's grammar,
    /// written by a tool that bypassed the protocol's checks).
    Undeliverable,
}

/// Something a subscription delivers to.
pub trait Sink {
    /// Whether it takes deliveries at all now (not closing).
    fn accepts(&self) -> bool;

    /// Takes one event if it has room. `sent` is asked for the redelivery flag and
    /// count only once the event is sure to go (it records the delivery). `rule` is
    /// the routing rule version that routed it, if one did and is still known.
    fn offer(
        &mut self,
        event: &EventView<'_>,
        rule: Option<DeliverRule>,
        sent: &mut dyn FnMut() -> Sent,
    ) -> Offer;

    /// Says that the replay of a recovering subscription is complete; false if there
    /// was no room (asked again next turn).
    fn recovery_done(&mut self) -> bool;

    /// Whether an event that had its deliveries becomes a dead letter (a subscriber
    /// that keeps failing on it); a sink that retries until it succeeds (the JetStream
    /// forwarder: its failures are the server's, not the event's) says no.
    fn gives_up(&self) -> bool {
        true
    }
}

/// A protocol connection as a sink: each event is a `Deliver` frame in its send
/// buffer, within the room deliveries may use.
pub struct ConnSink<'c, S>(pub &'c mut Conn<S>);

impl<S> Sink for ConnSink<'_, S> {
    fn accepts(&self) -> bool {
        self.0.open_for_io() && !self.0.close_after_flush
    }

    fn offer(
        &mut self,
        e: &EventView<'_>,
        rule: Option<DeliverRule>,
        sent: &mut dyn FnMut() -> Sent,
    ) -> Offer {
        let conn = &mut *self.0;
        let (Ok(topic), Ok(source)) = (Topic::new(e.topic), std::str::from_utf8(e.source)) else {
            return Offer::Undeliverable;
        };
        let mut deliver = Deliver {
            seq: protocol::Seq(e.seq.0),
            timestamp_ns: e.timestamp_ns,
            redelivered: false,
            delivery_count: 1,
            // Version 1 has no room for it (PROTOCOL.md section 13).
            origin: (conn.machine.version() >= Some(2)).then_some(e.origin),
            rule: rule.filter(|_| conn.machine.version() >= Some(3)),
            event: Event {
                topic,
                severity: e.severity,
                source,
                flags: e.flags,
                key: e.key,
                payload: e.payload,
            },
        };
        let Ok(needed) = encoded_len(&Frame::Deliver(deliver)) else {
            return Offer::Undeliverable;
        };
        // Deliveries leave room to answers, so that a client that reads what it is
        // sent always gets its answers (PROTOCOL.md section 10.6).
        if conn.delivery_room() < needed {
            return Offer::NoRoom;
        }
        let s = sent();
        deliver.redelivered = s.redelivered;
        deliver.delivery_count = s.delivery_count;
        match encode(&Frame::Deliver(deliver), conn.send_tail()) {
            Ok(n) => {
                conn.wrote(n);
                Offer::Sent
            }
            // The size was computed above and checked against the room; the tracker
            // counts it sent, so it is redelivered after its deadline.
            Err(_) => Offer::NoRoom,
        }
    }

    fn recovery_done(&mut self) -> bool {
        let conn = &mut *self.0;
        if conn.delivery_room() < protocol::FRAME_HEADER_BYTES {
            return false;
        }
        match encode(&Frame::RecoveryDone, conn.send_tail()) {
            Ok(n) => {
                conn.wrote(n);
                true
            }
            Err(_) => false,
        }
    }
}
