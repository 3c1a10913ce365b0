//! The node's XMPP-over-WebSocket front end, on its HTTPS port as Finesse 12.6+ serves it
//! (8445): `GET /ws/` and `/ws` upgraded with subprotocol `xmpp` (RFC 7395) and spliced byte
//! for byte to the node's own XMPP server's WebSocket endpoint (opened with the client's key),
//! as a reverse proxy such as Finesse's in front of Openfire does. Which spellings of the path are served is the `ws_paths` switch
//! (`both`, `slash`, `bare`): whether Finesse's front end takes both is unknown. A killed
//! server makes the upgrade fail (502); a frozen one leaves the relay silent. The one-shot
//! `ws_see_other_path` answers the next session's `<open/>` with RFC 7395's redirect.

use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::NodeState;
use crate::cluster::lock;

/// `GET /ws/`, `GET /ws`.
pub(super) async fn front_end(
    State(st): State<NodeState>,
    OriginalUri(uri): OriginalUri,
    mut request: axum::extract::Request,
) -> Response {
    let (served, see_other) = {
        let mut t = lock(&st.cluster.truth);
        (
            t.behaviour.ws_paths.clone(),
            t.behaviour.ws_see_other_path.take(),
        )
    };
    let slash = uri.path().ends_with('/');
    let ok = match served.as_str() {
        "slash" => slash,
        "bare" => !slash,
        _ => true,
    };
    if !ok {
        return (StatusCode::NOT_FOUND, "no WebSocket here").into_response();
    }
    let headers = request.headers().clone();
    let wants = |name: &str, value: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(value)))
    };
    if !wants("upgrade", "websocket") || !wants("sec-websocket-protocol", "xmpp") {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket with subprotocol xmpp only",
        )
            .into_response();
    }
    if let Some(path) = see_other {
        use axum::extract::FromRequest;
        let Ok(upgrade) = WebSocketUpgrade::from_request(request, &()).await else {
            return (StatusCode::UPGRADE_REQUIRED, "WebSocket only").into_response();
        };
        let uri = format!(
            "wss://127.0.0.1:{}{path}",
            st.cluster.nodes[st.node].rest_port
        );
        return upgrade
            .protocols(["xmpp"])
            .on_upgrade(move |mut client| async move {
                // Answer the client's <open/> with the redirect.
                let _ = client.recv().await;
                let close = format!(
                    "<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" see-other-uri=\"{uri}\"/>"
                );
                let _ = client.send(AxMessage::text(close)).await;
                let _ = client.send(AxMessage::Close(None)).await;
            });
    }
    let port = {
        let node = &st.cluster.nodes[st.node];
        let guard = node.prosody.lock().await;
        guard.as_ref().map(|p| p.spec().websocket_port)
    };
    let Some(port) = port else {
        return (StatusCode::BAD_GATEWAY, "no XMPP server").into_response();
    };
    let Some(key) = headers.get("sec-websocket-key").cloned() else {
        return (StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key").into_response();
    };
    // The upstream handshake carries the client's key, so the two WebSocket connections
    // can be spliced byte for byte once both are upgraded, as a reverse proxy does.
    let upstream = match upstream_handshake(port, key.as_bytes()).await {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("XMPP server: {e}")).into_response(),
    };
    st.cluster.nodes[st.node]
        .ws_sessions
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut client = hyper_util::rt::TokioIo::new(upgraded);
            let (mut upstream, early) = upstream;
            if tokio::io::AsyncWriteExt::write_all(&mut client, &early)
                .await
                .is_ok()
            {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .header("sec-websocket-protocol", "xmpp")
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Opens the server's WebSocket endpoint with the client's key; gives the connection and any
/// bytes that came after the server's 101 headers.
async fn upstream_handshake(
    port: u16,
    key: &[u8],
) -> std::io::Result<(tokio::net::TcpStream, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let _ = tcp.set_nodelay(true);
    let key = String::from_utf8_lossy(key);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: xmpp\r\n\r\n",
        crate::prosody::WEBSOCKET_PATH
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 || got.len() > 64 * 1024 {
            return Err(std::io::Error::other("no upgrade answer"));
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    if !got.starts_with(b"HTTP/1.1 101") {
        let head = String::from_utf8_lossy(&got[..end.min(got.len())]).into_owned();
        return Err(std::io::Error::other(format!("refused: {head}")));
    }
    Ok((tcp, got[end..].to_vec()))
}
