//! finesse-taskd keeps one contact-centre agent's nonvoice (task-routing) session with Cisco
//! Finesse healthy: a REST session and an XMPP pubsub session, failure detection, recovery with
//! jittered backoff and A/B failover, then Media GET, drift re-sign-in and Dialog LIST resync.
//!
//! # Layout
//! - [`config`]: the per-agent TOML, validated into [`config::Config`] (errors name the key).
//! - [`secret`]: a string that never prints itself.
//! - [`finesse`]: the Finesse XML model and the REST client.
//! - [`xmpp`]: the TLS connector (custom CA, direct TLS / STARTTLS), one login attempt, and
//!   the link whose reconnects the supervisor owns.
//! - [`backoff`]: the retry delays (first-retry window, then jittered exponential backoff).
//! - [`model`]: the agent's local view (media, dialogs) and the pure resync decisions.
//! - [`supervisor`]: the loop that holds, detects, recovers and resyncs.
//! - [`events`]: the bounded, resumable event stream of view changes.
//! - [`metrics`]: Prometheus metrics.
//! - [`orphan`]: the orphan-dialog guard (probe the task's session, close zombies).
//! - [`notify`]: sd_notify (READY, STATUS, RELOADING, STOPPING, watchdog from the main loop).
//! - [`api`]: the local HTTP API (health, readiness, state, events).
//!
//! The Finesse simulator lives in `src/bin/finesse-sim/` and deliberately shares no XML model
//! with the daemon, so that one misreading of the protocol cannot pass on both sides.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod backoff;
pub mod config;
pub mod events;
pub mod finesse;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod orphan;
pub mod secret;
pub mod supervisor;
pub mod xmpp;
