//! What a reload changes, worked out from the two validated configurations rather than
//! listed by hand: both are serialized under the file's keys ([`super::print`]), every leaf
//! that differs is a changed key, and each key has one [`Effect`] ([`effect`]). A key added
//! to the file is in the diff without code of its own; `effect` must still place it, and a
//! test fails until it does.

use serde_json::Value;

use super::Config;
use super::print::leaves;

/// How a changed key takes effect, from the cheapest to the most disruptive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// Read where it is used, so at once (the stop policy, the lockout arithmetic).
    Live,
    /// The recovery machine's timing (the backoff starts over).
    Timing,
    /// The REST client is built again (its timeout, its body cap).
    Clients,
    /// The media settings or desired states: a resync, one corrective sign-in at most.
    Resync,
    /// Identity, credentials, nodes, CA or XMPP: the session ends and a new one starts.
    Reconnect,
    /// Held by the API listener or the logger since the start: at the next restart.
    NextStart,
}

/// The effect of a change of `key` (a leaf path such as `xmpp.ping_interval` or
/// `media[0].state`), or `None` for a key this function does not know yet.
pub fn effect(key: &str) -> Option<Effect> {
    let (table, rest) = key.split_once('.').unwrap_or((key, ""));
    let table = table.split('[').next().unwrap_or(table);
    Some(match (table, rest) {
        ("agent", "id" | "auth" | "password" | "sso_token_file" | "sso_token") => Effect::Reconnect,
        ("agent", "state_dir") => Effect::Live,
        ("sso", _) => Effect::Reconnect,
        ("finesse", "nodes" | "ca_file" | "source_address") => Effect::Reconnect,
        ("finesse", "request_timeout" | "connect_timeout" | "max_body") => Effect::Clients,
        ("finesse", "lockout_attempts" | "lockout_window" | "transfer_target_element") => {
            Effect::Live
        }
        ("xmpp", _) => Effect::Reconnect,
        ("media", _) => Effect::Resync,
        ("recovery", _) => Effect::Timing,
        ("api", "outcome_wait") => Effect::Live,
        (
            "api",
            "listen"
            | "action_wait"
            | "allowed_origins"
            | "token"
            | "event_ring"
            | "max_sse_clients"
            | "max_connections"
            | "header_read_timeout"
            | "write_timeout"
            | "socket_mode"
            | "socket_group",
        ) => Effect::NextStart,
        ("log", "format") => Effect::NextStart,
        ("shutdown", _) => Effect::Live,
        _ => return None,
    })
}

/// What a reload from one configuration to another changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// Every changed key, as the file spells it (`xmpp.ping_interval`, `media[0].state`).
    pub keys: Vec<String>,
    /// The session must end: identity, credentials, nodes, CA or XMPP changed.
    pub reconnect: bool,
    /// The credentials themselves changed (a password or token pair, or the SSO settings):
    /// an auth hold waiting out the old ones may end.
    pub credentials: bool,
    /// The media settings or desired states changed.
    pub resync: bool,
    /// The keys that take effect only at the next restart.
    pub next_start: Vec<String>,
}

fn flat(c: &Config) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    leaves("", &c.redacted(), &mut out);
    out
}

impl Config {
    /// What replacing `old` by `new` changes.
    pub fn change(old: &Config, new: &Config) -> Change {
        let (a, b) = (flat(old), flat(new));
        let value = |side: &[(String, Value)], k: &str| {
            side.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let mut keys: Vec<String> = a
            .iter()
            .chain(b.iter())
            .map(|(k, _)| k.clone())
            .filter(|k| value(&a, k) != value(&b, k))
            .collect();
        keys.sort();
        keys.dedup();
        // Secrets print as `<redacted>` on both sides: their change is seen on the values.
        let credentials = old.auth != new.auth;
        if credentials
            && !keys
                .iter()
                .any(|k| k.starts_with("agent.") || k.starts_with("sso."))
        {
            keys.push(match new.auth {
                super::Auth::Basic(_) => "agent.password".to_owned(),
                super::Auth::Sso(_) => "agent.sso_token".to_owned(),
            });
        }
        if old.api_token != new.api_token && !keys.iter().any(|k| k == "api.token") {
            keys.push("api.token".to_owned());
        }
        // A key `effect` does not know yet is treated as the most disruptive.
        let of = |k: &String| effect(k).unwrap_or(Effect::Reconnect);
        Change {
            reconnect: credentials || keys.iter().any(|k| of(k) == Effect::Reconnect),
            credentials,
            resync: keys.iter().any(|k| of(k) == Effect::Resync),
            next_start: keys
                .iter()
                .filter(|k| of(k) == Effect::NextStart)
                .cloned()
                .collect(),
            keys,
        }
    }

    /// The validated configuration as the file's tables, every secret as `<redacted>`
    /// (what `check-config` prints).
    pub fn redacted(&self) -> Value {
        super::print::tables(serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
#[path = "change_tests.rs"]
mod tests;
