//! Remote commands: handlebars templates (`templates/commands/*.hbs`, embedded, overridable with
//! `--templates DIR`) rendered in strict mode with every value shell-quoted, and the wrapper
//! that runs each command on the node under `timeout` with `LC_ALL=C.UTF-8` (and `sudo -n`).
//!
//! No shell string is built any other way: a value cannot change a command's meaning.

use std::path::Path;
use std::time::Duration;

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use rust_embed::RustEmbed;
use serde_json::Value;

#[derive(RustEmbed)]
#[folder = "../../templates/commands/"]
struct Embedded;

/// Seconds between the remote `timeout`'s TERM and its KILL.
const KILL_AFTER_SECS: u64 = 5;

/// A rendered command, ready to send.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Command {
    /// The template name (`pvecm-status`), used for raw evidence file names.
    pub name: String,
    /// The shell text as the node's shell will read it.
    pub script: String,
}

impl Command {
    /// The words `timeout` starts directly when this is a plain command line of ours: no
    /// second shell, one process fewer on the node. The operator's own line always gets the
    /// shell, as `ssh host LINE` would.
    pub fn argv(&self) -> Option<Vec<String>> {
        (self.name != OPERATOR)
            .then(|| plain_argv(&self.script))
            .flatten()
    }

    /// A command typed by the operator (`pveops exec`): the words joined with spaces and run
    /// by the node's shell, as `ssh host WORDS…` does.
    pub fn operator(words: &[String]) -> Command {
        Command {
            name: OPERATOR.into(),
            script: words.join(" "),
        }
    }
}

/// The command template registry.
pub struct Templates {
    hb: Handlebars<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.names())
            .finish()
    }
}

impl Templates {
    /// The embedded templates, then every `*.hbs` of `dir` (or `dir/commands/`) over them.
    pub fn load(dir: Option<&Path>) -> Result<Templates, crate::Error> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(quote);
        hb.register_helper("args", Box::new(args_helper));
        for name in Embedded::iter() {
            let Some(file) = Embedded::get(&name) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".hbs") else {
                continue;
            };
            let text = String::from_utf8_lossy(&file.data).into_owned();
            register(&mut hb, stem, &text, Path::new(name.as_ref()))?;
        }
        if let Some(dir) = dir {
            let dir = if dir.join("commands").is_dir() {
                dir.join("commands")
            } else {
                dir.to_path_buf()
            };
            register_dir(&mut hb, &dir)?;
        }
        Ok(Templates { hb })
    }

    /// Every template name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.hb.get_templates().keys().cloned().collect();
        v.sort();
        v
    }

    /// Renders template `name` with `data`; every interpolated value is shell-quoted.
    pub fn render(&self, name: &str, data: &Value) -> Result<Command, crate::Error> {
        let err = |message: String| crate::Error::Template {
            name: name.to_string(),
            message,
        };
        if !self.hb.has_template(name) {
            return Err(err("no such template".into()));
        }
        if contains_nul(data) {
            return Err(err(
                "a value contains a NUL byte, which no shell argument can carry".into(),
            ));
        }
        let text = self
            .hb
            .render(name, data)
            .map_err(|e| err(render_message(&e)))?;
        Ok(Command {
            name: name.to_string(),
            script: text.trim().to_string(),
        })
    }

    /// The line sent to the node: `command` under `timeout` (killed on the node after `limit`),
    /// with `LC_ALL=C.UTF-8`, through `sudo -n` when asked.
    pub fn remote_line(
        &self,
        command: &Command,
        limit: Duration,
        sudo: bool,
    ) -> Result<String, crate::Error> {
        let data = serde_json::json!({
            "script": command.script,
            "argv": command.argv(),
            "timeout": limit.as_secs().max(1),
            "kill_after": KILL_AFTER_SECS,
            "sudo": sudo,
            // The node-side runner is POSIX sh: dash on PVE, lighter to fork than bash.
            "posix": command.name == BATCH,
        });
        Ok(self.render("wrap", &data)?.script)
    }
}

/// The node-side runner's template (`batch.hbs`).
pub const BATCH: &str = "batch";

/// The name of the operator's own command (`pveops exec`).
pub const OPERATOR: &str = "exec";

/// Shell builtins without a program of the same name: these need the shell.
const BUILTINS: &[&str] = &[
    ":", ".", "alias", "break", "cd", "command", "continue", "eval", "exec", "exit", "export",
    "getopts", "hash", "jobs", "local", "read", "readonly", "return", "set", "shift", "source",
    "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "wait",
];

/// The words of `script` when the shell would do nothing but split it on spaces: only
/// characters no shell gives a meaning to (no quotes, `$`, globs, `~`, redirections,
/// operators, `#`), and a first word that is neither a builtin nor an assignment.
pub fn plain_argv(script: &str) -> Option<Vec<String>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || " _./:=,@%+-".contains(c);
    if !script.chars().all(plain) {
        return None;
    }
    let words: Vec<String> = script
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    let first = words.first()?;
    if first.contains('=') || BUILTINS.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

/// Seconds the remote `timeout` may take beyond the limit before the process is gone.
pub const fn kill_after() -> Duration {
    Duration::from_secs(KILL_AFTER_SECS)
}

/// Registers every `*.hbs` of `dir` under its file stem, over any template of that name.
pub(crate) fn register_dir(hb: &mut Handlebars<'static>, dir: &Path) -> Result<(), crate::Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| crate::Error::io(dir, "read the templates directory", e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| crate::Error::io(dir, "read the templates directory", e))?
            .path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".hbs"))
        else {
            continue;
        };
        let text = crate::input::read_to_string(&path, crate::input::MAX_CONFIG)
            .map_err(|e| crate::Error::io(&path, "read the template", e))?;
        register(hb, stem, &text, &path)?;
    }
    Ok(())
}

/// Registers one template, refusing the forms that bypass the escape function.
pub(crate) fn register(
    hb: &mut Handlebars<'static>,
    name: &str,
    text: &str,
    path: &Path,
) -> Result<(), crate::Error> {
    // `{{{x}}}` and `{{&x}}` bypass the escape function: in a command they would put a raw
    // value into a shell command (CRATES.md P19), in a report raw markup; refuse them outright.
    if text.contains("{{{") || text.contains("{{&") || text.contains("{{~{") {
        return Err(crate::Error::file(
            path,
            "unescaped output (`{{{` or `{{&`) is not allowed in templates",
        ));
    }
    hb.register_template_string(name, text)
        .map_err(|e| crate::Error::Template {
            name: name.to_string(),
            message: e.to_string(),
        })
}

/// The escape function: POSIX single-quote quoting (shlex), so a value is one shell word.
fn quote(s: &str) -> String {
    match shlex::try_quote(s) {
        Ok(q) => q.into_owned(),
        // Only NUL fails, and `render` refuses NUL before rendering; an empty word is safe.
        Err(_) => "''".to_string(),
    }
}

/// `{{args list}}`: each item of an array as its own quoted word, separated by spaces.
fn args_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let param = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("args", 0))?;
    let words: Vec<String> = match param.value() {
        Value::Array(items) => items.iter().map(word).collect(),
        other => vec![word(other)],
    };
    out.write(&words.join(" "))?;
    Ok(())
}

fn word(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Null => "''".into(),
        other => quote(&other.to_string()),
    }
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

fn render_message(e: &handlebars::RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(var)) => format!("the variable `{var}` is missing"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn embedded_templates_load_and_quote() {
        let t = Templates::load(None).unwrap();
        assert!(t.names().contains(&"pvecm-status".to_string()));
        let c = t.render("qm-config", &json!({"vmid": 101})).unwrap();
        assert_eq!(c.script, "qm config 101");
        let c = t
            .render("pvesh-get", &json!({"path": "/nodes/pve 1; reboot"}))
            .unwrap();
        assert_eq!(
            c.script,
            "pvesh get '/nodes/pve 1; reboot' --output-format json"
        );
        let c = t
            .render(
                "systemctl-is-active",
                &json!({"units": ["corosync", "pve cluster"]}),
            )
            .unwrap();
        assert_eq!(c.script, "systemctl is-active corosync 'pve cluster'");
    }

    /// A failed step's log and status stay in the node's /tmp; a detached command started
    /// under the same name must never be judged by that old status (a CI run once read a
    /// stale `255` while the new migration was still printing its log).
    #[test]
    fn a_detached_command_never_shows_an_earlier_exit_status() {
        let t = Templates::load(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let rc = dir.path().join("step.log.rc");
        std::fs::write(&rc, "255\n").unwrap();
        let c = t
            .render(
                "detached",
                &json!({"script": "exit 7", "logfile": log.to_str().unwrap()}),
            )
            .unwrap();
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(&c.script)
            .status()
            .unwrap();
        assert!(st.success());
        // From here on the file holds either nothing or this run's status.
        let first = loop {
            match std::fs::read_to_string(&rc) {
                Ok(text) => break text,
                Err(_) => std::thread::yield_now(),
            }
        };
        assert_eq!(first.trim(), "7");
    }

    #[test]
    fn missing_variables_and_nul_are_errors() {
        let t = Templates::load(None).unwrap();
        let e = t.render("qm-config", &json!({})).unwrap_err().to_string();
        assert!(e.contains("qm-config") && e.contains("vmid"), "{e}");
        assert!(t.render("qm-config", &json!({"vmid": "1\u{0}"})).is_err());
        assert!(t.render("no-such", &json!({})).is_err());
    }

    #[test]
    fn wrapper_runs_under_timeout_and_sudo() {
        let t = Templates::load(None).unwrap();
        let c = Command::operator(&["echo".into(), "it's".into()]);
        let line = t.remote_line(&c, Duration::from_secs(120), false).unwrap();
        assert!(
            line.starts_with(r#"env LC_ALL=C.UTF-8 timeout -k 5 120 "${SHELL:-sh}" -c "#),
            "{line}"
        );
        assert!(line.ends_with(&quote("echo it's")), "{line}");
        let line = t.remote_line(&c, Duration::from_secs(9), true).unwrap();
        assert!(
            line.starts_with("sudo -n env LC_ALL=C.UTF-8 timeout -k 5 9 "),
            "{line}"
        );
    }

    #[test]
    fn plain_lines_of_ours_run_without_a_second_shell() {
        let t = Templates::load(None).unwrap();
        let c = t.render("pvecm-status", &json!({})).unwrap();
        let line = t.remote_line(&c, Duration::from_secs(30), false).unwrap();
        assert_eq!(line, "env LC_ALL=C.UTF-8 timeout -k 5 30 pvecm status");
        // Quoting, operators and the operator's own line keep the shell.
        let c = t
            .render("pvesh-get", &json!({"path": "/nodes/pve 1"}))
            .unwrap();
        let line = t.remote_line(&c, Duration::from_secs(30), false).unwrap();
        assert!(line.contains(r#""${SHELL:-sh}" -c "#), "{line}");
        let c = t.render("upgrade-checklist", &json!({})).unwrap();
        let line = t.remote_line(&c, Duration::from_secs(30), false).unwrap();
        assert!(line.contains(r#""${SHELL:-sh}" -c "#), "{line}");
        let c = Command::operator(&["uptime".into()]);
        let line = t.remote_line(&c, Duration::from_secs(30), false).unwrap();
        assert!(line.ends_with(r#""${SHELL:-sh}" -c uptime"#), "{line}");
        assert_eq!(
            plain_argv("qm  list"),
            Some(vec!["qm".into(), "list".into()])
        );
        for shell in [
            "cd /tmp",
            "A=1 qm list",
            "echo $HOME",
            "ls *",
            "ls ~",
            "a; b",
            "a # b",
            "",
        ] {
            assert_eq!(plain_argv(shell), None, "{shell}");
        }
    }

    #[test]
    fn triple_stash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.hbs"), "qm start {{{vmid}}}").unwrap();
        let e = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("not allowed"), "{e}");
    }

    #[test]
    fn user_templates_override_embedded_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("commands")).unwrap();
        std::fs::write(dir.path().join("commands/qm-list.hbs"), "qm list --full").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(
            t.render("qm-list", &json!({})).unwrap().script,
            "qm list --full"
        );
    }
}
