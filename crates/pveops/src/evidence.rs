//! The evidence bundle: a directory with the report, the snapshot(s) and every command's raw
//! output (`raw/<node>/<name>.stdout`, `<name>.stderr` when not empty, one `meta.json` per
//! node), each file written atomically and the whole made durable by one `syncfs` at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::collect::Raw;

/// An evidence directory being written.
/// Writes raw outputs into a bundle on a thread of its own while the collection goes on, each
/// node's as soon as it has answered (`collect::Collector::raw_sink`). The bundle is created
/// when the first outputs arrive, or at `finish`: a run that fails before any node answered
/// leaves no empty directory.
pub struct RawWriter {
    tx: std::sync::mpsc::Sender<Vec<Raw>>,
    thread: std::thread::JoinHandle<Result<Option<Bundle>, crate::Error>>,
    create: std::sync::Arc<dyn Fn() -> Result<Bundle, crate::Error> + Send + Sync>,
}

impl RawWriter {
    pub fn start(
        create: impl Fn() -> Result<Bundle, crate::Error> + Send + Sync + 'static,
    ) -> RawWriter {
        let create: std::sync::Arc<dyn Fn() -> Result<Bundle, crate::Error> + Send + Sync> =
            std::sync::Arc::new(create);
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Raw>>();
        let open = create.clone();
        let thread = std::thread::spawn(move || {
            let mut bundle: Option<Bundle> = None;
            for raws in rx {
                if raws.is_empty() {
                    continue;
                }
                let mut b = match bundle.take() {
                    Some(b) => b,
                    None => open()?,
                };
                b.write_raw(&raws)?;
                bundle = Some(b);
            }
            Ok(bundle)
        });
        RawWriter { tx, thread, create }
    }

    /// Where to send each node's raw outputs.
    pub fn sink(&self) -> std::sync::mpsc::Sender<Vec<Raw>> {
        self.tx.clone()
    }

    /// Waits until everything sent is written (every sink must be dropped first); the bundle,
    /// created now if nothing had arrived, or the first error writing it.
    pub fn finish(self) -> Result<Bundle, crate::Error> {
        let create = self.create.clone();
        match self.stop()? {
            Some(b) => Ok(b),
            None => create(),
        }
    }

    /// Waits until everything sent is written; the bundle when anything was, creating none.
    pub fn stop(self) -> Result<Option<Bundle>, crate::Error> {
        drop(self.tx);
        self.thread.join().unwrap_or_else(|_| {
            Err(crate::Error::io(
                Path::new("pveops-evidence"),
                "write the raw outputs to",
                std::io::Error::other("the writer thread panicked"),
            ))
        })
    }
}

pub struct Bundle {
    pub dir: PathBuf,
    /// Raw files written, in order: (relative path of .stdout, command, exit code).
    pub raw_files: Vec<(String, String, Option<u32>)>,
    /// How often each (node, name) was used in this bundle: the second gets `-2`.
    used: HashMap<(String, String), u32>,
    /// `raw/<node>/meta.json`: per node, one object per command name.
    meta: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl Bundle {
    /// Creates `out`, or `./pveops-evidence/<UTC time>-<command>[-<target>]/` (with `-2`, `-3`…
    /// when that exists already).
    pub fn create(
        out: Option<&Path>,
        command: &str,
        target: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<Bundle, crate::Error> {
        if let Some(dir) = out {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::Error::io(dir, "create the evidence directory", e))?;
            return Ok(Bundle::at(dir.to_path_buf()));
        }
        let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let mut base = format!("{stamp}-{command}");
        if let Some(t) = target {
            base.push('-');
            base.push_str(&safe(t));
        }
        let root = Path::new("pveops-evidence");
        std::fs::create_dir_all(root)
            .map_err(|e| crate::Error::io(root, "create the evidence directory", e))?;
        for n in 1.. {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = root.join(name);
            // create_dir (not _all) claims the name: two runs in the same second never share it.
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Bundle::at(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(crate::Error::io(&dir, "create the evidence directory", e)),
            }
        }
        unreachable!("the loop only ends by returning")
    }

    /// Like `create`, for an operation: an `out` directory that holds an earlier run's
    /// evidence keeps it, moved whole into `earlier-<UTC stamp>/` inside it (said on stderr),
    /// so nothing is overwritten and this run's journal is its own; and the directory is
    /// written to once, so one that cannot be written is found before the first change.
    pub fn create_fresh(
        out: Option<&Path>,
        command: &str,
        target: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<Bundle, crate::Error> {
        if let Some(dir) = out {
            keep_earlier(dir, now)?;
        }
        let b = Self::create(out, command, target, now)?;
        let probe = b.dir.join(".pveops-write-test");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| crate::Error::io(&b.dir, "write into the evidence directory", e))?;
        Ok(b)
    }

    fn at(dir: PathBuf) -> Bundle {
        Bundle {
            dir,
            raw_files: Vec::new(),
            used: HashMap::new(),
            meta: BTreeMap::new(),
        }
    }

    /// Writes one file of the bundle, atomically; [`Bundle::sync`] makes it durable.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, crate::Error> {
        let path = self.dir.join(name);
        crate::atomic::write_batched(&path, bytes, Some(0o644))?;
        Ok(path)
    }

    /// Flushes every file written so far to disk with one `syncfs(2)`: called once at the end
    /// of a run, and by an operation before its first change.
    pub fn sync(&self) -> Result<(), crate::Error> {
        crate::atomic::sync_filesystem(&self.dir)
    }

    fn write_batched(&self, name: &str, bytes: &[u8]) -> Result<(), crate::Error> {
        crate::atomic::write_batched(&self.dir.join(name), bytes, Some(0o644))
    }

    /// The name a command's files get on `node`: its own the first time, then `-2`, `-3`.
    fn claim(&mut self, node: &str, name: &str) -> String {
        let count = self
            .used
            .entry((node.to_string(), name.to_string()))
            .or_insert(0);
        *count += 1;
        if *count == 1 {
            safe(name)
        } else {
            format!("{}-{count}", safe(name))
        }
    }

    /// `raw/<node>/meta.json` as it stands.
    fn meta_file(&self, node: &str) -> Option<(String, Vec<u8>)> {
        let m = self.meta.get(node)?;
        let text = serde_json::to_string_pretty(m).unwrap_or_default();
        Some((format!("raw/{}/meta.json", safe(node)), text.into_bytes()))
    }

    /// Writes one text an operation kept from a node (the log of a detached `apt-get -y
    /// dist-upgrade`, the output of `apt-get update`) as `raw/<node>/<name>`, listed with the
    /// raw outputs in the report.
    pub fn write_node_text(
        &mut self,
        node: &str,
        name: &str,
        command: &str,
        exit_code: Option<u32>,
        text: &str,
    ) -> Result<(), crate::Error> {
        let dir = self.dir.join("raw").join(safe(node));
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::Error::io(&dir, "create the evidence directory", e))?;
        let name = self.claim(node, name);
        let rel = format!("raw/{}/{name}", safe(node));
        self.write(&rel, text.as_bytes())?;
        self.raw_files
            .push((rel.clone(), command.to_string(), exit_code));
        self.meta.entry(node.to_string()).or_default().insert(
            name,
            json!({ "command": command, "exit_code": exit_code, "file": rel }),
        );
        if let Some((path, bytes)) = self.meta_file(node) {
            self.write(&path, &bytes)?;
        }
        Ok(())
    }

    /// Writes every raw output; a name used twice on a node in this bundle gets `-2`, `-3`.
    /// An empty stderr gets no file; each node's `meta.json` holds one object per name. The
    /// files are written by a few threads at once: creating a file is the costly part on some
    /// filesystems (0.7 ms each on the ext4 this was measured on).
    pub fn write_raw(&mut self, raws: &[Raw]) -> Result<(), crate::Error> {
        let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(raws.len() + 8);
        let mut touched: Vec<String> = Vec::new();
        for r in raws {
            let name = self.claim(&r.node, &r.name);
            let dir = format!("raw/{}", safe(&r.node));
            let meta = match &r.output {
                Ok(o) => {
                    files.push((format!("{dir}/{name}.stdout"), o.stdout.clone()));
                    if !o.stderr.is_empty() {
                        files.push((format!("{dir}/{name}.stderr"), o.stderr.clone()));
                    }
                    json!({
                        "command": r.command,
                        "exit_code": o.exit_code(),
                        "signal": o.signal(),
                        "started_at": o.started_at.to_string(),
                        "duration_ms": o.duration.as_millis() as u64,
                        "truncated": o.truncated,
                        "error": null,
                    })
                }
                Err(e) => {
                    files.push((format!("{dir}/{name}.stdout"), Vec::new()));
                    json!({
                        "command": r.command,
                        "exit_code": null,
                        "signal": null,
                        "started_at": null,
                        "duration_ms": null,
                        "truncated": false,
                        "error": e,
                    })
                }
            };
            self.meta
                .entry(r.node.clone())
                .or_default()
                .insert(name.clone(), meta);
            if !touched.contains(&r.node) {
                touched.push(r.node.clone());
            }
            let code = r.output.as_ref().ok().and_then(|o| o.exit_code());
            self.raw_files
                .push((format!("{dir}/{name}.stdout"), r.command.clone(), code));
        }
        files.extend(touched.iter().filter_map(|n| self.meta_file(n)));
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let this = &*self;
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let files = &files;
                    scope.spawn(move || {
                        files
                            .iter()
                            .skip(w)
                            .step_by(workers)
                            .try_for_each(|(name, bytes)| this.write_batched(name, bytes))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(crate::Error::io(
                            &this.dir,
                            "write the raw outputs to",
                            std::io::Error::other("a writer thread panicked"),
                        ))
                    })
                })
                .collect::<Result<Vec<()>, _>>()
        })?;
        Ok(())
    }
}

/// A path component from a node, target or command name, kept to `[A-Za-z0-9._-]` so the
/// evidence copies to any filesystem (no `@`, `:`, `/`, spaces or control characters; each
/// other character becomes `_`), never starting with a dot.
pub fn safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() { "_".into() } else { out }
}

/// The names a bundle writes at its top level: an earlier run's are moved aside, not
/// overwritten; any other file in the directory is left alone.
const BUNDLE_NAMES: &[&str] = &[
    "report.md",
    "snapshot.json",
    "before.json",
    "after.json",
    "runbook.md",
    "journal.jsonl",
    "raw",
];

/// Moves an earlier run's evidence in `dir` into `dir/earlier-<stamp>/`.
fn keep_earlier(dir: &Path, now: jiff::Timestamp) -> Result<(), crate::Error> {
    let present: Vec<&str> = BUNDLE_NAMES
        .iter()
        .copied()
        .filter(|n| dir.join(n).symlink_metadata().is_ok())
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut aside = dir.join(format!("earlier-{stamp}"));
    for n in 2.. {
        if std::fs::create_dir(&aside).is_ok() {
            break;
        }
        if n > 100 {
            return Err(crate::Error::file(
                dir,
                "cannot make a directory to keep the earlier run's evidence in; name a new directory with --out",
            ));
        }
        aside = dir.join(format!("earlier-{stamp}-{n}"));
    }
    for n in present {
        std::fs::rename(dir.join(n), aside.join(n))
            .map_err(|e| crate::Error::io(&dir.join(n), "keep the earlier run's evidence", e))?;
    }
    eprintln!(
        "{} held an earlier run's evidence; it is kept in {}",
        dir.display(),
        aside.display()
    );
    Ok(())
}
