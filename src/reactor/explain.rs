//! Why a host refused io_uring, in words an operator can act on.

use std::fmt;

/// io_uring could not be set up: the errno, what the sysctl said, and the explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UringRefusal {
    /// The errno of `io_uring_setup`, if it set one.
    pub errno: Option<i32>,
    /// `kernel.io_uring_disabled`, if readable.
    pub sysctl: Option<u32>,
    /// The cause in one phrase, for logs and `herald status`: `sysctl
    /// kernel.io_uring_disabled=2`, `seccomp`, `ENOSYS`, …
    pub cause: &'static str,
    /// What happened and what to do.
    pub explanation: String,
}

impl fmt::Display for UringRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explanation)
    }
}

/// Explains why `io_uring_setup` failed with `errno`, given the value of
/// `kernel.io_uring_disabled` (if readable).
pub fn explain_uring_refusal(errno: Option<i32>, sysctl: Option<u32>) -> UringRefusal {
    let (cause, explanation): (&'static str, String) = match (errno, sysctl) {
        (Some(libc::EPERM), Some(2)) => (
            "sysctl kernel.io_uring_disabled=2",
            "io_uring is disabled on this host (sysctl kernel.io_uring_disabled=2). \
             Enable it with `sysctl -w kernel.io_uring_disabled=0`, or run with `--io epoll`."
                .into(),
        ),
        (Some(libc::EPERM), Some(1)) => (
            "sysctl kernel.io_uring_disabled=1",
            "io_uring is restricted on this host (sysctl kernel.io_uring_disabled=1): only members of \
             the group in kernel.io_uring_group may use it. Add herald's user to that group, set \
             kernel.io_uring_disabled=0, or run with `--io epoll`."
                .into(),
        ),
        (Some(libc::EPERM), _) => (
            "seccomp",
            "io_uring_setup was refused (EPERM) although the sysctl allows it: a seccomp filter blocks \
             io_uring (Docker's default profile and Kubernetes' RuntimeDefault do). Allow \
             io_uring_setup, io_uring_enter and io_uring_register in the profile (Docker: \
             --security-opt seccomp=<profile>), or run with `--io epoll`."
                .into(),
        ),
        (Some(libc::ENOSYS), _) => (
            "ENOSYS",
            "this kernel has no io_uring (Linux 5.6 or later with CONFIG_IO_URING is needed); \
             run with `--io epoll`."
                .into(),
        ),
        (Some(libc::ENOMEM), _) => (
            "ENOMEM",
            "io_uring_setup failed with ENOMEM: the locked-memory limit is too low for the ring; \
             raise it (`ulimit -l`, or LimitMEMLOCK= in the systemd unit), use a smaller \
             --ring-entries, or run with `--io epoll`."
                .into(),
        ),
        (errno, _) => (
            "setup failed",
            format!(
                "io_uring_setup failed ({}); run with `--io epoll`.",
                errno.map_or("unknown error".into(), |e| std::io::Error::from_raw_os_error(e)
                    .to_string())
            ),
        ),
    };
    UringRefusal {
        errno,
        sysctl,
        cause,
        explanation,
    }
}

/// Reads `kernel.io_uring_disabled` (absent on kernels before 6.6).
pub(super) fn io_uring_sysctl() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_cause_and_the_fix() {
        let sysctl = explain_uring_refusal(Some(libc::EPERM), Some(2));
        assert_eq!(sysctl.cause, "sysctl kernel.io_uring_disabled=2");
        assert!(sysctl.explanation.contains("sysctl -w"), "{sysctl}");
        let group = explain_uring_refusal(Some(libc::EPERM), Some(1));
        assert!(group.explanation.contains("io_uring_group"), "{group}");
        let seccomp = explain_uring_refusal(Some(libc::EPERM), Some(0));
        assert_eq!(seccomp.cause, "seccomp");
        assert!(seccomp.explanation.contains("Docker"), "{seccomp}");
        assert!(explain_uring_refusal(Some(libc::ENOSYS), None)
            .explanation
            .contains("5.6"));
        assert!(explain_uring_refusal(Some(libc::ENOMEM), None)
            .explanation
            .contains("ulimit -l"));
        // Every explanation names the fallback.
        for errno in [libc::EPERM, libc::ENOSYS, libc::ENOMEM, libc::EINVAL] {
            for sysctl in [None, Some(0), Some(1), Some(2)] {
                let r = explain_uring_refusal(Some(errno), sysctl);
                assert!(r.explanation.contains("--io epoll"), "{r}");
            }
        }
    }
}
