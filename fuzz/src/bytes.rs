//! A cursor that reads a fuzz input as a stream of choices. Reading past the end gives
//! zeros, so every input is a complete script and a shorter one is a prefix of it.

/// Choices read from the front of a fuzz input.
pub struct Choices<'a> {
    rest: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Reads `data` from its first byte.
    pub fn new(data: &'a [u8]) -> Choices<'a> {
        Choices { rest: data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    /// One byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// A little-endian u16, zero-filled past the end.
    pub fn u16(&mut self) -> u16 {
        let mut word = [0u8; 2];
        let got = self.bytes(2);
        word[..got.len()].copy_from_slice(got);
        u16::from_le_bytes(word)
    }

    /// A little-endian u32, zero-filled past the end.
    pub fn u32(&mut self) -> u32 {
        let mut word = [0u8; 4];
        let got = self.bytes(4);
        word[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(word)
    }

    /// A little-endian u64, zero-filled past the end.
    pub fn u64(&mut self) -> u64 {
        let mut word = [0u8; 8];
        let got = self.bytes(8);
        word[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(word)
    }

    /// One bit.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// An index below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::from(self.u8()) % n
    }

    /// One of `options` (the first past the end of the input).
    pub fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[self.below(options.len())]
    }
}
