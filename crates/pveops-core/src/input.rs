//! Reading the files a user points pveops at (inventory, ssh config, known_hosts, checks,
//! templates, snapshots, journals, parser input): bounded in size and decoded as UTF-8, so a
//! wrong path (`/dev/zero`, a multi-gigabyte log, a binary) is one clear error, never an
//! out-of-memory kill or a read that does not end.

use std::io::{ErrorKind, Read};
use std::path::Path;

/// Configuration-sized files: inventory, ssh config, one check or template file.
pub const MAX_CONFIG: u64 = 16 * 1024 * 1024;
/// known_hosts of large fleets (a line is about 100 bytes: over half a million hosts).
pub const MAX_KNOWN_HOSTS: u64 = 64 * 1024 * 1024;
/// Documents pveops wrote itself (snapshots, journals) and captured command output: a
/// 200-node snapshot is about 7 MiB.
pub const MAX_DOCUMENT: u64 = 256 * 1024 * 1024;

/// `std::fs::read_to_string`, refusing more than `max` bytes (`ErrorKind::FileTooLarge`).
pub fn read_to_string(path: &Path, max: u64) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    read_limited(file, max)
}

/// Reads a stream to its end, refusing more than `max` bytes or text that is not UTF-8.
pub fn read_limited(stream: impl Read, max: u64) -> std::io::Result<String> {
    let bytes = read_bytes(stream, max)?;
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {}) — is this the right file?",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads a stream to its end, refusing more than `max` bytes.
pub fn read_bytes(stream: impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    // One byte past the limit tells "exactly max" from "more"; a character device such as
    // /dev/zero (whose metadata says 0 bytes) is stopped here too.
    stream.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            ErrorKind::FileTooLarge,
            format!("larger than {} — is this the right file?", human(max)),
        ));
    }
    Ok(bytes)
}

fn human(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_more_than_the_limit_and_non_utf8() {
        assert_eq!(read_limited(&b"abc"[..], 3).unwrap(), "abc");
        let e = read_limited(&b"abcd"[..], 3).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FileTooLarge);
        assert_eq!(
            e.to_string(),
            "larger than 3 bytes — is this the right file?"
        );
        let e = read_limited(&b"ok\xff"[..], 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(e.to_string().contains("offset 2"), "{e}");
        let e = read_to_string(Path::new("/dev/zero"), MAX_CONFIG).unwrap_err();
        assert_eq!(
            e.to_string(),
            "larger than 16 MiB — is this the right file?"
        );
    }
}
