//! `finesse-taskd status`: a short human summary of a running daemon (or fleet), read from
//! its local API over TCP or its Unix socket: phase and cause, node and links; per MRD the
//! state, the desired state, drift, eligibility and a refused sign-in; the dialogs, the last
//! resync and the counters. Coloured on a terminal; `--json` prints what the API said.
//! Rendering is pure ([`render_agent`], [`render_fleet`], [`render_cluster`]); [`fetch`] does
//! each request.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::config::Listen;
use crate::secret::Secret;

/// Where the API is, and the token it wants (if any).
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` or a Unix socket.
    pub listen: Listen,
    /// `[api] token`, sent as `Authorization: Bearer`.
    pub token: Option<Secret>,
}

/// Why the API could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Connect, TLS-less HTTP or timeout failure.
    #[error("cannot reach the daemon's API at {0}: {1}")]
    Unreachable(String, String),
    /// The answer was not JSON.
    #[error("the API at {0} answered something other than JSON")]
    NotJson(String),
}

/// The API a config file names, with its token: `[api] listen` of a single agent's file or
/// of a fleet file (none without a file).
pub fn target_from(
    config: Option<&std::path::Path>,
) -> Result<Option<(Listen, Option<Secret>)>, crate::config::ConfigError> {
    let Some(path) = config else { return Ok(None) };
    let base = if crate::fleet::is_fleet_file(path) {
        crate::fleet::FleetConfig::load(path)?.base
    } else {
        crate::config::Config::load(path)?
    };
    Ok(Some((base.api_listen, base.api_token)))
}

/// `--api`'s forms: `unix:/path`, `http://host:port` or `host:port`.
pub fn parse_api(text: &str) -> Listen {
    Listen::parse(
        text.strip_prefix("http://")
            .unwrap_or(text)
            .trim_end_matches('/'),
    )
}

/// GET `path` from the API: its status and JSON body.
pub async fn fetch(target: &Target, path: &str) -> Result<(u16, Value), StatusError> {
    let shown = target.listen.to_string();
    let unreachable =
        |e: &dyn std::fmt::Display| StatusError::Unreachable(shown.clone(), e.to_string());
    let (status, bytes) = match &target.listen {
        Listen::Tcp(addr) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| unreachable(&e))?;
            let mut req = client.get(format!("http://{addr}{path}"));
            if let Some(t) = &target.token {
                req = req.bearer_auth(t.expose());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| unreachable(&e.without_url()))?;
            let status = resp.status().as_u16();
            (
                status,
                resp.bytes().await.map_err(|e| unreachable(&e))?.to_vec(),
            )
        }
        Listen::Unix(socket) => unix_get(socket, path, target.token.as_ref())
            .await
            .map_err(|e| unreachable(&e))?,
    };
    // An error may come without a JSON body (a single agent's 404 for `/v1/agents`).
    let body = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) if status >= 400 => Value::Null,
        Err(_) => return Err(StatusError::NotJson(shown)),
    };
    Ok((status, body))
}

/// One GET over a Unix socket (hyper's HTTP/1 client on the stream).
async fn unix_get(
    socket: &PathBuf,
    path: &str,
    token: Option<&Secret>,
) -> Result<(u16, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::UnixStream::connect(socket),
    )
    .await??;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", "localhost");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {}", t.expose()));
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        sender.send_request(req.body(axum::body::Body::empty())?),
    )
    .await??;
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 1 << 24).await?;
    Ok((status, body.to_vec()))
}

fn paint(text: &str, phase: &str, color: bool) -> String {
    if !color {
        return text.to_owned();
    }
    let code = match phase {
        "steady" => "32",
        "starting" | "recovering" | "resyncing" | "stopping" => "33",
        _ => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

/// One agent's `/v1/state` as a few lines.
pub fn render_agent(state: &Value, color: bool) -> String {
    let phase = s(state, "phase");
    let mut out = String::new();
    let cause = state["cause"]
        .as_str()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "agent {}: {}{cause}, node {}, links rest {}, xmpp {}",
        s(state, "agent"),
        paint(phase, phase, color),
        s(state, "node"),
        s(&state["links"], "rest"),
        s(&state["links"], "xmpp"),
    );
    if let Some(at) = state["nextAttemptAt"].as_str() {
        let _ = writeln!(out, "  next try: {at}");
    }
    for m in state["media"].as_array().into_iter().flatten() {
        let id = &m["id"];
        if m["eligible"] == false {
            let _ = writeln!(
                out,
                "  MRD {id}: not eligible (the agent is in no skill group of it)"
            );
            continue;
        }
        let desired = match (
            m["desiredState"].as_str(),
            m["desiredReasonCodeId"].as_u64(),
        ) {
            (Some(d), Some(r)) => format!("{d}/{r}"),
            (Some(d), None) => d.to_owned(),
            _ => "-".into(),
        };
        let drift = match &m["drift"] {
            Value::Bool(false) => "settings in sync".to_owned(),
            Value::Bool(true) => "settings drifted".to_owned(),
            other => format!("drift {}", other.as_str().unwrap_or("?")),
        };
        let routable = match m["routable"].as_bool() {
            Some(true) => "routable",
            Some(false) => "not routable",
            None => "routable ?",
        };
        let signin = match m["signin"]["failed"].as_str() {
            Some(e) => format!(", sign-in refused: {e}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  MRD {id}: {} (desired {desired}), {routable}, {drift}{signin}",
            s(m, "state"),
        );
    }
    let dialogs = state["dialogs"].as_array().map_or(0, Vec::len);
    let mut by_state = std::collections::BTreeMap::<&str, usize>::new();
    for d in state["dialogs"].as_array().into_iter().flatten() {
        *by_state
            .entry(d["state"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    let states: Vec<String> = by_state.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        out,
        "  dialogs: {dialogs}{}",
        if states.is_empty() {
            String::new()
        } else {
            format!(" ({})", states.join(", "))
        }
    );
    let _ = writeln!(out, "  last resync: {}", s(state, "lastResyncAt"));
    let c = &state["counters"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "  counters: reconnects {}, failovers {}, resyncs {}, sign-ins {}, drift corrections {}, malformed {}",
        n("reconnects"),
        n("failovers"),
        n("resyncs"),
        n("signins"),
        n("driftCorrections"),
        n("malformed"),
    );
    out
}

/// A cluster host's `/v1/cluster`: whether it acts, its lease, and what each member owns.
pub fn render_cluster(c: &Value, color: bool) -> String {
    let acting = c["acting"] == true;
    let state = if acting { "acting" } else { "fenced" };
    let lease = &c["lease"];
    let mut out = format!(
        "cluster: member {}, {}, lease {} (acts for {} ms more, last renewal {} ms, {} failures), owns {}\n",
        s(c, "member"),
        paint(state, if acting { "steady" } else { "bad" }, color),
        lease["id"].as_str().unwrap_or("none"),
        lease["actsForMs"].as_u64().unwrap_or(0),
        lease["renewalMs"].as_u64().unwrap_or(0),
        lease["renewalFailures"].as_u64().unwrap_or(0),
        c["owned"].as_array().map_or(0, Vec::len),
    );
    let members: Vec<String> = c["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| format!("{} owns {}", s(m, "name"), m["owns"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(out, "  members: {}", members.join(", "));
    let _ = writeln!(
        out,
        "  takeovers {}, handovers {}, fenced {}, displaced {}",
        c["takeovers"], c["handovers"], c["fenced"], c["displaced"]
    );
    out
}

/// A fleet's `/v1/agents` as one line per agent and per bad file.
pub fn render_fleet(list: &Value, color: bool) -> String {
    let agents = list["agents"].as_array().cloned().unwrap_or_default();
    let bad = list["bad"].as_array().cloned().unwrap_or_default();
    let steady = agents.iter().filter(|a| a["phase"] == "steady").count();
    let mut out = format!(
        "fleet: {steady} of {} agents steady, {} bad agent files\n",
        agents.len() + bad.len(),
        bad.len()
    );
    for a in &agents {
        let phase = s(a, "phase");
        let cause = a["cause"]
            .as_str()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}: {}{cause}, node {}",
            s(a, "id"),
            paint(phase, phase, color),
            s(a, "node")
        );
    }
    for b in &bad {
        let _ = writeln!(
            out,
            "  {}: {}",
            s(b, "file"),
            paint("config error", "bad", color)
        );
        let _ = writeln!(out, "    {}", s(b, "error"));
    }
    out
}

/// What `status` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Steady (an agent) or ready (a fleet's `/readyz`).
    Ready,
    /// Running but not ready, or the API refused the request.
    NotReady,
    /// The API could not be reached.
    Unreachable,
    /// Neither `--api` nor `--config`.
    Usage,
}

/// `finesse-taskd status`: asks the API at `api` (else the config's `listen`, with its
/// token) and prints the summary (or the JSON) on stdout.
pub fn command(
    api: Option<&str>,
    from_config: Option<(Listen, Option<Secret>)>,
    agent: Option<&str>,
    json: bool,
) -> Outcome {
    use std::io::IsTerminal as _;
    let target = match (api, from_config) {
        (Some(a), c) => Target {
            listen: parse_api(a),
            token: c.and_then(|(_, t)| t),
        },
        (None, Some((listen, token))) => Target { listen, token },
        (None, None) => {
            eprintln!("finesse-taskd: status needs --api ADDR or --config FILE");
            return Outcome::Usage;
        }
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Outcome::Unreachable;
    };
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let shown = runtime.block_on(async {
        if let Some(id) = agent {
            let (code, v) = fetch(&target, &format!("/v1/agents/{id}/state")).await?;
            // Readiness is the daemon's own answer, never worked out again here.
            let (ready, _) = fetch(&target, &format!("/v1/agents/{id}/readyz")).await?;
            let text = render_agent(&v, color);
            return Ok((v, text, ready == 200, code));
        }
        let (code, mut list) = fetch(&target, "/v1/agents").await?;
        if code == 200 {
            let (ready, _) = fetch(&target, "/readyz").await?;
            let mut text = render_fleet(&list, color);
            // Cluster mode: this host's part (404 without `[cluster]`).
            let (clustered, cluster) = fetch(&target, "/v1/cluster").await?;
            if clustered == 200 {
                text = format!("{}{text}", render_cluster(&cluster, color));
                list["cluster"] = cluster;
            }
            return Ok((list, text, ready == 200, code));
        }
        let (code, v) = fetch(&target, "/v1/state").await?;
        let (ready, _) = fetch(&target, "/readyz").await?;
        let text = render_agent(&v, color);
        Ok::<_, StatusError>((v, text, ready == 200, code))
    });
    match shown {
        Ok((_, _, _, code)) if !(200..300).contains(&code) => {
            eprintln!("finesse-taskd: the API answered {code}");
            Outcome::NotReady
        }
        Ok((v, text, ready, _)) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{text}");
            }
            if ready {
                Outcome::Ready
            } else {
                Outcome::NotReady
            }
        }
        Err(e) => {
            eprintln!("finesse-taskd: {e}");
            Outcome::Unreachable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_agent_reads_as_phase_links_each_mrd_dialogs_and_counters() {
        let state = json!({
            "agent": "1001001", "phase": "recovering", "cause": "xmpp_lost",
            "node": "https://a:8445", "links": { "rest": "up", "xmpp": "down" },
            "media": [
                { "id": 5002, "state": "NOT_READY", "eligible": true, "routable": true,
                  "drift": "persistent", "desiredState": "NOT_READY", "desiredReasonCodeId": 12,
                  "signin": { "failed": "E_ARM_STAT_CC_OFFLINE" } },
                { "id": 5003, "state": "", "eligible": false, "drift": false },
            ],
            "dialogs": [{ "id": "d1", "state": "ACTIVE" }, { "id": "d2", "state": "ACTIVE" }],
            "counters": { "reconnects": 2, "failovers": 1, "resyncs": 3, "signins": 4,
                          "driftCorrections": 1, "malformed": 0 },
            "lastResyncAt": "2026-12-01T20:00:00Z", "nextAttemptAt": "2026-12-01T20:00:01.500Z",
        });
        let text = render_agent(&state, false);
        assert_eq!(
            text,
            "agent 1001001: recovering (xmpp_lost), node https://a:8445, links rest up, xmpp down\n\
             \x20 next try: 2026-12-01T20:00:01.500Z\n\
             \x20 MRD 5002: NOT_READY (desired NOT_READY/12), routable, drift persistent, sign-in refused: E_ARM_STAT_CC_OFFLINE\n\
             \x20 MRD 5003: not eligible (the agent is in no skill group of it)\n\
             \x20 dialogs: 2 (ACTIVE 2)\n\
             \x20 last resync: 2026-12-01T20:00:00Z\n\
             \x20 counters: reconnects 2, failovers 1, resyncs 3, sign-ins 4, drift corrections 1, malformed 0\n"
        );
        assert!(render_agent(&state, true).contains("\x1b[33mrecovering\x1b[0m"));
    }

    #[test]
    fn a_cluster_host_reads_as_its_fence_its_lease_and_each_members_share() {
        let c = json!({
            "member": "host-a", "acting": false,
            "lease": { "id": "69ff", "actsForMs": 0, "renewalMs": 7, "renewalFailures": 4 },
            "members": [{ "name": "host-a", "owns": 5 }, { "name": "host-b", "owns": 7 }],
            "owned": [{ "agent": "1", "revision": 3 }],
            "takeovers": 2, "handovers": 1, "fenced": 1, "displaced": 0,
        });
        assert_eq!(
            render_cluster(&c, false),
            "cluster: member host-a, fenced, lease 69ff (acts for 0 ms more, last renewal 7 ms, 4 failures), owns 1\n\
             \x20 members: host-a owns 5, host-b owns 7\n\
             \x20 takeovers 2, handovers 1, fenced 1, displaced 0\n"
        );
    }

    #[test]
    fn the_api_forms_are_read() {
        assert_eq!(
            parse_api("http://127.0.0.1:7070/").to_string(),
            "127.0.0.1:7070"
        );
        assert_eq!(
            parse_api("unix:/run/x.sock").to_string(),
            "unix:/run/x.sock"
        );
    }
}
