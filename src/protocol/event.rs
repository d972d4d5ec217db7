//! The event model as the wire carries it: what a producer publishes and a subscriber
//! receives.

use super::decode::{read_event, Reader};
use super::error::FieldError;
use crate::event::limits::{
    BATCH_EVENTS_MAX, EVENT_FIXED_BYTES, EVENT_PAYLOAD_BYTES_MAX, KEY_BYTES_MAX, SOURCE_BYTES_MAX,
};
use crate::event::Severity;
use crate::event::Topic;

/// One event. Every field borrows from the buffer it was decoded from (or from the
/// caller, when encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Where the event belongs; subscriptions filter on it.
    pub topic: Topic<'a>,
    /// How severe it is.
    pub severity: Severity,
    /// Who produced it, 0..=255 bytes. In a publish, empty means "the client name
    /// from my hello".
    pub source: &'a str,
    /// Application-defined; herald stores and delivers them unchanged.
    pub flags: u16,
    /// Idempotency key, 0..=64 bytes; empty means none.
    pub key: &'a [u8],
    /// The event's body, 0..=65536 bytes.
    pub payload: &'a [u8],
}

impl Event<'_> {
    /// Checks the lengths the types do not already guarantee.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_len("event.source", self.source.len(), SOURCE_BYTES_MAX)?;
        check_len("event.key", self.key.len(), KEY_BYTES_MAX)?;
        check_len("event.payload", self.payload.len(), EVENT_PAYLOAD_BYTES_MAX)
    }

    /// Bytes this event occupies on the wire.
    pub fn encoded_len(&self) -> usize {
        EVENT_FIXED_BYTES
            + self.topic.as_bytes().len()
            + self.source.len()
            + self.key.len()
            + self.payload.len()
    }
}

pub(crate) fn check_len(field: &'static str, bytes: usize, max: usize) -> Result<(), FieldError> {
    if bytes > max {
        return Err(FieldError::TooLong { field, bytes, max });
    }
    Ok(())
}

/// The events of a `PublishBatch`: either still encoded in the received body (iterated
/// lazily, nothing collected) or a caller's slice to be encoded.
#[derive(Clone, Copy)]
pub struct EventBatch<'a> {
    repr: BatchRepr<'a>,
}

#[derive(Clone, Copy)]
enum BatchRepr<'a> {
    /// Validated by the decoder: `count` events, back to back, filling `bytes` exactly.
    Wire {
        count: u16,
        bytes: &'a [u8],
    },
    Events(&'a [Event<'a>]),
}

impl<'a> EventBatch<'a> {
    /// A batch to encode from the caller's events.
    pub const fn from_events(events: &'a [Event<'a>]) -> Self {
        EventBatch {
            repr: BatchRepr::Events(events),
        }
    }

    /// Only the decoder builds this, after validating every event in `bytes`.
    pub(crate) const fn from_wire(count: u16, bytes: &'a [u8]) -> Self {
        EventBatch {
            repr: BatchRepr::Wire { count, bytes },
        }
    }

    /// How many events the batch holds.
    pub fn len(&self) -> usize {
        match self.repr {
            BatchRepr::Wire { count, .. } => usize::from(count),
            BatchRepr::Events(events) => events.len(),
        }
    }

    /// Whether the batch holds no event (a decoded batch never does).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events in order, decoded one at a time from the borrowed body.
    pub fn iter(&self) -> EventIter<'a> {
        match self.repr {
            BatchRepr::Wire { count, bytes } => EventIter {
                repr: IterRepr::Wire {
                    remaining: count,
                    reader: Reader::new(bytes),
                },
            },
            BatchRepr::Events(events) => EventIter {
                repr: IterRepr::Events(events.iter()),
            },
        }
    }

    /// Bytes all events occupy on the wire.
    pub fn encoded_len(&self) -> usize {
        match self.repr {
            BatchRepr::Wire { bytes, .. } => bytes.len(),
            BatchRepr::Events(events) => events.iter().map(Event::encoded_len).sum(),
        }
    }

    /// Checks count and every event before encoding; returns the encoded bytes of all
    /// events.
    pub(crate) fn validate_for_encode(&self) -> Result<usize, FieldError> {
        match self.repr {
            BatchRepr::Wire { bytes, .. } => Ok(bytes.len()),
            BatchRepr::Events(events) => {
                if events.is_empty() || events.len() > BATCH_EVENTS_MAX {
                    return Err(FieldError::InvalidValue {
                        field: "publish_batch.count",
                        value: events.len() as u64,
                    });
                }
                for event in events {
                    event.validate()?;
                }
                Ok(self.encoded_len())
            }
        }
    }

    /// The encoded events, when the batch came from the wire.
    pub(crate) fn wire_bytes(&self) -> Option<&'a [u8]> {
        match self.repr {
            BatchRepr::Wire { bytes, .. } => Some(bytes),
            BatchRepr::Events(_) => None,
        }
    }
}

impl<'a> IntoIterator for EventBatch<'a> {
    type Item = Event<'a>;
    type IntoIter = EventIter<'a>;

    fn into_iter(self) -> EventIter<'a> {
        self.iter()
    }
}

impl PartialEq for EventBatch<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for EventBatch<'_> {}

impl core::fmt::Debug for EventBatch<'_> {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        formatter.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over the events of an [`EventBatch`].
#[derive(Clone)]
pub struct EventIter<'a> {
    repr: IterRepr<'a>,
}

#[derive(Clone)]
enum IterRepr<'a> {
    Wire { remaining: u16, reader: Reader<'a> },
    Events(core::slice::Iter<'a, Event<'a>>),
}

impl<'a> Iterator for EventIter<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        match &mut self.repr {
            IterRepr::Wire { remaining, reader } => {
                if *remaining == 0 {
                    return None;
                }
                *remaining -= 1;
                // The decoder validated these very bytes, so an error here is a broken
                // invariant; ending the iteration keeps decoding panic-free regardless.
                match read_event(reader) {
                    Ok(event) => Some(event),
                    Err(_) => {
                        debug_assert!(false, "a validated batch failed to decode");
                        *remaining = 0;
                        None
                    }
                }
            }
            IterRepr::Events(events) => events.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = match &self.repr {
            IterRepr::Wire { remaining, .. } => usize::from(*remaining),
            IterRepr::Events(events) => events.len(),
        };
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for EventIter<'_> {}
