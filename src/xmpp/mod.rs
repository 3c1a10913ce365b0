//! XMPP transport for Finesse's Notification Service: the connector that opens a TCP,
//! direct-TLS or STARTTLS stream with a caller-chosen trust store, the socket wrapper that
//! counts round trips and acknowledges at once (`turns`), the login (`session`) and the
//! long-lived stanza stream with liveness and pubsub (`link`).

pub mod connector;
pub mod link;
pub mod session;
pub mod turns;

pub use connector::{Connector, TlsMode};
