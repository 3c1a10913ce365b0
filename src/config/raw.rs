//! The TOML file as written: one struct per table, with serde's defaults, and unknown keys
//! refused so that a typo is an error and not a silently ignored setting. Nothing here is
//! validated; [`super::check`] does that.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) agent: RawAgent,
    pub(super) finesse: RawFinesse,
    #[serde(default)]
    pub(super) xmpp: RawXmpp,
    pub(super) media: Vec<RawMedia>,
    /// Read as it is used: [`super::RecoveryConfig`] is its own table, with its defaults.
    #[serde(default)]
    pub(super) recovery: super::RecoveryConfig,
    #[serde(default)]
    pub(super) api: RawApi,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) shutdown: RawShutdown,
    #[serde(default)]
    pub(super) sso: RawSso,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawShutdown {
    pub(super) on_stop: String,
    pub(super) reason_code_id: Option<u32>,
    #[serde(with = "humantime_serde")]
    pub(super) timeout: Duration,
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
pub(super) struct RawAgent {
    pub(super) id: String,
    pub(super) password_file: Option<PathBuf>,
    pub(super) password_credential: Option<String>,
    pub(super) password: Option<Secret>,
    pub(super) state_dir: Option<PathBuf>,
    #[serde(default = "d_auth")]
    pub(super) auth: String,
    pub(super) sso_token_file: Option<PathBuf>,
    pub(super) sso_token_credential: Option<String>,
}

fn d_auth() -> String {
    "basic".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFinesse {
    pub(super) nodes: Vec<String>,
    pub(super) ca_file: Option<PathBuf>,
    #[serde(default = "d_request_timeout", with = "humantime_serde")]
    pub(super) request_timeout: Duration,
    #[serde(default = "d_connect_timeout", with = "humantime_serde")]
    pub(super) connect_timeout: Duration,
    pub(super) source_address: Option<std::net::IpAddr>,
    #[serde(default = "d_max_body")]
    pub(super) max_body: bytesize::ByteSize,
    #[serde(default = "d_transfer_element")]
    pub(super) transfer_target_element: String,
    #[serde(default = "d_lockout_attempts")]
    pub(super) lockout_attempts: u32,
    #[serde(default = "d_lockout_window", with = "humantime_serde")]
    pub(super) lockout_window: Duration,
}

fn d_lockout_attempts() -> u32 {
    5
}
fn d_lockout_window() -> Duration {
    Duration::from_secs(300)
}

fn d_transfer_element() -> String {
    "toAddress".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawXmpp {
    pub(super) port: Option<u16>,
    pub(super) tls: String,
    pub(super) domain: String,
    pub(super) resource: String,
    #[serde(with = "humantime_serde")]
    pub(super) ping_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) ping_timeout: Duration,
    pub(super) insecure: bool,
    pub(super) channel_binding: String,
    pub(super) sasl_mechanisms: Vec<String>,
    pub(super) transport: String,
    pub(super) websocket_port: Option<u16>,
    pub(super) websocket_path: String,
    pub(super) max_stanza: bytesize::ByteSize,
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
            channel_binding: "auto".into(),
            sasl_mechanisms: Vec::new(),
            transport: "tcp".into(),
            websocket_port: None,
            websocket_path: "/ws/".into(),
            // Finesse's largest documents (a Dialogs list with call variables) are tens of
            // KiB: well above them, well below what the unit's MemoryMax allows.
            max_stanza: bytesize::ByteSize::mib(1),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMedia {
    pub(super) id: u32,
    pub(super) max_dialog_limit: i64,
    pub(super) interrupt_action: String,
    #[serde(default = "d_logout_action")]
    pub(super) dialog_logout_action: String,
    #[serde(default = "d_state")]
    pub(super) state: String,
    pub(super) reason_code_id: Option<u32>,
    pub(super) orphan_probe: Option<RawProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub(super) url: String,
    #[serde(default = "d_method")]
    pub(super) method: String,
    #[serde(default = "d_gone")]
    pub(super) gone_status: Vec<u16>,
    pub(super) gone_header: Option<String>,
    pub(super) gone_body_contains: Option<String>,
    #[serde(default)]
    pub(super) accept_bare_status: bool,
    #[serde(default = "d_attempts")]
    pub(super) attempts: u32,
    #[serde(default = "d_interval", with = "humantime_serde")]
    pub(super) interval: Duration,
    #[serde(default = "d_probe_timeout", with = "humantime_serde")]
    pub(super) timeout: Duration,
    #[serde(default = "d_probe_action")]
    pub(super) action: String,
    pub(super) ca_file: Option<PathBuf>,
    #[serde(default = "d_in_flight")]
    pub(super) max_in_flight: usize,
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
pub(super) struct RawApi {
    pub(super) listen: String,
    #[serde(with = "humantime_serde")]
    pub(super) action_wait: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) outcome_wait: Duration,
    pub(super) event_ring: usize,
    pub(super) max_sse_clients: usize,
    pub(super) max_connections: usize,
    #[serde(with = "humantime_serde")]
    pub(super) header_read_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) write_timeout: Duration,
    pub(super) socket_mode: String,
    pub(super) socket_group: Option<String>,
    pub(super) allowed_origins: Vec<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) token_credential: Option<String>,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9471".into(),
            action_wait: Duration::from_secs(10),
            outcome_wait: Duration::from_secs(2),
            allowed_origins: Vec::new(),
            token_file: None,
            token_credential: None,
            event_ring: 1024,
            max_sse_clients: 32,
            max_connections: 256,
            header_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            socket_mode: "0660".into(),
            socket_group: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) format: String,
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
/// Five seconds: dozens of round trips at 100 ms and a lost SYN's retransmission (1 s), and
/// short enough that two tries at a node that accepts and never answers still leave a
/// failover well inside Finesse's 60 s forced-logout window.
fn d_connect_timeout() -> Duration {
    Duration::from_secs(5)
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

/// The `[sso]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSso {
    pub(super) xmpp_username: String,
    pub(super) xmpp_mechanisms: Vec<String>,
    pub(super) refresh_at: f64,
    pub(super) refresh_query_fallback: bool,
}

impl Default for RawSso {
    fn default() -> Self {
        Self {
            xmpp_username: "login_id".into(),
            xmpp_mechanisms: vec!["PLAIN".into()],
            refresh_at: 0.75,
            refresh_query_fallback: true,
        }
    }
}
