//! What the driver keeps across restarts, in the state directory (`[agent] state_dir` or
//! systemd's `$STATE_DIRECTORY`): the end of the auth hold a refused password began, with a
//! salted SHA-256 fingerprint of that password. A restart (an upgrade, `Restart=on-failure`)
//! inside the hold waits out its rest instead of sending the same password again at once; a
//! restart with a changed password starts at once, as a reload would. Both files the driver
//! keeps here are written by [`write_atomic`].

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tracing::{info, warn};

use super::Driver;
use crate::tls::sha256;

const HELD_UNTIL: &str = "auth-held-until";

/// Replaces `file` with `text` so that a crash leaves the old or the new content, never a
/// mix: a temporary file (mode 0600: these files are the agent's), fsync, then a rename.
pub(super) fn write_atomic(file: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, file))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Driver {
    fn hold_file(&self) -> Option<PathBuf> {
        self.cfg.state_dir.as_ref().map(|d| d.join(HELD_UNTIL))
    }

    fn fingerprint(&self, salt: &str) -> String {
        let mut data = salt.as_bytes().to_vec();
        data.push(0);
        data.extend_from_slice(self.cfg.agent_id.as_bytes());
        data.push(0);
        let secret = match &self.sso {
            Some(run) => run.tokens.refresh_token.expose(),
            None => self.cfg.auth.fingerprint_material(),
        };
        data.extend_from_slice(secret.as_bytes());
        let digest = hex(&sha256(&data));
        zeroize::Zeroize::zeroize(&mut data);
        digest
    }

    /// The end of an auth hold an earlier run began for this same password, if it still runs.
    pub(super) fn persisted_hold(&self) -> Option<Instant> {
        let text = std::fs::read_to_string(self.hold_file()?).ok()?;
        let mut fields = text.split_whitespace();
        let (ms, salt, digest) = (fields.next()?, fields.next()?, fields.next()?);
        if self.fingerprint(salt) != digest {
            info!("the password changed since the last refusal; not waiting for it");
            self.clear_hold();
            return None;
        }
        let end = UNIX_EPOCH + Duration::from_millis(ms.parse().ok()?);
        // Never longer than one hold, whatever the file or the clock says.
        let rest = end
            .duration_since(SystemTime::now())
            .ok()?
            .min(self.cfg.recovery.auth_retry * crate::vocab::MAX_REFUSALS);
        (!rest.is_zero()).then(|| Instant::now() + rest)
    }

    /// Records the end of the auth hold that runs until `until`.
    pub(super) fn persist_hold(&self, until: Instant) {
        let Some(file) = self.hold_file() else { return };
        let end = SystemTime::now() + until.saturating_duration_since(Instant::now());
        let ms = end.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let salt = format!("{:016x}", rand::random::<u64>());
        let line = format!("{ms} {salt} {}\n", self.fingerprint(&salt));
        let written = write_atomic(&file, &line);
        if let Err(e) = written {
            warn!(file = %file.display(), error = %e, "cannot record the password refusal");
        }
    }

    /// Forgets a refusal once the password works again.
    pub(super) fn clear_hold(&self) {
        if let Some(file) = self.hold_file() {
            let _ = std::fs::remove_file(file);
        }
    }
}
