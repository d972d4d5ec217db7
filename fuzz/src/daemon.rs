//! Target `daemon`: scripts of frames through the whole daemon core in one process
//! (`herald::sim::SimNode` over the simulated reactor and a 1 MiB simulated region).
//!
//! The input is a script. Its first byte chooses the network's transfer size and
//! whether a full ring makes publishes wait; then each step is one of: connect a
//! client, close one, stop or resume reading on one, send it raw bytes or a
//! structured frame (hello with any role and version range, publish with keys and
//! payloads up to the limit, batches, subscribe durable or live-only with any policy,
//! confirm, nak, working, reject, recovered, status, admin with generated or raw JSON,
//! ping, goodbye), run turns, advance simulated time, or restart the daemon (after a
//! clean SIGTERM shutdown, or from the image a power cut leaves).
//!
//! Checked throughout: `turn()` never fails (the simulated medium cannot) and the daemon
//! never panics; every frame it sends decodes and is a server-to-client frame; after a
//! closing error a connection receives nothing more, and it is then closed (so is one
//! that said goodbye), with no partial frame left behind. After the script: a fresh
//! client's hello and publish are answered.

use super::bytes::Choices;
use herald::delivery::{DaemonConfig, Phase, RedeliveryConfig};
use herald::log::{Log, LogConfig};
use herald::pmem::sim::SimMedium;
use herald::protocol::{
    Direction, ErrorCode, Event, EventBatch, Frame, Hello, Pattern, Patterns, Role, Seq, Severity,
    Subscribe, Topic, EVENT_PAYLOAD_BYTES_MAX,
};
use herald::reactor::sim::SimNet;
use herald::sim::{SimClient, SimNode};
use std::sync::OnceLock;
use std::time::Duration;

/// Steps one script runs at most.
const STEPS_MAX: usize = 96;
/// Clients connected at once (the daemon has room for more: a fresh client always fits).
const CLIENTS_MAX: usize = 4;
/// Connection slots of the daemon.
const CONNECTIONS_MAX: usize = CLIENTS_MAX + 4;
/// Bytes of the simulated region.
const REGION_BYTES: usize = 1 << 20;
/// Bytes each direction of a connection holds.
const SOCKET_BYTES: usize = 128 * 1024;
/// Where the daemon listens.
const SOCKET: &str = "/fuzz/herald.sock";
/// Turns a final check waits at most for what it expects (on a network that moves a
/// few bytes per transfer, an answer takes hundreds).
const SETTLE_TURNS: usize = 4096;

const CLIENT_NAMES: [&str; 4] = ["fsd", "", "producer-2", "ops"];
const SUBSCRIPTION_NAMES: [&str; 5] = ["ops", "", "audit", "a.b-c_9", "ops2"];
const TOPICS: [&str; 5] = ["fs.disk.error", "fs.quota", "net.link", "a", "fs.disk.warn"];
const PATTERNS: [&str; 7] = [">", "fs.>", "fs.*", "fs.disk.error", "*.*", "a", "net.>"];
const KEYS: [&[u8]; 4] = [b"", b"k1", b"k2", b"k3"];
const ADMIN_OPS: [&str; 17] = [
    "subscriptions",
    "dead.list",
    "dead.replay",
    "dead.purge",
    "dead.purge_unowned",
    "subscriptions.create",
    "subscriptions.delete",
    "subscriptions.pause",
    "subscriptions.resume",
    "subscriptions.reset",
    "subscriptions.set",
    "rules.list",
    "rules.add",
    "rules.set",
    "rules.delete",
    "rules.explain",
    "bogus",
];
/// Severity names, with ones the daemon must refuse.
const SEVERITY_NAMES: [&str; 6] = ["emerg", "err", "warning", "debug", "", "loud"];
/// Start and reset positions, with ones the daemon must refuse.
const POSITIONS: [&str; 8] = [
    "new",
    "first",
    "seq:1",
    "seq:0",
    "seq:18446744073709551615",
    "time:1970-01-01T00:00:00Z",
    "time:",
    "later",
];

/// Payload bytes for events (their content does not matter; their size does).
static PAYLOAD: [u8; EVENT_PAYLOAD_BYTES_MAX] = [b'p'; EVENT_PAYLOAD_BYTES_MAX];

/// A formatted, cleanly closed region image: formatting per input would cost more
/// than the script.
fn base_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let config = LogConfig {
            subscription_entries: 4,
            ..LogConfig::default()
        };
        let mut log = Log::format(SimMedium::new(REGION_BYTES), &config, 0x4655_5a5a_0000_0001)
            .expect("format the fuzz region");
        log.close_clean().expect("clean stop");
        log.into_medium().state().durable_image()
    })
}

/// One client of the script, and what it has seen.
struct Client {
    sim: SimClient,
    /// It received an error that closes the connection.
    closing_error: bool,
    /// It sent a goodbye (taken by its output buffer).
    said_goodbye: bool,
    /// The script closed its end.
    closed_by_us: bool,
    /// The script stopped reading for it.
    paused: bool,
}

impl Client {
    fn new(sim: SimClient) -> Client {
        Client {
            sim,
            closing_error: false,
            said_goodbye: false,
            closed_by_us: false,
            paused: false,
        }
    }

    /// Reads what arrived, checking every frame; notes delivered and stored numbers.
    fn receive(&mut self, seqs: &mut Vec<u64>) {
        let mut closing = self.closing_error;
        self.sim.receive(|frame| {
            assert!(
                !closing,
                "a frame after a closing error: {:?}",
                frame.frame_type()
            );
            assert_eq!(
                frame.frame_type().direction(),
                Direction::ServerToClient,
                "the daemon sent {:?}",
                frame.frame_type()
            );
            match frame {
                Frame::Error { code, .. } if code.closes_connection() => closing = true,
                Frame::Deliver(d) => remember(seqs, d.seq.0),
                Frame::Stored { first_seq, .. } => remember(seqs, first_seq.0),
                _ => {}
            }
        });
        self.closing_error = closing;
    }
}

/// Keeps the last numbers seen, for settling frames and admin requests to name.
fn remember(seqs: &mut Vec<u64>, seq: u64) {
    if seqs.len() == 32 {
        seqs.remove(0);
    }
    seqs.push(seq);
}

/// The daemon, its clients and the network between them.
struct Run {
    net: SimNet,
    /// Always there, but for the moment of a restart.
    node: Option<SimNode<SimMedium>>,
    config: DaemonConfig,
    clients: Vec<Client>,
    seqs: Vec<u64>,
    chunk_bytes: usize,
}

/// Checks one script.
pub fn run(data: &[u8]) {
    let mut choices = Choices::new(data);
    let setup = choices.u8();
    let chunk_bytes = [64 * 1024, 4096, 509, 61][usize::from(setup & 3)];
    let config = DaemonConfig {
        connections_max: CONNECTIONS_MAX,
        dedupe_records: 64,
        full_wait: (setup & 4 != 0).then_some(Duration::from_millis(20)),
        redelivery: RedeliveryConfig {
            ack_deadline: Duration::from_secs(2),
            max_deliveries: 3,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
        },
        ..DaemonConfig::default()
    };
    let log = open(base_image().to_vec()).0;
    let net = SimNet::new(SOCKET_BYTES, chunk_bytes);
    let node = SimNode::start(&net, SOCKET, config.clone(), log, true).expect("start");
    let mut run = Run {
        net,
        node: Some(node),
        config,
        clients: Vec::new(),
        seqs: Vec::new(),
        chunk_bytes,
    };
    for _ in 0..STEPS_MAX {
        if choices.is_empty() {
            break;
        }
        run.step(&mut choices);
    }
    run.finish();
}

fn open(image: Vec<u8>) -> (Log<SimMedium>, bool) {
    let (log, report) =
        Log::open(SimMedium::from_image(image), &mut |_, _| {}).expect("the daemon's region opens");
    let clean = report.previous_stop == herald::log::PreviousStop::Clean;
    (log, clean)
}

impl Run {
    fn node(&mut self) -> &mut SimNode<SimMedium> {
        self.node.as_mut().expect("a node outside a restart")
    }

    fn turn(&mut self) {
        let phase = self
            .node()
            .turn()
            .expect("a turn never fails on the simulated medium");
        assert_eq!(phase, Phase::Running, "the daemon stopped by itself");
        for client in self.clients.iter_mut().filter(|c| !c.paused) {
            client.receive(&mut self.seqs);
        }
    }

    fn step(&mut self, c: &mut Choices<'_>) {
        let op = c.u8() % 32;
        if tracing() {
            eprintln!("step op {op} ({} clients)", self.clients.len());
        }
        if op < 2 {
            // Clients that are gone make room for new ones.
            if self.clients.len() == CLIENTS_MAX {
                if let Some(gone) = self
                    .clients
                    .iter()
                    .position(|c| c.closed_by_us || c.sim.is_closed())
                {
                    self.clients.remove(gone);
                }
            }
            if self.clients.len() < CLIENTS_MAX {
                let sim = self.node().connect();
                self.clients.push(Client::new(sim));
            }
            return;
        }
        match op {
            2..=19 => {
                let Some(index) = self.client_index(c) else {
                    return;
                };
                self.client_step(op, index, c);
            }
            20..=25 => {
                for _ in 0..c.below(8) + 1 {
                    self.turn();
                }
            }
            26 | 27 => {
                let ms = c.pick(&[1u64, 10, 100, 1000, 2500, 60_000]);
                self.net.advance(Duration::from_millis(ms));
                self.turn();
            }
            28 => {
                if let Some(index) = self.client_index(c) {
                    let client = &mut self.clients[index];
                    client.paused = !client.paused;
                }
            }
            29 => {
                if let Some(index) = self.client_index(c) {
                    let client = &mut self.clients[index];
                    client.sim.close();
                    client.closed_by_us = true;
                }
            }
            30 => self.restart(c.bool()),
            _ => self.turn(),
        }
    }

    fn client_index(&mut self, c: &mut Choices<'_>) -> Option<usize> {
        let n = self.clients.len();
        (n > 0).then(|| c.below(n))
    }

    /// One frame (or raw bytes) from client `index`.
    fn client_step(&mut self, op: u8, index: usize, c: &mut Choices<'_>) {
        let seqs = self.seqs.clone();
        let client = &mut self.clients[index];
        let sim = &mut client.sim;
        match op {
            2 => {
                let len = usize::from(c.u16() % 512);
                sim.send_bytes(c.bytes(len));
            }
            3 => {
                let role = c.pick(&Role::ALL);
                let (version_min, version_max) = if c.u8() < 16 {
                    (c.u16(), c.u16())
                } else {
                    (1, 1)
                };
                let name = if c.u8() < 16 {
                    String::from_utf8_lossy(c.bytes(32)).into_owned()
                } else {
                    c.pick(&CLIENT_NAMES).to_string()
                };
                sim.send(&Frame::Hello(Hello {
                    version_min,
                    version_max,
                    role,
                    client_name: &name,
                }));
            }
            4 => {
                let correlation = u64::from(c.u8());
                let event = event(c);
                sim.send(&Frame::Publish { correlation, event });
            }
            5 => {
                let correlation = u64::from(c.u8());
                let count = if c.u8() == 255 { 256 } else { c.below(6) + 1 };
                let first = event(c);
                let events: Vec<Event<'_>> = (0..count)
                    .map(|i| if i % 3 == 2 { event(c) } else { first })
                    .collect();
                sim.send(&Frame::PublishBatch {
                    correlation,
                    events: EventBatch::from_events(&events),
                });
            }
            6 => subscribe(sim, c),
            7 => {
                let a = pick_seq(c, &seqs);
                let b = pick_seq(c, &seqs);
                sim.send(&Frame::Confirm {
                    first_seq: Seq(a.min(b)),
                    last_seq: Seq(a.max(b)),
                });
            }
            8 => {
                let seq = Seq(pick_seq(c, &seqs));
                let delay_ms = c.pick(&[0, 1, 100, 5000]);
                sim.send(&Frame::Nak { seq, delay_ms });
            }
            9 => {
                let seq = Seq(pick_seq(c, &seqs));
                sim.send(&Frame::Working { seq });
            }
            10 | 11 => {
                let seq = Seq(pick_seq(c, &seqs));
                sim.send(&Frame::Reject { seq });
            }
            12 => {
                sim.send(&Frame::Recovered);
            }
            13 => {
                sim.send(&Frame::Status);
            }
            14 | 15 => {
                let json = admin_json(c, &seqs);
                sim.send(&Frame::Admin { json: &json });
            }
            16 => {
                let token = c.u64();
                sim.send(&Frame::Ping { token });
            }
            17 => {
                if sim.send(&Frame::Goodbye) {
                    client.said_goodbye = true;
                }
            }
            _ => {
                // Two frames at once, the second right behind the first.
                let token = c.u64();
                sim.send(&Frame::Ping { token });
                sim.send(&Frame::Status);
            }
        }
    }

    /// Stops the daemon (cleanly, or as a power cut would) and starts it again over
    /// what its region holds; the clients of the old daemon are gone.
    fn restart(&mut self, clean: bool) {
        let mut old = self.node.take().expect("a node outside a restart");
        if clean {
            self.net.terminate();
            let mut stopped = false;
            for _ in 0..SETTLE_TURNS {
                let phase = old
                    .turn()
                    .expect("a turn never fails on the simulated medium");
                for client in self.clients.iter_mut().filter(|c| !c.paused) {
                    client.receive(&mut self.seqs);
                }
                if phase == Phase::Stopped {
                    stopped = true;
                    break;
                }
            }
            assert!(stopped, "a SIGTERM shutdown did not finish");
            old.core_mut().stop().expect("a clean stop");
        }
        let image = old.crash().into_medium().state().durable_image();
        let (log, previous_stop_clean) = open(image);
        assert_eq!(
            previous_stop_clean, clean,
            "the run-state word after the stop"
        );
        // Time goes on across the restart.
        let net = SimNet::new(SOCKET_BYTES, self.chunk_bytes);
        net.advance(Duration::from_nanos(self.net.now_ns()));
        let node = SimNode::start(&net, SOCKET, self.config.clone(), log, previous_stop_clean)
            .expect("restart");
        self.node = Some(node);
        self.net = net;
        self.clients.clear();
    }

    /// The final checks: closed connections are closed, and a fresh client is served.
    fn finish(mut self) {
        for client in &mut self.clients {
            client.paused = false;
        }
        let must_close = |c: &Client| !c.closed_by_us && (c.closing_error || c.said_goodbye);
        for turn in 0..SETTLE_TURNS {
            if turn >= 16
                && self
                    .clients
                    .iter()
                    .all(|c| !must_close(c) || c.sim.is_closed())
            {
                break;
            }
            self.turn();
        }
        for (index, client) in self.clients.iter().enumerate() {
            if must_close(client) {
                assert!(
                    client.sim.is_closed(),
                    "client {index} (closing error {}, goodbye {}) is still open",
                    client.closing_error,
                    client.said_goodbye
                );
            }
            if client.sim.is_closed() {
                assert_eq!(client.sim.unread(), 0, "a partial frame before the close");
            }
        }
        // A daemon whose connection slots are all taken (by connections it has not yet
        // seen closing) refuses a new one by closing it: a client tries again.
        for _attempt in 0..CONNECTIONS_MAX {
            if self.fresh_client_is_served() {
                return;
            }
        }
        panic!("a fresh client's hello and publish were not answered");
    }

    /// Connects a producer, publishes, and runs turns until the publish is answered
    /// (true) or the connection was refused (false).
    fn fresh_client_is_served(&mut self) -> bool {
        let mut fresh = Client::new(self.node().connect());
        fresh.sim.send(&herald::sim::hello(Role::Producer, "fresh"));
        let correlation = 0x00f1_2e54;
        let event = Event {
            topic: Topic::new(b"fuzz.fresh").expect("valid topic"),
            severity: Severity::Emergency,
            source: "",
            flags: 0,
            key: b"",
            payload: b"still serving",
        };
        fresh.sim.send(&Frame::Publish { correlation, event });
        let mut hello_ok = false;
        let mut answered = false;
        for _ in 0..SETTLE_TURNS {
            self.turn();
            fresh.sim.receive(|frame| match frame {
                _ if tracing() && {
                    eprintln!("fresh client got {frame:?}");
                    false
                } => {}
                Frame::HelloOk(_) => hello_ok = true,
                Frame::Stored { correlation: c, .. } if c == correlation => answered = true,
                Frame::Error {
                    correlation: c,
                    code: ErrorCode::Full,
                    ..
                } if c == correlation => answered = true,
                other => panic!("a fresh producer got {other:?}"),
            });
            if answered {
                assert!(hello_ok, "a publish answered before the hello");
                return true;
            }
            if fresh.sim.is_closed() {
                assert!(
                    !hello_ok,
                    "closed after its hello, with its publish unanswered"
                );
                return false;
            }
        }
        panic!("a fresh client was neither served nor refused in {SETTLE_TURNS} turns");
    }
}

/// Whether to print each step (`HERALD_FUZZ_TRACE=1`, for reading a finding).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("HERALD_FUZZ_TRACE").is_some())
}

/// A seq the client saw (most often) or any number.
fn pick_seq(c: &mut Choices<'_>, seqs: &[u64]) -> u64 {
    let choice = c.u8();
    if seqs.is_empty() || choice < 24 {
        return u64::from(c.u16());
    }
    let seq = seqs[usize::from(choice) % seqs.len()];
    // Now and then a neighbour: the middle of an event, or the next one.
    match choice % 8 {
        0 => seq + 1,
        1 => seq.saturating_sub(1),
        _ => seq,
    }
}

/// An event with a topic, source, key and payload chosen by the script.
fn event<'a>(c: &mut Choices<'a>) -> Event<'a> {
    let shape = c.u8();
    let topic = if shape < 8 {
        // Script bytes when they make a topic (raw frames carry the invalid ones).
        Topic::new(c.bytes(8)).unwrap_or(Topic::new(b"x").expect("valid"))
    } else {
        Topic::new(c.pick(&TOPICS).as_bytes()).expect("valid topic")
    };
    let severity = Severity::from_u8(c.u8() % 8).expect("0..=7");
    let payload_len = match c.u8() % 16 {
        0 => EVENT_PAYLOAD_BYTES_MAX,
        1 => usize::from(c.u16()),
        2 => 2000,
        _ => usize::from(c.u8()),
    };
    Event {
        topic,
        severity,
        source: if shape & 1 == 1 { "fuzz" } else { "" },
        flags: u16::from(shape),
        key: c.pick(&KEYS),
        payload: &PAYLOAD[..payload_len.min(EVENT_PAYLOAD_BYTES_MAX)],
    }
}

fn subscribe(sim: &mut SimClient, c: &mut Choices<'_>) {
    let name = c.pick(&SUBSCRIPTION_NAMES);
    let count = c.below(3) + 1;
    let patterns: Vec<Pattern<'static>> = (0..count)
        .map(|_| Pattern::parse(c.pick(&PATTERNS).as_bytes()).expect("valid pattern"))
        .collect();
    sim.send(&Frame::Subscribe(Subscribe {
        name,
        min_severity: Severity::from_u8(c.u8() % 8).expect("0..=7"),
        window_events: c.pick(&[1, 2, 4, 64, 4096]),
        automatic_recovery: c.bool(),
        group: c.bool(),
        ack_deadline_ms: c.pick(&[0, 1, 50, 1000, 3_600_000]),
        max_deliveries: c.pick(&[0, 1, 2, 3, 65535]),
        patterns: Patterns::from_patterns(&patterns),
    }));
}

/// An `Admin` body: a request built from the fields the daemon knows (often with
/// values it must refuse), or raw bytes.
fn admin_json(c: &mut Choices<'_>, seqs: &[u64]) -> String {
    if c.u8() < 32 {
        let len = usize::from(c.u16() % 600);
        return String::from_utf8_lossy(c.bytes(len)).into_owned();
    }
    let mut fields = vec![format!("\"op\":\"{}\"", c.pick(&ADMIN_OPS))];
    if c.bool() {
        fields.push(format!(
            "\"subscription\":\"{}\"",
            c.pick(&SUBSCRIPTION_NAMES)
        ));
    }
    if c.bool() {
        let list: Vec<String> = (0..c.below(4))
            .map(|_| pick_seq(c, seqs).to_string())
            .collect();
        fields.push(format!("\"seqs\":[{}]", list.join(",")));
    }
    if c.bool() {
        fields.push(format!("\"all\":{}", c.bool()));
    }
    if c.bool() {
        let limit = c.pick(&["0", "1", "2", "200", "100000", "-1", "18446744073709551615"]);
        fields.push(format!("\"limit\":{limit}"));
    }
    if c.bool() {
        fields.push(format!("\"after_seq\":{}", pick_seq(c, seqs)));
        if c.bool() {
            fields.push(format!("\"after_subscription\":{}", c.u32()));
        }
    }
    if c.bool() {
        fields.push(format!("\"after_index\":{}", c.u8()));
    }
    if c.bool() {
        management_fields(c, &mut fields);
    }
    if c.u8() < 16 {
        fields.push("\"unknown\":1".to_string());
    }
    format!("{{{}}}", fields.join(","))
}

/// The fields of subscription management (`subscriptions.*`) and of routing rules
/// (`rules.*`): each present or not, with values the daemon must accept or refuse.
fn management_fields(c: &mut Choices<'_>, fields: &mut Vec<String>) {
    let quoted = |list: Vec<&str>| {
        let items: Vec<String> = list.iter().map(|p| format!("\"{p}\"")).collect();
        format!("[{}]", items.join(","))
    };
    if c.bool() {
        let filter: Vec<&str> = (0..c.below(3)).map(|_| c.pick(&PATTERNS)).collect();
        fields.push(format!("\"filter\":{}", quoted(filter)));
    }
    for name in ["min_severity", "most_severe", "least_severe"] {
        if c.bool() {
            fields.push(format!("\"{name}\":\"{}\"", c.pick(&SEVERITY_NAMES)));
        }
    }
    if c.bool() {
        fields.push(format!("\"start\":\"{}\"", c.pick(&POSITIONS)));
    }
    if c.bool() {
        // A reset's position; a deliver rule's targets.
        if c.bool() {
            fields.push(format!("\"to\":\"{}\"", c.pick(&POSITIONS)));
        } else {
            let to: Vec<&str> = (0..c.below(8))
                .map(|_| c.pick(&SUBSCRIPTION_NAMES))
                .collect();
            fields.push(format!("\"to\":{}", quoted(to)));
        }
    }
    if c.bool() {
        fields.push(format!(
            "\"ack_deadline_ms\":{}",
            c.pick(&[0u32, 1, 30_000, u32::MAX])
        ));
    }
    if c.bool() {
        fields.push(format!(
            "\"max_deliveries\":{}",
            c.pick(&[0u32, 1, 65_535, 65_536])
        ));
    }
    if c.bool() {
        fields.push(format!("\"keep_dead_letters\":{}", c.bool()));
    }
    if c.bool() {
        fields.push(format!("\"id\":{}", c.pick(&[0u32, 1, 2, 3, u32::MAX])));
    }
    if c.bool() {
        fields.push(format!(
            "\"priority\":{}",
            c.pick(&[0i64, 1, -1, 1 << 31, -(1 << 31) - 1])
        ));
    }
    if c.bool() {
        fields.push(format!("\"topic\":\"{}\"", c.pick(&PATTERNS)));
    }
    if c.bool() {
        let source = c.pick(&["", "fsd", "fsd.>", "*", "bad..pattern"]);
        fields.push(format!("\"source\":\"{source}\""));
    }
    if c.bool() {
        let action = c.pick(&["deliver", "drop", "filters", "bounce"]);
        fields.push(format!("\"action\":\"{action}\""));
    }
    if c.bool() {
        fields.push(format!("\"all_versions\":{}", c.bool()));
    }
    if c.bool() {
        fields.push(format!("\"severity\":\"{}\"", c.pick(&SEVERITY_NAMES)));
    }
}
