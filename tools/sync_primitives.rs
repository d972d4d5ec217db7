//! Which system call makes a small commit to a file durable fastest on this disk?
//!
//! herald's disk mode writes records into a mapped region file and then syncs. This
//! measures, on a file in the chosen directory (default: the system temp dir), the
//! latency of one small commit followed by each candidate sync:
//!
//! - `msync(MS_SYNC)` of the dirty 4 KiB range of a shared mapping;
//! - `fdatasync` of the file after writing through the mapping;
//! - `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` of the range, then `fdatasync`;
//! - `pwrite` to a descriptor opened `O_DSYNC`;
//! - `pwrite` then `fdatasync` (the floor: one data sync of a 4 KiB page);
//! - `pwrite` + `fdatasync` appending to a file that grows (what an append-only log
//!   with `fsync` per write pays: the size changes, so metadata is journalled too);
//!
//! each on a region whose blocks were only reserved (`posix_fallocate`: unwritten
//! extents, converted by the first write) and on one written with zeros once.
//!
//! `cargo run --release --example sync_primitives -- [--dir DIR] [--commits N]`

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

const REGION_BYTES: usize = 64 << 20;
const PAGE: usize = 4096;

fn main() {
    let mut dir = std::env::temp_dir();
    let mut commits = 2000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().expect("--dir DIR").into(),
            "--commits" => commits = args.next().expect("--commits N").parse().expect("a number"),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: sync_primitives [--dir DIR] [--commits N]"
                );
                std::process::exit(2);
            }
        }
    }
    let scratch = tempfile::tempdir_in(&dir).expect("a scratch directory");
    println!("{commits} commits of 64 bytes each, on {}", dir.display());
    println!(
        "{:<58} {:>9} {:>9} {:>9}",
        "primitive (us)", "p50", "p99", "mean"
    );
    for zeroed in [false, true] {
        let prepared = if zeroed { "zero-filled" } else { "fallocated" };
        for kind in [
            Kind::Msync,
            Kind::Fdatasync,
            Kind::SyncFileRange,
            Kind::ODsync,
            Kind::PwriteFdatasync,
        ] {
            let path = scratch.path().join(format!("{kind:?}-{prepared}"));
            let samples = measure(&path, kind, zeroed, commits);
            report(&format!("{} ({prepared})", kind.name()), &samples);
        }
    }
    let path = scratch.path().join("append");
    let samples = measure(&path, Kind::Append, false, commits);
    report(Kind::Append.name(), &samples);
}

#[derive(Copy, Clone, Debug)]
enum Kind {
    Msync,
    Fdatasync,
    SyncFileRange,
    ODsync,
    PwriteFdatasync,
    Append,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Msync => "store into mapping + msync(MS_SYNC) of the page",
            Kind::Fdatasync => "store into mapping + fdatasync",
            Kind::SyncFileRange => "store into mapping + sync_file_range + fdatasync",
            Kind::ODsync => "pwrite to an O_DSYNC descriptor",
            Kind::PwriteFdatasync => "pwrite + fdatasync (the 4 KiB floor)",
            Kind::Append => "append + fdatasync (a growing file)",
        }
    }
}

fn measure(path: &std::path::Path, kind: Kind, zeroed: bool, commits: usize) -> Vec<f64> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    if matches!(kind, Kind::ODsync) {
        options.custom_flags(libc::O_DSYNC);
    }
    let file = options.open(path).expect("open the test file");
    let fd = file.as_raw_fd();
    if !matches!(kind, Kind::Append) {
        if zeroed {
            let zeros = vec![0u8; 1 << 20];
            let mut f = &file;
            for _ in 0..REGION_BYTES >> 20 {
                f.write_all(&zeros).expect("zero-fill");
            }
        } else {
            // SAFETY: plain syscall on a descriptor we own.
            let r = unsafe { libc::posix_fallocate(fd, 0, REGION_BYTES as libc::off_t) };
            assert_eq!(r, 0, "posix_fallocate");
        }
        // SAFETY: as above.
        assert_eq!(unsafe { libc::fsync(fd) }, 0, "fsync after preparing");
    }
    let map = if matches!(kind, Kind::Msync | Kind::Fdatasync | Kind::SyncFileRange) {
        // SAFETY: a shared mapping of the whole file we just sized; unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                REGION_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        Some(p.cast::<u8>())
    } else {
        None
    };
    let record = [0x5au8; 64];
    let mut samples = Vec::with_capacity(commits);
    for i in 0..commits {
        // Each commit lands on the next page, as a ring's group commits do.
        let offset = (i * PAGE) % REGION_BYTES;
        let start = Instant::now();
        match kind {
            Kind::Msync | Kind::Fdatasync | Kind::SyncFileRange => {
                let base = map.expect("mapped");
                // SAFETY: offset + 64 is inside the mapping.
                unsafe { std::ptr::copy_nonoverlapping(record.as_ptr(), base.add(offset), 64) };
                // SAFETY: syscalls on our mapping and descriptor.
                let r = unsafe {
                    match kind {
                        Kind::Msync => libc::msync(base.add(offset).cast(), PAGE, libc::MS_SYNC),
                        Kind::Fdatasync => libc::fdatasync(fd),
                        _ => {
                            let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                                | libc::SYNC_FILE_RANGE_WRITE
                                | libc::SYNC_FILE_RANGE_WAIT_AFTER;
                            libc::sync_file_range(fd, offset as i64, PAGE as i64, flags);
                            libc::fdatasync(fd)
                        }
                    }
                };
                assert_eq!(r, 0, "{kind:?}");
            }
            Kind::ODsync => file.write_all_at(&record, offset as u64).expect("pwrite"),
            Kind::PwriteFdatasync => {
                file.write_all_at(&record, offset as u64).expect("pwrite");
                // SAFETY: syscall on our descriptor.
                assert_eq!(unsafe { libc::fdatasync(fd) }, 0);
            }
            Kind::Append => {
                (&file).write_all(&record).expect("append");
                // SAFETY: as above.
                assert_eq!(unsafe { libc::fdatasync(fd) }, 0);
            }
        }
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    if let Some(base) = map {
        // SAFETY: the mapping made above, not used after this.
        unsafe { libc::munmap(base.cast(), REGION_BYTES) };
    }
    samples
}

fn report(name: &str, samples: &[f64]) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    println!(
        "{name:<58} {:>9.1} {:>9.1} {:>9.1}",
        at(0.5),
        at(0.99),
        mean
    );
}
