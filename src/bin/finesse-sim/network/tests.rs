//! The shaper's own tests: each toxic on in-memory streams under paused time (exact
//! figures), and the forwarder on loopback sockets (resets and blackholes are socket facts).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pipe::{Way, pump};
use super::{Conditions, Direction, forward};

fn up(d: Direction) -> Conditions {
    Conditions {
        upstream: d,
        ..Conditions::default()
    }
}

/// A pump from a writer the test holds to a reader the test holds, under `c`.
fn piped(
    c: Conditions,
) -> (
    tokio::io::DuplexStream,
    tokio::io::DuplexStream,
    watch::Sender<Conditions>,
) {
    let (tx, rx) = watch::channel(c);
    let (writer, src) = tokio::io::duplex(1 << 20);
    let (dst, reader) = tokio::io::duplex(1 << 20);
    tokio::spawn(pump(src, dst, rx, Way::Up, Duration::ZERO));
    (writer, reader, tx)
}

#[tokio::test(start_paused = true)]
async fn latency_with_jitter_delays_each_chunk_within_its_bounds_and_never_reorders() {
    let (mut w, mut r, _c) = piped(up(Direction {
        latency_ms: 20,
        jitter_ms: 15,
        ..Direction::default()
    }));
    let sent_at = Instant::now();
    let writer = tokio::spawn(async move {
        for i in 0..50u8 {
            w.write_all(&[i]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        w
    });
    for i in 0..50u8 {
        let mut b = [0u8; 1];
        r.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], i, "bytes arrive in the order sent");
        let lag = Instant::now() - (sent_at + Duration::from_millis(u64::from(i)));
        assert!(
            (5..=35).contains(&lag.as_millis()),
            "byte {i} took {lag:?}, outside 20 ms ± 15 ms"
        );
    }
    drop(writer.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_direction_passes_nothing_and_closes_nothing_until_it_clears() {
    let (mut w, mut r, c) = piped(up(Direction {
        stall: true,
        ..Direction::default()
    }));
    w.write_all(b"hello").await.unwrap();
    let mut b = [0u8; 5];
    let waited = tokio::time::timeout(Duration::from_secs(3600), r.read_exact(&mut b)).await;
    assert!(waited.is_err(), "nothing passes an hour into a stall");
    c.send_replace(Conditions::default());
    r.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hello", "held bytes pass once the stall clears");
}

#[tokio::test(start_paused = true)]
async fn a_half_open_link_stalls_one_direction_only() {
    let (tx, rx) = watch::channel(Conditions {
        downstream: Direction {
            stall: true,
            ..Direction::default()
        },
        ..Conditions::default()
    });
    let (mut client_w, up_src) = tokio::io::duplex(4096);
    let (up_dst, mut server_r) = tokio::io::duplex(4096);
    let (mut server_w, down_src) = tokio::io::duplex(4096);
    let (down_dst, mut client_r) = tokio::io::duplex(4096);
    tokio::spawn(pump(up_src, up_dst, rx.clone(), Way::Up, Duration::ZERO));
    tokio::spawn(pump(down_src, down_dst, rx, Way::Down, Duration::ZERO));
    client_w.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    server_r.read_exact(&mut b).await.unwrap();
    server_w.write_all(b"pong").await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(60), client_r.read_exact(&mut b)).await;
    assert!(waited.is_err(), "the answer never comes back");
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn bandwidth_paces_a_large_write() {
    let (mut w, mut r, _c) = piped(up(Direction {
        bandwidth: 5_000,
        ..Direction::default()
    }));
    let start = Instant::now();
    w.write_all(&[7u8; 10_000]).await.unwrap();
    let mut b = vec![0u8; 10_000];
    r.read_exact(&mut b).await.unwrap();
    let took = start.elapsed().as_millis();
    assert!(
        (1_900..=2_100).contains(&took),
        "10 kB at 5 kB/s took {took} ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_close_reaches_the_other_side_late_and_after_the_data() {
    let (mut w, mut r, _c) = piped(Conditions {
        slow_close_ms: 700,
        upstream: Direction {
            latency_ms: 100,
            ..Direction::default()
        },
        ..Conditions::default()
    });
    let start = Instant::now();
    w.write_all(b"bye").await.unwrap();
    w.shutdown().await.unwrap();
    let mut all = Vec::new();
    r.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"bye");
    let took = start.elapsed().as_millis();
    assert!((800..=810).contains(&took), "end after {took} ms");
}

/// An upstream that echoes every connection, and a forwarder in front of it.
async fn echo_behind_forwarder(
    c: Conditions,
) -> (
    std::net::SocketAddr,
    watch::Sender<Conditions>,
    TcpListener,
    CancellationToken,
) {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    let (tx, rx) = watch::channel(c);
    let cancel = CancellationToken::new();
    tokio::spawn(forward(
        front,
        upstream.local_addr().unwrap(),
        rx,
        cancel.clone(),
    ));
    (addr, tx, upstream, cancel)
}

fn echo(upstream: TcpListener) {
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

#[tokio::test]
async fn the_forwarder_carries_bytes_both_ways_and_a_reset_resets_open_connections() {
    let (addr, c, upstream, _cancel) = echo_behind_forwarder(Conditions::default()).await;
    echo(upstream);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"stanza").await.unwrap();
    let mut b = [0u8; 6];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"stanza");
    c.send_modify(|c| c.reset = true);
    let e = s.read(&mut b).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    // New connections are reset at once while it lasts.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let e = s.read(&mut b).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
}

#[tokio::test]
async fn a_blackholed_link_accepts_and_never_answers_nor_reaches_the_server() {
    let blackhole = Conditions {
        blackhole: true,
        ..Conditions::default()
    };
    let (addr, _c, upstream, _cancel) = echo_behind_forwarder(blackhole).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"<stream:stream>").await.unwrap();
    let reached = tokio::time::timeout(Duration::from_millis(500), upstream.accept()).await;
    assert!(reached.is_err(), "the server saw a connection");
    let mut b = [0u8; 1];
    let answered = tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await;
    assert!(answered.is_err(), "the client got an answer or a close");
}

#[tokio::test]
async fn a_server_that_takes_no_connection_makes_the_forwarder_reset_the_client() {
    let (addr, _c, upstream, _cancel) = echo_behind_forwarder(Conditions::default()).await;
    drop(upstream);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut b = [0u8; 1];
    let e = s.read(&mut b).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
}

#[test]
fn symmetric_conditions_split_the_round_trip_evenly() {
    let c = Conditions::symmetric(Duration::from_millis(80), Duration::from_millis(5), 0);
    assert_eq!(c.upstream.latency_ms, 40);
    assert_eq!(c.downstream.latency_ms, 40);
    assert_eq!(c.upstream.jitter_ms, 5);
    assert_eq!(c.rtt(), Duration::from_millis(80));
}

#[test]
fn a_patch_merges_with_shorthands_for_both_directions_and_names_an_unknown_field() {
    let c = Conditions::default()
        .patched(&serde_json::json!({ "rtt_ms": 40, "jitter_ms": 3 }))
        .unwrap();
    assert_eq!(c.rtt(), Duration::from_millis(40));
    assert_eq!(c.downstream.jitter_ms, 3);
    let c = c
        .patched(&serde_json::json!({ "downstream": { "stall": true }, "blackhole": true }))
        .unwrap();
    assert!(c.downstream.stall && !c.upstream.stall && c.blackhole);
    assert_eq!(c.upstream.latency_ms, 20, "the rest is kept");
    let e = c
        .patched(&serde_json::json!({ "upstream": { "latncy_ms": 1 } }))
        .unwrap_err();
    assert!(e.contains("upstream") && e.contains("latncy_ms"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_new_connections_first_bytes_pay_the_handshakes_round_trip() {
    let c = Conditions::symmetric(Duration::from_millis(80), Duration::ZERO, 0);
    let (tx, rx) = watch::channel(c);
    let (mut w, src) = tokio::io::duplex(4096);
    let (dst, mut r) = tokio::io::duplex(4096);
    tokio::spawn(pump(src, dst, rx, Way::Up, c.rtt()));
    let start = Instant::now();
    w.write_all(b"hello").await.unwrap();
    let mut b = [0u8; 5];
    r.read_exact(&mut b).await.unwrap();
    // The handshake's 80 ms, then the one-way 40 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(120));
    // Later bytes pay the one-way delay only.
    let later = Instant::now();
    w.write_all(b"again").await.unwrap();
    r.read_exact(&mut b).await.unwrap();
    assert_eq!(later.elapsed(), Duration::from_millis(40));
    drop(tx);
}
