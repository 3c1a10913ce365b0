//! Test-side helpers for the daemon: write an agent config pointing at a running simulator,
//! start `finesse-taskd` as a real process with JSON logs, find its API address from the log,
//! and read its state.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::{PASSWORD, Sim};

/// What differs between scenarios.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The password written to the password file.
    pub password: String,
    /// `[[media]]` tables.
    pub media: String,
    /// XMPP ping interval and timeout.
    pub ping: (&'static str, &'static str),
    /// `[finesse] request_timeout` and `connect_timeout`.
    pub timeouts: (&'static str, &'static str),
    /// `[recovery] auth_retry`.
    pub auth_retry: &'static str,
    /// `[recovery] failover_after`.
    pub failover_after: &'static str,
    /// `[recovery] resync_every`.
    pub resync_every: &'static str,
    /// `[api] listen`.
    pub listen: String,
    /// More `[api]` keys.
    pub api_extra: String,
    /// More tables at the end of the file.
    pub extra_toml: String,
    /// More `[xmpp]` keys.
    pub xmpp_extra: String,
    /// Extra environment for the process.
    pub env: Vec<(String, String)>,
    /// Hand the password over as a systemd credential instead of a file.
    pub credential: bool,
    /// Run under this file-descriptor limit (soft and hard, through `prlimit`).
    pub nofile: Option<u64>,
    /// `auth = "sso"` with this token document (written to a 0600 file) instead of the
    /// password.
    pub sso_tokens: Option<String>,
    /// The token file's modification time (when the pair was obtained); now when `None`.
    pub sso_written: Option<std::time::SystemTime>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            password: PASSWORD.to_owned(),
            media: "[[media]]\nid = 5002\nmax_dialog_limit = 3\ninterrupt_action = \"ACCEPT\"\ndialog_logout_action = \"CLOSE\"\nstate = \"READY\"\n".into(),
            ping: ("1s", "1s"),
            timeouts: ("2s", "2s"),
            auth_retry: "2s",
            failover_after: "1s",
            resync_every: "5m",
            listen: "127.0.0.1:0".into(),
            api_extra: String::new(),
            extra_toml: String::new(),
            xmpp_extra: String::new(),
            env: Vec::new(),
            credential: false,
            nofile: None,
            sso_tokens: None,
            sso_written: None,
        }
    }
}

/// Every daemon's log is checked for the agent's password when the test is done with it, so
/// the whole suite is a secrets audit (tests/secrets.rs adds trace level and base64 forms).
impl Drop for Daemon {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let log = self.log();
            assert!(
                !log.contains(PASSWORD),
                "the password leaked into a daemon log"
            );
        }
    }
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub api: String,
    pub log_path: PathBuf,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Daemon {
    /// Starts the daemon against `sim` and waits until its API listens.
    pub async fn start(sim: &Sim, cfg: DaemonConfig) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("taskd-")
            .tempdir()
            .expect("temp dir");
        let pw = dir.path().join("password");
        std::fs::write(&pw, format!("{}\n", cfg.password)).expect("password file");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let toml = format!(
            "[agent]\nid = \"{agent}\"\n{password_line}\n\n\
             [finesse]\nnodes = {nodes}\nca_file = {ca:?}\nrequest_timeout = \"{rt}\"\nconnect_timeout = \"{ct}\"\n\
             lockout_window = \"4s\"\n\n\
             [xmpp]\nping_interval = \"{pi}\"\nping_timeout = \"{pt}\"\n{transport}{xmpp_extra}\n{media}\n\
             [recovery]\nfirst_retry_window = \"300ms\"\nbackoff_initial = \"200ms\"\nbackoff_max = \"1s\"\n\
             systeminfo_poll = \"300ms\"\nhealthy_after = \"5s\"\nresync_every = \"{re}\"\nauth_retry = \"{ar}\"\nfailover_after = \"{fa}\"\n\n\
             [api]\nlisten = \"{listen}\"\n{api_extra}\n[log]\nformat = \"json\"\n\n{extra}",
            agent = super::AGENT,
            password_line = if let Some(tokens) = &cfg.sso_tokens {
                let file = dir.path().join("sso.json");
                std::fs::write(&file, tokens).expect("token file");
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
                if let Some(t) = cfg.sso_written {
                    std::fs::File::options()
                        .write(true)
                        .open(&file)
                        .and_then(|f| f.set_modified(t))
                        .expect("token file time");
                }
                format!("auth = \"sso\"\nsso_token_file = {file:?}")
            } else if cfg.credential {
                "password_credential = \"password\"".to_owned()
            } else {
                format!("password_file = {pw:?}")
            },
            nodes = sim.nodes_toml(),
            ca = sim.info.ca_file,
            rt = cfg.timeouts.0,
            ct = cfg.timeouts.1,
            pi = cfg.ping.0,
            pt = cfg.ping.1,
            media = cfg.media,
            ar = cfg.auth_retry,
            fa = cfg.failover_after,
            re = cfg.resync_every,
            listen = cfg.listen,
            api_extra = cfg.api_extra,
            extra = cfg.extra_toml,
            xmpp_extra = cfg.xmpp_extra,
            // `FINESSE_TEST_XMPP_TRANSPORT=websocket` runs a test's daemon over XMPP over
            // WebSocket (scripts/test.sh runs the recovery scenarios both ways).
            transport = match std::env::var("FINESSE_TEST_XMPP_TRANSPORT").as_deref() {
                Ok("websocket") if !cfg.xmpp_extra.contains("transport") => {
                    "transport = \"websocket\"\n"
                }
                _ => "",
            },
        );
        let config = dir.path().join("agent.toml");
        std::fs::write(&config, toml).expect("config");
        let log_path = dir.path().join("daemon.log");
        let bin = env!("CARGO_BIN_EXE_finesse-taskd");
        let mut command = match cfg.nofile {
            // prlimit execs the daemon: the pid stays the daemon's.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info,finesse_taskd=debug")
            .envs(cfg.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("CREDENTIALS_DIRECTORY", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn finesse-taskd");
        let stderr = child.stderr.take().expect("stderr");
        let addr = api_address(stderr, &log_path, "the daemon").await;
        Daemon {
            child,
            api: format!("http://{addr}"),
            log_path,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                // Idle connections are dropped well before the API's header-read timeout
                // closes them (30 s by default; tests use shorter ones too), as the README
                // advises task applications.
                .pool_idle_timeout(Duration::from_millis(500))
                .build()
                .expect("client"),
        }
    }

    /// The config file it runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// Sends a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("running") as i32);
        nix::sys::signal::kill(pid, signal).expect("signal");
    }

    /// An HTTP client for the API.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Opens `/v1/events` (resuming after this run's event `last_seq`) and returns the parsed events as they
    /// arrive. The connection closes when the receiver is dropped.
    pub async fn events(
        &self,
        last_seq: Option<u64>,
    ) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
        let id = match last_seq {
            Some(seq) => {
                let at = self.state().await["lastEventId"].clone();
                let boot = at
                    .as_str()
                    .and_then(|id| id.split_once('-'))
                    .expect("boot-seq")
                    .0;
                Some(format!("{boot}-{seq}"))
            }
            None => None,
        };
        self.events_from(id.as_deref()).await
    }

    /// Opens `/v1/events` with `last_id` as the `Last-Event-ID` header, verbatim.
    pub async fn events_from(
        &self,
        last_id: Option<&str>,
    ) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
        events_at(&format!("{}/v1/events", self.api), last_id).await
    }

    /// Waits until the daemon holds dialog `id`.
    pub async fn wait_dialog(&self, id: &str) -> Value {
        self.wait_state(Duration::from_secs(30), "dialog held", |s| {
            super::dialog_ids(s).contains(id)
        })
        .await
    }

    /// Waits until the daemon holds dialog `id` in `state`.
    pub async fn wait_dialog_in(&self, id: &str, state: &str) -> Value {
        self.wait_state(Duration::from_secs(30), state, |s| {
            s["dialogs"]
                .as_array()
                .is_some_and(|ds| ds.iter().any(|x| x["id"] == id && x["state"] == state))
        })
        .await
    }

    /// `POST /v1/dialogs/{id}/actions` with a JSON `body`.
    pub async fn post_action(&self, id: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/dialogs/{id}/actions", self.api))
            .json(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("action request")
    }

    /// `/v1/state`.
    pub async fn state(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/v1/state", self.api))
            .send()
            .await
            .expect("state");
        r.json().await.expect("state JSON")
    }

    /// `/readyz` status.
    pub async fn ready(&self) -> bool {
        self.http
            .get(format!("{}/readyz", self.api))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    /// A short OUT_OF_SERVICE on node A: on, seen by the daemon, off. The daemon keeps its
    /// session and resyncs when the node returns, which is how tests force a resync.
    pub async fn blip_out_of_service(&self, sim: &Sim) {
        sim.faults("A", serde_json::json!({ "out_of_service": true }))
            .await;
        self.wait_state(Duration::from_secs(30), "out of service seen", |s| {
            s["cause"] == "out_of_service"
        })
        .await;
        sim.faults("A", serde_json::json!({ "out_of_service": false }))
            .await;
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let r = self
            .http
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .expect("metrics");
        r.text().await.expect("metrics text")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log holds `needle` (the log is copied from stderr by a task, so it
    /// can trail the state by a moment); panics with the log after `limit`.
    pub async fn wait_log(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            if tokio::time::Instant::now() > deadline {
                panic!("the log never said {needle:?}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Log lines whose message is `message`.
    pub fn log_count(&self, message: &str) -> usize {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .count()
    }

    /// Polls `check` on the state every 20 ms until it holds; panics with the log after `limit`.
    pub async fn wait_state(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let s = self.state().await;
            if check(&s) {
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; state {s}\nlog:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the daemon and waits until it is steady.
    pub async fn start_steady(sim: &Sim, cfg: DaemonConfig) -> Daemon {
        let d = Daemon::start(sim, cfg).await;
        d.wait_steady(Duration::from_secs(30)).await;
        d
    }

    /// Starts a daemon whose API needs `token`, and waits until it is steady; its client
    /// sends the token with every request.
    pub async fn start_steady_with_token(sim: &Sim, cfg: DaemonConfig, token: &str) -> Daemon {
        let mut d = Daemon::start(sim, cfg).await;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        d.http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .expect("client");
        d.wait_steady(Duration::from_secs(30)).await;
        d
    }

    /// Waits for phase steady; returns the state.
    pub async fn wait_steady(&self, limit: Duration) -> Value {
        self.wait_state(limit, "phase steady", |s| s["phase"] == "steady")
            .await
    }
}

/// Copies a process's JSON log from `stderr` to `log_path` line by line, and returns the
/// address of its "local API listening" line (panics with the log after 20 s).
pub async fn api_address(
    stderr: tokio::process::ChildStderr,
    log_path: &std::path::Path,
    what: &str,
) -> String {
    let (addr_tx, addr_rx) = oneshot::channel();
    let path = log_path.to_path_buf();
    tokio::spawn(async move {
        // Appended: a restarted process keeps the earlier run's lines in the same log.
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .expect("log file");
        let mut lines = BufReader::new(stderr).lines();
        let mut addr_tx = Some(addr_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            let _ = file.flush().await;
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["fields"]["message"] == "local API listening" {
                    if let (Some(tx), Some(addr)) = (addr_tx.take(), v["fields"]["addr"].as_str()) {
                        let _ = tx.send(addr.to_owned());
                    }
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(20), addr_rx)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{what}'s API did not come up; log: {}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            )
        })
        .unwrap_or_else(|_| panic!("{what} exited before its API listened"))
}

/// Opens the event stream at `url` (a daemon's `/v1/events` or a fleet agent's) with
/// `last_id` as the `Last-Event-ID` header; each event arrives parsed.
pub async fn events_at(
    url: &str,
    last_id: Option<&str>,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().await.expect("events");
    assert_eq!(resp.status(), 200);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut resp = resp;
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<Vec<_>>()
                    .join("\n");
                if data.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&data) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(e) => panic!("event is not JSON: {e}: {data}"),
                }
            }
        }
    });
    rx
}
