//! A child process appends and releases on a region file; the parent kills it with
//! SIGKILL at a random moment (after a random number of acknowledgements), reopens
//! the region and checks that every event whose append returned is there, intact and
//! in order, and that every release that returned still holds. Then the next child
//! continues on the same region. `HERALD_KILL_CYCLES` and `HERALD_KILL_SEED` override
//! the defaults (the seed is fixed unless overridden); the seed is printed at the start
//! and on failure. It chooses each child's batches and releases and after how many
//! acknowledgements the kill comes; what the child had done past that point when the
//! signal lands is the kernel's schedule, so a seed reproduces the choices, and every
//! check holds whatever the child had done.
//!
//! This binary is its own child: with `HERALD_KILL_CHILD=<region>` set it runs the
//! append loop instead of the test.

use herald::log::{AppendError, EventRef, Seq, Severity, SubscriptionId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn payload_for(counter: u64) -> Vec<u8> {
    let len = (counter * 7919 % 700) as usize;
    let mut p = counter.to_le_bytes().to_vec();
    p.extend((0..len).map(|i| (counter as usize + i) as u8));
    p
}

fn child(region: &Path, seed: u64) {
    let (mut log, _) = herald::log::open_path(region, &Default::default(), &mut |_, _| {})
        .expect("child opens region");
    let sub = SubscriptionId(0);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut counter: u64 = std::env::var("HERALD_KILL_COUNTER")
        .unwrap()
        .parse()
        .unwrap();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let n = rng.gen_range(1..=32);
        let payloads: Vec<(u64, Vec<u8>)> = (0..n)
            .map(|i| (counter + i, payload_for(counter + i)))
            .collect();
        counter += n;
        let mut batch = log.batch();
        let mut seqs = Vec::new();
        for (c, p) in &payloads {
            let e = EventRef {
                topic: b"kill.test",
                severity: Severity::Info,
                source: b"child",
                flags: 0,
                key: b"",
                payload: p,
                timestamp_ns: *c,
                route: 0,
            };
            match batch.push(&e) {
                Ok(seq) => seqs.push((seq, *c)),
                Err(AppendError::Full { .. }) => break,
                Err(e) => panic!("append: {e}"),
            }
        }
        batch.commit().expect("commit");
        // Only now are these events acknowledged.
        for (seq, c) in seqs {
            writeln!(out, "A {} {c}", seq.0).unwrap();
        }
        if rng.gen_bool(0.2) || log.used_slots() * 4 > log.geometry().ring.slot_count * 3 {
            let target = log.tail();
            log.release(&[(sub, target)]).expect("release");
            writeln!(out, "R {}", target.0).unwrap();
        }
        out.flush().unwrap();
    }
}

/// The seed of a run without `HERALD_KILL_SEED`.
const DEFAULT_SEED: u64 = 0x5eed_4b11_0001;

fn main() {
    if let Ok(region) = std::env::var("HERALD_KILL_CHILD") {
        let seed = std::env::var("HERALD_KILL_SEED").unwrap().parse().unwrap();
        child(Path::new(&region), seed);
        return;
    }
    let seed: u64 = match std::env::var("HERALD_KILL_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("HERALD_KILL_SEED={text:?} is not a decimal u64")),
        Err(_) => DEFAULT_SEED,
    };
    let cycles: u64 = std::env::var("HERALD_KILL_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let reproduce = format!(
        "HERALD_KILL_SEED={seed} HERALD_KILL_CYCLES={cycles} cargo test --test process_kill"
    );
    println!("process_kill: seed {seed}; reproduce: {reproduce}");
    match run(seed, cycles) {
        Ok(summary) => {
            println!("process_kill: {summary}");
            println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
        }
        Err(message) => {
            eprintln!("process_kill FAILED with seed {seed}: {message}\nreproduce: {reproduce}");
            println!(
                "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
            );
            std::process::exit(1);
        }
    }
}

fn run(seed: u64, cycles: u64) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let region = dir.path().join("region.pmem");
    let mut log = herald::log::create_file(&region, 1 << 20, &Default::default(), seed | 1)
        .map_err(|e| e.to_string())?;
    let sub = log
        .create_subscription(b"checker", b"")
        .map_err(|e| e.to_string())?;
    assert_eq!(sub, SubscriptionId(0));
    drop(log);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new(); // seq -> counter
    let mut cursor: u64 = Seq::FIRST.0;
    let mut counter: u64 = 0;
    let mut total_acked = 0u64;
    let mut max_tail = 0;
    for cycle in 0..cycles {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("HERALD_KILL_CHILD", &region)
            .env("HERALD_KILL_SEED", (seed ^ cycle).to_string())
            .env("HERALD_KILL_COUNTER", counter.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let kill_after: u64 = rng.gen_range(1..3000);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0u64;
        let mut record = |line: &str, acked: &mut BTreeMap<u64, u64>, cursor: &mut u64| {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts[0] {
                "A" => {
                    let c: u64 = parts[2].parse().unwrap();
                    acked.insert(parts[1].parse().unwrap(), c);
                    counter = counter.max(c + 1);
                    total_acked += 1;
                }
                "R" => *cursor = parts[1].parse().unwrap(),
                other => panic!("unexpected child output {other}"),
            }
        };
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            record(&line, &mut acked, &mut cursor);
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        // SIGKILL: no destructor, no flush, no chance to finish the current commit.
        child.kill().map_err(|e| e.to_string())?;
        // Lines already written to the pipe were acknowledged before the kill.
        for line in lines {
            record(&line.map_err(|e| e.to_string())?, &mut acked, &mut cursor);
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            return Err(format!("cycle {cycle}: child exited by itself: {status}"));
        }
        // Reopen and check.
        let (log, report) = herald::log::open_path(&region, &Default::default(), &mut |_, _| {})
            .map_err(|e| format!("cycle {cycle}: reopen: {e}"))?;
        let recovered_cursor = log.subscription(sub).unwrap().cursor;
        if recovered_cursor < cursor {
            return Err(format!(
                "cycle {cycle}: cursor went back from {cursor} to {recovered_cursor}"
            ));
        }
        if report.corrupt_slots > 0 {
            return Err(format!(
                "cycle {cycle}: a kill produced corrupt slots: {report:?}"
            ));
        }
        let recovered: BTreeMap<u64, u64> = log
            .events_from(Seq(recovered_cursor))
            .map(|e| {
                let c = u64::from_le_bytes(e.payload[..8].try_into().unwrap());
                assert_eq!(
                    e.payload,
                    payload_for(c),
                    "payload of event {} is not the one written",
                    e.seq
                );
                (e.seq.0, c)
            })
            .collect();
        for (seq, c) in acked.range(recovered_cursor..) {
            if recovered.get(seq) != Some(c) {
                return Err(format!(
                    "cycle {cycle}: acknowledged event {seq} (counter {c}) lost; report {report:?}"
                ));
            }
        }
        // Unacknowledged survivors are allowed; adopt them, they are durable now.
        for (s, c) in &recovered {
            counter = counter.max(c + 1);
            acked.insert(*s, *c);
        }
        cursor = recovered_cursor;
        acked.retain(|s, _| *s >= cursor);
        max_tail = max_tail.max(log.tail().0);
    }
    let slots = 1u64 << 20 >> 7;
    if max_tail < slots {
        return Err(format!(
            "the ring never wrapped (tail {max_tail}); the test is too short"
        ));
    }
    Ok(format!("{cycles} SIGKILL cycles, {total_acked} acknowledged events checked, ring tail reached {max_tail}, seed {seed}"))
}
