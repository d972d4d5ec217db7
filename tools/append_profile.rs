//! Appends 64-byte events one commit at a time in a loop, for profilers
//! (`valgrind --tool=callgrind`, `perf record`): `cargo run --release --example append_profile -- N`.

use herald::log::{EventRef, Severity, StoreOptions};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region.pmem");
    let mut log = herald::log::create_file(&path, 64 << 20, &StoreOptions::default(), 1).unwrap();
    let sub = log.create_subscription(b"p", b"").unwrap();
    let payload = [0x5au8; 64];
    for i in 0..n {
        let e = EventRef {
            topic: b"bench.e",
            severity: Severity::Info,
            source: b"bench",
            flags: 0,
            key: b"",
            payload: &payload,
            timestamp_ns: i,
            route: 0,
        };
        std::hint::black_box(log.append(&e).unwrap());
        if i % 4096 == 4095 {
            let tail = log.tail();
            log.release(&[(sub, tail)]).unwrap();
        }
    }
    println!("{n} appends, tail {}", log.tail());
}
