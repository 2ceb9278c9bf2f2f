//! Stamps the build with a hash of the simulator's sources (this crate's `src/`), so the lab
//! can tell whether the tools-only binary beside `pveops` was built from the same sources
//! (`cargo run` rebuilds only `pveops`).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

fn hash_dir(dir: &Path, h: &mut DefaultHasher) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            hash_dir(&p, h);
        } else if let Ok(bytes) = std::fs::read(&p) {
            p.to_string_lossy().hash(h);
            bytes.hash(h);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=src");
    let mut h = DefaultHasher::new();
    hash_dir(Path::new("src"), &mut h);
    println!("cargo:rustc-env=PVEOPS_SOURCE_ID={:016x}", h.finish());
}
