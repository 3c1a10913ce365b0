//! One XMPP login attempt: connect, SASL, stream restart, features. tokio-xmpp's `Client`
//! retries every failure forever, including rejected passwords; here the caller (the link,
//! driven by the recovery machine) decides whether and when to try again. Stream management
//! (XEP-0198) can be switched off on the client side, as Finesse does not use it.

use std::borrow::Cow;

use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{StreamHeader, Timeouts};
use tokio_xmpp::{Error, client_login};

use super::Connector;

/// Everything one login needs. The password is kept out of `Debug`.
#[derive(Clone)]
pub struct LoginParams {
    /// Where and how to connect.
    pub connector: Connector,
    /// The JID to log in as; a full JID binds that resource.
    pub jid: Jid,
    /// The account password.
    pub password: String,
    /// Silence before a ping, and the wait for its answer.
    pub timeouts: Timeouts,
    /// Ignore the server's offer of stream management.
    pub disable_sm: bool,
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

/// Performs one login: connect, authenticate, restart the stream, read its features.
pub async fn login(params: &LoginParams) -> Result<Connection, Error> {
    let username = params
        .jid
        .node()
        .map(|n| n.as_str().to_owned())
        .ok_or_else(|| Error::Io(std::io::Error::other("JID has no local part")))?;
    let (pending, binding) = params
        .connector
        .connect(&params.jid, ns::JABBER_CLIENT, params.timeouts)
        .await?;
    let (features, stream) = pending.recv_features().await?;
    let creds = sasl::common::Credentials::default()
        .with_username(username)
        .with_password(params.password.clone())
        .with_channel_binding(binding);
    let stream = client_login(stream, features.sasl_mechanisms, creds).await?;
    let stream = stream
        .send_header(StreamHeader {
            to: Some(Cow::Borrowed(params.jid.domain().as_str())),
            from: None,
            id: None,
        })
        .await?;
    let (mut features, stream) = stream.recv_features().await?;
    if params.disable_sm {
        features.stream_management = None;
    }
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: params.jid.clone(),
    })
}

/// True when `error` means the server rejected the credentials.
pub fn is_auth_error(error: &Error) -> bool {
    matches!(error, Error::Auth(_))
}
