//! The "CCE truth" shared by both simulated nodes: agents, their media per MRD, their dialogs,
//! and sign-in lockout. Everything here is pure: operations take the node they arrived on and
//! the current time, change the truth, and return [`Effect`]s (what to notify) or an
//! [`OpError`]. The REST and admin layers turn those into HTTP answers and XMPP publishes.
//!
//! Sign-in settings are kept **per node**, as in real Finesse: a node the agent did not sign
//! in on reports `behaviour.failover_state` and that node's own (default) settings.

mod dialogs;
mod media;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use crate::config::{Behaviour, SimConfig};

pub use dialogs::{Dialog, Offer, allowed_actions};
pub use media::{MediaRequest, MediaView, reported_state};

/// Sign-in settings as one node knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// 1..=10.
    pub max_dialog_limit: u32,
    /// ACCEPT | IGNORE.
    pub interrupt_action: String,
    /// CLOSE | TRANSFER.
    pub dialog_logout_action: String,
}

/// One agent's media in one MRD.
#[derive(Debug, Clone)]
pub struct Media {
    /// LOGOUT, READY or NOT_READY: what the agent asked for. Work overrides it when read.
    pub base: String,
    /// The reason code of the last NOT_READY or LOGOUT.
    pub reason_code_id: Option<u32>,
    /// Whether CCE may route tasks to the agent.
    pub routable: bool,
    /// The node the agent signed in on, while signed in.
    pub login_node: Option<usize>,
    /// Settings per node; `None` where the agent never signed in.
    pub settings: Vec<Option<Settings>>,
    /// When the state last changed.
    pub state_change_time: Option<SystemTime>,
    /// The dialogs assigned in this MRD, by id.
    pub dialogs: BTreeMap<String, Dialog>,
}

/// One agent.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Finesse user id.
    pub id: String,
    /// Current password.
    pub password: String,
    /// Display names.
    pub first_name: String,
    /// Display names.
    pub last_name: String,
    /// Media per MRD id.
    pub media: BTreeMap<u32, Media>,
    bad_logins: VecDeque<Instant>,
    locked_until: Option<Instant>,
    /// How many times the account was locked.
    pub lockouts: u64,
    /// Passwords the XMPP server refused (counted toward the lockout too).
    pub xmpp_auth_failures: u64,
    /// When each refused password (REST or XMPP) was counted, oldest first.
    pub refusals: Vec<Instant>,
}

/// Static MRD facts.
#[derive(Debug, Clone)]
pub struct Mrd {
    /// Enterprise name.
    pub name: String,
    /// Interruptible flag.
    pub interruptible: bool,
    /// Queue name for offered tasks.
    pub queue_name: String,
}

/// Something that happened and must be notified.
#[derive(Debug, Clone)]
pub enum Effect {
    /// The agent's media in an MRD changed; each node renders its own view.
    Media {
        /// Agent id.
        agent: String,
        /// MRD id.
        mrd: u32,
    },
    /// A dialog was added (POST), changed (PUT) or removed (DELETE).
    Dialog {
        /// POST, PUT or DELETE.
        event: &'static str,
        /// The dialog as it is (or was, when removed).
        dialog: Dialog,
    },
}

/// An error the REST layer answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// A synchronous HTTP error with an ApiErrors body.
    Http {
        /// HTTP status.
        status: u16,
        /// ErrorType.
        error_type: String,
        /// ErrorMessage.
        message: String,
        /// ErrorData.
        data: String,
    },
    /// An ARM error: async notification or sync 400, as `behaviour.arm_errors` says.
    Arm {
        /// The numeric code (ErrorData).
        code: u32,
        /// The E_ARM_STAT_* constant (ErrorMessage).
        message: String,
        /// The text (ErrorType).
        error_type: String,
        /// The MRD it applies to (ErrorMedia).
        mrd: u32,
    },
}

impl OpError {
    pub(crate) fn http(status: u16, error_type: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Http {
            status,
            error_type: error_type.into(),
            data: String::new(),
            message,
        }
    }
    pub(crate) fn arm(code: u32, message: &str, error_type: &str, mrd: u32) -> Self {
        Self::Arm {
            code,
            message: message.into(),
            error_type: error_type.into(),
            mrd,
        }
    }
    pub(crate) fn already_logged_in(mrd: u32) -> Self {
        Self::arm(
            1,
            "E_ARM_STAT_AGENT_ALREADY_LOGGED_IN",
            "Agent already logged into MRD",
            mrd,
        )
    }
    pub(crate) fn not_logged_in(mrd: u32) -> Self {
        Self::arm(
            6,
            "E_ARM_STAT_AGENT_NOT_LOGGED_IN",
            "Agent is not logged in",
            mrd,
        )
    }
    /// Cisco's routable example: ErrorData 1, like "already logged in", another constant.
    pub(crate) fn already_in_mode(mrd: u32) -> Self {
        Self::arm(
            1,
            "E_ARM_STAT_ALREADY_IN_REQUESTED_AGENT_MODE",
            "Agent already in requested mode",
            mrd,
        )
    }
}

impl Truth {
    /// How a Media GET answer is shaped.
    pub fn get_shape(&self) -> MediaShape {
        MediaShape {
            no_interrupt_action: false,
            ignore_when_not_interruptible: self.behaviour.non_interruptible_reports_ignore,
            cisco_order: self.behaviour.cisco_element_order,
        }
    }

    /// How a Media notification is shaped.
    pub fn notification_shape(&self) -> MediaShape {
        MediaShape {
            no_interrupt_action: !self.behaviour.media_notification_interrupt_action,
            ignore_when_not_interruptible: self.behaviour.non_interruptible_reports_ignore,
            cisco_order: self.behaviour.cisco_element_order,
        }
    }

    /// The `event` text of an Update as the behaviour spells it.
    pub fn event(&self, event: &str) -> String {
        if self.behaviour.lowercase_events {
            event.to_ascii_lowercase()
        } else {
            event.to_ascii_uppercase()
        }
    }
}

/// How a `<Media>` is shaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct MediaShape {
    /// Leave `interruptAction` out (Cisco's published Media notification).
    pub no_interrupt_action: bool,
    /// A non-interruptible MRD reports IGNORE (Cisco's Media GET example).
    pub ignore_when_not_interruptible: bool,
    /// Elements in Cisco's order (interruptAction last).
    pub cisco_order: bool,
}

/// Why a Basic-auth check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No such user.
    UnknownUser,
    /// Wrong password.
    BadPassword,
    /// Locked after too many bad passwords (even a right one is refused).
    Locked,
}

/// The whole truth.
#[derive(Debug)]
pub struct Truth {
    /// Behaviour switches (mutable at run time through the admin API).
    pub behaviour: Behaviour,
    /// Agents by id.
    pub agents: BTreeMap<String, Agent>,
    /// MRDs by id.
    pub mrds: BTreeMap<u32, Mrd>,
    next_call: u64,
}

impl Truth {
    /// The initial truth: every agent signed out of every MRD, no dialogs.
    pub fn new(config: &SimConfig) -> Self {
        let node_count = config.nodes.len();
        let agents = config
            .agents
            .iter()
            .map(|a| {
                let media = a
                    .mrds
                    .iter()
                    .map(|&mrd| {
                        let m = Media {
                            base: "LOGOUT".into(),
                            reason_code_id: None,
                            routable: false,
                            login_node: None,
                            settings: vec![None; node_count],
                            state_change_time: None,
                            dialogs: BTreeMap::new(),
                        };
                        (mrd, m)
                    })
                    .collect();
                let agent = Agent {
                    id: a.id.clone(),
                    password: a.password.clone(),
                    first_name: a.first_name.clone().unwrap_or_else(|| "Agent".into()),
                    last_name: a.last_name.clone().unwrap_or_else(|| a.id.clone()),
                    media,
                    bad_logins: VecDeque::new(),
                    locked_until: None,
                    lockouts: 0,
                    xmpp_auth_failures: 0,
                    refusals: Vec::new(),
                };
                (a.id.clone(), agent)
            })
            .collect();
        let mrds = config
            .mrds
            .iter()
            .map(|m| {
                let mrd = Mrd {
                    name: m.name.clone(),
                    interruptible: m.interruptible,
                    queue_name: m.queue_name.clone(),
                };
                (m.id, mrd)
            })
            .collect();
        Self {
            behaviour: config.behaviour.clone(),
            agents,
            mrds,
            next_call: 1,
        }
    }

    /// Checks Basic credentials, counting bad passwords towards the lockout.
    pub fn authenticate(
        &mut self,
        user: &str,
        password: &str,
        now: Instant,
    ) -> Result<(), AuthFailure> {
        let (attempts, window, duration) = (
            self.behaviour.lockout_attempts as usize,
            self.behaviour.lockout_window,
            self.behaviour.lockout_duration,
        );
        let agent = self.agents.get_mut(user).ok_or(AuthFailure::UnknownUser)?;
        if let Some(until) = agent.locked_until {
            if now < until {
                return Err(AuthFailure::Locked);
            }
            agent.locked_until = None;
        }
        if agent.password == password {
            agent.bad_logins.clear();
            return Ok(());
        }
        count_failure(agent, (attempts, window, duration), now);
        Err(AuthFailure::BadPassword)
    }

    /// Counts a password the XMPP server refused toward the same lockout (a failed login is a
    /// failed login to the directory behind both). Unknown users are ignored.
    pub fn xmpp_auth_failed(&mut self, user: &str, now: Instant) {
        let policy = (
            self.behaviour.lockout_attempts as usize,
            self.behaviour.lockout_window,
            self.behaviour.lockout_duration,
        );
        if let Some(agent) = self.agents.get_mut(user) {
            agent.xmpp_auth_failures += 1;
            if agent.locked_until.is_none_or(|until| now >= until) {
                count_failure(agent, policy, now);
            }
        }
    }

    /// Default settings a node reports where the agent never signed in.
    pub fn default_settings(&self) -> Settings {
        Settings {
            max_dialog_limit: self.behaviour.default_max_dialog_limit,
            interrupt_action: self.behaviour.default_interrupt_action.clone(),
            dialog_logout_action: self.behaviour.default_dialog_logout_action.clone(),
        }
    }

    pub(crate) fn media_mut(&mut self, agent: &str, mrd: u32) -> Result<&mut Media, OpError> {
        self.agents
            .get_mut(agent)
            .ok_or_else(|| OpError::http(404, "Not Found", format!("unknown user {agent}")))?
            .media
            .get_mut(&mrd)
            .ok_or_else(|| OpError::http(404, "Not Found", format!("unknown MRD {mrd}")))
    }

    pub(crate) fn next_call_id(&mut self) -> u64 {
        let id = self.next_call;
        self.next_call += 1;
        id
    }
}

/// Records one refused password at `now`; the `attempts`-th within `window` locks the account
/// for `duration`.
fn count_failure(
    agent: &mut Agent,
    (attempts, window, duration): (usize, Duration, Duration),
    now: Instant,
) {
    agent.bad_logins.push_back(now);
    agent.refusals.push(now);
    while agent
        .bad_logins
        .front()
        .is_some_and(|&t| now.duration_since(t) > window)
    {
        agent.bad_logins.pop_front();
    }
    if agent.bad_logins.len() >= attempts {
        agent.bad_logins.clear();
        agent.locked_until = Some(now + duration);
        agent.lockouts += 1;
    }
}

/// `lockout_duration` as configured, for reports.
pub fn lockout_remaining(agent: &Agent, now: Instant) -> Option<Duration> {
    agent
        .locked_until
        .and_then(|until| until.checked_duration_since(now))
}

#[cfg(test)]
mod tests;
