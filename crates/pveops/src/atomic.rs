//! Files written whole or not at all: a temporary file in the same directory, fsynced, then
//! renamed over the target. Every file pveops writes goes through here.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating parent directories; `mode` sets Unix
/// permissions on the new file.
pub fn write(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), crate::Error> {
    write_inner(path, bytes, mode, true)
}

/// Like `write` but without the fsync, for the many raw files of a bundle: still atomic (a
/// reader sees all or nothing), made durable together by one `sync_filesystem` at the end
/// instead of one fsync each (1 500 fsyncs for 50 nodes took seconds).
pub fn write_batched(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), crate::Error> {
    write_inner(path, bytes, mode, false)
}

/// Flushes everything written to the filesystem holding `dir` (`syncfs(2)`).
pub fn sync_filesystem(dir: &Path) -> Result<(), crate::Error> {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(dir).map_err(|e| crate::Error::io(dir, "open for sync", e))?;
    // SAFETY: syncfs on a file descriptor we own for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(crate::Error::io(
            dir,
            "sync",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn write_inner(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
    sync: bool,
) -> Result<(), crate::Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, "create the directory", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".pveops-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| crate::Error::io(dir, "create a temporary file in", e))?;
    tmp.write_all(bytes)
        .map_err(|e| crate::Error::io(path, "write", e))?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
            .map_err(|e| crate::Error::io(path, "set permissions on", e))?;
    }
    if sync {
        tmp.as_file()
            .sync_all()
            .map_err(|e| crate::Error::io(path, "sync", e))?;
    }
    tmp.persist(path)
        .map_err(|e| crate::Error::io(path, "rename into place", e.error))?;
    Ok(())
}
