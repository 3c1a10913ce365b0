//! Reaching an XMPP server: TCP to the first of a name's addresses that answers (happy
//! eyeballs in the resolver's order), and the bound (`[finesse] connect_timeout`) on each step
//! of a login, with the error that names the step that took too long.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio_xmpp::Error;

/// The delay before the next address is tried while the one before is still connecting
/// (RFC 8305's Connection Attempt Delay).
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// TCP to the first of `addrs` that answers: each is tried in turn, the next as soon as the
/// one before failed or has not connected within [`ATTEMPT_DELAY`] (happy eyeballs, without
/// the reordering by family: the resolver's order is kept); the first to connect wins and the
/// others are dropped. Each leaves from `source` when one is given.
pub(crate) async fn connect_any(
    addrs: &[SocketAddr],
    source: Option<IpAddr>,
) -> io::Result<TcpStream> {
    let mut next = addrs.iter();
    let mut trying = futures::stream::FuturesUnordered::new();
    let mut last: Option<io::Error> = None;
    loop {
        if let Some(addr) = next.next() {
            trying.push(connect_from(*addr, source));
        } else if trying.is_empty() {
            return Err(last.unwrap_or_else(|| io::Error::other("no address to connect to")));
        }
        let more = next.len() > 0;
        tokio::select! {
            Some(r) = trying.next() => match r {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last = Some(e),
            },
            () = tokio::time::sleep(ATTEMPT_DELAY), if more => {}
        }
    }
}

/// TCP to `addr`, from `source` when one is given (port: the system's choice).
async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// `step` bounded by `limit` (none: unbounded); `what` names it in the error.
pub(crate) async fn bounded<T>(
    limit: Option<Duration>,
    what: &str,
    step: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(limit) = limit else {
        return step.await;
    };
    match tokio::time::timeout(limit, step).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(what, limit)),
    }
}

/// The error of a login step (`what`) that took longer than `limit`.
pub(crate) fn timed_out(what: &str, limit: Duration) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} did not finish within connect_timeout ({limit:?})"),
    ))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;

    /// A loopback port whose SYNs are dropped: a listener with no room in its accept queue,
    /// filled by one connection that is never accepted (Linux drops a SYN to a full queue).
    fn syn_blackhole() -> (socket2::Socket, TcpStream, SocketAddr) {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        s.listen(0).unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        let filler = std::net::TcpStream::connect(addr).unwrap();
        filler.set_nonblocking(true).unwrap();
        (s, TcpStream::from_std(filler).unwrap(), addr)
    }

    #[tokio::test]
    async fn the_next_address_is_tried_when_the_first_refuses_or_never_answers() {
        let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let tcp = connect_any(&[refused, good_addr], None).await.unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), good_addr);
        // A first address that never answers a SYN: without the attempt delay this would
        // wait out the kernel's SYN retries (over two minutes).
        let (_held, _filler, hole) = syn_blackhole();
        let started = std::time::Instant::now();
        let tcp = tokio::time::timeout(
            Duration::from_secs(20),
            connect_any(&[hole, good_addr], None),
        )
        .await
        .expect("the second address was never tried")
        .unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), good_addr);
        assert!(
            started.elapsed() >= ATTEMPT_DELAY,
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_source_address_is_the_connections_local_address() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
        let tcp = connect_any(&[server.local_addr().unwrap()], Some(source))
            .await
            .unwrap();
        assert_eq!(tcp.local_addr().unwrap().ip(), source);
        let (_, peer) = server.accept().await.unwrap();
        assert_eq!(peer.ip(), source, "the server sees the source address");
    }

    #[tokio::test]
    async fn every_address_failing_gives_the_last_error_and_a_bound_gives_a_timeout() {
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = connect_any(&[refused], None).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        let (_held, _filler, hole) = syn_blackhole();
        let limit = Some(Duration::from_millis(300));
        let step = async { connect_any(&[hole], None).await.map_err(Error::Io) };
        let e = bounded(limit, "the test's connection", step)
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("connect_timeout"), "{text}");
        assert!(matches!(e, Error::Io(ref io) if io.kind() == io::ErrorKind::TimedOut));
    }
}
