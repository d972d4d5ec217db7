//! Runs one target's checks over input files, without libFuzzer (for debugging a
//! finding under a debugger or with prints): `cargo +nightly run --example replay --
//! TARGET FILE...`.

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: replay TARGET FILE...");
    let run: fn(&[u8]) = match target.as_str() {
        "frame" => herald_fuzz::frame::run,
        "spec" => herald_fuzz::spec::run,
        "daemon" => herald_fuzz::daemon::run,
        "region" => herald_fuzz::region::run,
        "dead_letters" => herald_fuzz::dead_letters::run,
        other => panic!("no target {other}"),
    };
    // As the daemon target does (see fuzz_targets/daemon.rs).
    // SAFETY: called once, before anything else allocates from another thread.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
    for file in args {
        let data = std::fs::read(&file).expect("read input");
        println!("{file}");
        run(&data);
    }
}
