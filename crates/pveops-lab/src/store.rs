//! The state file on disk, shared by every simulated node: read, changed and written back under
//! an exclusive `flock`, written whole (temp file + rename) so a reader never sees half a state.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::state::Cluster;

/// Seconds since the Unix epoch, as the state's event times are kept.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An exclusive lock on the state, held until dropped.
pub struct Locked {
    _lock: File,
    path: PathBuf,
    pub cluster: Cluster,
    /// True when `open` applied due events (the state should be saved).
    pub changed: bool,
}

impl Locked {
    /// Locks the state at `path`, reads it and applies the events that are due.
    pub fn open(path: &Path) -> Result<Locked, String> {
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        // SAFETY: flock on a file descriptor we own; it blocks until the lock is ours.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(format!(
                "cannot lock {}: {}",
                lock_path.display(),
                std::io::Error::last_os_error()
            ));
        }
        let mut cluster = read(path)?;
        let pending = cluster.events.len();
        cluster.advance(now());
        let changed = cluster.events.len() != pending;
        Ok(Locked {
            _lock: lock,
            path: path.to_path_buf(),
            cluster,
            changed,
        })
    }

    /// Writes the state back (the lock is released when `self` is dropped).
    pub fn save(&self) -> Result<(), String> {
        write(&self.path, &self.cluster)
    }
}

/// Reads a state file without locking (for a first look; changes go through `Locked`).
pub fn read(path: &Path) -> Result<Cluster, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the lab state {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("invalid lab state {}: {e}", path.display()))
}

/// Writes a state file atomically.
pub fn write(path: &Path, cluster: &Cluster) -> Result<(), String> {
    let text = serde_json::to_string_pretty(cluster).map_err(|e| e.to_string())?;
    write_file(path, text.as_bytes(), None).map_err(|e| e.to_string())
}

/// Writes a lab file whole or not at all (a temporary file renamed over it): the tools of
/// every node read the state while others write it. `mode` sets Unix permissions.
pub fn write_file(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), pveops_core::Error> {
    use std::io::Write;
    let io = |what: &'static str| move |e: std::io::Error| pveops_core::Error::io(path, what, e);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(io("create a temporary file for"))?;
    tmp.write_all(bytes).map_err(io("write"))?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(io("set permissions on"))?;
    }
    tmp.persist(path)
        .map_err(|e| io("rename into place")(e.error))?;
    Ok(())
}
