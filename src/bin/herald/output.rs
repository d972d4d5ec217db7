//! Formatting helpers shared by commands: human text, never mixed with `--json`.

use std::time::{Duration, UNIX_EPOCH};

/// Bytes as a short human figure (KiB, MiB, GiB).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Nanoseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn timestamp(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Bytes as text for a terminal: UTF-8 shown as is (control characters escaped),
/// anything else as hex; cut at `max_chars`.
pub fn printable(data: &[u8], max_chars: usize) -> String {
    let text = match std::str::from_utf8(data) {
        Ok(s) => s
            .chars()
            .flat_map(|c| c.escape_default())
            .collect::<String>(),
        Err(_) => data.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    };
    if text.chars().count() > max_chars {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Bytes for JSON: a string if UTF-8, else hex under a different key.
pub fn json_bytes(key: &str, data: &[u8]) -> (String, serde_json::Value) {
    match std::str::from_utf8(data) {
        Ok(s) => (key.to_string(), serde_json::Value::from(s)),
        Err(_) => (
            format!("{key}_hex"),
            serde_json::Value::from(data.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        ),
    }
}
