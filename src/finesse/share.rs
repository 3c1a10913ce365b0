//! What the agents of a fleet share toward Finesse: one TLS configuration, one HTTP client (a
//! connection pool per node) and the anonymous SystemInfo answer of each node ([`Pool`]).
//! SystemInfo is the same document for every agent, so when a whole fleet asks at once (a
//! node came back, 2,000 agents choose again) one request goes out per node: the others wait
//! for it (a single flight) and take its answer, or one younger than `fresh_for`, failures
//! included (a node that timed out for one agent is down for all). Only the answer to the
//! request without credentials is shared; an agent that needs to ask with its credentials
//! (a 401 first) asks on its own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, Url};
use tokio::time::Instant;

use super::model::{SystemInfo, XmlError};
use super::rest::{Rest, RestError};

/// A node's last anonymous SystemInfo answer.
type Answer = Option<(Instant, Result<SystemInfo, RestError>)>;

/// The fleet's shared TLS configuration, HTTP client and SystemInfo answers.
#[derive(Clone)]
pub struct Pool {
    /// The TLS configuration (XMPP and REST).
    pub tls: Arc<rustls::ClientConfig>,
    /// The HTTP client: one connection pool per node for every agent.
    pub http: reqwest::Client,
    /// The nodes' SystemInfo answers.
    pub info: Arc<InfoShare>,
}

/// Each node's latest anonymous SystemInfo answer, and the one request in flight.
#[derive(Debug)]
pub struct InfoShare {
    fresh_for: Duration,
    nodes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Answer>>>>,
}

impl InfoShare {
    /// Answers younger than `fresh_for` are given to every agent that asks.
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for `url`: a fresh one, the one in flight when it lands, or `fetch`'s.
    pub(super) async fn get<F, Fut>(&self, url: &Url, fetch: F) -> Result<SystemInfo, RestError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SystemInfo, RestError>>,
    {
        let slot = {
            let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
            nodes.entry(url.as_str().to_owned()).or_default().clone()
        };
        let mut answer = slot.lock().await;
        if let Some((at, result)) = answer.as_ref() {
            if at.elapsed() < self.fresh_for {
                return result.clone();
            }
        }
        let result = fetch().await;
        *answer = Some((Instant::now(), result.clone()));
        result
    }
}

impl Rest {
    /// `GET /finesse/api/SystemInfo`: without credentials first (direct access needs none),
    /// and once more with them when that is refused with 401 (12.6's VPN-less proxy
    /// authenticates it).
    /// In a fleet, the answer without credentials is shared ([`super::share`]).
    pub async fn system_info(&self, node: &Url) -> Result<SystemInfo, RestError> {
        let url = Self::url(node, "/finesse/api/SystemInfo");
        let anonymous = || self.system_info_at(url.clone(), false);
        let answer = match &self.info {
            Some(share) => share.get(&url, anonymous).await,
            None => anonymous().await,
        };
        match answer {
            Err(RestError::Unauthorized) => self.system_info_at(url, true).await,
            other => other,
        }
    }

    async fn system_info_at(&self, url: Url, auth: bool) -> Result<SystemInfo, RestError> {
        let (_, body) = self.call(Method::GET, url, None, auth).await?;
        let info = SystemInfo::parse(&body)?;
        if info.status.is_empty() {
            return Err(RestError::Malformed(XmlError {
                what: "SystemInfo",
                message: "no <status>".into(),
            }));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn info(status: &str) -> SystemInfo {
        SystemInfo {
            status: status.into(),
            ..SystemInfo::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn many_agents_asking_at_once_send_one_request_and_take_its_answer() {
        let share = Arc::new(InfoShare::new(Duration::from_secs(1)));
        let sent = Arc::new(AtomicUsize::new(0));
        let url = Url::parse("https://a.example:8445/finesse/api/SystemInfo").unwrap();
        let ask = |status: &'static str| {
            let (share, sent, url) = (share.clone(), sent.clone(), url.clone());
            tokio::spawn(async move {
                share
                    .get(&url, || async {
                        sent.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok(info(status))
                    })
                    .await
            })
        };
        let asked: Vec<_> = (0..100).map(|_| ask("IN_SERVICE")).collect();
        for a in asked {
            assert_eq!(a.await.unwrap().unwrap().status, "IN_SERVICE");
        }
        assert_eq!(sent.load(Ordering::SeqCst), 1, "one request for 100 askers");
        // Still fresh: no request; stale: a new one, and its answer.
        assert_eq!(ask("X").await.unwrap().unwrap().status, "IN_SERVICE");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            ask("OUT_OF_SERVICE").await.unwrap().unwrap().status,
            "OUT_OF_SERVICE"
        );
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_shared_too_and_each_node_has_its_own_answer() {
        let share = InfoShare::new(Duration::from_secs(1));
        let a = Url::parse("https://a.example:8445/").unwrap();
        let b = Url::parse("https://b.example:8445/").unwrap();
        let down = || async { Err(RestError::Transport("timed out".into())) };
        assert!(share.get(&a, down).await.is_err());
        let not_asked = || async { unreachable!("the failure is fresh") };
        let again = share.get(&a, not_asked).await;
        assert!(matches!(again, Err(RestError::Transport(_))), "{again:?}");
        let other = share.get(&b, || async { Ok(info("IN_SERVICE")) }).await;
        assert_eq!(other.unwrap().status, "IN_SERVICE");
    }
}
