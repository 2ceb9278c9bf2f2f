//! Private key files: loaded once per run, decrypted with `PVEOPS_KEY_PASSPHRASE` or a
//! passphrase asked on the terminal. The passphrase is never logged or kept.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use russh::keys::PrivateKey;

/// Environment variable holding the passphrase of encrypted keys.
pub const PASSPHRASE_ENV: &str = "PVEOPS_KEY_PASSPHRASE";

const KEY_FILE_MAX: u64 = 1024 * 1024;

/// Loads a key file; the error is a short reason for the "tried" list.
pub fn load(path: &Path) -> Result<Arc<PrivateKey>, String> {
    if !path.exists() {
        return Err("not found".into());
    }
    // An OpenSSH private key is a few KiB; a wrong path (a device, a log) is refused, not read.
    let text =
        crate::input::read_to_string(path, KEY_FILE_MAX).map_err(|e| format!("unreadable: {e}"))?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => return Ok(Arc::new(k)),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => return Err(format!("unreadable: {e}")),
    }
    let passphrase = match std::env::var(PASSPHRASE_ENV) {
        Ok(p) => p,
        Err(_) if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("Enter passphrase for key '{}': ", path.display()))
                .map_err(|e| format!("encrypted, and the passphrase prompt failed: {e}"))?
        }
        Err(_) => {
            return Err(format!(
                "encrypted: set {PASSPHRASE_ENV} or run on a terminal"
            ));
        }
    };
    russh::keys::decode_secret_key(&text, Some(&passphrase))
        .map(Arc::new)
        .map_err(|_| "encrypted, and the passphrase does not open it".to_string())
}
