//! JetStream's answer to a publish: `{"stream":"S","seq":N[,"duplicate":true]}` when
//! the stream stored it (or had it already), `{"error":{"code":..,"err_code":..,
//! "description":".."}}` when it did not. Read without allocating (borrowed strings;
//! an escaped description is the one case that copies).

use std::borrow::Cow;

/// What JetStream said of one publish.
#[derive(Debug, PartialEq, Eq)]
pub enum PubAck<'a> {
    /// Stored (or a duplicate of what it stored within its duplicate window).
    Stored {
        /// The stream's sequence number of the message.
        seq: u64,
        /// It was a duplicate, dropped by the stream.
        duplicate: bool,
    },
    /// Not stored.
    Error {
        /// The HTTP-like code (503: JetStream not available, 400: bad request...).
        code: u16,
        /// JetStream's own error code (10039: no stream matches the subject...).
        err_code: u32,
        /// What the server says.
        description: Cow<'a, str>,
    },
}

#[derive(serde::Deserialize)]
struct Raw<'a> {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default, borrow)]
    error: Option<RawError<'a>>,
}

#[derive(serde::Deserialize)]
struct RawError<'a> {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u32,
    #[serde(default, borrow)]
    description: Cow<'a, str>,
}

/// Reads a PubAck payload; a payload that is neither form is an error naming why.
pub fn parse_puback(payload: &[u8]) -> Result<PubAck<'_>, &'static str> {
    let raw: Raw<'_> = serde_json::from_slice(payload).map_err(|_| "a PubAck that is not JSON")?;
    match (raw.error, raw.seq) {
        (Some(e), _) => Ok(PubAck::Error {
            code: e.code,
            err_code: e.err_code,
            description: e.description,
        }),
        (None, Some(seq)) => Ok(PubAck::Stored {
            seq,
            duplicate: raw.duplicate,
        }),
        (None, None) => Err("a PubAck with neither a seq nor an error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_duplicate_and_refused() {
        assert_eq!(
            parse_puback(br#"{"stream":"EV","seq":12}"#),
            Ok(PubAck::Stored {
                seq: 12,
                duplicate: false
            })
        );
        assert_eq!(
            parse_puback(br#"{"stream":"EV","domain":"d","seq":3,"duplicate":true}"#),
            Ok(PubAck::Stored {
                seq: 3,
                duplicate: true
            })
        );
        let refused = parse_puback(
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        );
        assert_eq!(
            refused,
            Ok(PubAck::Error {
                code: 503,
                err_code: 10077,
                description: Cow::Borrowed("maximum messages exceeded")
            })
        );
        assert!(parse_puback(b"").is_err());
        assert!(parse_puback(b"{}").is_err());
        assert!(parse_puback(b"{\"seq\":-1}").is_err());
    }
}
