//! Cisco's SSO token pair as a value: read from the JSON `GET /desktop/sso/token` answers
//! (`token`, `refresh_token`, `expires_in`, optionally `user_id`, `realm`, `user_principal`),
//! updated by a refresh answer (which carries no `refresh_token`: the old one stays), and
//! written back for the state directory. The access token's expiry is its JWT `exp` when the
//! token parses as a JWT, else the time the pair was obtained plus `expires_in`; the refresh is
//! due when `refresh_at` (75 %) of that lifetime has passed. Pure: no clock, no I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Deserialize;

use crate::secret::Secret;

/// A token document that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TokenError {
    /// The JSON field (or `(json)` for the document itself).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> TokenError {
    TokenError {
        field,
        message: message.into(),
    }
}

/// `expires_in` as Cisco writes it (a number), or as a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
struct Raw {
    token: Option<Secret>,
    refresh_token: Option<Secret>,
    expires_in: Option<Seconds>,
    user_id: Option<String>,
    /// Written by this daemon into its own copy: when the pair was obtained.
    obtained_at_ms: Option<u64>,
}

/// An access token with its refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    /// The access token (`Authorization: Bearer`, and the XMPP password).
    pub token: Secret,
    /// The refresh token.
    pub refresh_token: Secret,
    /// The access token's lifetime as the IdS stated it.
    pub expires_in: Duration,
    /// When the pair (or the last refresh) was obtained.
    pub obtained_at: SystemTime,
    /// The user the IdS issued it for (a loginName or a loginId), if it said.
    pub user_id: Option<String>,
}

/// The claims of a JWT's payload that matter here.
#[derive(Deserialize)]
struct Claims {
    exp: Option<f64>,
    iat: Option<f64>,
}

/// `exp` and `iat` of `token` when it is a JWT (three base64url parts, a JSON payload).
fn claims(token: &str) -> Option<(Option<SystemTime>, Option<SystemTime>)> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let c: Claims = serde_json::from_slice(&bytes).ok()?;
    let at = |s: Option<f64>| {
        s.filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e11)
            .map(|s| UNIX_EPOCH + Duration::from_secs_f64(s))
    };
    Some((at(c.exp), at(c.iat)))
}

fn seconds(s: Option<Seconds>) -> Result<Duration, TokenError> {
    let n = match s.ok_or_else(|| bad("expires_in", "missing"))? {
        Seconds::Number(n) => n,
        Seconds::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| bad("expires_in", format!("{t:?} is not a number of seconds")))?,
    };
    if n == 0 {
        return Err(bad("expires_in", "must be above zero"));
    }
    Ok(Duration::from_secs(n))
}

fn parse(text: &str) -> Result<Raw, TokenError> {
    serde_json::from_str(text).map_err(|e| {
        // serde_json's own message can quote a value (a token), so only where it failed.
        let what = match e.classify() {
            serde_json::error::Category::Data => "a field has the wrong type",
            serde_json::error::Category::Eof => "the document ends early",
            _ => "not JSON",
        };
        bad(
            "(json)",
            format!("{what} (line {}, column {})", e.line(), e.column()),
        )
    })
}

fn non_empty(field: &'static str, s: Option<Secret>) -> Result<Secret, TokenError> {
    s.filter(|s| !s.expose().trim().is_empty())
        .ok_or_else(|| bad(field, "missing or empty"))
}

impl TokenSet {
    /// A pair from a token document; `obtained_at` is when it was written (the file's
    /// modification time), unless the document says (this daemon's own copy does).
    pub fn from_json(text: &str, obtained_at: SystemTime) -> Result<Self, TokenError> {
        let raw = parse(text)?;
        Ok(Self {
            token: non_empty("token", raw.token)?,
            refresh_token: non_empty("refresh_token", raw.refresh_token)?,
            expires_in: seconds(raw.expires_in)?,
            obtained_at: raw
                .obtained_at_ms
                .map_or(obtained_at, |ms| UNIX_EPOCH + Duration::from_millis(ms)),
            user_id: raw.user_id.filter(|u| !u.trim().is_empty()),
        })
    }

    /// The pair after a refresh answered with `text` at `now`: the new access token and
    /// lifetime, the new refresh token if one came back, else the old one.
    pub fn refreshed(&self, text: &str, now: SystemTime) -> Result<Self, TokenError> {
        let raw = parse(text)?;
        Ok(Self {
            token: non_empty("token", raw.token)?,
            refresh_token: raw
                .refresh_token
                .filter(|s| !s.expose().trim().is_empty())
                .unwrap_or_else(|| self.refresh_token.clone()),
            expires_in: seconds(raw.expires_in)?,
            obtained_at: now,
            user_id: raw.user_id.or_else(|| self.user_id.clone()),
        })
    }

    /// When the access token expires: its JWT `exp`, else obtained + `expires_in`.
    pub fn expires_at(&self) -> SystemTime {
        claims(self.token.expose())
            .and_then(|(exp, _)| exp)
            .unwrap_or(self.obtained_at + self.expires_in)
    }

    /// When the access token's lifetime began: its JWT `iat` (when before the expiry), else
    /// the expiry minus `expires_in`.
    fn issued_at(&self) -> SystemTime {
        let exp = self.expires_at();
        claims(self.token.expose())
            .and_then(|(_, iat)| iat)
            .filter(|iat| *iat < exp)
            .or_else(|| exp.checked_sub(self.expires_in))
            .unwrap_or(exp)
    }

    /// When a refresh is due: `fraction` (0.75) of the lifetime after it began.
    pub fn refresh_due(&self, fraction: f64) -> SystemTime {
        let begin = self.issued_at();
        let life = self.expires_at().duration_since(begin).unwrap_or_default();
        begin + life.mul_f64(fraction.clamp(0.0, 1.0))
    }

    /// When the refresh token expires, if it is a JWT that says.
    pub fn refresh_expires_at(&self) -> Option<SystemTime> {
        claims(self.refresh_token.expose()).and_then(|(exp, _)| exp)
    }

    /// True when the refresh token is known to have expired at `now`.
    pub fn refresh_expired(&self, now: SystemTime) -> bool {
        self.refresh_expires_at().is_some_and(|t| t <= now)
    }

    /// The pair as this daemon keeps it in its state directory (Cisco's field names, plus
    /// when it was obtained). Contains the secrets: written only to a 0600 file.
    pub fn to_json(&self) -> zeroize::Zeroizing<String> {
        let ms = self
            .obtained_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        #[derive(serde::Serialize)]
        struct Kept<'a> {
            token: &'a str,
            refresh_token: &'a str,
            expires_in: u64,
            user_id: Option<&'a str>,
            obtained_at_ms: u128,
        }
        let kept = Kept {
            token: self.token.expose(),
            refresh_token: self.refresh_token.expose(),
            expires_in: self.expires_in.as_secs(),
            user_id: self.user_id.as_deref(),
            obtained_at_ms: ms,
        };
        zeroize::Zeroizing::new(serde_json::to_string(&kept).unwrap_or_default())
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
