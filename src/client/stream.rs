//! What a client connects to: the daemon's Unix socket, or its TLS listener
//! (`tls://HOST:PORT`), and the byte stream either one is.

use super::ClientError;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The scheme of a TLS address.
pub const TLS_SCHEME: &str = "tls://";

/// Where the daemon is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Its Unix socket.
    Unix(PathBuf),
    /// Its TLS listener (`herald serve --listen-tls`).
    Tls(TlsEndpoint),
}

/// A TLS address and the files to connect with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsEndpoint {
    /// The host name or IP address: the server's certificate must carry it (a DNS SAN,
    /// or an IP SAN for an address).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The CA certificate(s) the server's certificate must be issued by (PEM).
    pub ca: PathBuf,
    /// The client certificate chain (PEM) the server requires.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
}

impl TlsEndpoint {
    /// `tls://HOST:PORT`, as errors name it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("{TLS_SCHEME}[{}]:{}", self.host, self.port)
        } else {
            format!("{TLS_SCHEME}{}:{}", self.host, self.port)
        }
    }
}

impl Endpoint {
    /// `text` as a daemon address: `tls://HOST:PORT` (IPv6 in brackets) with the CA and
    /// the client's own certificate and key, or else a socket path.
    pub fn parse(
        text: &str,
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Endpoint, String> {
        let Some(rest) = text.strip_prefix(TLS_SCHEME) else {
            if ca.is_some() || cert.is_some() || key.is_some() {
                return Err(format!(
                    "--ca, --cert and --cert-key are for a tls:// address, and {text:?} is a \
                     socket path"
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(text)));
        };
        let bad = || format!("{text:?} is not tls://HOST:PORT (such as tls://herald.example:7400)");
        let (host, port) = crate::tls::host_port(rest).ok_or_else(bad)?;
        let ca = ca.ok_or_else(|| {
            format!(
                "{text} needs --ca FILE: the CA certificate the server's certificate is issued by"
            )
        })?;
        if cert.is_some() != key.is_some() {
            return Err(
                "--cert and --cert-key go together: the client certificate and its key".into(),
            );
        }
        Ok(Endpoint::Tls(TlsEndpoint {
            host: host.to_owned(),
            port,
            ca: ca.to_path_buf(),
            cert: cert.map(Path::to_path_buf),
            key: key.map(Path::to_path_buf),
        }))
    }

    /// How errors name it: the socket path, or `tls://HOST:PORT`.
    pub fn shown(&self) -> PathBuf {
        match self {
            Endpoint::Unix(path) => path.clone(),
            Endpoint::Tls(t) => PathBuf::from(t.address()),
        }
    }
}

/// A connection's bytes: a Unix socket, or TLS over TCP.
pub(super) enum Stream {
    Unix(UnixStream),
    /// The TLS stream, and whether it presented a client certificate.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>, bool),
}

impl Stream {
    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Tls(s, _) => s.sock.set_read_timeout(timeout),
        }
    }

    pub(super) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(timeout),
            Stream::Tls(s, _) => s.sock.set_write_timeout(timeout),
        }
    }

    pub(super) fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tls(s, _) => {
                if how != Shutdown::Read {
                    // Written, never read for: a close must not wait for the peer.
                    s.conn.send_close_notify();
                    while s.conn.wants_write() {
                        if !matches!(s.conn.write_tls(&mut s.sock), Ok(n) if n > 0) {
                            break;
                        }
                    }
                }
                s.sock.shutdown(how)
            }
        }
    }

    /// An I/O error of this stream in words, when it is TLS' verdict.
    pub(super) fn tls_message(&self, error: &io::Error) -> Option<String> {
        match self {
            Stream::Unix(_) => None,
            Stream::Tls(_, had_cert) => tls_message(error, *had_cert),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s, _) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s, _) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s, _) => s.flush(),
        }
    }
}

/// Connects to a TLS listener and completes the handshake (within `timeout`), so
/// that a server certificate this client does not trust is reported at connect. The
/// server's verdict on the client's certificate comes with its first answer (TLS 1.3
/// sends it after the client's last handshake message).
pub(super) fn connect_tls(t: &TlsEndpoint, timeout: Duration) -> Result<Stream, ClientError> {
    let address = t.address();
    let tls_error = |message: String| ClientError::Tls {
        address: address.clone(),
        message,
    };
    let files = crate::tls::ClientFiles {
        ca: (&t.ca, "--ca"),
        identity: match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => Some(((cert, "--cert"), (key, "--cert-key"))),
            _ => None,
        },
    };
    let config = crate::tls::client_config(&files).map_err(|e| tls_error(e.0))?;
    let name = ServerName::try_from(t.host.clone())
        .map_err(|_| tls_error(format!("{:?} is not a host name or IP address", t.host)))?;
    let connection = ClientConnection::new(config, name).map_err(|e| tls_error(e.to_string()))?;
    let socket =
        TcpStream::connect((t.host.as_str(), t.port)).map_err(|error| ClientError::Connect {
            socket: PathBuf::from(&address),
            error,
        })?;
    let _ = socket.set_nodelay(true);
    let io = |error| ClientError::Io {
        socket: PathBuf::from(&address),
        error,
    };
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
    socket.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut stream = StreamOwned::new(connection, socket);
    while stream.conn.is_handshaking() {
        if let Err(error) = stream.conn.complete_io(&mut stream.sock) {
            return Err(tls_failure(&address, error, t.cert.is_some()));
        }
    }
    Ok(Stream::Tls(Box::new(stream), t.cert.is_some()))
}

/// An I/O error of a TLS connection in words: rustls' verdicts (the server refused our
/// certificate, we do not trust the server's) as what to do; None when it is not one.
pub(super) fn tls_message(error: &io::Error, had_cert: bool) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    use rustls::AlertDescription as A;
    Some(match tls {
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            "no client certificate configured: the server requires one (--cert, --cert-key)".into()
        }
        rustls::Error::AlertReceived(_) if !had_cert => format!(
            "no client certificate configured: the server requires one (--cert, --cert-key); it \
             said: {}",
            crate::tls::describe(tls)
        ),
        rustls::Error::AlertReceived(
            A::UnknownCA
            | A::BadCertificate
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::AccessDenied
            | A::DecryptError,
        ) => format!(
            "the server refused our certificate: {}",
            crate::tls::describe(tls)
        ),
        rustls::Error::InvalidCertificate(_) => format!(
            "the server's certificate is not trusted: {} (--ca names the CA that issued it)",
            crate::tls::describe(tls)
        ),
        other => crate::tls::describe(other),
    })
}

fn tls_failure(address: &str, error: io::Error, had_cert: bool) -> ClientError {
    match tls_message(&error, had_cert) {
        Some(message) => ClientError::Tls {
            address: address.to_owned(),
            message,
        },
        None => ClientError::Io {
            socket: PathBuf::from(address),
            error,
        },
    }
}
