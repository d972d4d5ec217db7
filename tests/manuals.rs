//! The man pages and shell completions the Debian package ships, generated from the
//! command line by the hidden `herald manpages` and `herald completions`: one page per
//! visible command, each flag with its environment variable, and nothing of the hidden
//! commands in `--help`.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::herald;

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn manpages_writes_one_page_per_visible_command_with_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man");
    stdout(&herald(&["manpages", pages.to_str().unwrap()]));
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for page in [
        "herald.1",
        "herald-serve.1",
        "herald-config-check.1",
        "herald-dead-list.1",
    ] {
        assert!(names.iter().any(|n| n == page), "{page} in {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("manpages") || n.contains("completions")),
        "hidden commands have no page: {names:?}"
    );
    let serve = std::fs::read_to_string(pages.join("herald-serve.1")).unwrap();
    assert!(serve.starts_with(".ie"), "roff: {}", &serve[..80]);
    // roff escapes the hyphens of flags.
    assert!(serve.contains(r"\-\-data\-dir"), "{serve}");
    assert!(
        serve.contains("HERALD_DATA_DIR"),
        "the environment variable: {serve}"
    );
    // herald(1) lists the visible commands and refers to their pages.
    let top = std::fs::read_to_string(pages.join("herald.1")).unwrap();
    assert!(top.contains("herald\\-serve(1)"), "{top}");
    assert!(!top.contains("manpages"), "{top}");
}

#[test]
fn completions_complete_the_commands_and_refuse_an_unknown_shell() {
    let bash = stdout(&herald(&["completions", "bash"]));
    assert!(bash.contains("complete -F _herald"), "{bash}");
    assert!(
        bash.contains("serve") && bash.contains("--data-dir"),
        "{bash}"
    );
    let zsh = stdout(&herald(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef herald"), "{zsh}");
    let fish = stdout(&herald(&["completions", "fish"]));
    assert!(fish.contains("complete -c herald"), "{fish}");

    let out = herald(&["completions", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("possible values: bash"), "{stderr}");
}

#[test]
fn the_packaging_commands_are_not_in_help() {
    let help = stdout(&herald(&["--help"]));
    assert!(
        !help.contains("manpages") && !help.contains("completions"),
        "{help}"
    );
    assert!(help.contains("serve"), "{help}");
}
