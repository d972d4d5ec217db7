//! The daemon's configuration through the real binary: a TOML file, `HERALD_*`
//! environment variables and flags, each winning over the one before; unknown keys and
//! bad values refused with the file and the line; `herald config check` saying where
//! every value came from; `dist/herald.toml` listing every setting.

#[path = "support/daemon.rs"]
mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The layers the precedence tests use: the file sets four settings, the environment
/// overrides two of them, a flag one of those.
const FILE: &str = "\
# four settings, one a line
connections_max = 7
max_deliveries = 3
ack_deadline = \"11s\"
redelivery_backoff = \"2s\"
";
const ENV: [(&str, &str); 2] = [
    ("HERALD_MAX_DELIVERIES", "4"),
    ("HERALD_ACK_DEADLINE", "12s"),
];
const FLAG: [&str; 2] = ["--ack-deadline", "13s"];

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `herald ARGS` with `env`, and none of the settings' variables the tests assert on
/// inherited from the caller (tools/test.sh sets HERALD_IO, for one).
fn herald(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(daemon::herald_binary());
    command.args(args).env("RUST_LOG", "warn");
    for var in [
        "HERALD_CONFIG",
        "HERALD_MAX_DELIVERIES",
        "HERALD_ACK_DEADLINE",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("run herald")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_running_daemon_takes_the_flag_over_the_environment_over_the_file_over_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "herald.toml", FILE);
    let data = dir.path().join("data");
    let mut extra = vec!["--config", file.to_str().unwrap()];
    extra.extend(FLAG);
    let d = daemon::Daemon::start_with(&data, &extra, |c| {
        c.envs(ENV);
    });
    let status = d.status();
    let redelivery = &status["redelivery_defaults"];
    assert_eq!(status["connections"]["limit"], 7, "file over default");
    assert_eq!(redelivery["backoff_ms"], 2000, "file over default");
    assert_eq!(redelivery["max_deliveries"], 4, "environment over file");
    assert_eq!(
        redelivery["ack_deadline_ms"], 13000,
        "flag over environment"
    );
    assert_eq!(
        redelivery["backoff_max_ms"], 60000,
        "the default, set nowhere"
    );
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn config_check_says_where_every_value_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "herald.toml", FILE);
    let path = file.to_str().unwrap();
    let mut args = vec!["config", "check", "--config", path];
    args.extend(FLAG);
    let out = herald(&args, &ENV);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_owned()
    };
    assert!(
        text.contains(&format!("# configuration file: {path}")),
        "{text}"
    );
    assert!(
        line("connections_max").ends_with(&format!("# {path}:2")),
        "{text}"
    );
    assert!(
        line("connections_max").starts_with("connections_max = 7 "),
        "{text}"
    );
    assert!(
        line("redelivery_backoff").ends_with(&format!("# {path}:5")),
        "{text}"
    );
    assert!(
        line("max_deliveries").ends_with("# env HERALD_MAX_DELIVERIES"),
        "{text}"
    );
    assert!(
        line("ack_deadline").starts_with("ack_deadline = \"13s\""),
        "{text}"
    );
    assert!(line("ack_deadline").ends_with("# flag"), "{text}");
    assert!(
        line("redelivery_backoff_max").ends_with("# default"),
        "{text}"
    );

    args.push("--json");
    let out = herald(&args, &ENV);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let setting = |key: &str| {
        doc["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {doc}"))
            .clone()
    };
    assert_eq!(doc["file"], path);
    let connections = setting("connections_max");
    assert_eq!(connections["value"], "7");
    assert_eq!(connections["source"], "file");
    assert_eq!(connections["file"], path);
    assert_eq!(connections["line"], 2);
    assert_eq!(setting("max_deliveries")["source"], "env");
    assert_eq!(setting("max_deliveries")["value"], "4");
    assert_eq!(setting("ack_deadline")["source"], "flag");
    assert_eq!(setting("ack_deadline")["value"], "13s");
    assert_eq!(setting("region")["source"], "unset");
    assert_eq!(setting("region")["value"], serde_json::Value::Null);
}

#[test]
fn the_output_of_config_check_is_itself_a_configuration_that_checks_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "herald.toml", FILE);
    let out = herald(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let again = write(dir.path(), "again.toml", &stdout(&out));
    let out2 = herald(
        &[
            "config",
            "check",
            "--config",
            again.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out2.status.code(), Some(0), "{}", stderr(&out2));
    let doc: serde_json::Value = serde_json::from_slice(&out2.stdout).unwrap();
    let connections = doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "connections_max")
        .unwrap()
        .clone();
    assert_eq!(connections["value"], "7");
    assert_eq!(connections["source"], "file");
}

#[test]
fn an_unknown_key_is_refused_naming_the_key_the_file_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "herald.toml",
        "# comment\nconnections_max = 7\nconections_max = 8\n",
    );
    let path = file.to_str().unwrap();
    let data = dir.path().join("data");
    for args in [
        vec![
            "serve",
            "--config",
            path,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        vec!["config", "check", "--config", path],
    ] {
        let out = herald(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{path}:3: unknown key \"conections_max\"")),
            "{args:?}: {err}"
        );
        assert!(err.contains("did you mean \"connections_max\""), "{err}");
    }
    assert!(
        !data.exists(),
        "the daemon stopped before touching its data directory"
    );
}

#[test]
fn a_bad_value_is_refused_naming_the_key_the_file_the_line_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "herald.toml",
        "connections_max = 7\n\nhello_timeout = \"soon\"\nwhen_full = \"sometimes\"\nmax_deliveries = 0\nsocket_mode = 999\n",
    );
    let path = file.to_str().unwrap();
    let data = dir.path().join("data");
    let out = herald(
        &[
            "serve",
            "--config",
            path,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    // Every problem of the file, in its order.
    let expected = [
        format!("{path}:3: hello_timeout: \"soon\""),
        format!("{path}:4: when_full: \"sometimes\" is not one of fail, wait"),
        format!("{path}:5: max_deliveries: 0 is not in 1..=65535"),
        format!("{path}:6: socket_mode: \"999\" is not an octal mode like 600"),
    ];
    let mut at = 0;
    for e in &expected {
        let found = err[at..]
            .find(e.as_str())
            .unwrap_or_else(|| panic!("no {e:?} in order in:\n{err}"));
        at += found + e.len();
    }
    assert!(
        !data.exists(),
        "the daemon stopped before touching its data directory"
    );
}

#[test]
fn a_file_that_is_not_toml_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "herald.toml",
        "connections_max = 7\nack_deadline = 30s\n",
    );
    let path = file.to_str().unwrap();
    let out = herald(&["config", "check", "--config", path], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{path}:2: not valid TOML")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_environment_value_is_refused_naming_the_variable() {
    let out = herald(&["config", "check"], &[("HERALD_MAX_DELIVERIES", "none")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("environment variable HERALD_MAX_DELIVERIES: \"none\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_configuration_file_named_on_the_command_line_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.toml");
    let out = herald(
        &["config", "check", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the configuration file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_setting_has_a_flag_a_file_key_and_an_environment_variable_of_one_name() {
    let out = herald(&["config", "check", "--config", "/dev/null", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings = doc["settings"].as_array().unwrap();
    assert!(settings.len() >= 20, "{doc}");
    for s in settings {
        let key = s["key"].as_str().unwrap();
        assert_eq!(s["flag"], format!("--{}", key.replace('_', "-")));
        // The log filter keeps the variable every tracing program reads.
        let env = if key == "log_level" {
            "RUST_LOG".to_owned()
        } else {
            format!("HERALD_{}", key.to_uppercase())
        };
        assert_eq!(s["env"], env);
    }
}

#[test]
fn the_example_configuration_is_generated_lists_every_setting_and_checks_clean() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/herald.toml");
    let generated = herald(&["config", "example"], &[]);
    assert_eq!(generated.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&example).unwrap(),
        stdout(&generated),
        "dist/herald.toml is `herald config example > dist/herald.toml`; regenerate it"
    );
    let out = herald(
        &[
            "config",
            "check",
            "--json",
            "--config",
            example.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = std::fs::read_to_string(&example).unwrap();
    for s in doc["settings"].as_array().unwrap() {
        let key = s["key"].as_str().unwrap();
        let listed = text
            .lines()
            .any(|l| l.starts_with(&format!("# {key} = ")) || l.starts_with(&format!("{key} = ")));
        assert!(listed, "{key} is not in dist/herald.toml");
        if key == "data_dir" {
            assert_eq!(s["value"], "/var/lib/herald", "the packaged data directory");
            assert_eq!(s["source"], "file");
        } else {
            assert!(
                s["source"] == "default" || s["source"] == "unset" || s["source"] == "env",
                "{s}"
            );
        }
    }
}
