//! How the agent authenticates: `[agent] auth = "basic"` (a password) or `"sso"` (Cisco's
//! SSO token pair, from `[agent] sso_token_file` or the systemd credential
//! `sso_token_credential`), and the `[sso]` table: the XMPP login a token makes (Cisco does
//! not document it, so the username form and SASL mechanisms are settings), when to refresh,
//! and whether a refused form POST falls back to the query form of Cisco's tech note.

use std::path::{Path, PathBuf};

use super::raw::{RawAgent, RawSso};
use super::secrets::{credential, read_password, read_secret_file};
use super::{ConfigError, choice, err};
use crate::secret::Secret;
use crate::sso::token::TokenSet;

super::types::spelled! {
    /// Which name an SSO XMPP login presents with the token.
    XmppUsername {
        /// The agent's loginId (`[agent] id`), Finesse's JID rule.
        LoginId => "login_id",
        /// The token's `user_id` as the IdS gave it (a loginName on UCCE).
        LoginName => "login_name",
    }
}

/// The SSO settings and the token pair read at load time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SsoConfig {
    /// Where the pair came from (re-read on a reload).
    #[serde(skip)]
    pub token_file: PathBuf,
    /// The pair in that file (its modification time as the time obtained).
    #[serde(skip)]
    pub tokens: TokenSet,
    /// The XMPP login's username.
    pub xmpp_username: XmppUsername,
    /// SASL mechanisms the token may be sent with, in preference order.
    pub xmpp_mechanisms: Vec<String>,
    /// The fraction of the access token's lifetime after which it is refreshed.
    pub refresh_at: f64,
    /// A refresh POST refused with 400/404/405 is tried once as a GET with query parameters.
    pub refresh_query_fallback: bool,
    /// The pair is the operator's file (not a systemd credential): a new one installed there
    /// is taken only while group and others can neither read nor write it.
    #[serde(skip)]
    pub owner_only: bool,
}

/// The agent's credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// Basic auth and the same password for XMPP.
    Basic(Secret),
    /// SSO: Bearer tokens, refreshed.
    Sso(Box<SsoConfig>),
}

/// Printed as the keys it came from: `agent.auth`, `agent.password` (redacted),
/// `agent.sso_token_file` and the `[sso]` table (null for a password).
impl serde::Serialize for Auth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("agent.auth", self.mode())?;
        match self {
            Self::Basic(p) => {
                m.serialize_entry("agent.password", p)?;
                m.serialize_entry("agent.sso_token_file", &None::<String>)?;
                m.serialize_entry("sso", &None::<()>)?;
            }
            Self::Sso(sso) => {
                m.serialize_entry("agent.password", &None::<()>)?;
                m.serialize_entry("agent.sso_token_file", &sso.token_file)?;
                m.serialize_entry("sso", sso)?;
            }
        }
        m.end()
    }
}

impl Auth {
    /// `basic` or `sso`.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Basic(_) => "basic",
            Self::Sso(_) => "sso",
        }
    }

    /// The secret that identifies these credentials (the password, or the refresh token):
    /// a refusal persisted for it is waited out only while it stays the same.
    pub fn fingerprint_material(&self) -> &str {
        match self {
            Self::Basic(p) => p.expose(),
            Self::Sso(s) => s.tokens.refresh_token.expose(),
        }
    }
}

/// The `[agent] auth` choice with its credentials.
pub(super) fn read(
    f: &Path,
    a: &RawAgent,
    s: &RawSso,
    warnings: &mut Vec<String>,
) -> Result<Auth, ConfigError> {
    let mode = choice(f, "agent.auth", &a.auth, &[("basic", false), ("sso", true)])?;
    if !mode {
        if a.sso_token_file.is_some() || a.sso_token_credential.is_some() {
            return Err(err(
                f,
                "agent.sso_token_file",
                "set only with auth = \"sso\"",
            ));
        }
        return read_password(f, a, warnings).map(Auth::Basic);
    }
    if a.password_file.is_some() || a.password_credential.is_some() || a.password.is_some() {
        return Err(err(
            f,
            "agent.password_file",
            "auth = \"sso\" takes no password (the token pair replaces it); remove password_file, password_credential and password",
        ));
    }
    let (key, path) = match (&a.sso_token_file, &a.sso_token_credential) {
        (Some(p), None) => ("agent.sso_token_file", p.clone()),
        (None, Some(name)) => (
            "agent.sso_token_credential",
            credential(f, "agent.sso_token_credential", name)?,
        ),
        _ => {
            return Err(err(
                f,
                "agent.sso_token_file",
                "auth = \"sso\" needs exactly one of sso_token_file, sso_token_credential",
            ));
        }
    };
    let text = read_secret_file(f, key, &path, key == "agent.sso_token_file")?;
    let written = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|e| err(f, key, format!("{}: {e}", path.display())))?;
    let tokens = TokenSet::from_json(&text, written)
        .map_err(|e| err(f, key, format!("{}: {e}", path.display())))?;
    let xmpp_username = choice(
        f,
        "sso.xmpp_username",
        &s.xmpp_username,
        XmppUsername::CHOICES,
    )?;
    if xmpp_username == XmppUsername::LoginName && tokens.user_id.is_none() {
        return Err(err(
            f,
            "sso.xmpp_username",
            format!(
                "\"login_name\" needs the token file's user_id, and {} has none",
                path.display()
            ),
        ));
    }
    if s.xmpp_mechanisms.is_empty() {
        return Err(err(f, "sso.xmpp_mechanisms", "must name at least one"));
    }
    if !(0.1..=0.95).contains(&s.refresh_at) {
        return Err(err(
            f,
            "sso.refresh_at",
            format!("{} is out of range 0.1..=0.95", s.refresh_at),
        ));
    }
    Ok(Auth::Sso(Box::new(SsoConfig {
        token_file: path,
        tokens,
        xmpp_username,
        xmpp_mechanisms: s.xmpp_mechanisms.clone(),
        refresh_at: s.refresh_at,
        refresh_query_fallback: s.refresh_query_fallback,
        owner_only: key == "agent.sso_token_file",
    })))
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
