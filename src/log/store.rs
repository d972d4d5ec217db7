//! Opening and creating a log stored in a file or device, with the path in every error.

use super::format::{self, FormatError, LogConfig};
use super::scan::{Progress, RecoveryReport};
use super::{Log, LogError};
use crate::pmem::{MappedRegion, RegionError, RegionOptions};
use std::path::{Path, PathBuf};

/// Options for [`open_path`] and [`create_file`].
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// How the region is mapped.
    pub region: RegionOptions,
    /// Geometry for a region that is created.
    pub config: LogConfig,
}

/// A failure to open or create a log, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The region could not be mapped.
    #[error(transparent)]
    Region(#[from] RegionError),
    /// The region's contents are not a usable herald log.
    #[error("region {path}: {source}")]
    Format {
        /// The region path.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
    /// Formatting was refused to protect what is there.
    #[error("region {path}: {reason}; nothing was written (add --force to format it anyway)")]
    Refused {
        /// The region path.
        path: PathBuf,
        /// What is there.
        reason: &'static str,
    },
    /// A write during open or format failed.
    #[error("region {path}: {source}")]
    Log {
        /// The region path.
        path: PathBuf,
        /// What failed.
        source: LogError,
    },
}

fn with_path(path: &Path) -> impl Fn(LogError) -> OpenError + '_ {
    move |e| match e {
        LogError::Format(source) => OpenError::Format {
            path: path.to_owned(),
            source,
        },
        other => OpenError::Log {
            path: path.to_owned(),
            source: other,
        },
    }
}

/// Opens an existing region (file or device-DAX node) and recovers it.
pub fn open_path(
    path: &Path,
    options: &RegionOptions,
    progress: Progress<'_>,
) -> Result<(Log<MappedRegion>, RecoveryReport), OpenError> {
    let region = MappedRegion::open(path, options)?;
    Log::open(region, progress).map_err(with_path(path))
}

/// Creates a new region file of `region_bytes` and formats it. The file appears at
/// `path` only once fully formatted and synced (it is built under a temporary name and
/// renamed), so a crash during creation never leaves a half-formatted region behind.
pub fn create_file(
    path: &Path,
    region_bytes: u64,
    options: &StoreOptions,
    node_id: u64,
) -> Result<Log<MappedRegion>, OpenError> {
    if path.exists() {
        return Err(RegionError::Exists {
            path: path.to_owned(),
        }
        .into());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".creating");
    let tmp = PathBuf::from(tmp);
    // A leftover from a crash during an earlier creation holds nothing acknowledged.
    let _ = std::fs::remove_file(&tmp);
    // Planned before the file exists, so a configuration that cannot be formatted
    // leaves nothing behind.
    let geometry = format::plan(region_bytes, &options.config, node_id, super::now_unix_ns())
        .map_err(|source| OpenError::Format {
            path: path.to_owned(),
            source,
        })?;
    let mut region = MappedRegion::create(&tmp, region_bytes, &options.region)?;
    let io = |source: std::io::Error| OpenError::Log {
        path: path.to_owned(),
        source: LogError::Failed(source.to_string()),
    };
    format::format(&mut region, &geometry).map_err(io)?;
    region.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    region.set_path(path);
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    let (log, _) = Log::open(region, &mut |_, _| {}).map_err(with_path(path))?;
    Ok(log)
}

/// Formats an existing file or device (a device-DAX node must be formatted before its
/// first use). Refuses, writing nothing, if it holds a herald region or any non-zero
/// byte in its first page, unless `force`.
pub fn format_existing(
    path: &Path,
    options: &StoreOptions,
    node_id: u64,
    force: bool,
) -> Result<Log<MappedRegion>, OpenError> {
    use crate::pmem::Medium;
    let region = MappedRegion::open(path, &options.region)?;
    if !force {
        let bytes = region.bytes();
        let first_page = &bytes[..bytes.len().min(format::SUPERBLOCK_PROBE_BYTES)];
        if format::read_geometry(bytes).is_ok() {
            return Err(OpenError::Refused {
                path: path.to_owned(),
                reason: "it already holds a herald region (formatting would discard its events)",
            });
        }
        if first_page.iter().any(|b| *b != 0) {
            return Err(OpenError::Refused {
                path: path.to_owned(),
                reason: "it is not empty (its first page holds data that is not a herald region)",
            });
        }
    }
    let mut log = Log::format(region, &options.config, node_id).map_err(with_path(path))?;
    log.medium_mut().sync_all().map_err(|e| OpenError::Log {
        path: path.to_owned(),
        source: LogError::Failed(e.to_string()),
    })?;
    Ok(log)
}
