//! The forwarder as a sink: each event becomes one `HPUB` in the forwarder's send
//! buffer, to `<prefix>.<topic>` with its headers and a reply subject naming its seq.
//! Nothing is allocated: the header block is written into a scratch buffer and copied
//! behind the `HPUB` line (one copy of at most [`HEADER_BYTES`](super::link) bytes).

use super::Forwarder;
use crate::delivery::sink::{Offer, Sink};
use crate::log::EventView;
use crate::nats::{self, Headers};
use crate::protocol::Topic;
use crate::subscription::Sent;

/// A [`Forwarder`] as the sink of its durable subscription.
pub struct ForwardSink<'f, S>(pub &'f mut Forwarder<S>);

impl<S> Sink for ForwardSink<'_, S> {
    fn accepts(&self) -> bool {
        self.0.ready()
    }

    fn offer(
        &mut self,
        e: &EventView<'_>,
        _rule: Option<crate::protocol::DeliverRule>,
        sent: &mut dyn FnMut() -> Sent,
    ) -> Offer {
        let f = &mut *self.0;
        if Topic::new(e.topic).is_err() {
            return Offer::Undeliverable;
        }
        // From the origin: an event relayed here and forwarded by its first node too
        // has one id, and JetStream keeps it once.
        let headers = Headers {
            node_id: e.origin.node_id,
            seq: e.origin.seq,
            severity: e.severity.name(),
            source: e.source,
            timestamp_ns: e.origin.timestamp_ns,
            key: e.key,
        };
        let Some(header_len) = headers.write(&mut f.headers) else {
            return Offer::Undeliverable;
        };
        let room = f.delivery_room();
        let prefix = f.config.subject_prefix.as_bytes();
        let needed = prefix.len()
            + e.topic.len()
            + f.inbox_len
            + header_len
            + e.payload.len()
            + nats::HPUB_OVERHEAD_BYTES;
        if room < needed {
            return Offer::NoRoom;
        }
        sent();
        let at = f.send_len;
        match nats::hpub(
            &mut f.send[at..],
            prefix,
            e.topic,
            &f.inbox[..f.inbox_len],
            e.seq.0,
            &f.headers[..header_len],
            e.payload,
        ) {
            Some(n) => {
                f.send_len += n;
                Offer::Sent
            }
            // Cannot happen (the room was checked above); the tracker counts it sent,
            // so it is published again after the ack timeout.
            None => Offer::NoRoom,
        }
    }

    fn recovery_done(&mut self) -> bool {
        // JetStream needs no marker: a replayed event is a publish like any other.
        true
    }

    fn gives_up(&self) -> bool {
        false
    }
}
