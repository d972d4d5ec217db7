//! The simulated medium with a fence that fails once told to: the fault-injection
//! seam for "the region failed" tests of the log.

use herald::pmem::sim::SimMedium;

/// The simulated medium with a fence that fails once told to (an msync EIO, say).
pub struct FailingFence {
    /// The medium underneath.
    pub inner: SimMedium,
    /// Set to make every later fence fail.
    pub fail: std::rc::Rc<std::cell::Cell<bool>>,
}

impl herald::pmem::Medium for FailingFence {
    fn bytes(&self) -> &[u8] {
        self.inner.bytes()
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.inner.write(offset, data)
    }
    fn flush(&mut self, offset: usize, len: usize) {
        self.inner.flush(offset, len)
    }
    fn fence(&mut self) -> std::io::Result<()> {
        if self.fail.get() {
            return Err(std::io::Error::other("injected EIO"));
        }
        self.inner.fence()
    }
    fn durability(&self) -> herald::pmem::Durability {
        self.inner.durability()
    }
}
