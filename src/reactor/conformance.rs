//! The same behaviour asked of every backend: accept, receive, send (also partially,
//! also large), end of stream, shutdown with a receive armed, outbound connect, and
//! SIGTERM as a completion. The io_uring run probes for io_uring and says loudly when
//! it skips.

use super::sim::{SimNet, SimReactor};
use super::{epoll::EpollReactor, uring::UringReactor, Address, Completion, Reactor, Token};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Waits (bounded: a failure detector, never a success criterion) until `pick` takes a
/// completion out of what the reactor returned.
fn wait_for<R: Reactor, T>(
    r: &mut R,
    what: &str,
    mut pick: impl FnMut(&mut Vec<Completion<R::Socket>>) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    loop {
        if let Some(t) = pick(&mut out) {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: nothing after 10 s");
        r.wait(Duration::from_millis(50), &mut out).expect("wait");
    }
}

fn take_accepted<S>(out: &mut Vec<Completion<S>>) -> Option<S> {
    take_accepted_with_peer(out).map(|(socket, _)| socket)
}

fn take_accepted_with_peer<S>(
    out: &mut Vec<Completion<S>>,
) -> Option<(S, Option<super::PeerCredentials>)> {
    let at = out
        .iter()
        .position(|c| matches!(c, Completion::Accepted { .. }))?;
    match out.remove(at) {
        Completion::Accepted { result, .. } => {
            let accepted = result.expect("accepted");
            Some((accepted.socket, accepted.peer))
        }
        _ => None,
    }
}

fn take_received<S>(out: &mut Vec<Completion<S>>, token: Token) -> Option<Result<usize, i32>> {
    let at = out
        .iter()
        .position(|c| matches!(c, Completion::Received { token: t, .. } if *t == token))?;
    match out.remove(at) {
        Completion::Received { result, .. } => Some(result),
        _ => None,
    }
}

fn take_sent<S>(out: &mut Vec<Completion<S>>, token: Token) -> Option<Result<usize, i32>> {
    let at = out
        .iter()
        .position(|c| matches!(c, Completion::Sent { token: t, .. } if *t == token))?;
    match out.remove(at) {
        Completion::Sent { result, .. } => Some(result),
        _ => None,
    }
}

/// Sends all of `bytes` through the reactor, re-arming after partial sends.
fn send_all<R: Reactor>(r: &mut R, socket: &R::Socket, token: Token, bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        // SAFETY: `bytes` outlives the wait for this send's completion below.
        unsafe { r.send(socket, bytes[at..].as_ptr(), bytes.len() - at, token) };
        let n = wait_for(r, "send", |out| take_sent(out, token)).expect("send ok");
        assert!(n > 0);
        at += n;
    }
}

fn real_backend<R: Reactor<Socket = OwnedFd, Listener = OwnedFd>>(mut r: R) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sock");
    let listener = UnixListener::bind(&path).unwrap();
    r.listen(OwnedFd::from(listener)).unwrap();
    let mut client = UnixStream::connect(&path).unwrap();
    let (socket, peer) = wait_for(&mut r, "accept", take_accepted_with_peer);
    // The peer is this very process.
    let peer = peer.expect("a Unix socket's peer has credentials");
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!(
        (peer.pid as u32, peer.uid, peer.gid),
        (std::process::id(), uid, gid)
    );
    let token = Token {
        slot: 3,
        generation: 7,
    };
    r.attach(&socket, token).unwrap();

    // A receive armed before the bytes arrive, and one armed after.
    let mut buf = vec![0u8; 64];
    // SAFETY: `buf` is not touched until the completion is taken.
    unsafe { r.recv(&socket, buf.as_mut_ptr(), buf.len(), token) };
    client.write_all(b"hello").unwrap();
    let n = wait_for(&mut r, "recv", |out| take_received(out, token)).unwrap();
    assert_eq!(&buf[..n], b"hello");
    client.write_all(b"again").unwrap();
    // SAFETY: as above.
    unsafe { r.recv(&socket, buf.as_mut_ptr(), buf.len(), token) };
    let n = wait_for(&mut r, "recv", |out| take_received(out, token)).unwrap();
    assert_eq!(&buf[..n], b"again");

    // A send larger than the socket buffer completes partially; the rest follows.
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; 4 << 20];
        client.read_exact(&mut got).unwrap();
        (client, got)
    });
    send_all(&mut r, &socket, token, &big);
    let (mut client, got) = reader.join().unwrap();
    assert!(got == big, "the bytes arrive whole and in order");

    // End of stream from the client.
    drop(client.shutdown(std::net::Shutdown::Write));
    // SAFETY: as above.
    unsafe { r.recv(&socket, buf.as_mut_ptr(), buf.len(), token) };
    assert_eq!(
        wait_for(&mut r, "eof", |out| take_received(out, token)),
        Ok(0)
    );
    r.close(socket, Some(token));
    assert_eq!(
        client.read(&mut [0u8; 1]).unwrap(),
        0,
        "closed: end of stream"
    );

    // Our own shutdown completes an armed receive.
    let _client2 = UnixStream::connect(&path).unwrap();
    let socket2 = wait_for(&mut r, "accept 2", take_accepted);
    let token2 = Token {
        slot: 4,
        generation: 1,
    };
    r.attach(&socket2, token2).unwrap();
    // SAFETY: as above.
    unsafe { r.recv(&socket2, buf.as_mut_ptr(), buf.len(), token2) };
    r.shutdown(&socket2);
    let done = wait_for(&mut r, "recv after shutdown", |out| {
        take_received(out, token2)
    });
    assert!(matches!(done, Ok(0) | Err(_)), "{done:?}");
    r.close(socket2, Some(token2));

    // Outbound: connect to another listener, talk both ways.
    let path_out = dir.path().join("out.sock");
    let remote = UnixListener::bind(&path_out).unwrap();
    let token3 = Token {
        slot: 5,
        generation: 2,
    };
    r.connect(&Address::Unix(path_out.clone()), token3).unwrap();
    let (mut peer, _) = remote.accept().unwrap();
    let out_socket = wait_for(&mut r, "connect", |out| {
        let at = out
            .iter()
            .position(|c| matches!(c, Completion::Connected { .. }))?;
        match out.remove(at) {
            Completion::Connected { token, result } => {
                assert_eq!(token, token3);
                Some(result.expect("connected"))
            }
            _ => None,
        }
    });
    send_all(&mut r, &out_socket, token3, b"upstream hello");
    let mut got = [0u8; 14];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"upstream hello");
    peer.write_all(b"ok").unwrap();
    // SAFETY: as above.
    unsafe { r.recv(&out_socket, buf.as_mut_ptr(), buf.len(), token3) };
    let n = wait_for(&mut r, "recv outbound", |out| take_received(out, token3)).unwrap();
    assert_eq!(&buf[..n], b"ok");
    r.close(out_socket, Some(token3));

    // Outbound over TCP (the JetStream forwarder's kind of address).
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let token5 = Token {
        slot: 7,
        generation: 3,
    };
    r.connect(&Address::Tcp(tcp.local_addr().unwrap()), token5)
        .unwrap();
    let (mut tcp_peer, _) = tcp.accept().unwrap();
    let tcp_socket = wait_for(&mut r, "tcp connect", |out| {
        let at = out
            .iter()
            .position(|c| matches!(c, Completion::Connected { .. }))?;
        match out.remove(at) {
            Completion::Connected { token, result } => {
                assert_eq!(token, token5);
                Some(result.expect("connected over tcp"))
            }
            _ => None,
        }
    });
    send_all(&mut r, &tcp_socket, token5, b"PING\r\n");
    let mut got = [0u8; 6];
    tcp_peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"PING\r\n");
    tcp_peer.write_all(b"PONG").unwrap();
    // SAFETY: as above.
    unsafe { r.recv(&tcp_socket, buf.as_mut_ptr(), buf.len(), token5) };
    let n = wait_for(&mut r, "recv over tcp", |out| take_received(out, token5)).unwrap();
    assert_eq!(&buf[..n], b"PONG");
    r.close(tcp_socket, Some(token5));

    // A connection refused is a completion, not a panic.
    let token4 = Token {
        slot: 6,
        generation: 1,
    };
    let refused = r.connect(&Address::Unix(dir.path().join("nobody.sock")), token4);
    if refused.is_ok() {
        let result = wait_for(&mut r, "refused connect", |out| {
            let at = out
                .iter()
                .position(|c| matches!(c, Completion::Connected { .. }))?;
            match out.remove(at) {
                Completion::Connected { result, .. } => Some(result.map(drop)),
                _ => None,
            }
        });
        assert!(result.is_err());
    }

    // SIGTERM, blocked for this thread by the reactor, arrives as a completion.
    // SAFETY: raise(3) directs the signal at this thread, where it is blocked.
    unsafe { libc::raise(libc::SIGTERM) };
    wait_for(&mut r, "terminate", |out| {
        let at = out
            .iter()
            .position(|c| matches!(c, Completion::Terminate))?;
        out.remove(at);
        Some(())
    });
}

#[test]
fn epoll_backend_conforms() {
    real_backend(EpollReactor::new(8).expect("epoll"));
}

#[test]
fn io_uring_backend_conforms_or_the_test_says_why_not() {
    match UringReactor::new(64, Duration::ZERO) {
        Ok(r) => real_backend(r),
        Err(why) => eprintln!("SKIPPED: io_uring is refused on this host: {why}"),
    }
}

#[test]
fn the_simulated_backend_moves_bytes_in_bounded_chunks_and_time_only_when_waiting() {
    let net = SimNet::new(1000, 300);
    // Busy turns take no simulated time here, so that an idle wait is seen to take
    // exactly its timeout.
    net.set_turn_time(Duration::ZERO);
    let mut r = SimReactor::new(&net, 4);
    let listener = net.listener("/sim/herald.sock");
    r.listen(listener.clone()).unwrap();
    let someone = super::PeerCredentials {
        pid: 4242,
        uid: 1001,
        gid: 1002,
    };
    let mut client = net.connect_as(&listener, someone);
    let (socket, peer) = wait_for(&mut r, "accept", take_accepted_with_peer);
    assert_eq!(
        peer,
        Some(someone),
        "the simulator gives what the test asked for"
    );
    let token = Token {
        slot: 1,
        generation: 1,
    };
    r.attach(&socket, token).unwrap();
    assert_eq!(client.write(&[5u8; 2000]), 1000, "bounded by the capacity");
    let mut buf = vec![0u8; 4096];
    // SAFETY: as in the real-backend test.
    unsafe { r.recv(&socket, buf.as_mut_ptr(), buf.len(), token) };
    let n = wait_for(&mut r, "recv", |out| take_received(out, token)).unwrap();
    assert_eq!(n, 300, "bounded by chunk_max");
    let reply = [9u8; 700];
    send_all(&mut r, &socket, token, &reply);
    let mut got = [0u8; 800];
    assert_eq!(client.read(&mut got), Some(700));
    let before = net.now_ns();
    let mut out = Vec::new();
    r.wait(Duration::from_millis(5), &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(net.now_ns() - before, 5_000_000, "idle waits advance time");
    client.close();
    // SAFETY: as above.
    unsafe { r.recv(&socket, buf.as_mut_ptr(), buf.len(), token) };
    // 700 bytes were still queued: they come before end of stream.
    let mut total = 0;
    loop {
        let n = wait_for(&mut r, "drain", |out| take_received(out, token)).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        // SAFETY: as above.
        unsafe { r.recv(&socket, buf.as_mut_ptr(), buf.len(), token) };
    }
    assert_eq!(total, 700);
    net.terminate();
    wait_for(&mut r, "terminate", |out| {
        out.iter()
            .position(|c| matches!(c, Completion::Terminate))
            .map(|at| {
                out.remove(at);
            })
    });
}
