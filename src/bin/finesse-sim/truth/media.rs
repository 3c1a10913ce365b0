//! Media operations: sign in (LOGIN with the three settings), READY, NOT_READY with a reason,
//! LOGOUT, routable, forced logout and settings drift, plus the per-node view a GET returns.

use std::time::SystemTime;

use super::{Effect, Media, OpError, Settings, Truth};

/// The fields of a `<Media>` PUT body, as raw text; validation happens here.
#[derive(Debug, Clone, Default)]
pub struct MediaRequest {
    /// LOGIN | READY | NOT_READY | LOGOUT.
    pub state: Option<String>,
    /// 1..=10, required with LOGIN.
    pub max_dialog_limit: Option<String>,
    /// ACCEPT | IGNORE, required with LOGIN.
    pub interrupt_action: Option<String>,
    /// CLOSE | TRANSFER, optional with LOGIN (default CLOSE).
    pub dialog_logout_action: Option<String>,
    /// With NOT_READY or LOGOUT.
    pub reason_code_id: Option<String>,
    /// true | false.
    pub routable: Option<String>,
}

/// What one node shows for a media.
#[derive(Debug, Clone)]
pub struct MediaView {
    /// The state this node reports.
    pub state: String,
    /// Reason code, when NOT_READY or LOGOUT.
    pub reason_code_id: Option<u32>,
    /// Routable flag.
    pub routable: bool,
    /// This node's sign-in settings (defaults where the agent never signed in here).
    pub settings: Settings,
    /// When the state last changed.
    pub state_change_time: Option<SystemTime>,
}

/// The state CCE reports: work on dialogs overrides READY/NOT_READY.
pub fn reported_state(media: &Media) -> String {
    if media.login_node.is_none() {
        return "LOGOUT".into();
    }
    let has = |s: &str| media.dialogs.values().any(|d| d.state == s);
    let derived = if has("INTERRUPTED") {
        "INTERRUPTED"
    } else if has("ACTIVE") {
        "ACTIVE"
    } else if has("WRAPPING_UP") {
        "WORK_READY"
    } else if has("PAUSED") {
        "PAUSED"
    } else if has("OFFERED") || has("ACCEPTED") || has("UNKNOWN") {
        "RESERVED"
    } else {
        return media.base.clone();
    };
    derived.into()
}

fn parse_choice(
    value: Option<&String>,
    field: &str,
    allowed: &[&str],
    default: Option<&str>,
) -> Result<String, OpError> {
    match (value.map(|v| v.trim()), default) {
        (None | Some(""), Some(d)) => Ok(d.into()),
        (None | Some(""), None) => Err(OpError::http(
            400,
            "Parameter Missing",
            format!("{field} is required"),
        )),
        (Some(v), _) if allowed.contains(&v) => Ok(v.into()),
        (Some(v), _) => Err(OpError::http(
            400,
            "Invalid Input",
            format!("{field}: {v:?} is not one of {allowed:?}"),
        )),
    }
}

fn parse_number(value: Option<&String>, field: &str) -> Result<Option<u32>, OpError> {
    match value.map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            OpError::http(
                400,
                "Invalid Input",
                format!("{field}: {v:?} is not a number"),
            )
        }),
    }
}

/// The reason code a client sends after a maintenance-mode migration.
pub const MAINTENANCE_MARKER: u32 = 50045;

impl Truth {
    /// The media as `node` shows it, or `None` when the agent is not in that MRD.
    pub fn media_view(&self, agent: &str, mrd: u32, node: usize) -> Option<MediaView> {
        let media = self.agents.get(agent)?.media.get(&mrd)?;
        let settings = media
            .settings
            .get(node)
            .cloned()
            .flatten()
            .unwrap_or_else(|| self.default_settings());
        let state = match media.login_node {
            Some(n) if n != node => self.behaviour.failover_state.clone(),
            _ => reported_state(media),
        };
        Some(MediaView {
            state,
            reason_code_id: media.reason_code_id,
            routable: media.routable && media.login_node == Some(node),
            settings,
            state_change_time: media.state_change_time,
        })
    }

    /// A Media PUT arriving on `node`.
    pub fn put_media(
        &mut self,
        node: usize,
        agent: &str,
        mrd: u32,
        req: &MediaRequest,
        now: SystemTime,
    ) -> Result<Vec<Effect>, OpError> {
        let media_effect = vec![Effect::Media {
            agent: agent.into(),
            mrd,
        }];
        let reason = parse_number(req.reason_code_id.as_ref(), "reasonCodeId")?;
        let Some(state) = req
            .state
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            let Some(routable) = req.routable.as_ref() else {
                return Err(OpError::http(400, "Parameter Missing", "state is required"));
            };
            let routable = parse_choice(Some(routable), "routable", &["true", "false"], None)?;
            let media = self.media_mut(agent, mrd)?;
            if media.login_node != Some(node) {
                return Err(OpError::not_logged_in(mrd));
            }
            let routable = routable == "true";
            if media.routable == routable {
                return if self.behaviour.routable_error_data_one {
                    Err(OpError::already_in_mode(mrd))
                } else {
                    Ok(Vec::new())
                };
            }
            media.routable = routable;
            return Ok(media_effect);
        };
        if matches!(state, "READY" | "NOT_READY") {
            if self.behaviour.redirect_state_changes {
                // A proxy's or a load balancer's answer: never a success.
                return Err(OpError::http(307, "Temporary Redirect", "moved"));
            }
            if let Some(r) = self
                .behaviour
                .refuse_state_changes
                .as_ref()
                .filter(|r| r.mrd.is_none_or(|m| m == mrd))
            {
                // Accepted (202), then refused by the ARM side when errors are asynchronous.
                return Err(OpError::arm(
                    r.code,
                    &r.constant,
                    "State change refused",
                    mrd,
                ));
            }
        }
        match state {
            "LOGIN" => {
                let limit = parse_number(req.max_dialog_limit.as_ref(), "maxDialogLimit")?
                    .ok_or_else(|| {
                        OpError::http(400, "Parameter Missing", "maxDialogLimit is required")
                    })?;
                if !(1..=10).contains(&limit) {
                    return Err(OpError::http(
                        400,
                        "Invalid Input",
                        format!("maxDialogLimit: {limit} is out of range 1..=10"),
                    ));
                }
                let settings = Settings {
                    max_dialog_limit: limit,
                    interrupt_action: parse_choice(
                        req.interrupt_action.as_ref(),
                        "interruptAction",
                        &["ACCEPT", "IGNORE"],
                        None,
                    )?,
                    dialog_logout_action: parse_choice(
                        req.dialog_logout_action.as_ref(),
                        "dialogLogoutAction",
                        &["CLOSE", "TRANSFER"],
                        Some("CLOSE"),
                    )?,
                };
                let assigned = self
                    .agents
                    .get(agent)
                    .is_some_and(|a| a.media.contains_key(&mrd));
                if !assigned && self.mrds.contains_key(&mrd) && self.agents.contains_key(agent) {
                    // An MRD the agent has no skill group in: refused by ARM.
                    return Err(OpError::arm(
                        3,
                        "E_ARM_STAT_MRD_LIST_ENTRY_NOT_FOUND",
                        "MRD list entry not found",
                        mrd,
                    ));
                }
                if let Some(r) = self
                    .behaviour
                    .refuse_signin
                    .as_ref()
                    .filter(|r| r.mrd.is_none_or(|m| m == mrd))
                {
                    return Err(OpError::arm(r.code, &r.constant, "Login refused", mrd));
                }
                let media = self.media_mut(agent, mrd)?;
                if let Some(slot) = media.settings.get_mut(node) {
                    *slot = Some(settings);
                }
                if media.login_node == Some(node) {
                    // Settings are reset, the state is untouched, and CCE says so.
                    return Err(OpError::already_logged_in(mrd));
                }
                media.login_node = Some(node);
                media.base = "NOT_READY".into();
                media.reason_code_id = None;
                media.routable = true;
                media.state_change_time = Some(now);
                Ok(media_effect)
            }
            "READY" | "NOT_READY" => {
                let media = self.media_mut(agent, mrd)?;
                if media.login_node != Some(node) {
                    return Err(OpError::not_logged_in(mrd));
                }
                let reason = if state == "READY" { None } else { reason };
                if reason == Some(MAINTENANCE_MARKER) {
                    // Cisco: sent after a maintenance migration; "does not change the agent
                    // state".
                    return Ok(Vec::new());
                }
                if media.base == state && media.reason_code_id == reason {
                    return Ok(Vec::new()); // READY -> READY is ignored, with no notification
                }
                media.base = state.into();
                media.reason_code_id = reason;
                if state == "READY" {
                    media.routable = true;
                }
                media.state_change_time = Some(now);
                Ok(media_effect)
            }
            "LOGOUT" => {
                let media = self.media_mut(agent, mrd)?;
                if media.login_node != Some(node) {
                    return Err(OpError::not_logged_in(mrd));
                }
                Ok(self.logout(agent, mrd, reason, now))
            }
            other => Err(OpError::http(
                400,
                "Invalid Input",
                format!("state: {other:?} is not one of LOGIN, READY, NOT_READY, LOGOUT"),
            )),
        }
    }

    /// Signs the media out, closing or transferring its dialogs as the login node's
    /// dialogLogoutAction says.
    pub fn logout(
        &mut self,
        agent: &str,
        mrd: u32,
        reason: Option<u32>,
        now: SystemTime,
    ) -> Vec<Effect> {
        let defaults = self.default_settings();
        let Ok(media) = self.media_mut(agent, mrd) else {
            return Vec::new();
        };
        let Some(node) = media.login_node else {
            return Vec::new();
        };
        let action = media
            .settings
            .get(node)
            .cloned()
            .flatten()
            .unwrap_or(defaults)
            .dialog_logout_action;
        let disposition = if action == "TRANSFER" {
            "CD_TASK_TRANSFERRED_AGENT_LOGOUT"
        } else {
            "CD_AGENT_LOGOUT"
        };
        let mut effects = Vec::new();
        for (_, mut dialog) in std::mem::take(&mut media.dialogs) {
            dialog.close(disposition, now);
            effects.push(Effect::Dialog {
                event: "DELETE",
                dialog,
            });
        }
        media.login_node = None;
        media.base = "LOGOUT".into();
        media.reason_code_id = reason;
        media.routable = false;
        media.state_change_time = Some(now);
        effects.push(Effect::Media {
            agent: agent.into(),
            mrd,
        });
        effects
    }

    /// Finesse's forced logout (reason 255) of every MRD the agent is signed in on `node`
    /// (any node when `None`).
    pub fn forced_logout(
        &mut self,
        agent: &str,
        node: Option<usize>,
        now: SystemTime,
    ) -> Vec<Effect> {
        let mrds: Vec<u32> = self
            .agents
            .get(agent)
            .map(|a| {
                a.media
                    .iter()
                    .filter(|(_, m)| {
                        m.login_node.is_some() && (node.is_none() || m.login_node == node)
                    })
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        mrds.into_iter()
            .flat_map(|mrd| self.logout(agent, mrd, Some(255), now))
            .collect()
    }

    /// Resets one node's settings for a media to the defaults, as after a CCE-side failover.
    pub fn drift(&mut self, agent: &str, mrd: u32, node: usize) -> Result<(), OpError> {
        let defaults = self.default_settings();
        let media = self.media_mut(agent, mrd)?;
        let slot = media
            .settings
            .get_mut(node)
            .ok_or_else(|| OpError::http(404, "Not Found", format!("unknown node {node}")))?;
        *slot = Some(defaults);
        Ok(())
    }
}
