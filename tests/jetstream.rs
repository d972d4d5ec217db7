//! The JetStream forwarder against a real `nats-server -js` on loopback: what arrives
//! in the stream (subjects, headers, payloads, each event once), herald and the server
//! killed and restarted during forwarding (still every event exactly once, by
//! `Nats-Msg-Id`), nothing released before JetStream acknowledged it, and JetStream
//! down at start.
//!
//! No timing assertions: every wait polls `herald status` (or the server) until a
//! state is shown, with a deadline that only detects failure.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/nats.rs"]
mod nats;

use daemon::{sub_row, Daemon};
use herald::client::Client;
use herald::protocol::{Event, Role, Severity, Topic};
use nats::{free_port, Nats, NatsServer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const STREAM: &str = "EVENTS";
const NAME: &str = "jetstream";

fn forward_args(port: u16) -> Vec<String> {
    [
        "--forward-jetstream",
        &format!("nats://127.0.0.1:{port}"),
        "--forward-subject-prefix",
        "herald.ev",
        "--forward-filter",
        "fs.>,app.*",
        // Negative PubAcks (no stream yet) come back soon in the tests.
        "--redelivery-backoff",
        "50ms",
        "--redelivery-backoff-max",
        "500ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start(dir: &Path, port: u16) -> Daemon {
    let args = forward_args(port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start(dir, &args)
}

fn producer(d: &Daemon) -> Client {
    Client::connect(&d.socket(), Role::Producer, "producer-1").expect("producer")
}

/// Publishes `topic` with payload `payload` and key `key`, returns its seq.
fn publish(p: &mut Client, topic: &str, severity: Severity, payload: &[u8], key: &[u8]) -> u64 {
    let event = Event {
        topic: Topic::new(topic.as_bytes()).unwrap(),
        severity,
        source: "",
        flags: 0,
        key,
        payload,
    };
    p.publish(&event).expect("stored").first_seq.0
}

/// Waits until the forwarder has nothing unacknowledged and its cursor is the tail.
fn wait_all_forwarded(d: &Daemon) -> serde_json::Value {
    d.wait_for_status("every event acknowledged by JetStream", |s| {
        let row = sub_row(s, NAME);
        s["forwarder"]["state"] == "connected"
            && row["in_flight"] == 0
            && row["awaiting_redelivery"] == 0
            && row["cursor"] == s["ring"]["tail"]
    })
}

fn header<'m>(m: &'m nats::Message, key: &str) -> &'m str {
    m.headers
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {m:?}"))
}

#[test]
fn matching_events_arrive_once_with_their_subject_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = NatsServer::start(port, &dir.path().join("nats"));
    let mut js = Nats::connect(port).unwrap();
    js.create_stream(STREAM, "herald.ev.>");
    let d = start(&dir.path().join("herald"), port);
    let mut p = producer(&d);
    let mut expected = BTreeMap::new();
    for i in 0..60u32 {
        let (topic, severity) = match i % 3 {
            0 => ("fs.vol1.error", Severity::Error),
            1 => ("app.login", Severity::Info),
            _ => ("net.link.down", Severity::Warning), // not forwarded
        };
        let payload = format!("payload {i}").into_bytes();
        let key = if i % 4 == 0 {
            format!("key-{i}")
        } else {
            String::new()
        };
        let seq = publish(&mut p, topic, severity, &payload, key.as_bytes());
        if i % 3 != 2 {
            expected.insert(seq, (topic, severity, payload, key));
        }
    }
    let status = wait_all_forwarded(&d);
    assert_eq!(status["forwarder"]["acked"], expected.len() as u64);
    assert_eq!(status["forwarder"]["negative_acks"], 0);
    let got = js.read_all(STREAM);
    assert_eq!(got.len(), expected.len(), "each matching event once");
    let mut node = None;
    for m in &got {
        let id = header(m, "Nats-Msg-Id");
        let (n, seq) = id.split_once(':').expect("NODE:SEQ");
        let seq: u64 = seq.parse().unwrap();
        assert_eq!(*node.get_or_insert(n.to_owned()), n, "one node id");
        let (topic, severity, payload, key) = expected.remove(&seq).expect("an expected seq, once");
        // Direct get names the stored subject in Nats-Subject.
        assert_eq!(header(m, "Nats-Subject"), format!("herald.ev.{topic}"));
        assert_eq!(header(m, "Herald-Severity"), severity.name());
        assert_eq!(header(m, "Herald-Source"), "producer-1");
        assert_eq!(header(m, "Herald-Seq"), seq.to_string());
        assert!(header(m, "Herald-Timestamp").parse::<u64>().unwrap() > 0);
        assert_eq!(
            m.headers.get("Herald-Key").cloned().unwrap_or_default(),
            key
        );
        assert_eq!(m.payload, payload);
    }
    assert!(expected.is_empty(), "never arrived: {expected:?}");
    d.stop();
}

#[test]
fn jetstream_down_at_start_herald_serves_and_forwards_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = start(&dir.path().join("herald"), port);
    let mut p = producer(&d);
    let seqs: Vec<u64> = (0..20)
        .map(|i| {
            publish(
                &mut p,
                "fs.a",
                Severity::Notice,
                format!("{i}").as_bytes(),
                b"",
            )
        })
        .collect();
    let status = d.wait_for_status("the forwarder says it cannot connect", |s| {
        s["forwarder"]["last_error"].is_string() && s["forwarder"]["state"] != "connected"
    });
    assert!(
        status["forwarder"]["last_error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{status}"
    );
    // Nothing was acknowledged, so nothing is released: the cursor holds the first.
    let row = sub_row(&status, NAME);
    assert!(row["cursor"].as_u64().unwrap() <= seqs[0], "{row}");
    assert!(
        status["ring"]["head"].as_u64().unwrap() <= seqs[0],
        "{status}"
    );

    // Up, but without the stream: publishes are answered "no responders", retried.
    let _server = NatsServer::start(port, &dir.path().join("nats"));
    let status = d.wait_for_status("a publish refused for want of a stream", |s| {
        s["forwarder"]["negative_acks"].as_u64().unwrap_or(0) > 0
    });
    assert!(
        status["forwarder"]["last_error"]
            .as_str()
            .unwrap()
            .contains("no stream"),
        "{status}"
    );
    assert!(sub_row(&status, NAME)["cursor"].as_u64().unwrap() <= seqs[0]);
    let mut js = Nats::connect(port).unwrap();
    js.create_stream(STREAM, "herald.ev.>");
    wait_all_forwarded(&d);
    let got = js.read_all(STREAM);
    let ids: BTreeSet<String> = got
        .iter()
        .map(|m| header(m, "Nats-Msg-Id").to_owned())
        .collect();
    assert_eq!(got.len(), seqs.len());
    assert_eq!(ids.len(), seqs.len());
    d.stop();
}

#[test]
fn kills_and_server_restarts_leave_every_event_in_the_stream_exactly_once() {
    let cycles: usize = std::env::var("HERALD_JETSTREAM_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let herald_dir = dir.path().join("herald");
    let port = free_port();
    let mut server = NatsServer::start(port, &dir.path().join("nats"));
    Nats::connect(port)
        .unwrap()
        .create_stream(STREAM, "herald.ev.>");
    let mut d = start(&herald_dir, port);
    let mut published = BTreeSet::new();
    let mut counter = 0u32;
    let mut burst = |d: &Daemon, published: &mut BTreeSet<u64>, n: u32| {
        let mut p = producer(d);
        for _ in 0..n {
            counter += 1;
            let payload = format!("event {counter}").into_bytes();
            published.insert(publish(&mut p, "fs.burst", Severity::Info, &payload, b""));
        }
    };
    let started = std::time::Instant::now();
    for cycle in 0..cycles {
        // A burst, then SIGKILL while the forwarder is publishing it (or has just
        // published it and waits for PubAcks): unacknowledged events are replayed.
        burst(&d, &mut published, 400);
        d.kill();
        d = start(&herald_dir, port);
        // A burst, then the server restarts under the forwarder.
        burst(&d, &mut published, 400);
        server.restart();
        println!(
            "cycle {cycle}: {} events published ({:?} since the start)",
            published.len(),
            started.elapsed()
        );
    }

    // Released nothing JetStream had not acknowledged: with the server stopped, new
    // events stay in herald's ring, across a kill too, until it is back.
    wait_all_forwarded(&d);
    server.stop();
    let mut p = producer(&d);
    let held: Vec<u64> = (0..50)
        .map(|i| {
            publish(
                &mut p,
                "fs.held",
                Severity::Info,
                format!("held {i}").as_bytes(),
                b"",
            )
        })
        .collect();
    drop(p);
    published.extend(held.iter().copied());
    let check_held = |s: &serde_json::Value| {
        let row = sub_row(s, NAME);
        assert!(row["cursor"].as_u64().unwrap() <= held[0], "{row}");
        assert!(s["ring"]["head"].as_u64().unwrap() <= held[0], "{s}");
    };
    check_held(&d.wait_for_status("the forwarder disconnected", |s| {
        s["forwarder"]["state"] != "connected"
    }));
    d.kill();
    d = start(&herald_dir, port);
    check_held(&d.status());
    server = NatsServer::start(port, &dir.path().join("nats"));
    let status = wait_all_forwarded(&d);
    assert_eq!(
        status["ring"]["tail"].as_u64().unwrap(),
        published.last().unwrap() + 1
    );

    let mut js = Nats::connect(port).unwrap();
    let got = js.read_all(STREAM);
    let mut ids = BTreeSet::new();
    let mut seqs = BTreeSet::new();
    for m in &got {
        assert!(
            ids.insert(header(m, "Nats-Msg-Id").to_owned()),
            "twice: {m:?}"
        );
        seqs.insert(header(m, "Herald-Seq").parse::<u64>().unwrap());
    }
    assert_eq!(js.stream_messages(STREAM), got.len() as u64);
    assert_eq!(got.len(), published.len(), "messages == events published");
    assert_eq!(seqs, published, "every published event, by seq");
    d.stop();
    drop(server);
}
