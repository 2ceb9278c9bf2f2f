//! Files written whole or not at all: a temporary file in the same directory, fsynced, then
//! renamed over the target. Every file pveops writes goes through here.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating parent directories; `mode` sets Unix
/// permissions on the new file.
pub fn write(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), crate::Error> {
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
    tmp.as_file()
        .sync_all()
        .map_err(|e| crate::Error::io(path, "sync", e))?;
    tmp.persist(path)
        .map_err(|e| crate::Error::io(path, "rename into place", e.error))?;
    Ok(())
}
