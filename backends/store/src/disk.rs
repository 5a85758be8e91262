//! The free space of the filesystem that holds a database: for the operator's disk-full
//! message, and for engines that report a full disk only as an I/O error.

use std::path::Path;

/// Below this, an I/O error on a write is taken for a full disk whatever the write needed:
/// an engine's own estimate of its pages can be low, and a filesystem this close to full
/// fails writes for lack of room before anything else.
const NEARLY_FULL_BYTES: u64 = 1 << 20;

/// Bytes an unprivileged writer can still use on the filesystem holding `path` (statvfs's
/// available blocks, what `df` shows as "Avail"), or `None` where that cannot be told.
#[cfg(unix)]
pub fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `stat` points to
    // writable memory of the struct statvfs fills; it is read only after statvfs succeeded.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    let (blocks, block_size) = (stat.f_bavail as u64, stat.f_frsize as u64);
    Some(blocks.saturating_mul(block_size))
}

/// Bytes an unprivileged writer can still use on the filesystem holding `path`: not known on
/// this platform.
#[cfg(not(unix))]
pub fn free_space(_path: &Path) -> Option<u64> {
    None
}

/// Whether an I/O error from a write that needed about `needed` bytes under `path` means the
/// filesystem is full. LMDB reports a short write as EIO ("short write, filesystem full?" in
/// its source) and SQLite some failures to grow a file as SQLITE_IOERR, so the engine's code
/// alone cannot tell; the free space can.
pub fn io_error_is_full_disk(path: &Path, needed: u64) -> bool {
    free_space(path).is_some_and(|free| free < needed.max(NEARLY_FULL_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_directory_has_free_space_and_a_missing_path_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(dir.path()).expect("statvfs of a temporary directory");
        assert!(free > 0);
        assert_eq!(free_space(&dir.path().join("absent")), None);
        assert!(!io_error_is_full_disk(&dir.path().join("absent"), 1));
        // More than the filesystem could ever hold is always "full".
        assert!(io_error_is_full_disk(dir.path(), u64::MAX));
    }
}
