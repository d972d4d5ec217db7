//! What `herald serve` writes on stderr off a terminal: logfmt lines without a
//! timestamp (`--log-format text`), JSON objects (`--log-format json`), the journal's
//! priority prefixes when stderr is the journal, and the level from `log_level`,
//! `RUST_LOG` or `--log-level`.

#[path = "support/daemon.rs"]
mod daemon;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

/// Starts the daemon with `args` and `env`, stops it with SIGTERM once it is ready, and
/// returns what it wrote on stderr (a pipe).
fn log_of(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = serve(data, args, env);
    command.stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    wait_ready(&mut child);
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{log}");
    log
}

fn serve(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(daemon::herald_binary());
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("HERALD_LOG_FORMAT")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().copied())
        .stdout(Stdio::piped());
    command
}

fn wait_ready(child: &mut std::process::Child) {
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("ready:"), "{ready}");
}

/// A logfmt line's pairs (values unquoted and unescaped), or None if it is not one.
fn logfmt(line: &str) -> Option<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    let mut rest = line;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        if key.is_empty() || key.contains([' ', '"']) {
            return None;
        }
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i + 1,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            (value, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        pairs.insert(key.to_owned(), value);
        rest = after.strip_prefix(' ').unwrap_or(after);
    }
    Some(pairs)
}

#[test]
fn off_a_terminal_every_line_is_key_value_text_without_a_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), &[], &[]);
    let lines: Vec<BTreeMap<String, String>> = log
        .lines()
        .map(|l| logfmt(l).unwrap_or_else(|| panic!("not key=value: {l:?}\n{log}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for (line, pairs) in log.lines().zip(&lines) {
        // journald and collectors stamp lines themselves.
        assert!(line.starts_with("level="), "{line}");
        assert!(
            !pairs.contains_key("timestamp") && !pairs.contains_key("time"),
            "{line}"
        );
        assert!(
            pairs.contains_key("target") && pairs.contains_key("msg"),
            "{line}"
        );
        assert!(!line.contains('\u{1b}'), "colour codes in a pipe: {line:?}");
    }
    let created = lines
        .iter()
        .find(|p| p["msg"] == "region created")
        .unwrap_or_else(|| panic!("no region created line in:\n{log}"));
    assert_eq!(created["level"], "info");
    assert_eq!(
        created["region"],
        dir.path().join("region.pmem").display().to_string()
    );
    // A value with spaces is quoted, so the line still splits.
    assert_eq!(created["kind"], "file (emulated pmem)");
}

#[test]
fn with_log_format_json_every_line_is_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), &["--log-format", "json"], &[]);
    let objects: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(objects.len() >= 3, "{log}");
    for o in &objects {
        assert!(o.is_object(), "{o}");
        for field in ["timestamp", "level", "target", "message"] {
            assert!(o.get(field).is_some(), "no {field} in {o}");
        }
    }
    let created = objects
        .iter()
        .find(|o| o["message"] == "region created")
        .unwrap_or_else(|| panic!("no region created object in:\n{log}"));
    assert_eq!(created["level"], "INFO");
    assert_eq!(
        created["region"],
        dir.path().join("region.pmem").display().to_string()
    );
}

#[test]
fn the_log_format_is_a_setting_of_the_configuration_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, "log_format = \"json\"\n").unwrap();
    let data = dir.path().join("data");
    let log = log_of(&data, &["--config", config.to_str().unwrap()], &[]);
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{log}"
    );
}

#[test]
fn the_level_comes_from_the_file_then_rust_log_then_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, "log_level = \"warn\"\n").unwrap();
    let path = config.to_str().unwrap();
    let quiet = log_of(&dir.path().join("a"), &["--config", path], &[]);
    assert!(
        !quiet.contains("level=info"),
        "log_level = warn in the file: {quiet}"
    );
    let env = log_of(
        &dir.path().join("b"),
        &["--config", path],
        &[("RUST_LOG", "info")],
    );
    assert!(
        env.contains("msg=\"region created\""),
        "RUST_LOG=info over the file: {env}"
    );
    let flag = log_of(
        &dir.path().join("c"),
        &["--config", path, "--log-level", "warn"],
        &[("RUST_LOG", "info")],
    );
    assert!(
        !flag.contains("level=info"),
        "--log-level warn over RUST_LOG: {flag}"
    );
}

#[test]
fn on_the_journal_every_line_starts_with_its_syslog_priority() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut reader, writer) = std::io::pipe().unwrap();
    // systemd names the stream it connected to stderr by its device and inode.
    let meta = std::fs::File::from(std::os::fd::OwnedFd::from(writer.try_clone().unwrap()))
        .metadata()
        .unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    // The parent's copy of the pipe's write end goes with `command`, so that the
    // read below ends when the daemon exits.
    let mut command = serve(dir.path(), &[], &[("JOURNAL_STREAM", stream.as_str())]);
    command.stderr(writer);
    let mut child = command.spawn().unwrap();
    drop(command);
    wait_ready(&mut child);
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let mut log = String::new();
    reader.read_to_string(&mut log).unwrap();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let (priority, rest) = line.split_at(3);
        let level = logfmt(rest).unwrap_or_else(|| panic!("{line:?}"))["level"].clone();
        let expected = match level.as_str() {
            "error" => "<3>",
            "warn" => "<4>",
            "info" => "<6>",
            _ => "<7>",
        };
        assert_eq!(priority, expected, "{line}");
    }
    // Without JOURNAL_STREAM (or with one naming another stream) there is no prefix.
    let plain = log_of(&dir.path().join("b"), &[], &[("JOURNAL_STREAM", "1:2")]);
    assert!(plain.lines().all(|l| l.starts_with("level=")), "{plain}");
}
