//! A tokio-xmpp [`ServerConnector`] that connects to one fixed address and verifies the server
//! with a trust store the caller supplies.
//!
//! tokio-xmpp's own TLS connectors build their root store from the platform store only, so a
//! Finesse (or a test Prosody) signed by a private CA could only be trusted through a
//! process-wide `SSL_CERT_FILE`. This connector takes an explicit rustls [`ClientConfig`]
//! instead, and skips DNS SRV entirely: Finesse clients connect to the node's host. The TLS
//! name checked is the JID's domain (the Finesse `xmppDomain`), as XMPP requires.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_xmpp::connect::{AsyncReadAndWrite, ServerConnector};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::xmlstream::{
    PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement,
    initiate_stream,
};
use tokio_xmpp::{Error, rustls};

use super::dial::{bounded, connect_any};
use super::scan::{Fault, Scanner};
use super::turns::Turns;
use super::websocket::{self, Endpoint, Redirect};
use crate::config::TlsMode;

/// Connects to one address with the given TLS mode and trust store.
#[derive(Clone)]
pub struct Connector {
    addr: SocketAddr,
    more: Vec<SocketAddr>,
    source: Option<std::net::IpAddr>,
    connect_timeout: Option<Duration>,
    mode: TlsMode,
    tls: Arc<rustls::ClientConfig>,
    kill: Option<CancellationToken>,
    watch: Option<(usize, tokio::sync::mpsc::UnboundedSender<Fault>)>,
    round_trips: Option<Counter>,
    no_binding: bool,
    websocket: Option<(Endpoint, Redirect)>,
}

/// The TCP stream under TLS, with its round trips counted.
type Tcp = Turns<TcpStream>;

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("addr", &self.addr)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for `addr`, verifying the server against `tls`.
    pub fn new(addr: SocketAddr, mode: TlsMode, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            addr,
            more: Vec::new(),
            source: None,
            connect_timeout: None,
            mode,
            tls,
            kill: None,
            watch: None,
            round_trips: None,
            no_binding: false,
            websocket: None,
        }
    }

    /// The same connector, trying `more` addresses of the same host after the first (see
    /// [`connect_any`]).
    pub fn with_more_addresses(mut self, more: Vec<SocketAddr>) -> Self {
        self.more = more;
        self
    }

    /// The same connector, connecting from the local address `source` (none: the system's
    /// choice).
    pub fn with_source(mut self, source: Option<std::net::IpAddr>) -> Self {
        self.source = source;
        self
    }

    /// The same connector, bounding each step of a login by `limit`: the connection (TCP,
    /// TLS, the WebSocket upgrade and the stream header), then the features and SASL
    /// exchange (see [`super::session`]).
    pub fn with_connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = Some(limit);
        self
    }

    /// The bound on each step of a login, if any.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    fn addresses(&self) -> Vec<SocketAddr> {
        std::iter::once(self.addr)
            .chain(self.more.iter().copied())
            .collect()
    }

    /// The same connector, speaking XMPP over WebSocket to `endpoint` (`addr` is where its
    /// host resolved; TLS verifies the endpoint's host, and `tls` modes do not apply). A
    /// `see-other-uri` the server sends is kept in `redirect` for the next connection.
    pub fn over_websocket(mut self, endpoint: Endpoint, redirect: Redirect) -> Self {
        self.websocket = Some((endpoint, redirect));
        self
    }

    /// The same connector, offering no channel binding to SASL (for clients that log in with
    /// tokio-xmpp's own `Client` to servers that refuse the binding it computes).
    pub fn without_channel_binding(mut self) -> Self {
        self.no_binding = true;
        self
    }

    /// The same connector, counting its streams' round trips into `count`.
    pub fn with_round_trips(mut self, count: Counter) -> Self {
        self.round_trips = Some(count);
        self
    }

    /// The same connector, whose streams fail with `ConnectionAborted` once `kill` is
    /// cancelled: the owner can end a live session (to fail over) without closing the
    /// long-lived stanza stream around it.
    pub fn with_kill_switch(mut self, kill: CancellationToken) -> Self {
        self.kill = Some(kill);
        self
    }

    /// The same connector, whose streams read the server's bytes with a [`Scanner`]: a
    /// `conflict` stream error of the stream itself (another session took our resource;
    /// tokio-xmpp reports only "disconnected"), a stanza over `max_stanza` bytes or nesting
    /// too deep is sent on `faults`; the last two also fail the stream at once, before
    /// tokio-xmpp buffers more.
    pub fn with_scanner(
        mut self,
        max_stanza: usize,
        faults: tokio::sync::mpsc::UnboundedSender<Fault>,
    ) -> Self {
        self.watch = Some((max_stanza, faults));
        self
    }

    fn wrap<S: AsyncReadAndWrite + 'static>(
        &self,
        io: S,
    ) -> Box<dyn AsyncReadAndWrite + Send + 'static> {
        match &self.kill {
            Some(kill) => Box::new(Killable {
                inner: Box::pin(io),
                killed: Box::pin(kill.clone().cancelled_owned()),
                watch: self.watch.clone().map(|(max, faults)| Watch {
                    scanner: Scanner::new(max),
                    faults,
                    scanned: 0,
                    reported: false,
                }),
            }),
            None => Box::new(io),
        }
    }

    /// The rustls client configuration trusting exactly the PEM certificates in `ca_pem`
    /// (the same one [`crate::tls::client_config`] builds).
    pub fn client_config_from_pem(ca_pem: &[u8]) -> io::Result<Arc<rustls::ClientConfig>> {
        crate::tls::client_config(Some(ca_pem))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    async fn tls(
        &self,
        tcp: Tcp,
        domain: &str,
    ) -> Result<(TlsStream<Tcp>, sasl::common::ChannelBinding), Error> {
        let name = rustls::pki_types::ServerName::try_from(domain.to_owned())
            .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let stream = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(Error::Io)?;
        // Channel binding as tokio-xmpp computes it: the TLS 1.3 exporter, nothing for 1.2.
        let (_, conn) = stream.get_ref();
        let binding = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => conn
                .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                .map(sasl::common::ChannelBinding::TlsExporter)
                .unwrap_or(sasl::common::ChannelBinding::None),
            _ => sasl::common::ChannelBinding::None,
        };
        if self.no_binding {
            return Ok((stream, sasl::common::ChannelBinding::None));
        }
        Ok((stream, binding))
    }
}

impl Connector {
    /// TCP, TLS to the endpoint's host and the upgrade; on a refused upgrade, the other
    /// spelling of the path once. Gives the pipe tokio-xmpp reads and writes.
    async fn open_websocket(
        &self,
        endpoint: &Endpoint,
        redirect: &Redirect,
    ) -> Result<tokio::io::DuplexStream, Error> {
        let moved = redirect.lock().ok().and_then(|mut slot| slot.take());
        let (target, addr) = match moved {
            Some(t) => {
                let found = tokio::net::lookup_host((t.host.as_str(), t.port))
                    .await?
                    .next();
                let addr = found.ok_or_else(|| io::Error::other("see-other-uri: no address"))?;
                (t, addr)
            }
            None => (endpoint.clone(), self.addr),
        };
        let addrs = if addr == self.addr {
            self.addresses()
        } else {
            vec![addr]
        };
        let attempt = |path: String| {
            let target = target.clone();
            let addrs = addrs.clone();
            async move {
                let tcp = connect_any(&addrs, self.source).await?;
                let _ = tcp.set_nodelay(true);
                let tcp = Turns::connected(tcp, self.round_trips.clone());
                let (tls, _) = self.tls(tcp, &target.host).await?;
                Ok::<_, Error>(websocket::upgrade(tls, &target.url(&path)).await)
            }
        };
        let ws = match attempt(target.path.clone()).await? {
            Err(e) if websocket::path_may_fix(&e) && target.alternate_path().is_some() => {
                let alt = target.alternate_path().unwrap_or_default();
                tracing::warn!(path = %target.path, error = %e, alternate = %alt, "the WebSocket upgrade was refused; trying the other path once");
                attempt(alt).await?
            }
            other => other,
        };
        let ws = ws.map_err(|e| Error::Io(io::Error::other(e)))?;
        Ok(websocket::bridge(
            ws,
            redirect.clone(),
            endpoint.host.clone(),
        ))
    }
}

fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(Cow::Borrowed(domain)),
        from: None,
        id: None,
    }
}

impl ServerConnector for Connector {
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
        bounded(
            self.connect_timeout,
            "the XMPP connection (TCP, TLS, stream header)",
            self.open(jid, ns, timeouts),
        )
        .await
    }
}

impl Connector {
    async fn open(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<
        (
            PendingFeaturesRecv<Box<dyn AsyncReadAndWrite + Send + 'static>>,
            sasl::common::ChannelBinding,
        ),
        Error,
    > {
        type Stream = Box<dyn AsyncReadAndWrite + Send + 'static>;
        let domain = jid.domain().as_str();
        if let Some((endpoint, redirect)) = &self.websocket {
            let pipe = self.open_websocket(endpoint, redirect).await?;
            let io: Stream = self.wrap(BufStream::new(pipe));
            let pending = initiate_stream(io, ns, header(domain), timeouts).await?;
            // The TLS session ends at the server's HTTPS front end: nothing to bind to.
            return Ok((pending, sasl::common::ChannelBinding::None));
        }
        let tcp = connect_any(&self.addresses(), self.source).await?;
        let _ = tcp.set_nodelay(true);
        let tcp = Turns::connected(tcp, self.round_trips.clone());
        match self.mode {
            TlsMode::None => {
                let io: Stream = self.wrap(BufStream::new(tcp));
                let pending = initiate_stream(io, ns, header(domain), timeouts).await?;
                Ok((pending, sasl::common::ChannelBinding::None))
            }
            TlsMode::Direct => {
                let (tls, binding) = self.tls(tcp, domain).await?;
                let io: Stream = self.wrap(BufStream::new(tls));
                let pending = initiate_stream(io, ns, header(domain), timeouts).await?;
                Ok((pending, binding))
            }
            TlsMode::StartTls => {
                let plain =
                    initiate_stream(BufStream::new(tcp), ns, header(domain), timeouts).await?;
                let (features, mut stream): (_, XmppStream<BufStream<Tcp>>) =
                    plain.recv_features().await?;
                if !features.can_starttls() {
                    return Err(Error::Protocol(tokio_xmpp::error::ProtocolError::NoTls));
                }
                stream
                    .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
                        starttls::Request,
                    )))
                    .await?;
                loop {
                    match stream
                        .next()
                        .await
                        .map(|v| v.and_then(|v| v.into_read_error()))
                    {
                        Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
                        Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
                        Some(Err(ReadError::HardError(e))) => return Err(e.into()),
                        Some(Err(ReadError::ParseError(e))) => {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, e).into());
                        }
                        None | Some(Err(ReadError::StreamFooterReceived)) => {
                            return Err(Error::Disconnected);
                        }
                    }
                }
                let tcp = stream.into_inner().into_inner();
                let (tls, binding) = self.tls(tcp, domain).await?;
                let io: Stream = self.wrap(BufStream::new(tls));
                let pending = initiate_stream(io, ns, header(domain), timeouts).await?;
                Ok((pending, binding))
            }
        }
    }
}

/// A stream that fails once its kill switch fires, waking any pending read or write.
struct Killable {
    inner: std::pin::Pin<Box<dyn AsyncReadAndWrite + Send>>,
    killed: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    watch: Option<Watch>,
}

/// The scan of one connection's incoming bytes.
struct Watch {
    scanner: Scanner,
    faults: tokio::sync::mpsc::UnboundedSender<Fault>,
    /// Bytes at the front of the read buffer already scanned (not yet consumed).
    scanned: usize,
    reported: bool,
}

impl Watch {
    /// Scans bytes not seen before; an error when they must not reach tokio-xmpp.
    fn scan(&mut self, fresh: &[u8]) -> io::Result<()> {
        let Some(fault) = self.scanner.feed(fresh) else {
            return Ok(());
        };
        if !std::mem::replace(&mut self.reported, true) {
            let _ = self.faults.send(fault);
        }
        match fault {
            // The server ends the stream itself; its bytes pass.
            Fault::Conflict => Ok(()),
            Fault::Oversize | Fault::TooDeep => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the server's stream refused: {fault:?}"),
            )),
        }
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "session ended by its owner",
    )
}

impl Killable {
    fn is_killed(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        self.killed.as_mut().poll(cx).is_ready()
    }
}

use std::future::Future as _;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

impl AsyncRead for Killable {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_killed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        let before = buf.filled().len();
        let polled = this.inner.as_mut().poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(w)) = (&polled, this.watch.as_mut()) {
            w.scan(&buf.filled()[before..])?;
        }
        polled
    }
}

impl AsyncBufRead for Killable {
    fn poll_fill_buf(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.is_killed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        let polled = this.inner.as_mut().poll_fill_buf(cx);
        if let (Poll::Ready(Ok(buf)), Some(w)) = (&polled, this.watch.as_mut()) {
            // A buffer not consumed is handed out again: scan only what is new.
            let fresh = buf.get(w.scanned..).unwrap_or_default();
            w.scanned = buf.len();
            if let Err(e) = w.scan(fresh) {
                return Poll::Ready(Err(e));
            }
        }
        polled
    }

    fn consume(self: std::pin::Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        if let Some(w) = this.watch.as_mut() {
            w.scanned = w.scanned.saturating_sub(amt);
        }
        this.inner.as_mut().consume(amt);
    }
}

impl AsyncWrite for Killable {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_killed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        this.inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_killed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        this.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_shutdown(cx)
    }
}
