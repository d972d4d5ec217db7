#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // Each script allocates the daemon's buffers (megabytes, mostly never touched):
        // from mmap they come as fresh zero pages, instead of being zeroed by calloc.
        // SAFETY: called once, before anything else allocates from another thread.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
    },
    |data: &[u8]| herald_fuzz::daemon::run(data)
);
