//! The forwarder in front of a node's XMPP server (a separate process, Prosody or ejabberd):
//! it listens on the port the node publishes and carries each connection to the server's own
//! port under the link's conditions. When the server does not take the connection (stopped,
//! killed), the client's connection is reset, the nearest a forwarder can come to the refusal
//! the client would have seen without it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Conditions;
use super::pipe::{carry, swallow};

/// How long the forwarder waits for the server to take a connection.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(10);

/// Forwards every connection accepted on `listener` to `upstream` until `cancel` fires.
pub async fn forward(
    listener: TcpListener,
    upstream: SocketAddr,
    conditions: watch::Receiver<Conditions>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else { continue };
        let conditions = conditions.clone();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = one(client, upstream, conditions) => {}
            }
        });
    }
}

/// One client connection.
async fn one(client: TcpStream, upstream: SocketAddr, conditions: watch::Receiver<Conditions>) {
    let _ = client.set_nodelay(true);
    if conditions.borrow().blackhole {
        swallow(client).await;
        return;
    }
    let server = tokio::time::timeout(UPSTREAM_CONNECT, TcpStream::connect(upstream)).await;
    match server {
        Ok(Ok(server)) => {
            let _ = server.set_nodelay(true);
            carry(client, server, conditions).await;
        }
        _ => {
            debug!(%upstream, "network: the XMPP server did not take the connection; resetting");
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
        }
    }
}
