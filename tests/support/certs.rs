//! Certificates made at run time for TLS tests (rcgen): a CA, and certificates it
//! issues for servers and clients, written as PEM files.

#![allow(dead_code)]

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use std::path::{Path, PathBuf};

/// A CA: its certificate and key, to issue with.
pub struct Ca {
    pub cert: Certificate,
    pub key: KeyPair,
    pub pem: PathBuf,
}

pub fn ca(dir: &Path, name: &str) -> Ca {
    make_ca(dir, name, false)
}

/// A CA whose own certificate is valid only in the past.
pub fn expired_ca(dir: &Path, name: &str) -> Ca {
    make_ca(dir, name, true)
}

fn make_ca(dir: &Path, name: &str, expired: bool) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    if expired {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(30);
        params.not_after = now - time::Duration::days(1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&pem, cert.pem()).unwrap();
    Ca { cert, key, pem }
}

/// A certificate issued by `ca` for `sans` (DNS names, or IP addresses), written as
/// NAME.pem and NAME.key; `expired`: valid only in the past.
pub fn issue(
    dir: &Path,
    ca: &Ca,
    name: &str,
    sans: &[&str],
    server: bool,
    expired: bool,
) -> (PathBuf, PathBuf) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*s).try_into().unwrap()),
        })
        .collect();
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    if expired {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(30);
        params.not_after = now - time::Duration::days(1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}
