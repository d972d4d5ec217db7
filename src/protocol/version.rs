//! What a `Hello` opens with: the magic, and the protocol versions this build speaks.

/// Oldest protocol version this build speaks.
pub const PROTOCOL_VERSION_MIN: u16 = 1;
/// Newest protocol version this build speaks. Version 2 adds the origin of each
/// delivered event, version 3 the routing rule that routed it (PROTOCOL.md section 13).
pub const PROTOCOL_VERSION_MAX: u16 = 3;

/// The four bytes a `Hello` starts with.
pub const HELLO_MAGIC: [u8; 4] = *b"HRLD";

const _: () = assert!(PROTOCOL_VERSION_MIN >= 1 && PROTOCOL_VERSION_MIN <= PROTOCOL_VERSION_MAX);
