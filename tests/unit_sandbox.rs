//! herald under the system call filter of dist/herald.service, built the way systemd
//! builds it: `SystemCallFilter=` (its groups expanded by `systemd-analyze
//! syscall-filter`, the names numbered from the kernel's unistd header),
//! `SystemCallErrorNumber=`, and what `MemoryDenyWriteExecute=` and
//! `RestrictAddressFamilies=` refuse, installed in the child between fork and exec with
//! no_new_privs (`NoNewPrivileges=`), after the unit's `UMask=` and `LimitNOFILE=`.
//! Under it the daemon serves on io_uring (unless the host itself refuses io_uring),
//! delivers, confirms, notifies systemd, serves Prometheus metrics over TCP, replays
//! after kill -9, syncs to disk on epoll's sync thread and stops cleanly at SIGTERM.
//!
//! systemd itself cannot run here (CI's machine has no systemd as PID 1); the rest of
//! the unit's sandbox (its user, ProtectSystem=strict, PrivateTmp=, ProtectHome=) is
//! built around the installed package's daemon by tools/package-check.sh.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{publish_each, Daemon};
use herald::client::Client;
use herald::protocol::{Role, Severity};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const UNIT: &str = include_str!("../dist/herald.service");
const WAIT: Option<Duration> = Some(Duration::from_secs(20));

/// The `[Service]` settings of the unit, in order (a key may repeat).
fn service_settings() -> Vec<(&'static str, &'static str)> {
    let mut in_service = false;
    let mut settings = Vec::new();
    for line in UNIT.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').expect("key=value");
            settings.push((key, value));
        }
    }
    settings
}

fn setting(key: &str) -> &'static str {
    let values: Vec<_> = service_settings()
        .into_iter()
        .filter(|(k, _)| *k == key)
        .collect();
    values.last().unwrap_or_else(|| panic!("no {key}=")).1
}

/// What the filter is built from, or why it cannot be built on this machine.
struct Tables {
    /// systemd's groups: `@system-service` → its members (names and `@groups`).
    groups: HashMap<String, Vec<String>>,
    /// This architecture's system call numbers by name.
    numbers: HashMap<String, i64>,
}

fn tables() -> Result<Tables, String> {
    let out = Command::new("systemd-analyze")
        .args(["syscall-filter", "--no-pager"])
        .output()
        .map_err(|e| format!("systemd-analyze: {e}"))?;
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    let mut current = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with('@') {
            current = Some(line.trim().to_string());
            groups.entry(line.trim().to_string()).or_default();
        } else if line.starts_with('#') {
            // "# Ungrouped System Calls ...": no group.
            current = None;
        } else if let (Some(group), name) = (&current, line.trim()) {
            if !name.is_empty() && !name.starts_with('#') {
                groups.get_mut(group).unwrap().push(name.to_string());
            }
        }
    }
    if !groups.contains_key("@system-service") {
        return Err(format!(
            "systemd-analyze syscall-filter printed no groups: {out:?}"
        ));
    }
    let header = if cfg!(target_arch = "x86_64") {
        "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    } else {
        "/usr/include/asm-generic/unistd.h"
    };
    let text = std::fs::read_to_string(header).map_err(|e| format!("{header}: {e}"))?;
    let numbers = text
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("#define __NR_")?.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.parse().ok()?))
        })
        .collect();
    Ok(Tables { groups, numbers })
}

/// The tables, or None (printed as SKIPPED) on a machine without systemd's tools or the
/// kernel headers; in CI, whose machine has both, their absence is a failure.
fn tables_or_skip(test: &str) -> Option<Tables> {
    match tables() {
        Ok(t) => Some(t),
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED {test}: cannot build the unit's filter here: {why}");
            None
        }
        Err(why) => panic!("cannot build the unit's filter in CI: {why}"),
    }
}

fn expand(item: &str, tables: &Tables, into: &mut BTreeSet<String>) {
    match tables.groups.get(item) {
        Some(members) => members.iter().for_each(|m| expand(m, tables, into)),
        None if item.starts_with('@') => panic!("systemd knows no group {item}"),
        None => {
            into.insert(item.to_string());
        }
    }
}

/// The system calls the unit allows: its first SystemCallFilter= is an allow list,
/// later ones add to it, `~` ones take away (systemd.exec(5)).
fn allowed(tables: &Tables) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    for (i, (_, value)) in service_settings()
        .into_iter()
        .filter(|(k, _)| *k == "SystemCallFilter")
        .enumerate()
    {
        let (deny, list) = match value.strip_prefix('~') {
            Some(list) => (true, list),
            None => (false, value),
        };
        assert!(i > 0 || !deny, "the test builds allow lists only");
        let mut names = BTreeSet::new();
        list.split_whitespace()
            .for_each(|item| expand(item, tables, &mut names));
        if deny {
            allowed.retain(|n| !names.contains(n));
        } else {
            allowed.extend(names);
        }
    }
    allowed
}

fn arch() -> TargetArch {
    if cfg!(target_arch = "x86_64") {
        TargetArch::x86_64
    } else {
        TargetArch::aarch64
    }
}

fn masked(arg: u8, mask: u64, value: u64) -> SeccompCondition {
    SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(mask),
        value,
    )
    .unwrap()
}

/// The unit's filters, in the order they are installed (the allow list last: it
/// refuses the seccomp call that would install another).
fn unit_filters(tables: &Tables) -> Vec<BpfProgram> {
    assert_eq!(setting("SystemCallErrorNumber"), "EPERM");
    assert_eq!(setting("MemoryDenyWriteExecute"), "yes");
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let filter = |rules: BTreeMap<i64, Vec<SeccompRule>>, mismatch, matched| {
        BpfProgram::try_from(SeccompFilter::new(rules, mismatch, matched, arch()).unwrap()).unwrap()
    };
    // MemoryDenyWriteExecute=: no mapping both writable and executable, no mapping made
    // executable later.
    let wx = (libc::PROT_WRITE | libc::PROT_EXEC) as u64;
    let x = libc::PROT_EXEC as u64;
    let rule = |c: SeccompCondition| vec![SeccompRule::new(vec![c]).unwrap()];
    let mdwe = BTreeMap::from([
        (libc::SYS_mmap, rule(masked(2, wx, wx))),
        (libc::SYS_mprotect, rule(masked(2, x, x))),
        (libc::SYS_pkey_mprotect, rule(masked(2, x, x))),
        (
            libc::SYS_shmat,
            rule(masked(2, libc::SHM_EXEC as u64, libc::SHM_EXEC as u64)),
        ),
    ]);
    // RestrictAddressFamilies=: socket() of any other family fails with EAFNOSUPPORT.
    let families: Vec<SeccompCondition> = setting("RestrictAddressFamilies")
        .split_whitespace()
        .map(|f| match f {
            "AF_UNIX" => libc::AF_UNIX,
            "AF_INET" => libc::AF_INET,
            "AF_INET6" => libc::AF_INET6,
            other => panic!("the test does not know {other}"),
        })
        .map(|f| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, f as u64).unwrap()
        })
        .collect();
    let sockets = BTreeMap::from([(libc::SYS_socket, vec![SeccompRule::new(families).unwrap()])]);
    let allow_list = tables
        .numbers
        .iter()
        .filter(|(name, _)| allowed(tables).contains(*name))
        .map(|(_, nr)| (*nr, vec![]))
        .collect::<BTreeMap<_, _>>();
    vec![
        filter(mdwe, SeccompAction::Allow, eperm.clone()),
        filter(
            sockets,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
        ),
        filter(allow_list, eperm, SeccompAction::Allow),
    ]
}

/// Runs the command as the unit would: its UMask= and LimitNOFILE=, then the filters.
fn as_the_unit(filters: &[BpfProgram]) -> impl FnOnce(&mut Command) {
    let filters = filters.to_vec();
    let umask = libc::mode_t::from_str_radix(setting("UMask"), 8).unwrap();
    let nofile: libc::rlim_t = setting("LimitNOFILE").parse().unwrap();
    move |command| {
        // SAFETY: the closure runs in the forked child before exec; it makes only the
        // umask, getrlimit, setrlimit, prctl and seccomp system calls (the programs were compiled
        // before the fork, so nothing allocates).
        unsafe {
            command.pre_exec(move || {
                libc::umask(umask);
                // systemd (PID 1, every capability) raises the limit; a root without
                // CAP_SYS_RESOURCE (CI's machine) may go only up to its hard limit.
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                limit.rlim_cur = nofile.min(limit.rlim_max);
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for f in &filters {
                    seccompiler::apply_filter(f)
                        .map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))?;
                }
                Ok(())
            });
        }
        // The daemon chooses its backend, as the unit's does, not a test run's HERALD_IO.
        command.env_remove("HERALD_IO");
    }
}

/// systemd's end of the notification socket: notifications until `until` holds.
fn notifications_until(socket: &UnixDatagram, what: &str, until: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let n = String::from_utf8_lossy(&buf[..n]).into_owned();
            if until(&n) {
                return;
            }
            seen.push(n);
        }
    }
    panic!("no {what} among {seen:?}");
}

#[test]
fn the_units_filter_refuses_what_it_leaves_out_with_eperm() {
    let Some(tables) = tables_or_skip("the_units_filter_refuses_what_it_leaves_out_with_eperm")
    else {
        return;
    };
    let names = allowed(&tables);
    for call in [
        "io_uring_setup",
        "io_uring_enter",
        "fdatasync",
        "sendmsg",
        "mmap",
    ] {
        assert!(names.contains(call), "{call} is allowed");
    }
    for call in ["fchownat", "setrlimit", "setpriority", "reboot", "seccomp"] {
        assert!(!names.contains(call), "{call} is refused");
    }
    // The filter does what it says to a real program: as root, chown works without it
    // and fails with EPERM under it (fchownat is in @privileged, which the unit takes
    // away), while the program itself runs.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the test runs as root");
    let file = tempfile::NamedTempFile::new().unwrap();
    let chown = || {
        let mut c = Command::new("chown");
        c.arg("0").arg(file.path());
        c
    };
    assert!(chown().status().unwrap().success());
    let mut refused = chown();
    as_the_unit(&unit_filters(&tables))(&mut refused);
    let out = refused.output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
}

#[test]
fn under_the_units_filter_herald_serves_notifies_replays_after_kill_9_and_stops_cleanly() {
    let Some(tables) = tables_or_skip("under_the_units_filter_herald_serves") else {
        return;
    };
    let filters = unit_filters(&tables);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let notify_path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify_path).unwrap();
    let start = || {
        let notify = notify_path.clone();
        let unit = as_the_unit(&filters);
        let args = ["--region-size", "4M", "--metrics-listen", "127.0.0.1:0"];
        Daemon::start_with(&data, &args, move |c| {
            unit(c);
            c.env("NOTIFY_SOCKET", &notify)
                .env("WATCHDOG_USEC", "200000")
                .env_remove("WATCHDOG_PID");
        })
    };
    let host_allows_io_uring = io_uring::IoUring::new(2).is_ok();
    let d = start();
    notifications_until(&systemd, "READY=1", |n| n.starts_with("READY=1"));
    notifications_until(&systemd, "WATCHDOG=1", |n| n == "WATCHDOG=1");
    let status = d.status();
    if host_allows_io_uring {
        assert!(d.ready_line.contains("io io-uring"), "{}", d.ready_line);
    } else {
        eprintln!("this host refuses io_uring: the daemon runs on epoll here");
        let refused = status["io"]["io_uring_refused"].as_str().unwrap_or("");
        assert!(
            !refused.contains("seccomp"),
            "the filter refused io_uring: {refused}"
        );
    }
    let mode = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(data.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        mode("region.pmem") & 0o007,
        0,
        "UMask=0027: not open to others"
    );
    assert_eq!(mode("herald.sock"), 0o600);
    // The exporter's thread accepts and answers on TCP (AF_INET) under the filter.
    let address = status["metrics"]["listen"].as_str().expect("metrics bound");
    let mut http = TcpStream::connect(address).unwrap();
    http.set_read_timeout(WAIT).unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: herald\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("herald_stored_events_total"), "{answer}");

    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 16, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "fsd").unwrap();
    let payloads: Vec<String> = (0..5).map(|i| format!("event {i}")).collect();
    let seqs = publish_each(&mut p, "fs.disk", Severity::Error, &payloads);
    for (i, seq) in seqs.iter().enumerate() {
        let dl = sub.next_delivery(WAIT).unwrap().expect("a delivery");
        assert_eq!(dl.seq, *seq);
        let seq = dl.seq;
        if i < 2 {
            sub.confirm(seq, seq).unwrap();
        }
    }
    sub.flush().unwrap();
    d.wait_for_status("two confirmed", |s| {
        daemon::sub_row(s, "ops")["cursor"].as_u64() == Some(seqs[2].0)
    });
    d.kill();

    let d = start();
    notifications_until(&systemd, "READY=1 after the crash", |n| {
        n.starts_with("READY=1")
    });
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 16, false)
        .unwrap();
    for seq in &seqs[2..] {
        let dl = sub.next_delivery(WAIT).unwrap().expect("a redelivery");
        assert_eq!(dl.seq, *seq, "in order");
        assert!(dl.redelivered, "flagged redelivered");
        let seq = dl.seq;
        sub.confirm(seq, seq).unwrap();
    }
    sub.flush().unwrap();
    d.wait_for_status("all confirmed", |s| {
        daemon::sub_row(s, "ops")["cursor"].as_u64() == Some(seqs[4].0 + 1)
    });
    let pid = d.child.id() as i32;
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    notifications_until(&systemd, "STOPPING=1", |n| n.starts_with("STOPPING=1"));
    assert_eq!(d.stop().code(), Some(0), "a clean stop");
}

#[test]
fn under_the_units_filter_herald_syncs_to_disk_on_epoll_and_stops_cleanly() {
    let Some(tables) = tables_or_skip("under_the_units_filter_herald_syncs_to_disk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = ["--region-size", "4M", "--io", "epoll", "--sync", "disk"];
    let d = Daemon::start_with(dir.path(), &args, as_the_unit(&unit_filters(&tables)));
    assert!(d.ready_line.contains("io epoll"), "{}", d.ready_line);
    let mut sub = Client::connect(&d.socket(), Role::Subscriber, "ops").unwrap();
    sub.subscribe("ops", &[">"], Severity::Debug, 16, false)
        .unwrap();
    let mut p = Client::connect(&d.socket(), Role::Producer, "fsd").unwrap();
    let seqs = publish_each(&mut p, "fs.disk", Severity::Error, ["a", "b", "c"]);
    for seq in &seqs {
        let dl = sub.next_delivery(WAIT).unwrap().expect("a delivery");
        assert_eq!(dl.seq, *seq);
        let seq = dl.seq;
        sub.confirm(seq, seq).unwrap();
    }
    sub.flush().unwrap();
    let s = d.wait_for_status("all confirmed", |s| {
        daemon::sub_row(s, "ops")["cursor"].as_u64() == Some(seqs[2].0 + 1)
    });
    assert!(s["commit"]["syncs"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(d.stop().code(), Some(0), "a clean stop");
    assert!(Path::new(dir.path()).join("region.pmem").exists());
}
