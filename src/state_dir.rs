//! The state directory (`[agent] state_dir`, `[fleet] state_dir/<agent>` or systemd's
//! `$STATE_DIRECTORY`), made safe before anything is written there: created (mode 0700) when
//! missing, and refused when another user owns it or group or others can write it, since
//! whoever can write there could plant a symlink or a forged record of refused passwords.

use std::path::{Path, PathBuf};

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// It does not exist and cannot be made.
    #[error("cannot create the state directory {dir}: {source}")]
    Create {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another user owns it, or group or others may write it.
    #[error("the state directory {dir} {why}: chown it to the service's user and chmod 700 it")]
    Unsafe {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Creates `dir` when missing (0700) and checks that only this user can write it.
pub fn prepare(dir: &Path) -> Result<(), StateDirError> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StateDirError::Create {
                dir: dir.to_path_buf(),
                source,
            })?;
    }
    // The directory itself may be a symlink (systemd's DynamicUser= makes one); what it
    // points to is checked.
    let meta = std::fs::metadata(dir).map_err(|source| StateDirError::Create {
        dir: dir.to_path_buf(),
        source,
    })?;
    let unsafe_ = |why: String| StateDirError::Unsafe {
        dir: dir.to_path_buf(),
        why,
    };
    if !meta.is_dir() {
        return Err(unsafe_("is not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_(format!("is owned by uid {}, not {me}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_(format!(
            "is writable by group or others (mode {:04o})",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_missing_directory_is_made_private_and_a_shared_one_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        prepare(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare(&dir).unwrap_err().to_string();
        assert!(
            e.contains("writable by group or others") && e.contains("a/b"),
            "{e}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        prepare(&dir).unwrap();
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(
            prepare(&file)
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
    }
}
