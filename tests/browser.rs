//! The local API against a real browser: Debian's `chromium`, headless, its names mapped to
//! loopback with `--host-resolver-rules`, loading pages from a page server of the test's own.
//! Each page reports what it could read to its own origin (`POST /result`), and each case is
//! also checked at the simulator (did anything reach Finesse?).
//!
//! - A page of a foreign origin tries a simple and a preflighted `fetch`, a form POST,
//!   `sendBeacon`, an `EventSource` on the event stream and an `<img>`, against a daemon with
//!   no token (nothing but the guard between the page and the agent): it reads nothing and
//!   changes nothing.
//! - DNS rebinding: the browser asks for the API under a foreign name that resolves to
//!   127.0.0.1 (what a rebound page's same-origin request carries): it gets the 421, not
//!   the state.
//! - A page of an origin in `[api] allowed_origins` (a Finesse gadget's), with the token,
//!   reads the state, follows the event stream and sets NOT_READY with a reason: its
//!   preflight is answered, and its answers are readable, while the foreign page's are not.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, post};
use serde_json::{Value, json};
use support::Sim;
use support::daemon::{Daemon, DaemonConfig};
use tokio::process::Command;
use tokio::sync::mpsc;

/// The page a foreign origin serves: every way a page can reach a local HTTP service.
const FOREIGN: &str = r#"<!doctype html><title>foreign</title><body><script>
const api = new URLSearchParams(location.search).get('api');
const out = {};
async function attempt(name, f) {
  try { out[name] = await f(); } catch (e) { out[name] = 'error: ' + e; }
}
const pause = (ms) => new Promise(r => setTimeout(r, ms));
(async () => {
  await attempt('simpleFetch', async () => {
    const r = await fetch(api + '/v1/state');
    return 'read ' + r.status + ' ' + (await r.text());
  });
  await attempt('noCorsFetch', async () => {
    const r = await fetch(api + '/v1/state', { mode: 'no-cors' });
    return r.type + ' ' + (await r.text());
  });
  await attempt('preflightedPut', async () => {
    const r = await fetch(api + '/v1/media/5002/state', {
      method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'NOT_READY', reasonCodeId: 7 }) });
    return 'read ' + r.status + ' ' + (await r.text());
  });
  await attempt('simplePost', async () => {
    const r = await fetch(api + '/v1/dialogs/any/actions', {
      method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ action: 'ACCEPT' }) });
    return r.type + ' ' + (await r.text());
  });
  await attempt('form', async () => {
    const frame = document.createElement('iframe');
    frame.name = 'sink';
    document.body.appendChild(frame);
    const f = document.createElement('form');
    f.method = 'POST'; f.enctype = 'text/plain'; f.target = 'sink';
    f.action = api + '/v1/media/5002/state';
    const i = document.createElement('input');
    i.name = '{"state":"NOT_READY","reasonCodeId":7,"x":"'; i.value = '"}';
    f.appendChild(i);
    document.body.appendChild(f);
    f.submit();
    await pause(1000);
    try { return 'read ' + frame.contentDocument.body.innerText; }
    catch (e) { return 'unreadable: ' + e.name; }
  });
  await attempt('beaconJson', async () => String(navigator.sendBeacon(api + '/v1/media/5002/state',
    new Blob([JSON.stringify({ state: 'NOT_READY', reasonCodeId: 7 })], { type: 'application/json' }))));
  await attempt('beaconText', async () => String(navigator.sendBeacon(api + '/v1/media/5002/state',
    JSON.stringify({ state: 'NOT_READY', reasonCodeId: 7 }))));
  await attempt('eventSource', () => new Promise(done => {
    const es = new EventSource(api + '/v1/events');
    es.onmessage = (e) => { es.close(); done('message ' + e.data); };
    es.onerror = () => { es.close(); done('error event'); };
    setTimeout(() => { es.close(); done('nothing in 3 s'); }, 3000);
  }));
  await attempt('img', () => new Promise(done => {
    const img = new Image();
    img.onload = () => done('loaded ' + img.width + 'x' + img.height);
    img.onerror = () => done('error event');
    img.src = api + '/v1/state';
  }));
  await pause(500);
  await fetch('/result', { method: 'POST', body: JSON.stringify(out) });
})();
</script></body>"#;

/// A Finesse gadget's page, of an allowed origin, given the token in its fragment.
const GADGET: &str = r#"<!doctype html><title>gadget</title><body><script>
const api = new URLSearchParams(location.search).get('api');
const token = location.hash.slice(1);
const auth = { authorization: 'Bearer ' + token };
const out = {};
async function attempt(name, f) {
  try { out[name] = await f(); } catch (e) { out[name] = 'error: ' + e; }
}
(async () => {
  await attempt('withoutToken', async () => {
    const r = await fetch(api + '/v1/state');
    return r.status;
  });
  await attempt('state', async () => {
    const r = await fetch(api + '/v1/state', { headers: auth });
    const v = await r.json();
    return { status: r.status, agent: v.agent, phase: v.phase };
  });
  // EventSource sends no header: a gadget follows the stream with fetch.
  const events = new AbortController();
  const stream = fetch(api + '/v1/events', { headers: auth, signal: events.signal });
  await attempt('setNotReady', async () => {
    const r = await fetch(api + '/v1/media/5002/state', {
      method: 'PUT', headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'NOT_READY', reasonCodeId: 7 }) });
    return { status: r.status, body: await r.json() };
  });
  await attempt('events', async () => {
    const r = await stream;
    const reader = r.body.getReader();
    const text = new TextDecoder();
    let seen = '';
    const until = Date.now() + 10000;
    while (!seen.includes('NOT_READY') && Date.now() < until) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += text.decode(value);
    }
    events.abort();
    return { status: r.status, type: r.headers.get('content-type'), seen };
  });
  await fetch('/result', { method: 'POST', body: JSON.stringify(out) });
})();
</script></body>"#;

/// The test's page server: the pages above, and where they report.
async fn pages() -> (SocketAddr, mpsc::Receiver<Value>) {
    let (tx, rx) = mpsc::channel::<Value>(4);
    let app = Router::new()
        .route("/foreign.html", get(|| async { Html(FOREIGN) }))
        .route("/gadget.html", get(|| async { Html(GADGET) }))
        .route(
            "/result",
            post(
                |State(tx): State<mpsc::Sender<Value>>, body: String| async move {
                    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
                    let _ = tx.send(v).await;
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, rx)
}

/// Debian's chromium; a missing browser fails the test (scripts/install-deps.sh installs it).
fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("chromium is missing: apt-get install -y chromium (scripts/install-deps.sh does)");
}

/// Chromium, headless, with `evil.test`, `gadget.test` and `rebind.test` resolving to
/// 127.0.0.1, on `url`; `args` added.
fn browser(profile: &std::path::Path, url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP evil.test 127.0.0.1, MAP gadget.test 127.0.0.1, MAP rebind.test 127.0.0.1",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .kill_on_drop(true);
    c
}

/// Opens `url` and waits for the page's report.
async fn report(url: &str, results: &mut mpsc::Receiver<Value>) -> Value {
    let profile = tempfile::tempdir().unwrap();
    let mut child = browser(profile.path(), url, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let got = tokio::time::timeout(Duration::from_secs(60), results.recv()).await;
    let _ = child.kill().await;
    got.expect("the page reported within 60 s")
        .expect("page server")
}

fn origins(page: SocketAddr) -> DaemonConfig {
    DaemonConfig {
        api_extra: format!(
            "allowed_origins = [\"http://gadget.test:{}\"]\n",
            page.port()
        ),
        ..DaemonConfig::default()
    }
}

/// The daemon's requests to Finesse that change something (sign-in, state, dialog actions).
async fn changes(sim: &Sim) -> Vec<Value> {
    sim.requests()
        .await
        .into_iter()
        .filter(|r| r["method"] != "GET")
        .collect()
}

#[tokio::test]
async fn a_foreign_page_reads_nothing_and_changes_nothing_whatever_it_tries() {
    let sim = Sim::start(&[]).await;
    let (page, mut results) = pages().await;
    let d = Daemon::start_steady(&sim, origins(page)).await;
    let before = changes(&sim).await.len();
    let url = format!(
        "http://evil.test:{}/foreign.html?api={}",
        page.port(),
        d.api
    );
    let out = report(&url, &mut results).await;
    let text = out.to_string();
    for (name, v) in out.as_object().expect("a report") {
        let v = v.as_str().unwrap_or_default();
        assert!(
            !v.contains("\"phase\"") && !v.contains(support::AGENT),
            "{name} read the state: {v}"
        );
    }
    assert!(
        out["simpleFetch"].as_str().unwrap().starts_with("error"),
        "{text}"
    );
    assert!(
        out["preflightedPut"].as_str().unwrap().starts_with("error"),
        "{text}"
    );
    assert_eq!(out["noCorsFetch"], "opaque ", "{text}");
    assert_eq!(out["simplePost"], "opaque ", "{text}");
    assert!(
        out["form"].as_str().unwrap().starts_with("unreadable"),
        "{text}"
    );
    assert!(
        ["error event", "nothing in 3 s"].contains(&out["eventSource"].as_str().unwrap()),
        "{text}"
    );
    assert_eq!(out["img"], "error event", "{text}");
    // At Finesse: nothing happened, and the agent is as it was.
    assert_eq!(
        changes(&sim).await.len(),
        before,
        "{:?}",
        changes(&sim).await
    );
    assert_eq!(sim.media_truth().await["base"], "READY");
    assert_eq!(d.state().await["media"][0]["state"], "READY");
}

#[tokio::test]
async fn a_rebound_name_gets_the_421_not_the_state() {
    let sim = Sim::start(&[]).await;
    let (page, _results) = pages().await;
    let d = Daemon::start_steady(&sim, origins(page)).await;
    let before = changes(&sim).await.len();
    let port = d.api.rsplit(':').next().unwrap();
    // What a page of rebind.test, its name now resolving to 127.0.0.1, sends to its own
    // origin: Host rebind.test:<the API's port>, no Origin.
    let url = format!("http://rebind.test:{port}/v1/state");
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        browser(profile.path(), &url, &["--dump-dom"]).output(),
    )
    .await
    .expect("chromium ends within 60 s")
    .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("this API answers only to its own host name"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dom.contains("\"phase\"") && !dom.contains(support::AGENT),
        "{dom}"
    );
    // The same browser, under the API's own name, is answered: the name made the difference.
    let own = format!("{}/healthz", d.api);
    let profile = tempfile::tempdir().unwrap();
    let out = browser(profile.path(), &own, &["--dump-dom"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ok\":true"));
    assert_eq!(changes(&sim).await.len(), before, "nothing reached Finesse");
}

#[tokio::test]
async fn a_preflight_is_answered_for_an_allowed_origin_only() {
    let sim = Sim::start(&[]).await;
    let (page, _results) = pages().await;
    let d = Daemon::start_steady(&sim, origins(page)).await;
    let http = reqwest::Client::new();
    let preflight = |origin: String| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/media/5002/state", d.api),
        )
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
    };
    let gadget = format!("http://gadget.test:{}", page.port());
    let ok = preflight(gadget.clone()).await.unwrap();
    assert!(ok.status().is_success(), "{ok:?}");
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], gadget.as_str());
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PUT")
    );
    // Another origin, or the gadget's name on another port, gets a 403 and no CORS header.
    for other in [
        "http://evil.test".to_owned(),
        format!("http://gadget.test:{}", page.port().wrapping_add(1)),
        "null".to_owned(),
    ] {
        let no = preflight(other.clone()).await.unwrap();
        assert_eq!(no.status(), 403, "{other}");
        assert!(
            !no.headers().contains_key("access-control-allow-origin"),
            "{other}: {:?}",
            no.headers()
        );
    }
}

#[tokio::test]
async fn a_gadget_of_an_allowed_origin_with_the_token_reads_follows_and_sets_not_ready() {
    let sim = Sim::start(&[]).await;
    let (page, mut results) = pages().await;
    let dir = tempfile::tempdir().unwrap();
    let token = "gadget-token-0123456789abcdef";
    let file = dir.path().join("api.token");
    support::private_file(&file, token);
    let mut cfg = origins(page);
    cfg.api_extra
        .push_str(&format!("token_file = {:?}\n", file.display().to_string()));
    let d = Daemon::start_steady_with_token(&sim, cfg, token).await;
    let url = format!(
        "http://gadget.test:{}/gadget.html?api={}#{token}",
        page.port(),
        d.api
    );
    let out = report(&url, &mut results).await;
    let text = out.to_string();
    // CORS answers it: even a refusal is readable to it.
    assert_eq!(out["withoutToken"], 401, "{text}");
    assert_eq!(out["state"]["status"], 200, "{text}");
    assert_eq!(out["state"]["agent"], support::AGENT, "{text}");
    assert_eq!(out["state"]["phase"], "steady", "{text}");
    // The preflighted PUT went through, and Finesse was told.
    assert_eq!(out["setNotReady"]["status"], 202, "{text}");
    assert_eq!(out["events"]["status"], 200, "{text}");
    assert!(
        out["events"]["type"]
            .as_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{text}"
    );
    assert!(
        out["events"]["seen"]
            .as_str()
            .unwrap()
            .contains("NOT_READY"),
        "the stream carried the change: {text}"
    );
    sim.eventually(Duration::from_secs(10), "NOT_READY at Finesse", || async {
        let m = sim.media_truth().await;
        m["base"] == "NOT_READY" && m["reasonCodeId"] == json!(7)
    })
    .await;
}
