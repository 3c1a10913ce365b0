//! A transparent stream wrapper under TLS that counts round trips: each time data arrives after
//! the client has written since the last arrival, the client waited for the server once. The
//! TCP handshake counts as one more. The count covers TLS, stream negotiation, SASL, bind and
//! every IQ, pipelined exchanges once, and feeds `finesse_taskd_xmpp_round_trips_total`, which
//! the benchmarks set against the loopback round-trip time.
//!
//! After each arrival it also asks the kernel to acknowledge the next segment at once
//! (TCP_QUICKACK): a server that leaves Nagle's algorithm on holds the second segment of a
//! reply until the first is acknowledged, and a delayed ACK would cost about 40 ms per such
//! reply (measured against Prosody's default settings: see benches/RESULTS.md).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A socket that can be told to acknowledge the next segment at once.
pub trait QuickAck {
    /// Best effort: an error only means the ACK may be delayed as usual.
    fn ack_next_now(&self) {}
}

impl QuickAck for TcpStream {
    fn ack_next_now(&self) {
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(self).set_tcp_quickack(true);
    }
}

/// `S` with its round trips counted.
pub struct Turns<S> {
    inner: S,
    wrote: bool,
    count: Option<Counter>,
}

impl<S> Turns<S> {
    /// Wraps a freshly connected `inner`, counting its handshake.
    pub fn connected(inner: S, count: Option<Counter>) -> Self {
        if let Some(c) = &count {
            c.inc();
        }
        Self {
            inner,
            wrote: false,
            count,
        }
    }
}

impl<S: AsyncRead + QuickAck + Unpin> AsyncRead for Turns<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.inner.ack_next_now();
            if std::mem::take(&mut this.wrote) {
                if let Some(c) = &this.count {
                    c.inc();
                }
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Turns<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote = true;
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    impl QuickAck for tokio::io::DuplexStream {}

    #[tokio::test]
    async fn counts_one_per_answer_waited_for_and_none_for_unsolicited_data() {
        let count = Counter::default();
        let (client, mut server) = tokio::io::duplex(64);
        let mut t = Turns::connected(client, Some(count.clone()));
        assert_eq!(count.get(), 1, "the handshake");
        let mut buf = [0u8; 8];
        // Two pipelined writes, one answer: one round trip.
        t.write_all(b"a").await.unwrap();
        t.write_all(b"b").await.unwrap();
        server.read_exact(&mut buf[..2]).await.unwrap();
        server.write_all(b"AB").await.unwrap();
        t.read_exact(&mut buf[..2]).await.unwrap();
        assert_eq!(count.get(), 2);
        // Data the client did not ask for: no round trip.
        server.write_all(b"push").await.unwrap();
        t.read_exact(&mut buf[..4]).await.unwrap();
        assert_eq!(count.get(), 2);
        t.write_all(b"c").await.unwrap();
        server.read_exact(&mut buf[..1]).await.unwrap();
        server.write_all(b"C").await.unwrap();
        t.read_exact(&mut buf[..1]).await.unwrap();
        assert_eq!(count.get(), 3);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn every_arrival_on_a_tcp_socket_turns_quick_acks_back_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let quick = |s: &TcpStream| socket2::SockRef::from(s).tcp_quickack().unwrap();
        let mut t = Turns::connected(client, None);
        let mut buf = [0u8; 4];
        for round in 0..3 {
            // Delayed-ACK ("pingpong") mode, as Linux enters it on an interactive exchange.
            socket2::SockRef::from(&t.inner)
                .set_tcp_quickack(false)
                .unwrap();
            assert!(!quick(&t.inner), "round {round}: quick ACKs still on");
            server.write_all(b"ping").await.unwrap();
            t.read_exact(&mut buf).await.unwrap();
            assert!(quick(&t.inner), "round {round}: the read left ACKs delayed");
        }
    }
}
