//! `herald serve --metrics-listen`: the real daemon's `/metrics`, scraped over HTTP,
//! validated by the real `promtool check metrics` (Debian's `prometheus` package;
//! tools/install-peers.sh installs it), and its values followed as events are
//! published, delivered, confirmed, redelivered and dead-lettered.
//!
//! No waiting on time: every scrape follows a `Ping` whose `Pong` says the frames
//! before it took effect (PROTOCOL.md section 5), and the exporter's snapshot is taken
//! by the loop after the scrape asked for it.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{event, herald, herald_binary, Daemon};
use herald::client::Client;
use herald::protocol::{Role, Severity};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A failure detector for one HTTP exchange with the exporter (it answers within its
/// own bounds: 5 s for a request head, 2 s for a snapshot).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP answer.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as is and reads the answer to the end (the exporter closes).
fn exchange(address: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(address).expect("connect to the exporter");
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    stream.write_all(request).expect("send the request");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read the answer");
    let text = String::from_utf8(bytes).expect("the answer is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `promtool check metrics` on `body`: no problem may be found.
fn promtool_check(body: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed; it validates what /metrics serves: install Debian's \
             `prometheus` package (bash tools/install-peers.sh does)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}\n--- the body:\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One scrape's series, `name{labels}` → value.
struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    fn parse(body: &str) -> Metrics {
        let mut series = BTreeMap::new();
        for line in body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, value) = line.rsplit_once(' ').expect("a series and its value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            series.insert(name.to_owned(), value);
        }
        Metrics(series)
    }

    fn get(&self, series: &str) -> f64 {
        match self.0.get(series) {
            Some(v) => *v,
            None => panic!(
                "no series {series} in the scrape; it has:\n{}",
                self.0.keys().cloned().collect::<Vec<_>>().join("\n")
            ),
        }
    }

    fn has(&self, series: &str) -> bool {
        self.0.contains_key(series)
    }
}

/// GET /metrics: its body (200, the text format's content type, valid for promtool).
fn scrape_text(address: SocketAddr) -> String {
    let a = exchange(
        address,
        b"GET /metrics HTTP/1.1\r\nHost: herald\r\nAccept: text/plain\r\n\r\n",
    );
    assert_eq!(a.status, 200, "{}\n{}", a.head, a.body);
    assert!(
        a.head
            .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        a.head
    );
    promtool_check(&a.body);
    a.body
}

/// GET /metrics, parsed.
fn scrape(address: SocketAddr) -> Metrics {
    Metrics::parse(&scrape_text(address))
}

/// OPERATIONS.md's metrics table: name → type.
fn documented() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/OPERATIONS.md"))
        .expect("OPERATIONS.md");
    doc.lines()
        .filter(|l| l.starts_with("| `herald"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

/// Every family a scrape has (`# TYPE` lines): name → type.
fn families(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("name and type");
            (name.to_owned(), kind.to_owned())
        })
        .collect()
}

/// The address the daemon serves metrics on, from its status.
fn metrics_address(d: &Daemon) -> SocketAddr {
    let status = d.status();
    assert_eq!(status["metrics"]["enabled"], true, "{status}");
    status["metrics"]["listen"]
        .as_str()
        .expect("the address bound")
        .parse()
        .expect("an address")
}

const OPS: &str = "subscription=\"ops\"";

#[test]
fn metrics_pass_promtool_and_follow_events_published_delivered_settled_redelivered_and_dead_lettered(
) {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let address = metrics_address(&d);
    assert!(address.ip().is_loopback() && address.port() != 0);

    let m = scrape(address);
    assert_eq!(m.get("herald_publishes_total{outcome=\"stored\"}"), 0.0);
    assert_eq!(m.get("herald_stored_events_total"), 0.0);
    assert_eq!(m.get("herald_durable_subscriptions"), 0.0);
    assert!(
        !m.has("herald_recovery_scan_duration_seconds"),
        "created now: no scan"
    );
    let gate =
        m.0.keys()
            .find(|k| k.starts_with("herald_info{"))
            .expect("herald_info");
    assert!(gate.contains("gate=\"fence\""), "{gate}");

    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops-reader").unwrap();
    sub.subscribe("ops", &["fs.>"], Severity::Debug, 16, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "fsd").unwrap();
    for payload in ["one", "two", "three"] {
        p.publish(&event("fs.vol1.error", Severity::Error, payload.as_bytes()))
            .unwrap();
    }
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let delivery = sub
            .next_delivery(Some(HTTP_TIMEOUT))
            .unwrap()
            .expect("a delivery");
        seqs.push(delivery.seq);
    }

    let body = scrape_text(address);
    // OPERATIONS.md documents exactly what is served (the scan's gauge is there only
    // after a restart, shown by the crash test).
    let served = families(&body);
    let mut listed = documented();
    listed.remove("herald_recovery_scan_duration_seconds");
    assert_eq!(
        served, listed,
        "OPERATIONS.md's table and the scrape differ"
    );
    let m = Metrics::parse(&body);
    assert_eq!(m.get("herald_publishes_total{outcome=\"stored\"}"), 3.0);
    assert_eq!(m.get("herald_stored_events_total"), 3.0);
    assert!(m.get("herald_stored_ring_bytes_total") >= 3.0 * 128.0);
    assert_eq!(m.get("herald_group_commit_events_sum"), 3.0);
    let groups = m.get("herald_group_commit_events_count");
    assert!((1.0..=3.0).contains(&groups), "{groups} group commits");
    assert_eq!(m.get("herald_commit_duration_seconds_count"), groups);
    assert_eq!(m.get("herald_ring_used_slots"), 3.0);
    assert_eq!(
        m.get("herald_ring_free_slots") + m.get("herald_ring_used_slots"),
        m.get("herald_ring_slots")
    );
    assert_eq!(m.get("herald_durable_subscriptions"), 1.0);
    assert_eq!(
        m.get(&format!("herald_subscription_connected{{{OPS}}}")),
        1.0
    );
    assert_eq!(
        m.get(&format!("herald_subscription_in_flight{{{OPS}}}")),
        3.0
    );
    assert_eq!(
        m.get(&format!("herald_subscription_pending_slots{{{OPS}}}")),
        3.0
    );
    assert_eq!(
        m.get(&format!("herald_subscription_holds_ring{{{OPS}}}")),
        1.0
    );
    assert_eq!(m.get("herald_connections_serving"), 2.0);

    // Confirm the first, nak the second (redelivered at once), reject the third.
    sub.confirm(seqs[0], seqs[0]).unwrap();
    sub.nak(seqs[1], 0).unwrap();
    sub.reject(seqs[2]).unwrap();
    let again = sub
        .next_delivery(Some(HTTP_TIMEOUT))
        .unwrap()
        .expect("the nak's redelivery");
    assert!(again.redelivered && again.seq == seqs[1]);
    sub.ping().unwrap();

    let m = scrape(address);
    assert_eq!(
        m.get(&format!("herald_subscription_redeliveries_total{{{OPS}}}")),
        1.0
    );
    assert_eq!(
        m.get(&format!("herald_subscription_dead_letters_total{{{OPS}}}")),
        1.0
    );
    assert_eq!(m.get("herald_dead_letters"), 1.0);
    assert!(m.get("herald_dead_letter_free_slots") < m.get("herald_dead_letter_slots"));
    assert_eq!(
        m.get(&format!("herald_subscription_in_flight{{{OPS}}}")),
        1.0
    );

    sub.confirm(seqs[1], seqs[1]).unwrap();
    sub.ping().unwrap();
    let m = scrape(address);
    assert_eq!(
        m.get(&format!("herald_subscription_in_flight{{{OPS}}}")),
        0.0
    );
    assert_eq!(
        m.get(&format!("herald_subscription_pending_slots{{{OPS}}}")),
        0.0
    );
    assert_eq!(m.get("herald_ring_used_slots"), 0.0, "every event released");

    // An idempotent retry: the second publish is answered from the window.
    let mut keyed = event("fs.vol1.error", Severity::Error, b"four");
    keyed.key = b"order-17";
    let first = p.publish(&keyed).unwrap();
    let retry = p.publish(&keyed).unwrap();
    assert_eq!(first.first_seq, retry.first_seq);
    let m = scrape(address);
    assert_eq!(m.get("herald_publishes_total{outcome=\"stored\"}"), 4.0);
    assert_eq!(
        m.get("herald_publishes_total{outcome=\"deduplicated\"}"),
        1.0
    );
    assert_eq!(m.get("herald_deduplicated_events_total"), 1.0);
    assert_eq!(m.get("herald_stored_events_total"), 4.0);
    assert_eq!(m.get("herald_idempotency_keys"), 1.0);

    // The subscriber leaves: the subscription stays, unattached.
    sub.goodbye().unwrap();
    p.ping().unwrap();
    let m = scrape(address);
    assert_eq!(
        m.get(&format!("herald_subscription_connected{{{OPS}}}")),
        0.0
    );
    assert_eq!(m.get("herald_connections_serving"), 1.0);
    assert_eq!(m.get(&format!("herald_subscription_paused{{{OPS}}}")), 0.0);
    assert_eq!(m.get("herald_ring_retained_slots"), 0.0, "no --retain");

    // An operator pauses it.
    let mut control = Client::connect(&d.socket(), Role::Control, "operator").unwrap();
    let answer = control
        .admin(r#"{"op":"subscriptions.pause","subscription":"ops"}"#)
        .unwrap();
    assert!(answer.contains("\"paused\":true"), "{answer}");
    p.ping().unwrap();
    let m = scrape(address);
    assert_eq!(m.get(&format!("herald_subscription_paused{{{OPS}}}")), 1.0);
    assert!(d.stop().success());
}

#[test]
fn the_exporter_answers_bad_requests_with_their_status_and_goes_on_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let address = metrics_address(&d);

    let garbage = exchange(address, b"\x16\x03\x01 not http at all\r\n\r\n");
    assert_eq!(garbage.status, 400, "{}", garbage.head);
    let post = exchange(
        address,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET, HEAD"), "{}", post.head);
    let elsewhere = exchange(address, b"GET /nothing HTTP/1.1\r\n\r\n");
    assert_eq!(elsewhere.status, 404);
    assert!(elsewhere.body.contains("/metrics"), "{}", elsewhere.body);
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 9000));
    let oversized = exchange(address, &huge);
    assert_eq!(oversized.status, 431);
    let head = exchange(address, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // A query string is ignored, as Prometheus' `params` would send one.
    let with_query = exchange(address, b"GET /metrics?format=text HTTP/1.1\r\n\r\n");
    assert_eq!(with_query.status, 200);

    // A client that says nothing holds the exporter until its request deadline only:
    // the scrape behind it is answered.
    let mut silent = TcpStream::connect(address).unwrap();
    silent.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    let m = scrape(address);
    assert_eq!(m.get("herald_durable_subscriptions"), 0.0);
    let mut told = String::new();
    silent.read_to_string(&mut told).unwrap();
    assert!(told.starts_with("HTTP/1.1 408 "), "{told}");

    // Through all of it the daemon served its socket.
    let mut p = Client::connect(&d.socket(), Role::Producer, "fsd").unwrap();
    p.publish(&event("fs.a", Severity::Info, b"x")).unwrap();
    assert_eq!(scrape(address).get("herald_stored_events_total"), 1.0);
    assert!(d.stop().success());
}

#[test]
fn after_a_crash_the_subscription_replaying_shows_recovering_with_the_scan_duration() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops-reader").unwrap();
    sub.subscribe("ops", &["fs.>"], Severity::Debug, 16, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "fsd").unwrap();
    p.publish(&event("fs.a", Severity::Info, b"unsettled"))
        .unwrap();
    sub.next_delivery(Some(HTTP_TIMEOUT))
        .unwrap()
        .expect("a delivery");
    d.kill();

    // The setting from the environment this time, as a unit file would give it.
    let d = Daemon::start_with(dir.path(), &[], |c| {
        c.env("HERALD_METRICS_LISTEN", "127.0.0.1:0");
    });
    let m = scrape(metrics_address(&d));
    assert_eq!(
        m.get(&format!("herald_subscription_recovering{{{OPS}}}")),
        1.0
    );
    assert_eq!(
        m.get(&format!("herald_subscription_connected{{{OPS}}}")),
        0.0
    );
    assert_eq!(m.get("herald_replaying_subscriptions"), 1.0);
    assert!(m.get("herald_recovery_scan_duration_seconds") >= 0.0);
    assert_eq!(
        documented()
            .get("herald_recovery_scan_duration_seconds")
            .map(String::as_str),
        Some("gauge")
    );
    assert!(d.stop().success());
}

#[test]
fn a_region_synced_to_disk_counts_its_syncs_in_the_sync_histogram() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &["--metrics-listen", "127.0.0.1:0", "--sync", "disk"],
    );
    let address = metrics_address(&d);
    let mut p = Client::connect(&d.socket(), Role::Producer, "fsd").unwrap();
    for _ in 0..3 {
        p.publish(&event("fs.a", Severity::Info, b"synced"))
            .unwrap();
    }
    let m = scrape(address);
    let gate =
        m.0.keys()
            .find(|k| k.starts_with("herald_info{"))
            .expect("herald_info");
    assert!(
        gate.contains("gate=\"sync\"") && gate.contains("durability=\"disk\""),
        "{gate}"
    );
    // Each `Stored` followed a sync that completed, so each publish saw at least one.
    let syncs = m.get("herald_syncs_total");
    assert!(syncs >= 1.0, "{syncs} syncs");
    assert_eq!(m.get("herald_sync_duration_seconds_count"), syncs);
    assert_eq!(
        m.get("herald_sync_duration_seconds_bucket{le=\"+Inf\"}"),
        syncs
    );
    assert!(d.stop().success());
}

#[test]
fn a_bad_or_taken_metrics_address_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = herald(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--metrics-listen",
        "localhost",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("127.0.0.1:9464"), "{said}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let out = Command::new(herald_binary())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--metrics-listen", &port])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("cannot serve metrics on {port}")),
        "{said}"
    );
    assert!(
        !dir.path().join("herald.sock").exists(),
        "the socket is removed"
    );
}
