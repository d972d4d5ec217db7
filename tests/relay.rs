//! The relay (`herald serve --upstream`): real daemons on Unix sockets, an origin and
//! one or two relays after it, and a scripted upstream for the exact cases (a
//! redelivery, a restart of the relay between storing and confirming).
//!
//! What is checked: every event stored at the origin reaches every subscriber of the
//! last relay, in order, with the origin's node id and seq; SIGKILLs of the relay (50)
//! and of the origin lose nothing acknowledged and never store an event twice at the
//! relay (one local seq per origin seq); an upstream that sends an event again gets it
//! confirmed without a second copy, also after the relay restarted; an unreachable
//! upstream leaves the relay serving, and a full relay stops taking (the events wait
//! upstream) until its subscribers make room.
//!
//! No timing assertions: waits poll `herald status` or read deliveries with a
//! deadline that only detects failure.

#[path = "support/certs.rs"]
mod certs;
#[path = "client_support/mod.rs"]
mod client_support;
#[path = "support/daemon.rs"]
mod daemon;

use client_support::{frame, Peer};
use daemon::{publish_each, Daemon};
use herald::client::Client;
use herald::event::Origin;
use herald::protocol::{
    Deliver, Event, Frame, HelloOk, Role, Seq, Severity, SubscriptionMode, Topic,
    EVENT_PAYLOAD_BYTES_MAX, FRAME_BYTES_MAX,
};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A failure detector for reads that must bring something.
const DELIVERY_WAIT_MAX: Duration = Duration::from_secs(20);

fn relay_args(upstream: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--upstream".to_owned(),
        upstream.display().to_string(),
        "--upstream-name".to_owned(),
        "relay".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start_relay(dir: &Path, upstream: &Path, extra: &[&str]) -> Daemon {
    let args = relay_args(upstream, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start(dir, &args)
}

/// Waits until the relay's subscription at its upstream is attached. A durable
/// subscription starts at the upstream's tail when it is created, so the first time
/// a relay connects, what was published before is not its to relay.
fn wait_connected(relay: &Daemon) {
    relay.wait_for_status("the relay subscribed upstream", |s| {
        s["upstreams"][0]["state"] == "connected"
    });
}

fn subscriber(d: &Daemon, name: &str) -> Client {
    let mut c = Client::connect(&d.socket(), Role::Subscriber, "test-subscriber").unwrap();
    c.subscribe(name, &[">"], Severity::Debug, 1024, true)
        .unwrap();
    c
}

fn node_id(d: &Daemon) -> u64 {
    let s = d.status();
    u64::from_str_radix(s["node_id"].as_str().expect("node_id"), 16).unwrap()
}

/// One delivery as a test keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Got {
    seq: u64,
    origin: Origin,
    payload: Vec<u8>,
}

/// Reads and confirms deliveries until `n` distinct origins (node and seq) were seen.
fn take(c: &mut Client, n: usize, got: &mut Vec<Got>) {
    assert!(
        try_take(c, n, got),
        "only {} of {n} events arrived",
        distinct(got)
    );
}

/// Origins (node and seq) among `got`.
fn distinct(got: &[Got]) -> usize {
    got.iter()
        .map(|g| (g.origin.node_id, g.origin.seq))
        .collect::<BTreeSet<_>>()
        .len()
}

/// One delivery, confirmed at once; None if none came within 200 ms (the callers
/// loop to their own deadlines).
fn receive(c: &mut Client) -> Option<Got> {
    let d = c.next_delivery(Some(Duration::from_millis(200))).unwrap()?;
    let g = Got {
        seq: d.seq.0,
        origin: d.origin.expect("a version 2 client is told every origin"),
        payload: d.event.payload.to_vec(),
    };
    c.confirm(Seq(g.seq), Seq(g.seq)).unwrap();
    Some(g)
}

/// [`take`], false if they did not all arrive within [`DELIVERY_WAIT_MAX`].
fn try_take(c: &mut Client, n: usize, got: &mut Vec<Got>) -> bool {
    let deadline = Instant::now() + DELIVERY_WAIT_MAX;
    let mut seen: BTreeSet<(u64, u64)> = got
        .iter()
        .map(|g| (g.origin.node_id, g.origin.seq))
        .collect();
    while seen.len() < n {
        if Instant::now() >= deadline {
            return false;
        }
        let Some(g) = receive(c) else {
            continue;
        };
        seen.insert((g.origin.node_id, g.origin.seq));
        got.push(g);
    }
    true
}

#[test]
fn events_cross_two_relays_in_order_and_keep_the_first_nodes_origin() {
    let (a_dir, b_dir, c_dir) = (tempdir(), tempdir(), tempdir());
    let a = Daemon::start(a_dir.path(), &[]);
    let b = start_relay(b_dir.path(), &a.socket(), &[]);
    let c = start_relay(c_dir.path(), &b.socket(), &[]);
    wait_connected(&b);
    wait_connected(&c);
    let mut at_b = subscriber(&b, "watch");
    let mut at_c = subscriber(&c, "watch");
    let mut p = Client::connect(&a.socket(), Role::Producer, "fsd").unwrap();
    let payloads: Vec<String> = (0..200).map(|i| format!("disk {i} failing")).collect();
    let seqs = publish_each(&mut p, "fs.vol1.error", Severity::Error, &payloads);
    let a_node = node_id(&a);
    for (who, sub) in [("B", &mut at_b), ("C", &mut at_c)] {
        let mut got = Vec::new();
        take(sub, payloads.len(), &mut got);
        assert_eq!(got.len(), payloads.len(), "{who}: no event twice");
        for ((g, payload), seq) in got.iter().zip(&payloads).zip(&seqs) {
            assert_eq!(g.payload, payload.as_bytes(), "{who}: in order");
            assert_eq!(g.origin.node_id, a_node, "{who}: the origin is A's");
            assert_eq!(g.origin.seq, seq.0, "{who}: with A's seq");
        }
        assert!(
            got.windows(2).all(|w| w[0].seq < w[1].seq),
            "{who}: local seqs in order"
        );
    }
    let b_status = b.wait_for_status("B's confirmations upstream", |s| {
        s["upstreams"][0]["unconfirmed"] == 0 && s["upstreams"][0]["relayed"] == 200
    });
    let up = &b_status["upstreams"][0];
    assert_eq!(up["state"], "connected");
    assert_eq!(up["node_id"], format!("{a_node:016x}"));
    assert_eq!(up["duplicates"], 0);
    assert_eq!(up["mark"], seqs.last().unwrap().0 + 1);
    // A released what B confirmed: nothing waits there for the relay.
    let a_status = a.wait_for_status("A's relay subscription drained", |s| {
        daemon::sub_row(s, "relay")["pending_slots"] == 0
    });
    assert_eq!(daemon::sub_row(&a_status, "relay")["in_flight"], 0);
}

#[test]
fn an_upstream_filter_and_severity_limit_what_is_relayed() {
    let (a_dir, b_dir) = (tempdir(), tempdir());
    let a = Daemon::start(a_dir.path(), &[]);
    let b = start_relay(
        b_dir.path(),
        &a.socket(),
        &[
            "--upstream-filter",
            "fs.>",
            "--upstream-min-severity",
            "warning",
        ],
    );
    wait_connected(&b);
    let mut at_b = subscriber(&b, "watch");
    let mut p = Client::connect(&a.socket(), Role::Producer, "fsd").unwrap();
    publish_each(&mut p, "app.x", Severity::Critical, ["not fs"]);
    publish_each(&mut p, "fs.a", Severity::Info, ["not severe"]);
    let wanted = publish_each(&mut p, "fs.b", Severity::Error, ["relayed"]);
    let mut got = Vec::new();
    take(&mut at_b, 1, &mut got);
    assert_eq!(got[0].origin.seq, wanted[0].0);
    assert_eq!(got[0].payload, b"relayed");
    let s = b.wait_for_status("B confirmed it", |s| s["upstreams"][0]["unconfirmed"] == 0);
    assert_eq!(
        s["upstreams"][0]["relayed"], 1,
        "only the matching event: {s}"
    );
}

/// The scripted upstream's end of one relay connection: the handshake answered, as
/// node `node`.
fn accept_relay(listener: &UnixListener, node: u64) -> Peer {
    let (stream, _) = listener.accept().expect("the relay connects");
    let mut peer = Peer { stream };
    let bytes = peer.recv_some();
    match frame(&bytes) {
        Frame::Hello(h) => {
            assert_eq!(h.role, Role::Subscriber);
            assert!(h.version_max >= 2, "a relay speaks version 2: {h:?}");
        }
        other => panic!("expected Hello, got {other:?}"),
    }
    peer.send(&Frame::HelloOk(HelloOk {
        version: 2,
        node_id: node,
        frame_bytes_max: FRAME_BYTES_MAX as u32,
        event_payload_bytes_max: EVENT_PAYLOAD_BYTES_MAX as u32,
    }));
    let bytes = peer.recv_some();
    match frame(&bytes) {
        Frame::Subscribe(s) => {
            assert_eq!(s.name, "relay");
            assert!(s.automatic_recovery);
        }
        other => panic!("expected Subscribe, got {other:?}"),
    }
    peer.send(&Frame::Subscribed {
        mode: SubscriptionMode::Normal,
        pending_events: 0,
    });
    peer
}

/// Sends deliveries of upstream seqs `seqs`, origin seq = 1000 + seq on node 0xA.
fn deliver(peer: &mut Peer, seqs: impl IntoIterator<Item = u64>, redelivered: bool) {
    for seq in seqs {
        let payload = format!("event {seq}");
        peer.send(&Frame::Deliver(Deliver {
            seq: Seq(seq),
            timestamp_ns: 1_800_000_000_000_000_000 + seq,
            redelivered,
            delivery_count: if redelivered { 2 } else { 1 },
            origin: Some(Origin {
                node_id: 0xA,
                seq: 1000 + seq,
                timestamp_ns: 1_700_000_000_000_000_000 + seq,
            }),
            rule: None,
            event: Event {
                topic: Topic::new(b"fs.vol1.error").unwrap(),
                severity: Severity::Error,
                source: "fsd",
                flags: 7,
                key: b"",
                payload: payload.as_bytes(),
            },
        }));
    }
}

/// Reads the relay's confirmations until every seq of `seqs` is confirmed; returns the
/// ranges.
fn confirmed(peer: &mut Peer, seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut covered = BTreeSet::new();
    while !seqs.clone().all(|s| covered.contains(&s)) {
        let bytes = peer
            .recv()
            .expect("the relay stays connected until it confirmed");
        match frame(&bytes) {
            Frame::Confirm {
                first_seq,
                last_seq,
            } => {
                ranges.push((first_seq.0, last_seq.0));
                covered.extend(first_seq.0..=last_seq.0);
            }
            other => panic!("expected Confirm, got {other:?}"),
        }
    }
    ranges
}

#[test]
fn an_event_sent_again_is_confirmed_not_stored_twice_even_after_a_relay_restart() {
    let (up_dir, b_dir) = (tempdir(), tempdir());
    let socket = up_dir.path().join("herald.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let b = start_relay(b_dir.path(), &socket, &[]);
    let mut sub = subscriber(&b, "watch");

    let mut peer = accept_relay(&listener, 0xB0B);
    deliver(&mut peer, 1..=10, false);
    confirmed(&mut peer, 1..=10);
    // The connection drops: the upstream sends its unconfirmed tail again, and more.
    drop(peer);
    let mut peer = accept_relay(&listener, 0xB0B);
    deliver(&mut peer, 5..=10, true);
    deliver(&mut peer, 11..=15, false);
    confirmed(&mut peer, 5..=15);
    let mut got = Vec::new();
    take(&mut sub, 15, &mut got);
    // Every confirmation is in the relay's log before it is killed (Ping is a barrier).
    sub.ping().unwrap();
    let s = b.status();
    assert_eq!(s["upstreams"][0]["duplicates"], 6, "{s}");
    assert_eq!(s["upstreams"][0]["relayed"], 15, "{s}");
    // Every confirmation sent upstream went with its mark (fenced on this region): no
    // relayed event is held for the link any more.
    assert!(s["ring"]["held_by_links_from"].is_null(), "{s}");
    b.kill();
    drop(peer);

    // After the relay's own crash the upstream sends everything again: the mark in
    // the region recognises all of it.
    let b = start_relay(b_dir.path(), &socket, &[]);
    let mut peer = accept_relay(&listener, 0xB0B);
    deliver(&mut peer, 1..=15, true);
    deliver(&mut peer, 16..=16, false);
    let ranges = confirmed(&mut peer, 1..=16);
    assert!(ranges.iter().all(|(f, l)| f <= l), "{ranges:?}");
    let s = b.wait_for_status("the relay took seq 16", |s| {
        s["upstreams"][0]["relayed"] == 1
    });
    assert_eq!(s["upstreams"][0]["duplicates"], 15, "{s}");
    assert_eq!(s["upstreams"][0]["mark"], 17, "{s}");
    let mut sub = subscriber(&b, "watch");
    take(&mut sub, 16, &mut got);
    let origins: Vec<u64> = got.iter().map(|g| g.origin.seq).collect();
    assert_eq!(
        origins,
        (1001..=1016).collect::<Vec<_>>(),
        "each once, in order"
    );
    let last = got.last().unwrap();
    assert_eq!(last.origin.node_id, 0xA);
    assert_eq!(last.origin.timestamp_ns, 1_700_000_000_000_000_016);
}

#[test]
fn a_relay_with_its_upstream_down_serves_and_catches_up_later() {
    let (a_dir, b_dir) = (tempdir(), tempdir());
    let b = start_relay(b_dir.path(), &a_dir.path().join("herald.sock"), &[]);
    let s = b.wait_for_status("the relay backs off", |s| {
        s["upstreams"][0]["state"] == "backing_off" && s["upstreams"][0]["failures_in_row"] != 0
    });
    assert!(
        s["upstreams"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{s}"
    );
    // Its own producers and subscribers are served meanwhile.
    let mut local = Client::connect(&b.socket(), Role::Producer, "local").unwrap();
    let mut sub = subscriber(&b, "watch");
    publish_each(&mut local, "local.event", Severity::Info, ["here"]);
    let mut got = Vec::new();
    take(&mut sub, 1, &mut got);
    assert_eq!(
        got[0].origin.node_id,
        node_id(&b),
        "a local event's origin is this node"
    );

    let a = Daemon::start(a_dir.path(), &[]);
    wait_connected(&b);
    let mut p = Client::connect(&a.socket(), Role::Producer, "fsd").unwrap();
    let seqs = publish_each(&mut p, "fs.x", Severity::Error, ["from A"]);
    take(&mut sub, 2, &mut got);
    assert_eq!(got[1].origin.node_id, node_id(&a));
    assert_eq!(got[1].origin.seq, seqs[0].0);
}

#[test]
fn a_full_relay_stops_taking_and_the_events_wait_upstream() {
    let (a_dir, b_dir) = (tempdir(), tempdir());
    let a = Daemon::start(a_dir.path(), &[]);
    // A ring of a few thousand 128-byte slots: 1 KiB events take 9 each.
    let b = start_relay(b_dir.path(), &a.socket(), &["--region-size", "1M"]);
    wait_connected(&b);
    let mut sub = Client::connect(&b.socket(), Role::Subscriber, "slow").unwrap();
    sub.subscribe("slow", &[">"], Severity::Debug, 4096, true)
        .unwrap();
    let mut p = Client::connect(&a.socket(), Role::Producer, "fsd").unwrap();
    let payload = vec![b'x'; 1024];
    let n = 2000;
    let seqs = publish_each(&mut p, "fs.big", Severity::Error, (0..n).map(|_| &payload));
    let s = b.wait_for_status("the relay is full", |s| {
        s["upstreams"][0]["waiting_for_room"] == true
    });
    let taken = s["upstreams"][0]["relayed"].as_u64().unwrap();
    assert!(taken < n as u64, "the relay cannot hold them all: {s}");
    // The rest waits at the origin, unconfirmed by the relay.
    let a_status = a.status();
    assert!(
        daemon::sub_row(&a_status, "relay")["pending_slots"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Its subscriber confirms: room comes back, and every event arrives once.
    let mut got = Vec::new();
    if !try_take(&mut sub, n, &mut got) {
        panic!(
            "{} of {n} arrived; the relay: {} {}; the origin: {}",
            distinct(&got),
            b.status()["upstreams"][0],
            daemon::sub_row(&b.status(), "slow"),
            daemon::sub_row(&a.status(), "relay")
        );
    }
    let origins: Vec<u64> = got.iter().map(|g| g.origin.seq).collect();
    assert_eq!(origins, seqs.iter().map(|s| s.0).collect::<Vec<_>>());
}

/// A producer on its own thread: publishes one event a millisecond to the daemon at
/// `socket` until stopped, reconnecting when the daemon is gone, and keeps the seq of
/// every event acknowledged.
struct Producer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl Producer {
    fn start(socket: &Path) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let socket = socket.to_owned();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0u64;
            let mut client: Option<Client> = None;
            while !flag.load(Ordering::Relaxed) {
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => match Client::connect(&socket, Role::Producer, "fsd") {
                        Ok(c) => client.insert(c),
                        Err(_) => {
                            // The daemon is being restarted: pacing, not waiting.
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    },
                };
                i += 1;
                let payload = format!("event {i}");
                match c.publish(&daemon::event(
                    "fs.vol1.error",
                    Severity::Error,
                    payload.as_bytes(),
                )) {
                    Ok(stored) => acked.push(stored.first_seq.0),
                    Err(_) => client = None,
                }
                // Pacing: the relay is restarted while events keep coming.
                std::thread::sleep(Duration::from_millis(1));
            }
            acked
        });
        Producer { stop, thread }
    }

    fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Every acknowledged origin seq arrived, and each was stored once at the relay (one
/// local seq for it, however often it was delivered).
fn check_exactly_once(acked: &[u64], got: &[Got]) {
    let mut stored_as: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for g in got {
        stored_as.entry(g.origin.seq).or_default().insert(g.seq);
    }
    let lost: Vec<u64> = acked
        .iter()
        .filter(|s| !stored_as.contains_key(s))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged at the origin, never relayed: {lost:?}"
    );
    let twice: Vec<_> = stored_as
        .iter()
        .filter(|(_, local)| local.len() > 1)
        .collect();
    assert!(twice.is_empty(), "stored twice at the relay: {twice:?}");
}

/// Reads whatever the relay delivers until `want` origin seqs were seen.
fn drain(relay: &Daemon, want: &[u64], got: &mut Vec<Got>) {
    let mut sub = subscriber(relay, "watch");
    let wanted: BTreeSet<u64> = want.iter().copied().collect();
    let mut seen: BTreeSet<u64> = got.iter().map(|g| g.origin.seq).collect();
    let deadline = Instant::now() + DELIVERY_WAIT_MAX;
    while !wanted.is_subset(&seen) {
        if Instant::now() >= deadline {
            let missing: Vec<u64> = wanted.difference(&seen).copied().collect();
            panic!(
                "acknowledged at the origin, never relayed: {missing:?}; the relay says {}",
                relay.status()["upstreams"][0]
            );
        }
        let Some(g) = receive(&mut sub) else {
            continue;
        };
        seen.insert(g.origin.seq);
        got.push(g);
    }
}

#[test]
fn fifty_sigkills_of_the_relay_lose_nothing_and_store_nothing_twice() {
    let (a_dir, b_dir) = (tempdir(), tempdir());
    let a = Daemon::start(a_dir.path(), &[]);
    // The durable subscription at the relay exists before the first event.
    let b = start_relay(b_dir.path(), &a.socket(), &[]);
    drop(subscriber(&b, "watch"));
    wait_connected(&b);
    b.kill();
    let producer = Producer::start(&a.socket());
    let got = Arc::new(Mutex::new(Vec::new()));
    // Events the origin sent again after a kill and the relay found already stored:
    // kills that fell between a local commit and its confirmation upstream.
    let mut duplicates = 0;
    for round in 0..50 {
        // On a region synced to disk the confirmation waits for a sync: a kill often
        // falls between the commit (in the page cache, so it survives) and the
        // confirmation, and the origin then sends those events again.
        let b = start_relay(b_dir.path(), &a.socket(), &["--sync", "disk"]);
        let mut sub = subscriber(&b, "watch");
        let mut got = got.lock().unwrap();
        // Some deliveries confirmed, then a kill wherever the relay is: taking from
        // the upstream, committing, confirming.
        let have = got
            .iter()
            .map(|g: &Got| g.origin.seq)
            .collect::<BTreeSet<_>>()
            .len();
        take(&mut sub, have + 5 + round % 7, &mut got);
        duplicates += b.status()["upstreams"][0]["duplicates"].as_u64().unwrap();
        b.kill();
    }
    let acked = producer.finish();
    let b = start_relay(b_dir.path(), &a.socket(), &[]);
    let mut got = got.lock().unwrap();
    drain(&b, &acked, &mut got);
    check_exactly_once(&acked, &got);
    assert!(
        duplicates > 0,
        "no kill fell between a commit at the relay and its confirmation upstream"
    );
    println!(
        "{} events acknowledged at the origin, {} deliveries at the relay, {duplicates} sent \
         again after a kill and recognised",
        acked.len(),
        got.len()
    );
}

#[test]
fn sigkills_of_the_origin_lose_nothing_acknowledged_at_the_relay() {
    let (a_dir, b_dir) = (tempdir(), tempdir());
    let a = Daemon::start(a_dir.path(), &[]);
    let b = start_relay(b_dir.path(), &a.socket(), &[]);
    wait_connected(&b);
    // The durable subscription at the relay exists before the first event.
    let mut sub = subscriber(&b, "watch");
    let mut got = Vec::new();
    let producer = Producer::start(&a.socket());
    let mut a = Some(a);
    for _ in 0..20 {
        let have = got
            .iter()
            .map(|g: &Got| g.origin.seq)
            .collect::<BTreeSet<_>>()
            .len();
        take(&mut sub, have + 5, &mut got);
        a.take().unwrap().kill();
        a = Some(Daemon::start(a_dir.path(), &[]));
    }
    let acked = producer.finish();
    // The subscription is attached again by `drain`, once this connection is gone.
    sub.goodbye().unwrap();
    b.wait_for_status("the subscriber detached", |s| {
        daemon::sub_row(s, "watch")["connected"] == false
    });
    drain(&b, &acked, &mut got);
    check_exactly_once(&acked, &got);
    // It reconnected to the restarted origin (not necessarily to every incarnation:
    // one may have lived through a backoff of the relay's).
    assert!(b.status()["upstreams"][0]["connections"].as_u64().unwrap() > 1);
}

/// An origin serving TLS (its certificate for 127.0.0.1, client certificates from
/// the test CA required), the relay's certificate files, and one from another CA.
struct TlsSetup {
    /// Holds the files for as long as the test runs.
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
    server: (std::path::PathBuf, std::path::PathBuf),
    relay: (std::path::PathBuf, std::path::PathBuf),
    stranger: (std::path::PathBuf, std::path::PathBuf),
}

fn tls_setup() -> TlsSetup {
    let dir = tempdir();
    let ca = certs::ca(dir.path(), "relay-test-ca");
    let other = certs::ca(dir.path(), "other-ca");
    let server = certs::issue(dir.path(), &ca, "origin", &["127.0.0.1"], true, false);
    let relay = certs::issue(dir.path(), &ca, "relay", &["relay.example"], false, false);
    let stranger = certs::issue(dir.path(), &other, "stranger", &["x.example"], false, false);
    TlsSetup {
        ca: ca.pem.clone(),
        _dir: dir,
        server,
        relay,
        stranger,
    }
}

fn start_tls_origin(dir: &Path, t: &TlsSetup) -> (Daemon, String) {
    let args = [
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        t.server.0.to_str().unwrap(),
        "--tls-key",
        t.server.1.to_str().unwrap(),
        "--tls-client-ca",
        t.ca.to_str().unwrap(),
    ];
    let d = Daemon::start(dir, &args);
    let address = d
        .ready_line
        .split_whitespace()
        .find(|w| w.starts_with("tls://"))
        .unwrap_or_else(|| panic!("no tls:// address in {:?}", d.ready_line))
        .trim_end_matches([',', ')'])
        .to_owned();
    (d, address)
}

fn tls_relay_args<'a>(
    t: &'a TlsSetup,
    identity: &'a (std::path::PathBuf, std::path::PathBuf),
) -> [&'a str; 6] {
    [
        "--upstream-ca",
        t.ca.to_str().unwrap(),
        "--upstream-cert",
        identity.0.to_str().unwrap(),
        "--upstream-key",
        identity.1.to_str().unwrap(),
    ]
}

#[test]
fn a_relay_over_tls_carries_every_event_and_the_next_relay_keeps_the_origin() {
    let t = tls_setup();
    let (a_dir, b_dir, c_dir) = (tempdir(), tempdir(), tempdir());
    let (a, address) = start_tls_origin(a_dir.path(), &t);
    let mut args = vec!["--upstream", address.as_str(), "--upstream-name", "relay"];
    args.extend(tls_relay_args(&t, &t.relay));
    let b = Daemon::start(b_dir.path(), &args);
    let c = start_relay(c_dir.path(), &b.socket(), &[]);
    wait_connected(&b);
    wait_connected(&c);
    // The origin knows the relay by its certificate's name.
    let peers = a.status()["connections"]["peers"].to_string();
    assert!(peers.contains("relay.example"), "{peers}");
    let mut at_c = subscriber(&c, "watch");
    let mut p = Client::connect(&a.socket(), Role::Producer, "fsd").unwrap();
    let big = vec![b'z'; 60_000];
    let mut payloads: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("event {i}").into_bytes())
        .collect();
    // Events larger than one TLS record go through too.
    payloads.push(big.clone());
    payloads.push(big);
    let seqs = publish_each(&mut p, "fs.vol1.error", Severity::Error, &payloads);
    let mut got = Vec::new();
    take(&mut at_c, payloads.len(), &mut got);
    let a_node = node_id(&a);
    for ((g, payload), seq) in got.iter().zip(&payloads).zip(&seqs) {
        assert_eq!(&g.payload, payload);
        assert_eq!((g.origin.node_id, g.origin.seq), (a_node, seq.0));
    }
}

#[test]
fn a_relay_whose_certificate_the_upstream_refuses_says_why_and_keeps_trying() {
    let t = tls_setup();
    let (a_dir, b_dir) = (tempdir(), tempdir());
    let (_a, address) = start_tls_origin(a_dir.path(), &t);
    let mut args = vec!["--upstream", address.as_str(), "--upstream-name", "relay"];
    args.extend(tls_relay_args(&t, &t.stranger));
    let b = Daemon::start(b_dir.path(), &args);
    let s = b.wait_for_status("the upstream refused the relay", |s| {
        s["upstreams"][0]["failures_in_row"].as_u64().unwrap_or(0) >= 2
    });
    let up = &s["upstreams"][0];
    assert_ne!(up["state"], "connected", "{up}");
    let why = up["last_error"].as_str().unwrap_or("");
    assert!(why.contains("TLS") || why.contains("closed"), "{up}");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
