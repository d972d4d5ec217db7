//! The exporter: one thread answering `GET /metrics` over HTTP/1.1 on a TCP address.
//!
//! Written by hand over `std::net::TcpListener` (the request head is parsed by
//! `httparse`): a scrape is one GET with no body, answered with `Connection: close`, so
//! an HTTP server crate would bring an async runtime or a thread pool for nothing, and
//! its bounds would be harder to state than these:
//! - one connection at a time (the others wait in the kernel's backlog): a scrape is
//!   rare and quick;
//! - a request head of at most [`REQUEST_HEAD_BYTES_MAX`], read within
//!   [`REQUEST_DEADLINE`]; the answer written within [`WRITE_TIMEOUT`]; so one slow
//!   client holds the exporter for seconds, never longer;
//! - anything but a well-formed GET is answered 400, 404, 405 or 431 and closed;
//!   nothing a client sends can make the thread panic or wait without end.

use super::encode::{encode, CONTENT_TYPE};
use super::exchange::Exchange;
use nix::sys::signal::{SigSet, Signal};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The path metrics are served at.
pub const METRICS_PATH: &str = "/metrics";
/// Longest request head (request line and headers) read.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Most headers a request may have.
const HEADERS_MAX: usize = 64;
/// A request head not complete this long after the connection was accepted is
/// answered 408 and closed.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Longest a blocked write of the answer waits.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scrape waits for the loop's snapshot: the loop looks once per turn and
/// sleeps at most 200 ms between turns, so this is only reached when the loop is
/// stuck (the last snapshot is then served, its age showing it) or still starting.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);
/// Pause after a failed accept (out of file descriptors, say) before the next one, so
/// that a lasting failure does not spin the thread.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The running exporter; stops its thread when dropped.
pub struct Exporter {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Binds `address` (port 0: any free port; [`Exporter::local_addr`] says which)
    /// and serves from a thread of its own, taking snapshots from `exchange`.
    pub fn start(address: SocketAddr, exchange: Arc<Exchange>) -> io::Result<Exporter> {
        let listener = TcpListener::bind(address)?;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("herald-metrics".into())
            .spawn(move || {
                // SIGTERM and SIGINT are the loop's, read from its signalfd once its
                // reactor blocked them; a thread started before that would take them
                // with their default action (ending the daemon uncleanly) instead.
                let mut loops = SigSet::empty();
                loops.add(Signal::SIGTERM);
                loops.add(Signal::SIGINT);
                if let Err(e) = loops.thread_block() {
                    tracing::warn!(error = %e, "the metrics thread could not block SIGTERM");
                }
                serve(listener, &exchange, &stopping)
            })?;
        Ok(Exporter {
            local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The thread waits in accept: a connection of our own wakes it to see the flag.
        let mut wake = self.local;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, WRITE_TIMEOUT).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn serve(listener: TcpListener, exchange: &Exchange, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match stream {
            Ok(stream) => {
                if let Err(e) = answer(stream, exchange) {
                    tracing::debug!(error = %e, "metrics request not answered");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                std::thread::sleep(ACCEPT_RETRY);
            }
        }
    }
}

/// An answer: status line, content type and body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    allow_get: bool,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            allow_get: false,
            body: body.into(),
        }
    }
}

fn answer(mut stream: TcpStream, exchange: &Exchange) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut head = [0u8; REQUEST_HEAD_BYTES_MAX];
    let (response, head_request) = match read_head(&mut stream, &mut head)? {
        Head::Complete(len) => respond(&head[..len], exchange),
        Head::TooLarge => (
            Response::text(
                "431 Request Header Fields Too Large",
                format!("the request head exceeds {REQUEST_HEAD_BYTES_MAX} bytes\n"),
            ),
            false,
        ),
        Head::TimedOut => (
            Response::text(
                "408 Request Timeout",
                "the request head did not arrive in time\n",
            ),
            false,
        ),
        Head::Closed => return Ok(()),
    };
    write_response(&mut stream, &response, head_request)?;
    // Closed after one answer: what else the client sent is discarded.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

enum Head {
    /// The request head ends at this length (the blank line included).
    Complete(usize),
    /// No blank line within the buffer.
    TooLarge,
    /// Not complete by the deadline.
    TimedOut,
    /// The client closed before sending a whole head.
    Closed,
}

/// Reads until the blank line that ends the head, within the buffer and the deadline.
fn read_head(stream: &mut TcpStream, buffer: &mut [u8]) -> io::Result<Head> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut len = 0;
    loop {
        if let Some(end) = head_end(&buffer[..len]) {
            return Ok(Head::Complete(end));
        }
        if len == buffer.len() {
            return Ok(Head::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Head::TimedOut);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buffer[len..]) {
            Ok(0) => return Ok(Head::Closed),
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Head::TimedOut)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Where the head ends: after the first empty line.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
        // A bare-LF client (netcat by hand) is answered too.
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n").map(|at| at + 2))
}

/// The answer to a complete head, and whether it was a HEAD request (no body sent).
fn respond(head: &[u8], exchange: &Exchange) -> (Response, bool) {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => {
            return (
                Response::text("400 Bad Request", "not an HTTP/1.x request head\n"),
                false,
            )
        }
    }
    let method = request.method.unwrap_or("");
    let path = request.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    let is_head = method == "HEAD";
    if method != "GET" && !is_head {
        let mut response = Response::text(
            "405 Method Not Allowed",
            format!("only GET is served; try GET {METRICS_PATH}\n"),
        );
        response.allow_get = true;
        return (response, false);
    }
    let response = match path {
        METRICS_PATH => metrics(exchange),
        "/" => Response::text(
            "200 OK",
            format!("herald: Prometheus metrics at {METRICS_PATH}\n"),
        ),
        _ => Response::text(
            "404 Not Found",
            format!("nothing at {path}; metrics are at {METRICS_PATH}\n"),
        ),
    };
    (response, is_head)
}

fn metrics(exchange: &Exchange) -> Response {
    let fetched = exchange.fetch(SNAPSHOT_WAIT);
    if fetched.snapshot.number == 0 {
        return Response::text(
            "503 Service Unavailable",
            "the daemon is starting (its recovery scan may be under way): no metrics yet\n",
        );
    }
    // Copied out, so that the loop may hand over its next snapshot while this one is
    // encoded.
    let snapshot = fetched.snapshot.clone();
    drop(fetched);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let age = now.saturating_sub(snapshot.taken_unix_ns);
    match encode(snapshot, age) {
        Ok(body) => Response {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            allow_get: false,
            body,
        },
        Err(_) => Response::text(
            "500 Internal Server Error",
            "the metrics could not be encoded\n",
        ),
    }
}

fn write_response(stream: &mut TcpStream, r: &Response, head_request: bool) -> io::Result<()> {
    let allow = if r.allow_get {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let header = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head_request {
        stream.write_all(r.body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
    }

    #[test]
    fn requests_other_than_a_get_of_metrics_are_refused_with_their_status() {
        let exchange = Exchange::new(0);
        let status = |head: &[u8]| respond(head, &exchange).0.status;
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\n\r\n"),
            "405 Method Not Allowed"
        );
        assert_eq!(status(b"GET /other HTTP/1.1\r\n\r\n"), "404 Not Found");
        assert_eq!(status(b"\x00\x01garbage\r\n\r\n"), "400 Bad Request");
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), "200 OK");
    }
}
