//! `herald manpages DIR` and `herald completions SHELL` (hidden): the man pages and the
//! shell completions, generated from the command line itself (clap_mangen,
//! clap_complete), so that they cannot drift from `--help`. `tools/package.sh` runs
//! them for the Debian package.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald manpages`.
#[derive(clap::Args)]
pub struct ManpagesArgs {
    /// Directory to write herald.1 and one page per subcommand (herald-serve.1, ...)
    /// into; created if missing.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Arguments of `herald completions`.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for, on stdout.
    #[arg(value_enum, value_name = "SHELL")]
    shell: clap_complete::Shell,
}

/// Writes every man page into the directory.
pub fn manpages(args: &ManpagesArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", args.dir.display()))?;
    clap_mangen::generate_to(command, &args.dir)
        .map_err(|e| anyhow::anyhow!("writing man pages into {}: {e}", args.dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the completion script on stdout.
pub fn completions(args: &CompletionsArgs, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    clap_complete::generate(args.shell, &mut command, "herald", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
