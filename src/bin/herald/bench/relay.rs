//! The relay side of `herald bench`: publish at an origin daemon, deliver to a
//! subscriber of a second daemon relaying it (`herald serve --upstream`), the same
//! measurement as the single-node end-to-end row, so the two rows' ratio is what one
//! relay hop costs: the relay's receive, its own durable commit, its confirmation
//! upstream and its fan-out.

use hdrhistogram::Histogram;
use herald::client::Client;
use herald::measure::DaemonProcess;
use herald::protocol::Role;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the relay may take to hold its subscription at the origin: two daemons on
/// one host connect in milliseconds, so this only bounds a broken run.
const LINK_UP_MAX: Duration = Duration::from_secs(30);

/// Between two status asks while the link comes up.
const LINK_POLL: Duration = Duration::from_millis(10);

/// Publish at an origin daemon → delivered at a relay's live subscriber, `n` events at
/// `rate_per_second`, both daemons this binary on backend `io`.
pub fn end_to_end(
    herald: &Path,
    io: &str,
    n: u64,
    rate_per_second: u64,
) -> anyhow::Result<Histogram<u64>> {
    let origin = DaemonProcess::start_with(herald, 0, "256M", None, &["--io", io])?;
    let upstream = origin.socket.display().to_string();
    let relay = DaemonProcess::start_with(
        herald,
        0,
        "256M",
        None,
        &[
            "--io",
            io,
            "--upstream",
            &upstream,
            "--upstream-name",
            "bench-relay",
        ],
    )?;
    // A relay's first subscription starts at the origin's tail: what is published
    // before it holds one never reaches it.
    wait_for_link(&relay.socket)?;
    super::end_to_end(&origin.socket, &relay.socket, 1, n, rate_per_second)
}

/// Asks the relay's status until its upstream is `connected`, failing with the
/// upstream's state and last error after [`LINK_UP_MAX`].
fn wait_for_link(relay: &Path) -> anyhow::Result<()> {
    let mut control = Client::connect(relay, Role::Control, "bench")?;
    let started = Instant::now();
    loop {
        let status: serde_json::Value = serde_json::from_str(&control.status()?)?;
        let upstream = &status["upstreams"][0];
        if upstream["state"] == "connected" {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < LINK_UP_MAX,
            "the relay did not connect to its upstream within {LINK_UP_MAX:?}: {upstream}"
        );
        std::thread::sleep(LINK_POLL);
    }
}
