//! The io_uring ring: creation with an actionable error where the kernel refuses it,
//! operation tags, and the spin-then-sleep wait.

use crate::event::limits::CONNECTIONS_MAX;
use io_uring::IoUring;
use std::time::{Duration, Instant};

/// Operation kinds, in the top byte of `user_data`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Multishot accept on the listener.
    Accept = 1,
    /// Receive into a connection's buffer.
    Recv = 2,
    /// Send from a connection's buffer.
    Send = 3,
    /// Read of the signalfd.
    Signal = 4,
}

/// The bits of `user_data` (above the generation) that carry the connection slot.
const SLOT_MASK: u64 = 0xff_ffff;
// Every slot the daemon may allocate has a tag of its own.
const _: () = assert!(CONNECTIONS_MAX as u64 - 1 <= SLOT_MASK);

/// Packs an operation, a connection slot and its generation into `user_data`.
pub fn tag(op: Op, slot: usize, generation: u32) -> u64 {
    ((op as u64) << 56) | ((slot as u64 & SLOT_MASK) << 32) | generation as u64
}

/// Unpacks [`tag`].
pub fn untag(user_data: u64) -> (Option<Op>, usize, u32) {
    let op = match user_data >> 56 {
        1 => Some(Op::Accept),
        2 => Some(Op::Recv),
        3 => Some(Op::Send),
        4 => Some(Op::Signal),
        _ => None,
    };
    (
        op,
        ((user_data >> 32) & SLOT_MASK) as usize,
        user_data as u32,
    )
}

/// Explains why `io_uring_setup` failed and what to do, given the errno and the
/// value of `kernel.io_uring_disabled` (if readable).
pub fn explain_setup_error(errno: Option<i32>, io_uring_disabled: Option<u32>) -> String {
    match (errno, io_uring_disabled) {
        (Some(libc::EPERM), Some(2)) => "io_uring is disabled on this host (sysctl kernel.io_uring_disabled=2). \
             Enable it with `sysctl -w kernel.io_uring_disabled=0`; herald needs io_uring for its delivery loop."
            .into(),
        (Some(libc::EPERM), Some(1)) => "io_uring is restricted on this host (sysctl kernel.io_uring_disabled=1): only members of \
             the group in kernel.io_uring_group may use it. Add herald's user to that group, or set \
             kernel.io_uring_disabled=0."
            .into(),
        (Some(libc::EPERM), _) => "io_uring_setup was refused (EPERM) although the sysctl allows it: a seccomp filter blocks \
             io_uring (Docker's default profile does). Run herald with a seccomp profile that allows \
             io_uring_setup, io_uring_enter and io_uring_register (for Docker: --security-opt seccomp=<profile>)."
            .into(),
        (Some(libc::ENOSYS), _) => "this kernel has no io_uring (Linux 5.6 or later with CONFIG_IO_URING is needed).".into(),
        (Some(libc::ENOMEM), _) => "io_uring_setup failed with ENOMEM: the locked-memory limit is too low for the ring; \
             raise it (`ulimit -l`, or LimitMEMLOCK= in the systemd unit) or use a smaller --ring-entries."
            .into(),
        (errno, _) => format!(
            "io_uring_setup failed ({}).",
            errno.map_or("unknown error".into(), |e| std::io::Error::from_raw_os_error(e).to_string())
        ),
    }
}

/// Creates the ring or says why the kernel refused it.
pub fn create(entries: u32) -> Result<IoUring, String> {
    IoUring::builder().build(entries).map_err(|e| {
        let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        explain_setup_error(e.raw_os_error(), sysctl)
    })
}

/// Submits queued entries and waits for at least one completion: first by polling the
/// completion queue for up to `spin` (cheap wake-up for a busy daemon), then by
/// sleeping in the kernel for at most `sleep_max`.
pub fn submit_and_wait(
    ring: &mut IoUring,
    spin: Duration,
    sleep_max: Duration,
) -> std::io::Result<()> {
    ring.submit()?;
    if !ring.completion().is_empty() {
        return Ok(());
    }
    if !spin.is_zero() {
        let until = Instant::now() + spin;
        while Instant::now() < until {
            if !ring.completion().is_empty() {
                return Ok(());
            }
            std::hint::spin_loop();
        }
    }
    let ts = io_uring::types::Timespec::new()
        .sec(sleep_max.as_secs())
        .nsec(sleep_max.subsec_nanos());
    let args = io_uring::types::SubmitArgs::new().timespec(&ts);
    match ring.submitter().submit_with_args(1, &args) {
        Ok(_) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::ETIME) || e.raw_os_error() == Some(libc::EINTR) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for op in [Op::Accept, Op::Recv, Op::Send, Op::Signal] {
            for slot in [0, 4097, CONNECTIONS_MAX - 1] {
                let t = tag(op, slot, 0xdead_beef);
                assert_eq!(untag(t), (Some(op), slot, 0xdead_beef));
            }
        }
        assert_eq!(untag(0).0, None);
    }

    #[test]
    fn setup_errors_name_the_cause_and_the_fix() {
        let sysctl = explain_setup_error(Some(libc::EPERM), Some(2));
        assert!(
            sysctl.contains("kernel.io_uring_disabled=2") && sysctl.contains("sysctl -w"),
            "{sysctl}"
        );
        let group = explain_setup_error(Some(libc::EPERM), Some(1));
        assert!(group.contains("io_uring_group"), "{group}");
        let seccomp = explain_setup_error(Some(libc::EPERM), Some(0));
        assert!(
            seccomp.contains("seccomp") && seccomp.contains("Docker"),
            "{seccomp}"
        );
        assert!(explain_setup_error(Some(libc::ENOSYS), None).contains("5.6"));
        assert!(explain_setup_error(Some(libc::ENOMEM), None).contains("ulimit -l"));
    }

    #[test]
    fn a_ring_can_be_created_here_or_the_test_says_why_not() {
        match create(8) {
            Ok(_) => {}
            Err(why) => {
                panic!("io_uring unavailable on this machine, which the daemon tests need: {why}")
            }
        }
    }
}
