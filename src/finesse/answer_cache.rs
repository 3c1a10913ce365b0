//! One answer per key shared by many askers: when a whole fleet asks a node for its SystemInfo
//! at once (a node came back, 2,000 agents choose again) one request goes out per node; the
//! others wait for it (a single flight) and take its answer, or one younger than `fresh_for`,
//! failures included (a node that timed out for one agent is down for all). Only the answer
//! to the request without credentials is shared; an agent that must ask with its credentials
//! (a 401 first) asks on its own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use tokio::time::Instant;

/// A node's last answer and when it came.
type Slot<T> = Option<(Instant, T)>;

/// Each node's latest answer, and the one request in flight.
#[derive(Debug)]
pub struct AnswerCache<T> {
    fresh_for: Duration,
    nodes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot<T>>>>>,
}

impl<T: Clone> AnswerCache<T> {
    /// Answers younger than `fresh_for` are given to every agent that asks.
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// How long an answer is shared.
    pub fn fresh_for(&self) -> Duration {
        self.fresh_for
    }

    /// The answer for `url`: a fresh one, the one in flight when it lands, or `fetch`'s.
    pub(super) async fn get<F, Fut>(&self, url: &Url, fetch: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    type Cache = AnswerCache<Result<Info, String>>;

    #[derive(Debug, Clone)]
    struct Info {
        status: String,
    }

    fn info(status: &str) -> Info {
        Info {
            status: status.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn many_agents_asking_at_once_send_one_request_and_take_its_answer() {
        let share = Arc::new(Cache::new(Duration::from_secs(1)));
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
        let share = Cache::new(Duration::from_secs(1));
        let a = Url::parse("https://a.example:8445/").unwrap();
        let b = Url::parse("https://b.example:8445/").unwrap();
        let down = || async { Err("timed out".to_owned()) };
        assert!(share.get(&a, down).await.is_err());
        let not_asked = || async { unreachable!("the failure is fresh") };
        let again = share.get(&a, not_asked).await;
        assert_eq!(again.unwrap_err(), "timed out");
        let other = share.get(&b, || async { Ok(info("IN_SERVICE")) }).await;
        assert_eq!(other.unwrap().status, "IN_SERVICE");
    }
}
