//! TLS connections (`herald serve --listen-tls`): the server configuration built and
//! checked at start, and each TLS connection's session between the reactor and the
//! slot's plaintext buffers.
//!
//! The reactor never sees plaintext on a TLS connection: a receive is armed on the
//! session's ciphertext input buffer; what arrives goes into rustls (`read_tls`,
//! `process_new_packets`), and the plaintext it yields is copied into the slot's own
//! receive buffer, where ingest decodes frames as on a Unix socket. Outgoing, the
//! slot's send buffer goes through rustls' writer, and `write_tls` fills the ciphertext
//! output buffer that the send is armed on. The handshake happens the same way, in the
//! loop, never blocking.
//!
//! Allocation: a TLS connection's two ciphertext buffers and its rustls session are
//! allocated when it is accepted, and rustls allocates per record. That is the one
//! exception to "nothing allocated per event", and it is scoped to TLS connections
//! (ARCHITECTURE.md); Unix-socket connections are unchanged.

use crate::reactor::{Reactor, Token};
use crate::tls::{self as files, TlsFileError};
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Ciphertext received and not yet taken by rustls: a little more than one TLS record
/// (16 KiB of plaintext and its overhead), so a whole record always fits.
pub const CIPHER_IN_BYTES: usize = 20 * 1024;
/// Ciphertext waiting for the socket: four records.
pub const CIPHER_OUT_BYTES: usize = 64 * 1024;
/// What rustls may hold of plaintext written and not yet encrypted out, and of records
/// encrypted and not yet taken by `write_tls`: the bound on its own buffers.
const RUSTLS_BUFFER_BYTES: usize = 64 * 1024;

/// Refused handshakes logged per second at most; the rest are counted in the next line.
pub const HANDSHAKE_LINES_PER_SECOND: u32 = 10;

/// `herald serve --listen-tls` and its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListen {
    /// Where to listen (TCP).
    pub address: SocketAddr,
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The server certificate's private key, PEM.
    pub key: PathBuf,
    /// The CA (PEM, one or more certificates) that client certificates must chain to.
    pub client_ca: PathBuf,
}

/// Reads and checks the files of `listen` and builds the server's TLS configuration:
/// TLS 1.3, client certificates required and verified against the client CA. Every
/// problem (a file missing or unreadable, a certificate expired or not yet valid, a
/// key that does not belong to the certificate) is an error naming the file and flag.
pub fn server_config(listen: &TlsListen) -> Result<Arc<ServerConfig>, TlsFileError> {
    let chain = files::read_certificates(&listen.cert, "--tls-cert", "certificate")?;
    let key = files::read_private_key(&listen.key, "--tls-key")?;
    let unix_s = (crate::reactor::system_unix_ns() / 1_000_000_000) as i64;
    files::check_validity(&chain[0], &listen.cert, "--tls-cert", unix_s)?;
    let roots = files::read_roots(&listen.client_ca, "--tls-client-ca", Some(unix_s))?;
    let provider = files::provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| {
            TlsFileError(format!(
                "the client CA {} (--tls-client-ca) cannot verify client certificates: {e}",
                listen.client_ca.display()
            ))
        })?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(files::VERSIONS)
        .map_err(|e| TlsFileError(format!("TLS 1.3 is not available: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsFileError(format!(
                "the private key {} (--tls-key) does not belong to the certificate {} \
                 (--tls-cert): give the key the certificate was issued for",
                listen.key.display(),
                listen.cert.display()
            )),
            e => TlsFileError(format!(
                "cannot use the certificate {} with the key {} (--tls-cert, --tls-key): {e}",
                listen.cert.display(),
                listen.key.display()
            )),
        })?;
    Ok(Arc::new(config))
}

/// What moving received ciphertext through rustls gave.
#[derive(Debug, Default)]
pub struct Pumped {
    /// Plaintext bytes written into the receive buffer.
    pub plaintext: usize,
    /// The handshake finished now: the peer's identity is known.
    pub established: bool,
    /// The peer closed the TLS session (close_notify).
    pub closed: bool,
}

/// One TLS connection's session and ciphertext buffers: an accepted connection's
/// server session, or a relay's client session to its upstream.
pub struct TlsConn {
    session: rustls::Connection,
    /// Received ciphertext, `input[..input_len]` not yet taken by rustls.
    input: Box<[u8]>,
    input_len: usize,
    /// Ciphertext to send, `output[output_start..output_end]`.
    output: Box<[u8]>,
    output_start: usize,
    output_end: usize,
    /// The handshake finished.
    established: bool,
    /// rustls refused the peer (or its data): only the alert is still sent.
    failed: bool,
}

impl TlsConn {
    /// A new server session over `config`, with its buffers.
    pub fn new(config: &Arc<ServerConfig>) -> Result<TlsConn, rustls::Error> {
        Ok(TlsConn::over(ServerConnection::new(config.clone())?.into()))
    }

    /// A new client session to server `name` over `config`, with its buffers.
    pub fn client(
        config: &Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Result<TlsConn, rustls::Error> {
        Ok(TlsConn::over(
            rustls::ClientConnection::new(config.clone(), name)?.into(),
        ))
    }

    fn over(mut session: rustls::Connection) -> TlsConn {
        session.set_buffer_limit(Some(RUSTLS_BUFFER_BYTES));
        TlsConn {
            session,
            input: vec![0; CIPHER_IN_BYTES].into_boxed_slice(),
            input_len: 0,
            output: vec![0; CIPHER_OUT_BYTES].into_boxed_slice(),
            output_start: 0,
            output_end: 0,
            established: false,
            failed: false,
        }
    }

    /// Whether the handshake finished.
    pub fn established(&self) -> bool {
        self.established
    }

    /// The verified client certificate's name (after the handshake).
    pub fn peer_name(&self) -> Option<String> {
        let cert = self.session.peer_certificates()?.first()?;
        files::peer_name(cert)
    }

    /// Whether rustls refused the peer: the connection only says so (the alert) and
    /// waits for the peer to close.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The free tail of the ciphertext input buffer, to arm a receive on (empty: full).
    /// After a failure, the whole buffer: what still arrives is read and dropped, so
    /// that closing with unread bytes does not reset the connection before the peer
    /// has read the alert.
    pub fn input_tail(&mut self) -> &mut [u8] {
        &mut self.input[self.input_len..]
    }

    /// `n` ciphertext bytes arrived in [`TlsConn::input_tail`].
    pub fn received(&mut self, n: usize) {
        if self.failed {
            return;
        }
        assert!(
            n <= self.input.len() - self.input_len,
            "TLS input overrun: {n} bytes into {} free",
            self.input.len() - self.input_len
        );
        self.input_len += n;
    }

    /// Moves received ciphertext through rustls and the plaintext it gives into
    /// `plain` (the slot's receive buffer's free tail), as far as both have room.
    /// An error is the peer refused (its certificate, or broken TLS): rustls has queued
    /// the alert that says so, and nothing more is read.
    pub fn read_plaintext(&mut self, plain: &mut [u8]) -> Result<Pumped, rustls::Error> {
        let mut pumped = Pumped::default();
        if self.failed {
            return Ok(pumped);
        }
        loop {
            let mut progressed = false;
            if self.input_len > 0 {
                let mut unread = &self.input[..self.input_len];
                // An error here is rustls' back-pressure (its plaintext is full): the
                // ciphertext waits here until the plaintext below is taken.
                if let Ok(n) = self.session.read_tls(&mut unread) {
                    if n > 0 {
                        self.input.copy_within(n..self.input_len, 0);
                        self.input_len -= n;
                        progressed = true;
                    }
                }
                match self.session.process_new_packets() {
                    Ok(state) => pumped.closed |= state.peer_has_closed(),
                    Err(e) => {
                        self.failed = true;
                        return Err(e);
                    }
                }
                if !self.established && !self.session.is_handshaking() {
                    self.established = true;
                    pumped.established = true;
                }
            }
            while pumped.plaintext < plain.len() {
                match self.session.reader().read(&mut plain[pumped.plaintext..]) {
                    Ok(0) => {
                        pumped.closed = true;
                        break;
                    }
                    Ok(n) => {
                        pumped.plaintext += n;
                        progressed = true;
                    }
                    // WouldBlock: nothing more decrypted yet; any other error is the
                    // peer gone without close_notify, which the socket reports too.
                    Err(_) => break,
                }
            }
            if !progressed || self.input_len == 0 {
                return Ok(pumped);
            }
        }
    }

    /// Hands plaintext to rustls; returns how much it took (within its buffer bound).
    pub fn write_plaintext(&mut self, plain: &[u8]) -> usize {
        if self.failed || plain.is_empty() {
            return 0;
        }
        self.session.writer().write(plain).unwrap_or(0)
    }

    /// Moves what rustls has encrypted (records, handshake messages, an alert) into the
    /// output buffer. `in_flight`: a send is armed on the pending output, which must
    /// then stay where it is (new bytes go behind it).
    pub fn fill_output(&mut self, in_flight: bool) {
        if !in_flight && self.output_start > 0 {
            self.output
                .copy_within(self.output_start..self.output_end, 0);
            self.output_end -= self.output_start;
            self.output_start = 0;
        }
        while self.session.wants_write() && self.output_end < self.output.len() {
            let mut tail = &mut self.output[self.output_end..];
            match self.session.write_tls(&mut tail) {
                Ok(n) if n > 0 => self.output_end += n,
                _ => break,
            }
        }
    }

    /// The ciphertext waiting to be sent.
    pub fn pending_output(&self) -> &[u8] {
        &self.output[self.output_start..self.output_end]
    }

    /// Arms a send of [`TlsConn::pending_output`] on `socket`, unless the caller has
    /// one in flight (`in_flight`) or nothing waits. Returns the bytes armed (0: none);
    /// the caller holds them in flight until the completion, then calls
    /// [`TlsConn::sent`].
    pub fn arm_send<R: Reactor>(
        &self,
        reactor: &mut R,
        socket: &R::Socket,
        token: Token,
        in_flight: bool,
    ) -> usize {
        let pending = self.pending_output();
        if in_flight || pending.is_empty() {
            return 0;
        }
        // SAFETY: the output buffer is boxed and lives as long as the session, which
        // its owner drops only with nothing in flight; while a send is in flight,
        // `fill_output(true)` appends behind the armed bytes and moves nothing.
        unsafe { reactor.send(socket, pending.as_ptr(), pending.len(), token) };
        pending.len()
    }

    /// Arms a receive into [`TlsConn::input_tail`] on `socket` if it has room. Returns
    /// whether one was armed; the caller holds it in flight until the completion, then
    /// calls [`TlsConn::received`].
    pub fn arm_recv<R: Reactor>(
        &mut self,
        reactor: &mut R,
        socket: &R::Socket,
        token: Token,
    ) -> bool {
        let tail = self.input_tail();
        if tail.is_empty() {
            return false;
        }
        // SAFETY: as for `arm_send`, for the input buffer's free tail, which nothing
        // touches until the receive's completion reaches `received`.
        unsafe { reactor.recv(socket, tail.as_mut_ptr(), tail.len(), token) };
        true
    }

    /// `n` bytes of [`TlsConn::pending_output`] were sent.
    pub fn sent(&mut self, n: usize) {
        self.output_start = (self.output_start + n).min(self.output_end);
        if self.output_start == self.output_end {
            self.output_start = 0;
            self.output_end = 0;
        }
    }

    /// Whether everything written has gone to the socket.
    pub fn drained(&self) -> bool {
        self.output_start == self.output_end && !self.session.wants_write()
    }
}

/// Why the daemon's side of a session failed, as its log says it: an alert received is
/// the client refusing the daemon (rustls' words for it are the client's view).
pub fn describe_refusal(error: &rustls::Error) -> String {
    match error {
        rustls::Error::AlertReceived(alert) => format!(
            "the client ended the handshake with the alert {alert:?} (does its CA, --ca, \
             issue the server's certificate, --tls-cert, for the name it connected to?)"
        ),
        other => files::describe(other),
    }
}

/// At most [`HANDSHAKE_LINES_PER_SECOND`] lines a second about refused handshakes, so
/// that a scanner or a misconfigured fleet cannot flood the log.
#[derive(Debug, Default)]
pub struct HandshakeLog {
    window_start_ns: u64,
    lines: u32,
    suppressed: u64,
    /// Handshakes refused (or given up on) since the daemon started.
    pub refused: u64,
}

impl HandshakeLog {
    /// Counts a refused handshake and logs it within the budget.
    pub fn refused(&mut self, now_ns: u64, slot: usize, why: &str) {
        self.refused += 1;
        if self.lines == 0 || now_ns.saturating_sub(self.window_start_ns) >= 1_000_000_000 {
            self.window_start_ns = now_ns;
            self.lines = 0;
        }
        if self.lines >= HANDSHAKE_LINES_PER_SECOND {
            self.suppressed += 1;
            return;
        }
        self.lines += 1;
        tracing::warn!(
            slot,
            refused_not_logged_since_last_line = std::mem::take(&mut self.suppressed),
            "TLS handshake refused: {why}; the connection is closed"
        );
    }
}
