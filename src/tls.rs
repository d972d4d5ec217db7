//! What the daemon's TLS listener and the client's `tls://` connections share: reading
//! PEM certificate, key and CA files with errors that name the file and the flag, the
//! start-up checks rustls does not make (an expired certificate), the identity a peer's
//! certificate carries, and readable words for rustls' errors.
//!
//! TLS is 1.3 only, with the `ring` provider: both sides build their configurations
//! from [`provider`] and [`VERSIONS`].

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, Error, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The protocol versions herald speaks: TLS 1.3 only.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A certificate, key or CA file that cannot be used: the message names the file, the
/// flag that gave it and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsFileError(pub String);

/// A file and the flag that gave it.
pub type FlagFile<'a> = (&'a Path, &'a str);

/// The files a TLS client presents, and the flags that gave them (for messages).
#[derive(Copy, Clone, Debug)]
pub struct ClientFiles<'a> {
    /// The CA that issued the server's certificate, and its flag.
    pub ca: FlagFile<'a>,
    /// The client certificate chain and its key, with their flags; `None`: no client
    /// certificate (a herald listener then refuses the handshake).
    pub identity: Option<(FlagFile<'a>, FlagFile<'a>)>,
}

/// `HOST:PORT` of a `tls://HOST:PORT` address (an IPv6 host in brackets): the host,
/// without brackets, and the port; None if it is not that shape.
pub fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(v6) => v6.split_once("]:")?,
        None => text.rsplit_once(':')?,
    };
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// A TLS 1.3 client configuration: the server verified against `files.ca`, the client
/// certificate presented if there is one. Errors name the file and the flag.
pub fn client_config(files: &ClientFiles<'_>) -> Result<Arc<rustls::ClientConfig>, TlsFileError> {
    build_client_config(files, None)
}

/// [`client_config`] for a long-running client (a relay's upstream links): also
/// refuses, at start, a CA certificate or client certificate outside its validity
/// period at `unix_s`, as the listener does with its own files ([`check_validity`]).
/// Each file is read once.
pub fn checked_client_config(
    files: &ClientFiles<'_>,
    unix_s: i64,
) -> Result<Arc<rustls::ClientConfig>, TlsFileError> {
    build_client_config(files, Some(unix_s))
}

fn build_client_config(
    files: &ClientFiles<'_>,
    check_at: Option<i64>,
) -> Result<Arc<rustls::ClientConfig>, TlsFileError> {
    let (ca, ca_flag) = files.ca;
    let roots = read_roots(ca, ca_flag, check_at)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsFileError(format!("TLS 1.3 is not available: {e}")))?
        .with_root_certificates(roots);
    let config = match files.identity {
        Some(((cert, cert_flag), (key, key_flag))) => {
            let chain = read_certificates(cert, cert_flag, "client certificate")?;
            if let Some(unix_s) = check_at {
                check_validity(&chain[0], cert, cert_flag, unix_s)?;
            }
            let key = read_private_key(key, key_flag)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| match e {
                    Error::InconsistentKeys(_) => TlsFileError(format!(
                        "the key ({key_flag}) does not belong to the client certificate \
                         ({cert_flag})"
                    )),
                    e => TlsFileError(format!("cannot use the client certificate: {e}")),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The crypto provider both sides use (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, flag: &str, what: &str) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| {
        TlsFileError(format!(
            "cannot read the {what} {} ({flag}): {e}",
            path.display()
        ))
    })
}

/// The certificates of PEM file `path` (given with `flag`, for the message), in order.
pub fn read_certificates(
    path: &Path,
    flag: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(path, flag, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsFileError(format!(
                "the {what} {} ({flag}) is not valid PEM: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsFileError(format!(
            "the {what} {} ({flag}) holds no certificate (a PEM block BEGIN CERTIFICATE)",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key of PEM file `path` (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(path: &Path, flag: &str) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = read(path, flag, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "it holds no private key (a PEM block BEGIN PRIVATE KEY, BEGIN RSA PRIVATE \
                 KEY or BEGIN EC PRIVATE KEY)"
                    .to_owned()
            }
            e => format!("it is not valid PEM: {e}"),
        };
        TlsFileError(format!(
            "cannot use the private key {} ({flag}): {why}",
            path.display()
        ))
    })
}

/// A trust store of every certificate in PEM file `path`; with `check_at`, each is
/// refused outside its validity period at that time ([`check_validity`]).
pub fn read_roots(
    path: &Path,
    flag: &str,
    check_at: Option<i64>,
) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path, flag, "CA certificate")? {
        if let Some(unix_s) = check_at {
            check_validity(&cert, path, flag, unix_s)?;
        }
        roots.add(cert).map_err(|e| {
            TlsFileError(format!(
                "the CA certificate {} ({flag}) cannot be used as a trust anchor: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// Refuses a certificate outside its validity period at `unix_s` (seconds since the
/// epoch): a daemon with an expired certificate would start and then fail every
/// handshake, so it is told at start instead.
pub fn check_validity(
    cert: &CertificateDer<'_>,
    path: &Path,
    flag: &str,
    unix_s: i64,
) -> Result<(), TlsFileError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| {
        TlsFileError(format!(
            "the certificate {} ({flag}) cannot be parsed: {e}",
            path.display()
        ))
    })?;
    let validity = parsed.validity();
    let shown = |t: x509_parser::time::ASN1Time| t.to_rfc2822().unwrap_or_else(|e| e);
    if validity.not_after.timestamp() < unix_s {
        return Err(TlsFileError(format!(
            "the certificate {} ({flag}) expired on {}: renew it",
            path.display(),
            shown(validity.not_after)
        )));
    }
    if validity.not_before.timestamp() > unix_s {
        return Err(TlsFileError(format!(
            "the certificate {} ({flag}) is not valid before {} (is the clock right?)",
            path.display(),
            shown(validity.not_before)
        )));
    }
    Ok(())
}

/// The identity a certificate names: its first DNS or URI subject alternative name, in
/// the certificate's order; without either, its subject's common name (CN). SANs win
/// because they are what current CAs and verifiers treat as authoritative; the CN is
/// kept for certificates made the old way. None when the certificate names nothing.
pub fn peer_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n)
                | x509_parser::extensions::GeneralName::URI(n) => return Some((*n).to_owned()),
                _ => {}
            }
        }
    }
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    cn
}

/// What a TLS failure means, in words for whoever reads a client's error or the
/// daemon's log (rustls' own names are terse).
pub fn describe(error: &Error) -> String {
    match error {
        Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                "the server requires a client certificate and none was sent (--cert, --cert-key)"
                    .into()
            }
            AlertDescription::UnknownCA => {
                "the server does not trust the CA that issued our certificate".into()
            }
            AlertDescription::CertificateExpired => "our certificate has expired".into(),
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied => {
                format!("the server refused our certificate ({alert:?})")
            }
            AlertDescription::ProtocolVersion => {
                "the peer does not speak TLS 1.3 (herald speaks TLS 1.3 only)".into()
            }
            other => format!("the peer sent the TLS alert {other:?}"),
        },
        Error::NoCertificatesPresented => "the client sent no certificate".into(),
        Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => {
                "the certificate was not issued by a trusted CA".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the certificate is not valid yet".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the certificate is not valid for the host name connected to (use a name the \
                 server's certificate carries)"
                    .into()
            }
            other => format!("the certificate is not acceptable: {other:?}"),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_read_as_what_to_do() {
        let none = describe(&Error::AlertReceived(AlertDescription::CertificateRequired));
        assert!(none.contains("--cert"), "{none}");
        let ca = describe(&Error::InvalidCertificate(CertificateError::UnknownIssuer));
        assert!(ca.contains("trusted CA"), "{ca}");
    }

    #[test]
    fn missing_files_name_the_file_and_the_flag() {
        let e = read_certificates(
            Path::new("/nonexistent/cert.pem"),
            "--tls-cert",
            "certificate",
        )
        .unwrap_err();
        assert!(e.0.contains("/nonexistent/cert.pem"), "{e}");
        assert!(e.0.contains("--tls-cert"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = read_private_key(&empty, "--tls-key").unwrap_err();
        assert!(e.0.contains("no private key"), "{e}");
    }

    #[test]
    fn host_port_reads_names_ipv4_and_bracketed_ipv6() {
        assert_eq!(
            host_port("herald.example:7400"),
            Some(("herald.example", 7400))
        );
        assert_eq!(host_port("127.0.0.1:1"), Some(("127.0.0.1", 1)));
        assert_eq!(host_port("[::1]:7400"), Some(("::1", 7400)));
        for bad in [
            "herald.example",
            ":7400",
            "[]:7400",
            "[::1]7400",
            "h:99999",
            "h:x",
            "h:",
        ] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }
}
