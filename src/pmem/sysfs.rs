//! Size and alignment of a device-DAX node, read from sysfs.
//!
//! `fstat` on `/dev/daxX.Y` reports size 0, so the kernel's own view is read from
//! `/sys/dev/char/MAJOR:MINOR/size` and `.../align` (newer kernels) or
//! `.../device/align` (older ones). The kernel refuses mappings whose length or offset
//! is not a multiple of that alignment, which is often 2 MiB.

use std::path::{Path, PathBuf};

/// Geometry of a device-DAX node.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DeviceDaxGeometry {
    /// Usable bytes of the device.
    pub size_bytes: u64,
    /// Required alignment of mapping offset and length.
    pub align_bytes: u64,
}

/// Reads the geometry of the character device `major:minor` under `sysfs_root`
/// (normally `/sys`; tests pass a fake tree).
pub fn device_dax_geometry(
    sysfs_root: &Path,
    major: u32,
    minor: u32,
) -> Result<DeviceDaxGeometry, String> {
    let dir = sysfs_root.join("dev/char").join(format!("{major}:{minor}"));
    let size_bytes = read_u64(&dir.join("size"))?;
    let align_candidates: [PathBuf; 2] = [dir.join("align"), dir.join("device/align")];
    let align_bytes = align_candidates
        .iter()
        .find(|p| p.exists())
        .map(|p| read_u64(p))
        .transpose()?
        // Without an align attribute the kernel predates configurable alignment and
        // uses 2 MiB for device-DAX namespaces.
        .unwrap_or(2 << 20);
    if align_bytes == 0 || !align_bytes.is_power_of_two() {
        return Err(format!(
            "{}: alignment {align_bytes} is not a power of two",
            dir.display()
        ));
    }
    if size_bytes < align_bytes {
        return Err(format!(
            "{}: device size {size_bytes} is smaller than its alignment {align_bytes}",
            dir.display()
        ));
    }
    Ok(DeviceDaxGeometry {
        size_bytes: size_bytes - size_bytes % align_bytes,
        align_bytes,
    })
}

fn read_u64(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{}: expected a number, found {text:?}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(size: &str, align: Option<(&str, &str)>) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("dev/char/251:3");
        std::fs::create_dir_all(dir.join("device")).unwrap();
        std::fs::write(dir.join("size"), size).unwrap();
        if let Some((file, value)) = align {
            std::fs::write(dir.join(file), value).unwrap();
        }
        root
    }

    #[test]
    fn device_dax_size_is_rounded_down_to_its_alignment() {
        let root = fake_sysfs("6442450944\n", Some(("align", "2097152\n")));
        let g = device_dax_geometry(root.path(), 251, 3).unwrap();
        assert_eq!(g.align_bytes, 2 << 20);
        assert_eq!(g.size_bytes, 6442450944);
        let root = fake_sysfs("3146000\n", Some(("device/align", "0x200000")));
        let g = device_dax_geometry(root.path(), 251, 3).unwrap();
        assert_eq!(g.size_bytes, 2 << 20);
    }

    #[test]
    fn device_dax_without_align_attribute_assumes_two_mebibytes() {
        let root = fake_sysfs("8388608", None);
        let g = device_dax_geometry(root.path(), 251, 3).unwrap();
        assert_eq!(g.align_bytes, 2 << 20);
    }

    #[test]
    fn device_dax_with_bad_attributes_is_a_clear_error() {
        let root = fake_sysfs("lots", None);
        let e = device_dax_geometry(root.path(), 251, 3).unwrap_err();
        assert!(e.contains("expected a number"), "{e}");
        let root = fake_sysfs("8388608", Some(("align", "3000")));
        let e = device_dax_geometry(root.path(), 251, 3).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
        let e = device_dax_geometry(root.path(), 9, 9).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }
}
