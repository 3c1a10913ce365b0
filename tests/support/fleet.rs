//! A fleet (`finesse-taskd fleet`) as a real process against a simulator: its fleet file and
//! agent files in a temporary directory, its log, its API.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use super::Sim;

pub const LIMIT: Duration = Duration::from_secs(40);

/// Each agent of `config/sim.toml` with its password.
pub const AGENTS: [(&str, &str); 3] = [
    ("1001001", "agent-1001001-secret"),
    ("1001002", "agent-1001002-secret"),
    ("1001003", "agent-1001003-secret"),
];

pub struct Fleet {
    pub child: Child,
    pub api: String,
    pub dir: tempfile::TempDir,
    pub log_path: PathBuf,
    pub http: reqwest::Client,
}

pub fn agent_file(dir: &std::path::Path, id: &str, password: &str) -> String {
    let pw = dir.join(format!("{id}.password"));
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[agent]\nid = \"{id}\"\npassword_file = {pw:?}\n\n[[media]]\nid = 5002\n\
         max_dialog_limit = 3\ninterrupt_action = \"ACCEPT\"\ndialog_logout_action = \"CLOSE\"\n\
         state = \"READY\"\n"
    )
}

impl Fleet {
    /// Starts a fleet against `sim` with these agents and `[fleet]` keys.
    pub async fn start(sim: &Sim, fleet_keys: &str, agents: &[(&str, &str)]) -> Fleet {
        Self::start_edited(sim, fleet_keys, agents, &[]).await
    }

    /// [`Self::start`], with each `(from, to)` of `edits` replaced in the fleet file (a
    /// recovery key the test needs otherwise).
    pub async fn start_edited(
        sim: &Sim,
        fleet_keys: &str,
        agents: &[(&str, &str)],
        edits: &[(&str, &str)],
    ) -> Fleet {
        let dir = tempfile::Builder::new().prefix("fleet-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("agents")).unwrap();
        let fleet = format!(
            "[fleet]\nagents_dir = \"agents\"\nstate_dir = \"state\"\n{fleet_keys}\n\n\
             [finesse]\nnodes = {nodes}\nca_file = {ca:?}\nrequest_timeout = \"2s\"\n\
             lockout_window = \"4s\"\n\n[xmpp]\nping_interval = \"1s\"\nping_timeout = \"1s\"\n\n\
             [recovery]\nfirst_retry_window = \"300ms\"\nbackoff_initial = \"200ms\"\n\
             backoff_max = \"1s\"\nsysteminfo_poll = \"300ms\"\nhealthy_after = \"5s\"\n\
             auth_retry = \"2s\"\nfailover_after = \"1s\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n\
             [log]\nformat = \"json\"\n",
            nodes = sim.nodes_toml(),
            ca = sim.info.ca_file,
        );
        let fleet = edits
            .iter()
            .fold(fleet, |text, (from, to)| text.replace(from, to));
        std::fs::write(dir.path().join("fleet.toml"), fleet).unwrap();
        for (id, pw) in agents {
            let text = agent_file(dir.path(), id, pw);
            std::fs::write(dir.path().join("agents").join(format!("{id}.toml")), text).unwrap();
        }
        let log_path = dir.path().join("fleet.log");
        let (child, addr) = spawn(dir.path(), &log_path).await;
        Fleet {
            child,
            api: format!("http://{addr}"),
            dir,
            log_path,
            http: reqwest::Client::new(),
        }
    }

    /// Kills the fleet (as a crash or `systemctl kill` would) and starts it again on the
    /// same files and state directory.
    pub async fn restart(&mut self) {
        self.child.kill().await.unwrap();
        let (child, addr) = spawn(self.dir.path(), &self.log_path).await;
        self.child = child;
        self.api = format!("http://{addr}");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `/v1/agents` until `check` holds.
    pub async fn wait(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let (_, v) = self.get("/v1/agents").await;
            if check(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {v}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn hup(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    }

    pub fn agents_dir(&self) -> PathBuf {
        self.dir.path().join("agents")
    }
}

/// Starts `finesse-taskd fleet` on `dir`'s fleet file; its log is appended to `log_path`.
pub async fn spawn(dir: &std::path::Path, log_path: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_finesse-taskd"))
        .arg("fleet")
        .arg("--config")
        .arg(dir.join("fleet.toml"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = super::daemon::api_address(stderr, log_path, "the fleet").await;
    (child, addr)
}
