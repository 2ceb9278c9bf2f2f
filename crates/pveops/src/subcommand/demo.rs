//! `demo`: the main job on the embedded lab: assess it, drain a node, verify, restore.

use std::time::Duration;

use super::assess::assess;
use super::verify::verify;
use super::{operate, runtime};
use crate::cli::{AssessArgs, DemoArgs, Format, Global, VerifyArgs};

/// A port free on 127.0.0.1, the lab's ports are chosen the same way.
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(2222)
}

pub(super) fn demo(mut global: Global, args: DemoArgs) -> Result<i32, crate::Error> {
    let opts = pveops_lab::Options {
        scenario: Some(args.scenario.clone()),
        nodes: None,
        listen: args.listen,
        port: free_port(),
        state_dir: args.state_dir.clone(),
    };
    let prepared = pveops_lab::prepare(&opts)?;
    pveops_lab::set_verbose(&prepared, false);
    let addrs: Vec<std::net::SocketAddr> = prepared.nodes.iter().map(|(_, a, _)| *a).collect();
    eprintln!(
        "demo: lab `{}` with {} nodes in {}",
        args.scenario,
        addrs.len(),
        prepared.dir.display()
    );
    // The lab runs on its own thread and runtime; the assessment below uses its own, as it
    // would against a real cluster.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let lab_rt = runtime()?;
    let servers = std::thread::spawn(move || {
        lab_rt.block_on(async move {
            let mut set = pveops_lab::serve(&prepared);
            let _ = stop_rx.await;
            set.abort_all();
        });
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !addrs
        .iter()
        .all(|a| std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
    {
        if std::time::Instant::now() > deadline {
            let _ = stop_tx.send(());
            return Err(crate::Error::Usage(
                "the demo lab did not start listening within 10 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = &std::path::absolute(&args.state_dir)
        .map_err(|e| crate::Error::io(&args.state_dir, "resolve", e))?;
    global.inventory = Some(dir.join("inventory.toml"));
    let result = demo_job(&global, dir, &args);
    let _ = stop_tx.send(());
    let _ = servers.join();
    let root = result?;
    eprintln!(
        "demo: done; evidence in {}, the change log in pveops-changelog.md, the lab's command log in {}",
        root.display(),
        dir.join("commands.jsonl").display()
    );
    Ok(0)
}

/// The main job against the running lab: assess, drain a node, verify, restore.
pub(super) fn demo_job(
    global: &Global,
    dir: &std::path::Path,
    args: &DemoArgs,
) -> Result<std::path::PathBuf, crate::Error> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let root = std::path::Path::new("pveops-evidence").join(format!("{stamp}-demo"));
    let inv = dir.join("inventory.toml");
    eprintln!("\ndemo 1/4: pveops assess -I {} lab", inv.display());
    let assess_args = AssessArgs {
        targets: vec!["lab".into()],
        out: Some(root.join("1-assess")),
        json: false,
        format: Format::Text,
        prom_file: None,
        checks: None,
        from: None,
        only: Vec::new(),
        upgrade_checklist: true,
    };
    let code = assess(global, assess_args)?;
    eprintln!("demo: the assessment exited {code}");
    let op = |out: &str| crate::cli::OpArgs {
        targets: Vec::new(),
        yes: true,
        dry_run: false,
        out: Some(root.join(out)),
        changelog: std::path::PathBuf::from("pveops-changelog.md"),
        no_backup_gate: false,
        backup_max_age: 7.0 * 24.0,
        with_local_disks: false,
        migrate_timeout: 300,
        reboot_timeout: 300,
        window: None,
        force_window: false,
        checks: None,
        max_migrations: None,
    };
    eprintln!(
        "\ndemo 2/4: pveops -I {} drain {} --yes",
        inv.display(),
        args.drain
    );
    let drain = crate::plan::Operation::Drain {
        node: args.drain.clone(),
        to: Vec::new(),
    };
    let code = runtime()?.block_on(operate(global, drain, &op("2-drain"), true, false))?;
    eprintln!("demo: the drain exited {code}");
    eprintln!(
        "\ndemo 3/4: pveops -I {} verify lab --against {}",
        inv.display(),
        root.join("1-assess/snapshot.json").display()
    );
    let code = verify(
        global,
        VerifyArgs {
            targets: vec!["lab".into()],
            against: root.join("1-assess/snapshot.json"),
            out: Some(root.join("3-verify")),
            json: false,
            checks: None,
            upgrade_checklist: false,
        },
    )?;
    eprintln!(
        "demo: the verification exited {code} (moved guests are differences, not regressions; the scenario's own findings remain)"
    );
    let journal = root.join("2-drain/journal.jsonl");
    if journal.exists() {
        eprintln!(
            "\ndemo 4/4: pveops -I {} restore --journal {} --yes",
            inv.display(),
            journal.display()
        );
        let entries = crate::journal::read(&journal)?;
        let restore = crate::plan::Operation::Restore {
            journal: entries,
            source: journal.display().to_string(),
        };
        let mut o = op("4-restore");
        o.no_backup_gate = true;
        let code = runtime()?.block_on(operate(global, restore, &o, true, false))?;
        eprintln!("demo: the restore exited {code}");
    }
    Ok(root)
}
