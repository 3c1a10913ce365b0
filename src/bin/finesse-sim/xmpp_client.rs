//! The publisher's own XMPP client code on tokio-xmpp, written apart from the daemon's (the
//! simulator shares no module with it): a connector for one address, plain or direct TLS with
//! the simulator's CA, one SASL login, and a stanza stream that logs in again every `retry`
//! while its server is away.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tokio_xmpp::connect::{AsyncReadAndWrite, ServerConnector};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::rustls;
use tokio_xmpp::stanzastream::{Connection, StanzaStream};
use tokio_xmpp::xmlstream::{PendingFeaturesRecv, StreamHeader, Timeouts, initiate_stream};
use tokio_xmpp::{Error, client_login};
use tracing::debug;

/// Where and as whom the publisher logs in.
#[derive(Clone)]
pub struct Login {
    /// The server's address.
    pub addr: SocketAddr,
    /// Direct TLS trusting this configuration, or plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The publisher's JID.
    pub jid: Jid,
    /// Its password.
    pub password: String,
}

impl Login {
    /// The domain the login is for.
    pub fn domain(&self) -> &str {
        self.jid.domain().as_str()
    }
}

/// The rustls client configuration trusting exactly the certificates of `pem`.
pub fn trusting(pem: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert?)?;
    }
    anyhow::ensure!(!roots.is_empty(), "no certificate in the CA file");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Clone)]
struct Connect {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({})",
            self.addr,
            if self.tls.is_some() { "tls" } else { "plain" }
        )
    }
}

impl ServerConnector for Connect {
    type Stream = Box<dyn AsyncReadAndWrite + Send + 'static>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<
        (
            PendingFeaturesRecv<Self::Stream>,
            sasl::common::ChannelBinding,
        ),
        Error,
    > {
        let domain = jid.domain().as_str();
        let tcp = TcpStream::connect(self.addr).await?;
        let _ = tcp.set_nodelay(true);
        let io: Self::Stream = match &self.tls {
            None => Box::new(BufStream::new(tcp)),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(domain.to_owned())
                    .map_err(|e| Error::Io(std::io::Error::other(e)))?;
                let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await?;
                Box::new(BufStream::new(stream))
            }
        };
        let header = StreamHeader {
            to: Some(Cow::Borrowed(domain)),
            from: None,
            id: None,
        };
        let pending = initiate_stream(io, ns, header, timeouts).await?;
        Ok((pending, sasl::common::ChannelBinding::None))
    }
}

/// One login: connect, authenticate, restart the stream, read its features.
async fn login(l: &Login) -> Result<Connection, Error> {
    let connector = Connect {
        addr: l.addr,
        tls: l.tls.clone(),
    };
    let timeouts = Timeouts {
        read_timeout: Duration::from_secs(10),
        response_timeout: Duration::from_secs(5),
    };
    let (pending, binding) = connector
        .connect(&l.jid, ns::JABBER_CLIENT, timeouts)
        .await?;
    let (features, stream) = pending.recv_features().await?;
    let user = l
        .jid
        .node()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    let creds = sasl::common::Credentials::default()
        .with_username(user)
        .with_password(l.password.clone())
        .with_channel_binding(binding);
    let stream = client_login(stream, features.sasl_mechanisms, creds).await?;
    let stream = stream
        .send_header(StreamHeader {
            to: Some(Cow::Borrowed(l.domain())),
            from: None,
            id: None,
        })
        .await?;
    let (mut features, stream) = stream.recv_features().await?;
    features.stream_management = None;
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: l.jid.clone(),
    })
}

/// A stanza stream that logs in with `l` whenever it needs a connection, trying again every
/// `retry` until it succeeds or `cancel` fires.
pub fn stream(l: Login, retry: Duration, cancel: CancellationToken) -> StanzaStream {
    let reconnector = move |_: Option<String>, slot: oneshot::Sender<Connection>| {
        let l = l.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                let result = tokio::select! {
                    () = cancel.cancelled() => return,
                    r = login(&l) => r,
                };
                match result {
                    Ok(conn) => {
                        let _ = slot.send(conn);
                        return;
                    }
                    Err(e) => debug!(error = %e, addr = %l.addr, "publisher login failed"),
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(retry) => {}
                }
            }
        });
    };
    StanzaStream::new(Box::new(reconnector), 16)
}
