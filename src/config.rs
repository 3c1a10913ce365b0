//! The per-agent TOML file: [`RawConfig`] mirrors it (serde, unknown keys refused), and
//! [`Config::load`] validates it into [`Config`], whose fields are ready to use (durations,
//! URLs, the password read from its file or systemd credential). Every error names the file
//! and the key; the daemon exits with 78 (EX_CONFIG) on any of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
use crate::xmpp::TlsMode;

/// A configuration error: `file: key: message`.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The offending key, dotted (`media[0].max_dialog_limit`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    agent: RawAgent,
    finesse: RawFinesse,
    #[serde(default)]
    xmpp: RawXmpp,
    media: Vec<RawMedia>,
    #[serde(default)]
    recovery: RawRecovery,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    shutdown: RawShutdown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawShutdown {
    on_stop: String,
    reason_code_id: Option<u32>,
    #[serde(with = "humantime_serde")]
    timeout: Duration,
}

impl Default for RawShutdown {
    fn default() -> Self {
        Self {
            on_stop: "leave".into(),
            reason_code_id: None,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: String,
    password_file: Option<PathBuf>,
    password_credential: Option<String>,
    password: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFinesse {
    nodes: Vec<String>,
    ca_file: Option<PathBuf>,
    #[serde(default = "d_request_timeout", with = "humantime_serde")]
    request_timeout: Duration,
    #[serde(default = "d_max_body")]
    max_body: bytesize::ByteSize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawXmpp {
    port: Option<u16>,
    tls: String,
    domain: String,
    resource: String,
    #[serde(with = "humantime_serde")]
    ping_interval: Duration,
    #[serde(with = "humantime_serde")]
    ping_timeout: Duration,
    insecure: bool,
}

impl Default for RawXmpp {
    fn default() -> Self {
        Self {
            port: None,
            tls: "direct".into(),
            domain: String::new(),
            resource: "taskd".into(),
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            insecure: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    id: u32,
    max_dialog_limit: i64,
    interrupt_action: String,
    #[serde(default = "d_logout_action")]
    dialog_logout_action: String,
    #[serde(default = "d_state")]
    state: String,
    reason_code_id: Option<u32>,
    orphan_probe: Option<RawProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    url: String,
    #[serde(default = "d_method")]
    method: String,
    #[serde(default = "d_gone")]
    gone_status: Vec<u16>,
    #[serde(default = "d_attempts")]
    attempts: u32,
    #[serde(default = "d_interval", with = "humantime_serde")]
    interval: Duration,
    #[serde(default = "d_probe_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default = "d_probe_action")]
    action: String,
    ca_file: Option<PathBuf>,
    #[serde(default = "d_in_flight")]
    max_in_flight: usize,
}

fn d_method() -> String {
    "GET".into()
}
fn d_gone() -> Vec<u16> {
    vec![404, 410]
}
fn d_attempts() -> u32 {
    3
}
fn d_interval() -> Duration {
    Duration::from_secs(10)
}
fn d_probe_timeout() -> Duration {
    Duration::from_secs(3)
}
fn d_probe_action() -> String {
    "close".into()
}
fn d_in_flight() -> usize {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRecovery {
    #[serde(with = "humantime_serde")]
    first_retry_window: Duration,
    #[serde(with = "humantime_serde")]
    backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    backoff_max: Duration,
    backoff_multiplier: f64,
    backoff_jitter: f64,
    #[serde(with = "humantime_serde")]
    healthy_after: Duration,
    #[serde(with = "humantime_serde")]
    systeminfo_poll: Duration,
    #[serde(with = "humantime_serde")]
    auth_retry: Duration,
    #[serde(with = "humantime_serde")]
    failover_after: Duration,
    #[serde(with = "humantime_serde")]
    resync_every: Duration,
}

impl Default for RawRecovery {
    fn default() -> Self {
        Self {
            first_retry_window: Duration::from_secs(2),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            backoff_jitter: 0.5,
            healthy_after: Duration::from_secs(30),
            systeminfo_poll: Duration::from_secs(5),
            auth_retry: Duration::from_secs(360),
            failover_after: Duration::from_secs(10),
            resync_every: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    listen: String,
    #[serde(with = "humantime_serde")]
    action_wait: Duration,
    event_ring: usize,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9471".into(),
            action_wait: Duration::from_secs(10),
            event_ring: crate::events::RING,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "auto".into(),
        }
    }
}

fn d_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_max_body() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(1)
}
fn d_logout_action() -> String {
    "CLOSE".into()
}
fn d_state() -> String {
    "READY".into()
}

/// The XMPP settings, validated.
#[derive(Debug, Clone)]
pub struct XmppConfig {
    /// Port override; `None` takes SystemInfo's per-node port, else 5223/5222 by `tls`.
    pub port: Option<u16>,
    /// Direct TLS, STARTTLS or none.
    pub tls: TlsMode,
    /// Domain override; `None` takes SystemInfo's xmppDomain.
    pub domain: Option<String>,
    /// The resource bound (never `desktop`).
    pub resource: String,
    /// Silence before a ping.
    pub ping_interval: Duration,
    /// Wait for the ping's answer.
    pub ping_timeout: Duration,
}

/// One MRD's desired settings and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// MRD id.
    pub id: u32,
    /// 1..=10.
    pub max_dialog_limit: u32,
    /// ACCEPT | IGNORE.
    pub interrupt_action: String,
    /// CLOSE | TRANSFER.
    pub dialog_logout_action: String,
    /// READY | NOT_READY after (re)sign-in.
    pub state: String,
    /// Reason code for NOT_READY.
    pub reason_code_id: Option<u32>,
    /// The orphan-dialog probe, if configured.
    pub orphan_probe: Option<crate::orphan::ProbeConfig>,
}

/// Recovery timing.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// The first retry waits a uniform random time in `[0, first_retry_window]`.
    pub first_retry_window: Duration,
    /// Exponential backoff start.
    pub backoff_initial: Duration,
    /// Exponential backoff cap.
    pub backoff_max: Duration,
    /// Growth factor.
    pub backoff_multiplier: f64,
    /// Randomization factor (0..=1).
    pub backoff_jitter: f64,
    /// Healthy this long resets the backoff.
    pub healthy_after: Duration,
    /// SystemInfo poll interval while waiting for IN_SERVICE.
    pub systeminfo_poll: Duration,
    /// Minimum wait after an authentication failure.
    pub auth_retry: Duration,
    /// The current node must be down (unreachable, out of service, or `finesse` unavailable)
    /// this long before the daemon moves to the other node; a blip never causes a failover.
    pub failover_after: Duration,
    /// A steady daemon resyncs this often anyway (0 = never): notifications can be lost
    /// without any other sign, and only a LIST shows it.
    pub resync_every: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from.
    pub source: PathBuf,
    /// Finesse user id.
    pub agent_id: String,
    /// The agent's password.
    pub password: Secret,
    /// Node base URLs, side A first.
    pub nodes: Vec<reqwest::Url>,
    /// Extra trust anchor (PEM) for REST and XMPP.
    pub ca_pem: Option<Vec<u8>>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_body: u64,
    /// XMPP settings.
    pub xmpp: XmppConfig,
    /// Desired media, one per MRD.
    pub media: Vec<MediaConfig>,
    /// Recovery timing.
    pub recovery: RecoveryConfig,
    /// Local API address: `host:port` or `unix:/path`.
    pub api_listen: String,
    /// How long an action waits for `steady` before it is refused with 503.
    pub action_wait: Duration,
    /// How many events the resume ring keeps.
    pub event_ring: usize,
    /// auto | text | json.
    pub log_format: String,
    /// What to do with the agent's media when the daemon stops.
    pub shutdown: ShutdownConfig,
    /// Things worth a warning once logging is up.
    pub warnings: Vec<String>,
}

/// The shutdown policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// `leave` (restarts, upgrades: back within Finesse's 60 s window), `logout` (sign out of
    /// each MRD; dialogs closed or transferred per dialogLogoutAction) or `not_ready`.
    pub on_stop: String,
    /// Reason code sent with LOGOUT or NOT_READY.
    pub reason_code_id: Option<u32>,
    /// The whole stop is bounded by this.
    pub timeout: Duration,
}

fn err(file: &Path, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: file.display().to_string(),
        key: key.into(),
        message: message.into(),
    }
}

fn choice(file: &Path, key: &str, value: &str, allowed: &[&str]) -> Result<String, ConfigError> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(err(
            file,
            key,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        ))
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path, "(file)", e.to_string()))?;
        Self::parse(path, &text)
    }

    /// Validates TOML text that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let key = e
                .span()
                .map(|s| {
                    format!(
                        "line {}",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_else(|| "(toml)".into());
            err(path, key, message)
        })?;
        let mut warnings = Vec::new();
        let f = path;

        let id = raw.agent.id.trim().to_owned();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(err(
                f,
                "agent.id",
                format!("{id:?} is not a Finesse user id"),
            ));
        }
        let password = read_password(f, &raw.agent, &mut warnings)?;

        if raw.finesse.nodes.is_empty() || raw.finesse.nodes.len() > 2 {
            return Err(err(
                f,
                "finesse.nodes",
                format!("expected 1 or 2 nodes, got {}", raw.finesse.nodes.len()),
            ));
        }
        let mut nodes = Vec::new();
        for (i, n) in raw.finesse.nodes.iter().enumerate() {
            let url = reqwest::Url::parse(n)
                .map_err(|e| err(f, format!("finesse.nodes[{i}]"), format!("{n:?}: {e}")))?;
            match url.scheme() {
                "https" => {}
                "http" if raw.xmpp.insecure => {
                    warnings.push(format!("finesse.nodes[{i}]: plain HTTP (insecure = true)"))
                }
                other => {
                    return Err(err(
                        f,
                        format!("finesse.nodes[{i}]"),
                        format!(
                            "scheme {other:?}: use https (http only with xmpp.insecure = true)"
                        ),
                    ));
                }
            }
            if url.host_str().is_none() {
                return Err(err(
                    f,
                    format!("finesse.nodes[{i}]"),
                    format!("{n:?} has no host"),
                ));
            }
            nodes.push(url);
        }
        let ca_pem = match &raw.finesse.ca_file {
            None => None,
            Some(p) => {
                let pem = std::fs::read(p)
                    .map_err(|e| err(f, "finesse.ca_file", format!("{}: {e}", p.display())))?;
                crate::xmpp::Connector::client_config_from_pem(&pem)
                    .map_err(|e| err(f, "finesse.ca_file", format!("{}: {e}", p.display())))?;
                Some(pem)
            }
        };
        if raw.finesse.request_timeout.is_zero() {
            return Err(err(f, "finesse.request_timeout", "must be above zero"));
        }
        let max_body = raw.finesse.max_body.as_u64();
        if max_body < 1024 {
            return Err(err(f, "finesse.max_body", "must be at least 1KiB"));
        }

        let x = &raw.xmpp;
        let tls = match x.tls.as_str() {
            "direct" => TlsMode::Direct,
            "starttls" => TlsMode::StartTls,
            "none" if x.insecure => TlsMode::None,
            "none" => return Err(err(f, "xmpp.tls", "\"none\" needs xmpp.insecure = true")),
            other => {
                return Err(err(
                    f,
                    "xmpp.tls",
                    format!("{other:?} is not one of direct, starttls, none"),
                ));
            }
        };
        if x.resource.is_empty() || x.resource.eq_ignore_ascii_case("desktop") {
            return Err(err(
                f,
                "xmpp.resource",
                format!("{:?} is refused: Finesse reserves \"desktop\"", x.resource),
            ));
        }
        if x.ping_interval.is_zero() || x.ping_timeout.is_zero() {
            return Err(err(
                f,
                "xmpp.ping_interval",
                "ping_interval and ping_timeout must be above zero",
            ));
        }

        if raw.media.is_empty() {
            return Err(err(f, "media", "at least one [[media]] table is required"));
        }
        let mut media: Vec<MediaConfig> = Vec::new();
        for (i, m) in raw.media.iter().enumerate() {
            let key = |k: &str| format!("media[{i}].{k}");
            if media.iter().any(|o| o.id == m.id) {
                return Err(err(f, key("id"), format!("MRD {} appears twice", m.id)));
            }
            if !(1..=10).contains(&m.max_dialog_limit) {
                return Err(err(
                    f,
                    key("max_dialog_limit"),
                    format!("{} is out of range 1..=10", m.max_dialog_limit),
                ));
            }
            let state = choice(f, &key("state"), &m.state, &["READY", "NOT_READY"])?;
            if state == "READY" && m.reason_code_id.is_some() {
                warnings.push(format!(
                    "{}: ignored with state READY",
                    key("reason_code_id")
                ));
            }
            media.push(MediaConfig {
                id: m.id,
                max_dialog_limit: m.max_dialog_limit as u32,
                interrupt_action: choice(
                    f,
                    &key("interrupt_action"),
                    &m.interrupt_action,
                    &["ACCEPT", "IGNORE"],
                )?,
                dialog_logout_action: choice(
                    f,
                    &key("dialog_logout_action"),
                    &m.dialog_logout_action,
                    &["CLOSE", "TRANSFER"],
                )?,
                reason_code_id: if state == "NOT_READY" {
                    m.reason_code_id
                } else {
                    None
                },
                orphan_probe: match &m.orphan_probe {
                    None => None,
                    Some(p) => Some(probe(f, i, p)?),
                },
                state,
            });
        }

        let r = &raw.recovery;
        if !(0.0..=1.0).contains(&r.backoff_jitter) {
            return Err(err(
                f,
                "recovery.backoff_jitter",
                format!("{} is out of range 0..=1", r.backoff_jitter),
            ));
        }
        if r.backoff_multiplier < 1.0 {
            return Err(err(
                f,
                "recovery.backoff_multiplier",
                "must be at least 1.0",
            ));
        }
        if r.backoff_initial.is_zero() || r.backoff_max < r.backoff_initial {
            return Err(err(
                f,
                "recovery.backoff_max",
                "needs 0 < backoff_initial <= backoff_max",
            ));
        }
        if r.systeminfo_poll.is_zero() {
            return Err(err(f, "recovery.systeminfo_poll", "must be above zero"));
        }
        choice(f, "log.format", &raw.log.format, &["auto", "text", "json"])?;
        if !(16..=1_000_000).contains(&raw.api.event_ring) {
            return Err(err(
                f,
                "api.event_ring",
                format!("{} is out of range 16..=1000000", raw.api.event_ring),
            ));
        }
        if raw.api.listen.is_empty() {
            return Err(err(f, "api.listen", "must not be empty"));
        }

        Ok(Config {
            source: path.to_path_buf(),
            agent_id: id,
            password,
            nodes,
            ca_pem,
            request_timeout: raw.finesse.request_timeout,
            max_body,
            xmpp: XmppConfig {
                port: x.port,
                tls,
                domain: (!x.domain.trim().is_empty()).then(|| x.domain.trim().to_owned()),
                resource: x.resource.clone(),
                ping_interval: x.ping_interval,
                ping_timeout: x.ping_timeout,
            },
            media,
            recovery: RecoveryConfig {
                first_retry_window: r.first_retry_window,
                backoff_initial: r.backoff_initial,
                backoff_max: r.backoff_max,
                backoff_multiplier: r.backoff_multiplier,
                backoff_jitter: r.backoff_jitter,
                healthy_after: r.healthy_after,
                systeminfo_poll: r.systeminfo_poll,
                auth_retry: r.auth_retry,
                failover_after: r.failover_after,
                resync_every: r.resync_every,
            },
            api_listen: raw.api.listen.clone(),
            action_wait: raw.api.action_wait,
            event_ring: raw.api.event_ring,
            log_format: raw.log.format.clone(),
            shutdown: ShutdownConfig {
                on_stop: choice(
                    f,
                    "shutdown.on_stop",
                    &raw.shutdown.on_stop,
                    &["leave", "logout", "not_ready"],
                )?,
                reason_code_id: raw.shutdown.reason_code_id,
                timeout: raw.shutdown.timeout,
            },
            warnings,
        })
    }
}

impl Config {
    /// The validated configuration as JSON, with the password replaced by `<redacted>`.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": { "id": self.agent_id, "password": "<redacted>" },
            "finesse": {
                "nodes": self.nodes.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                "ca_file": self.ca_pem.is_some(),
                "request_timeout": humantime::format_duration(self.request_timeout).to_string(),
                "max_body": self.max_body,
            },
            "xmpp": {
                "port": self.xmpp.port,
                "tls": format!("{:?}", self.xmpp.tls),
                "domain": self.xmpp.domain,
                "resource": self.xmpp.resource,
                "ping_interval": humantime::format_duration(self.xmpp.ping_interval).to_string(),
                "ping_timeout": humantime::format_duration(self.xmpp.ping_timeout).to_string(),
            },
            "media": self.media.iter().map(|m| serde_json::json!({
                "id": m.id, "max_dialog_limit": m.max_dialog_limit, "interrupt_action": m.interrupt_action,
                "dialog_logout_action": m.dialog_logout_action, "state": m.state, "reason_code_id": m.reason_code_id,
            })).collect::<Vec<_>>(),
            "recovery": {
                "first_retry_window": humantime::format_duration(self.recovery.first_retry_window).to_string(),
                "backoff_initial": humantime::format_duration(self.recovery.backoff_initial).to_string(),
                "backoff_max": humantime::format_duration(self.recovery.backoff_max).to_string(),
                "backoff_multiplier": self.recovery.backoff_multiplier,
                "backoff_jitter": self.recovery.backoff_jitter,
                "healthy_after": humantime::format_duration(self.recovery.healthy_after).to_string(),
                "systeminfo_poll": humantime::format_duration(self.recovery.systeminfo_poll).to_string(),
                "auth_retry": humantime::format_duration(self.recovery.auth_retry).to_string(),
                "failover_after": humantime::format_duration(self.recovery.failover_after).to_string(),
            },
            "api": { "listen": self.api_listen, "action_wait": humantime::format_duration(self.action_wait).to_string(), "event_ring": self.event_ring },
            "log": { "format": self.log_format },
            "shutdown": { "on_stop": self.shutdown.on_stop, "reason_code_id": self.shutdown.reason_code_id, "timeout": humantime::format_duration(self.shutdown.timeout).to_string() },
        })
    }
}

fn probe(f: &Path, i: usize, p: &RawProbe) -> Result<crate::orphan::ProbeConfig, ConfigError> {
    let key = |k: &str| format!("media[{i}].orphan_probe.{k}");
    let url = crate::orphan::Template::parse(&p.url).map_err(|e| err(f, key("url"), e))?;
    if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
        return Err(err(
            f,
            key("url"),
            format!("{:?} must start with http:// or https://", p.url),
        ));
    }
    let method = choice(f, &key("method"), &p.method, &["GET", "HEAD"])?;
    if p.gone_status.is_empty() || p.gone_status.iter().any(|s| !(100..=599).contains(s)) {
        return Err(err(
            f,
            key("gone_status"),
            "needs HTTP statuses (100..=599)",
        ));
    }
    if p.attempts == 0 {
        return Err(err(f, key("attempts"), "must be at least 1"));
    }
    if p.timeout.is_zero() {
        return Err(err(f, key("timeout"), "must be above zero"));
    }
    if p.max_in_flight == 0 {
        return Err(err(f, key("max_in_flight"), "must be at least 1"));
    }
    let action = choice(f, &key("action"), &p.action, &["close", "report"])?;
    let ca_pem = match &p.ca_file {
        None => None,
        Some(c) => Some(
            std::fs::read(c)
                .map_err(|e| err(f, key("ca_file"), format!("{}: {e}", c.display())))?,
        ),
    };
    Ok(crate::orphan::ProbeConfig {
        url,
        url_text: p.url.clone(),
        head: method == "HEAD",
        gone_status: p.gone_status.clone(),
        attempts: p.attempts,
        interval: p.interval,
        timeout: p.timeout,
        close: action == "close",
        ca_pem,
        max_in_flight: p.max_in_flight,
    })
}

fn read_password(
    f: &Path,
    a: &RawAgent,
    warnings: &mut Vec<String>,
) -> Result<Secret, ConfigError> {
    let given = [
        a.password_file.is_some(),
        a.password_credential.is_some(),
        a.password.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(err(
            f,
            "agent.password_file",
            "give exactly one of password_file, password_credential, password",
        ));
    }
    if let Some(p) = &a.password {
        warnings.push("agent.password: an inline password is readable by anyone who can read the config; use password_file or password_credential".into());
        return Ok(p.clone());
    }
    let (key, path) = match (&a.password_file, &a.password_credential) {
        (Some(p), _) => ("agent.password_file", p.clone()),
        (None, Some(name)) => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                err(
                    f,
                    "agent.password_credential",
                    "CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)",
                )
            })?;
            ("agent.password_credential", PathBuf::from(dir).join(name))
        }
        (None, None) => return Err(err(f, "agent.password_file", "missing")),
    };
    let meta =
        std::fs::metadata(&path).map_err(|e| err(f, key, format!("{}: {e}", path.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            warnings.push(format!(
                "{key}: {} is world-readable; chmod o-r it",
                path.display()
            ));
        }
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| err(f, key, format!("{}: {e}", path.display())))?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(err(f, key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(password))
}

#[cfg(test)]
mod tests;
