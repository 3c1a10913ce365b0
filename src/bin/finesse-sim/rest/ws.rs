//! The node's XMPP-over-WebSocket front end, on its HTTPS port as Finesse 12.6+ serves it
//! (8445): `GET /ws/` and `/ws` upgraded with subprotocol `xmpp` (RFC 7395), each message
//! relayed to and from the node's own XMPP server's WebSocket endpoint, as Finesse's proxy
//! does to Openfire. Which spellings of the path are served is the `ws_paths` switch
//! (`both`, `slash`, `bare`): whether Finesse's front end takes both is unknown. A killed
//! server makes the upgrade fail (502); a frozen one leaves the relay silent. The one-shot
//! `ws_see_other_path` answers the next session's `<open/>` with RFC 7395's redirect.

use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as TMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::NodeState;
use crate::cluster::lock;

/// `GET /ws/`, `GET /ws`.
pub(super) async fn front_end(
    State(st): State<NodeState>,
    OriginalUri(uri): OriginalUri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
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
    let Ok(upgrade) = upgrade else {
        return (StatusCode::UPGRADE_REQUIRED, "WebSocket only").into_response();
    };
    if let Some(path) = see_other {
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
    let url = format!("ws://127.0.0.1:{port}{}", crate::prosody::WEBSOCKET_PATH);
    let Ok(mut request) = url.as_str().into_client_request() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "bad upstream URL").into_response();
    };
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        axum::http::HeaderValue::from_static("xmpp"),
    );
    let upstream = match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => ws,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("XMPP server: {e}")).into_response(),
    };
    st.cluster.nodes[st.node]
        .ws_sessions
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    upgrade
        .protocols(["xmpp"])
        .on_upgrade(move |client| relay(client, upstream))
}

async fn relay(
    client: WebSocket,
    upstream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) {
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_tx, mut u_rx) = upstream.split();
    loop {
        tokio::select! {
            m = c_rx.next() => match m {
                Some(Ok(AxMessage::Text(t))) => {
                    if u_tx.send(TMessage::text(t.as_str())).await.is_err() { break; }
                }
                Some(Ok(AxMessage::Binary(b))) => {
                    if u_tx.send(TMessage::binary(b)).await.is_err() { break; }
                }
                Some(Ok(AxMessage::Ping(_) | AxMessage::Pong(_))) => {}
                Some(Ok(AxMessage::Close(_))) | Some(Err(_)) | None => break,
            },
            m = u_rx.next() => match m {
                Some(Ok(TMessage::Text(t))) => {
                    if c_tx.send(AxMessage::text(t.as_str())).await.is_err() { break; }
                }
                Some(Ok(TMessage::Binary(b))) => {
                    if c_tx.send(AxMessage::binary(b)).await.is_err() { break; }
                }
                Some(Ok(TMessage::Ping(_) | TMessage::Pong(_) | TMessage::Frame(_))) => {}
                Some(Ok(TMessage::Close(_))) | Some(Err(_)) | None => break,
            },
        }
    }
    let _ = c_tx.send(AxMessage::Close(None)).await;
    let _ = u_tx.send(TMessage::Close(None)).await;
}
