//! The daemon's Unix socket: created with a restrictive mode, stale sockets removed,
//! a live daemon on the same path detected.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A daemon answers on the path already.
    #[error("socket {0}: another herald is already serving here (it accepted a connection); stop it first")]
    InUse(String),
    /// Something that is not a socket is in the way.
    #[error("socket {0}: exists and is not a socket; remove it or choose another --socket")]
    NotASocket(String),
    /// bind/chmod failed.
    #[error("socket {path}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How long a live daemon has to answer the probe's hello.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn remove_stale(path: &Path, shown: &str) -> std::io::Result<()> {
    tracing::info!(socket = %shown, "removing stale socket left by a previous daemon");
    std::fs::remove_file(path)
}

/// Whether something on the socket answers a protocol hello (a live daemon does).
fn answers_hello(mut stream: &UnixStream) -> bool {
    use crate::protocol::{encode, Frame, Hello, Role, FRAME_HEADER_BYTES};
    use std::io::{Read, Write};
    let hello = Frame::Hello(Hello {
        version_min: 1,
        version_max: 1,
        role: Role::Control,
        client_name: "herald-probe",
    });
    let mut out = [0u8; 128];
    let Ok(n) = encode(&hello, &mut out) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(PROBE_TIMEOUT));
    if stream.write_all(&out[..n]).is_err() {
        return false;
    }
    let mut reply = [0u8; FRAME_HEADER_BYTES];
    stream.read_exact(&mut reply).is_ok()
}

/// Binds `path` with permissions `mode` (e.g. `0o600`) and, if given, the group `group`
/// (so that its members connect through a group-writable mode). A socket file left by a
/// dead daemon (nobody accepts on it) is removed first.
pub fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<UnixListener, ListenerError> {
    let shown = path.display().to_string();
    let io = |source| ListenerError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(ListenerError::NotASocket(shown)),
        Ok(_) => match UnixStream::connect(path) {
            Ok(stream) if answers_hello(&stream) => return Err(ListenerError::InUse(shown)),
            // Accepted but silent: a daemon killed a moment ago whose io_uring still
            // had an accept armed while the kernel tore it down.
            Ok(_) => remove_stale(path, &shown).map_err(io)?,
            Err(e)
                if e.kind() == ErrorKind::ConnectionRefused || e.kind() == ErrorKind::NotFound =>
            {
                remove_stale(path, &shown).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // Bind under a umask that already excludes everything `mode` excludes, so the
    // socket never exists with wider permissions, not even between bind and chmod; with
    // a group to set, owner-only until the group is the right one.
    let first = if group.is_some() { mode & 0o700 } else { mode };
    // SAFETY: umask has no memory effects; it is process-wide, and the daemon binds
    // before it starts any other thread.
    let old = unsafe { libc::umask(!first as libc::mode_t & 0o777) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(io)?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| ListenerError::Io {
            path: shown.clone(),
            source: std::io::Error::new(
                e.kind(),
                format!("cannot give the socket group {gid} (socket_group): {e}"),
            ),
        })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sockets_get_the_requested_mode_and_stale_ones_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let first = bind(&path, 0o600, None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // A listener that accepts but never answers a hello is not a live daemon.
        let silent = std::thread::spawn({
            let first = first.try_clone().unwrap();
            move || first.accept().map(|(s, _)| s)
        });
        let _second = bind(&path, 0o600, None).unwrap();
        drop(silent.join());
        // ...and once it is gone, its socket file is stale and replaced.
        drop(first);
        let _third = bind(&path, 0o660, None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o660);
    }

    #[test]
    fn a_listener_that_answers_hello_is_a_live_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let live = bind(&path, 0o600, None).unwrap();
        let answering = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = live.accept().unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(&[9, 0, 0, 0, 0x81, 0, 0, 0, 0, 0, 0, 0, 0])
                .unwrap();
            live
        });
        assert!(matches!(
            bind(&path, 0o600, None),
            Err(ListenerError::InUse(_))
        ));
        drop(answering.join());
    }

    #[test]
    fn a_socket_group_is_set_before_the_group_may_use_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        // SAFETY: a plain getter.
        let gid = unsafe { libc::getegid() };
        let _listener = bind(&path, 0o660, Some(gid)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, gid));
    }

    #[test]
    fn a_regular_file_in_the_way_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        std::fs::write(&path, b"not mine").unwrap();
        assert!(matches!(
            bind(&path, 0o600, None),
            Err(ListenerError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"not mine");
    }
}
