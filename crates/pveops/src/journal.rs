//! The journal file of an operation (`journal.jsonl`): each line appended and fsynced before
//! the step goes on, so a crash or Ctrl-C leaves an exact record of what was done. What a line
//! holds is `pveops_core::journal`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use pveops_core::journal::*;

/// An open journal file, appended to line by line.
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    pub fn create(path: &Path) -> Result<Journal, crate::Error> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| crate::Error::io(path, "open the journal", e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and syncs it to disk before returning.
    pub fn write(&mut self, e: &Entry) -> Result<(), crate::Error> {
        let mut line = serde_json::to_string(e).unwrap_or_default();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|err| crate::Error::io(&self.path, "write the journal", err))?;
        self.file
            .sync_data()
            .map_err(|err| crate::Error::io(&self.path, "sync the journal", err))
    }
}
