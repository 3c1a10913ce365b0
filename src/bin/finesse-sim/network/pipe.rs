//! One connection carried under a link's conditions: a pump per direction, each a reader that
//! stamps every chunk with the time it may arrive (now + latency ± jitter, never before the
//! chunk ahead of it) and a writer that delivers it then, at the direction's bandwidth, and
//! not while the direction is stalled. The conditions are read as each chunk passes, so a
//! change applies to open connections at once. A reset (asked for, or a broken side) resets
//! the client's socket. The TCP handshake, which the kernel completes before the simulator
//! sees the connection, is charged as one round trip before the client's first bytes.

use std::io;
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Conditions, Direction};

/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction before the reader waits (a TCP window, roughly).
const IN_FLIGHT: usize = 64;

/// Which way a pump carries bytes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Way {
    /// Client to node.
    Up,
    /// Node to client.
    Down,
}

impl Way {
    fn of(self, c: &Conditions) -> Direction {
        match self {
            Way::Up => c.upstream,
            Way::Down => c.downstream,
        }
    }
}

/// The delay of one chunk: `latency` ± up to `jitter`, never below zero.
fn delay(d: Direction, rng: &mut rand::rngs::StdRng) -> Duration {
    let base = i128::from(d.latency_ms);
    let jitter = i128::from(d.jitter_ms);
    let ms = if jitter == 0 {
        base
    } else {
        base + rng.gen_range(-jitter..=jitter)
    };
    Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
}

/// Carries `src` to `dst` under `way`'s conditions until `src` ends (its end is passed on,
/// `slow_close_ms` late) or either side fails (the other is then left).
pub(super) async fn pump<R, W>(
    mut src: R,
    mut dst: W,
    conditions: watch::Receiver<Conditions>,
    way: Way,
    handshake: Duration,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(IN_FLIGHT);
    let watched = conditions.clone();
    let read = async move {
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut last = Instant::now();
        let mut first = handshake;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = src.read(&mut buf).await?;
            let d = way.of(&watched.borrow());
            let extra = std::mem::take(&mut first);
            last = last.max(Instant::now() + delay(d, &mut rng) + extra);
            let chunk = (n > 0).then(|| {
                buf.truncate(n);
                buf
            });
            if tx.send((last, chunk)).await.is_err() || n == 0 {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let mut watched = conditions;
    let write = async move {
        let mut free_at = Instant::now();
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            // A closed sender (the simulator stopping) stalls nothing.
            let _ = watched.wait_for(|c| !way.of(c).stall).await;
            let Some(bytes) = chunk else {
                let late = watched.borrow().slow_close_ms;
                tokio::time::sleep(Duration::from_millis(late)).await;
                dst.shutdown().await?;
                return Ok(());
            };
            let bandwidth = way.of(&watched.borrow()).bandwidth;
            if bandwidth == 0 {
                dst.write_all(&bytes).await?;
                continue;
            }
            // Paced in slices of a fiftieth of a second's worth, so that a large chunk is not
            // delivered in one burst.
            let slice = usize::try_from(bandwidth / 50).unwrap_or(usize::MAX).max(1);
            for part in bytes.chunks(slice) {
                free_at = free_at.max(Instant::now());
                tokio::time::sleep_until(free_at).await;
                dst.write_all(part).await?;
                let secs = part.len() as f64 / bandwidth as f64;
                free_at += Duration::from_secs_f64(secs);
            }
        }
        dst.flush().await
    };
    // The writer ends once the reader's end has passed (or fails); a failed reader ends both.
    tokio::pin!(read, write);
    let mut reading = true;
    loop {
        tokio::select! {
            r = &mut read, if reading => {
                reading = false;
                r?;
            }
            w = &mut write => return w,
        }
    }
}

/// Carries one client connection to `server` under `conditions` until both sides have ended,
/// either fails, or a reset is asked for.
pub async fn carry<S>(client: TcpStream, server: S, mut conditions: watch::Receiver<Conditions>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // A second descriptor of the client's socket, to reset it whatever the pumps hold.
    let Ok(handle) = socket2::SockRef::from(&client).try_clone() else {
        return;
    };
    let reset = |why: &str| {
        tracing::debug!(why, "network: connection reset");
        let _ = handle.set_linger(Some(Duration::ZERO));
    };
    if conditions.borrow().reset {
        reset("reset toxic");
        return;
    }
    // Not `into_split`: its write half sends a FIN when dropped, ahead of the reset.
    let (client_read, client_write) = tokio::io::split(client);
    let (server_read, server_write) = tokio::io::split(server);
    // The kernel completed the TCP handshake at once; a real one costs a round trip before
    // the client's first byte can leave, so the first bytes up are that much later.
    let handshake = conditions.borrow().rtt();
    let up = pump(
        client_read,
        server_write,
        conditions.clone(),
        Way::Up,
        handshake,
    );
    let down = pump(
        server_read,
        client_write,
        conditions.clone(),
        Way::Down,
        Duration::ZERO,
    );
    tokio::pin!(up, down);
    let (mut up_done, mut down_done, mut watching) = (false, false, true);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                up_done = true;
                if r.is_err() { reset("client side failed"); return; }
            }
            r = &mut down, if !down_done => {
                down_done = true;
                if r.is_err() { reset("node side failed"); return; }
            }
            r = conditions.wait_for(|c| c.reset), if watching => {
                if r.is_ok() { reset("reset toxic"); return; }
                watching = false;
            }
        }
    }
}

/// Holds a connection that the blackhole took: nothing is answered, what the client sends is
/// read and dropped, and the connection ends only when the client ends it.
pub async fn swallow(mut client: TcpStream) {
    let mut buf = vec![0u8; CHUNK];
    while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
}
