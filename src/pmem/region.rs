//! Mapping a region: a device-DAX node, a file on a DAX filesystem, or an ordinary file.
//!
//! SIGBUS: a store or load through a file mapping raises SIGBUS if the file was
//! truncated below the mapped length by someone else. herald prevents it from its own
//! side by never truncating, by preallocating region files with `posix_fallocate` (so
//! no block allocation can fail with ENOSPC under a store), by checking at open that
//! the file is as long as the superblock says, and by holding an exclusive `flock` on
//! a writable region so a second herald cannot open it. An operator who truncates a
//! live region file with other tools will still bring the daemon down; that is what
//! the lock advertises.

use super::flush::{store_fence, FlushInstruction};
use super::sysfs::device_dax_geometry;
use super::unwritten::Unwritten;
use super::{Durability, Medium};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// Where the region lives.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionKind {
    /// A device-DAX character device (`/dev/daxX.Y`).
    DeviceDax,
    /// A file on a DAX filesystem, mapped `MAP_SHARED_VALIDATE | MAP_SYNC`.
    DaxFile,
    /// An ordinary file in the page cache: emulated pmem.
    File,
}

impl RegionKind {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            RegionKind::DeviceDax => "device-dax",
            RegionKind::DaxFile => "dax-file",
            RegionKind::File => "file (emulated pmem)",
        }
    }
}

/// How commits on an ordinary (non-DAX) file are made durable.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum FileSync {
    /// Cache-line flushes only: fast, survives a process crash, not a power cut.
    #[default]
    CacheFlush,
    /// Synced to disk (`fdatasync`) before commits are acknowledged: survives a power
    /// cut. Group commits and cursor releases are synced asynchronously (the caller
    /// runs the sync while it goes on); other changes sync at their fence.
    Disk,
}

/// How to open or create a region.
#[derive(Clone, Debug, Default)]
pub struct RegionOptions {
    /// Durability mode for ordinary files (ignored for DAX, which is always durable).
    pub file_sync: FileSync,
    /// Map read-only and take no lock (for `inspect` on a live daemon's region).
    pub read_only: bool,
    /// Pre-fault the whole mapping at open (`MAP_POPULATE`), so a full scan does not
    /// pay one page fault per page.
    pub populate: bool,
}

/// What was opened, for reports and `inspect`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RegionInfo {
    /// The path given to open.
    pub path: PathBuf,
    /// Where the region lives.
    pub kind: RegionKind,
    /// The flush instruction in use.
    #[serde(serialize_with = "serialize_flush")]
    pub flush: FlushInstruction,
    /// The guarantee a completed fence gives.
    pub durability: Durability,
    /// Mapped length.
    pub len_bytes: u64,
    /// Things the operator should know (a refused `MAP_SYNC`, an unaligned device tail).
    pub notes: Vec<String>,
}

fn serialize_flush<S: serde::Serializer>(f: &FlushInstruction, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(f.name())
}

/// Failures to open, create or map a region. Each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The file could not be opened or created.
    #[error("region {path}: cannot open: {source}")]
    Open {
        /// The region path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the region.
    #[error("region {path}: in use by another herald process (it holds the lock); stop it first, or use `herald inspect`, which only reads")]
    Locked {
        /// The region path.
        path: PathBuf,
    },
    /// A file to be created already exists.
    #[error("region {path}: already exists; herald never reformats an existing file")]
    Exists {
        /// The region path.
        path: PathBuf,
    },
    /// The region is too small to hold anything.
    #[error("region {path}: {len_bytes} bytes is too small (at least {min_bytes} needed)")]
    TooSmall {
        /// The region path.
        path: PathBuf,
        /// Its length.
        len_bytes: u64,
        /// The minimum.
        min_bytes: u64,
    },
    /// Preallocation failed (usually: disk full).
    #[error("region {path}: cannot preallocate {len_bytes} bytes: {source}; free space or choose a smaller --region-size")]
    Allocate {
        /// The region path.
        path: PathBuf,
        /// Requested size.
        len_bytes: u64,
        /// The OS error.
        source: std::io::Error,
    },
    /// A device-DAX node whose sysfs attributes are unusable.
    #[error("region {path}: device-DAX geometry: {message}")]
    DeviceDax {
        /// The region path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The path is neither a regular file nor a character device.
    #[error("region {path}: not a regular file or a device-DAX character device")]
    NotARegion {
        /// The region path.
        path: PathBuf,
    },
    /// `mmap` refused.
    #[error("region {path}: mmap of {len_bytes} bytes failed: {source}")]
    Map {
        /// The region path.
        path: PathBuf,
        /// Requested length.
        len_bytes: u64,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The smallest region herald will map: one superblock page and a little room.
pub const REGION_BYTES_MIN: u64 = 64 * 1024;

enum Mapping {
    /// Held for its `Drop`, which unmaps.
    Memmap { _raw: memmap2::MmapRaw },
    /// Mapped with `libc::mmap` because memmap2 cannot pass `MAP_SYNC` or map devices.
    Libc,
}

/// A mapped persistent region: the production [`Medium`].
pub struct MappedRegion {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    info: RegionInfo,
    mapping: Mapping,
    file: File,
    /// Set by the first failed fence: after an I/O failure the region stays failed.
    failed: Option<String>,
    /// On a region synced to disk (mapped privately), the ranges stored since they
    /// were last written to the file.
    unwritten: Unwritten,
}

// SAFETY: the mapping is owned by this value and not aliased by another Rust object;
// moving it to another thread moves that ownership.
unsafe impl Send for MappedRegion {}

impl MappedRegion {
    /// Opens an existing region (file or device).
    pub fn open(path: &Path, options: &RegionOptions) -> Result<MappedRegion, RegionError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!options.read_only)
            .open(path)
            .map_err(|source| RegionError::Open {
                path: path.to_owned(),
                source,
            })?;
        Self::from_file(path, file, options)
    }

    /// Creates a new region file of `len_bytes`, preallocated, and maps it. Fails if
    /// the file exists.
    pub fn create(
        path: &Path,
        len_bytes: u64,
        options: &RegionOptions,
    ) -> Result<MappedRegion, RegionError> {
        if len_bytes < REGION_BYTES_MIN {
            return Err(RegionError::TooSmall {
                path: path.to_owned(),
                len_bytes,
                min_bytes: REGION_BYTES_MIN,
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => RegionError::Exists {
                    path: path.to_owned(),
                },
                _ => RegionError::Open {
                    path: path.to_owned(),
                    source,
                },
            })?;
        // posix_fallocate returns the error number instead of setting errno.
        // SAFETY: plain syscall on an fd we own.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_bytes as libc::off_t) };
        if rc != 0 {
            let _ = std::fs::remove_file(path);
            return Err(RegionError::Allocate {
                path: path.to_owned(),
                len_bytes,
                source: std::io::Error::from_raw_os_error(rc),
            });
        }
        if options.file_sync == FileSync::Disk {
            if let Err(source) = write_zeros(&file, len_bytes) {
                let _ = std::fs::remove_file(path);
                return Err(RegionError::Allocate {
                    path: path.to_owned(),
                    len_bytes,
                    source,
                });
            }
        }
        Self::from_file(path, file, options)
    }

    fn from_file(
        path: &Path,
        file: File,
        options: &RegionOptions,
    ) -> Result<MappedRegion, RegionError> {
        let open_err = |source| RegionError::Open {
            path: path.to_owned(),
            source,
        };
        if !options.read_only {
            lock_exclusive(&file, path)?;
        }
        let meta = file.metadata().map_err(open_err)?;
        let mut notes = Vec::new();
        let (len, kind, ptr, mapping) = if meta.file_type().is_char_device() {
            let rdev = meta.rdev();
            let geometry = device_dax_geometry(
                Path::new("/sys"),
                libc::major(rdev) as u32,
                libc::minor(rdev) as u32,
            )
            .map_err(|message| RegionError::DeviceDax {
                path: path.to_owned(),
                message,
            })?;
            let len = geometry.size_bytes;
            check_min(path, len)?;
            // Device-DAX refuses private mappings; MAP_SHARED is synchronous by nature.
            let ptr = map_libc(path, &file, len, options, libc::MAP_SHARED)?;
            (len, RegionKind::DeviceDax, ptr, Mapping::Libc)
        } else if meta.file_type().is_file() {
            let len = meta.len();
            check_min(path, len)?;
            let dax_attribute = statx_dax(&file);
            let sync_attempt = if options.read_only {
                None
            } else {
                Some(map_libc(
                    path,
                    &file,
                    len,
                    options,
                    libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
                ))
            };
            match sync_attempt {
                Some(Ok(ptr)) => (len, RegionKind::DaxFile, ptr, Mapping::Libc),
                other => {
                    if let Some(Err(RegionError::Map { source, .. })) = &other {
                        if dax_attribute {
                            notes.push(format!(
                                "file is on a DAX filesystem but the kernel refused MAP_SYNC ({source}); mapped as an ordinary file instead"
                            ));
                        }
                    }
                    if options.file_sync == FileSync::Disk && !options.read_only {
                        // Stores into a shared mapping of an ext4 file made each sync
                        // ~16x dearer than the same bytes written with pwrite (a
                        // journal commit per sync, measured: README "disk mode"); so a
                        // region synced to disk is mapped privately and its stores
                        // reach the file by pwrite when they are ordered.
                        let private = RegionOptions {
                            populate: false,
                            ..options.clone()
                        };
                        let ptr = map_libc(path, &file, len, &private, libc::MAP_PRIVATE)?;
                        (len, RegionKind::File, ptr, Mapping::Libc)
                    } else {
                        let raw = map_memmap(path, &file, len, options)?;
                        let ptr = non_null(path, len, raw.as_mut_ptr())?;
                        (len, RegionKind::File, ptr, Mapping::Memmap { _raw: raw })
                    }
                }
            }
        } else {
            return Err(RegionError::NotARegion {
                path: path.to_owned(),
            });
        };
        let durability = match (kind, options.file_sync) {
            (RegionKind::DeviceDax | RegionKind::DaxFile, _) => Durability::PowerCut,
            (RegionKind::File, FileSync::CacheFlush) => Durability::ProcessCrash,
            (RegionKind::File, FileSync::Disk) => Durability::Disk,
        };
        let info = RegionInfo {
            path: path.to_owned(),
            kind,
            flush: FlushInstruction::detect(),
            durability,
            len_bytes: len,
            notes,
        };
        Ok(MappedRegion {
            ptr,
            len: len as usize,
            writable: !options.read_only,
            info,
            mapping,
            file,
            failed: None,
            unwritten: Unwritten::default(),
        })
    }

    /// Records that the file was renamed (after an atomic create-then-rename), so
    /// reports name the path operators see.
    pub fn set_path(&mut self, path: &Path) {
        self.info.path = path.to_owned();
    }

    /// What was opened.
    pub fn info(&self) -> &RegionInfo {
        &self.info
    }

    /// Writes the whole mapping and the file's data to stable storage, whatever the
    /// durability mode. Used once after formatting, before the region is published.
    pub fn sync_all(&mut self) -> std::io::Result<()> {
        self.msync(0, self.len)?;
        if self.info.kind != RegionKind::DeviceDax {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn msync(&self, start: usize, end: usize) -> std::io::Result<()> {
        let page = 4096usize;
        let start = start & !(page - 1);
        let end = end.min(self.len);
        // SAFETY: start..end lies within our live mapping and start is page aligned.
        let rc = unsafe {
            libc::msync(
                self.ptr.as_ptr().add(start).cast(),
                end - start,
                libc::MS_SYNC,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

fn check_min(path: &Path, len: u64) -> Result<(), RegionError> {
    if len < REGION_BYTES_MIN {
        return Err(RegionError::TooSmall {
            path: path.to_owned(),
            len_bytes: len,
            min_bytes: REGION_BYTES_MIN,
        });
    }
    Ok(())
}

/// How long an open waits for the region's lock before it says the region is in use.
///
/// Why wait at all: a herald killed while an io_uring sync of the region was in flight
/// keeps the file (and its lock) open until the kernel finishes that request, a few
/// milliseconds after the process is gone; the restart that follows a crash must not
/// fail on that. A live daemon holds the lock for good, and is reported after this.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Between two tries of the lock.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

fn lock_exclusive(file: &File, path: &Path) -> Result<(), RegionError> {
    let give_up = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: plain syscall on an fd we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(RegionError::Open {
                path: path.to_owned(),
                source: err,
            });
        }
        if std::time::Instant::now() >= give_up {
            return Err(RegionError::Locked {
                path: path.to_owned(),
            });
        }
        std::thread::sleep(LOCK_RETRY);
    }
}

/// Whether `statx` reports the file as DAX (Linux 5.8+; false where unknown).
fn statx_dax(file: &File) -> bool {
    // SAFETY: statx writes into the zeroed struct we pass; the path is empty and
    // AT_EMPTY_PATH makes it describe the fd itself.
    unsafe {
        let mut stx: libc::statx = std::mem::zeroed();
        let rc = libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS,
            &mut stx,
        );
        rc == 0
            && stx.stx_attributes_mask & libc::STATX_ATTR_DAX as u64 != 0
            && stx.stx_attributes & libc::STATX_ATTR_DAX as u64 != 0
    }
}

fn map_libc(
    path: &Path,
    file: &File,
    len: u64,
    options: &RegionOptions,
    flags: libc::c_int,
) -> Result<NonNull<u8>, RegionError> {
    let prot = if options.read_only {
        libc::PROT_READ
    } else {
        libc::PROT_READ | libc::PROT_WRITE
    };
    let populate = if options.populate {
        libc::MAP_POPULATE
    } else {
        0
    };
    // SAFETY: a fresh mapping at a kernel-chosen address; it aliases no Rust object.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            prot,
            flags | populate,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(RegionError::Map {
            path: path.to_owned(),
            len_bytes: len,
            source: std::io::Error::last_os_error(),
        });
    }
    non_null(path, len, ptr.cast())
}

/// Linux never places a mapping at address 0 unless asked to (`mmap_min_addr`); should
/// it, that is a refused mapping, not a panic.
fn non_null(path: &Path, len: u64, ptr: *mut u8) -> Result<NonNull<u8>, RegionError> {
    NonNull::new(ptr).ok_or_else(|| RegionError::Map {
        path: path.to_owned(),
        len_bytes: len,
        source: std::io::Error::other("the mapping was placed at address 0"),
    })
}

fn map_memmap(
    path: &Path,
    file: &File,
    len: u64,
    options: &RegionOptions,
) -> Result<memmap2::MmapRaw, RegionError> {
    let mut mmap_options = memmap2::MmapOptions::new();
    mmap_options.len(len as usize);
    if options.populate {
        mmap_options.populate();
    }
    let result = if options.read_only {
        mmap_options.map_raw_read_only(file)
    } else {
        mmap_options.map_raw(file)
    };
    result.map_err(|source| RegionError::Map {
        path: path.to_owned(),
        len_bytes: len,
        source,
    })
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        if let Mapping::Libc = self.mapping {
            // SAFETY: ptr/len describe the mapping created in map_libc, unmapped once.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

impl Medium for MappedRegion {
    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is live for self's lifetime and len bytes long. Other
        // processes may write it concurrently only if they ignore our lock; readers
        // validate everything they read by checksum.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    #[inline]
    fn write(&mut self, offset: usize, data: &[u8]) {
        assert!(self.writable, "write to a read-only region");
        assert!(
            offset <= self.len && data.len() <= self.len - offset,
            "store outside the region"
        );
        // The range is noted before the store: writing the list out early drops the
        // private copies of pages it covers, which may hold this store's page too.
        if self.info.durability == Durability::Disk
            && !self.unwritten.add(offset, offset + data.len())
        {
            self.write_out();
            let added = self.unwritten.add(offset, offset + data.len());
            debug_assert!(added, "an emptied list takes a range");
        }
        // SAFETY: bounds checked above; the source is a distinct Rust slice, so the
        // ranges cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        };
    }

    #[inline]
    fn flush(&mut self, offset: usize, len: usize) {
        assert!(offset <= self.len && len <= self.len - offset);
        // Synced to disk as a whole file: the mapping's writes are in the page cache,
        // and fdatasync writes every dirty page of the file.
        if self.info.durability == Durability::Disk {
            return;
        }
        // SAFETY: the range is within the mapping (checked above).
        unsafe {
            self.info
                .flush
                .flush_range(self.ptr.as_ptr().add(offset), len)
        };
    }

    #[inline]
    fn fence(&mut self) -> std::io::Result<()> {
        if let Some(reason) = &self.failed {
            return Err(std::io::Error::other(format!(
                "region {} failed earlier and accepts no more writes: {reason}",
                self.info.path.display()
            )));
        }
        if self.info.durability == Durability::Disk {
            self.write_out();
            if let Some(reason) = &self.failed {
                return Err(std::io::Error::other(reason.clone()));
            }
            if let Err(e) = self.file.sync_data() {
                self.failed = Some(e.to_string());
                return Err(e);
            }
            return Ok(());
        }
        store_fence();
        Ok(())
    }

    fn durability(&self) -> Durability {
        self.info.durability
    }

    fn deferred(&self) -> bool {
        self.info.durability == Durability::Disk
    }

    fn order(&mut self) -> std::io::Result<()> {
        if !self.deferred() {
            return self.fence();
        }
        // What a later sync makes durable is what the file holds when it begins.
        self.write_out();
        match &self.failed {
            Some(reason) => Err(std::io::Error::other(format!(
                "region {} failed earlier and accepts no more writes: {reason}",
                self.info.path.display()
            ))),
            None => Ok(()),
        }
    }

    fn begin_sync(&mut self) -> super::SyncRequest {
        use std::os::fd::AsRawFd;
        super::SyncRequest {
            fd: Some(self.file.as_raw_fd()),
        }
    }

    fn end_sync(&mut self, result: std::io::Result<()>) -> std::io::Result<()> {
        if let Err(e) = &result {
            // After an I/O failure, stay failed: what the sync covered is unknown.
            self.failed = Some(e.to_string());
        }
        result
    }
}

impl MappedRegion {
    /// Writes every stored, unwritten range of a privately mapped region to its file
    /// ([`Unwritten::write_out`]). A failed write fails the region, as a failed sync
    /// does: the next order or fence reports it.
    fn write_out(&mut self) {
        if self.failed.is_some() {
            self.unwritten.clear();
            return;
        }
        // SAFETY: ptr and len describe this region's live mapping.
        if let Err(reason) = unsafe { self.unwritten.write_out(&self.file, self.ptr, self.len) } {
            self.failed = Some(reason);
        }
    }
}

/// Writes zeros over the whole file and syncs it once. `posix_fallocate` leaves
/// unwritten extents: the first write to each block then converts it, and the sync
/// that makes that write durable also commits the conversion to the file system's
/// journal. `tools/sync_primitives.rs` measured that on ext4 here (p50 3,998 us
/// fallocated, 2,327 us zero-filled, mapping + fdatasync); a file synced to disk
/// pays the conversion once, at creation, instead of on every commit to a new block.
fn write_zeros(file: &File, len_bytes: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len_bytes {
        let n = (len_bytes - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_file_region_is_created_preallocated_and_reports_process_crash_durability() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pmem");
        let mut region = MappedRegion::create(&path, 1 << 20, &RegionOptions::default()).unwrap();
        assert_eq!(region.info().kind, RegionKind::File);
        assert_eq!(region.info().durability, Durability::ProcessCrash);
        region.write(4096, b"hello");
        region.flush(4096, 5);
        region.fence().unwrap();
        drop(region);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 1 << 20);
        assert_eq!(&bytes[4096..4101], b"hello");
        // Preallocated: the blocks exist before any store.
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.blocks() * 512 >= 1 << 20);
    }

    #[test]
    fn creating_over_an_existing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pmem");
        std::fs::write(&path, b"precious").unwrap();
        let err = MappedRegion::create(&path, 1 << 20, &RegionOptions::default())
            .err()
            .unwrap();
        assert!(matches!(err, RegionError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn a_second_writer_is_locked_out_but_a_reader_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pmem");
        let _first = MappedRegion::create(&path, 1 << 20, &RegionOptions::default()).unwrap();
        let err = MappedRegion::open(&path, &RegionOptions::default())
            .err()
            .unwrap();
        assert!(matches!(err, RegionError::Locked { .. }), "{err}");
        let reader = MappedRegion::open(
            &path,
            &RegionOptions {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(reader.bytes().len(), 1 << 20);
    }

    #[test]
    fn disk_mode_is_deferred_and_syncs_the_file_it_maps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pmem");
        let options = RegionOptions {
            file_sync: FileSync::Disk,
            ..Default::default()
        };
        let mut region = MappedRegion::create(&path, 1 << 20, &options).unwrap();
        assert_eq!(region.durability(), Durability::Disk);
        assert!(region.deferred());
        region.write(100_000, b"durable");
        region.flush(100_000, 7);
        region.order().unwrap();
        let request = region.begin_sync();
        let fd = request.fd.expect("the region's file");
        // What a reactor does with the request: fdatasync the descriptor.
        // SAFETY: a plain syscall on a descriptor the region keeps open.
        let synced = unsafe { libc::fdatasync(fd) };
        region
            .end_sync(if synced == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            })
            .unwrap();
        region.fence().unwrap();
        // A failed sync fails the region for good.
        assert!(region
            .end_sync(Err(std::io::Error::from_raw_os_error(libc::EIO)))
            .is_err());
        assert!(region.order().is_err() && region.fence().is_err());
    }

    #[test]
    fn tiny_files_and_directories_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let err = MappedRegion::open(&path, &RegionOptions::default())
            .err()
            .unwrap();
        assert!(matches!(err, RegionError::TooSmall { .. }), "{err}");
        let err = MappedRegion::open(dir.path(), &RegionOptions::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("region"), "{err}");
    }
}
