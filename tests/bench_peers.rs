//! `herald bench peers --quick` on every system, so the comparison harness cannot rot:
//! each system must really store and deliver every event it was given, by the counts
//! the harness reads back from the system itself. No timing is asserted.

use serde_json::Value;
use std::process::Command;

/// Every system, and whether it stores and delivers (floors do one or the other).
const SYSTEMS: [(&str, bool, bool); 8] = [
    ("herald", true, true),
    ("herald-msync", true, true),
    ("redis-always", true, true),
    ("redis-no", true, true),
    ("jetstream", true, true),
    ("pmemlog", true, false),
    ("raw-flush", true, false),
    ("echo", false, true),
];
const WORKLOADS: [&str; 3] = ["publish_latency", "throughput", "end_to_end"];
const PAYLOADS: [u64; 2] = [64, 1024];

#[test]
fn every_system_stores_and_delivers_every_event_of_every_workload() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("peers.json");
    let plot_path = dir.path().join("peers.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["bench", "peers", "--quick", "--json-out"])
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

    for (name, _, _) in SYSTEMS {
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
    for (name, stores, delivers) in SYSTEMS {
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
