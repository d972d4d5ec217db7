//! The receive buffer: bytes read from the socket and not yet consumed, sized once at
//! connect.

use crate::protocol::FRAME_BYTES_MAX;
use std::io::{self, Read};
use std::ops::Range;

/// Twice the largest frame: a complete frame plus the start of the next always fit, so
/// the buffer never grows and only a partial frame is ever moved.
pub(super) const RECEIVE_BYTES: usize = 2 * FRAME_BYTES_MAX;

/// Received bytes `bytes[start..end]`, not yet consumed.
pub(super) struct ReceiveBuffer {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReceiveBuffer {
    pub(super) fn new() -> Self {
        ReceiveBuffer {
            bytes: vec![0; RECEIVE_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The bytes received and not yet consumed; they start with a frame.
    pub(super) fn pending(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    /// Consumes the frame of `len` bytes at the start of [`pending`](Self::pending) and
    /// returns where it lies. Its bytes stay in place until the next [`fill`](Self::fill).
    pub(super) fn consume(&mut self, len: usize) -> Range<usize> {
        assert!(len <= self.end - self.start, "consumed more than received");
        let range = self.start..self.start + len;
        self.start += len;
        range
    }

    /// Bytes of a frame [`consume`](Self::consume) returned, valid until the next fill.
    pub(super) fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.bytes[range]
    }

    /// One read from `source` after the pending bytes; returns what the read returned (0
    /// at end of stream). Called only when the pending bytes hold no complete frame.
    pub(super) fn fill(&mut self, source: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        let read = source.read(&mut self.bytes[self.end..])?;
        self.end += read;
        Ok(read)
    }

    /// Moves the pending partial frame to the front when a whole frame might not fit
    /// behind it. A partial frame is shorter than `FRAME_BYTES_MAX` (a complete header
    /// never announces more), so after this at least one byte of room remains and the
    /// frame can be completed in place.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.bytes.len() - self.start < FRAME_BYTES_MAX {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        assert!(
            self.end < self.bytes.len(),
            "a partial frame filled the receive buffer"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source handing out `chunks` one per read.
    struct Chunks<'a>(std::slice::Iter<'a, &'a [u8]>);

    impl Read for Chunks<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let Some(chunk) = self.0.next() else {
                return Ok(0);
            };
            assert!(chunk.len() <= out.len(), "test chunk larger than the room");
            out[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn a_partial_frame_near_the_end_is_moved_to_the_front_intact() {
        let mut buffer = ReceiveBuffer::new();
        let filler = vec![7u8; RECEIVE_BYTES - 10];
        let partial: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let rest: &[u8] = &[11, 12];
        let chunks = [filler.as_slice(), partial, rest];
        let mut source = Chunks(chunks.iter());
        buffer.fill(&mut source).unwrap();
        buffer.fill(&mut source).unwrap();
        buffer.consume(filler.len());
        assert_eq!(buffer.pending(), partial);
        buffer.fill(&mut source).unwrap();
        assert_eq!(buffer.pending(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn consuming_everything_resets_to_the_front() {
        let mut buffer = ReceiveBuffer::new();
        let chunks: [&[u8]; 2] = [&[1, 2, 3], &[4]];
        let mut source = Chunks(chunks.iter());
        buffer.fill(&mut source).unwrap();
        assert_eq!(buffer.consume(3), 0..3);
        buffer.fill(&mut source).unwrap();
        assert_eq!(buffer.consume(1), 0..1, "the buffer restarted at 0");
    }
}
