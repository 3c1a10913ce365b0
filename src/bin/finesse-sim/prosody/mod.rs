//! One real XMPP server per Finesse node, run as a child process from its own temporary
//! directory on loopback ports: Prosody (Debian's package) by default, or ejabberd
//! ([`ejabberd`]) with `--xmpp-server ejabberd`, managed the same way.
//!
//! Accounts are written straight into Prosody's `internal_plain` storage, and every agent's
//! roster holds the `finesse` publisher (and the publisher's roster holds every agent), so the
//! agent sees the publisher's presence exactly as a Finesse client sees the `finesse` user.
//! Each Prosody is started under `setpriv --pdeathsig KILL`, so it dies with the simulator even
//! when the simulator is killed outright. Its ports are drawn by [`crate::ports`], and a start
//! counts only when Prosody's own process listens on both: Prosody does not exit when a port is
//! taken, and a client would then talk to whoever holds it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::certs::Pki;
use crate::ports::{self, Listener};

pub mod ejabberd;
mod files;
use files::{config_text, roster_item, write_account, write_plugins};

/// Which XMPP server serves a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// Prosody.
    Prosody,
    /// ejabberd.
    Ejabberd,
}

/// Where the server serves XMPP over WebSocket (both servers' default spelling).
pub const WEBSOCKET_PATH: &str = "/xmpp-websocket";

/// Launch attempts with freshly drawn ports when another process took one.
const LAUNCHES: usize = 5;

/// Another process listens on a port this Prosody was given.
#[derive(Debug, thiserror::Error)]
#[error("port {0} is taken by another process, so prosody cannot listen on it")]
pub struct PortTaken(pub u16);

/// What one server instance serves.
#[derive(Debug, Clone)]
pub struct ProsodySpec {
    /// Prosody or ejabberd.
    pub kind: ServerKind,
    /// Its private directory (config, data, logs).
    pub dir: PathBuf,
    /// The XMPP domain.
    pub domain: String,
    /// The STARTTLS (or plain) c2s port (drawn by [`Prosody::launch`]).
    pub c2s_port: u16,
    /// The direct-TLS port, like Finesse's 5223 (drawn by [`Prosody::launch`]).
    pub direct_tls_port: u16,
    /// The plain-HTTP XMPP-over-WebSocket port (RFC 7395, path [`WEBSOCKET_PATH`]), which
    /// the node's HTTPS front end proxies `/ws/` to, as Finesse's does to Openfire (drawn by
    /// [`Prosody::launch`]).
    pub websocket_port: u16,
    /// Offer XEP-0198 stream management.
    pub smacks: bool,
    /// Keep Nagle's algorithm on (Prosody's default); off unless asked for.
    pub nagle: bool,
    /// Allow unencrypted c2s (only when asked for).
    pub plain: bool,
    /// The certificate and key to serve.
    pub pki: Pki,
    /// The publisher's local part; it becomes a server admin (pubsub owner).
    pub publisher: String,
    /// (local part, password) of every account, the publisher included.
    pub accounts: Vec<(String, String)>,
}

/// A managed Prosody process.
#[derive(Debug)]
pub struct Prosody {
    spec: ProsodySpec,
    child: Option<Child>,
    frozen: bool,
}

/// Fails with the install command when Prosody is not installed.
pub fn check_installed() -> anyhow::Result<PathBuf> {
    let found = std::env::var_os("PATH").map(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prosody"))
            .find(|p| p.is_file())
    });
    match found.flatten() {
        Some(path) => Ok(path),
        None => bail!(
            "prosody is not installed (needed for --spawn-prosody). Install it with: \
             sudo apt-get update && sudo apt-get install -y prosody"
        ),
    }
}

/// Prosody's file-name encoding for hosts and users: every non-alphanumeric byte as `%xx`.
pub(super) fn encode(name: &str) -> String {
    name.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02x}");
        }
        out
    })
}

/// A Lua string literal.
pub(super) fn lua(s: &str) -> String {
    format!("{s:?}")
}

impl Prosody {
    /// Writes the accounts and rosters, draws the ports, writes the config and starts the
    /// server; draws again (up to [`LAUNCHES`] times) when another process holds a port.
    pub async fn launch(spec: ProsodySpec) -> anyhow::Result<Self> {
        if spec.kind == ServerKind::Ejabberd {
            return Self::launch_with(spec, ejabberd::config_text, "ejabberd.yml").await;
        }
        let host_dir = spec.dir.join("data").join(encode(&spec.domain));
        std::fs::create_dir_all(host_dir.join("accounts"))?;
        std::fs::create_dir_all(host_dir.join("roster"))?;
        for (user, password) in &spec.accounts {
            write_account(&spec, user, password)?;
        }
        let publisher_jid = format!("{}@{}", spec.publisher, spec.domain);
        let mut all_agents = String::new();
        for (user, _) in spec.accounts.iter().filter(|(u, _)| *u != spec.publisher) {
            let jid = format!("{user}@{}", spec.domain);
            all_agents.push_str(&roster_item(&jid));
            let roster = format!("return {{\n{}}};\n", roster_item(&publisher_jid));
            std::fs::write(
                host_dir
                    .join("roster")
                    .join(format!("{}.dat", encode(user))),
                roster,
            )?;
        }
        std::fs::write(
            host_dir
                .join("roster")
                .join(format!("{}.dat", encode(&spec.publisher))),
            format!("return {{\n{all_agents}}};\n"),
        )?;
        write_plugins(&spec)?;
        Self::launch_with(spec, config_text, "prosody.cfg.lua").await
    }

    /// Draws the ports, writes the config with `config` and starts the server.
    async fn launch_with(
        spec: ProsodySpec,
        config: fn(&ProsodySpec) -> String,
        file: &str,
    ) -> anyhow::Result<Self> {
        let mut prosody = Self {
            spec,
            child: None,
            frozen: false,
        };
        let mut attempt = 1;
        loop {
            let held = ports::reserve(3)?;
            let [c2s, dtls, ws] = held.as_slice() else {
                bail!("asked for 3 ports, got {}", held.len());
            };
            prosody.spec.c2s_port = ports::port(c2s)?;
            prosody.spec.direct_tls_port = ports::port(dtls)?;
            prosody.spec.websocket_port = ports::port(ws)?;
            std::fs::create_dir_all(&prosody.spec.dir)?;
            std::fs::write(prosody.spec.dir.join(file), config(&prosody.spec))?;
            drop(held);
            match prosody.start().await {
                Err(e) if attempt < LAUNCHES && e.downcast_ref::<PortTaken>().is_some() => {
                    tracing::warn!(error = %e, attempt, "prosody lost a port; drawing new ones");
                    attempt += 1;
                }
                result => return result.map(|()| prosody),
            }
        }
    }

    /// The server's log file, where failed logins are written (see [`crate::authlog`]).
    pub fn log_file(&self) -> PathBuf {
        match self.spec.kind {
            ServerKind::Prosody => self.spec.dir.join("prosody.log"),
            ServerKind::Ejabberd => self.spec.dir.join("ejabberd.log"),
        }
    }

    /// The spec it runs with.
    pub fn spec(&self) -> &ProsodySpec {
        &self.spec
    }

    /// True while the process is running (frozen counts as running).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts the process if it is not running, and waits until it listens on both ports;
    /// kills it again when it cannot (a port taken, a start-up failure, 20 s without both).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let config = self.spec.dir.join("prosody.cfg.lua");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.spec.dir.join("stdout.log"))?;
        let mut cmd = match self.spec.kind {
            ServerKind::Ejabberd => ejabberd::command(&self.spec),
            ServerKind::Prosody => {
                let mut cmd = if Path::new("/usr/bin/setpriv").exists() {
                    let mut c = Command::new("/usr/bin/setpriv");
                    c.args(["--pdeathsig", "KILL", "--", "prosody"]);
                    c
                } else {
                    Command::new("prosody")
                };
                cmd.arg("--config").arg(&config).arg("-F");
                cmd
            }
        };
        cmd.current_dir(&self.spec.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let log_start = std::fs::metadata(self.log_file()).map_or(0, |m| m.len());
        let child = cmd.spawn().context("spawning prosody")?;
        self.child = Some(child);
        self.frozen = false;
        let listening = self.wait_listening(log_start).await;
        if listening.is_err() {
            self.kill().await?;
        }
        listening
    }

    /// Waits until the server's own process listens on all its ports. A port that another
    /// process held for a moment while the server bound it stays unserved once that process
    /// lets go (Prosody logs the failure and carries on), so a bind failure in the log written
    /// since `log_start`, or 20 s with a port still unserved, counts as [`PortTaken`] and the
    /// launch draws new ports.
    async fn wait_listening(&mut self, log_start: u64) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let addrs = [
            self.spec.c2s_port,
            self.spec.direct_tls_port,
            self.spec.websocket_port,
        ];
        loop {
            let bind_failed = self.bind_failure_logged(log_start);
            if !self.is_running() {
                if bind_failed {
                    return Err(PortTaken(addrs[0]).into());
                }
                bail!(
                    "prosody exited during start-up; see {}",
                    self.spec.dir.join("prosody.log").display()
                );
            }
            let pid = self.pid().context("prosody is not running")?.as_raw();
            let found = ports::listeners(pid, &addrs)?;
            if let Some((port, _)) = addrs
                .iter()
                .zip(&found)
                .find(|(_, l)| **l == Listener::Other)
            {
                return Err(PortTaken(*port).into());
            }
            if found.iter().all(|l| *l == Listener::Ours) {
                return Ok(());
            }
            let unserved = addrs
                .iter()
                .zip(&found)
                .find(|(_, l)| **l == Listener::Nobody)
                .map(|(port, _)| *port);
            if let Some(port) = unserved {
                if bind_failed || tokio::time::Instant::now() > deadline {
                    tracing::warn!(port, bind_failed, "prosody did not open a port");
                    return Err(PortTaken(port).into());
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("prosody did not open ports {addrs:?} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// True when the server's log, from byte `from` on, reports a port it could not bind.
    fn bind_failure_logged(&self, from: u64) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(self.log_file()) else {
            return false;
        };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_string(&mut text).is_err() {
            return false;
        }
        text.contains("Failed to open server port") || text.contains("eaddrinuse")
    }

    fn pid(&self) -> Option<Pid> {
        let pid = self.child.as_ref()?.id()?;
        i32::try_from(pid).ok().map(Pid::from_raw)
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.pid().context("prosody is not running")?;
        kill(pid, signal).with_context(|| format!("sending {signal} to prosody"))
    }

    /// SIGTERM, then wait for the exit (SIGKILL after 5 s).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        if self.frozen {
            self.signal(Signal::SIGCONT)?;
        }
        self.signal(Signal::SIGTERM)?;
        if let Some(child) = self.child.as_mut() {
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                child.kill().await?;
            }
        }
        self.child = None;
        Ok(())
    }

    /// SIGKILL, as a crash.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            child.kill().await?;
        }
        self.child = None;
        self.frozen = false;
        Ok(())
    }

    /// SIGSTOP: the TCP connections stay open but nothing answers (a silent dead link).
    pub fn freeze(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.frozen = true;
        Ok(())
    }

    /// SIGCONT after a freeze.
    pub fn thaw(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.frozen = false;
        Ok(())
    }

    /// Stop and start again on the same ports.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.start().await
    }

    /// Replaces an account's password in the running server's storage.
    /// Also for the next start: ejabberd provisions the accounts from the spec each time.
    pub async fn set_password(&mut self, user: &str, password: &str) -> anyhow::Result<()> {
        for account in self.spec.accounts.iter_mut().filter(|(u, _)| u == user) {
            account.1 = password.to_owned();
        }
        let running = self.is_running();
        match self.spec.kind {
            ServerKind::Prosody => write_account(&self.spec, user, password),
            ServerKind::Ejabberd if running => {
                ejabberd::set_password(&self.spec, user, password).await
            }
            ServerKind::Ejabberd => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
