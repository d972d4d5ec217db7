//! PMDK's libpmemlog, in process: the persistence floor of an append-only log on the
//! same emulated-pmem medium herald uses (a file in the page cache, cache lines
//! flushed and fenced).
//!
//! The library is loaded at run time (`libpmemlog.so.1`), so building herald never
//! needs PMDK. libpmem treats an ordinary file as not persistent memory and would
//! `msync` every append; [`FORCE_PMEM_VARIABLE`] makes it flush cache lines instead,
//! which is what herald does on the same file. It must be set before the library is
//! loaded (libpmem reads it when it initialises).
//!
//! The stored count is read back by reopening the pool and walking the log.

use super::server::INSTALL_HINT;
use super::workload::{
    Consumer, Peer, Plan, Producer, Workload, BATCH_EVENTS, PRODUCERS, STAMP_BYTES,
};
use anyhow::Context;
use std::ffi::{c_char, c_int, c_longlong, c_uint, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The library's file name (its soname).
pub const LIBRARY: &str = "libpmemlog.so.1";
/// libpmem's override: treat every mapping as persistent memory.
pub const FORCE_PMEM_VARIABLE: &str = "PMEM_IS_PMEM_FORCE";
/// Bytes a pool needs besides its log (PMEMLOG_MIN_POOL is 2 MiB).
const POOL_OVERHEAD_BYTES: u64 = 4 << 20;

type Pool = *mut c_void;

/// The entry points used, copied out of the library (valid while `_library` lives).
struct Api {
    create: unsafe extern "C" fn(*const c_char, usize, libc::mode_t) -> Pool,
    open: unsafe extern "C" fn(*const c_char) -> Pool,
    close: unsafe extern "C" fn(Pool),
    append: unsafe extern "C" fn(Pool, *const c_void, usize) -> c_int,
    appendv: unsafe extern "C" fn(Pool, *const libc::iovec, c_int) -> c_int,
    tell: unsafe extern "C" fn(Pool) -> c_longlong,
    walk: unsafe extern "C" fn(
        Pool,
        usize,
        unsafe extern "C" fn(*const c_void, usize, *mut c_void) -> c_int,
        *mut c_void,
    ),
    errormsg: unsafe extern "C" fn() -> *const c_char,
    check_version: unsafe extern "C" fn(c_uint, c_uint) -> *const c_char,
    _library: libloading::Library,
}

impl Api {
    fn load() -> anyhow::Result<Api> {
        // SAFETY: loading PMDK runs its initialisers, which only read the environment
        // and CPUID; nothing else in this process uses the library.
        let library = unsafe { libloading::Library::new(LIBRARY) }
            .with_context(|| format!("{LIBRARY} is not installed: {INSTALL_HINT}"))?;
        // SAFETY: each symbol is given the C signature declared in PMDK's
        // libpmemlog.h (version 1.x); the pointers are used only while the library
        // stays loaded (it is kept in the same struct).
        unsafe {
            Ok(Api {
                create: *library.get(b"pmemlog_create\0")?,
                open: *library.get(b"pmemlog_open\0")?,
                close: *library.get(b"pmemlog_close\0")?,
                append: *library.get(b"pmemlog_append\0")?,
                appendv: *library.get(b"pmemlog_appendv\0")?,
                tell: *library.get(b"pmemlog_tell\0")?,
                walk: *library.get(b"pmemlog_walk\0")?,
                errormsg: *library.get(b"pmemlog_errormsg\0")?,
                check_version: *library.get(b"pmemlog_check_version\0")?,
                _library: library,
            })
        }
    }

    /// The library's message about its last failure on this thread.
    fn error(&self) -> String {
        // SAFETY: pmemlog_errormsg returns a thread-local NUL-terminated string.
        let message = unsafe { CStr::from_ptr((self.errormsg)()) };
        message.to_string_lossy().into_owned()
    }
}

/// An open pool, shared by the producers of one workload (libpmemlog serialises
/// appends with its own lock).
struct OpenPool {
    api: Arc<Api>,
    pool: Pool,
}

// SAFETY: libpmemlog's pool handle may be used from any thread; appends are
// serialised inside the library.
unsafe impl Send for OpenPool {}
// SAFETY: as above.
unsafe impl Sync for OpenPool {}

impl Drop for OpenPool {
    fn drop(&mut self) {
        // SAFETY: the pool is open and closed exactly once, here.
        unsafe { (self.api.close)(self.pool) };
    }
}

/// libpmemlog on files under a throwaway directory.
pub struct PmemlogPeer {
    api: Arc<Api>,
    plan: Plan,
    dir: tempfile::TempDir,
    pool: Option<Arc<OpenPool>>,
}

impl PmemlogPeer {
    /// Loads the library; fails with what to install if it is missing.
    pub fn load(scratch: &Path, plan: Plan) -> anyhow::Result<PmemlogPeer> {
        anyhow::ensure!(
            std::env::var_os(FORCE_PMEM_VARIABLE).is_some(),
            "{FORCE_PMEM_VARIABLE} must be set before {LIBRARY} is loaded"
        );
        let api = Arc::new(Api::load()?);
        // SAFETY: check_version takes two integers and returns NULL or a static message.
        let refused = unsafe { (api.check_version)(1, 0) };
        anyhow::ensure!(refused.is_null(), "{LIBRARY}: {}", api.error());
        let dir = tempfile::Builder::new()
            .prefix("pmemlog-")
            .tempdir_in(scratch)?;
        Ok(PmemlogPeer {
            api,
            plan,
            dir,
            pool: None,
        })
    }

    fn pool_path(&self, w: &Workload) -> PathBuf {
        self.dir.path().join(format!("{}.pool", w.name('-')))
    }

    fn c_path(path: &Path) -> anyhow::Result<CString> {
        Ok(CString::new(path.as_os_str().as_bytes())?)
    }
}

impl Peer for PmemlogPeer {
    fn prepare(&mut self, w: &Workload) -> anyhow::Result<()> {
        let events = match w.kind {
            super::workload::Kind::Throughput => {
                PRODUCERS as u64 * self.plan.throughput_events_per_producer(w.payload_bytes)
            }
            _ => self.plan.latency_events * 2,
        };
        let bytes = events * w.payload_bytes as u64 + POOL_OVERHEAD_BYTES;
        let path = self.pool_path(w);
        let c_path = Self::c_path(&path)?;
        // SAFETY: a NUL-terminated path, a size and a mode; the pool is closed by
        // OpenPool's drop.
        let pool = unsafe { (self.api.create)(c_path.as_ptr(), bytes as usize, 0o600) };
        anyhow::ensure!(
            !pool.is_null(),
            "pmemlog_create {}: {}",
            path.display(),
            self.api.error()
        );
        self.pool = Some(Arc::new(OpenPool {
            api: self.api.clone(),
            pool,
        }));
        Ok(())
    }

    fn producer(&mut self, _w: &Workload, _index: usize) -> anyhow::Result<Box<dyn Producer>> {
        let pool = self.pool.clone().context("pmemlog: no pool prepared")?;
        Ok(Box::new(PmemlogProducer { pool }))
    }

    fn consumer(&mut self, _w: &Workload) -> anyhow::Result<Option<Box<dyn Consumer>>> {
        Ok(None) // a log in the process: nothing is delivered
    }

    fn stored(&mut self, w: &Workload) -> anyhow::Result<Option<u64>> {
        // Close the pool and open it again: count what the file holds, not what the
        // mapping held.
        self.pool = None;
        let path = self.pool_path(w);
        let c_path = Self::c_path(&path)?;
        // SAFETY: a NUL-terminated path; the handle is closed by OpenPool's drop.
        let pool = unsafe { (self.api.open)(c_path.as_ptr()) };
        anyhow::ensure!(
            !pool.is_null(),
            "pmemlog_open {}: {}",
            path.display(),
            self.api.error()
        );
        let open = OpenPool {
            api: self.api.clone(),
            pool,
        };
        // SAFETY: an open pool.
        let bytes = unsafe { (self.api.tell)(open.pool) } as u64;
        let mut walk = Walk {
            record_bytes: w.payload_bytes,
            records: 0,
            damaged: 0,
        };
        // SAFETY: the callback matches pmemlog_walk's and gets `walk` back as `arg`,
        // which outlives the call.
        unsafe {
            (self.api.walk)(
                open.pool,
                w.payload_bytes,
                count_record,
                (&mut walk as *mut Walk).cast(),
            )
        };
        anyhow::ensure!(
            walk.damaged == 0 && walk.records * w.payload_bytes as u64 == bytes,
            "pmemlog {}: {} bytes, {} intact records, {} damaged",
            path.display(),
            bytes,
            walk.records,
            walk.damaged
        );
        Ok(Some(walk.records))
    }

    fn delivered_confirmed(
        &mut self,
        _w: &Workload,
        _published: u64,
    ) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }

    fn finish(&mut self, w: &Workload) -> anyhow::Result<()> {
        self.pool = None;
        std::fs::remove_file(self.pool_path(w))?;
        Ok(())
    }
}

/// What a walk of the log found.
struct Walk {
    record_bytes: usize,
    records: u64,
    damaged: u64,
}

/// pmemlog_walk's callback: one record per chunk; a record is intact if it has its
/// full length and its filler after the stamp.
unsafe extern "C" fn count_record(buf: *const c_void, len: usize, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Walk passed to pmemlog_walk, alive and not otherwise
    // borrowed during the walk; `buf` holds `len` readable bytes of the log.
    let (walk, bytes) = unsafe {
        (
            &mut *arg.cast::<Walk>(),
            std::slice::from_raw_parts(buf.cast::<u8>(), len),
        )
    };
    if len == walk.record_bytes && bytes[STAMP_BYTES..].iter().all(|&b| b == 0x5a) {
        walk.records += 1;
    } else {
        walk.damaged += 1;
    }
    1 // continue
}

struct PmemlogProducer {
    pool: Arc<OpenPool>,
}

impl Producer for PmemlogProducer {
    fn publish(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        // SAFETY: an open pool and a buffer of payload.len() bytes.
        let rc = unsafe {
            (self.pool.api.append)(self.pool.pool, payload.as_ptr().cast(), payload.len())
        };
        anyhow::ensure!(rc == 0, "pmemlog_append: {}", self.pool.api.error());
        Ok(())
    }

    fn publish_many(&mut self, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
        // libpmemlog's batch: one atomic pmemlog_appendv per batch. There is nothing
        // to pipeline in process.
        for batch in payloads.chunks(BATCH_EVENTS) {
            let iov: Vec<libc::iovec> = batch
                .iter()
                .map(|p| libc::iovec {
                    iov_base: p.as_ptr() as *mut c_void,
                    iov_len: p.len(),
                })
                .collect();
            // SAFETY: an open pool and iovecs over live buffers; the library only
            // reads them.
            let rc = unsafe {
                (self.pool.api.appendv)(self.pool.pool, iov.as_ptr(), iov.len() as c_int)
            };
            anyhow::ensure!(rc == 0, "pmemlog_appendv: {}", self.pool.api.error());
        }
        Ok(())
    }
}
