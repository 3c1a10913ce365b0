//! Test-side helpers: start `finesse-sim` as a real process (with its real Prosody instances),
//! read its start-up JSON line, call its admin API with typed helpers, talk Finesse REST to its
//! nodes, and connect as an agent over XMPP to read notifications.
#![allow(dead_code)]

pub mod cluster;
pub mod daemon;
pub mod etcd;
pub mod fleet;
pub mod unit;
pub mod xmpp;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The ids of the dialogs in a state document (the daemon's `/v1/state` or the simulator's
/// truth).
pub fn dialog_ids(state: &Value) -> std::collections::BTreeSet<String> {
    state["dialogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Writes `text` to `path`, readable by its owner only (as the daemon wants a token file).
pub fn private_file(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The value of the first sample line of a Prometheus text that starts with `series`.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The start-up line of the simulator.
#[derive(Debug, Clone, Deserialize)]
pub struct SimInfo {
    pub admin: String,
    /// The chat-session service.
    pub chat: String,
    pub domain: String,
    pub ca_file: PathBuf,
    pub state_dir: PathBuf,
    pub nodes: Vec<NodeInfo>,
    pub agents: Vec<String>,
}

/// One node of the start-up line.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub rest: String,
    pub host: String,
    pub xmpp_port: u16,
    pub xmpp_secure_port: u16,
}

/// The demo/test agent and its password, as in config/sim.toml.
pub const AGENT: &str = "1001001";
pub const PASSWORD: &str = "agent-1001001-secret";
pub const MRD: u32 = 5002;

/// A running simulator; killed when dropped.
pub struct Sim {
    pub child: Child,
    pub info: SimInfo,
    pub http: reqwest::Client,
    pub stderr_path: PathBuf,
}

/// The project's sim config.
pub fn sim_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sim.toml")
}

/// The round trip `FINESSE_TEST_RTT` asks for (`40ms`), if any; a value that does not parse
/// fails loudly rather than testing loopback by mistake.
pub fn test_rtt() -> Option<Duration> {
    let text = std::env::var("FINESSE_TEST_RTT").ok()?;
    Some(
        humantime::parse_duration(&text)
            .unwrap_or_else(|e| panic!("FINESSE_TEST_RTT={text:?} is not a duration: {e}")),
    )
}

impl Sim {
    /// Starts the simulator with `--spawn-prosody` and `extra` arguments.
    /// `FINESSE_TEST_XMPP_SERVER=ejabberd` runs every such test against ejabberd instead of
    /// Prosody (`scripts/test.sh` runs the recovery scenarios both ways), and
    /// `FINESSE_TEST_RTT=40ms` puts that round trip between the agents and every node
    /// (the simulator's network, `--rtt`), as a home agent's VPN-less desktop sees it.
    pub async fn start(extra: &[&str]) -> Sim {
        Self::start_on(sim_config(), extra).await
    }

    /// [`Self::start`] with another simulator config (such as a range of agents).
    pub async fn start_on(config: PathBuf, extra: &[&str]) -> Sim {
        let mut args: Vec<String> = vec!["--spawn-prosody".into()];
        if std::env::var("FINESSE_TEST_XMPP_SERVER").as_deref() == Ok("ejabberd") {
            args.extend(["--xmpp-server".into(), "ejabberd".into()]);
        }
        if let Some(rtt) = test_rtt() {
            args.extend(["--rtt".into(), format!("{}ms", rtt.as_millis())]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::start_with(config, &args).await
    }

    /// Starts the simulator with a given config file and exactly these extra arguments.
    pub async fn start_with(config: PathBuf, extra: &[&str]) -> Sim {
        let log_dir = tempfile::Builder::new()
            .prefix("sim-log-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let stderr_path = log_dir.join("sim.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_finesse-sim"))
            .arg("--config")
            .arg(config)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn finesse-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "finesse-sim printed nothing in 60 s; see {}",
                    stderr_path.display()
                )
            })
            .expect("read stdout")
            .unwrap_or_else(|| {
                panic!(
                    "finesse-sim exited before its JSON line: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                )
            });
        let info: SimInfo = serde_json::from_str(&line).expect("start-up JSON line");
        let ca = std::fs::read(&info.ca_file).expect("CA file");
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
            .timeout(Duration::from_secs(10))
            // A new connection per request: a pooled one would hide a closed port (the
            // `refused` fault) behind a reset instead of a refused connection.
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        Sim {
            child,
            info,
            http,
            stderr_path,
        }
    }

    pub fn node(&self, name: &str) -> &NodeInfo {
        self.info
            .nodes
            .iter()
            .find(|n| n.name == name)
            .expect("node")
    }

    /// A REST request to node `node` as the demo agent.
    pub fn rest(&self, node: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.rest_as(node, method, path, AGENT, PASSWORD)
    }

    pub fn rest_as(
        &self,
        node: &str,
        method: reqwest::Method,
        path: &str,
        user: &str,
        password: &str,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.node(node).rest, path);
        self.http
            .request(method, url)
            .basic_auth(user, Some(password))
            .header("content-type", "application/xml")
    }

    /// PUT a Media body on a node; returns (status, body).
    pub async fn put_media(&self, node: &str, body: &str) -> (u16, String) {
        let r = self
            .rest(
                node,
                reqwest::Method::PUT,
                &format!("/finesse/api/User/{AGENT}/Media/{MRD}"),
            )
            .body(body.to_owned())
            .send()
            .await
            .expect("PUT media");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// GET a resource as the agent; returns (status, body).
    pub async fn get(&self, node: &str, path: &str) -> (u16, String) {
        let r = self
            .rest(node, reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    pub async fn sign_in(
        &self,
        node: &str,
        limit: u32,
        interrupt: &str,
        logout: &str,
    ) -> (u16, String) {
        self.put_media(
            node,
            &format!(
                "<Media><state>LOGIN</state><maxDialogLimit>{limit}</maxDialogLimit>\
                 <interruptAction>{interrupt}</interruptAction><dialogLogoutAction>{logout}</dialogLogoutAction></Media>"
            ),
        )
        .await
    }

    /// A call to the admin API; panics unless the status is 2xx.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.admin_status(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "admin {path} answered {status}: {v}"
        );
        v
    }

    pub async fn admin_status(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.info.admin, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("admin call");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn faults(&self, node: &str, patch: Value) -> Value {
        self.admin(
            reqwest::Method::PUT,
            &format!("/admin/nodes/{node}/faults"),
            Some(patch),
        )
        .await
    }

    /// Changes the network between the agents and `node` on `link` (`rest`, `xmpp`, `all`)
    /// by a patch of its conditions; panics unless the simulator took it.
    pub async fn network(&self, node: &str, link: &str, patch: Value) -> Value {
        let (status, body) = self
            .admin_status(
                reqwest::Method::PUT,
                &format!("/admin/nodes/{node}/network/{link}"),
                Some(patch.clone()),
            )
            .await;
        assert_eq!(status, 200, "network {node}/{link} {patch}: {body}");
        body
    }

    pub async fn prosody(&self, node: &str, op: &str) -> Value {
        self.admin(
            reqwest::Method::POST,
            &format!("/admin/nodes/{node}/prosody/{op}"),
            None,
        )
        .await
    }

    pub async fn behaviour(&self, patch: Value) -> Value {
        self.admin(reqwest::Method::PUT, "/admin/behaviour", Some(patch))
            .await
    }

    /// A new SSO token pair for the demo agent, in Cisco's JSON shape (`--sso` only).
    pub async fn sso_issue(&self) -> Value {
        self.admin(
            reqwest::Method::POST,
            &format!("/admin/sso/{AGENT}/token"),
            None,
        )
        .await
    }

    /// The IdS's counts for the demo agent, and every token it was issued.
    pub async fn sso_stats(&self) -> Value {
        self.admin(reqwest::Method::GET, &format!("/admin/sso/{AGENT}"), None)
            .await
    }

    pub async fn truth(&self) -> Value {
        self.admin(reqwest::Method::GET, &format!("/admin/truth/{AGENT}"), None)
            .await
    }

    /// `[finesse] nodes` for a daemon's or a fleet's config: every node's REST URL.
    pub fn nodes_toml(&self) -> String {
        let nodes: Vec<String> = self
            .info
            .nodes
            .iter()
            .map(|n| format!("{:?}", n.rest))
            .collect();
        format!("[{}]", nodes.join(", "))
    }

    /// The site's lockout policy as the daemons' test configs state it too (5 bad passwords
    /// in a 4 s `lockout_window`), locking the account for a minute.
    pub async fn test_lockout_policy(&self) {
        self.behaviour(json!({
            "lockout_attempts": 5,
            "lockout_window_ms": 4000,
            "lockout_duration_ms": 60000,
        }))
        .await;
    }

    /// An admin sets `agent`'s password at Finesse (REST and its XMPP server).
    pub async fn set_password(&self, agent: &str, password: &str) {
        self.admin(
            reqwest::Method::PUT,
            &format!("/admin/agents/{agent}/password"),
            Some(json!({ "password": password })),
        )
        .await;
    }

    /// Finesse logs the demo agent out (as its forced logout does after lost presence).
    pub async fn forced_logout(&self) {
        self.admin(
            reqwest::Method::POST,
            &format!("/admin/agents/{AGENT}/forced-logout"),
            None,
        )
        .await;
    }

    /// How many Dialog PUTs (actions) the simulator received.
    pub async fn dialog_puts(&self) -> usize {
        self.requests()
            .await
            .iter()
            .filter(|r| {
                r["method"] == "PUT"
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("/finesse/api/Dialog/"))
            })
            .count()
    }

    /// The truth of the demo agent's MRD 5002.
    pub async fn media_truth(&self) -> Value {
        let t = self.truth().await;
        t["media"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["id"] == json!(MRD)).cloned())
            .expect("media 5002 in truth")
    }

    pub async fn offer(&self, vars: Value) -> String {
        let v = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/agents/{AGENT}/media/{MRD}/offer"),
                Some(json!({ "callVariables": vars })),
            )
            .await;
        v["dialogId"].as_str().expect("dialogId").to_owned()
    }

    /// Sets how a chat session answers probes: alive, gone, error or hang.
    pub async fn chat(&self, session: &str, mode: &str) {
        self.admin(
            reqwest::Method::PUT,
            &format!("/admin/chat/sessions/{session}"),
            Some(json!({ "mode": mode })),
        )
        .await;
    }

    /// Probes the chat service received for a session.
    pub async fn chat_probes(&self, session: &str) -> u64 {
        let v = self
            .admin(reqwest::Method::GET, "/admin/chat/probes", None)
            .await;
        v["probes"][session].as_u64().unwrap_or(0)
    }

    /// Every REST request the sim logged.
    pub async fn requests(&self) -> Vec<Value> {
        let v = self
            .admin(reqwest::Method::GET, "/admin/requests", None)
            .await;
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// The sign-in PUTs the simulator received, on `node` (or on any node).
    pub async fn login_puts(&self, node: Option<&str>) -> Vec<Value> {
        self.requests()
            .await
            .into_iter()
            .filter(|r| {
                node.is_none_or(|n| r["node"] == n)
                    && r["method"] == "PUT"
                    && r["body"]
                        .as_str()
                        .unwrap_or("")
                        .contains("<state>LOGIN</state>")
            })
            .collect()
    }

    /// The ids of the dialogs the simulator's truth holds for the agent's MRD.
    pub async fn truth_dialog_ids(&self) -> std::collections::BTreeSet<String> {
        dialog_ids(&self.media_truth().await)
    }

    /// Polls `check` every 20 ms until it holds or `limit` passes.
    pub async fn eventually<F, Fut>(&self, limit: Duration, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// When (ms since the simulator started) it refused the password of the agent whose
/// `/admin/truth/{agent}` is `truth`, REST and XMPP alike.
pub fn refusals_at(truth: &Value) -> Vec<u64> {
    truth["refusalsAtMs"]
        .as_array()
        .expect("refusalsAtMs")
        .iter()
        .map(|t| t.as_u64().expect("a time"))
        .collect()
}

/// Asserts that refusals come at most one per `retry_ms`, except that a channel-binding
/// login and its fallback may be refused back to back (the daemon then waits twice): any
/// `k + 1` consecutive refusals span at least `k * retry_ms`.
pub fn assert_one_refusal_per(times: &[u64], retry_ms: u64) {
    for (i, a) in times.iter().enumerate() {
        for (k, b) in times[i + 1..].iter().enumerate() {
            assert!(
                b - a >= k as u64 * retry_ms,
                "more refused passwords than one per auth_retry ({retry_ms} ms): {times:?}"
            );
        }
    }
}
