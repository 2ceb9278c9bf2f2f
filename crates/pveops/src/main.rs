//! The `pveops` binary: everything is in the library.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `pveops lab-tool NAME ARGS…`: a lab node's simulated PVE tool, when no current
    // `pveops-lab-tool` is built beside this binary (docs/lab.md). Taken before the CLI parses
    // anything, so the tool's arguments reach it untouched.
    if args
        .get(1)
        .is_some_and(|a| a == pveops_lab::sim::VIA_PVEOPS)
        && let Some(tool) = args.get(2).and_then(|t| t.to_str())
    {
        let rest: Vec<String> = args[3..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        std::process::exit(pveops_lab::sim::main(tool, &rest));
    }
    std::process::exit(pveops::run(args));
}
