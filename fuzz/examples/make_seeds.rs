//! Writes every target's seeds into `corpus/<target>/`:
//! `cargo +nightly run --example make_seeds` (from `fuzz/`).

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in ["frame", "spec", "daemon", "region", "dead_letters"] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        for (name, bytes) in herald_fuzz::seeds::seeds(target) {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        }
        println!("{}", dir.display());
    }
}
