//! `herald bench --quick --json` through the real binary: the harness runs end to end
//! and reports every figure of the TLS section (publish over `tls://`, the TCP and
//! TLS 1.3 echo floors) and of the relay (publish at an origin, delivered at a relay's
//! subscriber, beside the single-node row) with their ratios. It checks the harness,
//! not speed: quick figures are not comparable, and no figure is held to a threshold.
//!
//! epoll only: the TLS code of the harness is the same on either backend, and epoll
//! runs on every host (io_uring may be refused, as in a container).

#[path = "support/daemon.rs"]
mod daemon;

use serde_json::Value;

/// Round trips per latency row in a quick run (bench.rs).
const QUICK_EVENTS: u64 = 500;

#[test]
fn quick_bench_reports_tls_publish_beside_tcp_and_tls_echo_floors() {
    let out = daemon::herald(&["bench", "--quick", "--json", "--io", "epoll"]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let rows = report["latency"].as_array().expect("latency rows");
    for name in [
        "echo round trip 64 B (baseline)",
        "TCP loopback echo round trip 64 B (baseline)",
        "TCP loopback echo round trip 1 KiB (baseline)",
        "TLS 1.3 loopback echo round trip 64 B (baseline)",
        "TLS 1.3 loopback echo round trip 1 KiB (baseline)",
        "epoll: durable publish 64 B (busy poll 0 us)",
        "epoll: durable publish over TLS 64 B (busy poll 0 us)",
        "epoll: durable publish over TLS 1 KiB (busy poll 0 us)",
        "epoll: publish -> delivered, 1 subscriber(s), 5000 events/s",
        "epoll: publish at origin -> delivered at a relay, 1 subscriber, 5000 events/s",
    ] {
        let row = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no latency row {name:?} in {rows:#?}"));
        assert_eq!(row["count"], QUICK_EVENTS, "{row}");
        let (p50, p99) = (
            row["p50_us"].as_f64().unwrap(),
            row["p99_us"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{row}");
    }
    let ratios = report["ratios"].as_object().expect("ratios");
    for key in [
        "tcp_echo_64B_p50_over_unix_echo_p50",
        "tls_echo_64B_p50_over_tcp_echo_p50",
        "tls_echo_1KiB_p50_over_tcp_echo_p50",
        "epoll_tls_publish_64B_p50_over_tls_echo_p50_busy_poll_0us",
        "epoll_tls_publish_1KiB_p50_over_tls_echo_p50_busy_poll_0us",
        "epoll_tls_publish_64B_p50_over_publish_p50_busy_poll_0us",
        "epoll_tls_publish_1KiB_p50_over_publish_p50_busy_poll_0us",
        "epoll_relay_e2e_p50_over_e2e_p50",
        "epoll_relay_e2e_p99_over_e2e_p99",
    ] {
        let ratio = ratios
            .get(key)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("no ratio {key:?} in {ratios:#?}"));
        assert!(ratio.is_finite() && ratio > 0.0, "{key} = {ratio}");
    }
}
