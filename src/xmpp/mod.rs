//! XMPP transport for Finesse's Notification Service: the connector that opens a TCP,
//! direct-TLS or STARTTLS stream, or XMPP over WebSocket (`websocket`, `framing`), with a
//! caller-chosen trust store, reaching the server's addresses under `connect_timeout`
//! (`dial`), the socket wrapper that
//! counts round trips and acknowledges at once (`turns`), the login (`session`) and the
//! long-lived stanza stream with liveness and pubsub (`link`).

pub mod connector;
mod dial;
pub mod framing;
mod keepalive;
pub mod link;
pub mod scan;
pub mod session;
pub mod turns;
pub mod websocket;

pub use crate::config::TlsMode;
pub use connector::Connector;

/// Why an XMPP session could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither SystemInfo nor the config names the XMPP domain.
    #[error("SystemInfo names no xmppDomain and the config sets none")]
    NoDomain,
    /// The node's host did not resolve.
    #[error("{host}:{port}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The node's host resolved to nothing.
    #[error("{host}:{port}: no address")]
    NoAddress {
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
    /// The JID built from the agent id, domain and resource is invalid.
    #[error("JID: {0}")]
    Jid(String),
    /// The login failed.
    #[error(transparent)]
    Login(#[from] tokio_xmpp::Error),
}

impl Error {
    /// True when the server rejected the credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Login(e) if session::is_auth_error(e))
    }
}
