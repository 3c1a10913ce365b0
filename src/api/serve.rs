//! The local API's listener and connections, within bounds a local client cannot push:
//!
//! - at most `max_connections` at once; the next wait in the kernel's backlog, so idle local
//!   sockets cannot take the file descriptors a failover needs;
//! - a header-read timeout (hyper's), so an idle connection does not hold a slot, and the same
//!   bound on the request's body: a client that stops half-way through a body gets 408 and
//!   its connection is closed (a stalled body held a slot for ever before);
//! - a write timeout on every connection (`tokio-io-timeout`), so a client that stopped
//!   reading (a stuck event stream) is dropped and frees its slot; it gets
//!   `resync.required` when it comes back with a `Last-Event-ID` the ring no longer holds;
//! - a Unix socket replaced only when no process answers on it (a second instance is refused,
//!   never silently robbed of its socket), with the configured mode and group.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{ApiLimits, Listen, SocketAccess};

/// A bound listener.
pub enum Bound {
    /// Loopback (or token-guarded) TCP.
    Tcp(tokio::net::TcpListener),
    /// A Unix socket.
    Unix(tokio::net::UnixListener),
}

/// Binds `listen`. A Unix socket path that holds a socket no process answers on (left by a
/// crash) is replaced; one that answers, or a path that is not a socket, is an error.
pub async fn bind(listen: &Listen, access: &SocketAccess) -> io::Result<Bound> {
    match listen {
        Listen::Tcp(addr) => {
            let mut last = None;
            for addr in tokio::net::lookup_host(addr).await? {
                match bind_tcp(addr) {
                    Ok(l) => return Ok(Bound::Tcp(l)),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| io::Error::other("the address resolves to nothing")))
        }
        Listen::Unix(path) => {
            clear_stale(path)?;
            let listener = tokio::net::UnixListener::bind(path)?;
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode))?;
            }
            if let Some((_, gid)) = &access.group {
                let gid = nix::unistd::Gid::from_raw(*gid);
                nix::unistd::chown(path, None, Some(gid)).map_err(io::Error::from)?;
            }
            Ok(Bound::Unix(listener))
        }
    }
}

/// Connections beyond `max_connections` wait in the kernel's queue; this one is deeper than the
/// default 128 (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: u32 = 1024;

fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

fn clear_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; not replacing it",
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process serves this socket (a second instance for the same agent?)",
        )),
        Err(_) => {
            tracing::info!(path = %path.display(), "replacing a stale API socket");
            std::fs::remove_file(path)
        }
    }
}

/// Serves `app` on `bound` within `limits` until `stop`; open connections get a second to
/// finish.
pub async fn serve(bound: Bound, app: Router, limits: ApiLimits, stop: CancellationToken) {
    match bound {
        Bound::Tcp(l) => run(l, app, limits, stop).await,
        Bound::Unix(l) => run(l, app, limits, stop).await,
    }
}

async fn run<L>(mut listener: L, app: Router, limits: ApiLimits, stop: CancellationToken)
where
    L: axum::serve::Listener,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let io = tokio::select! {
            () = stop.cancelled() => break,
            (io, _) = listener.accept() => io,
        };
        tracing::trace!(free = slots.available_permits(), "API connection accepted");
        let mut io = tokio_io_timeout::TimeoutStream::new(io);
        io.set_write_timeout(Some(limits.write_timeout));
        let service = TowerToHyperService::new(app.clone().layer(axum::middleware::from_fn(
            move |req, next| body_within(limits.header_read_timeout, req, next),
        )));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(Box::pin(io)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}

/// Reads a request's whole body within `limit` (at most [`super::MAX_BODY`] and a byte, so
/// that the handler can still refuse an oversized one with 413) before the handler sees it.
async fn body_within(
    limit: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::body::HttpBody as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, super::MAX_BODY + 1)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Ok(Err(_)) => refuse_body(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("body above {} bytes", super::MAX_BODY),
        ),
        Err(_) => {
            tracing::info!(
                limit_ms = limit.as_millis() as u64,
                "API request body not received in time: closing the connection"
            );
            refuse_body(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "request body not received in time".into(),
            )
        }
    }
}

/// The API's error shape for a body refused before its handler, closing the connection (what
/// is left of the body is never read).
fn refuse_body(status: axum::http::StatusCode, error: String) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let body = serde_json::json!({ "error": error, "field": "body" });
    (
        status,
        [(axum::http::header::CONNECTION, "close")],
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Instant;

    use axum::routing::get;

    use super::*;

    fn limits(max_connections: usize) -> ApiLimits {
        ApiLimits {
            max_connections,
            max_sse_clients: 1,
            header_read_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_millis(300),
        }
    }

    /// An endless body, as an event stream to a client that stopped reading looks.
    fn endless() -> Router {
        Router::new()
            .route(
                "/ok",
                get(|| async { "ok" })
                    .post(|b: axum::body::Bytes| async move { format!("{} bytes", b.len()) }),
            )
            .route(
                "/endless",
                get(|| async {
                    let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
                    let body = futures::stream::repeat_with(move || {
                        Ok::<_, std::convert::Infallible>(chunk.clone())
                    });
                    axum::body::Body::from_stream(body)
                }),
            )
    }

    async fn start(limits: ApiLimits) -> (std::net::SocketAddr, CancellationToken) {
        let listen = Listen::Tcp("127.0.0.1:0".into());
        let access = SocketAccess {
            mode: 0o660,
            group: None,
        };
        let bound = bind(&listen, &access).await.unwrap();
        let Bound::Tcp(l) = &bound else { panic!() };
        let addr = l.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(bound, endless(), limits, stop.clone()));
        (addr, stop)
    }

    /// Reads until the server closes the connection; panics after `limit`.
    fn read_to_close(s: &mut std::net::TcpStream, limit: Duration) -> usize {
        s.set_read_timeout(Some(limit)).unwrap();
        let (started, mut total, mut buf) = (Instant::now(), 0, vec![0u8; 1 << 16]);
        loop {
            assert!(
                started.elapsed() < limit,
                "still open after {limit:?} ({total} bytes)"
            );
            match s.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return total,
                Err(e) => panic!("not closed after {:?}: {e}", started.elapsed()),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
        let (addr, _stop) = start(limits(4)).await;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /endless HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        // Stuck: the server fills the socket buffers, then waits on the client.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let read =
            tokio::task::spawn_blocking(move || read_to_close(&mut s, Duration::from_secs(10)))
                .await
                .unwrap();
        assert!(read > 64 * 1024, "the body was being sent: {read} bytes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_that_stops_half_way_is_answered_408_and_its_slot_freed() {
        // One slot: a stalled body that kept it would leave the next client waiting.
        let (addr, _stop) = start(limits(1)).await;
        let mut stalled = std::net::TcpStream::connect(addr).unwrap();
        stalled
            .write_all(
                b"POST /ok HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n{\"half\":",
            )
            .unwrap();
        let answer = tokio::task::spawn_blocking(move || {
            stalled
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut text = String::new();
            let _ = stalled.read_to_string(&mut text);
            text
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        // The slot is free again: the next client is answered.
        let next = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            text
        })
        .await
        .unwrap();
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_connection_is_dropped_after_the_header_read_timeout() {
        let (addr, _stop) = start(limits(4)).await;
        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        let read =
            tokio::task::spawn_blocking(move || read_to_close(&mut idle, Duration::from_secs(10)))
                .await
                .unwrap();
        assert_eq!(read, 0, "nothing was asked, nothing answered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_beyond_the_cap_wait_until_one_closes() {
        let mut l = limits(2);
        l.header_read_timeout = Duration::from_secs(3600);
        let (addr, _stop) = start(l).await;
        let held: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let ask = move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).into_owned()
        };
        let waiting = tokio::task::spawn_blocking(ask).await.unwrap();
        assert_eq!(
            waiting, "",
            "a third connection is not served while two are held"
        );
        drop(held);
        let served = tokio::task::spawn_blocking(ask).await.unwrap();
        assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    }

    #[tokio::test]
    async fn a_live_socket_is_refused_a_stale_one_replaced_with_the_mode_and_group() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listen = Listen::Unix(path.clone());
        let gid = nix::unistd::getgid().as_raw();
        let access = SocketAccess {
            mode: 0o660,
            group: Some(("own".into(), gid)),
        };
        let first = bind(&listen, &access).await.unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid);
        let second = bind(&listen, &access).await.err().expect("refused");
        assert_eq!(second.kind(), io::ErrorKind::AddrInUse, "{second}");
        drop(first);
        assert!(path.exists(), "a crash leaves the socket file");
        bind(&listen, &access)
            .await
            .expect("the stale socket is replaced");
        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, "keep me").unwrap();
        let err = bind(&Listen::Unix(file.clone()), &access)
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
