//! One XMPP login attempt, and a [`StanzaStream`] whose reconnect policy belongs to the caller.
//!
//! tokio-xmpp's `Client` retries every failure forever, including rejected passwords, and its
//! reconnect task outlives the client. Here the caller passes a delay function and a
//! cancellation token instead: the reconnect task reports every attempt, stops on
//! cancellation, and stops for good when the delay function returns `None` (for example after
//! an authentication failure). Stream management (XEP-0198) can be switched off on the client
//! side, as Finesse does not use it.

use std::borrow::Cow;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::stanzastream::{Connection, StanzaStream};
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

/// What the reconnect task reports.
#[derive(Debug, Clone)]
pub enum AttemptEvent {
    /// A login attempt is starting (1-based count since the last success).
    Started {
        /// The attempt's number.
        attempt: u32,
    },
    /// The attempt failed.
    Failed {
        /// The attempt's number.
        attempt: u32,
        /// The error, with its cause chain.
        error: String,
        /// True when the server rejected the credentials.
        auth: bool,
    },
    /// The attempt succeeded and the stream was handed over.
    Connected,
    /// The delay function said stop; no further attempt will be made.
    GaveUp,
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

/// Builds a stream that logs in with `params` whenever it needs a connection.
///
/// Before each retry it sleeps for `delay(attempt, last_was_auth_error)`; `None` stops retrying.
/// The first attempt of each reconnect starts at once: the caller decides about herd delays
/// by when it creates or uses the stream. Cancelling `cancel` ends any pending reconnect.
pub fn reconnecting_stream(
    params: LoginParams,
    delay: impl FnMut(u32, bool) -> Option<Duration> + Send + Clone + 'static,
    events: mpsc::UnboundedSender<AttemptEvent>,
    cancel: CancellationToken,
) -> StanzaStream {
    let reconnector = move |_location: Option<String>, slot: oneshot::Sender<Connection>| {
        let params = params.clone();
        let events = events.clone();
        let cancel = cancel.clone();
        let mut delay = delay.clone();
        tokio::spawn(async move {
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let _ = events.send(AttemptEvent::Started { attempt });
                let result = tokio::select! {
                    () = cancel.cancelled() => return,
                    result = login(&params) => result,
                };
                match result {
                    Ok(conn) => {
                        let _ = events.send(AttemptEvent::Connected);
                        let _ = slot.send(conn);
                        return;
                    }
                    Err(error) => {
                        let auth = is_auth_error(&error);
                        let _ = events.send(AttemptEvent::Failed {
                            attempt,
                            error: error.to_string(),
                            auth,
                        });
                        let Some(wait) = delay(attempt, auth) else {
                            let _ = events.send(AttemptEvent::GaveUp);
                            return;
                        };
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
        });
    };
    StanzaStream::new(Box::new(reconnector), 16)
}
