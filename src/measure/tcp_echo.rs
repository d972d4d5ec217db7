//! The floors under a publish over `tls://`: a bare echo on a loopback TCP port, plain
//! and through a TLS 1.3 session, in a thread of the measuring process like the
//! Unix-socket [`EchoServer`](super::EchoServer).
//!
//! Plain TCP beside TLS shows what TLS itself costs a round trip; TLS beside a publish
//! over `tls://` shows what herald adds to it. The TLS configurations come from the
//! caller, so the echo runs the very provider, versions and client-certificate check
//! that the daemon and the client run (this module may not name `tls` or `delivery`:
//! ARCHITECTURE.md's dependency rule).

use super::{round_trips, ECHO_BUFFER_BYTES};
use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest a floor's client waits for its server: the server is a thread of this
/// process, so only a bug makes it wait at all, and then it fails instead of hanging.
const ECHO_IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A bare echo server on 127.0.0.1 (a port the system picks): one thread per accepted
/// connection returning every byte it reads, in plaintext or, with a TLS
/// configuration, inside a TLS session. It stops when its clients hang up and it is
/// dropped.
pub struct TcpEchoServer {
    /// Where it listens.
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TcpEchoServer {
    /// Listens and serves connections in the background; `tls`: each connection is a
    /// TLS server session of that configuration.
    pub fn start(tls: Option<Arc<ServerConfig>>) -> io::Result<TcpEchoServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                // Relaxed: the flag carries no data; drop wakes accept with a connection.
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(socket) = stream else { return };
                let tls = tls.clone();
                std::thread::spawn(move || serve(socket, tls));
            }
        });
        Ok(TcpEchoServer { address, stop })
    }
}

impl Drop for TcpEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accepting thread so it sees the flag and closes the listener.
        let _ = TcpStream::connect(self.address);
    }
}

fn serve(socket: TcpStream, tls: Option<Arc<ServerConfig>>) {
    // As the daemon's sockets and the client's: no Nagle delay on a small reply.
    let _ = socket.set_nodelay(true);
    match tls {
        None => echo(socket),
        Some(config) => {
            let Ok(session) = ServerConnection::new(config) else {
                return;
            };
            // The handshake happens in the first read, as the daemon's does before
            // the first frame.
            echo(StreamOwned::new(session, socket));
        }
    }
}

/// Bytes back as they come, whatever their framing, until the peer goes.
fn echo(mut stream: impl Read + Write) {
    let mut buf = vec![0u8; ECHO_BUFFER_BYTES];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        if stream
            .write_all(&buf[..n])
            .and_then(|()| stream.flush())
            .is_err()
        {
            return;
        }
    }
}

fn connect(address: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpStream::connect(address)?;
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(ECHO_IO_TIMEOUT))?;
    socket.set_write_timeout(Some(ECHO_IO_TIMEOUT))?;
    Ok(socket)
}

/// Write + read of `payload` bytes over loopback TCP, `n` times (after a warm-up):
/// the floor of any request/reply over TCP on this machine.
pub fn tcp_echo_round_trips(payload: usize, n: u64) -> anyhow::Result<Histogram<u64>> {
    let server = TcpEchoServer::start(None)?;
    let mut socket = connect(server.address)?;
    round_trips(&mut socket, payload, n)
}

/// [`tcp_echo_round_trips`] inside a TLS session: `server` is the echo's
/// configuration, `client` and `name` the client's (the handshake is done, and not
/// timed, before the first round trip). The floor of a request/reply over TLS.
pub fn tls_echo_round_trips(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: ServerName<'static>,
    payload: usize,
    n: u64,
) -> anyhow::Result<Histogram<u64>> {
    let echo = TcpEchoServer::start(Some(server))?;
    let mut stream = StreamOwned::new(ClientConnection::new(client, name)?, connect(echo.address)?);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    let h = round_trips(&mut stream, payload, n);
    if h.is_ok() {
        // A clean end, so the server's thread sees close_notify rather than a reset.
        stream.conn.send_close_notify();
        let _ = stream.conn.complete_io(&mut stream.sock);
    }
    h
}
