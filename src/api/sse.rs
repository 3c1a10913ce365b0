//! `GET /v1/events`: the event stream as server-sent events, resumable with `Last-Event-ID`
//! (see [`crate::events`]), at most `[api] max_sse_clients` at once, each client fed by its own
//! task through a small bounded channel and dropped when it is gone or too slow.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;
use tokio::sync::mpsc;

use super::{ApiState, error};
use crate::events::Replay;
use crate::vocab::EventKind;

fn sse_event(bus: &crate::events::EventBus, seq: u64, json: &str) -> SseEvent {
    SseEvent::default().id(bus.event_id(seq)).data(json)
}

/// The event stream: each message's `data` is an [`Event`](super::doc::Event) (JSON), its
/// `id` the id to resume from.
#[utoipa::path(get, path = "/v1/events", tag = "state",
    params(("Last-Event-ID" = Option<String>, Header,
        description = "Resume after this event (a `resync.required` event when it is past the ring)")),
    responses(
        (status = 200, description = "Server-Sent Events; each `data` is an `Event` (components/schemas/Event)",
            body = String, content_type = "text/event-stream"),
        super::doc::Open, super::doc::Unauthorized,
        (status = 503, description = "Too many event clients (`too_many_event_clients`, `[api] max_sse_clients`)",
            body = super::ErrorBody),
    ))]
pub(super) async fn events(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    // Held by the client's task: freed when the client is gone.
    let Ok(slot) = s.sse_slots.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_event_clients",
            None,
        );
    };
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("unreadable"));
    let (replay, mut rx) = s.shared.events.subscribe(last);
    let head: Vec<SseEvent> = match replay {
        Replay::Events(list) => list
            .iter()
            .map(|e| sse_event(&s.shared.events, e.seq, &e.json))
            .collect(),
        Replay::ResyncRequired { oldest } => {
            let seq = s.shared.events.last_seq();
            let body = json!({ "seq": seq, "type": EventKind::ResyncRequired, "oldest": oldest })
                .to_string();
            vec![sse_event(&s.shared.events, seq, &body)]
        }
    };
    // `subscribe` took the receiver under the ring's lock: it holds exactly the events after
    // the replay, so nothing is lost or sent twice.
    let shared = s.shared.clone();
    let live = async_stream(move |tx| async move {
        let _slot = slot;
        for e in head {
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
        }
        loop {
            let next = tokio::select! {
                () = tx.closed() => return,
                next = rx.recv() => next,
            };
            match next {
                Ok(e) => {
                    if tx
                        .send(Ok(sse_event(&shared.events, e.seq, &e.json)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // A slow client: tell it to refetch the state, then drop it.
                    let body =
                        json!({ "type": EventKind::ResyncRequired, "reason": "slow client" })
                            .to_string();
                    let _ = tx.send(Ok(SseEvent::default().data(body))).await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Sse::new(live)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A stream fed by a task through a small bounded channel (backpressure per client).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
