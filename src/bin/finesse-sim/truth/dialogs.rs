//! Nonvoice dialogs: routing an offer, the agent's actions (the state table below), the
//! customer ending a task, and the double PG failure that changes the set silently.
//!
//! Action table (OFFERED→ACCEPT is confirmed by Cisco; the rest is the facts file's inference):
//! OFFERED {ACCEPT}, ACCEPTED {START, CLOSE, TRANSFER}, ACTIVE {PAUSE, WRAP_UP, CLOSE, TRANSFER},
//! PAUSED {RESUME, CLOSE, TRANSFER}, WRAPPING_UP {CLOSE}, UNKNOWN {CLOSE}, INTERRUPTED {}.

use std::time::SystemTime;

use serde::Serialize;

use super::{Effect, OpError, Truth};

/// One nonvoice dialog.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dialog {
    /// `<prefix>_<callId>_<seq>`, with underscores as nonvoice ids have.
    pub id: String,
    /// The agent it is assigned to.
    pub agent: String,
    /// The MRD id.
    pub mrd: u32,
    /// OFFERED, ACCEPTED, ACTIVE, PAUSED, WRAPPING_UP, INTERRUPTED, CLOSED or UNKNOWN.
    pub state: String,
    /// The call key call id.
    pub call_id: u64,
    /// Call variables (name, value).
    pub call_variables: Vec<(String, String)>,
    /// The queue it came from.
    pub queue_name: String,
    /// Why it closed.
    pub disposition: Option<String>,
    /// When it was offered.
    #[serde(skip)]
    pub start_time: SystemTime,
    /// When its state last changed.
    #[serde(skip)]
    pub state_change_time: SystemTime,
}

/// The actions allowed in a dialog state.
pub fn allowed_actions(state: &str) -> &'static [&'static str] {
    match state {
        "OFFERED" => &["ACCEPT"],
        "ACCEPTED" => &["START", "CLOSE", "TRANSFER"],
        "ACTIVE" => &["PAUSE", "WRAP_UP", "CLOSE", "TRANSFER"],
        "PAUSED" => &["RESUME", "CLOSE", "TRANSFER"],
        "WRAPPING_UP" | "UNKNOWN" => &["CLOSE"],
        _ => &[],
    }
}

impl Dialog {
    pub(crate) fn close(&mut self, disposition: &str, now: SystemTime) {
        self.state = "CLOSED".into();
        self.disposition = Some(disposition.into());
        self.state_change_time = now;
    }
}

/// What an offer carries.
#[derive(Debug, Clone, Default)]
pub struct Offer {
    /// Call variables for the new dialog.
    pub call_variables: Vec<(String, String)>,
    /// Route even when the agent is not READY, not routable or at the limit.
    pub force: bool,
}

impl Truth {
    /// Finds a dialog by id: (agent, mrd).
    pub fn find_dialog(&self, id: &str) -> Option<(String, u32)> {
        self.agents.values().find_map(|a| {
            a.media
                .iter()
                .find(|(_, m)| m.dialogs.contains_key(id))
                .map(|(mrd, _)| (a.id.clone(), *mrd))
        })
    }

    /// CCE routes a new task to the agent's MRD: a dialog in OFFERED.
    pub fn offer(
        &mut self,
        agent: &str,
        mrd: u32,
        offer: Offer,
        now: SystemTime,
    ) -> Result<(Dialog, Vec<Effect>), OpError> {
        let defaults = self.default_settings();
        let call_id = self.next_call_id();
        let queue_name = self
            .mrds
            .get(&mrd)
            .map(|m| m.queue_name.clone())
            .unwrap_or_default();
        let media = self.media_mut(agent, mrd)?;
        let Some(node) = media.login_node else {
            return Err(OpError::http(
                409,
                "Conflict",
                "agent is not signed in to the MRD",
            ));
        };
        if !offer.force {
            let limit = media
                .settings
                .get(node)
                .cloned()
                .flatten()
                .unwrap_or(defaults)
                .max_dialog_limit as usize;
            if media.base != "READY" || !media.routable {
                return Err(OpError::http(
                    409,
                    "Conflict",
                    "agent is not READY and routable",
                ));
            }
            if media.dialogs.len() >= limit {
                return Err(OpError::http(409, "Conflict", "agent is at maxDialogLimit"));
            }
        }
        let dialog = Dialog {
            id: format!("150001_{call_id}_1"),
            agent: agent.into(),
            mrd,
            state: "OFFERED".into(),
            call_id,
            call_variables: offer.call_variables,
            queue_name,
            disposition: None,
            start_time: now,
            state_change_time: now,
        };
        media.dialogs.insert(dialog.id.clone(), dialog.clone());
        let effects = vec![
            Effect::Dialog {
                event: "POST",
                dialog: dialog.clone(),
            },
            Effect::Media {
                agent: agent.into(),
                mrd,
            },
        ];
        Ok((dialog, effects))
    }

    /// An agent action (`PUT /finesse/api/Dialog/{id}`) arriving on `node`, by `user`.
    pub fn dialog_action(
        &mut self,
        node: Option<usize>,
        user: &str,
        id: &str,
        action: &str,
        now: SystemTime,
    ) -> Result<Vec<Effect>, OpError> {
        let (agent, mrd) = self
            .find_dialog(id)
            .ok_or_else(|| OpError::http(404, "Not Found", format!("INVALID_DIALOG_ID: {id}")))?;
        if agent != user {
            return Err(OpError::http(
                401,
                "Invalid Authorization User Specified",
                "the dialog belongs to another user",
            ));
        }
        if let Some(r) = self
            .behaviour
            .refuse_dialog_actions
            .as_ref()
            .filter(|r| r.mrd.is_none_or(|m| m == mrd))
        {
            // Accepted, then refused by the ARM side (an asynchronous error when async).
            return Err(OpError::arm(r.code, &r.constant, "Action refused", mrd));
        }
        let media = self.media_mut(&agent, mrd)?;
        if node.is_some() && media.login_node != node {
            return Err(OpError::not_logged_in(mrd));
        }
        let Some(dialog) = media.dialogs.get_mut(id) else {
            return Err(OpError::http(
                404,
                "Not Found",
                format!("INVALID_DIALOG_ID: {id}"),
            ));
        };
        if !allowed_actions(&dialog.state).contains(&action) {
            return Err(OpError::Http {
                status: 400,
                error_type: "Invalid Input".into(),
                message: format!("{action} is not allowed in state {}", dialog.state),
                data: action.into(),
            });
        }
        let next = match action {
            "ACCEPT" => "ACCEPTED",
            "START" | "RESUME" => "ACTIVE",
            "PAUSE" => "PAUSED",
            "WRAP_UP" => "WRAPPING_UP",
            _ => "CLOSED",
        };
        let mut effects = Vec::new();
        if next == "CLOSED" {
            let disposition = if action == "TRANSFER" {
                "CD_TASK_TRANSFERRED"
            } else {
                "CD_AGENT_CLOSED"
            };
            if let Some(mut dialog) = media.dialogs.remove(id) {
                dialog.close(disposition, now);
                effects.push(Effect::Dialog {
                    event: "DELETE",
                    dialog,
                });
            }
        } else {
            dialog.state = next.into();
            dialog.state_change_time = now;
            effects.push(Effect::Dialog {
                event: "PUT",
                dialog: dialog.clone(),
            });
        }
        effects.push(Effect::Media { agent, mrd });
        Ok(effects)
    }

    /// The customer side ends a task: the dialog closes and is removed.
    pub fn customer_end(&mut self, id: &str, now: SystemTime) -> Result<Vec<Effect>, OpError> {
        let (agent, mrd) = self
            .find_dialog(id)
            .ok_or_else(|| OpError::http(404, "Not Found", format!("no dialog {id}")))?;
        let media = self.media_mut(&agent, mrd)?;
        let mut effects = Vec::new();
        if let Some(mut dialog) = media.dialogs.remove(id) {
            dialog.close("CD_CUSTOMER_ENDED", now);
            effects.push(Effect::Dialog {
                event: "DELETE",
                dialog,
            });
        }
        effects.push(Effect::Media { agent, mrd });
        Ok(effects)
    }

    /// Replaces a dialog's call variables (no notification: used to seed test data).
    pub fn set_call_variables(&mut self, id: &str, vars: Vec<(String, String)>) -> bool {
        let Some((agent, mrd)) = self.find_dialog(id) else {
            return false;
        };
        let Ok(media) = self.media_mut(&agent, mrd) else {
            return false;
        };
        match media.dialogs.get_mut(id) {
            Some(d) => {
                d.call_variables = vars;
                true
            }
            None => false,
        }
    }

    /// A double PG failure: dialogs vanish and others appear, and nobody is notified.
    /// `remove` = `None` removes them all. Returns (removed ids, added ids).
    pub fn double_pg_failure(
        &mut self,
        agent: &str,
        mrd: u32,
        remove: Option<Vec<String>>,
        add: usize,
        now: SystemTime,
    ) -> Result<(Vec<String>, Vec<String>), OpError> {
        let mut new_ids = Vec::with_capacity(add);
        for _ in 0..add {
            new_ids.push(self.next_call_id());
        }
        let queue_name = self
            .mrds
            .get(&mrd)
            .map(|m| m.queue_name.clone())
            .unwrap_or_default();
        let media = self.media_mut(agent, mrd)?;
        let remove = remove.unwrap_or_else(|| media.dialogs.keys().cloned().collect());
        let removed: Vec<String> = remove
            .into_iter()
            .filter(|id| media.dialogs.remove(id).is_some())
            .collect();
        let mut added = Vec::new();
        for call_id in new_ids {
            let dialog = Dialog {
                id: format!("150002_{call_id}_1"),
                agent: agent.into(),
                mrd,
                state: "ACTIVE".into(),
                call_id,
                call_variables: Vec::new(),
                queue_name: queue_name.clone(),
                disposition: None,
                start_time: now,
                state_change_time: now,
            };
            added.push(dialog.id.clone());
            media.dialogs.insert(dialog.id.clone(), dialog);
        }
        Ok((removed, added))
    }
}
