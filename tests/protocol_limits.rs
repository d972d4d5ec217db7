//! Every limit is enforced, on both sides: the encoder refuses to write past it and the
//! decoder refuses to read past it, with the error code PROTOCOL.md names.

mod protocol_support;

use herald::protocol::*;
use protocol_support::*;

/// A Publish body with the given event fields, lengths written as given.
fn publish_body(
    severity: u8,
    topic: &[u8],
    key: &[u8],
    payload_len: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = 7u64.to_le_bytes().to_vec();
    body.extend([severity, topic.len() as u8, 0, key.len() as u8]);
    body.extend(0u16.to_le_bytes());
    body.extend(payload_len.to_le_bytes());
    body.extend(topic);
    body.extend(key);
    body.extend(payload);
    body
}

fn decode_error(bytes: &[u8]) -> DecodeError {
    decode(bytes).expect_err("frame decodes")
}

#[test]
fn a_frame_over_the_size_limit_is_refused_from_its_length_field_alone() {
    let too_long = (FRAME_BYTES_MAX - FRAME_LENGTH_BYTES + 1) as u32;
    let error = decode_error(&too_long.to_le_bytes());
    assert_eq!(
        error,
        DecodeError::FrameTooLarge {
            frame_bytes: FRAME_BYTES_MAX as u64 + 1
        }
    );
    assert_eq!(error.code(), ErrorCode::TooLarge);
    assert_eq!(
        decode_error(&u32::MAX.to_le_bytes()).code(),
        ErrorCode::TooLarge
    );

    let at_limit = (FRAME_BYTES_MAX - FRAME_LENGTH_BYTES) as u32;
    let mut header = at_limit.to_le_bytes().to_vec();
    header.extend([FrameType::StatusReply.as_u8(), 0]);
    assert_eq!(
        decode_header(&header),
        Ok(Some(FrameHeader {
            frame_type: FrameType::StatusReply,
            frame_bytes: FRAME_BYTES_MAX
        }))
    );
}

#[test]
fn a_status_reply_filling_the_largest_frame_round_trips() {
    let json = "x".repeat(STATUS_JSON_BYTES_MAX);
    let frame = Frame::StatusReply { json: &json };
    let bytes = encoded(&frame);
    assert_eq!(bytes.len(), FRAME_BYTES_MAX);
    assert_eq!(decode(&bytes).unwrap().unwrap().0, frame);
}

#[test]
fn encoding_a_frame_over_the_size_limit_is_refused() {
    let events = [maximal_event(), maximal_event()];
    let frame = Frame::PublishBatch {
        correlation: 1,
        events: EventBatch::from_events(&events),
    };
    let mut out = vec![0u8; 2 * FRAME_BYTES_MAX];
    assert!(matches!(
        encode(&frame, &mut out),
        Err(EncodeError::FrameTooLarge { frame_bytes }) if frame_bytes > FRAME_BYTES_MAX
    ));
}

#[test]
fn a_topic_of_256_bytes_is_refused() {
    let topic = vec![b'a'; TOPIC_BYTES_MAX + 1];
    assert_eq!(
        Topic::validate(&topic),
        Err(TopicError::TooLong { bytes: 256 })
    );
    assert!(Topic::validate(&topic[..TOPIC_BYTES_MAX]).is_ok());
}

#[test]
fn severity_8_is_refused() {
    assert_eq!(Severity::from_u8(8), None);
    let error = decode_error(&raw_frame(0x02, &publish_body(8, b"a", b"", 0, b"")));
    assert_eq!(
        error,
        DecodeError::Field(FieldError::InvalidValue {
            field: "event.severity",
            value: 8
        })
    );
    assert_eq!(error.code(), ErrorCode::Invalid);
    for severity in 0..=SEVERITY_MAX {
        assert!(decode(&raw_frame(0x02, &publish_body(severity, b"a", b"", 0, b""))).is_ok());
    }
}

#[test]
fn a_topic_with_an_empty_segment_is_refused_on_the_wire() {
    let error = decode_error(&raw_frame(
        0x02,
        &publish_body(3, b"fs..error", b"", 0, b""),
    ));
    assert_eq!(
        error,
        DecodeError::Field(FieldError::Topic(TopicError::EmptySegment { offset: 3 }))
    );
    assert_eq!(error.code(), ErrorCode::Invalid);
}

#[test]
fn a_full_wildcard_before_the_last_segment_is_refused() {
    assert_eq!(
        Pattern::parse(b"a.>.b"),
        Err(PatternError::FullWildcardNotLast { offset: 2 })
    );
    let mut body = vec![];
    body.extend(0u32.to_le_bytes()); // flags
    body.extend(1u32.to_le_bytes()); // window_events
    body.extend(0u32.to_le_bytes()); // ack_deadline_ms
    body.extend(0u16.to_le_bytes()); // max_deliveries
    body.extend([7, 0, 1]); // min_severity, name_len, pattern_count
    body.extend([5]);
    body.extend(b"a.>.b");
    let error = decode_error(&raw_frame(0x04, &body));
    assert_eq!(
        error,
        DecodeError::Field(FieldError::Pattern(PatternError::FullWildcardNotLast {
            offset: 2
        }))
    );
    assert_eq!(error.code(), ErrorCode::Invalid);
}

#[test]
fn a_payload_over_64_kib_is_refused_as_too_large() {
    let payload_len = EVENT_PAYLOAD_BYTES_MAX as u32 + 1;
    let payload = vec![0u8; payload_len as usize];
    let error = decode_error(&raw_frame(
        0x02,
        &publish_body(3, b"a", b"", payload_len, &payload),
    ));
    assert_eq!(error.code(), ErrorCode::TooLarge);

    let event = Event {
        payload: &payload,
        ..small_event()
    };
    let frame = Frame::Publish {
        correlation: 1,
        event,
    };
    assert_eq!(
        encoded_len(&frame),
        Err(EncodeError::Field(FieldError::TooLong {
            field: "event.payload",
            bytes: payload.len(),
            max: EVENT_PAYLOAD_BYTES_MAX
        }))
    );
}

#[test]
fn a_key_over_64_bytes_is_refused_as_too_large() {
    let key = [b'k'; KEY_BYTES_MAX + 1];
    let error = decode_error(&raw_frame(0x02, &publish_body(3, b"a", &key, 0, b"")));
    assert_eq!(error.code(), ErrorCode::TooLarge);
    let frame = Frame::Publish {
        correlation: 1,
        event: Event {
            key: &key,
            ..small_event()
        },
    };
    assert!(matches!(
        encoded_len(&frame),
        Err(EncodeError::Field(FieldError::TooLong {
            field: "event.key",
            ..
        }))
    ));
}

#[test]
fn a_batch_of_zero_or_too_many_events_is_refused() {
    for count in [0usize, BATCH_EVENTS_MAX + 1] {
        let events = vec![small_event(); count];
        let frame = Frame::PublishBatch {
            correlation: 1,
            events: EventBatch::from_events(&events),
        };
        assert!(encoded_len(&frame).is_err(), "count {count}");
        let mut body = 1u64.to_le_bytes().to_vec();
        body.extend((count as u16).to_le_bytes());
        for _ in 0..count {
            body.extend(&publish_body(3, b"a", b"", 0, b"")[8..]);
        }
        assert_eq!(
            decode_error(&raw_frame(0x03, &body)).code(),
            ErrorCode::Invalid
        );
    }
    let events = vec![small_event(); BATCH_EVENTS_MAX];
    let frame = Frame::PublishBatch {
        correlation: 1,
        events: EventBatch::from_events(&events),
    };
    assert_eq!(decode(&encoded(&frame)).unwrap().unwrap().0, frame);
}

#[test]
fn a_batch_whose_count_disagrees_with_its_events_is_refused() {
    let mut body = 1u64.to_le_bytes().to_vec();
    body.extend(2u16.to_le_bytes());
    body.extend(&publish_body(3, b"a", b"", 0, b"")[8..]);
    assert_eq!(
        decode_error(&raw_frame(0x03, &body)),
        DecodeError::Truncated {
            field: "event.severity"
        }
    );
    body[8] = 0; // count 0 is refused outright
    assert_eq!(
        decode_error(&raw_frame(0x03, &body)).code(),
        ErrorCode::Invalid
    );
}

#[test]
fn subscription_limits_are_refused() {
    let patterns = vec![pattern(">"); SUBSCRIPTION_PATTERNS_MAX + 1];
    let base = Subscribe {
        name: "",
        min_severity: Severity::Debug,
        window_events: 1,
        automatic_recovery: false,
        group: false,
        ack_deadline_ms: 0,
        max_deliveries: 0,
        patterns: Patterns::from_patterns(&patterns[..1]),
    };
    let cases = [
        Subscribe {
            patterns: Patterns::from_patterns(&patterns),
            ..base
        },
        Subscribe {
            patterns: Patterns::from_patterns(&[]),
            ..base
        },
        Subscribe {
            window_events: 0,
            ..base
        },
        Subscribe {
            window_events: WINDOW_EVENTS_MAX + 1,
            ..base
        },
        Subscribe {
            ack_deadline_ms: ACK_DEADLINE_MS_MAX + 1,
            ..base
        },
        Subscribe {
            name: "has space",
            ..base
        },
        Subscribe {
            name: &"n".repeat(SUBSCRIPTION_NAME_BYTES_MAX + 1),
            ..base
        },
    ];
    for subscribe in cases {
        assert!(
            encoded_len(&Frame::Subscribe(subscribe)).is_err(),
            "{subscribe:?}"
        );
    }
    // Unknown subscribe flags are refused on the wire.
    let mut bytes = encoded(&Frame::Subscribe(base));
    bytes[FRAME_HEADER_BYTES] = 0b100; // bit 2: bits 0 and 1 are recovery and group
    assert_eq!(decode_error(&bytes).code(), ErrorCode::Invalid);
    // So is a deadline beyond the limit, even from a client that skips validation.
    let mut bytes = encoded(&Frame::Subscribe(base));
    bytes[FRAME_HEADER_BYTES + 8..FRAME_HEADER_BYTES + 12]
        .copy_from_slice(&(ACK_DEADLINE_MS_MAX + 1).to_le_bytes());
    assert_eq!(decode_error(&bytes).code(), ErrorCode::Invalid);
}

/// A Subscribe body (no name) with `patterns` as given, each behind its length byte.
fn subscribe_body(patterns: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![];
    body.extend(0u32.to_le_bytes()); // flags
    body.extend(1u32.to_le_bytes()); // window_events
    body.extend(0u32.to_le_bytes()); // ack_deadline_ms
    body.extend(0u16.to_le_bytes()); // max_deliveries
    body.extend([7, 0, patterns.len() as u8]); // min_severity, name_len, pattern_count
    for pattern in patterns {
        body.push(pattern.len() as u8);
        body.extend_from_slice(pattern);
    }
    body
}

#[test]
fn a_subscriptions_patterns_beyond_their_total_limit_are_refused_by_both_sides() {
    // The longest pattern and one more filling the list exactly.
    let long = vec![b'a'; PATTERN_BYTES_MAX];
    let fill = vec![b'b'; SUBSCRIPTION_PATTERN_LIST_BYTES_MAX - (1 + PATTERN_BYTES_MAX) - 1];
    let over = vec![b'b'; fill.len() + 1];
    let at_limit = raw_frame(0x04, &subscribe_body(&[&long, &fill]));
    let Ok(Some((Frame::Subscribe(subscribe), _))) = decode(&at_limit) else {
        panic!(
            "a list of exactly the limit decodes: {:?}",
            decode(&at_limit)
        );
    };
    assert_eq!(
        subscribe.patterns.encoded_len(),
        SUBSCRIPTION_PATTERN_LIST_BYTES_MAX
    );
    assert_eq!(encoded(&Frame::Subscribe(subscribe)), at_limit);

    let error = decode_error(&raw_frame(0x04, &subscribe_body(&[&long, &over])));
    let too_long = FieldError::TooLong {
        field: "subscribe.patterns",
        bytes: SUBSCRIPTION_PATTERN_LIST_BYTES_MAX + 1,
        max: SUBSCRIPTION_PATTERN_LIST_BYTES_MAX,
    };
    assert_eq!(error, DecodeError::Field(too_long));
    assert_eq!(error.code(), ErrorCode::TooLarge);
    assert_eq!(
        error.to_string(),
        format!(
            "subscribe.patterns is {} bytes; the limit is {SUBSCRIPTION_PATTERN_LIST_BYTES_MAX}",
            SUBSCRIPTION_PATTERN_LIST_BYTES_MAX + 1
        )
    );
    let patterns = [
        Pattern::parse(&long).unwrap(),
        Pattern::parse(&over).unwrap(),
    ];
    let subscribe = Subscribe {
        patterns: Patterns::from_patterns(&patterns),
        ..subscribe
    };
    assert_eq!(
        encoded_len(&Frame::Subscribe(subscribe)),
        Err(EncodeError::Field(too_long))
    );
}

#[test]
fn every_undefined_frame_type_byte_is_refused_as_invalid() {
    for byte in 0..=u8::MAX {
        let bytes = raw_frame(byte, &[]);
        match FrameType::from_u8(byte) {
            Some(frame_type) => assert_eq!(frame_type.as_u8(), byte),
            None => {
                let error = decode_error(&bytes);
                assert_eq!(error, DecodeError::UnknownFrameType { frame_type: byte });
                assert_eq!(error.code(), ErrorCode::Invalid);
                // Known as soon as the header is in, before any body.
                assert_eq!(decode_header(&bytes[..FRAME_HEADER_BYTES]), Err(error));
            }
        }
    }
}

#[test]
fn a_non_zero_reserved_byte_is_refused() {
    let mut bytes = encoded(&Frame::Goodbye);
    bytes[5] = 1;
    assert_eq!(
        decode_error(&bytes),
        DecodeError::ReservedNotZero { value: 1 }
    );
}

#[test]
fn a_length_field_below_two_is_refused() {
    for length in 0u32..2 {
        let error = decode_error(&length.to_le_bytes());
        assert_eq!(error, DecodeError::LengthTooShort { length });
        assert_eq!(error.code(), ErrorCode::Invalid);
    }
}

#[test]
fn out_of_range_values_are_refused() {
    let invalid = [
        Frame::Confirm {
            first_seq: Seq(5),
            last_seq: Seq(4),
        },
        Frame::Nak {
            seq: Seq(1),
            delay_ms: NAK_DELAY_MS_MAX + 1,
        },
        // Three events cannot fit in two sequence numbers.
        Frame::Stored {
            correlation: 1,
            first_seq: Seq(1),
            last_seq: Seq(2),
            count: 3,
        },
        Frame::Stored {
            correlation: 1,
            first_seq: Seq(1),
            last_seq: Seq(1),
            count: 0,
        },
        Frame::Hello(Hello {
            version_min: 0,
            version_max: 1,
            role: Role::Producer,
            client_name: "",
        }),
        Frame::Hello(Hello {
            version_min: 2,
            version_max: 1,
            role: Role::Producer,
            client_name: "",
        }),
        Frame::HelloOk(HelloOk {
            version: 0,
            node_id: 0,
            frame_bytes_max: 0,
            event_payload_bytes_max: 0,
        }),
        Frame::Deliver(Deliver {
            seq: Seq(1),
            timestamp_ns: 0,
            redelivered: false,
            delivery_count: 0,
            origin: None,
            rule: None,
            event: small_event(),
        }),
    ];
    for frame in invalid {
        assert!(
            matches!(encoded_len(&frame), Err(EncodeError::Field(_))),
            "{frame:?}"
        );
    }
}

#[test]
fn a_hello_without_the_magic_is_refused() {
    let mut bytes = encoded(&one_of_each()[0]);
    bytes[FRAME_HEADER_BYTES] = b'X';
    assert_eq!(
        decode_error(&bytes),
        DecodeError::BadMagic { found: *b"XRLD" }
    );
}

#[test]
fn unknown_roles_modes_codes_and_flags_are_refused() {
    let hello = encoded(&one_of_each()[0]);
    let role_at = FRAME_HEADER_BYTES + 8;
    for role in [0u8, 5, 255] {
        let mut bytes = hello.clone();
        bytes[role_at] = role;
        assert_eq!(
            decode_error(&bytes).code(),
            ErrorCode::Invalid,
            "role {role}"
        );
    }
    let mut subscribed = encoded(&Frame::Subscribed {
        mode: SubscriptionMode::Normal,
        pending_events: 0,
    });
    subscribed[FRAME_HEADER_BYTES] = 2;
    assert_eq!(decode_error(&subscribed).code(), ErrorCode::Invalid);

    let mut error = encoded(&Frame::Error {
        correlation: 0,
        code: ErrorCode::Invalid,
        message: "",
    });
    for code in [0u16, 14, u16::MAX] {
        error[FRAME_HEADER_BYTES + 8..FRAME_HEADER_BYTES + 10].copy_from_slice(&code.to_le_bytes());
        assert_eq!(decode(&error).unwrap_err().code(), ErrorCode::Invalid);
    }

    let mut deliver = encoded(&one_of_each()[17]);
    deliver[FRAME_HEADER_BYTES + 16] = 0b11; // delivery flags: bit 1 is reserved
    assert_eq!(decode_error(&deliver).code(), ErrorCode::Invalid);
}

#[test]
fn text_fields_must_be_utf8() {
    let hello = encoded(&one_of_each()[0]);
    let mut bytes = hello.clone();
    let last = bytes.len() - 1;
    bytes[last] = 0xFF;
    assert_eq!(
        decode_error(&bytes),
        DecodeError::Field(FieldError::NotUtf8 {
            field: "hello.client_name"
        })
    );
}

#[test]
fn error_codes_round_trip_and_only_full_and_forbidden_keep_the_connection() {
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(code));
        assert_eq!(
            code.closes_connection(),
            !matches!(code, ErrorCode::Full | ErrorCode::Forbidden)
        );
    }
    assert_eq!(ErrorCode::from_u16(0), None);
    assert_eq!(ErrorCode::from_u16(ErrorCode::ALL.len() as u16 + 1), None);
}
