//! The lab's simulated PVE tools as a binary of their own: `pvecm`, `qm`, `pct`, ... on a lab
//! node's PATH link here. It holds only `lab::sim` (no SSH, no runtime, no CLI), so each of the
//! hundreds of tool runs of a fleet assess costs this machine a small exec, not the start-up of
//! the whole `pveops` binary; a real node's tools run on the node's own cores.

fn main() {
    let mut args = std::env::args_os();
    let called_as = args
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    if called_as == pveops_lab::sim::TOOL_BINARY && rest == [pveops_lab::sim::SOURCE_ID_FLAG] {
        println!("{}", pveops_lab::sim::SOURCE_ID);
        return;
    }
    std::process::exit(pveops_lab::sim::main(&called_as, &rest));
}
