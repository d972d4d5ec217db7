//! `herald publish`, `subscribe` and `status` driven as the real binary against a
//! scripted fake daemon listening on `DIR/herald.sock`.

mod client_support;

use client_support::*;
use herald::protocol::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `herald ARGS --data-dir DIR`, feeding `stdin`.
fn herald(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herald");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write herald's stdin");
    child.wait_with_output().expect("herald ran")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

#[test]
fn publish_prints_stored_and_the_sequence_number() {
    let server = FakeServer::start(|peer| {
        let name = peer.accept_hello(Role::Producer);
        let (correlation, event) = peer.expect_publish();
        peer.stored(correlation, 42);
        (name, event, peer.recv_until_end())
    });
    let out = herald(
        server.dir(),
        &[
            "publish",
            "--topic",
            "fs.vol1.error",
            "--severity",
            "err",
            "--key",
            "order-17",
            "--source",
            "fsd",
            "disk full",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "stored 42\n");
    let (name, event, rest) = server.finish();
    assert_eq!(name, "fsd");
    assert_eq!(
        event,
        OwnedEvent {
            topic: "fs.vol1.error".into(),
            severity: Severity::Error,
            source: "fsd".into(),
            key: b"order-17".to_vec(),
            payload: b"disk full".to_vec(),
        }
    );
    assert_eq!(rest, ["Goodbye"]);
}

#[test]
fn publish_without_a_message_publishes_each_line_of_stdin_as_one_event() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        let mut payloads = Vec::new();
        let mut frames = Vec::new();
        while let Some(bytes) = peer.recv() {
            match frame(&bytes) {
                Frame::Publish { correlation, event } => {
                    payloads.push(event.payload.to_vec());
                    peer.stored(correlation, 10 + correlation);
                }
                other => frames.push(format!("{other:?}")),
            }
        }
        (payloads, frames)
    });
    let out = herald(
        server.dir(),
        &["publish", "--topic", "app.log"],
        b"one\ntwo\r\n\nlast, without newline",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "stored 11\nstored 12\nstored 13\nstored 14\n"
    );
    let (payloads, frames) = server.finish();
    assert_eq!(
        payloads,
        [
            b"one".to_vec(),
            b"two".to_vec(),
            b"".to_vec(),
            b"last, without newline".to_vec()
        ]
    );
    assert_eq!(frames, ["Goodbye"]);
}

#[test]
fn publish_exits_1_with_the_reason_when_the_log_is_full() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Producer);
        let (correlation, _) = peer.expect_publish();
        peer.send(&Frame::Error {
            correlation,
            code: ErrorCode::Full,
            message: "the log has no room",
        });
        peer.recv_until_end()
    });
    let out = herald(server.dir(), &["publish", "--topic", "fs.a", "x"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "", "nothing claims to be stored");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("was not stored"), "{stderr}");
    assert!(stderr.contains("full: the log has no room"), "{stderr}");
    server.finish();
}

#[test]
fn publish_without_a_daemon_exits_1_saying_it_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald(dir.path(), &["publish", "--topic", "fs.a", "x"], b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let socket = dir.path().join("herald.sock");
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
}

#[test]
fn bad_arguments_are_usage_errors_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["publish", "--topic", "fs..a", "x"][..],
        &["publish", "--topic", "fs.a", "--severity", "loud", "x"],
        &["publish", "--topic", "fs.a", "--key", "k"],
        &["subscribe", "--filter", "fs*"],
        &["subscribe", "--window", "0"],
        &["subscribe", "--name", "no spaces"],
    ] {
        let out = herald(dir.path(), args, b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn serve_refuses_more_connection_slots_than_the_limit_before_it_allocates_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald(dir.path(), &["serve", "--connections-max", "65537"], b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("at most 65536 connections"), "{stderr}");
    assert!(!dir.path().join("region.pmem").exists());
}

#[test]
fn subscribe_count_2_json_prints_two_objects_and_confirms_both() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Subscriber);
        let subscribe = peer.accept_subscribe();
        let mut bytes = Vec::with_capacity(3 * FRAME_BYTES_MAX);
        for frame in [
            deliver_frame(5, "fs.vol1.error", b"disk full"),
            Frame::Deliver(Deliver {
                redelivered: true,
                delivery_count: 3,
                origin: None,
                ..delivery(9, "fs.vol2.error", &[0xff, 0x00, 0x10])
            }),
            deliver_frame(12, "fs.vol1.error", b"not printed"),
        ] {
            encode_to_vec(&frame, &mut bytes).unwrap();
        }
        // One write: the client may leave after the second, before a later write.
        peer.send_bytes(&bytes);
        (subscribe, peer.recv_until_end())
    });
    let out = herald(server.dir(), &["subscribe", "--count", "2", "--json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        serde_json::json!({
            "seq": 5,
            "timestamp_ns": 1_700_000_000_000_000_005u64,
            "severity": "warning",
            "topic": "fs.vol1.error",
            "source": "fsd",
            "key": "",
            "payload": "disk full",
            "flags": 0,
            "redelivered": false,
            "delivery_count": 1,
        })
    );
    assert_eq!(lines[1]["seq"], 9);
    assert_eq!(lines[1]["payload_hex"], "ff0010");
    assert_eq!(lines[1]["redelivered"], true);
    assert_eq!(lines[1]["delivery_count"], 3);
    let (subscribe, frames) = server.finish();
    assert_eq!(
        subscribe,
        OwnedSubscribe {
            name: String::new(),
            patterns: vec![">".into()],
            min_severity: Severity::Debug,
            window_events: 64,
            automatic_recovery: true,
        },
        "the defaults: live-only, everything, window 64"
    );
    assert_eq!(
        frames,
        [
            "Confirm { first_seq: Seq(5), last_seq: Seq(5) }",
            "Confirm { first_seq: Seq(9), last_seq: Seq(9) }",
            "Goodbye",
        ]
    );
}

#[test]
fn subscribe_prints_one_human_line_per_event_with_the_redelivered_marker() {
    let server = FakeServer::start(|peer| {
        peer.accept_hello(Role::Subscriber);
        let subscribe = peer.accept_subscribe();
        peer.send(&Frame::Deliver(Deliver {
            redelivered: true,
            delivery_count: 2,
            origin: None,
            ..delivery(5, "fs.vol1.error", b"disk full")
        }));
        (subscribe, peer.recv_until_end())
    });
    let out = herald(
        server.dir(),
        &[
            "subscribe",
            "--name",
            "audit",
            "--filter",
            "fs.>",
            "--filter",
            "net.*.down",
            "--min-severity",
            "warning",
            "--window",
            "8",
            "--count",
            "1",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "5 2023-11-14T22:13:20.000Z warning fs.vol1.error fsd disk full (redelivered)\n"
    );
    let (subscribe, frames) = server.finish();
    assert_eq!(subscribe.name, "audit");
    assert_eq!(subscribe.patterns, ["fs.>", "net.*.down"]);
    assert_eq!(subscribe.min_severity, Severity::Warning);
    assert_eq!(subscribe.window_events, 8);
    assert_eq!(
        frames,
        ["Confirm { first_seq: Seq(5), last_seq: Seq(5) }", "Goodbye"]
    );
}

const STATUS_JSON: &str = r#"{ "region": {"path": "herald-data/region.pmem", "kind": "file", "flush": "msync", "durability": "fdatasync"},
  "ring": {"slot_count": 1024, "used_slots": 3, "head": 10, "tail": 13, "reserve_slots": 16},
  "connections": {"count": 2},
  "subscriptions": [{"name": "audit", "durable": true, "connected": true, "cursor": 10, "pending_events": 3, "in_flight": 1, "mode": "normal"}] }"#;

fn status_server() -> FakeServer<Vec<String>> {
    FakeServer::start(|peer| {
        peer.accept_hello(Role::Control);
        assert_eq!(format!("{:?}", frame(&peer.recv_some())), "Status");
        peer.send(&Frame::StatusReply { json: STATUS_JSON });
        peer.recv_until_end()
    })
}

#[test]
fn status_json_prints_the_daemons_document_unchanged() {
    let server = status_server();
    let out = herald(server.dir(), &["status", "--json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{STATUS_JSON}\n"));
    assert_eq!(server.finish(), ["Goodbye"]);
}

#[test]
fn status_renders_every_section_readably() {
    let server = status_server();
    let out = herald(server.dir(), &["status"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "region\n",
        "  path        herald-data/region.pmem\n",
        "  slot_count     1024\n",
        "connections\n  count  2\n",
        "subscriptions (1)\n",
        "  name   connected  cursor  durable  in_flight  mode    pending_events\n",
        "  audit  true       10      true     1          normal  3\n",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    server.finish();
}
