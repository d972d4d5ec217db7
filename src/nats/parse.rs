//! The server's side of the NATS protocol, one operation at a time, from the front of
//! a receive buffer. Nothing here panics on any input: lengths are checked before
//! every slice (`tests/no_panic_on_input.rs` lists this file).

/// One operation the server sent.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerOp<'a> {
    /// `INFO {json}`: the server's description (the first line on a connection).
    Info(&'a [u8]),
    /// `PING`: to be answered with `PONG`.
    Ping,
    /// `PONG`: the answer to our `PING` (everything sent before it was processed).
    Pong,
    /// `+OK` (only in verbose mode, which herald does not ask for).
    Ok,
    /// `-ERR 'text'`: the server refused something; it usually closes.
    Err(&'a [u8]),
    /// `MSG` or `HMSG`: a message for one of our subscriptions.
    Msg {
        /// Its subject (for a reply: our inbox subject).
        subject: &'a [u8],
        /// The header block (`NATS/1.0 ...` and its lines), empty for `MSG`.
        headers: &'a [u8],
        /// The payload.
        payload: &'a [u8],
    },
}

/// Why the server's input cannot be read: the connection is dropped and made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A control line longer than the receive buffer allows.
    #[error("a line from the server is longer than {0} bytes")]
    LineTooLong(usize),
    /// A message larger than the receive buffer allows.
    #[error("a message from the server of {0} bytes is larger than the receive buffer")]
    MessageTooLarge(usize),
    /// An operation this client does not know.
    #[error("an unknown operation from the server")]
    Unknown,
    /// A known operation whose arguments do not parse.
    #[error("a malformed {0} line from the server")]
    Malformed(&'static str),
}

/// Parses the first operation in `buf`. `Ok(None)`: not complete yet (receive more).
/// `Ok(Some((op, n)))`: the operation and the bytes it took. `limit` is the receive
/// buffer's size: a line or message that could never fit is an error.
pub fn parse(buf: &[u8], limit: usize) -> Result<Option<(ServerOp<'_>, usize)>, ParseError> {
    let Some(end) = find_crlf(buf) else {
        if buf.len() >= limit {
            return Err(ParseError::LineTooLong(limit));
        }
        return Ok(None);
    };
    let line = &buf[..end];
    let after = end + 2;
    let (op, args) = split_op(line);
    if op.eq_ignore_ascii_case(b"PING") {
        return Ok(Some((ServerOp::Ping, after)));
    }
    if op.eq_ignore_ascii_case(b"PONG") {
        return Ok(Some((ServerOp::Pong, after)));
    }
    if op.eq_ignore_ascii_case(b"+OK") {
        return Ok(Some((ServerOp::Ok, after)));
    }
    if op.eq_ignore_ascii_case(b"-ERR") {
        return Ok(Some((ServerOp::Err(trim_quotes(args)), after)));
    }
    if op.eq_ignore_ascii_case(b"INFO") {
        return Ok(Some((ServerOp::Info(args), after)));
    }
    let with_headers = op.eq_ignore_ascii_case(b"HMSG");
    if !with_headers && !op.eq_ignore_ascii_case(b"MSG") {
        return Err(ParseError::Unknown);
    }
    let what = if with_headers { "HMSG" } else { "MSG" };
    // MSG <subject> <sid> [reply] <bytes>; HMSG <subject> <sid> [reply] <hdr> <total>
    let mut fields = [&b""[..]; 5];
    let mut count = 0;
    for f in args
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|f| !f.is_empty())
    {
        if count == fields.len() {
            return Err(ParseError::Malformed(what));
        }
        fields[count] = f;
        count += 1;
    }
    let numbers = if with_headers { 2 } else { 1 };
    if count < 2 + numbers || count > 3 + numbers {
        return Err(ParseError::Malformed(what));
    }
    let subject = fields[0];
    let total = number(fields[count - 1]).ok_or(ParseError::Malformed(what))?;
    let header_len = if with_headers {
        number(fields[count - 2]).ok_or(ParseError::Malformed(what))?
    } else {
        0
    };
    if header_len > total {
        return Err(ParseError::Malformed(what));
    }
    let needed = after
        .checked_add(total)
        .and_then(|n| n.checked_add(2))
        .ok_or(ParseError::MessageTooLarge(usize::MAX))?;
    if needed > limit {
        return Err(ParseError::MessageTooLarge(total));
    }
    if buf.len() < needed {
        return Ok(None);
    }
    let body = &buf[after..after + total];
    if &buf[after + total..needed] != b"\r\n" {
        return Err(ParseError::Malformed(what));
    }
    let (headers, payload) = body.split_at(header_len);
    Ok(Some((
        ServerOp::Msg {
            subject,
            headers,
            payload,
        },
        needed,
    )))
}

/// The status code of a header block (`NATS/1.0 503` → 503), if it has one: how the
/// server says "no responders" (no stream listens on the subject) or a timeout.
pub fn header_status(headers: &[u8]) -> Option<u16> {
    let line = &headers[..find_crlf(headers).unwrap_or(headers.len())];
    let rest = line.strip_prefix(b"NATS/1.0")?;
    let code = rest.split(|b| *b == b' ').find(|f| !f.is_empty())?;
    number(code).and_then(|n| u16::try_from(n).ok())
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn split_op(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(at) => (&line[..at], trim(&line[at + 1..])),
        None => (line, &[]),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn trim_quotes(s: &[u8]) -> &[u8] {
    match s {
        [b'\'', inner @ .., b'\''] => inner,
        other => other,
    }
}

/// A decimal number of at most 12 digits (a message is far smaller).
fn number(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 12 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_parses_and_says_what_it_took() {
        let buf = b"INFO {\"server_id\":\"x\"}\r\nPING\r\n";
        let (op, n) = parse(buf, 1024).unwrap().unwrap();
        assert_eq!(op, ServerOp::Info(b"{\"server_id\":\"x\"}"));
        assert_eq!(
            parse(&buf[n..], 1024).unwrap().unwrap(),
            (ServerOp::Ping, 6)
        );
        assert_eq!(parse(b"pong\r\n", 64).unwrap().unwrap().0, ServerOp::Pong);
        assert_eq!(parse(b"+OK\r\n", 64).unwrap().unwrap().0, ServerOp::Ok);
        assert_eq!(
            parse(b"-ERR 'Authorization Violation'\r\n", 64)
                .unwrap()
                .unwrap()
                .0,
            ServerOp::Err(b"Authorization Violation")
        );
    }

    #[test]
    fn messages_with_and_without_headers_and_reply() {
        let buf = b"MSG _INBOX.a.7 1 5\r\nhello\r\n";
        let (op, n) = parse(buf, 1024).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(
            op,
            ServerOp::Msg {
                subject: b"_INBOX.a.7",
                headers: b"",
                payload: b"hello"
            }
        );
        let buf = b"HMSG _INBOX.a.8 1 reply.x 16 18\r\nNATS/1.0 503\r\n\r\nok\r\n";
        let (op, _) = parse(buf, 1024).unwrap().unwrap();
        let ServerOp::Msg {
            headers, payload, ..
        } = op
        else {
            panic!("{op:?}")
        };
        assert_eq!(header_status(headers), Some(503));
        assert_eq!(payload, b"ok");
        assert_eq!(header_status(b"NATS/1.0\r\nA: b\r\n\r\n"), None);
    }

    #[test]
    fn partial_input_waits_and_bad_input_is_an_error() {
        let whole = b"MSG s 1 5\r\nhello\r\n";
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut], 1024), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(b"PIN", 3), Err(ParseError::LineTooLong(3)));
        assert_eq!(
            parse(b"MSG s 1 500\r\n", 64),
            Err(ParseError::MessageTooLarge(500))
        );
        assert_eq!(parse(b"WHAT\r\n", 64), Err(ParseError::Unknown));
        assert_eq!(
            parse(b"MSG s 1 x\r\n", 64),
            Err(ParseError::Malformed("MSG"))
        );
        assert_eq!(parse(b"MSG s\r\n", 64), Err(ParseError::Malformed("MSG")));
        assert_eq!(
            parse(b"HMSG s 1 9 5\r\n", 64),
            Err(ParseError::Malformed("HMSG"))
        );
        assert_eq!(
            parse(b"MSG s 1 2\r\nabXY", 64),
            Err(ParseError::Malformed("MSG"))
        );
        assert_eq!(
            parse(b"MSG s 1 99999999999999999999\r\n", 64),
            Err(ParseError::Malformed("MSG"))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A fixed seed (HERALD_SEED overrides it) drives random and mutated inputs.
        let seed: u64 = std::env::var("HERALD_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x6a65_7473);
        println!("seed {seed}");
        let mut x = seed | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: [&[u8]; 3] = [
            b"HMSG _INBOX.a.8 1 16 18\r\nNATS/1.0 503\r\n\r\nok\r\n",
            b"MSG a 1 r 3\r\nabc\r\n",
            b"INFO {}\r\n-ERR 'x'\r\n",
        ];
        for round in 0..20_000 {
            let mut buf = seeds[round % 3].to_vec();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % buf.len();
                buf[at] = next() as u8;
            }
            buf.truncate((next() as usize) % (buf.len() + 1));
            let _ = parse(&buf, 40);
            let _ = header_status(&buf);
        }
    }
}
