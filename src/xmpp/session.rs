//! One XMPP login attempt: connect, SASL, stream restart, features. tokio-xmpp's `Client`
//! retries every failure forever, including rejected passwords; here the caller (the link,
//! driven by the recovery machine) decides whether and when to try again. Stream management
//! (XEP-0198) can be switched off on the client side, as Finesse does not use it.
//!
//! SASL interoperates: the mechanisms offered can be narrowed to a preference list (Finesse's
//! Openfire needs one that carries the clear password), and with `channel_binding = "auto"` a
//! `-PLUS` mechanism refused with `not-authorized` is tried once more without channel binding
//! (ejabberd 23.01 refuses the TLS 1.3 exporter binding this client computes); that this
//! server refuses it is then remembered, so later logins send the password once.

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::vocab::MAX_REFUSALS;

use tokio_xmpp::connect::{AsyncReadAndWrite, ServerConnector};
use tokio_xmpp::error::AuthError;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::sasl::DefinedCondition as SaslCondition;
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{PendingFeaturesRecv, StreamHeader, Timeouts};
use tokio_xmpp::{Error, client_login};

use super::Connector;
use super::dial::timed_out;
use crate::config::ChannelBinding;

/// How SASL is negotiated.
#[derive(Debug, Clone, Default)]
pub struct SaslOptions {
    /// Channel binding: auto (fall back once when refused), required, or off.
    pub channel_binding: ChannelBinding,
    /// Mechanisms in order of preference (empty: tokio-xmpp's own order).
    pub mechanisms: Vec<String>,
    /// This server refused channel binding before (auto mode): log in without it.
    pub binding_refused: bool,
}

/// A login that succeeded.
pub struct LoggedIn {
    /// The session's connection.
    pub connection: Connection,
    /// This server refused channel binding and the login without it worked: the caller
    /// remembers it, so later logins send the password once.
    pub binding_refused: bool,
}

/// A login that failed.
#[derive(Debug)]
pub struct LoginFailed {
    /// Why.
    pub error: Error,
    /// How many times the server refused the password in this attempt: 0 when the failure
    /// was not about the credentials, 2 when the channel-binding login and its fallback both
    /// were, which the login gate must wait out twice (see [`MAX_REFUSALS`]).
    pub refusals: u32,
}

impl std::fmt::Display for LoginFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl LoginFailed {
    /// A failure that sent no password.
    pub fn before_auth(error: Error) -> Self {
        Self { error, refusals: 0 }
    }
}

/// Everything one login needs. The password is kept out of `Debug`.
#[derive(Clone)]
pub struct LoginParams {
    /// Where and how to connect.
    pub connector: Connector,
    /// The JID to log in as; a full JID binds that resource.
    pub jid: Jid,
    /// The account password (shared with the config's; tokio-xmpp takes a copy for the
    /// SASL exchange only).
    pub password: crate::secret::Secret,
    /// Silence before a ping, and the wait for its answer.
    pub timeouts: Timeouts,
    /// Ignore the server's offer of stream management.
    pub disable_sm: bool,
    /// SASL negotiation.
    pub sasl: SaslOptions,
}

impl std::fmt::Debug for LoginParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginParams")
            .field("connector", &self.connector)
            .field("jid", &self.jid)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Performs one login: connect, authenticate, restart the stream, read its features. With
/// `channel_binding = "auto"`, a `-PLUS` mechanism refused with `not-authorized` is tried once
/// more, on a new connection, without channel binding.
pub async fn login(params: &LoginParams) -> Result<LoggedIn, LoginFailed> {
    let sasl = &params.sasl;
    let bind = match sasl.channel_binding {
        ChannelBinding::Off => false,
        ChannelBinding::Required => true,
        ChannelBinding::Auto => !sasl.binding_refused,
    };
    let failed = |error: Error, refused_before: u32| {
        let refusals = if is_auth_error(&error) {
            refused_before + 1
        } else {
            refused_before
        };
        LoginFailed {
            error,
            refusals: refusals.min(MAX_REFUSALS),
        }
    };
    match attempt(params, bind).await {
        Err(Attempt { error, plus: true })
            if sasl.channel_binding == ChannelBinding::Auto && is_auth_error(&error) =>
        {
            tracing::warn!(
                "the server refused the login with channel binding; trying once without it"
            );
            match attempt(params, false).await {
                Ok(connection) => Ok(LoggedIn {
                    connection,
                    binding_refused: true,
                }),
                Err(Attempt { error, .. }) => Err(failed(error, 1)),
            }
        }
        Err(Attempt { error, .. }) => Err(failed(error, 0)),
        Ok(connection) => Ok(LoggedIn {
            connection,
            binding_refused: false,
        }),
    }
}

/// A failed attempt, and whether it used a `-PLUS` mechanism.
struct Attempt {
    error: Error,
    plus: bool,
}

impl From<Error> for Attempt {
    fn from(error: Error) -> Self {
        Attempt { error, plus: false }
    }
}

/// The offered mechanisms narrowed to what this login may use: never ANONYMOUS, and only the
/// first of the preference list the server offers, when there is a list.
fn usable(offered: &BTreeSet<String>, preference: &[String]) -> BTreeSet<String> {
    let mut usable: BTreeSet<String> = offered
        .iter()
        .filter(|m| !m.eq_ignore_ascii_case("ANONYMOUS"))
        .cloned()
        .collect();
    if let Some(first) = preference.iter().find_map(|want| {
        usable
            .iter()
            .find(|m| m.eq_ignore_ascii_case(want))
            .cloned()
    }) {
        usable = BTreeSet::from([first]);
    } else if !preference.is_empty() {
        usable.clear();
    }
    usable
}

async fn attempt(params: &LoginParams, bind: bool) -> Result<Connection, Attempt> {
    let username = params
        .jid
        .node()
        .map(|n| n.as_str().to_owned())
        .ok_or_else(|| Error::Io(std::io::Error::other("JID has no local part")))?;
    let (pending, binding) = params
        .connector
        .connect(&params.jid, ns::JABBER_CLIENT, params.timeouts)
        .await?;
    let binding = if bind {
        binding
    } else {
        sasl::common::ChannelBinding::None
    };
    let negotiated = negotiate(params, pending, binding, username);
    match params.connector.connect_timeout() {
        None => negotiated.await,
        Some(limit) => tokio::time::timeout(limit, negotiated)
            .await
            .unwrap_or_else(|_| {
                let what = "the XMPP features and SASL exchange";
                Err(timed_out(what, limit).into())
            }),
    }
}

/// The features, SASL, the restarted stream and its features.
async fn negotiate<S: AsyncReadAndWrite + 'static>(
    params: &LoginParams,
    pending: PendingFeaturesRecv<S>,
    binding: sasl::common::ChannelBinding,
    username: String,
) -> Result<Connection, Attempt> {
    let (features, stream) = pending.recv_features().await.map_err(Error::from)?;
    let mechanisms = usable(&features.sasl_mechanisms, &params.sasl.mechanisms);
    // tokio-xmpp prefers SCRAM, which takes the `-PLUS` form whenever a binding is given.
    let plus = !matches!(binding, sasl::common::ChannelBinding::None)
        && mechanisms.iter().any(|m| m.ends_with("-PLUS"));
    let creds = sasl::common::Credentials::default()
        .with_username(username)
        .with_password(params.password.expose().to_owned())
        .with_channel_binding(binding);
    let stream = client_login(stream, mechanisms, creds)
        .await
        .map_err(|error| Attempt { error, plus })?;
    let stream = stream
        .send_header(StreamHeader {
            to: Some(Cow::Borrowed(params.jid.domain().as_str())),
            from: None,
            id: None,
        })
        .await
        .map_err(Error::from)?;
    let (mut features, stream) = stream.recv_features().await.map_err(Error::from)?;
    if params.disable_sm {
        features.stream_management = None;
    }
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: params.jid.clone(),
    })
}

/// True when `error` means the server rejected the credentials: `not-authorized` after a
/// mechanism that carried the password (every mechanism this client uses does).
pub fn is_auth_error(error: &Error) -> bool {
    matches!(
        error,
        Error::Auth(AuthError::Fail(SaslCondition::NotAuthorized))
    )
}

/// True when SASL failed for another reason (no usable mechanism, a temporary failure, a
/// malformed exchange): not the password, so no auth hold.
pub fn is_sasl_error(error: &Error) -> bool {
    matches!(error, Error::Auth(_)) && !is_auth_error(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_preference_list_picks_one_offered_mechanism_and_anonymous_is_never_used() {
        let offered = set(&["ANONYMOUS", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"]);
        assert_eq!(
            usable(&offered, &[]),
            set(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"])
        );
        assert_eq!(
            usable(&offered, &["scram-sha-256".into(), "plain".into()]),
            set(&["PLAIN"])
        );
        assert!(usable(&offered, &["SCRAM-SHA-512".into()]).is_empty());
    }

    #[test]
    fn only_not_authorized_is_a_rejected_password() {
        let not_authorized = Error::Auth(AuthError::Fail(SaslCondition::NotAuthorized));
        assert!(is_auth_error(&not_authorized));
        assert!(!is_sasl_error(&not_authorized));
        let temporary = Error::Auth(AuthError::Fail(SaslCondition::TemporaryAuthFailure));
        assert!(!is_auth_error(&temporary) && is_sasl_error(&temporary));
        let none = Error::Auth(AuthError::NoMechanism);
        assert!(!is_auth_error(&none) && is_sasl_error(&none));
    }
}
