//! XMPP password failures, counted toward the simulated lockout. Finesse's XMPP and REST check
//! the same directory, so a daemon that fails over to XMPP logins must not get more tries than
//! one that uses REST. The XMPP servers check passwords themselves; this follows each one's log
//! (Prosody's line comes from the `finesse_sim_authlog` module the simulator installs, ejabberd
//! writes its own) and tells the truth about every refused login.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, lock};

/// How often the log is read for new lines.
const POLL: Duration = Duration::from_millis(50);

/// The local part of the user a refused-login log line names, if `line` is one: Prosody's
/// `finesse-sim-auth-failure user=<user>` or ejabberd's
/// `Failed c2s <MECH> authentication for <user>@<domain> from …`.
pub fn failed_user(line: &str) -> Option<&str> {
    if let Some((_, rest)) = line.split_once("finesse-sim-auth-failure user=") {
        let user = rest.split_whitespace().next()?;
        return (user != "nil").then_some(user);
    }
    let (_, rest) = line.split_once("Failed c2s ")?;
    let (_, rest) = rest.split_once(" authentication ")?;
    let rest = rest.strip_prefix("for ")?;
    let jid = rest.split_whitespace().next()?;
    Some(jid.split_once('@').map_or(jid, |(local, _)| local))
}

/// Follows `path` (appended across server restarts) until `stop`, counting every refused
/// login in the truth.
pub async fn watch(path: PathBuf, cluster: Arc<Cluster>, stop: CancellationToken) {
    let mut offset = 0u64;
    let mut partial = String::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
        let Ok(fresh) = read_from(&path, &mut offset) else {
            continue;
        };
        partial.push_str(&fresh);
        let Some(end) = partial.rfind('\n') else {
            continue;
        };
        let complete: String = partial.drain(..=end).collect();
        for user in complete.lines().filter_map(failed_user) {
            tracing::info!(user, "the XMPP server refused a password");
            lock(&cluster.truth).xmpp_auth_failed(user, Instant::now());
        }
    }
}

/// What was appended to `path` since `offset` (from the start again if the file shrank).
fn read_from(path: &PathBuf, offset: &mut u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len < *offset {
        *offset = 0;
    }
    file.seek(SeekFrom::Start(*offset))?;
    let mut bytes = Vec::new();
    file.take(len - *offset).read_to_end(&mut bytes)?;
    *offset += bytes.len() as u64;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::failed_user;

    #[test]
    fn both_servers_lines_name_the_user_and_others_do_not() {
        let prosody = "Dec 01 18:00:00 c2s5 info finesse-sim-auth-failure user=1001001 \
                       condition=not-authorized";
        assert_eq!(failed_user(prosody), Some("1001001"));
        let ejabberd = "2026-12-01 18:00:00.000 [warning] (tls|<0.1.0>) Failed c2s PLAIN \
                        authentication for 1001001@finesse.example from ::ffff:127.0.0.1: \
                        Invalid username or password";
        assert_eq!(failed_user(ejabberd), Some("1001001"));
        assert_eq!(failed_user("finesse-sim-auth-failure user=nil"), None);
        assert_eq!(
            failed_user("Accepted c2s PLAIN authentication for 1001001@x"),
            None
        );
    }
}
