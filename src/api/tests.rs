//! Local API unit tests: routes and answers without a daemon behind them.

use super::*;
use axum::body::Body;
use http_body_util::BodyExt;
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
    }
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
