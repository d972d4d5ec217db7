//! Argument parsers shared by commands: a value that breaks a protocol rule is a usage
//! error (exit status 2), reported by clap with the rule it breaks.

use herald::protocol::{self, Pattern, Severity, Topic, KEY_BYTES_MAX, SOURCE_BYTES_MAX};

/// The data directory used when `--data-dir` is not given.
pub const DATA_DIR_DEFAULT: &str = "herald-data";

/// A severity name (`crit`, `warning`, aliases like `error`) or number 0..=7.
pub fn severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text).ok_or_else(|| {
        format!(
            "unknown severity {text:?}; use one of emerg alert crit err warning notice info \
             debug, or 0..7"
        )
    })
}

/// A topic: dot-separated segments of `A-Z a-z 0-9 _ -`.
pub fn topic(text: &str) -> Result<String, String> {
    Topic::validate(text.as_bytes()).map_err(|error| error.to_string())?;
    Ok(text.to_owned())
}

/// A subscription pattern: a topic whose segments may be `*`, or end in `>`.
pub fn pattern(text: &str) -> Result<String, String> {
    Pattern::parse(text.as_bytes()).map_err(|error| error.to_string())?;
    Ok(text.to_owned())
}

/// A durable subscription name: up to 64 bytes of `A-Z a-z 0-9 _ - .`.
pub fn subscription_name(text: &str) -> Result<String, String> {
    protocol::validate_subscription_name(text.as_bytes()).map_err(|error| error.to_string())?;
    Ok(text.to_owned())
}

/// An idempotency key, up to 64 bytes.
pub fn key(text: &str) -> Result<String, String> {
    if text.len() > KEY_BYTES_MAX {
        return Err(format!(
            "key is {} bytes; the limit is {KEY_BYTES_MAX}",
            text.len()
        ));
    }
    Ok(text.to_owned())
}

/// An event source, up to 255 bytes.
pub fn source(text: &str) -> Result<String, String> {
    if text.len() > SOURCE_BYTES_MAX {
        return Err(format!(
            "source is {} bytes; the limit is {SOURCE_BYTES_MAX}",
            text.len()
        ));
    }
    Ok(text.to_owned())
}

/// An acknowledgement deadline: 1 ms ..= one hour (the protocol's limit).
pub fn ack_deadline(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let ms = d.as_millis();
    if ms == 0 || ms > u128::from(herald::protocol::ACK_DEADLINE_MS_MAX) {
        return Err("between 1ms and 1h".into());
    }
    Ok(d)
}
