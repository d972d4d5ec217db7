//! A real `nats-server -js` on loopback (its own port and store directory) and a tiny
//! blocking client of the raw NATS protocol for the tests: create a stream, read its
//! messages back with the direct-get API (headers and payload as stored). No NATS crate:
//! the protocol is a handful of lines, and the herald package carries no async runtime.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to accept connections with JetStream up: a failure detector.
pub const SERVER_START_MAX: Duration = Duration::from_secs(30);
/// Between two attempts to reach a starting server: decides only how late it is seen.
const START_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long one request may wait for its answer: a failure detector.
const REQUEST_MAX: Duration = Duration::from_secs(10);

/// A port no one listens on now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `nats-server -js`; stopped (SIGKILL) when dropped.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    store: PathBuf,
}

impl NatsServer {
    /// Starts the server on `port` with its JetStream store in `store`, and waits
    /// until a client can connect and JetStream answers.
    pub fn start(port: u16, store: &Path) -> NatsServer {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (tools/install-peers.sh installs it)");
        let server = NatsServer {
            child: Some(child),
            port,
            store: store.to_owned(),
        };
        let deadline = Instant::now() + SERVER_START_MAX;
        loop {
            if let Ok(mut c) = Nats::connect(port) {
                // JetStream is up once it answers (before, "no responders": 503).
                if c.request("$JS.API.INFO", b"")
                    .is_ok_and(|m| m.status.is_none())
                {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on {port}"
            );
            std::thread::sleep(START_POLL_INTERVAL);
        }
    }

    /// SIGTERM (a clean stop: the store is flushed) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain syscall on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            child.wait().expect("wait for nats-server");
        }
    }

    /// Stops it and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        *self = NatsServer::start(self.port, &self.store.clone());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message as the server sent it.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    /// The status of a header block's first line (`NATS/1.0 404` → 404).
    pub status: Option<u16>,
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// A blocking client of the raw protocol.
pub struct Nats {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next: u64,
}

impl Nats {
    pub fn connect(port: u16) -> std::io::Result<Nats> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(REQUEST_MAX))?;
        // A request is written in pieces: without this, Nagle's algorithm and the
        // server's delayed ACK hold each one back.
        stream.set_nodelay(true)?;
        let mut nats = Nats {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next: 0,
        };
        let info = nats.line()?;
        if !info.starts_with("INFO ") {
            return Err(std::io::Error::other(format!("not INFO: {info}")));
        }
        nats.writer.write_all(
            b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB _INBOX.test.* 1\r\nPING\r\n",
        )?;
        loop {
            match nats.line()?.as_str() {
                "PONG" => return Ok(nats),
                "PING" => nats.writer.write_all(b"PONG\r\n")?,
                other if other.starts_with("-ERR") => {
                    return Err(std::io::Error::other(other.to_owned()))
                }
                _ => {}
            }
        }
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("the server closed the connection"));
        }
        Ok(line.trim_end_matches("\r\n").to_owned())
    }

    /// Sends a request and returns its answer (a message on our inbox).
    pub fn request(&mut self, subject: &str, payload: &[u8]) -> std::io::Result<Message> {
        self.next += 1;
        let reply = format!("_INBOX.test.{}", self.next);
        self.writer
            .write_all(format!("PUB {subject} {reply} {}\r\n", payload.len()).as_bytes())?;
        self.writer.write_all(payload)?;
        self.writer.write_all(b"\r\n")?;
        loop {
            let line = self.line()?;
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.first().copied() {
                Some("PING") => self.writer.write_all(b"PONG\r\n")?,
                Some("MSG") | Some("HMSG") => {
                    let with_headers = fields[0] == "HMSG";
                    let total: usize = fields[fields.len() - 1].parse().unwrap();
                    let header_len: usize = if with_headers {
                        fields[fields.len() - 2].parse().unwrap()
                    } else {
                        0
                    };
                    let mut body = vec![0u8; total + 2];
                    self.reader.read_exact(&mut body)?;
                    body.truncate(total);
                    let payload = body.split_off(header_len);
                    if fields[1] != reply {
                        continue; // an answer to an earlier request that timed out
                    }
                    let (status, headers) = parse_headers(&body);
                    return Ok(Message {
                        subject: fields[1].to_owned(),
                        status,
                        headers,
                        payload,
                    });
                }
                Some(op) if op.starts_with("-ERR") => {
                    return Err(std::io::Error::other(line.clone()))
                }
                _ => {}
            }
        }
    }

    /// A request whose answer is JSON.
    pub fn json(&mut self, subject: &str, payload: &str) -> serde_json::Value {
        let m = self.request(subject, payload.as_bytes()).expect(subject);
        serde_json::from_slice(&m.payload).unwrap_or_else(|_| panic!("{subject}: not JSON: {m:?}"))
    }

    /// Creates stream `name` over `subjects`, file storage, direct get allowed and a
    /// duplicate window of ten minutes (longer than any test).
    pub fn create_stream(&mut self, name: &str, subjects: &str) {
        let config = format!(
            r#"{{"name":"{name}","subjects":["{subjects}"],"storage":"file","allow_direct":true,"duplicate_window":600000000000}}"#
        );
        let answer = self.json(&format!("$JS.API.STREAM.CREATE.{name}"), &config);
        assert!(answer.get("error").is_none(), "stream create: {answer}");
    }

    /// How many messages stream `name` holds.
    pub fn stream_messages(&mut self, name: &str) -> u64 {
        let info = self.json(&format!("$JS.API.STREAM.INFO.{name}"), "");
        info["state"]["messages"]
            .as_u64()
            .unwrap_or_else(|| panic!("stream info: {info}"))
    }

    /// Every message of stream `name`, in stream order.
    pub fn read_all(&mut self, name: &str) -> Vec<Message> {
        let info = self.json(&format!("$JS.API.STREAM.INFO.{name}"), "");
        let first = info["state"]["first_seq"].as_u64().unwrap();
        let last = info["state"]["last_seq"].as_u64().unwrap();
        let mut out = Vec::new();
        for seq in first..=last {
            let m = self
                .request(
                    &format!("$JS.API.DIRECT.GET.{name}"),
                    format!(r#"{{"seq":{seq}}}"#).as_bytes(),
                )
                .expect("direct get");
            if m.status == Some(404) {
                continue;
            }
            assert_eq!(m.status, None, "direct get {seq}: {m:?}");
            out.push(m);
        }
        out
    }
}

fn parse_headers(block: &[u8]) -> (Option<u16>, BTreeMap<String, String>) {
    let text = String::from_utf8_lossy(block);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("NATS/1.0"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|code| code.parse().ok());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (status, headers)
}
