//! Relays: a forwarder to any loopback address a test names, under conditions of its own, for
//! the parts of a test that are not Finesse but whose network matters, such as the etcd a
//! cluster's host reaches (a host cut from etcd and not from Finesse). Made from the admin API
//! (`POST /admin/relays`, `PUT /admin/relays/{id}/network`); each lives as long as the
//! simulator.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Conditions;
use super::proxy::forward;

/// One relay.
#[derive(Debug)]
pub struct Relay {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where it carries them.
    pub upstream: SocketAddr,
    conditions: watch::Sender<Conditions>,
}

impl Relay {
    /// A relay on a free loopback port to `upstream` (a loopback address only).
    pub async fn start(upstream: SocketAddr) -> Result<Self, String> {
        if !upstream.ip().is_loopback() {
            return Err(format!("{upstream}: a relay reaches loopback only"));
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let listen = listener.local_addr().map_err(|e| e.to_string())?;
        let (conditions, watched) = watch::channel(Conditions::default());
        tokio::spawn(forward(
            listener,
            upstream,
            watched,
            CancellationToken::new(),
        ));
        Ok(Self {
            listen,
            upstream,
            conditions,
        })
    }

    /// Its conditions now.
    pub fn get(&self) -> Conditions {
        *self.conditions.borrow()
    }

    /// Sets its conditions; open connections follow at once.
    pub fn set(&self, c: Conditions) {
        self.conditions.send_replace(c);
    }
}
