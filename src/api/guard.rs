//! Who may drive the local API: only local clients. A request whose `Host` is not a
//! loopback name or the configured listen host is misdirected (421: DNS rebinding), one with an
//! `Origin` not in `[api] allowed_origins` (empty by default) is refused (403: a web page on
//! the agent's machine), a POST or PUT whose body is not `application/json` is refused (415: a
//! form or `text/plain` post needs no CORS preflight), and with a token configured
//! (`[api] token_file` or the systemd credential `api-token`) every request but `/healthz`
//! must carry `Authorization: Bearer <token>` (401). A Unix socket has no `Host` to check.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The middleware.
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
    if matches!(*req.method(), Method::POST | Method::PUT) {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json",
            );
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
