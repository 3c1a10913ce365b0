//! A test hook, and nothing else: while the file named by `FINESSE_TASKD_TEST_STALL_FILE`
//! exists, steady state stops making progress (the thread stays free, as with an await that
//! never completes), so a test can see the systemd watchdog pings stop. Without the variable
//! it does nothing.

use std::path::PathBuf;
use std::time::Duration;

/// The stall hook (inert unless the variable is set).
#[derive(Debug, Default)]
pub struct StallHook(Option<PathBuf>);

impl StallHook {
    /// Reads `FINESSE_TASKD_TEST_STALL_FILE`.
    pub fn from_env() -> Self {
        Self(std::env::var_os("FINESSE_TASKD_TEST_STALL_FILE").map(PathBuf::from))
    }

    /// Waits while the stall file exists.
    pub async fn hold(&self) {
        if let Some(path) = &self.0 {
            while path.exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
