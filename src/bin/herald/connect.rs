//! How the client subcommands (publish, subscribe, status, dead) find the daemon: its
//! data directory's socket by default, or `--connect` a socket path or a TLS listener
//! `tls://HOST:PORT` with `--ca`, `--cert` and `--cert-key`.

use anyhow::{bail, Context};
use herald::client::{self, Client, Endpoint};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The flags that pick the daemon, besides `--data-dir`.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectArgs {
    /// Where the daemon is, instead of DIR/herald.sock: a socket path, or
    /// tls://HOST:PORT for a daemon serving TLS (`herald serve --listen-tls`). HOST must
    /// be a name (or IP address) the server's certificate carries.
    #[arg(long, value_name = "ADDR", global = true, help_heading = "Connecting")]
    connect: Option<String>,
    /// With tls://: the CA certificate (PEM) that issued the server's certificate.
    #[arg(long, value_name = "FILE", global = true, help_heading = "Connecting")]
    ca: Option<PathBuf>,
    /// With tls://: this client's certificate (PEM), which the server requires; its
    /// name (first DNS or URI SAN, else CN) is who the daemon's access rules see.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert_key",
        global = true,
        help_heading = "Connecting"
    )]
    cert: Option<PathBuf>,
    /// With tls://: the private key of --cert (PEM). Not `--key`: `herald publish
    /// --key` is the idempotency key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert",
        global = true,
        help_heading = "Connecting"
    )]
    cert_key: Option<PathBuf>,
}

impl ConnectArgs {
    /// The daemon to connect to: `--connect`, or the socket in `data_dir`.
    pub fn endpoint(&self, data_dir: &Path) -> anyhow::Result<Endpoint> {
        let address = match &self.connect {
            Some(address) => address.clone(),
            None => client::socket_path(data_dir).display().to_string(),
        };
        Endpoint::parse(
            &address,
            self.ca.as_deref(),
            self.cert.as_deref(),
            self.cert_key.as_deref(),
        )
        .map_err(anyhow::Error::msg)
    }
}

/// One admin request and its answer, an `{"error": ...}` answer being an error.
pub fn ask(client: &mut Client, request: &Value) -> anyhow::Result<Value> {
    let answer = client.admin(&request.to_string())?;
    let value: Value = serde_json::from_str(&answer)
        .with_context(|| format!("the daemon's answer is not JSON: {answer}"))?;
    if let Some(e) = value.get("error").and_then(Value::as_str) {
        bail!("{e}");
    }
    Ok(value)
}
