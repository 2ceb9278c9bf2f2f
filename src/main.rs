//! The `pveops` binary: everything is in the library.

fn main() {
    std::process::exit(pveops::run(std::env::args_os()));
}
