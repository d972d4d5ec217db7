//! The client's side of the NATS protocol, written into caller-owned buffers: nothing
//! is allocated, and a buffer without room is `None` (the caller waits for room).

/// The `CONNECT` line: headers on (JetStream's `Nats-Msg-Id`), no-responders on (a
/// publish to a subject no stream listens on is answered at once with status 503
/// instead of timing out), not verbose (no `+OK` per line).
pub const CONNECT: &[u8] = concat!(
    "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,",
    "\"lang\":\"rust\",\"name\":\"herald\",\"version\":\"",
    env!("CARGO_PKG_VERSION"),
    "\",\"protocol\":1}\r\n"
)
.as_bytes();
/// `PING`.
pub const PING: &[u8] = b"PING\r\n";
/// `PONG`.
pub const PONG: &[u8] = b"PONG\r\n";

/// Appends to a byte buffer, remembering whether anything did not fit.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    /// Writes into `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer {
            buf,
            at: 0,
            overflow: false,
        }
    }

    /// Appends bytes.
    pub fn put(&mut self, bytes: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.at..self.at + bytes.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.at += bytes.len();
            }
            _ => self.overflow = true,
        }
        self
    }

    /// Appends a decimal number.
    pub fn number(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..])
    }

    /// Appends a header value: printable ASCII as it is, anything else (a byte that
    /// could end the line or is not text) as lower-case hex prefixed with `hex:`.
    pub fn header_value(&mut self, value: &[u8]) -> &mut Self {
        let printable = value.iter().all(|b| (0x20..0x7f).contains(b))
            && !value.starts_with(b"hex:")
            && value.first() != Some(&b' ');
        if printable {
            return self.put(value);
        }
        self.put(b"hex:");
        for b in value {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            self.put(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        self
    }

    /// Bytes written, or None if something did not fit.
    pub fn finish(&self) -> Option<usize> {
        (!self.overflow).then_some(self.at)
    }
}

/// What a forwarded event carries besides its payload.
pub struct Headers<'a> {
    /// `Nats-Msg-Id` is `<node>:<seq>`: JetStream's duplicate window drops a
    /// publish it already stored under that id.
    pub node_id: u64,
    /// The event's sequence number at `node_id`.
    pub seq: u64,
    /// `Herald-Severity`.
    pub severity: &'a str,
    /// `Herald-Source`.
    pub source: &'a [u8],
    /// `Herald-Timestamp`: store time, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// `Herald-Key` (absent when empty).
    pub key: &'a [u8],
}

impl Headers<'_> {
    /// Writes the header block (`NATS/1.0` ... blank line) into `out`.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer::new(out);
        w.put(b"NATS/1.0\r\nNats-Msg-Id: ")
            .number(self.node_id)
            .put(b":")
            .number(self.seq)
            .put(b"\r\nHerald-Severity: ")
            .put(self.severity.as_bytes())
            .put(b"\r\nHerald-Source: ")
            .header_value(self.source)
            .put(b"\r\nHerald-Timestamp: ")
            .number(self.timestamp_ns)
            .put(b"\r\nHerald-Seq: ")
            .number(self.seq)
            .put(b"\r\n");
        if !self.key.is_empty() {
            w.put(b"Herald-Key: ").header_value(self.key).put(b"\r\n");
        }
        w.put(b"\r\n");
        w.finish()
    }
}

/// Writes `SUB <inbox>.* <sid>`: every acknowledgement comes to one subscription.
pub fn sub(out: &mut [u8], inbox: &[u8], sid: u64) -> Option<usize> {
    let mut w = Writer::new(out);
    w.put(b"SUB ")
        .put(inbox)
        .put(b".* ")
        .number(sid)
        .put(b"\r\n");
    w.finish()
}

/// Writes `HPUB <prefix>.<topic> <inbox>.<seq> <hdr> <total>`, the headers, the
/// payload: one publish whose acknowledgement names `seq` in its subject.
pub fn hpub(
    out: &mut [u8],
    prefix: &[u8],
    topic: &[u8],
    inbox: &[u8],
    seq: u64,
    headers: &[u8],
    payload: &[u8],
) -> Option<usize> {
    let mut w = Writer::new(out);
    w.put(b"HPUB ")
        .put(prefix)
        .put(b".")
        .put(topic)
        .put(b" ")
        .put(inbox)
        .put(b".")
        .number(seq)
        .put(b" ")
        .number(headers.len() as u64)
        .put(b" ")
        .number((headers.len() + payload.len()) as u64)
        .put(b"\r\n")
        .put(headers)
        .put(payload)
        .put(b"\r\n");
    w.finish()
}

/// Bytes [`hpub`] writes beyond the subject parts, headers and payload: the verb,
/// separators, the reply's seq and two lengths, two line ends.
pub const HPUB_OVERHEAD_BYTES: usize = 5 + 1 + 1 + 1 + 20 + 1 + 20 + 1 + 20 + 2 + 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_is_the_line_the_headers_and_the_payload() {
        let headers = Headers {
            node_id: 9,
            seq: 42,
            severity: "error",
            source: b"fs\r\n",
            timestamp_ns: 7,
            key: b"k-1",
        };
        let mut h = [0u8; 256];
        let hn = headers.write(&mut h).unwrap();
        let text = std::str::from_utf8(&h[..hn]).unwrap();
        assert_eq!(
            text,
            "NATS/1.0\r\nNats-Msg-Id: 9:42\r\nHerald-Severity: error\r\nHerald-Source: hex:66730d0a\r\n\
             Herald-Timestamp: 7\r\nHerald-Seq: 42\r\nHerald-Key: k-1\r\n\r\n"
        );
        let mut out = [0u8; 512];
        let n = hpub(
            &mut out,
            b"herald",
            b"fs.vol1",
            b"_INBOX.x",
            42,
            &h[..hn],
            b"hi",
        )
        .unwrap();
        let line_end = out.windows(2).position(|w| w == b"\r\n").unwrap();
        assert_eq!(
            &out[..line_end],
            format!("HPUB herald.fs.vol1 _INBOX.x.42 {hn} {}", hn + 2).as_bytes()
        );
        assert_eq!(&out[n - 4..n], b"hi\r\n");
        assert!(n <= b"heraldfs.vol1_INBOX.x".len() + hn + 2 + HPUB_OVERHEAD_BYTES);
        assert_eq!(hpub(&mut out[..10], b"p", b"t", b"i", 1, b"", b""), None);
        let mut s = [0u8; 64];
        let n = sub(&mut s, b"_INBOX.x", 1).unwrap();
        assert_eq!(&s[..n], b"SUB _INBOX.x.* 1\r\n");
    }
}
