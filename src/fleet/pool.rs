//! What a fleet lends its agents ([`Pool`], a [`Provider`]): one TLS configuration, one HTTP
//! client (a connection pool per node) and the nodes' anonymous SystemInfo answers, for every
//! agent whose CA and timeouts are the fleet's; and the fleet's caps. An agent whose
//! file sets its own CA or timeouts gets clients of its own, under the same caps. A reload of
//! the fleet file swaps in new shared resources only for what changed; each agent picks them up
//! at its own reload, which the fleet sends right after. In cluster mode every slot of the
//! caps also passes the host's fence.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::caps::{Caps, Rates};
use super::cluster::gate::{Fenced, Gate};
use crate::clients::{Clients, Own, Provider};
use crate::config::Config;
use crate::finesse::rest::{Credentials, Rest, SystemInfoCache};
use crate::throttle::Throttle;
use crate::tls::{HttpSettings, TlsError};

/// The resources shared for one set of fleet settings.
struct Shared {
    ca_pem: Option<Vec<u8>>,
    timeouts: HttpSettings,
    tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
    info: Arc<SystemInfoCache>,
    caps: Arc<Caps>,
}

/// The fleet's provider; cheap to clone (every clone sees the same, current resources).
#[derive(Clone)]
pub struct Pool {
    current: Arc<RwLock<Arc<Shared>>>,
    /// In cluster mode, the fence every slot passes (see [`super::cluster::gate`]).
    gate: Option<Gate>,
}

/// What a rebuild replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rebuilt {
    /// The TLS configuration, HTTP client and SystemInfo answers (CA, timeout or poll changed).
    pub clients: bool,
    /// The caps (their rates changed).
    pub caps: bool,
}

/// How long a node's SystemInfo answer is shared: half a poll, at most a second, so that a
/// node's return is seen at most that much later by an agent that did not ask itself.
fn fresh_for(base: &Config) -> Duration {
    (base.recovery.systeminfo_poll / 2).min(Duration::from_secs(1))
}

fn build(base: &Config, rates: Rates, caps: Option<Arc<Caps>>) -> Result<Shared, TlsError> {
    let tls = crate::tls::client_config(base.ca_pem.as_deref())?;
    let http = crate::tls::http_client(&tls, base.http_settings())?;
    Ok(Shared {
        ca_pem: base.ca_pem.clone(),
        timeouts: base.http_settings(),
        tls,
        http,
        info: Arc::new(SystemInfoCache::new(fresh_for(base))),
        caps: caps.unwrap_or_else(|| Caps::new(rates)),
    })
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

impl Pool {
    /// The pool for the fleet's shared settings (`base`) and caps.
    pub fn new(base: &Config, rates: Rates) -> Result<Self, TlsError> {
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(build(base, rates, None)?))),
            gate: None,
        })
    }

    /// The same pool, every slot of its caps given only while `gate` is open.
    pub fn behind(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The caps as agents wait for them: behind the gate in cluster mode.
    fn slots(&self, caps: Arc<Caps>) -> Arc<dyn Throttle> {
        match &self.gate {
            Some(gate) => Arc::new(Fenced::new(caps, gate.clone())),
            None => caps,
        }
    }

    /// Brings the pool in line with a reloaded fleet file: what did not change is kept (the
    /// connections, the shared answers, the buckets' state).
    pub fn rebuild(&self, base: &Config, rates: Rates) -> Result<Rebuilt, TlsError> {
        let old = read(&self.current);
        let clients = old.ca_pem != base.ca_pem
            || old.timeouts != base.http_settings()
            || old.info.fresh_for() != fresh_for(base);
        let caps = old.caps.rates != rates;
        if !clients && !caps {
            return Ok(Rebuilt::default());
        }
        let keep_caps = (!caps).then(|| old.caps.clone());
        let new = if clients {
            build(base, rates, keep_caps)?
        } else {
            Shared {
                ca_pem: old.ca_pem.clone(),
                timeouts: old.timeouts,
                tls: old.tls.clone(),
                http: old.http.clone(),
                info: old.info.clone(),
                caps: Caps::new(rates),
            }
        };
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(new);
        Ok(Rebuilt { clients, caps })
    }

    /// The caps' rates now in force.
    pub fn rates(&self) -> Rates {
        read(&self.current).caps.rates
    }
}

impl Provider for Pool {
    fn clients(&self, cfg: &Config, credentials: Credentials) -> Result<Clients, TlsError> {
        let shared = read(&self.current);
        let throttle = self.slots(shared.caps.clone());
        // The one rule for sharing: the same CA and timeouts as the fleet's.
        let same = cfg.ca_pem == shared.ca_pem && cfg.http_settings() == shared.timeouts;
        let clients = if same {
            Clients {
                tls: shared.tls.clone(),
                rest: Rest::on_shared(
                    &cfg.agent_id,
                    credentials,
                    shared.http.clone(),
                    shared.info.clone(),
                    cfg.max_body,
                ),
            }
        } else {
            Own::build(cfg, credentials)?
        };
        Ok(Clients {
            tls: clients.tls,
            rest: clients.rest.with_throttle(Some(throttle)),
        })
    }

    fn throttle(&self) -> Option<Arc<dyn Throttle>> {
        Some(self.slots(read(&self.current).caps.clone()))
    }

    fn conflict_hold_outlives_run(&self) -> bool {
        self.gate.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::secret::Secret;

    fn base(extra: &str) -> Config {
        let text = format!(
            "[agent]\nid = \"fleet\"\npassword = \"placeholder\"\n[finesse]\n\
             nodes = [\"https://a.example:8445\"]\n{extra}\n[[media]]\nid = 1\n\
             max_dialog_limit = 1\ninterrupt_action = \"ACCEPT\"\n"
        );
        Config::parse(Path::new("fleet.toml"), &text).unwrap()
    }

    const RATES: Rates = Rates {
        logins: 10.0,
        requests: 50.0,
        in_flight: 20,
    };

    fn shared(p: &Pool) -> Arc<Shared> {
        read(&p.current)
    }

    #[test]
    fn a_reload_rebuilds_only_what_changed() {
        let pool = Pool::new(&base(""), RATES).unwrap();
        let first = shared(&pool);
        assert_eq!(pool.rebuild(&base(""), RATES).unwrap(), Rebuilt::default());
        assert!(
            Arc::ptr_eq(&first, &shared(&pool)),
            "nothing changed, nothing built"
        );

        let slower = Rates {
            logins: 2.0,
            ..RATES
        };
        let r = pool.rebuild(&base(""), slower).unwrap();
        assert_eq!(
            r,
            Rebuilt {
                clients: false,
                caps: true
            }
        );
        assert_eq!(pool.rates(), slower);
        assert!(
            Arc::ptr_eq(&first.tls, &shared(&pool).tls),
            "the clients are kept"
        );

        let r = pool
            .rebuild(&base("request_timeout = \"3s\""), slower)
            .unwrap();
        assert_eq!(
            r,
            Rebuilt {
                clients: true,
                caps: false
            }
        );
        assert!(!Arc::ptr_eq(&first.tls, &shared(&pool).tls));
        assert_eq!(shared(&pool).timeouts.request, Duration::from_secs(3));
    }

    #[test]
    fn an_agent_shares_the_clients_only_with_the_fleets_ca_and_timeout() {
        let pool = Pool::new(&base(""), RATES).unwrap();
        let creds = || Credentials::Basic(Secret::new("pw"));
        let same = pool.clients(&base(""), creds()).unwrap();
        assert!(Arc::ptr_eq(&same.tls, &shared(&pool).tls));
        let own = pool
            .clients(&base("request_timeout = \"4s\""), creds())
            .unwrap();
        assert!(!Arc::ptr_eq(&own.tls, &shared(&pool).tls));
        // After a rebuild, the next agent reload takes the new clients.
        pool.rebuild(&base("request_timeout = \"4s\""), RATES)
            .unwrap();
        let now = pool
            .clients(&base("request_timeout = \"4s\""), creds())
            .unwrap();
        assert!(Arc::ptr_eq(&now.tls, &shared(&pool).tls));
        assert!(pool.throttle().is_some());
    }
}
