//! The seed of a randomised test. A fixed default makes every run the same run; an
//! environment variable overrides it, to reproduce a failure or to explore others.
//! The seed is printed when the test starts and again if it fails, with the command
//! that reruns it (the test harness shows a failed test's output).

#![allow(dead_code)]

/// A test's seed. While it lives, a panic on this thread prints it again.
pub struct Seed {
    pub value: u64,
    rerun: String,
}

impl Seed {
    /// `var` from the environment (a decimal `u64`), else `default`; `command` runs the
    /// test (`cargo test --test e2e`).
    pub fn from_env(var: &str, default: u64, command: &str) -> Seed {
        let value = match std::env::var(var) {
            Ok(text) => text
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{var}={text:?} is not a decimal u64")),
            Err(_) => default,
        };
        let rerun = format!("{var}={value} {command}");
        let origin = if std::env::var(var).is_ok() {
            format!("from {var}")
        } else {
            format!("the default; set {var} to change it")
        };
        eprintln!("seed {value} ({origin}); reproduce: {rerun}");
        Seed { value, rerun }
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("FAILED with seed {}; reproduce: {}", self.value, self.rerun);
        }
    }
}
