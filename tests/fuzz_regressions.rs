//! Every input the fuzz targets found a fault with (`fuzz/regressions/TARGET/`) and
//! the committed corpus (`fuzz/corpus/TARGET/`), replayed through the targets' own
//! checks: the modules of `fuzz/src/` are included here by path, so these tests and
//! `cargo fuzz` run the same code (see `fuzz/Cargo.toml` and `tools/fuzz.sh`).
//!
//! A finding's regression test is its minimised input under `fuzz/regressions/`, named
//! after what went wrong; the fix and the input are committed together.

#[path = "../fuzz/src/bytes.rs"]
mod bytes;
#[path = "../fuzz/src/daemon.rs"]
mod daemon;
// `seed` is for the corpus generator only.
#[allow(dead_code)]
#[path = "../fuzz/src/dead_letters.rs"]
mod dead_letters;
#[path = "../fuzz/src/frame.rs"]
mod frame;
#[path = "../fuzz/src/region.rs"]
mod region;
#[path = "../fuzz/src/reseal.rs"]
mod reseal;
#[path = "../fuzz/src/spec.rs"]
mod spec;

use std::path::{Path, PathBuf};

/// The files of `fuzz/DIR/TARGET`, sorted (none when the directory does not exist).
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.expect("a readable directory entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs `check` on every committed input of `target`; names the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let mut ran = 0;
    for dir in ["regressions", "corpus"] {
        for file in inputs(dir, target) {
            let data = std::fs::read(&file).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "fuzz input {} fails", file.display());
            ran += 1;
        }
    }
    assert!(ran > 0, "no committed inputs for {target}");
}

#[test]
fn frame_inputs_decode_and_re_encode_as_the_fuzz_target_checks() {
    replay("frame", frame::run);
}

#[test]
fn daemon_scripts_leave_a_daemon_that_serves_as_the_fuzz_target_checks() {
    replay("daemon", daemon::run);
}

#[test]
fn region_images_open_or_are_refused_without_panicking() {
    replay("region", region::run);
}

#[test]
fn damaged_dead_letter_areas_open_and_stay_consistent() {
    replay("dead_letters", dead_letters::run);
}

#[test]
fn stored_subscription_specs_decode_re_encode_and_match() {
    replay("spec", spec::run);
}
