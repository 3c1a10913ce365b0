//! The token pair kept in the state directory (`sso-token.json`, mode 0600, replaced
//! atomically), so that a restart resumes with the newest pair: the one from the operator's
//! file or the one the last refresh got, whichever was obtained later.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::token::TokenSet;

/// The kept copy's file name in the state directory.
pub const KEPT: &str = "sso-token.json";

fn kept(dir: &Path) -> PathBuf {
    dir.join(KEPT)
}

/// The newer of `from_file` and the copy kept in `dir` (none, unreadable or older: the file's).
pub fn newest(from_file: &TokenSet, dir: Option<&Path>) -> TokenSet {
    let copy = dir
        .and_then(|d| std::fs::read_to_string(kept(d)).ok())
        .map(zeroize::Zeroizing::new)
        .and_then(|text| TokenSet::from_json(&text, SystemTime::UNIX_EPOCH).ok());
    match copy {
        Some(copy) if copy.obtained_at > from_file.obtained_at => copy,
        _ => from_file.clone(),
    }
}

/// Replaces the kept copy with `tokens`: a 0600 temporary file in `dir`, fsync, rename.
pub fn save(dir: &Path, tokens: &TokenSet) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(tokens.to_json().as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(kept(dir)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn pair(token: &str, secs: u64) -> TokenSet {
        TokenSet::from_json(
            &format!(r#"{{"token":"{token}","refresh_token":"r","expires_in":60}}"#),
            UNIX_EPOCH + Duration::from_secs(secs),
        )
        .unwrap()
    }

    #[test]
    fn a_restart_takes_the_newer_of_the_file_and_the_kept_copy() {
        let dir = tempfile::tempdir().unwrap();
        let file = pair("from-file", 1_000);
        assert_eq!(newest(&file, Some(dir.path())), file, "nothing kept yet");
        save(dir.path(), &pair("refreshed", 2_000)).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEPT))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(newest(&file, Some(dir.path())).token.expose(), "refreshed");
        let new_file = pair("operator-new", 3_000);
        assert_eq!(newest(&new_file, Some(dir.path())), new_file);
        assert_eq!(newest(&file, None), file);
    }
}
