//! XMPP over WebSocket (RFC 7395) as a byte stream for tokio-xmpp: a TLS connection to the
//! node's HTTPS port, the WebSocket upgrade with subprotocol `xmpp` (tokio-tungstenite does the
//! WebSocket itself), and a task that moves frames between it and an in-memory duplex pipe,
//! translated by [`super::framing`]. The connector hands the pipe's other end to tokio-xmpp,
//! so login, pings, detection, reconnects, failover and resync are the TCP transport's code.

use std::io;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::framing::{self, Incoming, Outgoing};

/// Where the WebSocket endpoint is: the node's host (verified by TLS), a port and a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The node's host name, as in `[finesse] nodes`.
    pub host: String,
    /// The HTTPS port (8445 on Finesse 12.6+, 7443 on 12.0/12.5).
    pub port: u16,
    /// `/ws/` or `/ws`; the other is tried once when the upgrade is refused.
    pub path: String,
}

impl Endpoint {
    /// `wss://host:port/path`.
    pub fn url(&self, path: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("wss://{host}:{}{path}", self.port)
    }

    /// The endpoint a `see-other-uri` names, when it is a `wss://` URL with a host.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let url = reqwest::Url::parse(uri).ok()?;
        if url.scheme() != "wss" {
            return None;
        }
        Some(Self {
            host: url
                .host_str()?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: url.port().unwrap_or(443),
            path: url.path().to_owned(),
        })
    }

    /// The other spelling of the path: `/ws/` ↔ `/ws`.
    pub fn alternate_path(&self) -> Option<String> {
        match self.path.strip_suffix('/') {
            Some(bare) if !bare.is_empty() => Some(bare.to_owned()),
            Some(_) => None,
            None => Some(format!("{}/", self.path)),
        }
    }
}

/// A `see-other-uri` the server sent, for the next connection (shared by the link's
/// connectors).
pub type Redirect = Arc<Mutex<Option<Endpoint>>>;

/// The endpoint a `see-other-uri` names, when it may be followed: only on the node's own host
/// (another port or path there), since only the configured nodes may be logged in to (a
/// hostile or broken server must not send the agent's credentials elsewhere).
pub fn followable(uri: &str, node_host: &str) -> Option<Endpoint> {
    Endpoint::from_uri(uri).filter(|e| e.host.eq_ignore_ascii_case(node_host))
}

/// True when the upgrade was refused in a way the other path spelling may fix (404, 400,
/// 403, 405, or a server that did not switch protocols).
pub fn path_may_fix(e: &tungstenite::Error) -> bool {
    match e {
        tungstenite::Error::Http(r) => matches!(r.status().as_u16(), 400 | 403 | 404 | 405 | 426),
        _ => false,
    }
}

/// Performs the upgrade on `stream` (already TLS) for `url`, asking for subprotocol `xmpp`.
pub async fn upgrade<S>(
    stream: S,
    url: &str,
) -> Result<tokio_tungstenite::WebSocketStream<S>, tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("xmpp"),
    );
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    let agreed = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if agreed != Some("xmpp") {
        return Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(
                tungstenite::error::SubProtocolError::NoSubProtocol,
            ),
        ));
    }
    Ok(ws)
}

/// Starts moving frames between `ws` and a pipe; gives the pipe's end for tokio-xmpp. The
/// task ends (and the pipe reads end-of-file) when either side closes or fails.
pub fn bridge<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    redirect: Redirect,
    node_host: String,
) -> DuplexStream
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Err(e) = pump(ws, ours, redirect, node_host).await {
            tracing::debug!(error = %e, "XMPP WebSocket closed");
        }
    });
    theirs
}

async fn pump<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    pipe: DuplexStream,
    redirect: Redirect,
    node_host: String,
) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut frames) = ws.split();
    let (mut from_xmpp, mut to_xmpp) = tokio::io::split(pipe);
    let mut out = Outgoing::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = Vec::new();
    let ws_err = |e: tungstenite::Error| io::Error::other(e);
    loop {
        tokio::select! {
            n = from_xmpp.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(());
                }
                pending.extend_from_slice(&buf[..n]);
                // Hand on only whole UTF-8 characters.
                let valid = match std::str::from_utf8(&pending) {
                    Ok(_) => pending.len(),
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                };
                let text: String = String::from_utf8_lossy(&pending[..valid]).into_owned();
                pending.drain(..valid);
                let messages = out
                    .push(&text)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                for m in messages {
                    sink.send(Message::text(m)).await.map_err(ws_err)?;
                }
            }
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => match framing::incoming(text.as_str()) {
                    Incoming::Bytes(bytes) => to_xmpp.write_all(bytes.as_bytes()).await?,
                    Incoming::Closed { bytes, see_other } => {
                        if let Some(uri) = see_other {
                            let next = followable(&uri, &node_host);
                            tracing::warn!(%uri, followed = next.is_some(), "the server asked to reconnect elsewhere (followed only on the node's own host)");
                            if let Ok(mut slot) = redirect.lock() {
                                *slot = next;
                            }
                        }
                        to_xmpp.write_all(bytes.as_bytes()).await?;
                        let _ = sink.send(Message::Close(None)).await;
                        return Ok(());
                    }
                },
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ws_err(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_alternates_once_and_see_other_uris_parse() {
        let e = Endpoint {
            host: "finesse-a.example".into(),
            port: 8445,
            path: "/ws/".into(),
        };
        assert_eq!(e.url(&e.path), "wss://finesse-a.example:8445/ws/");
        assert_eq!(e.alternate_path().as_deref(), Some("/ws"));
        let bare = Endpoint {
            path: "/ws".into(),
            ..e.clone()
        };
        assert_eq!(bare.alternate_path().as_deref(), Some("/ws/"));
        let other = Endpoint::from_uri("wss://finesse-b.example:7443/ws/").unwrap();
        assert_eq!(
            (other.host.as_str(), other.port, other.path.as_str()),
            ("finesse-b.example", 7443, "/ws/")
        );
        assert_eq!(Endpoint::from_uri("http://x/ws"), None);
        // Only on the node's own host.
        assert!(followable("wss://Finesse-A.example:7443/ws/", "finesse-a.example").is_some());
        assert!(followable("wss://finesse-b.example:7443/ws/", "finesse-a.example").is_none());
        assert!(followable("wss://evil.example/ws/", "finesse-a.example").is_none());
    }
}
