//! Every frame survives encode → decode unchanged, and the encoding is canonical.

mod protocol_support;

use herald::protocol::*;
use protocol_support::*;

#[test]
fn every_frame_type_has_a_sample() {
    let types: Vec<FrameType> = one_of_each().iter().map(Frame::frame_type).collect();
    let expected: Vec<FrameType> = FrameType::CLIENT
        .iter()
        .chain(FrameType::SERVER.iter())
        .copied()
        .collect();
    assert_eq!(types, expected);
}

#[test]
fn every_frame_round_trips_through_encode_and_decode() {
    for frame in all_samples() {
        let bytes = encoded(&frame);
        assert_eq!(encoded_len(&frame), Ok(bytes.len()), "{frame:?}");
        let (decoded, consumed) = decode(&bytes)
            .unwrap_or_else(|error| panic!("{frame:?} does not decode: {error}"))
            .expect("a whole frame is not incomplete");
        assert_eq!(consumed, bytes.len());
        assert_eq!(decoded, frame);
        // Re-encoding the decoded (borrowed, lazily iterated) form gives the same bytes.
        assert_eq!(encoded(&decoded), bytes, "{frame:?}");
    }
}

#[test]
fn the_header_announces_the_type_and_whole_size() {
    for frame in all_samples() {
        let bytes = encoded(&frame);
        let header = decode_header(&bytes).unwrap().unwrap();
        assert_eq!(header.frame_type, frame.frame_type());
        assert_eq!(header.frame_bytes, bytes.len());
        assert_eq!(bytes[5], 0, "reserved byte");
    }
}

#[test]
fn decoded_batches_yield_the_encoded_events_in_order() {
    let frames = one_of_each();
    let Frame::PublishBatch { events, .. } = frames[2] else {
        panic!("sample order changed")
    };
    let bytes = encoded(&frames[2]);
    let (
        Frame::PublishBatch {
            events: decoded, ..
        },
        _,
    ) = decode(&bytes).unwrap().unwrap()
    else {
        panic!("decoded to another type")
    };
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded.iter().len(), 3);
    let original: Vec<Event<'_>> = events.iter().collect();
    let lazily: Vec<Event<'_>> = decoded.iter().collect();
    assert_eq!(lazily, original);
}

#[test]
fn decoded_patterns_match_like_the_encoded_ones() {
    let frames = one_of_each();
    let bytes = encoded(&frames[3]);
    let (Frame::Subscribe(subscribe), _) = decode(&bytes).unwrap().unwrap() else {
        panic!("decoded to another type")
    };
    assert_eq!(subscribe.patterns.len(), 2);
    assert!(subscribe.patterns.any_matches(b"fs.vol7.error"));
    assert!(subscribe.patterns.any_matches(b"net.eth0"));
    assert!(!subscribe.patterns.any_matches(b"fs.vol7.warning"));
}

#[test]
fn frames_decode_back_to_back_from_one_stream() {
    let samples = all_samples();
    let stream: Vec<u8> = samples.iter().flat_map(encoded).collect();
    let mut offset = 0;
    for frame in &samples {
        let (decoded, consumed) = decode(&stream[offset..]).unwrap().unwrap();
        assert_eq!(&decoded, frame);
        offset += consumed;
    }
    assert_eq!(offset, stream.len());
    assert_eq!(decode(&stream[offset..]), Ok(None));
}

#[test]
fn encode_to_vec_appends_within_capacity_without_reallocating() {
    let mut out = Vec::with_capacity(FRAME_BYTES_MAX);
    let pointer = out.as_ptr();
    let mut expected = Vec::new();
    for frame in one_of_each() {
        let written = encode_to_vec(&frame, &mut out).unwrap();
        assert_eq!(written, encoded_len(&frame).unwrap());
        expected.extend(encoded(&frame));
    }
    assert_eq!(out, expected);
    assert_eq!(out.as_ptr(), pointer);
    assert_eq!(out.capacity(), FRAME_BYTES_MAX);

    let mut full = Vec::with_capacity(8);
    assert_eq!(
        encode_to_vec(&Frame::Ping { token: 1 }, &mut full),
        Err(EncodeError::BufferTooSmall {
            needed: 14,
            available: 8
        })
    );
    assert!(full.is_empty());
}

#[test]
fn encoding_into_a_short_buffer_is_refused() {
    let frame = Frame::Ping { token: 1 };
    let mut out = [0u8; 13];
    assert_eq!(
        encode(&frame, &mut out),
        Err(EncodeError::BufferTooSmall {
            needed: 14,
            available: 13
        })
    );
}

#[test]
fn encode_error_formats_the_message_into_the_frame() {
    let mut out = [0u8; 256];
    let written = encode_error(
        &mut out,
        5,
        ErrorCode::NotPermitted,
        &format_args!(
            "{} frame refused: {}",
            FrameType::Publish,
            ErrorCode::NotPermitted
        ),
    )
    .unwrap();
    let (frame, consumed) = decode(&out[..written]).unwrap().unwrap();
    assert_eq!(consumed, written);
    assert_eq!(
        frame,
        Frame::Error {
            correlation: 5,
            code: ErrorCode::NotPermitted,
            message: "Publish frame refused: not_permitted",
        }
    );
}

#[test]
fn encode_error_cuts_long_messages_on_a_character_boundary() {
    let long = "é".repeat(ERROR_MESSAGE_BYTES_MAX); // two bytes each
    let mut out = vec![0u8; FRAME_BYTES_MAX];
    let written = encode_error(&mut out, 0, ErrorCode::Internal, &long).unwrap();
    let Frame::Error { message, .. } = decode(&out[..written]).unwrap().unwrap().0 else {
        panic!("not an error frame")
    };
    assert_eq!(message.len(), ERROR_MESSAGE_BYTES_MAX);

    // A buffer ending mid-character: the message stops before that character, and a
    // later, shorter piece is not appended after the cut.
    let mut small = [0u8; FRAME_HEADER_BYTES + 12 + 5];
    let written = encode_error(
        &mut small,
        0,
        ErrorCode::Internal,
        &format_args!("ééé{}", "x"),
    )
    .unwrap();
    let Frame::Error { message, .. } = decode(&small[..written]).unwrap().unwrap().0 else {
        panic!("not an error frame")
    };
    assert_eq!(message, "éé");
}
