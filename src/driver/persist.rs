//! What the driver keeps across restarts, in the state directory (`[agent] state_dir` or
//! systemd's `$STATE_DIRECTORY`): every refusal of the credentials within the lockout window
//! ([`crate::refusals::Ledger`]: its time, the end of its hold, a salted SHA-256 fingerprint).
//! A restart (an upgrade, `Restart=on-failure`) inside a hold waits out its rest instead of
//! sending a refused password again at once; a restart with credentials never refused starts
//! at once, as a reload would, unless one more refusal would come too close to the lockout. Every
//! record the driver keeps here is written by [`Driver::store`]: atomically
//! ([`write_atomic`]), and a write that fails is logged, counted (`state_writes_failed`) and
//! shown in `/v1/state` (`stateWriteFailures`) until a later write of that record succeeds,
//! since a restart would then forget what it holds.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::time::Instant;
use tracing::{info, warn};

use super::Driver;
use crate::refusals::{Ledger, Refusal};
use crate::tls::sha256;
use crate::view::WriteFailure;
use crate::vocab::StateRecord;

/// Replaces `file` with `text` so that a crash leaves the old or the new content, never a
/// mix: a new temporary file of a random name in the same directory (created exclusively,
/// mode 0600, so a symlink planted there is never followed), fsync, then a rename (which
/// replaces a symlink at `file` itself, never what it points to).
pub(super) fn write_atomic(file: &Path, text: &str) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".taskd-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Driver {
    /// Writes `record` (`None`: removes it) in the state directory, if there is one, and
    /// publishes the outcome: a failure is logged, counted and shown until a write succeeds.
    pub(super) fn store(&self, record: StateRecord, text: Option<&str>) {
        let Some(dir) = self.cfg.state_dir.as_ref() else {
            return;
        };
        let file = dir.join(record.as_str());
        let done = match text {
            Some(text) => write_atomic(&file, text),
            None => match std::fs::remove_file(&file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        match done {
            Ok(()) => self.shared.with(|v| {
                if v.write_failures.remove(&record).is_some() {
                    info!(%record, "the state directory takes writes again");
                }
            }),
            Err(e) => {
                warn!(file = %file.display(), %record, error = %e, "cannot write to the state directory: a restart would forget this record");
                self.shared.metrics.state_write_failed(record);
                self.shared.with(|v| {
                    v.write_failures.insert(
                        record,
                        WriteFailure {
                            error: e.to_string(),
                            at: SystemTime::now(),
                        },
                    )
                });
            }
        }
    }

    fn ledger_file(&self) -> Option<PathBuf> {
        let name = StateRecord::Refusals.as_str();
        self.cfg.state_dir.as_ref().map(|d| d.join(name))
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

    /// The refusals within the lockout window (none without a state directory); `Err` when
    /// the record exists but cannot be read.
    fn ledger(&self) -> Result<Ledger, String> {
        let Some(file) = self.ledger_file() else {
            return Ok(Ledger::default());
        };
        let mut ledger = match std::fs::read_to_string(&file) {
            Ok(text) => Ledger::parse(&text).map_err(|e| e.to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
            Err(e) => return Err(e.to_string()),
        };
        ledger.prune(SystemTime::now(), self.cfg.lockout_window);
        Ok(ledger)
    }

    /// The end of an auth hold an earlier run began, if it still runs for these credentials:
    /// they were refused, or a new refusal would come too close to the lockout. A record that
    /// cannot be read holds for one `auth_retry` (fail closed).
    pub(super) fn persisted_hold(&self) -> Option<Instant> {
        let now = SystemTime::now();
        let longest = self.cfg.recovery.auth_retry * crate::vocab::MAX_REFUSALS;
        let ledger = match self.ledger() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "the record of refused credentials cannot be read: holding for auth_retry before any login");
                return Some(Instant::now() + self.cfg.recovery.auth_retry);
            }
        };
        let end = match ledger.find(|salt| self.fingerprint(salt)) {
            Some(r) => Some(r.until),
            None if !ledger
                .may_end_hold(|salt| self.fingerprint(salt), self.cfg.lockout_attempts) =>
            {
                ledger.hold_end(now)
            }
            None => {
                if !ledger.is_empty() {
                    info!("the credentials changed since the last refusal; not waiting for it");
                }
                None
            }
        }?;
        // Never longer than one hold, whatever the file or the clock says.
        let rest = end.duration_since(now).ok()?.min(longest);
        (!rest.is_zero()).then(|| Instant::now() + rest)
    }

    /// May a change to the credentials now in the config end the running hold? Not when
    /// they were refused within the lockout window, nor when one more refusal would come too
    /// close to the lockout.
    pub(super) fn new_credentials_may_try(&self) -> bool {
        match self.ledger() {
            Ok(l) => l.may_end_hold(|salt| self.fingerprint(salt), self.cfg.lockout_attempts),
            Err(_) => false,
        }
    }

    /// Records a refusal of the credentials in force, whose hold runs until `until`.
    pub(super) fn persist_hold(&self, until: Instant) {
        if self.cfg.state_dir.is_none() {
            return;
        }
        let now = SystemTime::now();
        let mut ledger = self.ledger().unwrap_or_default();
        let salt = format!("{:016x}", rand::random::<u64>());
        ledger.record(Refusal {
            at: now,
            until: now + until.saturating_duration_since(Instant::now()),
            digest: self.fingerprint(&salt),
            salt,
        });
        self.store(StateRecord::Refusals, Some(&ledger.render()));
    }

    /// Forgets the refusals once the credentials work again (the site's count restarts too).
    pub(super) fn clear_hold(&self) {
        self.store(StateRecord::Refusals, None);
    }
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn a_symlink_in_the_state_directory_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(victim.path(), "keep me").unwrap();
        let file = dir.path().join("auth-refusals");
        std::os::unix::fs::symlink(victim.path(), &file).unwrap();
        // The old fixed temporary name, planted too.
        std::os::unix::fs::symlink(victim.path(), dir.path().join("auth-refusals.tmp")).unwrap();
        write_atomic(&file, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "keep me");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n");
        assert!(
            !std::fs::symlink_metadata(&file)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
