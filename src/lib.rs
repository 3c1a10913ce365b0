//! finesse-taskd keeps one contact-centre agent's nonvoice (task-routing) session with Cisco
//! Finesse healthy: a REST session and an XMPP pubsub session, failure detection, recovery with
//! jittered backoff and A/B failover, then Media GET, drift re-sign-in and Dialog LIST resync.
//!
//! # Layers
//! Each module imports only from the layers below it (`tests/layering.rs` checks it):
//!
//! 0. Shared vocabulary:
//!    - [`secret`]: a string that never prints itself.
//!    - [`sso`]: the SSO token pair, its kept copy, and the cell with the current token.
//!    - [`vocab`]: phases, causes, link and event kinds, dialog actions, as types.
//!    - [`view`]: the published state as plain data (media, dialogs, counters).
//!    - [`tls`]: the one TLS configuration and HTTP client builder for every connection.
//!    - [`config`]: the per-agent TOML, validated into [`config::Config`] (errors name the key).
//!    - [`command`]: the requests the API and the orphan guard queue for the driver.
//!    - [`state_dir`]: the state directory, created private and refused when others can write it.
//!    - [`throttle`]: a cap that logins and REST requests wait for (a fleet's).
//!    - [`timer_grid`]: one grid for periodic deadlines, so that many agents' timers wake together.
//!    - [`telemetry`]: logging set-up (formats, `RUST_LOG`, the protocol crates' clamp).
//! 1. Protocols and outputs:
//!    - [`finesse`]: the Finesse XML model and the REST client.
//!    - [`clients`]: one agent's TLS configuration and REST client, and who builds them.
//!    - [`xmpp`]: the TLS connector, one login attempt, and the link the driver reconnects.
//!    - [`events`]: the bounded, resumable event stream of view changes.
//!    - [`metrics`]: Prometheus metrics, rendered from plain values.
//!    - [`notify`]: sd_notify (READY, STATUS, RELOADING, STOPPING, watchdog).
//!    - [`backoff`]: the retry delays (first-retry window, then jittered exponential backoff).
//!    - [`refresh`]: when the SSO token is refreshed (due, failed, refused).
//!    - [`refusals`]: the credentials refused within the lockout window (the login gate's memory).
//! 2. The agent's view:
//!    - [`reconcile`]: builds the view from Finesse documents and makes the pure resync decisions.
//!    - [`published`]: the shared, published state (view, events, metrics, notifier, heartbeat).
//! 3. Recovery:
//!    - [`machine`]: the pure recovery state machine (`step(input, now) -> actions`).
//!    - [`driver`]: performs the machine's actions (REST, XMPP, resync, steady state).
//! 4. Around the driver:
//!    - [`orphan`]: the orphan-dialog guard (probe the task's session, close zombies).
//!    - [`api`]: the local HTTP API (health, readiness, state, events, actions, metrics).
//! 5. [`app`]: wires one agent's daemon together (and the signal handlers); [`fleet`] runs
//!    many agents in one process; [`status`] summarises a running one from its API; [`cli`]
//!    is the command line; `main` maps each outcome to an exit code.
//!
//! The Finesse simulator lives in `src/bin/finesse-sim/` and shares no module with the
//! daemon, so that one misreading of the protocol cannot pass on both sides.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub(crate) mod command;
pub mod config;
pub mod secret;
pub mod sso;
pub mod state_dir;
pub mod telemetry;
pub mod throttle;
pub(crate) mod timer_grid;
pub(crate) mod tls;
pub(crate) mod view;
pub mod vocab;

pub(crate) mod backoff;
pub mod clients;
pub(crate) mod events;
pub mod finesse;
pub(crate) mod metrics;
pub(crate) mod notify;
pub(crate) mod refresh;
pub(crate) mod refusals;
pub mod xmpp;

pub(crate) mod published;
pub mod reconcile;

pub(crate) mod driver;
pub(crate) mod machine;

pub mod api;
pub(crate) mod orphan;

pub mod app;
pub mod cli;
pub mod fleet;
pub mod status;
