//! The access policy through the real daemon, with a second user: the daemon runs as
//! root (as the tests do), and clients run as `nobody` under `setpriv`: the `herald`
//! subcommands, and this binary itself as a tiny client that holds one connection
//! through refusals and what it may still do.
//!
//! This binary is its own client: with `HERALD_ACCESS_CLIENT=<socket>` set it runs the
//! client's script and prints one line per answer instead of the tests. It has its own
//! `main` (no test harness) for that. It skips, saying so, when not run as root or
//! when `nobody` cannot run the binaries (a checkout in a private home directory).

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{herald_binary, Daemon};
use herald::client::{Client, ClientError};
use herald::protocol::{ErrorCode, Event, Role, Severity, Topic};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// How long one command as `nobody` may take: a failure detector for a hung client,
/// never a success criterion.
const COMMAND_DEADLINE_S: &str = "30";

/// The configuration of the tests with a policy: nobody may publish to `fs.>`, and
/// subscribe within `fs.*.error` as `alerts-*`; the socket's group is nobody's.
const POLICY: &str = r#"
socket_mode = 660
socket_group = "nogroup"

[[access]]
user = "nobody"
publish = ["fs.>"]
subscribe = ["fs.*.error"]
subscriptions = ["alerts-*"]
"#;

fn main() {
    if let Ok(socket) = std::env::var("HERALD_ACCESS_CLIENT") {
        client_script(Path::new(&socket));
        return;
    }
    if let Some(why) = cannot_run() {
        println!("SKIPPED: {why}");
        println!("test result: ok. 0 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out");
        return;
    }
    let tests: [(&str, fn()); 2] = [
        (
            "another_user_gets_what_its_rules_allow_and_forbidden_for_the_rest",
            another_user_gets_what_its_rules_allow_and_forbidden_for_the_rest,
        ),
        (
            "without_a_policy_other_users_cannot_connect_and_the_log_says_so",
            without_a_policy_other_users_cannot_connect_and_the_log_says_so,
        ),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    let passed = tests.len() - failed;
    if failed > 0 {
        println!("test result: FAILED. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out");
        std::process::exit(1);
    }
    println!("test result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

/// Why these tests cannot run here, if they cannot.
fn cannot_run() -> Option<String> {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the access tests switch to the user nobody, which needs root".into());
    }
    let probe = as_nobody(&herald_binary(), &["--version"]);
    if !probe.status.success() {
        return Some(format!(
            "nobody cannot run {} (is the checkout in a directory others cannot enter?): {}",
            herald_binary().display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    None
}

/// Runs `program args` as nobody:nogroup with no supplementary groups.
fn as_nobody(program: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(COMMAND_DEADLINE_S)
        .args([
            "setpriv",
            "--reuid",
            "nobody",
            "--regid",
            "nogroup",
            "--clear-groups",
            "--",
        ])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run setpriv")
}

/// `herald ARGS --data-dir DIR` as nobody.
fn herald_as_nobody(dir: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--data-dir", dir.to_str().expect("a UTF-8 path")]);
    as_nobody(&herald_binary(), &all)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A data directory nobody may enter (the socket inside decides the rest).
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Starts the daemon with `extra` and its log (info and above) captured; returns the
/// daemon and the thread that collects the log until the daemon exits.
fn start(dir: &Path, extra: &[&str]) -> (Daemon, std::thread::JoinHandle<String>) {
    let mut daemon = Daemon::start_with(dir, extra, |c| {
        c.env("RUST_LOG", "info").stderr(Stdio::piped());
    });
    let mut stderr = daemon.child.stderr.take().expect("piped stderr");
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    (daemon, log)
}

fn another_user_gets_what_its_rules_allow_and_forbidden_for_the_rest() {
    let dir = data_dir();
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, POLICY).unwrap();
    let (daemon, log) = start(dir.path(), &["--config", config.to_str().unwrap()]);

    // The herald subcommands as nobody: an allowed topic is stored, another is not.
    let stored = herald_as_nobody(
        dir.path(),
        &["publish", "--topic", "fs.vol2.error", "disk full"],
    );
    assert!(stored.status.success(), "{}", text(&stored.stderr));
    assert!(
        text(&stored.stdout).starts_with("stored "),
        "{}",
        text(&stored.stdout)
    );
    let refused = herald_as_nobody(dir.path(), &["publish", "--topic", "net.link.down", "x"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("forbidden"),
        "{}",
        text(&refused.stderr)
    );
    // Status needs admin, which nobody lacks.
    let status = herald_as_nobody(dir.path(), &["status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(
        text(&status.stderr).contains("forbidden"),
        "{}",
        text(&status.stderr)
    );
    // A subscription wider than its grant is refused.
    let wide = herald_as_nobody(
        dir.path(),
        &["subscribe", "--filter", "fs.>", "--count", "1"],
    );
    assert_eq!(wide.status.code(), Some(1));
    assert!(
        text(&wide.stderr).contains("forbidden"),
        "{}",
        text(&wide.stderr)
    );

    // One connection held through refusals (this binary, as nobody).
    let script = Command::new("timeout")
        .arg(COMMAND_DEADLINE_S)
        .args([
            "setpriv",
            "--reuid",
            "nobody",
            "--regid",
            "nogroup",
            "--clear-groups",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .env("HERALD_ACCESS_CLIENT", daemon.socket())
        .output()
        .expect("run the client as nobody");
    let lines = text(&script.stdout);
    assert!(script.status.success(), "{lines}{}", text(&script.stderr));
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(
        lines,
        [
            "hello control: forbidden",
            "publish net.link.down: forbidden, correlation 1",
            "publish fs.vol1.error: stored",
            "batch fs.a net.b: forbidden, correlation 3",
            "subscribe fs.>: forbidden",
            "subscribe billing: forbidden",
            "subscribe alerts-disk fs.*.error: subscribed",
            "ping: pong",
        ]
    );

    // The durable subscription it made gets, as nobody through `herald subscribe`, the
    // event published since (by root, who keeps every right).
    let root = daemon::herald(&[
        "publish",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--topic",
        "fs.vol3.error",
        "from root",
    ]);
    assert!(root.status.success(), "{}", text(&root.stderr));
    let delivered = herald_as_nobody(
        dir.path(),
        &[
            "subscribe",
            "--name",
            "alerts-disk",
            "--filter",
            "fs.*.error",
            "--count",
            "1",
            "--json",
        ],
    );
    assert!(delivered.status.success(), "{}", text(&delivered.stderr));
    assert!(
        text(&delivered.stdout).contains("from root"),
        "{}",
        text(&delivered.stdout)
    );
    // Root is unrestricted.
    assert!(daemon.status()["ring"].is_object());

    assert!(daemon.stop().success());
    let log = log.join().unwrap();
    assert!(log.contains("access policy in force"), "{log}");
    let refusal = log
        .lines()
        .find(|l| l.contains("refused by the access policy") && l.contains("net.link.down"))
        .unwrap_or_else(|| panic!("no refusal of net.link.down in the log:\n{log}"));
    assert!(refusal.contains("uid 65534"), "{refusal}");
}

fn without_a_policy_other_users_cannot_connect_and_the_log_says_so() {
    let dir = data_dir();
    let (daemon, log) = start(dir.path(), &[]);
    let status = herald_as_nobody(dir.path(), &["status"]);
    assert_eq!(status.status.code(), Some(1));
    let stderr = text(&status.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(
        stderr.contains("socket_mode"),
        "the error points to the fix: {stderr}"
    );
    // The owner is served as before.
    assert!(daemon.status()["ring"].is_object());
    assert!(daemon.stop().success());
    let log = log.join().unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("no access policy"))
        .unwrap_or_else(|| panic!("the log does not say there is no policy:\n{log}"));
    assert!(line.contains("0600"), "{line}");
}

/// The client's script, run as nobody: one line per answer.
fn client_script(socket: &Path) {
    match Client::connect(socket, Role::Control, "nobody-control") {
        Err(e) if forbidden(&e) => println!("hello control: forbidden"),
        other => println!("hello control: {other:?}"),
    }
    let mut c = Client::connect(socket, Role::Both, "nobody").expect("connect as both");
    let event = |topic: &'static str| Event {
        topic: Topic::new(topic.as_bytes()).unwrap(),
        severity: Severity::Error,
        source: "",
        flags: 0,
        key: b"",
        payload: b"x",
    };
    match c.publish(&event("net.link.down")) {
        Err(ClientError::Refused {
            code: ErrorCode::Forbidden,
            correlation,
            ..
        }) => println!("publish net.link.down: forbidden, correlation {correlation}"),
        other => println!("publish net.link.down: {other:?}"),
    }
    match c.publish(&event("fs.vol1.error")) {
        Ok(_) => println!("publish fs.vol1.error: stored"),
        other => println!("publish fs.vol1.error: {other:?}"),
    }
    match c.publish_batch(&[event("fs.a"), event("net.b")]) {
        Err(ClientError::Refused {
            code: ErrorCode::Forbidden,
            correlation,
            ..
        }) => println!("batch fs.a net.b: forbidden, correlation {correlation}"),
        other => println!("batch fs.a net.b: {other:?}"),
    }
    for (name, pattern, shown) in [
        ("", "fs.>", "fs.>"),
        ("billing", "fs.*.error", "billing"),
        ("alerts-disk", "fs.*.error", "alerts-disk fs.*.error"),
    ] {
        match c.subscribe(name, &[pattern], Severity::Debug, 8, true) {
            Ok(_) => println!("subscribe {shown}: subscribed"),
            Err(e) if forbidden(&e) => println!("subscribe {shown}: forbidden"),
            Err(e) => println!("subscribe {shown}: {e}"),
        }
    }
    match c.ping() {
        Ok(_) => println!("ping: pong"),
        Err(e) => println!("ping: {e}"),
    }
}

fn forbidden(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Refused {
            code: ErrorCode::Forbidden,
            ..
        }
    )
}
