//! SSO in the driver: the current token pair and the cell the REST client and the XMPP login
//! read it from, the refresh when 75 % of the token's lifetime has passed (in steady state on
//! its own timer, and before any login whose token is due), the kept copy in the state
//! directory, and what a refusal means for the login gate. A refresh refused (401) holds like
//! a rejected password; a refresh token that has expired holds in `auth_expired` until the
//! operator installs a new pair; a refresh that merely failed (5xx, timeout) is retried on a
//! short backoff while the token is still valid. Every refresh, whatever its outcome, is at
//! least `auth_retry` after a refused one.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::Driver;
use crate::config::{Auth, Config, XmppUsername};
use crate::finesse::identity::RefreshError;
use crate::finesse::model::SystemInfo;
use crate::finesse::rest::Credentials;
use crate::machine::AuthFacts;
use crate::refresh::RefreshSchedule;
use crate::secret::Secret;
use crate::sso::token::TokenSet;
use crate::sso::{TokenCell, store};
use crate::vocab::Cause;

/// The SSO state of a running driver.
#[derive(Debug, Clone)]
pub(super) struct SsoRun {
    /// The newest pair.
    pub tokens: TokenSet,
    /// The current access token, shared with the REST client.
    pub cell: TokenCell,
    /// When the next refresh may run (after a failed or refused one).
    schedule: RefreshSchedule,
    /// The last refusal said the refresh token has expired.
    pub expired: bool,
    /// A refresh happened since the last XMPP login succeeded.
    pub refreshed_since_login: bool,
}

impl SsoRun {
    /// The SSO state for `cfg`: the newer of its token file and the kept copy.
    pub(super) fn new(cfg: &Config) -> Option<Self> {
        let Auth::Sso(sso) = &cfg.auth else {
            return None;
        };
        let tokens = store::newest(&sso.tokens, cfg.state_dir.as_deref());
        Some(Self {
            cell: TokenCell::new(tokens.token.clone()),
            tokens,
            schedule: RefreshSchedule::new(rand::random()),
            expired: false,
            refreshed_since_login: false,
        })
    }

    /// The SSO state after a reload to `cfg`: the running pair unless the file now holds a
    /// newer one (the same cell either way, so nothing holds a stale token).
    pub(super) fn reloaded(cfg: &Config, old: Option<&Self>) -> Option<Self> {
        let fresh = Self::new(cfg)?;
        let Some(old) = old else {
            return Some(fresh);
        };
        let mut run = old.clone();
        if fresh.tokens.obtained_at > old.tokens.obtained_at {
            run.adopt(fresh.tokens);
        }
        Some(run)
    }

    /// Takes `tokens` as the running pair, forgetting any refusal of the old one.
    fn adopt(&mut self, tokens: TokenSet) {
        self.cell.set(tokens.token.clone());
        self.tokens = tokens;
        self.expired = false;
        self.schedule.succeeded();
    }
}

/// `t` on tokio's clock (now when `t` has passed).
fn instant_of(t: SystemTime) -> Instant {
    Instant::now() + t.duration_since(SystemTime::now()).unwrap_or_default()
}

impl Driver {
    /// What REST requests carry: the password, or the shared current token.
    pub(super) fn credentials(cfg: &Config, sso: Option<&SsoRun>) -> Credentials {
        match (&cfg.auth, sso) {
            (_, Some(s)) => Credentials::Bearer(s.cell.clone()),
            (Auth::Basic(p), None) => Credentials::Basic(p.clone()),
            (Auth::Sso(s), None) => Credentials::Bearer(TokenCell::new(s.tokens.token.clone())),
        }
    }

    /// The XMPP login's username, password and SASL mechanisms.
    pub(super) fn xmpp_login(&self) -> (String, Secret, Vec<String>) {
        match (&self.cfg.auth, &self.sso) {
            (Auth::Sso(cfg), Some(run)) => {
                let user = match cfg.xmpp_username {
                    XmppUsername::LoginName => run.tokens.user_id.clone(),
                    XmppUsername::LoginId => None,
                };
                (
                    user.unwrap_or_else(|| self.cfg.agent_id.clone()),
                    run.cell.current(),
                    cfg.xmpp_mechanisms.clone(),
                )
            }
            (Auth::Sso(cfg), None) => (
                self.cfg.agent_id.clone(),
                cfg.tokens.token.clone(),
                cfg.xmpp_mechanisms.clone(),
            ),
            (Auth::Basic(password), _) => (
                self.cfg.agent_id.clone(),
                password.clone(),
                self.cfg.xmpp.sasl_mechanisms.clone(),
            ),
        }
    }

    /// When the next refresh may run: 75 % into the token's lifetime, not before a wait a
    /// failed or refused refresh began. `None` without SSO.
    pub(super) fn refresh_at(&self) -> Option<Instant> {
        let (Auth::Sso(cfg), Some(run)) = (&self.cfg.auth, &self.sso) else {
            return None;
        };
        let due = instant_of(run.tokens.refresh_due(cfg.refresh_at));
        Some(run.schedule.next_at(due))
    }

    /// The cause a refusal of the credentials has now, for this driver's own log lines (the
    /// machine names the published cause from the same [`AuthFacts`]).
    pub(super) fn auth_cause(&self) -> Cause {
        match self.auth_facts() {
            AuthFacts { expired: true, .. } => Cause::AuthExpired,
            AuthFacts {
                mode_mismatch: true,
                ..
            } => Cause::AuthModeMismatch,
            _ => Cause::AuthFailed,
        }
    }

    /// Takes the operator's token file when it holds a newer pair than the running one (a
    /// new pair after `auth_expired` needs no reload).
    fn adopt_newer_file(&mut self) {
        let (Auth::Sso(cfg), Some(run)) = (&self.cfg.auth, self.sso.as_mut()) else {
            return;
        };
        let Ok(modified) = std::fs::metadata(&cfg.token_file).and_then(|m| m.modified()) else {
            return;
        };
        if modified <= run.tokens.obtained_at {
            return;
        }
        // The same rule as at load: not a file that group or others can read or write.
        let read = crate::config::read_again(&cfg.token_file, cfg.owner_only)
            .and_then(|t| TokenSet::from_json(&t, modified).map_err(|e| e.to_string()));
        match read {
            Ok(tokens) => {
                info!(file = %cfg.token_file.display(), "a newer SSO token pair was installed: using it");
                run.adopt(tokens);
            }
            Err(e) => {
                warn!(file = %cfg.token_file.display(), error = %e, "the SSO token file changed but cannot be used")
            }
        }
    }

    /// Refreshes the token at node `idx` now (unless a refused or failed refresh asked to
    /// wait). `Err(Some(cause))`: refused, hold; `Err(None)`: failed or must wait, carry on.
    pub(super) async fn refresh_token(&mut self, idx: usize) -> Result<(), Option<Cause>> {
        self.adopt_newer_file();
        let Auth::Sso(cfg) = &self.cfg.auth else {
            return Ok(());
        };
        let fallback = cfg.refresh_query_fallback;
        let Some(run) = self.sso.as_ref() else {
            return Ok(());
        };
        if run.schedule.waiting(Instant::now()) {
            return Err(None);
        }
        let tokens = run.tokens.clone();
        let auth_retry = self.cfg.recovery.auth_retry;
        if tokens.refresh_expired(SystemTime::now()) {
            return Err(Some(self.refresh_refused(true, None, auth_retry)));
        }
        let node = self.cfg.nodes[idx].clone();
        self.shared.beat();
        let answer = tokio::select! {
            () = self.shutdown.cancelled() => return Err(None),
            r = self.rest.refresh_sso(&node, &tokens, fallback) => r,
        };
        self.shared.beat();
        let now = SystemTime::now();
        let refreshed = match answer {
            Ok(body) => tokens.refreshed(&body, now).map_err(|e| e.to_string()),
            Err(RefreshError::Refused { status, expired }) => {
                return Err(Some(self.refresh_refused(
                    expired,
                    Some(status),
                    auth_retry,
                )));
            }
            Err(RefreshError::Failed(e)) => Err(e.to_string()),
        };
        let Some(run) = self.sso.as_mut() else {
            return Ok(());
        };
        match refreshed {
            Ok(new) => {
                run.cell.set(new.token.clone());
                run.tokens = new;
                run.schedule.succeeded();
                run.expired = false;
                run.refreshed_since_login = true;
                self.shared.metrics.sso_refresh("ok");
                let expires_in = run.tokens.expires_in.as_secs();
                info!(node = %node, expires_in_s = expires_in, "SSO token refreshed");
                if let Some(dir) = &self.cfg.state_dir {
                    if let Err(e) = store::save(dir, &run.tokens) {
                        warn!(dir = %dir.display(), error = %e, "cannot keep the refreshed SSO token pair; a restart falls back to the token file");
                    }
                }
                Ok(())
            }
            Err(e) => {
                let delay = run.schedule.failed(Instant::now(), &self.cfg.recovery);
                self.shared.metrics.sso_refresh("failed");
                warn!(node = %node, error = %e, retry_ms = delay.as_millis() as u64, "SSO token refresh failed; retrying while the token is still valid");
                Err(None)
            }
        }
    }

    /// Records a refused refresh (no request was sent when `status` is `None`: the refresh
    /// token's own expiry has passed) and returns the hold's cause.
    fn refresh_refused(&mut self, expired: bool, status: Option<u16>, wait: Duration) -> Cause {
        if let Some(run) = self.sso.as_mut() {
            run.schedule.refused(Instant::now(), wait);
            run.expired |= expired;
        }
        let cause = self.auth_cause();
        let file = match &self.cfg.auth {
            Auth::Sso(s) => s.token_file.display().to_string(),
            Auth::Basic(_) => String::new(),
        };
        if cause == Cause::AuthExpired {
            self.shared.metrics.sso_refresh("expired");
            error!(
                status,
                file,
                "the SSO refresh token has expired: sign in once with a browser to fetch a new token pair (README, Single sign-on), write it to the token file, and run systemctl reload; until then nothing is sent but one refresh attempt per auth_retry"
            );
        } else {
            self.shared.metrics.sso_refresh("refused");
            error!(
                status,
                file,
                "the SSO token refresh was refused: the pair may have been revoked; holding like a rejected password"
            );
        }
        cause
    }

    /// Before a login or a resync on node `idx`: the refresh when it is due, and the
    /// loginName lookup once. `Err(cause)` when the credentials were refused.
    pub(super) async fn before_login(&mut self, idx: usize) -> Result<(), Cause> {
        if self.refresh_at().is_some_and(|at| Instant::now() >= at) {
            if let Err(Some(cause)) = self.refresh_token(idx).await {
                return Err(cause);
            }
        }
        self.check_login_name(idx).await
    }

    /// If the token names its user by something other than `[agent] id` (a loginName on
    /// UCCE), looks up that user's loginId once and refuses a token issued for someone else.
    async fn check_login_name(&mut self, idx: usize) -> Result<(), Cause> {
        let Some(run) = self.sso.as_ref() else {
            return Ok(());
        };
        let Some(user) = run.tokens.user_id.clone() else {
            return Ok(());
        };
        if user.eq_ignore_ascii_case(&self.cfg.agent_id) || self.memo.login_id_checked {
            return Ok(());
        }
        let node = self.cfg.nodes[idx].clone();
        match self.rest.login_id(&node, &user).await {
            Ok(id) if id == self.cfg.agent_id => {
                self.memo.login_id_checked = true;
                info!(login_name = %user, login_id = %id, "the SSO token's loginName resolves to this agent");
                Ok(())
            }
            Ok(id) => {
                error!(login_name = %user, login_id = %id, agent = %self.cfg.agent_id, "the SSO token was issued for another agent: install this agent's token pair");
                Err(Cause::AuthFailed)
            }
            Err(crate::finesse::rest::RestError::Unauthorized) => Err(self.auth_cause()),
            Err(e) => {
                warn!(login_name = %user, error = %e, "cannot resolve the SSO token's loginName; going on with [agent] id");
                Ok(())
            }
        }
    }
}

impl Driver {
    /// Compares SystemInfo's `systemAuthMode` with `[agent] auth`. It decides nothing by
    /// itself (HYBRID sites and proxies differ): a disagreement is one error line, and a
    /// refusal of the credentials while it lasts shows as `auth_mode_mismatch`.
    pub(super) fn check_auth_mode(&mut self, node: &reqwest::Url, info: &SystemInfo) {
        let site = info.system_auth_mode.as_deref().map_or("", str::trim);
        let sso = matches!(self.cfg.auth, Auth::Sso(_));
        let mismatch = (site.eq_ignore_ascii_case("SSO") && !sso)
            || (site.eq_ignore_ascii_case("NON_SSO") && sso);
        if mismatch && !self.memo.mode_mismatch {
            error!(
                node = %node,
                system_auth_mode = site,
                auth = self.cfg.auth.mode(),
                "SystemInfo's systemAuthMode disagrees with [agent] auth: set auth = \"{}\" (README, Single sign-on) if the site's mode is right",
                if sso { "basic" } else { "sso" }
            );
        }
        self.memo.mode_mismatch = mismatch;
    }

    /// What the machine needs to know to name a refusal of the credentials.
    pub(super) fn auth_facts(&self) -> AuthFacts {
        AuthFacts {
            expired: self
                .sso
                .as_ref()
                .is_some_and(|s| s.expired || s.tokens.refresh_expired(SystemTime::now())),
            mode_mismatch: self.memo.mode_mismatch,
        }
    }
}
