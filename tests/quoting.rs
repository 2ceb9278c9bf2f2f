//! Every value a template interpolates survives render → `sh -c` → argv unchanged, whatever
//! it contains (quotes, `$()`, `;`, newlines, globs, non-ASCII): no value can change the
//! meaning of a command.

use proptest::prelude::*;
use serde_json::json;

fn argv_after_shell(script: &str) -> Vec<String> {
    // printf prints each argument NUL-terminated, so the split is exact.
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    text.split_terminator('\0').map(str::to_string).collect()
}

fn templates() -> (tempfile::TempDir, pveops::command::Templates) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("probe.hbs"),
        "printf '%s\\0' {{a}} {{b}} {{args list}}",
    )
    .unwrap();
    let t = pveops::command::Templates::load(Some(dir.path())).unwrap();
    (dir, t)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn values_survive_the_shell(a in "[^\u{0}]*", b in any::<String>().prop_filter("no NUL", |s| !s.contains('\0')), list in proptest::collection::vec("[^\u{0}]{0,8}", 0..4)) {
        let (_dir, t) = templates();
        let cmd = t.render("probe", &json!({"a": a, "b": b, "list": list})).unwrap();
        let mut want = vec![a.clone(), b.clone()];
        want.extend(list.iter().cloned());
        prop_assert_eq!(argv_after_shell(&cmd.script), want);
    }
}

#[test]
fn hostile_names_stay_one_word() {
    let (_dir, t) = templates();
    for hostile in [
        "web|prod*<b>",
        "x; reboot",
        "$(reboot)",
        "`reboot`",
        "a'b\"c",
        "-rf /",
        "\n",
        "",
        "*",
    ] {
        let cmd = t
            .render("probe", &json!({"a": hostile, "b": "z", "list": []}))
            .unwrap();
        assert_eq!(
            argv_after_shell(&cmd.script),
            vec![hostile.to_string(), "z".into()],
            "{hostile}"
        );
    }
}

#[test]
fn the_remote_wrapper_keeps_the_command_intact() {
    // The wrapper line itself, run through sh with stand-ins for timeout's real work.
    let t = pveops::command::Templates::load(None).unwrap();
    let cmd = pveops::command::Command::operator(&["printf '%s\\0' \"it's\" '$(x)'".into()]);
    let line = t
        .remote_line(&cmd, std::time::Duration::from_secs(5), false)
        .unwrap();
    assert_eq!(
        argv_after_shell(&line),
        vec!["it's".to_string(), "$(x)".into()]
    );
}
