//! The TLS side of `herald bench`: a throwaway CA with a server certificate for
//! 127.0.0.1 and a client certificate, made at the start of the run (rcgen) and
//! written as the PEM files `herald serve --listen-tls` and a `tls://` client take;
//! and the configurations the TLS echo floor runs with, built as the daemon and the
//! client build theirs, so the floor and the publish pay for the same TLS.

use herald::client::{Endpoint, TlsEndpoint};
use herald::delivery::tls::{server_config, TlsListen};
use herald::tls::{client_config, ClientFiles};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The host every TLS measurement connects to (and the server certificate's SAN).
const HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The run's certificate files.
pub struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    /// Makes the CA and both certificates and writes them under `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Pki> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "herald bench CA");
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let issue = |name: &str, san: SanType, purpose| -> anyhow::Result<(PathBuf, PathBuf)> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.subject_alt_names = vec![san];
            params.extended_key_usages = vec![purpose];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca, &ca_key)?;
            let (cert_path, key_path) = (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}.key")),
            );
            std::fs::write(&cert_path, cert.pem())?;
            std::fs::write(&key_path, key.serialize_pem())?;
            Ok((cert_path, key_path))
        };
        let (server_cert, server_key) = issue(
            "bench-server",
            SanType::IpAddress(HOST),
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = issue(
            "bench-client",
            SanType::DnsName("bench-client.invalid".try_into()?),
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let ca_path = dir.join("bench-ca.pem");
        std::fs::write(&ca_path, ca.pem())?;
        Ok(Pki {
            ca: ca_path,
            server_cert,
            server_key,
            client_cert,
            client_key,
        })
    }

    /// `herald serve` flags for a TLS listener on 127.0.0.1, on a port the system
    /// picks (the `ready:` line names it).
    pub fn serve_args(&self) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            "--listen-tls".into(),
            SocketAddr::new(HOST, 0).to_string(),
            "--tls-cert".into(),
            path(&self.server_cert),
            "--tls-key".into(),
            path(&self.server_key),
            "--tls-client-ca".into(),
            path(&self.ca),
        ]
    }

    /// The client's address of a daemon's TLS listener on `port`, with the client
    /// certificate.
    pub fn endpoint(&self, port: u16) -> Endpoint {
        Endpoint::Tls(TlsEndpoint {
            host: HOST.to_string(),
            port,
            ca: self.ca.clone(),
            cert: Some(self.client_cert.clone()),
            key: Some(self.client_key.clone()),
        })
    }

    /// The echo floor's server configuration: the daemon's own, from the same files
    /// (TLS 1.3, ring, client certificates required).
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        Ok(server_config(&TlsListen {
            address: SocketAddr::new(HOST, 0),
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: self.ca.clone(),
        })?)
    }

    /// The echo floor's client configuration and the server name to verify: what
    /// `herald::client` builds for a `tls://` address (the same function).
    pub fn client_config(&self) -> anyhow::Result<(Arc<ClientConfig>, ServerName<'static>)> {
        let config = client_config(&ClientFiles {
            ca: (&self.ca, "--ca"),
            identity: Some((
                (&self.client_cert, "--cert"),
                (&self.client_key, "--cert-key"),
            )),
        })?;
        Ok((config, ServerName::IpAddress(HOST.into())))
    }
}
