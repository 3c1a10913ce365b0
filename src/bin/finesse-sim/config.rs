//! The simulator's TOML configuration: the cluster (domain, nodes), the agents and their MRDs,
//! and every behaviour the facts file marks as inferred or unknown, so that a test can choose
//! the variant it wants.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The whole simulator configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The XMPP domain of the cluster (Finesse `xmppDomain`); also the TLS name.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// The agents, with their passwords and MRDs: `[[agents]]` tables, or a range
    /// `agents = { first = 1001001, count = 2000, mrds = [5002] }` (see [`AgentRange`]).
    #[serde(deserialize_with = "agents")]
    pub agents: Vec<AgentConfig>,
    /// The media routing domains the agents may belong to.
    pub mrds: Vec<MrdConfig>,
    /// Side A and side B (one or two).
    #[serde(default = "default_nodes")]
    pub nodes: Vec<NodeConfig>,
    /// Behaviour switches.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// The publisher account used without `--spawn-prosody`.
    #[serde(default)]
    pub publisher: Publisher,
    /// The IdS's token lifetimes and shapes (used with `--sso`).
    #[serde(default)]
    pub sso: crate::ids::IdsSettings,
    /// The network every node's links start under (latency, jitter, bandwidth, stalls; see
    /// [`crate::network`]); `--rtt` replaces it.
    #[serde(default)]
    pub network: crate::network::Conditions,
}

/// One agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Finesse user id (also the XMPP local part).
    pub id: String,
    /// The agent's password (a test credential).
    pub password: String,
    /// The MRD ids this agent is configured for.
    pub mrds: Vec<u32>,
    /// Display name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// The loginName (UCCE: differs from the loginId; the IdS names the user by it).
    #[serde(default)]
    pub login_name: Option<String>,
}

/// Agents by the thousand: ids `first`, `first + 1`, … (`count` of them), each in `mrds`,
/// with `password` (`{id}` is replaced by the agent's id, `{n}` by its index from 0).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRange {
    /// The first id.
    pub first: u64,
    /// How many.
    pub count: u32,
    /// The MRDs each is configured for.
    pub mrds: Vec<u32>,
    /// The password pattern.
    #[serde(default = "default_range_password")]
    pub password: String,
}

fn default_range_password() -> String {
    "agent-{id}-secret".into()
}

/// `agents` as a list of tables or as an [`AgentRange`].
fn agents<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<AgentConfig>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a list of [[agents]] tables, or a range { first, count, mrds, password }"
    )]
    enum Agents {
        List(Vec<AgentConfig>),
        Range(AgentRange),
    }
    Ok(match Agents::deserialize(d)? {
        Agents::List(list) => list,
        Agents::Range(r) => (0..r.count)
            .map(|n| {
                let id = (r.first + u64::from(n)).to_string();
                AgentConfig {
                    password: r
                        .password
                        .replace("{id}", &id)
                        .replace("{n}", &n.to_string()),
                    id,
                    mrds: r.mrds.clone(),
                    first_name: None,
                    last_name: None,
                    login_name: None,
                }
            })
            .collect(),
    })
}

/// One media routing domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MrdConfig {
    /// The MRD id.
    pub id: u32,
    /// The MRD's enterprise name (the dialogs' `mediaType`).
    pub name: String,
    /// Whether voice or other MRDs may interrupt it.
    #[serde(default)]
    pub interruptible: bool,
    /// The queue offered tasks come from.
    #[serde(default = "default_queue")]
    pub queue_name: String,
}

/// One Finesse node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// "A" or "B" (any short name).
    pub name: String,
    /// The REST listener's address; port 0 takes a free port.
    #[serde(default = "default_rest_listen")]
    pub rest_listen: String,
    /// The host the node reports and the daemon connects to.
    #[serde(default = "default_host")]
    pub host: String,
    /// XMPP STARTTLS port of an external server (ignored with `--spawn-prosody`).
    #[serde(default)]
    pub xmpp_port: Option<u16>,
    /// XMPP direct-TLS port of an external server (ignored with `--spawn-prosody`).
    #[serde(default)]
    pub xmpp_secure_port: Option<u16>,
}

/// Which form an ARM error (already logged in, not logged in) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorForm {
    /// HTTP 202, then an apiErrors notification on the Media node (the likely real behaviour).
    Async,
    /// HTTP 400 with an ApiErrors body.
    Sync,
}

/// The behaviours the facts leave open, and Finesse's timing numbers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    /// How ARM errors are delivered.
    pub arm_errors: ErrorForm,
    /// Subscribe every agent to its `/Media` and `/Dialogs/Media` nodes (SystemInfo always is).
    pub auto_subscribe_media: bool,
    /// Report per-node ports in SystemInfo (Finesse 12.6(2)+); off mimics 12.5.
    pub systeminfo_ports: bool,
    /// The state a signed-in media reads on a node it did not sign in on.
    pub failover_state: String,
    /// Forced logout after the agent's presence is gone this long; `None` disables it.
    #[serde(with = "humantime_serde")]
    pub forced_logout_after: Option<Duration>,
    /// Bad passwords that lock the account.
    pub lockout_attempts: u32,
    /// Window in which they must fall.
    #[serde(with = "humantime_serde")]
    pub lockout_window: Duration,
    /// How long the lock lasts.
    #[serde(with = "humantime_serde")]
    pub lockout_duration: Duration,
    /// The settings a node reports where the agent never signed in.
    pub default_max_dialog_limit: u32,
    /// The settings a node reports where the agent never signed in.
    pub default_interrupt_action: String,
    /// The settings a node reports where the agent never signed in.
    pub default_dialog_logout_action: String,
    /// Media notifications carry `interruptAction` (Cisco's published sample has none).
    pub media_notification_interrupt_action: bool,
    /// A non-interruptible MRD reports `interruptAction` IGNORE whatever the sign-in asked
    /// for (Cisco's Media GET example).
    pub non_interruptible_reports_ignore: bool,
    /// Update `event` values in lower case (`put`, as a real 12.5 capture shows).
    pub lowercase_events: bool,
    /// A changed dialog is published as `<dialog><Dialog>…</Dialog></dialog>` (else the
    /// fields directly under `<dialog>`).
    pub changed_dialog_wrapper: bool,
    /// The `notification` element is in `urn:xmpp:push:0` (a real 12.5 capture), else in
    /// `http://jabber.org/protocol/pubsub`.
    pub push_namespace: bool,
    /// A routable PUT that changes nothing is answered with Cisco's example error
    /// (ErrorData 1, `E_ARM_STAT_ALREADY_IN_REQUESTED_AGENT_MODE`); else it is ignored.
    pub routable_error_data_one: bool,
    /// Sign-ins refused with this ARM error (CCE offline, performance limit, …).
    pub refuse_signin: Option<Refusal>,
    /// Media notifications go to the per-MRD node `/finesse/api/User/{id}/Media/{mrd}` (the
    /// FAQ's form) instead of `/finesse/api/User/{id}/Media` (the Media notification page's).
    pub media_per_mrd_node: bool,
    /// Media documents in Cisco's element order (interruptAction last; a Media notification's
    /// Update starts with event, source, requestId).
    pub cisco_element_order: bool,
    /// Dialog actions refused with this ARM error (asynchronously, with the requestId, when
    /// `arm_errors` is async).
    pub refuse_dialog_actions: Option<Refusal>,
    /// READY / NOT_READY changes are refused by ARM (asynchronously, as `arm_errors` says).
    pub refuse_state_changes: Option<Refusal>,
    /// READY / NOT_READY changes are answered with a 307 redirect.
    pub redirect_state_changes: bool,
    /// Which spellings of the WebSocket path the HTTPS front end serves: `both` (Openfire
    /// does), `slash` (`/ws/` only) or `bare` (`/ws` only).
    pub ws_paths: String,
    /// One-shot: the next WebSocket session is answered with `<close see-other-uri=…/>`
    /// naming this path on the same host and port (RFC 7395's redirect).
    pub ws_see_other_path: Option<String>,
}

/// A sign-in refusal the simulator answers with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// Only this MRD (all when absent).
    #[serde(default)]
    pub mrd: Option<u32>,
    /// The E_ARM_STAT_* constant.
    pub constant: String,
    /// Its ErrorData.
    pub code: u32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            arm_errors: ErrorForm::Async,
            auto_subscribe_media: false,
            systeminfo_ports: true,
            failover_state: "WORK_NOT_READY".into(),
            forced_logout_after: Some(Duration::from_secs(60)),
            lockout_attempts: 5,
            lockout_window: Duration::from_secs(300),
            lockout_duration: Duration::from_secs(300),
            default_max_dialog_limit: 1,
            default_interrupt_action: "ACCEPT".into(),
            default_dialog_logout_action: "CLOSE".into(),
            media_notification_interrupt_action: false,
            non_interruptible_reports_ignore: true,
            lowercase_events: true,
            changed_dialog_wrapper: true,
            push_namespace: true,
            routable_error_data_one: true,
            refuse_signin: None,
            refuse_dialog_actions: None,
            refuse_state_changes: None,
            redirect_state_changes: false,
            media_per_mrd_node: false,
            cisco_element_order: true,
            ws_paths: "both".into(),
            ws_see_other_path: None,
        }
    }
}

/// The Finesse publisher account on external XMPP servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Publisher {
    /// Local part of the publisher JID.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The CA that signed the external servers' certificates.
    pub ca_file: Option<String>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self {
            user: "finesse".into(),
            password: "finesse-publisher".into(),
            ca_file: None,
        }
    }
}

fn default_domain() -> String {
    "finesse.test".into()
}
fn default_queue() -> String {
    "Chat.SG".into()
}
fn default_rest_listen() -> String {
    "127.0.0.1:0".into()
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_nodes() -> Vec<NodeConfig> {
    ["A", "B"]
        .into_iter()
        .map(|name| NodeConfig {
            name: name.into(),
            rest_listen: default_rest_listen(),
            host: default_host(),
            xmpp_port: None,
            xmpp_secure_port: None,
        })
        .collect()
}

impl SimConfig {
    /// Reads and checks a config file; errors name the file and the offending key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let config: SimConfig =
            toml::from_str(&text).with_context(|| format!("{}: invalid", path.display()))?;
        config
            .check()
            .with_context(|| format!("{}: invalid", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.nodes.is_empty() || self.nodes.len() > 2 {
            bail!("nodes: expected 1 or 2 nodes, got {}", self.nodes.len());
        }
        let mrds: BTreeSet<u32> = self.mrds.iter().map(|m| m.id).collect();
        let mut ids = BTreeSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            if !ids.insert(agent.id.as_str()) {
                bail!("agents[{i}].id: duplicate agent {:?}", agent.id);
            }
            if agent.id.is_empty() || !agent.id.chars().all(|c| c.is_ascii_alphanumeric()) {
                bail!(
                    "agents[{i}].id: {:?} must be ASCII letters and digits",
                    agent.id
                );
            }
            if agent.id == self.publisher.user {
                bail!("agents[{i}].id: {:?} is the publisher account", agent.id);
            }
            for m in &agent.mrds {
                if !mrds.contains(m) {
                    bail!("agents[{i}].mrds: MRD {m} is not in [[mrds]]");
                }
            }
        }
        let b = &self.behaviour;
        if !(1..=10).contains(&b.default_max_dialog_limit) {
            bail!("behaviour.default_max_dialog_limit: must be 1..=10");
        }
        if b.lockout_attempts == 0 {
            bail!("behaviour.lockout_attempts: must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_as_a_range_expand_with_their_passwords_and_a_bad_shape_is_named() {
        let text = r#"agents = { first = 2000000, count = 3, mrds = [5002], password = "herd-{n}-secret" }
[[mrds]]
id = 5002
name = "Chat_MRD"
"#;
        let c: SimConfig = toml::from_str(text).unwrap();
        let ids: Vec<&str> = c.agents.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["2000000", "2000001", "2000002"]);
        assert_eq!(c.agents[2].password, "herd-2-secret");
        c.check().unwrap();
        let bad = text.replace("count = 3", "count = \"many\"");
        let e = toml::from_str::<SimConfig>(&bad).unwrap_err().to_string();
        assert!(e.contains("a list of [[agents]] tables, or a range"), "{e}");
    }
}
