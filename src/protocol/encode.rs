//! Encoding: [`Frame`] → bytes, into a buffer the caller sized at start-up.
//!
//! Every frame is validated first ([`Frame::validate`], the same check the decoder
//! runs), so whatever encodes successfully decodes to the same frame.

use super::error::EncodeError;
use super::event::Event;
use super::frame::{
    Frame, FrameType, Subscribe, DELIVER_FLAG_ORIGIN, DELIVER_FLAG_REDELIVERED, DELIVER_FLAG_RULE,
    SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY, SUBSCRIBE_FLAG_GROUP,
};
use super::version::HELLO_MAGIC;
use super::ErrorCode;
use crate::event::limits::{
    DELIVER_FIXED_BYTES, DELIVER_ORIGIN_BYTES, DELIVER_RULE_BYTES, ERROR_FIXED_BYTES,
    ERROR_MESSAGE_BYTES_MAX, FRAME_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_LENGTH_BYTES,
    HELLO_FIXED_BYTES, PUBLISH_BATCH_FIXED_BYTES, PUBLISH_FIXED_BYTES, SUBSCRIBE_FIXED_BYTES,
};

/// Bytes `frame` occupies on the wire, length field included, after checking that it
/// is valid and within [`FRAME_BYTES_MAX`].
pub fn encoded_len(frame: &Frame<'_>) -> Result<usize, EncodeError> {
    frame.validate()?;
    let frame_bytes = FRAME_HEADER_BYTES + body_len(frame);
    if frame_bytes > FRAME_BYTES_MAX {
        return Err(EncodeError::FrameTooLarge { frame_bytes });
    }
    Ok(frame_bytes)
}

/// Encodes `frame` at the start of `out`; returns the bytes written. On error nothing
/// meaningful was written.
pub fn encode(frame: &Frame<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    let frame_bytes = encoded_len(frame)?;
    let available = out.len();
    let Some(out) = out.get_mut(..frame_bytes) else {
        return Err(EncodeError::BufferTooSmall {
            needed: frame_bytes,
            available,
        });
    };
    write_frame(frame, out);
    Ok(frame_bytes)
}

/// Writes a validated `frame` into `out`, which is exactly its encoded length.
fn write_frame(frame: &Frame<'_>, out: &mut [u8]) {
    let frame_bytes = out.len();
    let mut writer = Writer { out, position: 0 };
    write_header(&mut writer, frame.frame_type(), frame_bytes);
    write_body(frame, &mut writer);
    assert_eq!(
        writer.position, frame_bytes,
        "body_len and write_body disagree on {frame:?}"
    );
}

/// Appends `frame` to `out` within its spare capacity; never reallocates (a frame that
/// does not fit is `BufferTooSmall`). Returns the bytes appended.
pub fn encode_to_vec(frame: &Frame<'_>, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let frame_bytes = encoded_len(frame)?;
    let available = out.capacity() - out.len();
    if frame_bytes > available {
        return Err(EncodeError::BufferTooSmall {
            needed: frame_bytes,
            available,
        });
    }
    let start = out.len();
    // Within capacity, so this does not reallocate.
    out.resize(start + frame_bytes, 0);
    write_frame(frame, &mut out[start..]);
    Ok(frame_bytes)
}

/// Encodes an `Error` frame whose message is `message` formatted straight into `out`,
/// cut (on a character boundary) at [`ERROR_MESSAGE_BYTES_MAX`] or at the end of `out`.
/// Lets the daemon explain a rejection without building a `String`.
pub fn encode_error(
    out: &mut [u8],
    correlation: u64,
    code: ErrorCode,
    message: &dyn core::fmt::Display,
) -> Result<usize, EncodeError> {
    let message_start = FRAME_HEADER_BYTES + ERROR_FIXED_BYTES;
    let available = out.len();
    if available < message_start {
        return Err(EncodeError::BufferTooSmall {
            needed: message_start,
            available,
        });
    }
    let message_end = available.min(message_start + ERROR_MESSAGE_BYTES_MAX);
    let mut sink = TruncatingSink {
        out: &mut out[message_start..message_end],
        len: 0,
        full: false,
    };
    // The sink never reports an error; it stops writing when full.
    let _ = core::fmt::write(&mut sink, format_args!("{message}"));
    let message_len = sink.len;
    let frame_bytes = message_start + message_len;
    let mut writer = Writer {
        out: &mut out[..message_start],
        position: 0,
    };
    write_header(&mut writer, FrameType::Error, frame_bytes);
    writer.u64(correlation);
    writer.u16(code.as_u16());
    // At most ERROR_MESSAGE_BYTES_MAX, which fits a u16 (checked in limits).
    writer.u16(message_len as u16);
    Ok(frame_bytes)
}

/// Writes formatted text into a fixed buffer, keeping the longest prefix that fits and
/// ends on a character boundary, so the message stays valid UTF-8.
struct TruncatingSink<'a> {
    out: &'a mut [u8],
    len: usize,
    full: bool,
}

impl core::fmt::Write for TruncatingSink<'_> {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        if self.full {
            return Ok(());
        }
        let room = self.out.len() - self.len;
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        self.out[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        // Once a piece is cut, later pieces must not follow it.
        self.full = take < text.len();
        Ok(())
    }
}

fn body_len(frame: &Frame<'_>) -> usize {
    const SEQ_BYTES: usize = 8;
    match frame {
        Frame::Hello(hello) => HELLO_FIXED_BYTES + hello.client_name.len(),
        Frame::Publish { event, .. } => PUBLISH_FIXED_BYTES + event.encoded_len(),
        Frame::PublishBatch { events, .. } => PUBLISH_BATCH_FIXED_BYTES + events.encoded_len(),
        Frame::Subscribe(subscribe) => {
            SUBSCRIBE_FIXED_BYTES + subscribe.name.len() + subscribe.patterns.encoded_len()
        }
        Frame::Confirm { .. } => SEQ_BYTES + SEQ_BYTES,
        Frame::Nak { .. } => SEQ_BYTES + 4,
        Frame::Working { .. } | Frame::Reject { .. } => SEQ_BYTES,
        Frame::Recovered | Frame::Status | Frame::Goodbye | Frame::RecoveryDone => 0,
        Frame::Ping { .. } | Frame::Pong { .. } => 8,
        Frame::HelloOk(_) => 2 + 8 + 4 + 4,
        Frame::Stored { .. } => 8 + SEQ_BYTES + SEQ_BYTES + 2,
        Frame::Error { message, .. } => ERROR_FIXED_BYTES + message.len(),
        Frame::Subscribed { .. } => 1 + 8,
        Frame::Deliver(deliver) => {
            DELIVER_FIXED_BYTES
                + deliver.origin.map_or(0, |_| DELIVER_ORIGIN_BYTES)
                + deliver.rule.map_or(0, |_| DELIVER_RULE_BYTES)
                + deliver.event.encoded_len()
        }
        Frame::StatusReply { json } | Frame::Admin { json } => json.len(),
    }
}

fn write_header(writer: &mut Writer<'_>, frame_type: FrameType, frame_bytes: usize) {
    // frame_bytes <= FRAME_BYTES_MAX, which fits a u32 (checked in limits).
    writer.u32((frame_bytes - FRAME_LENGTH_BYTES) as u32);
    writer.u8(frame_type.as_u8());
    writer.u8(0);
}

fn write_body(frame: &Frame<'_>, writer: &mut Writer<'_>) {
    match frame {
        Frame::Hello(hello) => {
            writer.bytes(&HELLO_MAGIC);
            writer.u16(hello.version_min);
            writer.u16(hello.version_max);
            writer.u8(hello.role as u8);
            writer.u8(hello.client_name.len() as u8);
            writer.bytes(hello.client_name.as_bytes());
        }
        Frame::Publish { correlation, event } => {
            writer.u64(*correlation);
            write_event(writer, event);
        }
        Frame::PublishBatch {
            correlation,
            events,
        } => {
            writer.u64(*correlation);
            writer.u16(events.len() as u16);
            match events.wire_bytes() {
                Some(bytes) => writer.bytes(bytes),
                None => events.iter().for_each(|event| write_event(writer, &event)),
            }
        }
        Frame::Subscribe(subscribe) => write_subscribe(writer, subscribe),
        Frame::Confirm {
            first_seq,
            last_seq,
        } => {
            writer.u64(first_seq.0);
            writer.u64(last_seq.0);
        }
        Frame::Nak { seq, delay_ms } => {
            writer.u64(seq.0);
            writer.u32(*delay_ms);
        }
        Frame::Working { seq } | Frame::Reject { seq } => writer.u64(seq.0),
        Frame::Recovered | Frame::Status | Frame::Goodbye | Frame::RecoveryDone => {}
        Frame::Ping { token } | Frame::Pong { token } => writer.u64(*token),
        Frame::HelloOk(hello_ok) => {
            writer.u16(hello_ok.version);
            writer.u64(hello_ok.node_id);
            writer.u32(hello_ok.frame_bytes_max);
            writer.u32(hello_ok.event_payload_bytes_max);
        }
        Frame::Stored {
            correlation,
            first_seq,
            last_seq,
            count,
        } => {
            writer.u64(*correlation);
            writer.u64(first_seq.0);
            writer.u64(last_seq.0);
            writer.u16(*count);
        }
        Frame::Error {
            correlation,
            code,
            message,
        } => {
            writer.u64(*correlation);
            writer.u16(code.as_u16());
            writer.u16(message.len() as u16);
            writer.bytes(message.as_bytes());
        }
        Frame::Subscribed {
            mode,
            pending_events,
        } => {
            writer.u8(*mode as u8);
            writer.u64(*pending_events);
        }
        Frame::Deliver(deliver) => {
            writer.u64(deliver.seq.0);
            writer.u64(deliver.timestamp_ns);
            let mut flags = 0;
            if deliver.redelivered {
                flags |= DELIVER_FLAG_REDELIVERED;
            }
            if deliver.origin.is_some() {
                flags |= DELIVER_FLAG_ORIGIN;
            }
            if deliver.rule.is_some() {
                flags |= DELIVER_FLAG_RULE;
            }
            writer.u16(flags);
            writer.u16(deliver.delivery_count);
            if let Some(origin) = deliver.origin {
                writer.u64(origin.node_id);
                writer.u64(origin.seq);
                writer.u64(origin.timestamp_ns);
            }
            if let Some(rule) = deliver.rule {
                writer.u32(rule.id);
                writer.u32(rule.version);
            }
            write_event(writer, &deliver.event);
        }
        Frame::StatusReply { json } | Frame::Admin { json } => writer.bytes(json.as_bytes()),
    }
}

fn write_subscribe(writer: &mut Writer<'_>, subscribe: &Subscribe<'_>) {
    let flag = |on: bool, bit: u32| if on { bit } else { 0 };
    writer.u32(
        flag(
            subscribe.automatic_recovery,
            SUBSCRIBE_FLAG_AUTOMATIC_RECOVERY,
        ) | flag(subscribe.group, SUBSCRIBE_FLAG_GROUP),
    );
    writer.u32(subscribe.window_events);
    writer.u32(subscribe.ack_deadline_ms);
    writer.u16(subscribe.max_deliveries);
    writer.u8(subscribe.min_severity.as_u8());
    writer.u8(subscribe.name.len() as u8);
    writer.u8(subscribe.patterns.len() as u8);
    writer.bytes(subscribe.name.as_bytes());
    match subscribe.patterns.wire_bytes() {
        Some(bytes) => writer.bytes(bytes),
        None => {
            for pattern in subscribe.patterns.iter() {
                writer.u8(pattern.as_bytes().len() as u8);
                writer.bytes(pattern.as_bytes());
            }
        }
    }
}

/// Writes one event. Its lengths were validated against limits that fit the `u8` and
/// `u32` length fields (checked in limits), so the casts cannot truncate.
fn write_event(writer: &mut Writer<'_>, event: &Event<'_>) {
    writer.u8(event.severity.as_u8());
    writer.u8(event.topic.as_bytes().len() as u8);
    writer.u8(event.source.len() as u8);
    writer.u8(event.key.len() as u8);
    writer.u16(event.flags);
    writer.u32(event.payload.len() as u32);
    writer.bytes(event.topic.as_bytes());
    writer.bytes(event.source.as_bytes());
    writer.bytes(event.key);
    writer.bytes(event.payload);
}

/// A cursor over an output slice already checked to be exactly the frame's size; a
/// write past its end is a bug in `body_len`, and panics.
struct Writer<'a> {
    out: &'a mut [u8],
    position: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, bytes: &[u8]) {
        let end = self.position + bytes.len();
        self.out[self.position..end].copy_from_slice(bytes);
        self.position = end;
    }

    fn u8(&mut self, value: u8) {
        self.bytes(&[value]);
    }

    fn u16(&mut self, value: u16) {
        self.bytes(&value.to_le_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.bytes(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }
}
