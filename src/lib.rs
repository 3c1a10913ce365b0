//! finesse-taskd keeps one contact-centre agent's nonvoice (task-routing) session with Cisco
//! Finesse healthy: a REST session and an XMPP pubsub session, failure detection, recovery with
//! jittered backoff and A/B failover, then Media GET, drift re-sign-in and Dialog LIST resync.
//!
//! # Layout
//! - [`xmpp`]: XMPP transport pieces shared by the daemon, the simulator and the tests (a
//!   TLS connector that trusts a custom CA, for both direct TLS and STARTTLS).
//!
//! The Finesse simulator lives in `src/bin/finesse-sim/` and deliberately shares no XML model
//! with the daemon, so that one misreading of the protocol cannot pass on both sides.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod xmpp;
