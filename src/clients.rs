//! One agent's connection resources, and who builds them: its TLS configuration (REST and
//! XMPP), its REST client, and the cap its logins wait for. A single agent builds its own
//! ([`Own`]); a fleet lends each agent its shared pool and caps (`crate::fleet` implements
//! [`Provider`]). The driver asks at start and at each reload with the configuration in force,
//! and never decides itself which to use.

use std::sync::Arc;

use crate::config::Config;
use crate::finesse::rest::{Credentials, Rest};
use crate::throttle::Throttle;
use crate::tls::TlsError;

/// What an agent connects with.
#[derive(Clone)]
pub struct Clients {
    /// The TLS configuration for REST and XMPP.
    pub tls: Arc<rustls::ClientConfig>,
    /// The REST client, under the provider's cap.
    pub rest: Rest,
}

/// Builds an agent's [`Clients`].
pub trait Provider: Send + Sync {
    /// The clients for `cfg`, sending `credentials`.
    fn clients(&self, cfg: &Config, credentials: Credentials) -> Result<Clients, TlsError>;

    /// The cap that the agent's logins and sign-ins wait for (none for a single agent).
    fn throttle(&self) -> Option<Arc<dyn Throttle>>;

    /// Whether the hold after an XMPP conflict outlives this run of the agent (kept with the
    /// refused credentials' record): yes for a single agent and a plain fleet; no in a
    /// cluster, where ownership on etcd decides who runs an agent and the fleet acts on a
    /// conflict itself (an agent handed back to this host must not find an old hold).
    fn conflict_hold_outlives_run(&self) -> bool {
        true
    }
}

/// A single agent's provider: everything built for its own configuration, no cap.
#[derive(Debug, Clone, Copy, Default)]
pub struct Own;

impl Own {
    /// Builds clients for `cfg` alone.
    pub fn build(cfg: &Config, credentials: Credentials) -> Result<Clients, TlsError> {
        let tls = crate::tls::client_config(cfg.ca_pem.as_deref())?;
        let rest = Rest::new(
            &cfg.agent_id,
            credentials,
            &tls,
            cfg.http_settings(),
            cfg.max_body,
        )?;
        Ok(Clients { tls, rest })
    }
}

impl Provider for Own {
    fn clients(&self, cfg: &Config, credentials: Credentials) -> Result<Clients, TlsError> {
        Self::build(cfg, credentials)
    }

    fn throttle(&self) -> Option<Arc<dyn Throttle>> {
        None
    }
}
