//! The client library against a scripted fake daemon.

mod client_support;

use client_support::*;
use herald::client::{Client, ClientError, Incoming, Stored};
use herald::protocol::*;
use std::time::{Duration, Instant};

fn connect(server: &FakeServer<impl Send + 'static>, role: Role) -> Client {
    Client::connect(server.socket(), role, "fsd").expect("connect to the fake daemon")
}

#[test]
fn publish_returns_the_sequence_the_daemon_stored() {
    let server = FakeServer::start(|peer| {
        let name = peer.accept_hello(Role::Producer);
        let (correlation, event) = peer.expect_publish();
        peer.stored(correlation, 42);
        (name, event, peer.recv_until_end())
    });
    let mut client = connect(&server, Role::Producer);
    assert_eq!(client.hello_ok().node_id, 7);
    let stored = client
        .publish(&event("fs.vol1.error", b"disk full"))
        .unwrap();
    assert_eq!(
        stored,
        Stored {
            correlation: 1,
            first_seq: Seq(42),
            last_seq: Seq(42),
            count: 1
        }
    );
    client.goodbye().unwrap();
    let (name, published, rest) = server.finish();
    assert_eq!(name, "fsd");
    assert_eq!(published.topic, "fs.vol1.error");
    assert_eq!(published.severity, Severity::Error);
    assert_eq!(published.payload, b"disk full");
    assert_eq!(rest, ["Goodbye"]);
}

#[test]
fn pipelined_publishes_get_their_replies_in_order() {
    const EVENTS: u64 = 300;
    const OUTSTANDING_MAX: u64 = 64;
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        let mut payloads = Vec::new();
        for _ in 0..EVENTS {
            let (correlation, event) = peer.expect_publish();
            // Sequence numbers are not dense: leave gaps.
            peer.stored(correlation, 1000 + 3 * correlation);
            payloads.push(event.payload);
        }
        payloads
    });
    let mut client = connect(&server, Role::Producer);
    let mut sent = Vec::new();
    let mut replies = Vec::new();
    for index in 0..EVENTS {
        let payload = index.to_string();
        sent.push(
            client
                .send_publish(&event("bench.load", payload.as_bytes()))
                .unwrap(),
        );
        if client.outstanding() == OUTSTANDING_MAX {
            replies.push(client.recv_stored().unwrap());
        }
    }
    while client.outstanding() > 0 {
        replies.push(client.recv_stored().unwrap());
    }
    let payloads = server.finish();
    let expected: Vec<Vec<u8>> = (0..EVENTS).map(|i| i.to_string().into_bytes()).collect();
    assert_eq!(payloads, expected, "the daemon got the events in order");
    let correlations: Vec<u64> = replies.iter().map(|stored| stored.correlation).collect();
    assert_eq!(
        correlations, sent,
        "each reply answers its own publish, in order"
    );
    assert!(replies
        .iter()
        .all(|stored| stored.first_seq == Seq(1000 + 3 * stored.correlation)));
}

#[test]
fn a_full_log_is_refused_with_code_full_and_the_connection_stays_usable() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        let (correlation, _) = peer.expect_publish();
        peer.send(&Frame::Error {
            correlation,
            code: ErrorCode::Full,
            message: "the log has no room for an info event",
        });
        let (correlation, _) = peer.expect_publish();
        peer.stored(correlation, 9);
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Producer);
    let refused = client.publish(&event("fs.a", b"1")).unwrap_err();
    match &refused {
        ClientError::Refused {
            code: ErrorCode::Full,
            message,
            correlation: 1,
        } => assert_eq!(message, "the log has no room for an info event"),
        other => panic!("expected Refused(full), got {other:?}"),
    }
    assert_eq!(client.outstanding(), 0, "the refusal answered the publish");
    let stored = client.publish(&event("fs.a", b"2")).unwrap();
    assert_eq!((stored.correlation, stored.first_seq), (2, Seq(9)));
    client.goodbye().unwrap();
    assert_eq!(server.finish(), ["Goodbye"]);
}

#[test]
fn a_refusal_that_closes_the_connection_leaves_the_client_closed() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        peer.expect_publish();
        peer.send(&Frame::Error {
            correlation: 0,
            code: ErrorCode::ShuttingDown,
            message: "herald is shutting down",
        });
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Producer);
    let refused = client.publish(&event("fs.a", b"1")).unwrap_err();
    assert!(matches!(
        refused,
        ClientError::Refused {
            code: ErrorCode::ShuttingDown,
            ..
        }
    ));
    let again = client.publish(&event("fs.a", b"2")).unwrap_err();
    assert!(matches!(again, ClientError::Closed), "{again:?}");
    assert!(
        server.finish().is_empty(),
        "nothing is sent after the closing refusal"
    );
}

#[test]
fn the_daemons_closing_error_is_reported_when_a_later_write_finds_it_gone() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        peer.send(&Frame::Error {
            correlation: 0,
            code: ErrorCode::ShuttingDown,
            message: "herald is shutting down",
        });
    });
    let mut client = connect(&server, Role::Producer);
    // The daemon has closed its end before the client writes again.
    server.finish();
    let error = client.publish(&event("fs.a", b"1")).unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Refused {
                code: ErrorCode::ShuttingDown,
                ..
            }
        ),
        "{error:?}"
    );
}

/// Bytes of a valid frame, then patched by the caller.
fn frame_bytes(frame: &Frame<'_>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAME_BYTES_MAX);
    encode_to_vec(frame, &mut bytes).unwrap();
    bytes
}

/// A reply the daemon should never send, and the error it must give.
struct MalformedCase {
    name: &'static str,
    reply: Vec<u8>,
    is_expected: fn(&ClientError) -> bool,
    /// Text the error message contains.
    says: &'static str,
}

#[test]
fn malformed_or_out_of_turn_replies_give_an_error_naming_the_socket_never_a_panic() {
    let stored = frame_bytes(&Frame::Stored {
        correlation: 1,
        first_seq: Seq(5),
        last_seq: Seq(5),
        count: 1,
    });
    let mut count_zero = stored.clone();
    let count_at = count_zero.len() - 2;
    count_zero[count_at] = 0;
    let mut reserved_set = stored.clone();
    reserved_set[5] = 1;
    let mut unknown_type = stored.clone();
    unknown_type[4] = 0x99;
    let mut truncated = stored.clone();
    truncated[0] -= 3;
    truncated.truncate(truncated.len() - 3);
    let huge_length = u32::MAX.to_le_bytes().to_vec();
    let second_hello_ok = frame_bytes(&Frame::HelloOk(HelloOk {
        version: 1,
        node_id: 7,
        frame_bytes_max: FRAME_BYTES_MAX as u32,
        event_payload_bytes_max: EVENT_PAYLOAD_BYTES_MAX as u32,
    }));
    let client_frame = frame_bytes(&Frame::Goodbye);
    let wrong_correlation = frame_bytes(&Frame::Stored {
        correlation: 9,
        first_seq: Seq(5),
        last_seq: Seq(5),
        count: 1,
    });
    let cut_short = stored[..10].to_vec();

    let cases: Vec<MalformedCase> = vec![
        MalformedCase {
            name: "count 0",
            reply: count_zero,
            is_expected: |e| matches!(e, ClientError::Malformed { .. }),
            says: "stored.count",
        },
        MalformedCase {
            name: "reserved byte",
            reply: reserved_set,
            is_expected: |e| matches!(e, ClientError::Malformed { .. }),
            says: "reserved",
        },
        MalformedCase {
            name: "unknown type",
            reply: unknown_type,
            is_expected: |e| matches!(e, ClientError::Malformed { .. }),
            says: "0x99",
        },
        MalformedCase {
            name: "truncated body",
            reply: truncated,
            is_expected: |e| matches!(e, ClientError::Malformed { .. }),
            says: "stored.",
        },
        MalformedCase {
            name: "huge length",
            reply: huge_length,
            is_expected: |e| matches!(e, ClientError::Malformed { .. }),
            says: "exceeds the limit",
        },
        MalformedCase {
            name: "second HelloOk",
            reply: second_hello_ok,
            is_expected: |e| matches!(e, ClientError::UnexpectedFrame { .. }),
            says: "HelloOk",
        },
        MalformedCase {
            name: "client frame",
            reply: client_frame,
            is_expected: |e| matches!(e, ClientError::UnexpectedFrame { .. }),
            says: "Goodbye",
        },
        MalformedCase {
            name: "wrong correlation",
            reply: wrong_correlation,
            is_expected: |e| matches!(e, ClientError::CorrelationMismatch { .. }),
            says: "correlation 9",
        },
        MalformedCase {
            name: "closed mid-frame",
            reply: cut_short,
            is_expected: |e| matches!(e, ClientError::Disconnected { .. }),
            says: "closed the connection",
        },
    ];
    for MalformedCase {
        name,
        reply,
        is_expected,
        says,
    } in cases
    {
        let server = FakeServer::start(move |peer| {
            peer.accept_hello(Role::Producer);
            peer.expect_publish();
            peer.send_bytes(&reply);
            // Stop writing, so that a client waiting for more sees end of stream.
            peer.stream.shutdown(std::net::Shutdown::Write).unwrap();
            peer.recv_until_end()
        });
        let mut client = connect(&server, Role::Producer);
        let error = client.publish(&event("fs.a", b"1")).unwrap_err();
        let text = error.to_string();
        assert!(is_expected(&error), "{name}: {error:?}");
        assert!(text.contains(says), "{name}: {text}");
        assert!(
            text.contains(&server.socket().display().to_string()),
            "{name}: the error names the socket: {text}"
        );
        let again = client.publish(&event("fs.a", b"2")).unwrap_err();
        assert!(matches!(again, ClientError::Closed), "{name}: {again:?}");
        drop(client);
        assert!(server.finish().is_empty(), "{name}: nothing sent after");
    }
}

#[test]
fn subscribe_sends_the_filter_and_settle_frames_carry_the_right_ranges() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Subscriber);
        let subscribe = peer.accept_subscribe();
        peer.deliver(10, "fs.vol1.error", b"one");
        peer.deliver(12, "fs.vol2.error", b"two");
        peer.deliver(15, "fs.vol1.error", b"three");
        peer.deliver(16, "fs.vol1.error", b"four");
        (subscribe, peer.recv_until_end())
    });
    let mut client = connect(&server, Role::Subscriber);
    let subscribed = client
        .subscribe(
            "audit",
            &["fs.*.error", "net.>"],
            Severity::Warning,
            32,
            true,
        )
        .unwrap();
    assert_eq!(subscribed.mode, SubscriptionMode::Normal);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let delivery = client.next_delivery(None).unwrap().unwrap();
        seen.push((delivery.seq, delivery.event.payload.to_vec()));
    }
    assert_eq!(seen[0], (Seq(10), b"one".to_vec()));
    assert_eq!(seen[3], (Seq(16), b"four".to_vec()));
    client.confirm(Seq(10), Seq(12)).unwrap();
    client.nak(Seq(15), 250).unwrap();
    client.working(Seq(16)).unwrap();
    client.reject(Seq(16)).unwrap();
    client.recovered().unwrap();
    client.goodbye().unwrap();
    let (subscribe, frames) = server.finish();
    assert_eq!(subscribe.name, "audit");
    assert_eq!(subscribe.patterns, ["fs.*.error", "net.>"]);
    assert_eq!(subscribe.min_severity, Severity::Warning);
    assert_eq!(subscribe.window_events, 32);
    assert!(subscribe.automatic_recovery);
    assert_eq!(
        frames,
        [
            "Confirm { first_seq: Seq(10), last_seq: Seq(12) }",
            "Nak { seq: Seq(15), delay_ms: 250 }",
            "Working { seq: Seq(16) }",
            "Reject { seq: Seq(16) }",
            "Recovered",
            "Goodbye",
        ]
    );
}

#[test]
fn confirms_queued_before_the_client_is_dropped_still_reach_the_daemon() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Subscriber);
        peer.accept_subscribe();
        peer.deliver(3, "fs.a", b"x");
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Subscriber);
    client
        .subscribe("", &[">"], Severity::Debug, 1, false)
        .unwrap();
    let seq = client.next_delivery(None).unwrap().unwrap().seq;
    client.confirm(seq, seq).unwrap();
    drop(client);
    assert_eq!(
        server.finish(),
        ["Confirm { first_seq: Seq(3), last_seq: Seq(3) }"]
    );
}

#[test]
fn recovery_done_is_returned_in_order_by_next_incoming_and_noted_by_next_delivery() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Subscriber);
        peer.recv_some();
        peer.send(&Frame::Subscribed {
            mode: SubscriptionMode::Recovering,
            pending_events: 2,
        });
        peer.send(&Frame::Deliver(Deliver {
            redelivered: true,
            delivery_count: 2,
            origin: None,
            rule: None,
            ..delivery(4, "fs.a", b"replayed")
        }));
        peer.send(&Frame::RecoveryDone);
        peer.deliver(8, "fs.a", b"new");
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Subscriber);
    let subscribed = client
        .subscribe("audit", &[">"], Severity::Debug, 8, false)
        .unwrap();
    assert_eq!(subscribed.mode, SubscriptionMode::Recovering);
    assert_eq!(subscribed.pending_events, 2);
    match client.next_incoming(None).unwrap().unwrap() {
        Incoming::Deliver(delivery) => {
            assert!(delivery.redelivered);
            assert_eq!((delivery.seq, delivery.delivery_count), (Seq(4), 2));
        }
        other => panic!("expected the replayed delivery, got {other:?}"),
    }
    assert!(!client.recovery_done());
    let delivery = client.next_delivery(None).unwrap().unwrap();
    assert_eq!(delivery.seq, Seq(8), "RecoveryDone was skipped");
    assert!(client.recovery_done());
    client.goodbye().unwrap();
    assert_eq!(server.finish(), ["Goodbye"]);
}

#[test]
fn next_delivery_returns_none_at_its_timeout_and_keeps_a_partial_frame() {
    const TIMEOUT: Duration = Duration::from_millis(50);
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Subscriber);
        peer.accept_subscribe();
        let bytes = frame_bytes(&deliver_frame(21, "fs.a", b"split in two"));
        let (first, second) = bytes.split_at(bytes.len() / 2);
        // The client sends Recovered to say it has timed out; only then comes more.
        assert_eq!(format!("{:?}", frame(&peer.recv_some())), "Recovered");
        peer.send_bytes(first);
        assert_eq!(format!("{:?}", frame(&peer.recv_some())), "Recovered");
        peer.send_bytes(second);
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Subscriber);
    client
        .subscribe("", &[">"], Severity::Debug, 4, false)
        .unwrap();
    let started = Instant::now();
    assert!(client.next_delivery(Some(TIMEOUT)).unwrap().is_none());
    assert!(started.elapsed() >= TIMEOUT, "it waited for the timeout");
    client.recovered().unwrap();
    client.flush().unwrap();
    // Half a frame arrives (or not yet): either way no delivery within the timeout.
    assert!(client.next_delivery(Some(TIMEOUT)).unwrap().is_none());
    client.recovered().unwrap();
    let delivery = client.next_delivery(None).unwrap().unwrap();
    assert_eq!(
        (delivery.seq, delivery.event.payload),
        (Seq(21), &b"split in two"[..])
    );
    client.goodbye().unwrap();
    assert_eq!(server.finish(), ["Goodbye"]);
}

#[test]
fn a_missing_socket_says_the_daemon_is_not_running_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("herald.sock");
    let error = Client::connect(&socket, Role::Producer, "fsd").unwrap_err();
    assert!(matches!(error, ClientError::NotRunning { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&socket.display().to_string()), "{text}");
    assert!(text.contains("not running"), "{text}");
    assert!(
        text.contains(&format!("herald serve --data-dir {}", dir.path().display())),
        "{text}"
    );
}

#[test]
fn a_socket_left_by_a_stopped_daemon_says_the_daemon_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("herald.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "the socket file is left behind");
    let error = Client::connect(&socket, Role::Producer, "fsd").unwrap_err();
    assert!(matches!(error, ClientError::NotRunning { .. }), "{error:?}");
}

#[test]
fn frames_herald_would_refuse_are_refused_before_sending() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Subscriber);
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Subscriber);
    let cases = [
        (
            client.publish(&event("fs.a", b"1")).map(|_| ()),
            FrameType::Publish,
            ErrorCode::NotPermitted,
        ),
        (
            client.confirm(Seq(1), Seq(1)),
            FrameType::Confirm,
            ErrorCode::Unexpected,
        ),
        (
            client.status().map(|_| ()),
            FrameType::Status,
            ErrorCode::NotPermitted,
        ),
    ];
    for (result, frame_type, code) in cases {
        match result {
            Err(ClientError::NotAllowed {
                frame_type: refused,
                code: refused_code,
                role: "subscriber",
                ..
            }) => assert_eq!((refused, refused_code), (frame_type, code)),
            other => panic!("{frame_type}: expected NotAllowed, got {other:?}"),
        }
    }
    client.goodbye().unwrap();
    assert_eq!(server.finish(), ["Goodbye"], "nothing refused was sent");
}

#[test]
fn data_breaking_protocol_rules_is_refused_before_sending() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Both);
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Both);
    let bad_pattern = client.subscribe("", &["fs*"], Severity::Debug, 4, false);
    assert!(
        matches!(bad_pattern, Err(ClientError::InvalidPattern { ref pattern, .. }) if pattern == "fs*"),
        "{bad_pattern:?}"
    );
    let no_pattern = client.subscribe("", &[], Severity::Debug, 4, false);
    assert!(matches!(
        no_pattern,
        Err(ClientError::PatternCount { count: 0 })
    ));
    let window = client.subscribe("", &[">"], Severity::Debug, 0, false);
    assert!(
        matches!(
            window,
            Err(ClientError::InvalidFrame {
                frame_type: FrameType::Subscribe,
                ..
            })
        ),
        "{window:?}"
    );
    let long_key = [0u8; KEY_BYTES_MAX + 1];
    let keyed = Event {
        key: &long_key,
        ..event("fs.a", b"")
    };
    let too_long = client.publish(&keyed);
    assert!(
        matches!(
            too_long,
            Err(ClientError::InvalidFrame {
                frame_type: FrameType::Publish,
                ..
            })
        ),
        "{too_long:?}"
    );
    assert_eq!(
        client.outstanding(),
        0,
        "the refused publish is not outstanding"
    );
    client.goodbye().unwrap();
    assert_eq!(server.finish(), ["Goodbye"], "nothing refused was sent");
}

#[test]
fn a_batch_is_published_as_one_frame_and_answered_by_one_stored() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        let bytes = peer.recv_some();
        let (correlation, payloads) = match frame(&bytes) {
            Frame::PublishBatch {
                correlation,
                events,
            } => (
                correlation,
                events
                    .iter()
                    .map(|event| event.payload.to_vec())
                    .collect::<Vec<_>>(),
            ),
            other => panic!("expected PublishBatch, got {other:?}"),
        };
        peer.send(&Frame::Stored {
            correlation,
            first_seq: Seq(10),
            last_seq: Seq(14),
            count: 3,
        });
        payloads
    });
    let mut client = connect(&server, Role::Producer);
    let events = [
        event("fs.a", b"one"),
        event("fs.b", b"two"),
        event("fs.c", b"three"),
    ];
    let stored = client.publish_batch(&events).unwrap();
    assert_eq!(
        (stored.first_seq, stored.last_seq, stored.count),
        (Seq(10), Seq(14), 3)
    );
    assert_eq!(
        server.finish(),
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn a_delivery_arriving_before_a_reply_is_kept_for_next_incoming() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Both);
        peer.accept_subscribe();
        let (correlation, _) = peer.expect_publish();
        peer.deliver(30, "fs.a", b"delivered first");
        peer.stored(correlation, 31);
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Both);
    client
        .subscribe("", &[">"], Severity::Debug, 4, false)
        .unwrap();
    let waiting = client.publish(&event("fs.a", b"published")).unwrap_err();
    assert!(
        matches!(waiting, ClientError::DeliveryWaiting),
        "{waiting:?}"
    );
    match client.next_incoming(None).unwrap().unwrap() {
        Incoming::Deliver(delivery) => assert_eq!(delivery.seq, Seq(30)),
        other => panic!("expected the delivery, got {other:?}"),
    }
    match client.next_incoming(None).unwrap().unwrap() {
        Incoming::Stored(stored) => {
            assert_eq!((stored.correlation, stored.first_seq), (1, Seq(31)))
        }
        other => panic!("expected the reply, got {other:?}"),
    }
    client.confirm(Seq(30), Seq(30)).unwrap();
    client.goodbye().unwrap();
    assert_eq!(
        server.finish(),
        [
            "Confirm { first_seq: Seq(30), last_seq: Seq(30) }",
            "Goodbye"
        ]
    );
}

#[test]
fn status_returns_the_daemons_json_unchanged() {
    const JSON: &str = r#"{"ring":{"slot_count":1024},"connections":{"count":1},"note":"ünïcode"}"#;
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Control);
        assert_eq!(format!("{:?}", frame(&peer.recv_some())), "Status");
        peer.send(&Frame::StatusReply { json: JSON });
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Control);
    assert_eq!(client.status().unwrap(), JSON);
    client.goodbye().unwrap();
    assert_eq!(server.finish(), ["Goodbye"]);
}

#[test]
fn a_ping_is_answered_by_a_pong_with_its_token() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        for _ in 0..2 {
            let bytes = peer.recv_some();
            let Frame::Ping { token } = frame(&bytes) else {
                panic!("expected Ping");
            };
            peer.send(&Frame::Pong { token });
        }
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Producer);
    client.ping().unwrap();
    client.ping().unwrap();
    client.goodbye().unwrap();
    assert_eq!(server.finish(), ["Goodbye"]);
}

#[test]
fn no_reply_within_the_reply_timeout_closes_the_connection() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        peer.expect_publish();
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Producer);
    client
        .set_reply_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let error = client.publish(&event("fs.a", b"1")).unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::ReplyTimeout {
                waiting_for: "Stored",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(matches!(client.ping(), Err(ClientError::Closed)));
    assert!(
        server.finish().is_empty(),
        "the client closed without more frames"
    );
}

#[test]
fn a_daemon_that_stops_reading_gives_stalled_instead_of_a_write_that_never_returns() {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let server = FakeServer::start(move |peer| {
        peer.accept_hello(Role::Producer);
        // Read nothing more until the test is done, keeping the connection open.
        released.recv().unwrap();
    });
    let mut client = connect(&server, Role::Producer);
    client
        .set_reply_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let payload = vec![b'x'; 60 * 1024];
    let big = event("fs.a", &payload);
    // The socket's buffers hold a bounded amount; well before this many bytes the
    // writes must block and time out.
    let mut result = Ok(0);
    for _ in 0..1000 {
        result = client.send_publish(&big);
        if result.is_err() {
            break;
        }
    }
    let error = result.unwrap_err();
    assert!(matches!(error, ClientError::Stalled { .. }), "{error:?}");
    assert!(matches!(client.flush(), Err(ClientError::Closed)));
    release.send(()).unwrap();
    server.finish();
}

#[test]
fn a_blocking_request_is_refused_while_pipelined_replies_are_outstanding() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        let (correlation, _) = peer.expect_publish();
        peer.stored(correlation, 1);
        peer.recv_until_end()
    });
    let mut client = connect(&server, Role::Producer);
    client.send_publish(&event("fs.a", b"1")).unwrap();
    let refused = client.publish(&event("fs.a", b"2")).unwrap_err();
    assert!(
        matches!(refused, ClientError::RepliesOutstanding { count: 1 }),
        "{refused:?}"
    );
    assert_eq!(client.recv_stored().unwrap().correlation, 1);
    assert!(matches!(
        client.recv_stored(),
        Err(ClientError::NothingOutstanding)
    ));
    client.goodbye().unwrap();
    assert_eq!(server.finish(), ["Goodbye"]);
}
