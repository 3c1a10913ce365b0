//! Local API unit tests: routes and answers without a daemon behind them.

use super::*;
use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

fn state(ring: usize) -> ApiState {
    let (commands, _rx) = mpsc::channel(1);
    ApiState {
        shared: Arc::new(Shared::new("1001001", ring)),
        commands,
        action_wait: Duration::from_millis(10),
        request_timeout: Duration::from_millis(10),
        metrics: Arc::new(String::new),
        guard: Arc::default(),
        sse_slots: Arc::new(tokio::sync::Semaphore::new(2)),
    }
}

#[tokio::test]
async fn event_clients_above_the_cap_get_503_and_a_gone_client_frees_its_slot() {
    let app = router(state(16));
    let open = || {
        let app = app.clone();
        async move {
            let req = axum::http::Request::get("/v1/events")
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap()
        }
    };
    let first = open().await;
    let second = open().await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = open().await;
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = third.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("too_many_event_clients"));
    // The first client goes away: its task sees the closed stream and frees the slot.
    drop(first);
    let mut again = open().await;
    for _ in 0..100 {
        if again.status() == StatusCode::OK {
            break;
        }
        tokio::task::yield_now().await;
        again = open().await;
    }
    assert_eq!(again.status(), StatusCode::OK, "the slot came back");
    drop(second);
}

#[tokio::test]
async fn a_client_too_slow_for_the_stream_gets_resync_required_and_is_dropped() {
    let st = state(16);
    let shared = st.shared.clone();
    let req = axum::http::Request::get("/v1/events")
        .body(Body::empty())
        .unwrap();
    let resp = router(st).oneshot(req).await.unwrap();
    let mut body = resp.into_body();
    // The client reads nothing while 200 events go by: far more than its queue (16)
    // and the bus (16) hold.
    for i in 0..200 {
        shared
            .events
            .publish(crate::vocab::EventKind::Phase, json!({ "i": i }));
        tokio::task::yield_now().await;
    }
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let events = text.matches("data:").count();
    assert!(
        events < 200,
        "the slow client did not get everything: {events}"
    );
    let last = text.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("resync.required") && last.contains("slow client"),
        "{last}"
    );
}
