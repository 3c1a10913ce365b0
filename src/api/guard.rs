//! Who may drive the local API: only local clients. A request whose `Host` is not a
//! loopback name or the configured listen host is misdirected (421: DNS rebinding), one with an
//! `Origin` not in `[api] allowed_origins` (empty by default) is refused (403: a web page on
//! the agent's machine), and with a token configured
//! (`[api] token_file` or the systemd credential `api-token`) every request but `/healthz`
//! must carry `Authorization: Bearer <token>` (401). A Unix socket has no `Host` to check.
//! (Every route that takes a body takes it only as `application/json`, 415 otherwise: a form
//! or `text/plain` post needs no CORS preflight. That is the body's extractor's rule,
//! [`super::JsonBody`], so that a method a route does not have is a 405 first.)
//!
//! An origin that is allowed (a Finesse gadget's, say) is answered with CORS: its preflight
//! (which carries no token) is answered between the two checks ([`protect`] orders them:
//! [`check`] for the host and the origin, then tower-http's CORS layer, then [`authorize`] for
//! the token), and its answers name it in `Access-Control-Allow-Origin`.
//! Any other origin gets neither.

use std::sync::Arc;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Listen;
use crate::secret::Secret;

/// The rules, built once from the config.
#[derive(Debug, Clone, Default)]
pub struct RequestGuard {
    /// The listen host (lower-case, without port), besides the loopback names; `None` for a
    /// Unix socket, where no Host is checked.
    host: Option<String>,
    origins: Vec<String>,
    token: Option<Secret>,
}

impl RequestGuard {
    /// The rules for an API listening on `listen`.
    pub fn new(listen: &Listen, origins: Vec<String>, token: Option<Secret>) -> Self {
        let host = match listen {
            Listen::Unix(_) => None,
            Listen::Tcp(addr) => Some(host_part(addr).to_ascii_lowercase()),
        };
        Self {
            host,
            origins,
            token,
        }
    }

    fn host_ok(&self, value: &str) -> bool {
        let Some(listen) = &self.host else {
            return true;
        };
        let host = host_part(value).to_ascii_lowercase();
        is_loopback_name(&host) || host == *listen
    }
}

/// The host of `host[:port]` or `[v6]:port`, brackets kept off.
fn host_part(value: &str) -> &str {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => value,
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback_name(host: &str) -> bool {
    crate::tls::is_loopback_host(host)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(super::doc::ErrorBody::new(message, None)),
    )
        .into_response()
}

/// `router` behind the guard: [`check`], CORS for the allowed origins, then [`authorize`].
pub fn protect<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    g: &Arc<RequestGuard>,
) -> Router<S> {
    router
        .layer(axum::middleware::from_fn_with_state(g.clone(), authorize))
        .layer(g.cors())
        .layer(axum::middleware::from_fn_with_state(g.clone(), check))
}

impl RequestGuard {
    /// CORS for the allowed origins (none by default): their preflights are answered and
    /// their answers readable; a preflight is cached for ten minutes.
    fn cors(&self) -> CorsLayer {
        let origins: Vec<HeaderValue> = self
            .origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600))
    }
}

/// The first check: the request's host, and its origin if it has one.
pub async fn check(State(g): State<Arc<RequestGuard>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !g.host_ok(host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this API answers only to its own host name",
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| g.origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
        if !allowed {
            return refuse(StatusCode::FORBIDDEN, "origin not allowed");
        }
    }
    next.run(req).await
}

/// The second check, after CORS's preflight: the token.
pub async fn authorize(State(g): State<Arc<RequestGuard>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if let Some(token) = &g.token {
        if req.uri().path() != "/healthz" {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .unwrap_or("");
            if !token.matches(given) {
                let mut r = refuse(StatusCode::UNAUTHORIZED, "a bearer token is required");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return r;
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_loopback_names_or_the_listen_host_with_any_port() {
        let g = RequestGuard::new(&Listen::Tcp("127.0.0.1:9471".into()), vec![], None);
        for ok in [
            "127.0.0.1:9471",
            "localhost:9471",
            "LOCALHOST",
            "[::1]:9471",
            "127.0.0.2",
        ] {
            assert!(g.host_ok(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:9471", "", "10.0.0.1:9471"] {
            assert!(!g.host_ok(bad), "{bad}");
        }
        let lan = RequestGuard::new(&Listen::Tcp("10.1.2.3:9471".into()), vec![], None);
        assert!(lan.host_ok("10.1.2.3:9471"));
        let unix = RequestGuard::new(&Listen::Unix("/run/x.sock".into()), vec![], None);
        assert!(unix.host_ok("anything"));
    }
}
