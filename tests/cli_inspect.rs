//! `herald inspect` driven as a real binary on copies of the fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture_copy(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(
        format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR")),
        &to,
    )
    .unwrap();
    to
}

fn herald(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn inspect_prints_geometry_counts_and_subscriptions_and_exits_zero_on_a_clean_region() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path(), "clean.pmem");
    let out = herald(&["inspect", path.to_str().unwrap(), "--events"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("768 slots x 64 B"), "{text}");
    assert!(text.contains("live 30 (15 events)"), "{text}");
    assert!(text.contains("ops"), "{text}");
    assert!(
        text.contains("event 19: disk sda reports 57 reallocated sectors"),
        "{text}"
    );
    assert!(
        !text.contains("event 4:"),
        "released events are not listed: {text}"
    );
}

#[test]
fn inspect_json_is_one_region_object_then_one_line_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_copy(dir.path(), "wrapped-ring.pmem");
    let out = herald(&["inspect", path.to_str().unwrap(), "--events", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "region");
    assert_eq!(lines[0]["recovery"]["live_events"], 40);
    assert_eq!(lines[0]["region"]["kind"], "file");
    assert_eq!(lines.len(), 41);
    assert!(lines[1..]
        .iter()
        .all(|l| l["type"] == "event" && l["topic"] == "fs.disk.error"));
}

#[test]
fn inspect_exits_three_on_damage_and_never_modifies_the_region() {
    let dir = tempfile::tempdir().unwrap();
    for (name, code, needle) in [
        ("corrupt-slot-checksum.pmem", 3, "CORRUPT"),
        ("torn-group-hole.pmem", 0, "hole"),
    ] {
        let path = fixture_copy(dir.path(), name);
        let before = std::fs::read(&path).unwrap();
        let out = herald(&["inspect", path.to_str().unwrap()]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(code), "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "{name} was modified by inspect"
        );
    }
}

#[test]
fn inspect_names_the_file_and_the_problem_when_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    for (name, problem) in [
        ("corrupt-superblock.pmem", "superblock checksum mismatch"),
        ("older-layout-version.pmem", "layout version 0"),
    ] {
        let path = fixture_copy(dir.path(), name);
        let out = herald(&["inspect", path.to_str().unwrap()]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(name) && err.contains(problem), "{err}");
    }
    let out = herald(&["inspect", dir.path().join("missing.pmem").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("missing.pmem"));
}

#[test]
fn format_creates_a_region_and_refuses_to_overwrite_one_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pmem");
    let p = path.to_str().unwrap();
    let out = herald(&["format", p, "--size", "1M", "--slot-bytes", "256"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("slots of 256 B"));
    let inspected = herald(&["inspect", p, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(v["geometry"]["ring"]["slot_bytes"], 256);
    let before = std::fs::read(&path).unwrap();

    let refused = herald(&["format", p]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8(refused.stderr)
        .unwrap()
        .contains("already holds a herald region"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "nothing written when refused"
    );

    let forced = herald(&["format", p, "--force"]);
    assert_eq!(forced.status.code(), Some(0));
    let v: serde_json::Value =
        serde_json::from_slice(&herald(&["inspect", p, "--json"]).stdout).unwrap();
    assert_eq!(
        v["geometry"]["ring"]["slot_bytes"], 128,
        "reformatted with the new geometry"
    );

    let data = dir.path().join("data.bin");
    std::fs::write(&data, vec![1u8; 1 << 20]).unwrap();
    let refused = herald(&["format", data.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8(refused.stderr)
        .unwrap()
        .contains("not empty"));
    assert_eq!(std::fs::read(&data).unwrap(), vec![1u8; 1 << 20]);
}
