//! The accept loop behind one node's REST API. It owns the listening socket so that the
//! "REST refused" fault can really close it (new connections are refused and open ones are
//! dropped) and reopen it on the same port when the fault clears. TLS is optional: plain HTTP
//! only when asked for. Each connection passes the node's network ([`crate::network`]) on
//! its way to the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::cluster::{Node, Peer, RestMode};
use crate::network::{self, Link};

/// The in-memory pipe between a connection's network and its server, per direction.
const PIPE: usize = 64 * 1024;

/// Serves `router` on `listener` for `node` until `cancel` fires.
pub async fn serve(
    node: Arc<Node>,
    router: Router,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    cancel: CancellationToken,
) {
    let addr: SocketAddr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "REST listener has no address");
            return;
        }
    };
    let mut faults = node.faults.subscribe();
    let mut listener = Some(listener);
    let mut connections = cancel.child_token();
    loop {
        if faults.borrow_and_update().rest == RestMode::Refused {
            if listener.take().is_some() {
                connections.cancel();
                connections = cancel.child_token();
                debug!(node = %node.name, "REST listener closed (refused fault)");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                r = faults.changed() => if r.is_err() { return } else { continue },
            }
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    warn!(node = %node.name, error = %e, "cannot reopen REST listener; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            r = faults.changed() => {
                listener = Some(current);
                if r.is_err() { return }
            }
            accepted = current.accept() => {
                listener = Some(current);
                let Ok((tcp, peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                // Through the node's network: a blackhole takes the connection; otherwise the
                // server speaks to its end of an in-memory pipe that the network carries.
                let conditions = node.network.watch(Link::Rest);
                if conditions.borrow().blackhole {
                    tokio::spawn(network::swallow(tcp));
                    continue;
                }
                node.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (ours, stream) = tokio::io::duplex(PIPE);
                tokio::spawn(network::carry(tcp, ours, conditions));
                let service = TowerToHyperService::new(router.clone().layer(axum::Extension(Peer(peer))));
                let tls = tls.clone();
                let stop = connections.clone();
                tokio::spawn(async move {
                    let builder = Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                            let Ok(Ok(stream)) = handshake.await else { return };
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            tokio::select! { () = stop.cancelled() => {}, _ = conn => {} }
                        }
                        None => {
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            tokio::select! { () = stop.cancelled() => {}, _ = conn => {} }
                        }
                    }
                });
            }
        }
    }
}

/// A TLS acceptor serving the PEM certificate chain and key.
pub fn acceptor(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
