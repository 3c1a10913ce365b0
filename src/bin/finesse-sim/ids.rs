//! The simulated Cisco IdS behind SSO: it issues token pairs (an admin endpoint stands in for
//! the browser flow, which cannot be automated), checks Bearer tokens with their expiry, and
//! refreshes at `/desktop/sso/token` in the developer guide's form (`POST`, form-encoded
//! `token=` and `refresh-token=`) and the tech note's query form, answering as Cisco's
//! example does: a new `token` and `expires_in`, no `refresh_token` (a switch adds it).
//! Tokens are JWT-shaped (`exp`, `iat`, `sub`) by default; a switch makes them opaque, so a
//! client must fall back on `expires_in`. Each newly issued access token becomes the agent's
//! XMPP password (the inferred rule; the caller applies it to the servers).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The IdS settings (`[sso]` in the simulator config, and `/admin/behaviour`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdsSettings {
    /// Access-token lifetime (`expires_in`).
    #[serde(with = "humantime_serde")]
    pub token_lifetime: Duration,
    /// Refresh-token lifetime (from the pair's issue; a refresh does not extend it).
    #[serde(with = "humantime_serde")]
    pub refresh_lifetime: Duration,
    /// Tokens are JWTs with `exp`/`iat` (else opaque strings).
    pub jwt: bool,
    /// A refresh answer carries a new `refresh_token` (Cisco's example has none).
    pub returns_refresh_token: bool,
    /// Which refresh forms are served: `both`, `post` (the guide's) or `query` (the note's).
    pub refresh_forms: String,
}

impl Default for IdsSettings {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(300),
            refresh_lifetime: Duration::from_secs(8 * 3600),
            jwt: true,
            returns_refresh_token: false,
            refresh_forms: "both".into(),
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Never issued (or revoked).
    Unknown,
    /// Past its expiry.
    Expired,
}

impl Refused {
    /// The message Finesse's 401 carries.
    pub fn message(self) -> &'static str {
        match self {
            Self::Unknown => "invalid token",
            Self::Expired => "token expired",
        }
    }
}

#[derive(Debug, Clone)]
struct Issued {
    agent: String,
    expires: SystemTime,
    seq: u64,
}

/// Per-agent counts for the admin truth.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdsStats {
    /// Pairs issued (the "browser" flow).
    pub pairs_issued: u64,
    /// Refreshes answered with a new token.
    pub refreshes: u64,
    /// Refreshes refused.
    pub refused_refreshes: u64,
    /// When each refresh request (answered or refused) came, in ms since the start.
    pub refresh_at_ms: Vec<u64>,
    /// Bearer tokens refused on REST.
    pub refused_bearer: u64,
    /// The sequence number of the newest access token.
    pub newest_seq: u64,
}

/// The IdS state.
#[derive(Debug, Default)]
pub struct Ids {
    /// SSO mode is on (`--sso`): SystemInfo says SSO, REST takes Bearer only.
    pub enabled: bool,
    /// Lifetimes and shapes.
    pub settings: IdsSettings,
    access: HashMap<String, Issued>,
    refresh: HashMap<String, Issued>,
    seq: u64,
    /// Counts per agent.
    pub stats: BTreeMap<String, IdsStats>,
    /// Each agent's loginName by loginId (the IdS's `user_id`), where it differs.
    pub login_names: BTreeMap<String, String>,
    /// One-shot: the next refresh leaves the XMPP servers on the old token (a server that
    /// has not seen the new one yet), so the next XMPP login is refused once.
    pub stale_xmpp_once: bool,
}

/// A new pair or a refreshed token, as the JSON answer carries it.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The agent.
    pub agent: String,
    /// Its loginName (the `user_id` the IdS answers with).
    pub user_id: String,
    /// The access token.
    pub token: String,
    /// A refresh token, when the answer carries one.
    pub refresh_token: Option<String>,
    /// Seconds.
    pub expires_in: u64,
}

impl Grant {
    /// Cisco's JSON shape.
    pub fn json(&self, domain: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "token": self.token,
            "expires_in": self.expires_in,
            "user_id": self.user_id,
            "realm": domain,
            "user_principal": format!("{}@{domain}", self.user_id),
        });
        if let Some(r) = &self.refresh_token {
            v["refresh_token"] = serde_json::Value::String(r.clone());
        }
        v
    }
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Ids {
    /// An IdS, in SSO mode when `enabled`.
    pub fn new(enabled: bool, settings: IdsSettings) -> Self {
        Self {
            enabled,
            settings,
            ..Self::default()
        }
    }

    /// The IdS names these agents (loginId, loginName) by their loginName.
    pub fn with_login_names(mut self, names: impl IntoIterator<Item = (String, String)>) -> Self {
        self.login_names.extend(names);
        self
    }

    fn mint(
        &mut self,
        agent: &str,
        kind: &str,
        now: SystemTime,
        life: Duration,
    ) -> (String, Issued) {
        self.seq += 1;
        let expires = now + life;
        let nonce = format!("{:016x}", rand::random::<u64>());
        let token = if self.settings.jwt {
            let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            let claims = serde_json::json!({
                "sub": agent, "typ": kind, "jti": self.seq,
                "iat": (secs(now) * 1000.0).round() / 1000.0,
                "exp": (secs(expires) * 1000.0).round() / 1000.0,
            });
            format!(
                "{}.{}.{nonce}",
                b(r#"{"alg":"RS256","typ":"JWT"}"#),
                b(&claims.to_string())
            )
        } else {
            format!("sim-{kind}-{}-{nonce}", self.seq)
        };
        let issued = Issued {
            agent: agent.to_owned(),
            expires,
            seq: self.seq,
        };
        (token, issued)
    }

    fn stats(&mut self, agent: &str) -> &mut IdsStats {
        self.stats.entry(agent.to_owned()).or_default()
    }

    /// A new pair for `agent` (the browser flow's result).
    pub fn issue(&mut self, agent: &str, now: SystemTime) -> Grant {
        let (token, a) = self.mint(agent, "access", now, self.settings.token_lifetime);
        let (refresh, r) = self.mint(agent, "refresh", now, self.settings.refresh_lifetime);
        let seq = a.seq;
        self.access.insert(token.clone(), a);
        self.refresh.insert(refresh.clone(), r);
        let s = self.stats(agent);
        s.pairs_issued += 1;
        s.newest_seq = seq;
        Grant {
            agent: agent.to_owned(),
            user_id: self.login_name(agent),
            token,
            refresh_token: Some(refresh),
            expires_in: self.settings.token_lifetime.as_secs().max(1),
        }
    }

    /// The agent a Bearer token belongs to, if it is valid at `now`.
    pub fn check(&mut self, token: &str, now: SystemTime) -> Result<String, Refused> {
        let result = match self.access.get(token) {
            None => Err(Refused::Unknown),
            Some(i) if i.expires <= now => Err(Refused::Expired),
            Some(i) => Ok(i.agent.clone()),
        };
        if result.is_err() {
            if let Some(agent) = self.access.get(token).map(|i| i.agent.clone()) {
                self.stats(&agent).refused_bearer += 1;
            }
        }
        result
    }

    /// A refresh with `refresh_token` at `now` (`at_ms` for the record): a new access
    /// token, or why not.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        now: SystemTime,
        at_ms: u64,
    ) -> Result<Grant, Refused> {
        let Some(r) = self.refresh.get(refresh_token).cloned() else {
            return Err(Refused::Unknown);
        };
        self.stats(&r.agent).refresh_at_ms.push(at_ms);
        if r.expires <= now {
            self.stats(&r.agent).refused_refreshes += 1;
            return Err(Refused::Expired);
        }
        let (token, a) = self.mint(&r.agent, "access", now, self.settings.token_lifetime);
        let seq = a.seq;
        self.access.insert(token.clone(), a);
        let refresh_token = if self.settings.returns_refresh_token {
            let (new, mut issued) = self.mint(&r.agent, "refresh", now, Duration::ZERO);
            issued.expires = r.expires;
            self.refresh.insert(new.clone(), issued);
            Some(new)
        } else {
            None
        };
        let s = self.stats(&r.agent);
        s.refreshes += 1;
        s.newest_seq = seq;
        Ok(Grant {
            user_id: self.login_name(&r.agent),
            agent: r.agent,
            token,
            refresh_token,
            expires_in: self.settings.token_lifetime.as_secs().max(1),
        })
    }

    /// The loginName of agent `id` (its id when none is configured).
    pub fn login_name(&self, id: &str) -> String {
        self.login_names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }

    /// The loginId named by `name`, a loginName or a loginId.
    pub fn login_id(&self, name: &str) -> String {
        self.login_names
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map_or_else(|| name.to_owned(), |(id, _)| id.clone())
    }

    /// The sequence number of an issued access token (for the request log).
    pub fn seq_of(&self, token: &str) -> Option<u64> {
        self.access.get(token).map(|i| i.seq)
    }

    /// Every token (access and refresh) issued to `agent`, for a test's secrets audit.
    pub fn issued_to(&self, agent: &str) -> Vec<String> {
        self.access
            .iter()
            .chain(&self.refresh)
            .filter(|(_, i)| i.agent == agent)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Ends every refresh token of `agent` now (the test of an expired pair).
    pub fn expire_refresh(&mut self, agent: &str, now: SystemTime) -> usize {
        let mine = self.refresh.values_mut().filter(|r| r.agent == agent);
        let mut n = 0;
        for r in mine {
            r.expires = now;
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_gives_a_new_token_keeps_the_pair_and_ends_with_the_refresh_token() {
        let mut ids = Ids::new(true, IdsSettings::default());
        ids.settings.token_lifetime = Duration::from_secs(6);
        ids.settings.refresh_lifetime = Duration::from_secs(20);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let pair = ids.issue("1001", t0);
        let rt = pair.refresh_token.clone().unwrap();
        assert_eq!(ids.check(&pair.token, t0), Ok("1001".into()));
        assert_eq!(
            ids.check(&pair.token, t0 + Duration::from_secs(6)),
            Err(Refused::Expired)
        );
        assert_eq!(ids.check("nope", t0), Err(Refused::Unknown));
        let g = ids
            .refresh(&rt, t0 + Duration::from_secs(5), 5_000)
            .unwrap();
        assert!(
            g.refresh_token.is_none(),
            "Cisco's refresh answer has no refresh_token"
        );
        assert_ne!(g.token, pair.token);
        assert_eq!(
            ids.check(&g.token, t0 + Duration::from_secs(10)),
            Ok("1001".into())
        );
        assert_eq!(
            ids.refresh(&rt, t0 + Duration::from_secs(20), 20_000).err(),
            Some(Refused::Expired)
        );
        assert_eq!(ids.stats["1001"].refreshes, 1);
        assert_eq!(ids.stats["1001"].refused_refreshes, 1);
    }
}
