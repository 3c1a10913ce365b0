//! The same simulated node served by ejabberd (Debian's package) instead of Prosody, for the
//! tests that must pass on a second XMPP server. ejabberd runs as a plain Erlang node from the
//! node's directory (config, Mnesia spool, logs and the Erlang cookie all there); the accounts
//! and the agent–publisher rosters are made inside the node at start, and a password change
//! goes through `ejabberd_ctl` on the same cookie.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tokio::process::Command;

use super::ProsodySpec;

/// Where Debian installs ejabberd's Erlang applications.
const ERL_LIBS: &str = "/usr/lib/x86_64-linux-gnu";

/// Fails with the install command when ejabberd is not installed.
pub fn check_installed() -> anyhow::Result<PathBuf> {
    let erl = PathBuf::from("/usr/bin/erl");
    let has_app = std::fs::read_dir(ERL_LIBS)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("ejabberd-"))
        })
        .unwrap_or(false);
    if erl.is_file() && has_app {
        Ok(erl)
    } else {
        bail!(
            "ejabberd is not installed (needed for --xmpp-server ejabberd). Install it with: \
             sudo apt-get update && sudo apt-get install -y ejabberd"
        )
    }
}

/// The Erlang node name of this instance (unique per directory).
fn node_name(spec: &ProsodySpec) -> String {
    let tag: String = spec
        .dir
        .display()
        .to_string()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        .to_string();
    format!("fsim{tag}@localhost")
}

fn bin(s: &str) -> String {
    format!("<<{:?}/utf8>>", s)
}

/// The Erlang expression that starts ejabberd and makes the accounts and rosters.
fn provision(spec: &ProsodySpec) -> String {
    let domain = bin(&spec.domain);
    let mut steps = vec!["{ok, _} = application:ensure_all_started(ejabberd)".to_owned()];
    for (user, password) in &spec.accounts {
        // A restarted node keeps its spool; the spec's password (changed since) wins.
        steps.push(format!(
            "ejabberd_auth:try_register({u}, {domain}, {p}), \
             ok = ejabberd_auth:set_password({u}, {domain}, {p})",
            u = bin(user),
            p = bin(password)
        ));
    }
    for (user, _) in spec.accounts.iter().filter(|(u, _)| *u != spec.publisher) {
        for (owner, contact) in [
            (user.as_str(), spec.publisher.as_str()),
            (spec.publisher.as_str(), user.as_str()),
        ] {
            steps.push(format!(
                "mod_admin_extra:add_rosteritem({}, {domain}, {}, {domain}, {}, <<\"Finesse\">>, <<\"both\">>)",
                bin(owner),
                bin(contact),
                bin(contact)
            ));
        }
    }
    steps.push("io:format(\"provisioned~n\")".to_owned());
    steps.join(", ") + "."
}

/// The command that runs the node in the foreground.
pub fn command(spec: &ProsodySpec) -> Command {
    let mut cmd = if std::path::Path::new("/usr/bin/setpriv").exists() {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args(["--pdeathsig", "KILL", "--", "/usr/bin/erl"]);
        c
    } else {
        Command::new("/usr/bin/erl")
    };
    let spool = spec.dir.join("spool");
    cmd.args(["-sname", &node_name(spec), "-noinput", "-mnesia", "dir"])
        .arg(format!("{:?}", spool.display().to_string()))
        .args(["-eval", &provision(spec)])
        .env("HOME", &spec.dir)
        .env("ERL_LIBS", ERL_LIBS)
        .env("EJABBERD_CONFIG_PATH", spec.dir.join("ejabberd.yml"))
        .env("EJABBERD_LOG_PATH", spec.dir.join("ejabberd.log"))
        .env("ERL_CRASH_DUMP", spec.dir.join("erl_crash.dump"));
    cmd
}

/// Changes a password in the running node, through its HTTP API on the loopback WebSocket
/// listener (milliseconds, where `ejabberdctl` starts a VM: a simulated IdS must answer a
/// refresh as fast as a real one).
pub async fn set_password(spec: &ProsodySpec, user: &str, password: &str) -> anyhow::Result<()> {
    let url = format!(
        "http://127.0.0.1:{}/api/change_password",
        spec.websocket_port
    );
    let body = serde_json::json!({ "user": user, "host": spec.domain, "newpass": password });
    let response = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .context("calling ejabberd's change_password")?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        bail!("ejabberd change_password answered {status}: {text}");
    }
    Ok(())
}

/// `ejabberd.yml` for one simulated node.
pub fn config_text(spec: &ProsodySpec) -> String {
    let starttls = if spec.plain {
        "starttls: true"
    } else {
        "starttls_required: true"
    };
    let smacks = if spec.smacks {
        "  mod_stream_mgmt: {}\n"
    } else {
        ""
    };
    format!(
        r#"# Generated by finesse-sim for one simulated Finesse node. Loopback only.
hosts:
  - "{domain}"
loglevel: info
log_rotate_count: 0
certfiles:
  - "{cert}"
  - "{key}"
listen:
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    {starttls}
  -
    port: {dtls}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    tls: true
  -
    port: {ws}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      "{ws_path}": ejabberd_http_ws
      "/api": mod_http_api
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
  "loopback http":
    from:
      - mod_http_api
    who:
      ip: 127.0.0.1/8
    what: "*"
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
  admin:
    user:
      - "{publisher}@{domain}"
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  pubsub_createnode:
    allow: local
modules:
  mod_roster: {{}}
  mod_ping: {{}}
  mod_disco: {{}}
  mod_caps: {{}}
  mod_admin_extra: {{}}
  mod_http_api: {{}}
{smacks}  mod_pubsub:
    host: "pubsub.{domain}"
    access_createnode: pubsub_createnode
    plugins:
      - flat
"#,
        domain = spec.domain,
        cert = spec.pki.cert_file.display(),
        key = spec.pki.key_file.display(),
        c2s = spec.c2s_port,
        dtls = spec.direct_tls_port,
        ws = spec.websocket_port,
        ws_path = super::WEBSOCKET_PATH,
        publisher = spec.publisher,
    )
}
