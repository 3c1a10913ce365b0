//! The per-agent TOML file: [`RawConfig`] mirrors it (serde, unknown keys refused), and
//! [`Config::load`] validates it table by table (`check`) into [`Config`], whose fields are
//! ready to use (durations, URLs, the password read from its file or systemd credential).
//! Every error names the file and the key; the daemon exits with 78 (EX_CONFIG) on any of
//! them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;
use raw::RawConfig;

mod api;
mod auth;
mod change;
mod check;
mod print;
mod probe;
mod raw;
mod secrets;
mod types;

pub use api::{ApiLimits, SocketAccess};
pub use change::{Change, Effect};
pub use secrets::read_again;

pub use auth::{Auth, SsoConfig, XmppUsername};
pub use probe::{
    GoneMarker, ProbeAction, ProbeConfig, ProbeMethod, Segment, Template, Unrenderable,
};
pub use types::{
    ChannelBinding, DesiredState, InterruptAction, Listen, LogFormat, LogoutAction, OnStop,
    TlsMode, Transport,
};

/// A configuration error: `file: key: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The offending key, dotted (`media[0].max_dialog_limit`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A configuration read again for a reload (by the caller of the driver: a single agent's
/// file, or a fleet's agent file with the fleet's tables).
pub type Loaded = Result<Config, ConfigError>;

/// The XMPP settings, validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Wait for the ping's answer.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// SCRAM channel binding.
    pub channel_binding: ChannelBinding,
    /// SASL mechanisms in order of preference (empty: the client's own order).
    pub sasl_mechanisms: Vec<String>,
    /// TCP or WebSocket.
    pub transport: Transport,
    /// WebSocket port; `None` takes the node URL's port (8445 on Finesse 12.6+).
    pub websocket_port: Option<u16>,
    /// WebSocket path (`/ws/` by default; `/ws` is tried once when it is refused).
    pub websocket_path: String,
    /// The largest stanza accepted from the server (bytes); a larger one drops the stream.
    pub max_stanza: u64,
}

/// One MRD's desired settings and state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MediaConfig {
    /// MRD id.
    pub id: u32,
    /// 1..=10.
    pub max_dialog_limit: u32,
    /// ACCEPT | IGNORE.
    pub interrupt_action: InterruptAction,
    /// CLOSE | TRANSFER.
    pub dialog_logout_action: LogoutAction,
    /// READY | NOT_READY after (re)sign-in.
    pub state: DesiredState,
    /// Reason code for NOT_READY.
    pub reason_code_id: Option<u32>,
    /// The orphan-dialog probe, if configured.
    pub orphan_probe: Option<ProbeConfig>,
}

/// `[recovery]`: the recovery timing, read as written (serde, with the defaults below) and
/// checked by `check::recovery`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// The first retry waits a uniform random time in `[0, first_retry_window]`.
    #[serde(with = "humantime_serde")]
    pub first_retry_window: Duration,
    /// Exponential backoff start.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Exponential backoff cap.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Growth factor.
    pub backoff_multiplier: f64,
    /// Randomization factor (0..=1).
    pub backoff_jitter: f64,
    /// Healthy this long resets the backoff.
    #[serde(with = "humantime_serde")]
    pub healthy_after: Duration,
    /// SystemInfo poll interval while waiting for IN_SERVICE.
    #[serde(with = "humantime_serde")]
    pub systeminfo_poll: Duration,
    /// Minimum wait after an authentication failure.
    #[serde(with = "humantime_serde")]
    pub auth_retry: Duration,
    /// The current node must be down (unreachable, out of service, or `finesse` unavailable)
    /// this long before the daemon moves to the other node; a blip never causes a failover.
    #[serde(with = "humantime_serde")]
    pub failover_after: Duration,
    /// A steady daemon resyncs this often anyway (0 = never): notifications can be lost
    /// without any other sign, and only a LIST shows it.
    #[serde(with = "humantime_serde")]
    pub resync_every: Duration,
    /// The reason code sent with NOT_READY after a maintenance-mode migration (Cisco: 50045;
    /// 0 = send nothing).
    pub maintenance_reason_code_id: u32,
}

impl Default for RecoveryConfig {
    /// The one place the recovery defaults are written.
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
            maintenance_reason_code_id: 50045,
        }
    }
}

/// The validated configuration. It serializes under the config file's own keys (a field
/// renamed `finesse.nodes` is `[finesse] nodes`), secrets as `<redacted>`: that one
/// derivation gives both the printed config ([`Config::redacted`]) and what a reload changed
/// ([`Config::change`]), so that a new key needs no code of its own in either.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    /// Where it was read from.
    #[serde(skip)]
    pub source: PathBuf,
    /// Finesse user id.
    #[serde(rename = "agent.id")]
    pub agent_id: String,
    /// The agent's credentials: a password, or an SSO token pair.
    #[serde(flatten)]
    pub auth: Auth,
    /// Node base URLs, side A first.
    #[serde(rename = "finesse.nodes", serialize_with = "print::urls")]
    pub nodes: Vec<reqwest::Url>,
    /// Extra trust anchor (PEM) for REST and XMPP.
    #[serde(rename = "finesse.ca_file", serialize_with = "print::present")]
    pub ca_pem: Option<Vec<u8>>,
    /// Per-request timeout.
    #[serde(rename = "finesse.request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The bound on each step of making a connection: REST's TCP connect and TLS handshake;
    /// XMPP's TCP connect, TLS, WebSocket upgrade and stream header, then its features and
    /// SASL exchange.
    #[serde(rename = "finesse.connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The local address REST and XMPP connections leave from (none: the system's choice);
    /// hosts of a cluster on one machine use one each, so Finesse tells them apart.
    #[serde(rename = "finesse.source_address")]
    pub source_address: Option<std::net::IpAddr>,
    /// Largest response body accepted.
    #[serde(rename = "finesse.max_body")]
    pub max_body: u64,
    /// XMPP settings.
    pub xmpp: XmppConfig,
    /// Desired media, one per MRD.
    pub media: Vec<MediaConfig>,
    /// Recovery timing.
    pub recovery: RecoveryConfig,
    /// Where state that must survive a restart is kept (`[agent] state_dir`, else systemd's
    /// `$STATE_DIRECTORY`); none when neither is set.
    #[serde(rename = "agent.state_dir")]
    pub state_dir: Option<PathBuf>,
    /// Local API address: `host:port` or `unix:/path`.
    #[serde(rename = "api.listen")]
    pub api_listen: Listen,
    /// How long an action waits for `steady` before it is refused with 503.
    #[serde(rename = "api.action_wait", with = "humantime_serde")]
    pub action_wait: Duration,
    /// Origins whose requests the local API takes (none by default).
    #[serde(rename = "api.allowed_origins")]
    pub api_origins: Vec<String>,
    /// The local API's bearer token, if one is required.
    #[serde(rename = "api.token")]
    pub api_token: Option<Secret>,
    /// How long a dialog action's answer waits for an asynchronous refusal from Finesse.
    #[serde(rename = "api.outcome_wait", with = "humantime_serde")]
    pub outcome_wait: Duration,
    /// The site's lockout policy: this many bad passwords …
    #[serde(rename = "finesse.lockout_attempts")]
    pub lockout_attempts: u32,
    /// … within this window lock the account.
    #[serde(rename = "finesse.lockout_window", with = "humantime_serde")]
    pub lockout_window: Duration,
    /// The element that carries a TRANSFER's target (Cisco does not document it).
    #[serde(rename = "finesse.transfer_target_element")]
    pub transfer_target_element: String,
    /// How many events the resume ring keeps.
    #[serde(rename = "api.event_ring")]
    pub event_ring: usize,
    /// What local clients can hold (`[api] max_connections`, `max_sse_clients`, timeouts).
    #[serde(flatten)]
    pub api_limits: ApiLimits,
    /// Who may connect to the API's Unix socket (`[api] socket_mode`, `socket_group`).
    #[serde(flatten)]
    pub api_socket: SocketAccess,
    /// auto | text | json.
    #[serde(rename = "log.format")]
    pub log_format: LogFormat,
    /// What to do with the agent's media when the daemon stops.
    pub shutdown: ShutdownConfig,
    /// Things worth a warning once logging is up.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The shutdown policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShutdownConfig {
    /// `leave` (restarts, upgrades: back within Finesse's 60 s window), `logout` (sign out of
    /// each MRD; dialogs closed or transferred per dialogLogoutAction) or `not_ready`.
    pub on_stop: OnStop,
    /// Reason code sent with LOGOUT or NOT_READY.
    pub reason_code_id: Option<u32>,
    /// The whole stop is bounded by this.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl ConfigError {
    /// The error at `key` of `file`.
    pub fn new(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            key: key.into(),
            message: message.into(),
        }
    }
}

fn err(file: &Path, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::new(file, key, message)
}

/// The value spelled `value` among `choices`, or an error that lists them.
fn choice<T: Copy>(
    file: &Path,
    key: &str,
    value: &str,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    match choices.iter().find(|(text, _)| *text == value) {
        Some((_, v)) => Ok(*v),
        None => {
            let names: Vec<&str> = choices.iter().map(|(t, _)| *t).collect();
            Err(err(
                file,
                key,
                format!("{value:?} is not one of {}", names.join(", ")),
            ))
        }
    }
}

impl Config {
    /// The REST client's timeouts.
    pub fn http_settings(&self) -> crate::tls::HttpSettings {
        crate::tls::HttpSettings {
            request: self.request_timeout,
            connect: self.connect_timeout,
            source: self.source_address,
        }
    }

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
        let agent_id = check::agent_id(f, &raw.agent)?;
        let auth = auth::read(f, &raw.agent, &raw.sso, &mut warnings)?;
        let nodes = check::nodes(f, &raw.finesse, raw.xmpp.insecure, &mut warnings)?;
        let ca_pem = check::ca(f, raw.finesse.ca_file.as_deref())?;
        if raw.finesse.request_timeout.is_zero() {
            return Err(err(f, "finesse.request_timeout", "must be above zero"));
        }
        if raw.finesse.connect_timeout.is_zero() {
            return Err(err(f, "finesse.connect_timeout", "must be above zero"));
        }
        let max_body = raw.finesse.max_body.as_u64();
        if max_body < 1024 {
            return Err(err(f, "finesse.max_body", "must be at least 1KiB"));
        }
        let xmpp = check::xmpp(f, &raw.xmpp)?;
        let api_token = secrets::api_token(f, &raw.api, &mut warnings)?;
        let media = check::media(f, &raw.media, &mut warnings)?;
        let recovery = check::recovery(f, &raw.recovery)?;
        check::lockout(f, &raw.finesse, recovery.auth_retry)?;
        let log_format = choice(f, "log.format", &raw.log.format, LogFormat::CHOICES)?;
        let api_limits = api::limits(f, &raw.api)?;
        let api_socket = api::socket(f, &raw.api)?;
        if !(16..=1_000_000).contains(&raw.api.event_ring) {
            return Err(err(
                f,
                "api.event_ring",
                format!("{} is out of range 16..=1000000", raw.api.event_ring),
            ));
        }

        Ok(Config {
            source: path.to_path_buf(),
            agent_id,
            auth,
            nodes,
            ca_pem,
            request_timeout: raw.finesse.request_timeout,
            connect_timeout: raw.finesse.connect_timeout,
            source_address: raw.finesse.source_address,
            max_body,
            xmpp,
            media,
            recovery,
            state_dir: raw.agent.state_dir.clone().or_else(|| {
                std::env::var_os("STATE_DIRECTORY").and_then(|v| std::env::split_paths(&v).next())
            }),
            api_listen: check::api_listen(f, &raw.api.listen, api_token.is_some())?,
            api_origins: raw.api.allowed_origins.clone(),
            api_token,
            action_wait: raw.api.action_wait,
            outcome_wait: raw.api.outcome_wait,
            lockout_attempts: raw.finesse.lockout_attempts,
            lockout_window: raw.finesse.lockout_window,
            transfer_target_element: check::element_name(
                f,
                "finesse.transfer_target_element",
                &raw.finesse.transfer_target_element,
            )?,
            event_ring: raw.api.event_ring,
            api_limits,
            api_socket,
            log_format,
            shutdown: ShutdownConfig {
                on_stop: choice(
                    f,
                    "shutdown.on_stop",
                    &raw.shutdown.on_stop,
                    OnStop::CHOICES,
                )?,
                reason_code_id: raw.shutdown.reason_code_id,
                timeout: check::shutdown_timeout(f, raw.shutdown.timeout)?,
            },
            warnings,
        })
    }
}

#[cfg(test)]
mod tests;
