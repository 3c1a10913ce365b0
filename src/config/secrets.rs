//! Secrets read from files or systemd credentials: the agent's password and the local API's
//! token. A password or token file that group or others can read is refused (a systemd
//! credential is exempt: it is the service's own). The secret is the file's first line (its
//! line end stripped): what follows is ignored, with a warning that never shows it.

use std::path::{Path, PathBuf};

use super::raw::{RawAgent, RawApi};
use super::{ConfigError, err};
use crate::secret::Secret;

/// The password from exactly one of `password_file`, `password_credential` (systemd) or
/// `password` (inline, warned about).
pub(super) fn read_password(
    f: &Path,
    a: &RawAgent,
    warnings: &mut Vec<String>,
) -> Result<Secret, ConfigError> {
    let given = [
        a.password_file.is_some(),
        a.password_credential.is_some(),
        a.password.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(err(
            f,
            "agent.password_file",
            "give exactly one of password_file, password_credential, password",
        ));
    }
    if let Some(p) = &a.password {
        warnings.push("agent.password: an inline password is readable by anyone who can read the config; use password_file or password_credential".into());
        return Ok(p.clone());
    }
    let (key, path) = match (&a.password_file, &a.password_credential) {
        (Some(p), _) => ("agent.password_file", p.clone()),
        (None, Some(name)) => (
            "agent.password_credential",
            credential(f, "agent.password_credential", name)?,
        ),
        (None, None) => return Err(err(f, "agent.password_file", "missing")),
    };
    let text = read_secret_file(f, key, &path, key == "agent.password_file")?;
    let password = first_line(&text, key, &path, warnings);
    if password.is_empty() {
        return Err(err(f, key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(password))
}

/// The first line of a secret's file, without its line end. Anything after it that is not
/// blank is worth a warning (a second line is never part of the secret, and never printed).
fn first_line<'a>(text: &'a str, key: &str, path: &Path, warnings: &mut Vec<String>) -> &'a str {
    let (line, rest) = text.split_once('\n').unwrap_or((text, ""));
    if !rest.trim().is_empty() {
        warnings.push(format!(
            "{key}: {} has more than one line; only the first is used",
            path.display()
        ));
    }
    line.strip_suffix('\r').unwrap_or(line)
}

/// The path of systemd credential `name` (`$CREDENTIALS_DIRECTORY/name`); `key` names the
/// config key in the error when the unit hands over no credentials.
pub(super) fn credential(f: &Path, key: &str, name: &str) -> Result<PathBuf, ConfigError> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
        err(
            f,
            key,
            "CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)",
        )
    })?;
    Ok(PathBuf::from(dir).join(name))
}

/// The text of a secret's file, in a buffer wiped when dropped. A file the operator wrote
/// (`owner_only`) is refused when group or others can read or write it; a systemd credential
/// is the service's own.
pub(super) fn read_secret_file(
    f: &Path,
    key: &str,
    path: &Path,
    owner_only: bool,
) -> Result<zeroize::Zeroizing<String>, ConfigError> {
    let failed = |e: std::io::Error| err(f, key, format!("{}: {e}", path.display()));
    if owner_only {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(failed)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(
                f,
                key,
                format!(
                    "{} is readable or writable by group or others; chmod 600 it",
                    path.display()
                ),
            ));
        }
    }
    std::fs::read_to_string(path)
        .map(zeroize::Zeroizing::new)
        .map_err(failed)
}

/// A secret file read again at run time (a new SSO token pair the operator installed). The
/// operator's own file (`owner_only`) is held to more than the rule at load, since nobody
/// watches what is adopted unattended: it is opened without following a symlink, and refused
/// when it is not a regular file, when another user owns it, or when group or others can read
/// or write it (all checked on the opened file, so nothing can be swapped in between). A
/// systemd credential is the service's own and is read as at load.
pub fn read_again(path: &Path, owner_only: bool) -> Result<zeroize::Zeroizing<String>, String> {
    if !owner_only {
        return read_secret_file(path, "agent.sso_token_file", path, false).map_err(|e| e.message);
    }
    read_private(path, nix::unistd::geteuid().as_raw())
}

/// The text of `path`, the file itself (no symlink), a regular file that user `me` owns and
/// that group and others cannot read or write.
pub(super) fn read_private(path: &Path, me: u32) -> Result<zeroize::Zeroizing<String>, String> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::errno::Errno::ELOOP as i32 => {
                format!("{shown} is a symlink; install the token file itself")
            }
            _ => format!("{shown}: {e}"),
        })?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.uid() != me {
        return Err(format!(
            "{shown} is owned by uid {}, not the service's uid {me}; chown it",
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown} is readable or writable by group or others; chmod 600 it"
        ));
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(text)
}

/// The local API's token: from `[api] token_file` or the systemd credential
/// `token_credential`; a token file readable by group or others is refused.
pub(super) fn api_token(
    f: &Path,
    a: &RawApi,
    warnings: &mut Vec<String>,
) -> Result<Option<Secret>, ConfigError> {
    let (key, path) = match (&a.token_file, &a.token_credential) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(err(
                f,
                "api.token_file",
                "give token_file or token_credential, not both",
            ));
        }
        (Some(p), None) => ("api.token_file", p.clone()),
        (None, Some(name)) => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                err(
                    f,
                    "api.token_credential",
                    "CREDENTIALS_DIRECTORY is not set",
                )
            })?;
            ("api.token_credential", PathBuf::from(dir).join(name))
        }
    };
    let text = read_secret_file(f, key, &path, key == "api.token_file")?;
    let token = first_line(&text, key, &path, warnings).trim();
    if token.len() < 16 {
        return Err(err(f, key, "the token must be at least 16 characters"));
    }
    Ok(Some(Secret::new(token)))
}
