//! XMPP transport for Finesse's Notification Service. Today this holds the connector that opens
//! a TCP, direct-TLS or STARTTLS stream with a caller-chosen trust store; the session,
//! liveness and pubsub layers build on it.

pub mod connector;
pub mod link;
pub mod session;
pub mod turns;

pub use connector::{Connector, TlsMode};
