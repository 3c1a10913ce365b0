//! The ownership records on etcd. Under the site's prefix:
//!
//! - `<prefix>members/<member>`: a live host, `{"weight":…}`, on the host's lease (it goes
//!   when the lease does);
//! - `<prefix>owners/<agent>`: the member that owns the agent, on that member's lease, created
//!   only by a transaction that succeeds when the key does not exist. Its create revision is
//!   the ownership's identity, in logs and the API.
//! - `<prefix>ready/<member>`: the agents another member owns that this member awaits and
//!   can log in at once, a JSON array, on its lease: an owner hands an agent over only to a
//!   member that says it is ready for it, so that the agent's gap is one login.
//!
//! Claims go in transactions of up to [`BATCH`] agents (all absent, or none is taken: the
//! batch is then narrowed to the absent ones and tried again), not one per agent. No record
//! is an instruction by itself: the host acts only while its lease is proven
//! ([`super::fence`]), and never through etcd's `Lock`, which Jepsen found unsafe on its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp,
};

use super::config::ClusterConfig;
use super::hrw::Member;

/// The largest number of agents claimed in one transaction (etcd's `--max-txn-ops` is 128 by
/// default; a claim costs two operations per agent).
pub const BATCH: usize = 60;

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// etcd answered with an error, or could not be reached.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A file of `[cluster]` could not be read.
    #[error("{0}")]
    File(String),
    /// No member answered any try.
    #[error("etcd: no member answered")]
    NoAnswer,
    /// A try took longer than its bound (a stalled connection, a member without a leader).
    #[error("etcd: no answer within {0:?}")]
    TimedOut(Duration),
}

/// Who owns an agent, as etcd says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The owning member.
    pub member: String,
    /// The owner key's create revision: this ownership's identity.
    pub revision: i64,
}

/// How many times a request goes out when a member does not answer (the client balances
/// over the endpoints, so the next try reaches another member).
const TRIES: usize = 4;

/// True for an error that another member may not have: the one asked is down or unreachable.
fn elsewhere(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(s) => s.code() == tonic::Code::Unavailable,
        _ => false,
    }
}

/// One host's view of the ownership records.
#[derive(Clone)]
pub struct Store {
    client: Client,
    /// What [`Self::redial`] connects with: the endpoints and options.
    dial: Arc<(Vec<String>, ConnectOptions)>,
    /// The bound on each try (etcd's own timeout does not cover a stream's answer).
    timeout: Duration,
    prefix: String,
    member: String,
    lease: Option<i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.prefix)
            .field("member", &self.member)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| StoreError::File(format!("{}: {e}", path.display())))
}

impl Store {
    /// `request` on a handle of the client, each try bounded by the store's timeout, again (up
    /// to [`TRIES`] times) while the member it reached did not answer.
    async fn call<T, F, Fut>(&self, request: F) -> Result<T, StoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = StoreError::NoAnswer;
        for _ in 0..TRIES {
            match tokio::time::timeout(self.timeout, request(self.client.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if elsewhere(&e) => last = e.into(),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => last = StoreError::TimedOut(self.timeout),
            }
        }
        Err(last)
    }

    /// Connects to the cluster's etcd (mutual TLS when the config gives a certificate), each
    /// request bounded by `timeout`.
    pub async fn connect(cfg: &ClusterConfig, timeout: Duration) -> Result<Self, StoreError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(timeout, timeout);
        if let Some(ca) = &cfg.ca_file {
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?));
            if let Some((cert, key)) = &cfg.identity {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            options = options.with_tls(tls);
        }
        let endpoints: Vec<String> = cfg
            .endpoints
            .iter()
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
            .collect();
        let client = Client::connect(endpoints.clone(), Some(options.clone())).await?;
        Ok(Self {
            client,
            dial: Arc::new((endpoints, options)),
            timeout,
            prefix: cfg.prefix.clone(),
            member: cfg.member.clone(),
            lease: None,
        })
    }

    /// A new client, with new connections: after a failure, the old one's connections may
    /// be stuck on a path that no longer carries anything (a stalled link, a blackholed
    /// connection, a member that died mid-stream), which its own reconnection does not leave.
    pub async fn redial(&mut self) -> Result<(), StoreError> {
        let (endpoints, options) = &*self.dial;
        self.client = Client::connect(endpoints.clone(), Some(options.clone())).await?;
        Ok(())
    }

    fn members_prefix(&self) -> String {
        format!("{}members/", self.prefix)
    }

    fn owners_prefix(&self) -> String {
        format!("{}owners/", self.prefix)
    }

    fn ready_prefix(&self) -> String {
        format!("{}ready/", self.prefix)
    }

    /// This host's name.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// This host's lease, once granted.
    pub fn lease(&self) -> Option<i64> {
        self.lease
    }

    /// Grants this host a lease of `ttl` and registers it as a member of `weight` on it.
    pub async fn join(&mut self, ttl: Duration, weight: f64) -> Result<i64, StoreError> {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let lease = self
            .call(|mut c| async move { c.lease_grant(ttl, None).await })
            .await?
            .id();
        self.lease = Some(lease);
        let key = format!("{}{}", self.members_prefix(), self.member);
        let value = serde_json::json!({ "weight": weight }).to_string();
        let put = PutOptions::new().with_lease(lease);
        self.call(|mut c| {
            let (key, value, put) = (key.clone(), value.clone(), put.clone());
            async move { c.put(key, value, Some(put)).await }
        })
        .await?;
        Ok(lease)
    }

    /// Forgets a lease that etcd no longer has (a new one is granted at the next join).
    pub fn forget(&mut self) {
        self.lease = None;
    }

    /// Uses `lease`, granted by [`Self::join`] on another handle of this store.
    pub fn set_lease(&mut self, lease: Option<i64>) {
        self.lease = lease;
    }

    /// Renews this host's lease once: true while it lives, false when etcd says it is gone.
    /// (Opening etcd's keep-alive stream sends the first renewal and reads its answer; that
    /// one exchange is the renewal.)
    pub async fn renew(&mut self) -> Result<bool, StoreError> {
        let Some(lease) = self.lease else {
            return Ok(false);
        };
        let answer = self
            .call(|mut c| async move { c.lease_keep_alive(lease).await.map(|_| ()) })
            .await;
        match answer {
            Ok(()) => Ok(true),
            Err(StoreError::Etcd(etcd_client::Error::LeaseKeepAliveError(m)))
                if m.contains("not found") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes this host off the members, and withdraws what it said it was ready for (its
    /// lease, and the agents it still owns, stay): the others' hashing no longer names it, so
    /// what it releases next is theirs to claim.
    pub async fn withdraw(&mut self) -> Result<(), StoreError> {
        let key = format!("{}{}", self.members_prefix(), self.member);
        self.call(|mut c| {
            let key = key.clone();
            async move { c.delete(key, None).await }
        })
        .await?;
        self.say_ready(&[]).await
    }

    /// Says which awaited agents this host is ready to log in at once (none: the key goes).
    pub async fn say_ready(&mut self, agents: &[String]) -> Result<(), StoreError> {
        let key = format!("{}{}", self.ready_prefix(), self.member);
        if agents.is_empty() {
            self.call(|mut c| {
                let key = key.clone();
                async move { c.delete(key, None).await }
            })
            .await?;
            return Ok(());
        }
        let Some(lease) = self.lease else {
            return Ok(());
        };
        let value = serde_json::to_string(agents).unwrap_or_default();
        let put = PutOptions::new().with_lease(lease);
        self.call(|mut c| {
            let (key, value, put) = (key.clone(), value.clone(), put.clone());
            async move { c.put(key, value, Some(put)).await }
        })
        .await?;
        Ok(())
    }

    /// Which member says it is ready for which agent (a value that is not a list of agent
    /// ids says nothing).
    pub async fn ready(&mut self) -> Result<BTreeMap<String, String>, StoreError> {
        let prefix = self.ready_prefix();
        let got = self.prefixed(&prefix).await?;
        let mut out = BTreeMap::new();
        for kv in got.kvs() {
            let member = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
            let agents: Vec<String> = serde_json::from_slice(kv.value()).unwrap_or_default();
            for agent in agents {
                out.insert(agent, member.clone());
            }
        }
        Ok(out)
    }

    /// Ends this host's lease: its member record and every agent it owns go at once.
    pub async fn leave(&mut self) -> Result<(), StoreError> {
        if let Some(lease) = self.lease.take() {
            self.call(|mut c| async move { c.lease_revoke(lease).await })
                .await?;
        }
        Ok(())
    }

    /// Every key under `prefix`.
    async fn prefixed(&self, prefix: &str) -> Result<etcd_client::GetResponse, StoreError> {
        self.call(|mut c| async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await })
            .await
    }

    /// The live members.
    pub async fn members(&mut self) -> Result<Vec<Member>, StoreError> {
        let prefix = self.members_prefix();
        let got = self.prefixed(&prefix).await?;
        let mut out = Vec::new();
        for kv in got.kvs() {
            let name = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
            let weight = serde_json::from_slice::<serde_json::Value>(kv.value())
                .ok()
                .and_then(|v| v["weight"].as_f64())
                .filter(|w| w.is_finite() && *w > 0.0)
                .unwrap_or(1.0);
            out.push(Member { name, weight });
        }
        Ok(out)
    }

    /// Every agent's owner.
    pub async fn owners(&mut self) -> Result<BTreeMap<String, Ownership>, StoreError> {
        let prefix = self.owners_prefix();
        let got = self.prefixed(&prefix).await?;
        Ok(got
            .kvs()
            .iter()
            .map(|kv| {
                let agent = String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned();
                let member = String::from_utf8_lossy(kv.value()).into_owned();
                let revision = kv.create_revision();
                (agent, Ownership { member, revision })
            })
            .collect())
    }

    /// Claims `agents` for this host, on its lease, each only if nobody owns it; returns the
    /// ones this host now owns, with their revisions. Agents owned by another are left.
    pub async fn claim(&mut self, agents: &[String]) -> Result<BTreeMap<String, i64>, StoreError> {
        let Some(lease) = self.lease else {
            return Ok(BTreeMap::new());
        };
        let mut won = BTreeMap::new();
        for chunk in agents.chunks(BATCH) {
            let mut batch: Vec<&String> = chunk.iter().collect();
            // A failed batch is narrowed to the keys still absent; another host may be
            // claiming at the same moment, so a few rounds may be needed.
            for _ in 0..4 {
                if batch.is_empty() {
                    break;
                }
                let keys: Vec<String> = batch
                    .iter()
                    .map(|a| format!("{}{a}", self.owners_prefix()))
                    .collect();
                let when: Vec<Compare> = keys
                    .iter()
                    .map(|k| Compare::create_revision(k.clone(), CompareOp::Equal, 0))
                    .collect();
                let then: Vec<TxnOp> = keys
                    .iter()
                    .map(|k| {
                        let put = PutOptions::new().with_lease(lease);
                        TxnOp::put(k.clone(), self.member.clone(), Some(put))
                    })
                    .collect();
                let txn = Txn::new().when(when).and_then(then);
                let answer = self
                    .call(|mut c| {
                        let txn = txn.clone();
                        async move { c.txn(txn).await }
                    })
                    .await?;
                if answer.succeeded() {
                    let revision = answer.header().map_or(0, |h| h.revision());
                    won.extend(batch.iter().map(|a| ((*a).clone(), revision)));
                    break;
                }
                let owned = self.owners().await?;
                batch.retain(|a| !owned.contains_key(*a));
            }
        }
        Ok(won)
    }

    /// A watch on every record under the prefix (members and owners): each change arrives as
    /// a message, so that a host acts on a key that went (a lease that expired, an agent
    /// handed over) at once rather than at its next round.
    pub async fn watch(&self) -> Result<etcd_client::WatchStream, StoreError> {
        let prefix = self.prefix.clone();
        self.call(|mut c| {
            let prefix = prefix.clone();
            async move {
                c.watch(prefix, Some(etcd_client::WatchOptions::new().with_prefix()))
                    .await
            }
        })
        .await
    }

    /// Gives up `agents` this host owns (only keys whose value is this member), up to
    /// [`BATCH`] in one transaction (one nested transaction per agent, so that a key another
    /// member holds is left and the others still go).
    pub async fn release(&mut self, agents: &[String]) -> Result<(), StoreError> {
        for chunk in agents.chunks(BATCH) {
            let each: Vec<TxnOp> = chunk
                .iter()
                .map(|agent| {
                    let key = format!("{}{agent}", self.owners_prefix());
                    let mine = Compare::value(key.clone(), CompareOp::Equal, self.member.clone());
                    TxnOp::txn(
                        Txn::new()
                            .when(vec![mine])
                            .and_then(vec![TxnOp::delete(key, None)]),
                    )
                })
                .collect();
            let txn = Txn::new().and_then(each);
            self.call(|mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        }
        Ok(())
    }
}
