//! `herald bench peers --quick` on every system, so the comparison harness cannot rot:
//! each system must really store and deliver every event it was given, by the counts
//! the harness reads back from the system itself. No timing is asserted.
//!
//! It goes through the `herald` binary, as users do, so it also checks that
//! `herald bench peers` finds and runs `herald-bench-peers`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every system, and whether it stores and delivers (floors do one or the other).
const SYSTEMS: [(&str, bool, bool); 9] = [
    ("herald", true, true),
    ("herald-disk", true, true),
    ("redis-always", true, true),
    ("redis-no", true, true),
    ("jetstream", true, true),
    ("pmemlog", true, false),
    ("raw-flush", true, false),
    ("fdatasync", true, false),
    ("echo", false, true),
];
const WORKLOADS: [&str; 3] = ["publish_latency", "throughput", "end_to_end"];
const PAYLOADS: [u64; 2] = [64, 1024];

/// The `herald` binary: `HERALD_BIN` when set (tools/test.sh names the one its
/// `cargo test --workspace` has just built), else the one beside this package's
/// `herald-bench-peers`, built now.
///
/// The build is for a run of this package's tests alone. Under tools/test.sh it would
/// cost minutes: `cargo build -p herald` resolves the dependencies' features for herald
/// alone, not as the workspace's test build does, so it rebuilds herald and several
/// dependencies, and the next `cargo test --workspace` rebuilds them back.
///
/// Cargo names only the tested package's own binaries to its tests
/// (`CARGO_BIN_EXE_herald-bench-peers`), and herald is another package, which this one
/// uses as a library. So the test asks cargo to build it, in the same target
/// directory and profile as this test (a no-op under `cargo test --workspace`, which
/// has just built it for herald's own tests), and never runs a stale one.
fn herald_binary() -> PathBuf {
    if let Some(herald) = std::env::var_os("HERALD_BIN") {
        let herald = PathBuf::from(herald);
        assert!(herald.is_file(), "HERALD_BIN: no {}", herald.display());
        return herald;
    }
    let bench_peers = Path::new(env!("CARGO_BIN_EXE_herald-bench-peers"));
    let profile_dir = bench_peers
        .parent()
        .expect("target/<profile>/herald-bench-peers");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    // target/debug holds `cargo test`'s test profile, target/release `--release`'s.
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => "release",
        _ => "test",
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--package", "herald", "--bin", "herald"])
        .args(["--profile", profile, "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("run cargo build --package herald");
    assert!(status.success(), "cargo build --package herald: {status}");
    let herald = profile_dir.join("herald");
    assert!(herald.is_file(), "cargo built no {}", herald.display());
    herald
}

/// The systems to run: every one, or those `HERALD_BENCH_PEERS_TEST_SYSTEMS` names
/// (comma-separated). tools/test.sh's epoll pass names herald's own two: the peers
/// do not change with herald's I/O backend, and they ran in the first pass.
fn systems() -> Vec<(&'static str, bool, bool)> {
    let Ok(names) = std::env::var("HERALD_BENCH_PEERS_TEST_SYSTEMS") else {
        return SYSTEMS.to_vec();
    };
    let chosen: Vec<_> = names
        .split(',')
        .map(|name| {
            *SYSTEMS
                .iter()
                .find(|s| s.0 == name.trim())
                .unwrap_or_else(|| panic!("HERALD_BENCH_PEERS_TEST_SYSTEMS: no system {name}"))
        })
        .collect();
    assert!(
        !chosen.is_empty(),
        "HERALD_BENCH_PEERS_TEST_SYSTEMS names none"
    );
    chosen
}

#[test]
fn every_system_stores_and_delivers_every_event_of_every_workload() {
    let systems = systems();
    let names: Vec<&str> = systems.iter().map(|s| s.0).collect();
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("peers.json");
    let plot_path = dir.path().join("peers.svg");
    let output = Command::new(herald_binary())
        .args(["bench", "peers", "--quick", "--systems"])
        .arg(names.join(","))
        .arg("--json-out")
        .arg(&json_path)
        .arg("--plot")
        .arg(&plot_path)
        .arg("--scratch-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap_or_else(|e| {
        panic!(
            "no JSON at {}: {e}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            json_path.display()
        )
    }))
    .unwrap();

    for &(name, _, _) in &systems {
        let system = report["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["system"] == name)
            .unwrap_or_else(|| panic!("{name} missing from the report"));
        assert!(
            system["available"] == true,
            "{name} did not run: {}\nIf a peer is not installed, run tools/install-peers.sh (CI does).",
            system["error"]
        );
    }
    let results = report["results"].as_array().unwrap();
    for &(name, stores, delivers) in &systems {
        for workload in WORKLOADS {
            // Only systems that deliver have an end-to-end row.
            if workload == "end_to_end" && !(stores && delivers) {
                continue;
            }
            for payload in PAYLOADS {
                let row = results
                    .iter()
                    .find(|r| {
                        r["system"] == name
                            && r["workload"] == workload
                            && r["payload_bytes"] == payload
                    })
                    .unwrap_or_else(|| panic!("no result for {name} {workload} {payload} B"));
                let published = row["published"].as_u64().unwrap();
                let what = format!("{name} {workload} {payload} B");
                assert!(published > 0, "{what}: nothing published");
                if stores {
                    assert_eq!(row["stored"].as_u64(), Some(published), "{what}: stored");
                }
                if delivers {
                    assert_eq!(
                        row["delivered_confirmed"].as_u64(),
                        Some(published),
                        "{what}: delivered and confirmed"
                    );
                }
            }
        }
    }
    assert_eq!(report["all_verified"], true);
    assert!(
        output.status.success(),
        "exit status {:?}\nstderr:\n{stderr}",
        output.status
    );
    let plot = std::fs::read_to_string(&plot_path).unwrap();
    assert!(
        plot.contains("<svg") && plot.contains("herald"),
        "the plot names herald"
    );
}
