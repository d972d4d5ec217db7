//! Decoding: bytes received → [`Frame`], borrowing from the receive buffer.
//!
//! Nothing here allocates or panics, whatever the input: every read goes through
//! [`Reader`], which checks bounds and returns `Truncated` instead of indexing.

use super::error::{DecodeError, FieldError};
use super::event::{check_len, Event, EventBatch};
use super::frame::{
    Deliver, DeliverRule, Frame, FrameType, Hello, HelloOk, Patterns, Role, Subscribe,
    DELIVER_FLAG_ORIGIN, DELIVER_FLAG_REDELIVERED, DELIVER_FLAG_RULE,
    SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY, SUBSCRIBE_FLAG_GROUP,
};
use super::version::HELLO_MAGIC;
use super::ErrorCode;
use crate::event::limits::{
    ACK_DEADLINE_MS_MAX, BATCH_EVENTS_MAX, EVENT_PAYLOAD_BYTES_MAX, FRAME_BYTES_MAX,
    FRAME_HEADER_BYTES, FRAME_LENGTH_BYTES, FRAME_TYPE_BYTES, KEY_BYTES_MAX,
    SUBSCRIPTION_PATTERNS_MAX, SUBSCRIPTION_PATTERN_LIST_BYTES_MAX,
};
use crate::event::{Pattern, Seq, Severity, SubscriptionMode, Topic};

/// A frame's header, known once its first [`FRAME_HEADER_BYTES`] have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame's type.
    pub frame_type: FrameType,
    /// The whole frame's size, length field included: how many bytes to wait for.
    pub frame_bytes: usize,
}

/// Reads a frame header from the start of `buf`. `Ok(None)` means fewer than
/// [`FRAME_HEADER_BYTES`] have arrived. A bad length, type or reserved byte is reported as
/// soon as it is seen, so a peer sending garbage is stopped before its body arrives.
pub fn decode_header(buf: &[u8]) -> Result<Option<FrameHeader>, DecodeError> {
    let Some(length_field) = buf.first_chunk::<FRAME_LENGTH_BYTES>() else {
        return Ok(None);
    };
    let length = u32::from_le_bytes(*length_field);
    let frame_bytes = FRAME_LENGTH_BYTES as u64 + u64::from(length);
    if frame_bytes > FRAME_BYTES_MAX as u64 {
        return Err(DecodeError::FrameTooLarge { frame_bytes });
    }
    if (length as usize) < FRAME_TYPE_BYTES {
        return Err(DecodeError::LengthTooShort { length });
    }
    let Some(&[type_byte, reserved]) = buf.get(FRAME_LENGTH_BYTES..FRAME_HEADER_BYTES) else {
        return Ok(None);
    };
    let Some(frame_type) = FrameType::from_u8(type_byte) else {
        return Err(DecodeError::UnknownFrameType {
            frame_type: type_byte,
        });
    };
    if reserved != 0 {
        return Err(DecodeError::ReservedNotZero { value: reserved });
    }
    Ok(Some(FrameHeader {
        frame_type,
        // Bounded by FRAME_BYTES_MAX just above.
        frame_bytes: frame_bytes as usize,
    }))
}

/// Decodes one frame from the start of `buf`. Returns the frame and the bytes it
/// consumed, or `Ok(None)` when more bytes are needed. Never allocates, never panics.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    let Some(header) = decode_header(buf)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(FRAME_HEADER_BYTES..header.frame_bytes) else {
        return Ok(None);
    };
    let mut reader = Reader::new(body);
    let frame = read_body(header.frame_type, &mut reader)?;
    let trailing = reader.remaining();
    if trailing != 0 {
        return Err(DecodeError::TrailingBytes {
            frame_type: header.frame_type,
            bytes: trailing,
        });
    }
    frame.validate()?;
    Ok(Some((frame, header.frame_bytes)))
}

fn read_body<'a>(frame_type: FrameType, reader: &mut Reader<'a>) -> Result<Frame<'a>, DecodeError> {
    let frame = match frame_type {
        FrameType::Hello => Frame::Hello(read_hello(reader)?),
        FrameType::Publish => Frame::Publish {
            correlation: reader.u64("publish.correlation")?,
            event: read_event(reader)?,
        },
        FrameType::PublishBatch => read_publish_batch(reader)?,
        FrameType::Subscribe => Frame::Subscribe(read_subscribe(reader)?),
        FrameType::Confirm => Frame::Confirm {
            first_seq: reader.seq("confirm.first_seq")?,
            last_seq: reader.seq("confirm.last_seq")?,
        },
        FrameType::Nak => Frame::Nak {
            seq: reader.seq("nak.seq")?,
            delay_ms: reader.u32("nak.delay_ms")?,
        },
        FrameType::Working => Frame::Working {
            seq: reader.seq("working.seq")?,
        },
        FrameType::Reject => Frame::Reject {
            seq: reader.seq("reject.seq")?,
        },
        FrameType::Recovered => Frame::Recovered,
        FrameType::Admin => Frame::Admin {
            json: utf8(reader.rest(), "admin.json")?,
        },
        FrameType::Status => Frame::Status,
        FrameType::Ping => Frame::Ping {
            token: reader.u64("ping.token")?,
        },
        FrameType::Goodbye => Frame::Goodbye,
        FrameType::HelloOk => Frame::HelloOk(HelloOk {
            version: reader.u16("hello_ok.version")?,
            node_id: reader.u64("hello_ok.node_id")?,
            frame_bytes_max: reader.u32("hello_ok.frame_bytes_max")?,
            event_payload_bytes_max: reader.u32("hello_ok.event_payload_bytes_max")?,
        }),
        FrameType::Stored => Frame::Stored {
            correlation: reader.u64("stored.correlation")?,
            first_seq: reader.seq("stored.first_seq")?,
            last_seq: reader.seq("stored.last_seq")?,
            count: reader.u16("stored.count")?,
        },
        FrameType::Error => read_error(reader)?,
        FrameType::Subscribed => Frame::Subscribed {
            mode: read_enum(reader, "subscribed.mode", SubscriptionMode::from_u8)?,
            pending_events: reader.u64("subscribed.pending_events")?,
        },
        FrameType::Deliver => Frame::Deliver(read_deliver(reader)?),
        FrameType::RecoveryDone => Frame::RecoveryDone,
        FrameType::StatusReply => Frame::StatusReply {
            json: utf8(reader.rest(), "status_reply.json")?,
        },
        FrameType::Pong => Frame::Pong {
            token: reader.u64("pong.token")?,
        },
    };
    Ok(frame)
}

fn read_hello<'a>(reader: &mut Reader<'a>) -> Result<Hello<'a>, DecodeError> {
    let magic = reader.array::<4>("hello.magic")?;
    if magic != HELLO_MAGIC {
        return Err(DecodeError::BadMagic { found: magic });
    }
    let version_min = reader.u16("hello.version_min")?;
    let version_max = reader.u16("hello.version_max")?;
    let role = read_enum(reader, "hello.role", Role::from_u8)?;
    let name_len = reader.u8("hello.client_name_len")?;
    let client_name = utf8(
        reader.take(usize::from(name_len), "hello.client_name")?,
        "hello.client_name",
    )?;
    Ok(Hello {
        version_min,
        version_max,
        role,
        client_name,
    })
}

fn read_publish_batch<'a>(reader: &mut Reader<'a>) -> Result<Frame<'a>, DecodeError> {
    let correlation = reader.u64("publish_batch.correlation")?;
    let count = reader.u16("publish_batch.count")?;
    if count == 0 || usize::from(count) > BATCH_EVENTS_MAX {
        return Err(FieldError::InvalidValue {
            field: "publish_batch.count",
            value: u64::from(count),
        }
        .into());
    }
    // Validate every event now, so that a batch is accepted or refused as a whole before
    // any of it is stored; the iterator decodes them again lazily.
    let events_bytes = reader.rest();
    let mut events = Reader::new(events_bytes);
    for _ in 0..count {
        read_event(&mut events)?;
    }
    let trailing = events.remaining();
    if trailing != 0 {
        return Err(DecodeError::TrailingBytes {
            frame_type: FrameType::PublishBatch,
            bytes: trailing,
        });
    }
    Ok(Frame::PublishBatch {
        correlation,
        events: EventBatch::from_wire(count, events_bytes),
    })
}

fn read_subscribe<'a>(reader: &mut Reader<'a>) -> Result<Subscribe<'a>, DecodeError> {
    let flags = reader.u32("subscribe.flags")?;
    if flags & !(SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY | SUBSCRIBE_FLAG_GROUP) != 0 {
        return Err(FieldError::InvalidValue {
            field: "subscribe.flags",
            value: u64::from(flags),
        }
        .into());
    }
    let window_events = reader.u32("subscribe.window_events")?;
    let ack_deadline_ms = reader.u32("subscribe.ack_deadline_ms")?;
    let max_deliveries = reader.u16("subscribe.max_deliveries")?;
    if ack_deadline_ms > ACK_DEADLINE_MS_MAX {
        return Err(FieldError::InvalidValue {
            field: "subscribe.ack_deadline_ms",
            value: u64::from(ack_deadline_ms),
        }
        .into());
    }
    let min_severity = read_enum(reader, "subscribe.min_severity", Severity::from_u8)?;
    let name_len = reader.u8("subscribe.name_len")?;
    let pattern_count = reader.u8("subscribe.pattern_count")?;
    if pattern_count == 0 || usize::from(pattern_count) > SUBSCRIPTION_PATTERNS_MAX {
        return Err(FieldError::InvalidValue {
            field: "subscribe.pattern_count",
            value: u64::from(pattern_count),
        }
        .into());
    }
    let name = utf8(
        reader.take(usize::from(name_len), "subscribe.name")?,
        "subscribe.name",
    )?;
    let patterns_bytes = reader.rest();
    check_len(
        "subscribe.patterns",
        patterns_bytes.len(),
        SUBSCRIPTION_PATTERN_LIST_BYTES_MAX,
    )?;
    let mut patterns = Reader::new(patterns_bytes);
    for _ in 0..pattern_count {
        read_pattern(&mut patterns)?;
    }
    let trailing = patterns.remaining();
    if trailing != 0 {
        return Err(DecodeError::TrailingBytes {
            frame_type: FrameType::Subscribe,
            bytes: trailing,
        });
    }
    Ok(Subscribe {
        name,
        min_severity,
        window_events,
        automatic_recovery: flags & SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY != 0,
        group: flags & SUBSCRIBE_FLAG_GROUP != 0,
        ack_deadline_ms,
        max_deliveries,
        patterns: Patterns::from_wire(pattern_count, patterns_bytes),
    })
}

fn read_error<'a>(reader: &mut Reader<'a>) -> Result<Frame<'a>, DecodeError> {
    let correlation = reader.u64("error.correlation")?;
    let code = reader.u16("error.code")?;
    let Some(code) = ErrorCode::from_u16(code) else {
        return Err(FieldError::InvalidValue {
            field: "error.code",
            value: u64::from(code),
        }
        .into());
    };
    let message_len = reader.u16("error.message_len")?;
    let message = utf8(
        reader.take(usize::from(message_len), "error.message")?,
        "error.message",
    )?;
    Ok(Frame::Error {
        correlation,
        code,
        message,
    })
}

fn read_deliver<'a>(reader: &mut Reader<'a>) -> Result<Deliver<'a>, DecodeError> {
    let seq = reader.seq("deliver.seq")?;
    let timestamp_ns = reader.u64("deliver.timestamp_ns")?;
    let delivery_flags = reader.u16("deliver.delivery_flags")?;
    if delivery_flags & !(DELIVER_FLAG_REDELIVERED | DELIVER_FLAG_ORIGIN | DELIVER_FLAG_RULE) != 0 {
        return Err(FieldError::InvalidValue {
            field: "deliver.delivery_flags",
            value: u64::from(delivery_flags),
        }
        .into());
    }
    let delivery_count = reader.u16("deliver.delivery_count")?;
    let origin = if delivery_flags & DELIVER_FLAG_ORIGIN != 0 {
        Some(crate::event::Origin {
            node_id: reader.u64("deliver.origin_node_id")?,
            seq: reader.u64("deliver.origin_seq")?,
            timestamp_ns: reader.u64("deliver.origin_timestamp_ns")?,
        })
    } else {
        None
    };
    let rule = if delivery_flags & DELIVER_FLAG_RULE != 0 {
        Some(DeliverRule {
            id: reader.u32("deliver.rule_id")?,
            version: reader.u32("deliver.rule_version")?,
        })
    } else {
        None
    };
    Ok(Deliver {
        seq,
        timestamp_ns,
        redelivered: delivery_flags & DELIVER_FLAG_REDELIVERED != 0,
        delivery_count,
        origin,
        rule,
        event: read_event(reader)?,
    })
}

/// Reads and validates one event.
pub(crate) fn read_event<'a>(reader: &mut Reader<'a>) -> Result<Event<'a>, DecodeError> {
    let severity = read_enum(reader, "event.severity", Severity::from_u8)?;
    let topic_len = usize::from(reader.u8("event.topic_len")?);
    let source_len = usize::from(reader.u8("event.source_len")?);
    let key_len = usize::from(reader.u8("event.key_len")?);
    let flags = reader.u16("event.flags")?;
    let payload_len = reader.u32("event.payload_len")? as usize;
    // Limits before bounds, so an oversize field reports too_large, not truncation.
    if key_len > KEY_BYTES_MAX {
        return Err(too_long("event.key", key_len, KEY_BYTES_MAX));
    }
    if payload_len > EVENT_PAYLOAD_BYTES_MAX {
        return Err(too_long(
            "event.payload",
            payload_len,
            EVENT_PAYLOAD_BYTES_MAX,
        ));
    }
    let topic = Topic::new(reader.take(topic_len, "event.topic")?)?;
    let source = utf8(reader.take(source_len, "event.source")?, "event.source")?;
    Ok(Event {
        topic,
        severity,
        source,
        flags,
        key: reader.take(key_len, "event.key")?,
        payload: reader.take(payload_len, "event.payload")?,
    })
}

/// Reads and validates one length-prefixed pattern.
pub(crate) fn read_pattern<'a>(reader: &mut Reader<'a>) -> Result<Pattern<'a>, DecodeError> {
    let len = usize::from(reader.u8("subscribe.pattern_len")?);
    Ok(Pattern::parse(reader.take(len, "subscribe.pattern")?)?)
}

fn read_enum<T>(
    reader: &mut Reader<'_>,
    field: &'static str,
    from_u8: fn(u8) -> Option<T>,
) -> Result<T, DecodeError> {
    let value = reader.u8(field)?;
    from_u8(value).ok_or(DecodeError::Field(FieldError::InvalidValue {
        field,
        value: u64::from(value),
    }))
}

fn utf8<'a>(bytes: &'a [u8], field: &'static str) -> Result<&'a str, DecodeError> {
    core::str::from_utf8(bytes).map_err(|_| FieldError::NotUtf8 { field }.into())
}

fn too_long(field: &'static str, bytes: usize, max: usize) -> DecodeError {
    FieldError::TooLong { field, bytes, max }.into()
}

/// A bounds-checked cursor over a frame body. Every read either returns the bytes or
/// `Truncated`; none indexes out of bounds.
#[derive(Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn take(
        &mut self,
        bytes: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let Some((head, tail)) = self.rest.split_at_checked(bytes) else {
            return Err(DecodeError::Truncated { field });
        };
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.rest)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let Some((head, tail)) = self.rest.split_first_chunk::<N>() else {
            return Err(DecodeError::Truncated { field });
        };
        self.rest = tail;
        Ok(*head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array(field)?))
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn seq(&mut self, field: &'static str) -> Result<Seq, DecodeError> {
        Ok(Seq(self.u64(field)?))
    }
}
