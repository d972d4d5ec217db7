//! Cache-line flush and store-fence primitives, chosen once from CPUID.
//!
//! Stable Rust has `_mm_clflush` and `_mm_sfence` but no `clwb` or `clflushopt`
//! intrinsic, so those two are emitted with `asm!`. The choice is made at run time
//! because the binary must run on machines with and without them.

/// Bytes in one cache line: the unit of flushing on every x86-64 CPU herald targets.
pub const CACHE_LINE_BYTES: usize = 64;

/// The instruction used to write a dirty cache line back towards the persistence domain.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FlushInstruction {
    /// `clwb`: writes the line back and may keep it cached (cheapest; Skylake-SP and later).
    Clwb,
    /// `clflushopt`: writes back and evicts, weakly ordered (needs `sfence`).
    Clflushopt,
    /// `clflush`: writes back and evicts, strongly ordered (oldest, slowest).
    Clflush,
}

impl FlushInstruction {
    /// Picks the best instruction this CPU offers: CPUID leaf 7, EBX bit 24 is CLWB,
    /// bit 23 is CLFLUSHOPT; `clflush` is part of SSE2 and always present on x86-64.
    pub fn detect() -> FlushInstruction {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__cpuid, __cpuid_count};
            #[allow(unused_unsafe)]
            // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only when the
            // maximum supported leaf (leaf 0, EAX) says it exists.
            let ebx = unsafe {
                if __cpuid(0).eax < 7 {
                    0
                } else {
                    __cpuid_count(7, 0).ebx
                }
            };
            Self::from_leaf7_ebx(ebx)
        }
        #[cfg(not(target_arch = "x86_64"))]
        compile_error!("herald's flush primitives are written for x86-64");
    }

    /// Decodes the choice from CPUID leaf 7 EBX (split out so every branch is testable).
    pub fn from_leaf7_ebx(ebx: u32) -> FlushInstruction {
        if ebx & (1 << 24) != 0 {
            FlushInstruction::Clwb
        } else if ebx & (1 << 23) != 0 {
            FlushInstruction::Clflushopt
        } else {
            FlushInstruction::Clflush
        }
    }

    /// The instruction's mnemonic, as printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            FlushInstruction::Clwb => "clwb",
            FlushInstruction::Clflushopt => "clflushopt",
            FlushInstruction::Clflush => "clflush",
        }
    }

    /// Starts write-back of every cache line overlapping `[ptr, ptr + len)`.
    /// Durability of those lines is only guaranteed after a following [`store_fence`].
    ///
    /// # Safety
    /// `ptr..ptr + len` must lie within one live mapping of this process. The flush
    /// instructions touch whole lines, so the line-aligned start below `ptr` and the
    /// line end above `ptr + len` must be mapped too (herald's mappings are page
    /// aligned, so any in-bounds range satisfies this).
    #[inline]
    pub unsafe fn flush_range(self, ptr: *const u8, len: usize) {
        if len == 0 {
            return;
        }
        let start = (ptr as usize) & !(CACHE_LINE_BYTES - 1);
        let end = ptr as usize + len;
        let mut line = start;
        // The match sits outside the loop so each loop body is a single instruction.
        match self {
            FlushInstruction::Clwb => {
                while line < end {
                    // SAFETY: the caller guarantees the line is mapped; clwb has no
                    // other preconditions and does not modify registers or flags.
                    unsafe {
                        std::arch::asm!("clwb [{0}]", in(reg) line, options(nostack, preserves_flags))
                    };
                    line += CACHE_LINE_BYTES;
                }
            }
            FlushInstruction::Clflushopt => {
                while line < end {
                    // SAFETY: as above; clflushopt is available (checked by CPUID).
                    unsafe {
                        std::arch::asm!("clflushopt [{0}]", in(reg) line, options(nostack, preserves_flags))
                    };
                    line += CACHE_LINE_BYTES;
                }
            }
            FlushInstruction::Clflush => {
                while line < end {
                    // SAFETY: clflush is part of SSE2, baseline on x86-64; line is mapped.
                    unsafe { std::arch::x86_64::_mm_clflush(line as *const u8) };
                    line += CACHE_LINE_BYTES;
                }
            }
        }
    }
}

/// Orders every earlier flush before any later store: after it returns, lines flushed
/// before it are in the persistence domain (on real pmem with ADR).
#[inline]
pub fn store_fence() {
    // SAFETY: sfence has no preconditions; SSE is baseline on x86-64.
    unsafe { std::arch::x86_64::_mm_sfence() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_bits_choose_the_strongest_available_flush() {
        assert_eq!(
            FlushInstruction::from_leaf7_ebx(1 << 24),
            FlushInstruction::Clwb
        );
        assert_eq!(
            FlushInstruction::from_leaf7_ebx((1 << 24) | (1 << 23)),
            FlushInstruction::Clwb
        );
        assert_eq!(
            FlushInstruction::from_leaf7_ebx(1 << 23),
            FlushInstruction::Clflushopt
        );
        assert_eq!(
            FlushInstruction::from_leaf7_ebx(0),
            FlushInstruction::Clflush
        );
    }

    #[test]
    fn every_flush_instruction_executes_on_a_buffer_and_preserves_contents() {
        let mut buffer = vec![0u8; 4096];
        for (i, b) in buffer.iter_mut().enumerate() {
            *b = i as u8;
        }
        let detected = FlushInstruction::detect();
        let mut kinds = vec![FlushInstruction::Clflush];
        // Only execute what this CPU supports; an unsupported opcode would be SIGILL.
        if detected == FlushInstruction::Clwb {
            kinds.push(FlushInstruction::Clwb);
        }
        if matches!(
            detected,
            FlushInstruction::Clwb | FlushInstruction::Clflushopt
        ) {
            kinds.push(FlushInstruction::Clflushopt);
        }
        for kind in kinds {
            // SAFETY: the range lies within `buffer`, whose lines are mapped.
            unsafe { kind.flush_range(buffer.as_ptr().add(3), 200) };
            store_fence();
        }
        assert!(buffer.iter().enumerate().all(|(i, b)| *b == i as u8));
    }
}
