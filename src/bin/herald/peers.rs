//! `herald bench peers`: runs the `herald-bench-peers` program with the same arguments.
//!
//! The peer comparison is its own crate and binary (bench-peers/ in the workspace) so
//! that the clients of the systems it compares herald with never reach this binary or
//! programs using herald's client library. The subcommand stays because the CLI is an
//! API: scripts and the README name `herald bench peers`.

use anyhow::Context;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The program `herald bench peers` runs.
const PROGRAM: &str = "herald-bench-peers";

/// The variable through which the peer comparison learns which herald to measure.
const HERALD_BIN_VARIABLE: &str = "HERALD_BIN";

/// Arguments of `herald bench peers`: every one is passed on untouched, `--help`
/// included, so the flags and their help are the peer comparison's own.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct PeersArgs {
    /// The peer comparison's arguments (`herald bench peers --help` lists them).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

/// The examples under `herald help bench peers`.
pub const AFTER_HELP: &str = "Examples:\n  tools/install-peers.sh && herald bench peers       # a few minutes\n  herald bench peers --quick --json-out peers.json   # seconds: checks the harness\n  herald bench peers --systems herald,redis-always --plot cmp.svg\n  herald bench peers --help                          # every flag\n\nRuns the herald-bench-peers program (the `herald-bench-peers` beside this herald,\nelse on PATH) with the same arguments, measuring this herald. Build it with\n`cargo build --release -p herald-bench-peers`.";

/// Replaces this process with `herald-bench-peers ARGS`; returns only if that fails.
pub fn run(args: PeersArgs) -> anyhow::Result<ExitCode> {
    let herald = std::env::current_exe().context("finding this herald's own path")?;
    // Beside this herald first: cargo builds both workspace members into the same
    // target directory, so a herald from target/release finds its own comparison.
    let beside = herald.with_file_name(PROGRAM);
    let program = if beside.is_file() {
        beside
    } else {
        PathBuf::from(PROGRAM) // exec searches PATH for a bare name
    };
    // exec rather than spawn-and-wait: the comparison's output, exit status and
    // signals (Ctrl-C stops its servers) are then exactly its own.
    // argv[0] names the command the user typed, so the comparison's usage lines and
    // errors read `herald bench peers`, as they did when it was part of this binary.
    let error = Command::new(&program)
        .arg0("herald bench peers")
        .args(&args.args)
        .env(HERALD_BIN_VARIABLE, &herald)
        .exec();
    if error.kind() == std::io::ErrorKind::NotFound {
        anyhow::bail!("{}", not_found(&herald));
    }
    Err(error).with_context(|| format!("running {}", program.display()))
}

/// What to say when the comparison is nowhere to be found: where it was looked for,
/// and the command that builds it where this herald will find it.
fn not_found(herald: &Path) -> String {
    let dir = herald.parent().unwrap_or(Path::new("."));
    format!(
        "`herald bench peers` runs the {PROGRAM} program, which is neither in {} nor on PATH.\nBuild it with `cargo build --release -p {PROGRAM}` (it lands in target/release, beside target/release/herald; without --release, in target/debug), then run `herald bench peers` again.",
        dir.display()
    )
}
