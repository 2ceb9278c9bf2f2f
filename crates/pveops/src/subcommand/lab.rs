//! `lab`: serve the simulated cluster until Ctrl-C.

use super::runtime;
use crate::cli::LabArgs;

pub(super) fn lab(args: LabArgs) -> Result<i32, crate::Error> {
    if let Some(name) = &args.dump_scenario {
        let c = pveops_lab::scenario::builtin(name).ok_or_else(|| {
            crate::Error::Usage(format!(
                "no built-in scenario `{name}` ({})",
                pveops_lab::scenario::NAMES.join(", ")
            ))
        })?;
        println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
        return Ok(0);
    }
    let opts = pveops_lab::Options {
        scenario: args.scenario,
        nodes: args.nodes,
        listen: args.listen,
        port: args.ssh_port,
        state_dir: args.state_dir,
    };
    let prepared = pveops_lab::prepare(&opts)?;
    runtime()?.block_on(async {
        let mut servers = pveops_lab::serve(&prepared);
        eprintln!(
            "lab: {} nodes in {}",
            prepared.nodes.len(),
            prepared.dir.display()
        );
        for (name, addr, _) in &prepared.nodes {
            eprintln!("lab:   {name} at {addr}");
        }
        eprintln!(
            "lab: try `pveops exec -I {} lab -- pvecm status`; Ctrl-C stops the lab",
            prepared.inventory().display()
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = servers.join_next() => {}
        }
        servers.abort_all();
    });
    eprintln!(
        "lab: stopped; the state is kept in {}",
        prepared.dir.display()
    );
    Ok(0)
}
