//! Whether a node asks for a reboot: `cat /run/reboot-required`, the marker an installed
//! package leaves when it wants one. The file exists, or cat says it does not.

use super::{Keep, Read, Scope};

/// The reboot-required read, made when a package upgrade is assessed.
pub const READ: Read = Read {
    template: "reboot-required",
    scope: Scope::PackageState,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let stderr = out.stderr_text();
    k.node.packages.reboot_required = Some(match out.exit_code() {
        Some(0) => true,
        _ if stderr.contains("No such file") => false,
        code => {
            return Err(format!(
                "cat /run/reboot-required {}: {}",
                crate::output::exited(code),
                stderr.trim()
            ));
        }
    });
    Ok(())
}
