//! Validation of each table of the TOML file into its ready-to-use form. Every check returns a
//! [`ConfigError`] that names the file and the dotted key; things that are allowed but unwise
//! (an inline password, plain HTTP with `insecure`) are pushed to the warnings instead.

use std::path::Path;

use super::raw::{RawAgent, RawFinesse, RawMedia, RawXmpp};
use super::{
    ChannelBinding, ConfigError, DesiredState, InterruptAction, LogoutAction, MediaConfig,
    RecoveryConfig, TlsMode, Transport, XmppConfig, choice, err,
};

/// `agent.id`: a Finesse user id.
pub(super) fn agent_id(f: &Path, a: &RawAgent) -> Result<String, ConfigError> {
    let id = a.id.trim().to_owned();
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
    Ok(id)
}

/// `finesse.nodes`: one or two https URLs (http only with `xmpp.insecure`).
pub(super) fn nodes(
    f: &Path,
    fin: &RawFinesse,
    insecure: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<reqwest::Url>, ConfigError> {
    if fin.nodes.is_empty() || fin.nodes.len() > 2 {
        return Err(err(
            f,
            "finesse.nodes",
            format!("expected 1 or 2 nodes, got {}", fin.nodes.len()),
        ));
    }
    let mut nodes = Vec::new();
    for (i, n) in fin.nodes.iter().enumerate() {
        let key = format!("finesse.nodes[{i}]");
        let url = reqwest::Url::parse(n).map_err(|e| err(f, &key, format!("{n:?}: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if insecure => warnings.push(format!("{key}: plain HTTP (insecure = true)")),
            other => {
                return Err(err(
                    f,
                    key,
                    format!("scheme {other:?}: use https (http only with xmpp.insecure = true)"),
                ));
            }
        }
        if url.host_str().is_none() {
            return Err(err(f, key, format!("{n:?} has no host")));
        }
        nodes.push(url);
    }
    Ok(nodes)
}

/// `finesse.ca_file`: a PEM file the TLS client accepts.
pub(super) fn ca(f: &Path, file: Option<&Path>) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(p) = file else { return Ok(None) };
    let bad = |e: String| err(f, "finesse.ca_file", format!("{}: {e}", p.display()));
    let pem = std::fs::read(p).map_err(|e| bad(e.to_string()))?;
    crate::tls::roots_from_pem(&pem).map_err(|e| bad(e.to_string()))?;
    Ok(Some(pem))
}

/// `[xmpp]`.
pub(super) fn xmpp(f: &Path, x: &RawXmpp) -> Result<XmppConfig, ConfigError> {
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
    let channel_binding = choice(
        f,
        "xmpp.channel_binding",
        &x.channel_binding,
        ChannelBinding::CHOICES,
    )?;
    const KNOWN: [&str; 5] = [
        "PLAIN",
        "SCRAM-SHA-1",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-256-PLUS",
    ];
    for (i, m) in x.sasl_mechanisms.iter().enumerate() {
        if !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(m)) {
            return Err(err(
                f,
                format!("xmpp.sasl_mechanisms[{i}]"),
                format!("{m:?} is not one of {}", KNOWN.join(", ")),
            ));
        }
    }
    let transport = choice(f, "xmpp.transport", &x.transport, Transport::CHOICES)?;
    if !x.websocket_path.starts_with('/')
        || x.websocket_path
            .contains(|c: char| c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(err(
            f,
            "xmpp.websocket_path",
            format!("{:?} must be a path such as \"/ws/\"", x.websocket_path),
        ));
    }
    if x.websocket_port == Some(0) {
        return Err(err(f, "xmpp.websocket_port", "must be above zero"));
    }
    let max_stanza = x.max_stanza.as_u64();
    if max_stanza < 64 * 1024 {
        return Err(err(
            f,
            "xmpp.max_stanza",
            format!(
                "{} is below 64KiB: Finesse's documents would not fit",
                x.max_stanza
            ),
        ));
    }
    Ok(XmppConfig {
        max_stanza,
        transport,
        websocket_port: x.websocket_port,
        websocket_path: x.websocket_path.clone(),
        channel_binding,
        sasl_mechanisms: x.sasl_mechanisms.clone(),
        port: x.port,
        tls,
        domain: (!x.domain.trim().is_empty()).then(|| x.domain.trim().to_owned()),
        resource: x.resource.clone(),
        ping_interval: x.ping_interval,
        ping_timeout: x.ping_timeout,
    })
}

/// `[[media]]`: at least one, each MRD once.
pub(super) fn media(
    f: &Path,
    raw: &[RawMedia],
    warnings: &mut Vec<String>,
) -> Result<Vec<MediaConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(err(f, "media", "at least one [[media]] table is required"));
    }
    let mut media: Vec<MediaConfig> = Vec::new();
    for (i, m) in raw.iter().enumerate() {
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
        let state = choice(f, &key("state"), &m.state, DesiredState::CHOICES)?;
        if state == DesiredState::Ready && m.reason_code_id.is_some() {
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
                InterruptAction::CHOICES,
            )?,
            dialog_logout_action: choice(
                f,
                &key("dialog_logout_action"),
                &m.dialog_logout_action,
                LogoutAction::CHOICES,
            )?,
            reason_code_id: if state == DesiredState::NotReady {
                m.reason_code_id
            } else {
                None
            },
            orphan_probe: match &m.orphan_probe {
                None => None,
                Some(p) => Some(super::probe::check(f, i, p)?),
            },
            state,
        });
    }
    Ok(media)
}

/// `[recovery]`.
pub(super) fn recovery(f: &Path, r: &RecoveryConfig) -> Result<RecoveryConfig, ConfigError> {
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
    Ok(r.clone())
}

/// A name usable as an XML element (letters, digits, `_`, `-`, `.`, not starting with a digit).
pub(super) fn element_name(f: &Path, key: &str, name: &str) -> Result<String, ConfigError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(err(f, key, format!("{name:?} is not an XML element name")))
    }
}

/// `[api] listen`: a loopback address or a Unix socket, or any other address only with a
/// token (a web page or another host could drive the API otherwise).
pub(super) fn api_listen(
    f: &Path,
    listen: &str,
    token: bool,
) -> Result<super::Listen, ConfigError> {
    if listen.is_empty() {
        return Err(err(f, "api.listen", "must not be empty"));
    }
    let parsed = super::Listen::parse(listen);
    if let super::Listen::Tcp(addr) = &parsed {
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = crate::tls::is_loopback_host(host);
        if !loopback && !token {
            return Err(err(
                f,
                "api.listen",
                format!(
                    "{listen:?} is not a loopback address: set [api] token_file (or the credential api-token) so that only holders of the token drive the API"
                ),
            ));
        }
    }
    Ok(parsed)
}

/// `[shutdown] timeout`: below the unit's `TimeoutStopSec` (20 s), so the stop policy is
/// never cut short by systemd's SIGKILL.
pub(super) fn shutdown_timeout(
    f: &Path,
    timeout: std::time::Duration,
) -> Result<std::time::Duration, ConfigError> {
    if timeout >= std::time::Duration::from_secs(20) {
        return Err(err(
            f,
            "shutdown.timeout",
            format!(
                "{} is not below the unit's TimeoutStopSec (20s)",
                humantime::format_duration(timeout)
            ),
        ));
    }
    Ok(timeout)
}

/// `[finesse] lockout_attempts` and `lockout_window` against `[recovery] auth_retry`: one
/// login at most every `auth_retry`, each sending the password at most twice (a refused
/// channel binding), stays below the lockout only when `auth_retry` is at least
/// `lockout_window / (lockout_attempts - 1)`. So staying under it holds by construction.
pub(super) fn lockout(
    f: &Path,
    fin: &RawFinesse,
    auth_retry: std::time::Duration,
) -> Result<(), ConfigError> {
    if fin.lockout_attempts < 3 {
        return Err(err(
            f,
            "finesse.lockout_attempts",
            format!("{} is below 3: no safe retry exists", fin.lockout_attempts),
        ));
    }
    let least = fin.lockout_window / (fin.lockout_attempts - 1);
    if auth_retry < least {
        return Err(err(
            f,
            "recovery.auth_retry",
            format!(
                "{} is below lockout_window / (lockout_attempts - 1) = {}: a wrong password could lock the account",
                humantime::format_duration(auth_retry),
                humantime::format_duration(least)
            ),
        ));
    }
    Ok(())
}
