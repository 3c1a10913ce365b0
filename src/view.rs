//! The agent as the daemon sees it, as plain data: each MRD ([`MediaView`]), each dialog
//! ([`DialogView`]), how a Dialog LIST differs from what is held ([`DialogDiff`]), the counters
//! and the whole published [`StateView`] behind `/v1/state`. Nothing here decides or does I/O;
//! `model` builds these from Finesse documents, the driver and the machine fill them in.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::vocab::{Cause, LinkKind, Phase, Setting, StateRecord};

/// One MRD as the daemon knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaView {
    /// MRD id.
    pub id: u32,
    /// State (unknown values kept).
    pub state: String,
    /// Reason code.
    pub reason_code_id: Option<u32>,
    /// Sign-in setting.
    pub max_dialog_limit: Option<u32>,
    /// Sign-in setting.
    pub interrupt_action: Option<String>,
    /// Sign-in setting.
    pub dialog_logout_action: Option<String>,
    /// Routable.
    pub routable: Option<bool>,
    /// The agent is in a skill group of this MRD (Finesse reports a state): only then is it
    /// signed in.
    pub eligible: bool,
    /// Whether the MRD's tasks can be interrupted (as Finesse reports it).
    pub interruptible: Option<bool>,
    /// Whether the settings differ from the config: `false`, `true`, or `"persistent"` when
    /// a correction did not take.
    pub drift: Drift,
    /// The settings that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift_fields: Vec<Setting>,
    /// The last sign-in Finesse refused, until one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signin: Option<SigninFailure>,
    /// The state the daemon keeps the MRD in after a sign-in (the config's, or the API's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<String>,
    /// Its reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_reason_code_id: Option<u32>,
}

/// How an MRD's settings compare with the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Drift {
    /// They match (or are unknown).
    #[default]
    None,
    /// They differ; the next resync corrects them once.
    Drifted,
    /// A correction did not take: not corrected again until the config, the node or a fresh
    /// sign-in changes.
    Persistent,
}

/// In the OpenAPI document: `false`, `true` or `"persistent"`.
impl utoipa::PartialSchema for Drift {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["persistent"])),
            )
            .into()
    }
}

impl ToSchema for Drift {}

impl Serialize for Drift {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => s.serialize_bool(false),
            Self::Drifted => s.serialize_bool(true),
            Self::Persistent => s.serialize_str("persistent"),
        }
    }
}

/// A sign-in Finesse refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SigninFailure {
    /// The error's constant (`E_ARM_STAT_CC_OFFLINE`, …).
    pub failed: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One dialog as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DialogView {
    /// Dialog id.
    pub id: String,
    /// MRD id.
    pub media_id: u32,
    /// Dialog state.
    pub state: String,
    /// The agent participant's state.
    pub participant_state: String,
    /// The actions Finesse allows the agent now (the participant's `<actions>`); empty when
    /// the document had none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Call variables by name.
    pub call_variables: BTreeMap<String, String>,
}

/// How a LIST differs from the local dialogs of one MRD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DialogDiff {
    /// In the LIST, not held.
    pub added: Vec<DialogView>,
    /// Held, not in the LIST.
    pub removed: Vec<DialogView>,
    /// In both, with another state.
    pub changed: Vec<DialogView>,
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counters {
    /// XMPP or REST recoveries started after a loss.
    pub reconnects: u64,
    /// Switches to the other node.
    pub failovers: u64,
    /// Completed resyncs.
    pub resyncs: u64,
    /// Sign-in PUTs sent.
    pub signins: u64,
    /// Sign-ins sent to correct drifted settings.
    pub drift_corrections: u64,
    /// Malformed notifications or bodies.
    pub malformed: u64,
}

/// A record of the state directory whose last write failed (cleared by the next write that
/// succeeds): until then a restart would forget what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// The OS error.
    pub error: String,
    /// When.
    pub at: SystemTime,
}

/// The published state.
#[derive(Debug, Clone)]
pub struct StateView {
    /// Agent id.
    pub agent: String,
    /// Phase.
    pub phase: Phase,
    /// Current node URL.
    pub node: Option<String>,
    /// Why the last failure happened (cleared when steady).
    pub cause: Option<Cause>,
    /// REST reachable.
    pub rest_up: bool,
    /// XMPP session up.
    pub xmpp_up: bool,
    /// Media by MRD id.
    pub media: BTreeMap<u32, MediaView>,
    /// Dialogs by id.
    pub dialogs: BTreeMap<String, DialogView>,
    /// Counters.
    pub counters: Counters,
    /// When the last resync completed.
    pub last_resync_at: Option<SystemTime>,
    /// When the next attempt is due while the daemon waits (an auth hold or a backoff).
    pub next_attempt_at: Option<SystemTime>,
    /// When the phase last changed.
    pub phase_since: Instant,
    /// The state directory's records whose last write failed.
    pub write_failures: BTreeMap<StateRecord, WriteFailure>,
}

/// Whether a link is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Connected.
    Up,
    /// Not connected.
    Down,
}

/// The two links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Links {
    /// Finesse's REST API.
    pub rest: LinkState,
    /// The XMPP session.
    pub xmpp: LinkState,
}

/// A state-directory record whose last write failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WriteFailureDoc {
    /// Which record.
    pub record: StateRecord,
    /// The OS error.
    pub error: String,
    /// When (RFC 3339).
    pub at: String,
}

/// The `/v1/state` document: the agent as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateDoc {
    /// Agent id.
    pub agent: String,
    /// Where the daemon is.
    pub phase: Phase,
    /// The Finesse node in use (its URL).
    pub node: Option<String>,
    /// Why the last failure happened (none when steady).
    pub cause: Option<Cause>,
    /// The links.
    pub links: Links,
    /// Each MRD.
    pub media: Vec<MediaView>,
    /// Each dialog.
    pub dialogs: Vec<DialogView>,
    /// Counters since start.
    pub counters: Counters,
    /// When the last resync completed (RFC 3339).
    pub last_resync_at: Option<String>,
    /// When the next attempt is due while the daemon waits (RFC 3339, ms).
    pub next_attempt_at: Option<String>,
    /// State-directory records whose last write failed.
    pub state_write_failures: Vec<WriteFailureDoc>,
}

/// Whether an agent can take work, and if not, why: the one definition behind `/readyz`, a
/// fleet's `/readyz` and `/v1/agents`, and `finesse-taskd status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Steady, and signed in to every MRD it can work in.
    Ready,
    /// Steady, but Finesse refused the sign-in of these eligible MRDs.
    SigninRefused(Vec<u32>),
    /// Not steady.
    NotSteady,
}

impl StateView {
    /// Steady, and every MRD the agent can work in signed in: a refused sign-in leaves the
    /// agent unroutable there although the sessions are fine.
    pub fn readiness(&self) -> Readiness {
        if self.phase != Phase::Steady {
            return Readiness::NotSteady;
        }
        let refused: Vec<u32> = self
            .media
            .values()
            .filter(|m| m.eligible && m.signin.is_some())
            .map(|m| m.id)
            .collect();
        if refused.is_empty() {
            Readiness::Ready
        } else {
            Readiness::SigninRefused(refused)
        }
    }

    /// A fresh view of `agent`: starting, nothing known.
    pub fn new(agent: &str) -> Self {
        Self {
            agent: agent.to_owned(),
            phase: Phase::Starting,
            node: None,
            cause: None,
            rest_up: false,
            xmpp_up: false,
            media: BTreeMap::new(),
            dialogs: BTreeMap::new(),
            counters: Counters::default(),
            last_resync_at: None,
            next_attempt_at: None,
            phase_since: Instant::now(),
            write_failures: BTreeMap::new(),
        }
    }

    /// The link flag of `kind`.
    pub fn link_mut(&mut self, kind: LinkKind) -> &mut bool {
        match kind {
            LinkKind::Rest => &mut self.rest_up,
            LinkKind::Xmpp => &mut self.xmpp_up,
        }
    }

    /// The `/v1/state` document.
    pub fn doc(&self) -> StateDoc {
        let up = |b: bool| if b { LinkState::Up } else { LinkState::Down };
        StateDoc {
            agent: self.agent.clone(),
            phase: self.phase,
            node: self.node.clone(),
            cause: self.cause,
            links: Links {
                rest: up(self.rest_up),
                xmpp: up(self.xmpp_up),
            },
            media: self.media.values().cloned().collect(),
            dialogs: self.dialogs.values().cloned().collect(),
            counters: self.counters.clone(),
            last_resync_at: self
                .last_resync_at
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            next_attempt_at: self
                .next_attempt_at
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            state_write_failures: self
                .write_failures
                .iter()
                .map(|(record, f)| WriteFailureDoc {
                    record: *record,
                    error: f.error.clone(),
                    at: humantime::format_rfc3339_seconds(f.at).to_string(),
                })
                .collect(),
        }
    }
}
